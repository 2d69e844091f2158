#pragma once
// A loopback TCP relay that `brook bench resync` puts between a subscriber and the broker to
// cut its connection on purpose: cut() resets every relayed connection and turns new ones away
// (accepted, then reset) until reopen(). Blocking sockets and a thread per direction: it
// relays one or two connections for a bench, not traffic at scale.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace brook::cli {

class CutRelay {
 public:
  explicit CutRelay(std::uint16_t upstream_port);
  ~CutRelay();
  CutRelay(const CutRelay&) = delete;
  CutRelay& operator=(const CutRelay&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  void cut();
  void reopen() { refusing_.store(false); }

 private:
  void accept_loop();
  void pump(int from, int to);

  std::uint16_t upstream_port_;
  int listen_fd_ = -1;
  std::uint16_t port_ = 0;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> refusing_{false};
  std::mutex mutex_;             // guards open_fds_ and pumps_
  std::vector<int> open_fds_;
  std::vector<std::thread> pumps_;
  std::thread acceptor_;
};

}  // namespace brook::cli
