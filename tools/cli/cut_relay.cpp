#include "cut_relay.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "brook/transport/tcp.hpp"

namespace brook::cli {

namespace {
// Close with a TCP reset, as a cut cable or a crashed peer looks to the other side.
void reset(int fd) {
  ::linger hard{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  ::shutdown(fd, SHUT_RDWR);
}
}  // namespace

CutRelay::CutRelay(std::uint16_t upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = transport::listen_tcp({"127.0.0.1", 0}, 64);
  if (listen_fd_ < 0) return;
  port_ = transport::local_port(listen_fd_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

CutRelay::~CutRelay() {
  stopping_.store(true);
  if (listen_fd_ >= 0) ::shutdown(listen_fd_, SHUT_RDWR);
  if (acceptor_.joinable()) acceptor_.join();
  cut();
  std::vector<std::thread> pumps;
  {
    std::lock_guard lock(mutex_);
    pumps.swap(pumps_);
  }
  for (auto& t : pumps) t.join();
  std::lock_guard lock(mutex_);
  for (int fd : open_fds_) ::close(fd);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

void CutRelay::cut() {
  refusing_.store(true);
  std::lock_guard lock(mutex_);
  for (int fd : open_fds_) reset(fd);  // the pumps see the end and stop
}

void CutRelay::accept_loop() {
  while (!stopping_.load()) {
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) {
      if (stopping_.load()) return;
      continue;
    }
    if (refusing_.load()) {
      reset(client);
      ::close(client);
      continue;
    }
    int upstream = transport::connect_tcp({"127.0.0.1", upstream_port_}, 2000);
    if (upstream < 0) {
      reset(client);
      ::close(client);
      continue;
    }
    for (int fd : {client, upstream}) {
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    std::lock_guard lock(mutex_);
    open_fds_.push_back(client);
    open_fds_.push_back(upstream);
    pumps_.emplace_back([this, client, upstream] { pump(client, upstream); });
    pumps_.emplace_back([this, client, upstream] { pump(upstream, client); });
  }
}

void CutRelay::pump(int from, int to) {
  char buffer[65536];
  for (;;) {
    ssize_t n = ::recv(from, buffer, sizeof buffer, 0);
    if (n <= 0) break;
    for (ssize_t sent = 0; sent < n;) {
      ssize_t w = ::send(to, buffer + sent, static_cast<std::size_t>(n - sent), MSG_NOSIGNAL);
      if (w <= 0) {
        ::shutdown(from, SHUT_RDWR);
        return;
      }
      sent += w;
    }
  }
  ::shutdown(to, SHUT_RDWR);
}

}  // namespace brook::cli
