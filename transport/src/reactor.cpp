#include "brook/transport/reactor.hpp"

#include <liburing.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace brook::transport {

namespace {

constexpr unsigned buffer_group = 0;

Op op_of(std::uint64_t user_data) { return static_cast<Op>(user_data >> 56); }
std::uint64_t token_of(std::uint64_t user_data) { return user_data & ((1ull << 56) - 1); }

// Tries the best flags first and falls back: DEFER_TASKRUN needs 6.1, SINGLE_ISSUER 6.0.
int setup_ring(io_uring* ring, const ReactorOptions& options, ReactorFeatures& features) {
  struct Attempt {
    unsigned flags;
    bool single_issuer, defer_taskrun;
  };
  const Attempt attempts[] = {
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN, true,
       true},
      {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN, true, false},
      {0, false, false},
  };
  int rc = -EINVAL;
  for (const auto& attempt : attempts) {
    if (attempt.defer_taskrun && !options.defer_taskrun) continue;
    io_uring_params params{};
    params.flags = attempt.flags;
    params.cq_entries = options.sq_entries * 4;
    params.flags |= IORING_SETUP_CQSIZE;
    rc = io_uring_queue_init_params(options.sq_entries, ring, &params);
    if (rc == 0) {
      features.single_issuer = attempt.single_issuer;
      features.defer_taskrun = attempt.defer_taskrun;
      return 0;
    }
  }
  return rc;
}

}  // namespace

std::string ReactorFeatures::describe() const {
  std::string s = "io_uring";
  if (single_issuer) s += " single-issuer";
  if (defer_taskrun) s += " defer-taskrun";
  if (accept_multishot) s += " multishot-accept";
  if (recv_multishot) s += " multishot-recv";
  return s;
}

Reactor::Reactor(const ReactorOptions& options) : ring_(new io_uring{}), options_(options) {
  if (int rc = setup_ring(ring_.get(), options_, features_); rc < 0)
    throw std::system_error(-rc, std::system_category(), "io_uring_queue_init");

  if (io_uring_probe* probe = io_uring_get_probe_ring(ring_.get())) {
    // Multishot variants share the opcode of their single-shot form; the kernel feature bits
    // below say whether the multishot flags are honoured.
    features_.accept_multishot = io_uring_opcode_supported(probe, IORING_OP_ACCEPT);
    features_.recv_multishot = io_uring_opcode_supported(probe, IORING_OP_RECV);
    io_uring_free_probe(probe);
  }

  // Provided buffer ring: the kernel picks a buffer per received chunk, so idle connections
  // cost no receive memory.
  unsigned count = options_.recv_buffer_count;
  buffer_ring_bytes_ = count * sizeof(io_uring_buf);
  void* ring_mem = mmap(nullptr, buffer_ring_bytes_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ring_mem == MAP_FAILED) throw std::system_error(errno, std::system_category(), "mmap");
  buffer_ring_ = static_cast<io_uring_buf_ring*>(ring_mem);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(ring_mem);
  reg.ring_entries = count;
  reg.bgid = buffer_group;
  if (int rc = io_uring_register_buf_ring(ring_.get(), &reg, 0); rc < 0) {
    features_.recv_multishot = false;
    throw std::system_error(-rc, std::system_category(), "io_uring_register_buf_ring");
  }
  buffers_ = static_cast<std::byte*>(mmap(nullptr, std::size_t{count} * options_.recv_buffer_bytes,
                                          PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1,
                                          0));
  if (buffers_ == MAP_FAILED) throw std::system_error(errno, std::system_category(), "mmap");
  io_uring_buf_ring_init(buffer_ring_);
  int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i)
    io_uring_buf_ring_add(buffer_ring_, buffers_ + std::size_t{i} * options_.recv_buffer_bytes,
                          options_.recv_buffer_bytes, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  io_uring_buf_ring_advance(buffer_ring_, static_cast<int>(count));

  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) throw std::system_error(errno, std::system_category(), "eventfd");
  arm_wake();
}

Reactor::~Reactor() {
  io_uring_queue_exit(ring_.get());
  if (buffers_) munmap(buffers_, std::size_t{options_.recv_buffer_count} * options_.recv_buffer_bytes);
  if (buffer_ring_) munmap(buffer_ring_, buffer_ring_bytes_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

io_uring_sqe* Reactor::next_sqe() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  while (!sqe) {
    // The submission queue is full: hand what is queued to the kernel and retry.
    io_uring_submit(ring_.get());
    sqe = io_uring_get_sqe(ring_.get());
  }
  return sqe;
}

void Reactor::accept_multishot(int listen_fd, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_multishot_accept(sqe, listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::accept, token));
}

void Reactor::recv_multishot(int fd, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_recv_multishot(sqe, fd, nullptr, 0, 0);
  sqe->flags |= IOSQE_BUFFER_SELECT;
  sqe->buf_group = buffer_group;
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::recv, token));
}

void Reactor::cancel(Op op, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_cancel64(sqe, pack_user_data(op, token), IORING_ASYNC_CANCEL_ALL);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::cancel, token));
}

void Reactor::sendmsg(int fd, const ::msghdr* msg, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_sendmsg(sqe, fd, msg, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::send, token));
}

