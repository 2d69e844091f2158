#pragma once
// One io_uring per thread: multishot accept, multishot receive into a provided buffer ring,
// send and sendmsg, an eventfd for cross-thread wake-ups. Owned by one thread, which must
// also be the thread that constructs it (SINGLE_ISSUER / DEFER_TASKRUN bind the ring to its
// creator). Completions are handed to a Handler in batches; every operation carries a 56-bit
// token chosen by the caller (typically a connection slot and generation), packed with the op
// code into the SQE's user_data.
#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

struct io_uring;
struct io_uring_buf_ring;
struct io_uring_sqe;

namespace brook::transport {

enum class Op : std::uint8_t {
  accept = 1, recv = 2, send = 3, wake = 4, cancel = 5, read = 6, write = 7, file_write = 8,
  file_sync = 9, file_read = 10
};

struct ReactorOptions {
  unsigned sq_entries = 1024;
  unsigned recv_buffer_count = 512;     // power of two
  unsigned recv_buffer_bytes = 16384;
  bool defer_taskrun = true;            // used only when the kernel supports it
};

// What the kernel offered when the ring was set up (probed once).
struct ReactorFeatures {
  bool single_issuer = false;
  bool defer_taskrun = false;
  bool recv_multishot = false;
  bool accept_multishot = false;
  std::string describe() const;
};

struct Completion {
  Op op;
  std::uint64_t token;
  std::int32_t result;             // bytes, fd, or -errno
  bool more;                       // a multishot operation stays armed
  std::span<const std::byte> data; // received bytes, valid only during the callback
};

class ReactorHandler {
 public:
  virtual void on_completion(const Completion& completion) = 0;
  virtual ~ReactorHandler() = default;
};

class Reactor {
 public:
  // Throws std::system_error when io_uring cannot be set up at all.
  explicit Reactor(const ReactorOptions& options = {});
  ~Reactor();
  Reactor(const Reactor&) = delete;
  Reactor& operator=(const Reactor&) = delete;

  const ReactorFeatures& features() const noexcept { return features_; }

  void accept_multishot(int listen_fd, std::uint64_t token);
  // Multishot receive into the provided buffer ring. When a completion arrives without `more`
  // the receive has stopped (error, EOF, ENOBUFS back-pressure): arm it again if wanted.
  void recv_multishot(int fd, std::uint64_t token);
  // Cancels every pending operation with this op and token.
  void cancel(Op op, std::uint64_t token);
  // `msg` and what it points to must stay untouched until the send completion arrives.
  void sendmsg(int fd, const ::msghdr* msg, std::uint64_t token);
  // One contiguous buffer: the kernel need not copy and walk an iovec array (IORING_OP_SEND).
  // It completes as Op::send, like sendmsg.
  void send(int fd, const void* data, std::size_t bytes, std::uint64_t token);

  // Plain read and write (eventfd doorbells): the buffer must stay put until completion.
  void read(int fd, void* buffer, unsigned bytes, std::uint64_t token);
  void write(int fd, const void* buffer, unsigned bytes, std::uint64_t token);

  // A file (the journal): `bytes` at `offset`, completing as Op::file_write with the bytes
  // written; with `then_sync` an fdatasync is linked after it, which runs only if the write
  // completed in full, and completes as Op::file_sync (-ECANCELED if the write fell short).
  void write_file(int fd, const void* data, unsigned bytes, std::uint64_t offset,
                  std::uint64_t token, bool then_sync);
  void sync_file(int fd, std::uint64_t token);
  // `bytes` at `offset` of a file into `buffer` (history read back from the journal),
  // completing as Op::file_read with the bytes read; the buffer must stay put until then.
  void read_file(int fd, void* buffer, unsigned bytes, std::uint64_t offset, std::uint64_t token);

  // Another thread calls wake() to interrupt wait(); it costs one eventfd write.
  void wake() noexcept;

  // Submits queued operations, waits up to timeout_ms (0 = poll, -1 = forever) for at least
  // one completion, then hands the available completions, at most `max_completions`, to
  // `handler`. Returns how many.
  int run_once(ReactorHandler& handler, int timeout_ms, unsigned max_completions = ~0u);
  // The two halves of run_once, for a thread that must do something between the wait and
  // the completions (the client takes back its send state from callers there).
  void wait(int timeout_ms);
  // wait() with a finer timeout: a shard holding back sends wakes when they are due.
  void wait_us(std::int64_t timeout_us);
  // Hands the queued operations to the kernel without waiting for any (before a thread
  // sleeps elsewhere than in wait()).
  void submit();
  int process(ReactorHandler& handler, unsigned max_completions = ~0u);
  // Completions are ready that process() left for the next call.
  bool completions_pending() const noexcept;

 private:
  ::io_uring_sqe* next_sqe();
  void arm_wake();
  void recycle_buffer(unsigned buffer_id);

  std::unique_ptr<::io_uring> ring_;
  ReactorFeatures features_;
  ReactorOptions options_;
  ::io_uring_buf_ring* buffer_ring_ = nullptr;
  std::byte* buffers_ = nullptr;
  std::size_t buffer_ring_bytes_ = 0;
  int wake_fd_ = -1;
  std::uint64_t wake_value_ = 0;
};

constexpr std::uint64_t pack_user_data(Op op, std::uint64_t token) noexcept {
  return (static_cast<std::uint64_t>(op) << 56) | (token & ((1ull << 56) - 1));
}

}  // namespace brook::transport
