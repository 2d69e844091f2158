#pragma once
// A tiny TCP relay between clients and a broker, for fault tests: it listens on 127.0.0.1 at a
// free port and relays every accepted connection to 127.0.0.1:upstream_port, and on demand
// stalls one direction of a connection (stops reading it, so that the sender's socket buffers
// and then its own queue fill up: a subscriber or a network that stops taking data), blackholes
// it (both directions stall and nothing, not even a close, is passed on: a peer that vanished
// without a word, which only pings detect) or resets the connection (closes both sides with a
// TCP RST, as a crashed host or a cut cable would). After a reset it goes on accepting new
// connections, so a client that reconnects through the same URL gets a fresh link, unless
// refuse_new_connections() is on.
// Its sockets towards the stallable side have small fixed receive buffers, so that a stall
// backs up into the sender quickly rather than into this process or the kernel.
//
// Owns one thread, started by the constructor and joined by the destructor, which alone
// touches the sockets. The control methods may be called from any thread; stall, resume and
// reset return once the proxy thread has applied them (or after 10 s, returning false).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace brook::test {

class FaultProxy {
 public:
  explicit FaultProxy(std::uint16_t upstream_port);
  ~FaultProxy();
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  bool listening() const noexcept { return port_ != 0; }
  std::uint16_t port() const noexcept { return port_; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  // Connections are numbered from 0 in accept order (refused ones are not counted).
  std::size_t connections() const;
  // Waits until at least `count` connections were accepted and relayed.
  bool wait_for_connections(std::size_t count, std::chrono::milliseconds timeout) const;
  // Bytes relayed from the broker to the client of connection `index` so far.
  std::uint64_t bytes_to_client(std::size_t index) const;
  // Bytes relayed from the client of connection `index` to the broker so far.
  std::uint64_t bytes_to_upstream(std::size_t index) const;
  // Waits until at least `bytes` went from the client of connection `index` to the broker.
  bool wait_for_bytes_to_upstream(std::size_t index, std::uint64_t bytes,
                                  std::chrono::milliseconds timeout) const;

  enum class Direction : std::uint8_t {
    to_client,  // stop reading what the broker sends (a subscriber that stops reading)
    to_broker,  // stop reading what the client sends (a publisher's path that stops moving)
  };
  bool stall(std::size_t index, Direction direction = Direction::to_client);
  // Stops both directions without closing anything: what either side sends stays unread, and
  // an end of stream from either side is not passed on. Only the broker ending its side is
  // noticed (see wait_for_upstream_end), never acted upon.
  bool blackhole(std::size_t index);
  bool resume(std::size_t index);  // both directions, blackholed or stalled
  bool reset(std::size_t index);
  // True once the broker has ended its side of connection `index` (FIN or RST), also while
  // the connection is blackholed; false if the timeout passed first.
  bool wait_for_upstream_end(std::size_t index, std::chrono::milliseconds timeout) const;

  // While on, connections are accepted and at once reset (a host that is up but refuses the
  // service), so that reconnection attempts fail fast; counted by refused_connections().
  void refuse_new_connections(bool refuse);
  std::size_t refused_connections() const noexcept;

 private:
  struct Link;
  enum class Command : std::uint8_t {
    none,
    stall_to_client,
    stall_to_broker,
    blackhole,
    resume,
    reset
  };

  void run();
  void accept_one();
  void relay(Link& link, bool from_client);
  void flush(Link& link, bool to_client);
  void close_link(Link& link, bool with_reset);
  void upstream_ended(Link& link);
  void apply_commands();
  bool command(std::size_t index, Command command);
  void wake();

  int listen_fd_ = -1;
  int wake_fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint16_t upstream_port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> refusing_{false};          // relaxed: a test switch, no data hangs on it
  std::atomic<std::size_t> refused_count_{0};  // relaxed: a statistic
  std::thread thread_;

  // Guards links_ (the vector) and each link's pending command; the sockets and buffers
  // belong to the proxy thread alone.
  mutable std::mutex mutex_;
  std::condition_variable applied_;
  // Notified (under mutex_) on bytes relayed to the broker, accepts and upstream ends.
  mutable std::condition_variable relayed_;
  std::vector<std::unique_ptr<Link>> links_;
};

}  // namespace brook::test