void Reactor::send(int fd, const void* data, std::size_t bytes, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_send(sqe, fd, data, bytes, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::send, token));
}

void Reactor::read(int fd, void* buffer, unsigned bytes, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_read(sqe, fd, buffer, bytes, 0);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::read, token));
}

void Reactor::write(int fd, const void* buffer, unsigned bytes, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_write(sqe, fd, buffer, bytes, 0);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::write, token));
}

void Reactor::write_file(int fd, const void* data, unsigned bytes, std::uint64_t offset,
                         std::uint64_t token, bool then_sync) {
  // Linked SQEs must reach the kernel in one submission: make room for both first.
  if (then_sync && io_uring_sq_space_left(ring_.get()) < 2) io_uring_submit(ring_.get());
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_write(sqe, fd, data, bytes, offset);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::file_write, token));
  if (!then_sync) return;
  sqe->flags |= IOSQE_IO_LINK;
  io_uring_sqe* sync = next_sqe();
  io_uring_prep_fsync(sync, fd, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(sync, pack_user_data(Op::file_sync, token));
}

void Reactor::sync_file(int fd, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::file_sync, token));
}

void Reactor::read_file(int fd, void* buffer, unsigned bytes, std::uint64_t offset, std::uint64_t token) {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_read(sqe, fd, buffer, bytes, offset);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::file_read, token));
}

void Reactor::wake() noexcept {
  std::uint64_t one = 1;
  // A full counter (EAGAIN) still wakes the reader, so the result needs no handling.
  [[maybe_unused]] auto n = ::write(wake_fd_, &one, sizeof one);
}

void Reactor::arm_wake() {
  io_uring_sqe* sqe = next_sqe();
  io_uring_prep_read(sqe, wake_fd_, &wake_value_, sizeof wake_value_, 0);
  io_uring_sqe_set_data64(sqe, pack_user_data(Op::wake, 0));
}

void Reactor::recycle_buffer(unsigned buffer_id) {
  io_uring_buf_ring_add(buffer_ring_, buffers_ + std::size_t{buffer_id} * options_.recv_buffer_bytes,
                        options_.recv_buffer_bytes, static_cast<unsigned short>(buffer_id),
                        io_uring_buf_ring_mask(options_.recv_buffer_count), 0);
  // release inside: pairs with the kernel's acquire of the ring tail.
  io_uring_buf_ring_advance(buffer_ring_, 1);
}

int Reactor::run_once(ReactorHandler& handler, int timeout_ms, unsigned max_completions) {
  wait(completions_pending() ? 0 : timeout_ms);
  return process(handler, max_completions);
}

bool Reactor::completions_pending() const noexcept { return io_uring_cq_ready(ring_.get()) > 0; }

void Reactor::submit() {
  if (int rc = io_uring_submit(ring_.get()); rc < 0 && rc != -EBUSY && rc != -EAGAIN && rc != -EINTR)
    throw std::system_error(-rc, std::system_category(), "io_uring_submit");
}

void Reactor::wait(int timeout_ms) { wait_us(timeout_ms < 0 ? -1 : std::int64_t{timeout_ms} * 1000); }

void Reactor::wait_us(std::int64_t timeout_us) {
  io_uring_cqe* cqe = nullptr;
  int rc;
  if (timeout_us < 0) {
    rc = io_uring_submit_and_wait(ring_.get(), 1);
  } else if (timeout_us == 0) {
    rc = io_uring_submit(ring_.get());
    // DEFER_TASKRUN runs task work only inside io_uring_enter with GETEVENTS.
    if (features_.defer_taskrun) io_uring_get_events(ring_.get());
  } else {
    __kernel_timespec ts{timeout_us / 1'000'000, (timeout_us % 1'000'000) * 1000LL};
    rc = io_uring_submit_and_wait_timeout(ring_.get(), &cqe, 1, &ts, nullptr);
  }
  if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
    throw std::system_error(-rc, std::system_category(), "io_uring_submit_and_wait");
}

int Reactor::process(ReactorHandler& handler, unsigned max_completions) {
  io_uring_cqe* cqe = nullptr;
  int handled = 0;
  unsigned head;
  io_uring_for_each_cqe(ring_.get(), head, cqe) {
    if (static_cast<unsigned>(handled) == max_completions) break;
    ++handled;
    Op op = op_of(cqe->user_data);
    Completion c{op, token_of(cqe->user_data), cqe->res, (cqe->flags & IORING_CQE_F_MORE) != 0, {}};
    if (op == Op::wake) {
      arm_wake();
      handler.on_completion(c);
      continue;
    }
    if (op == Op::recv && (cqe->flags & IORING_CQE_F_BUFFER)) {
      unsigned buffer_id = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
      if (cqe->res > 0)
        c.data = {buffers_ + std::size_t{buffer_id} * options_.recv_buffer_bytes,
                  static_cast<std::size_t>(cqe->res)};
      handler.on_completion(c);
      recycle_buffer(buffer_id);
      continue;
    }
    handler.on_completion(c);
  }
  io_uring_cq_advance(ring_.get(), static_cast<unsigned>(handled));
  return handled;
}

}  // namespace brook::transport
