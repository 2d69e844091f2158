#include "fault_proxy.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace brook::test {

namespace {

constexpr std::size_t relay_buffer_bytes = 64 * 1024;  // per direction and connection
// Small, fixed receive buffers on both sides: a stalled direction backs up into its sender
// quickly instead of into this process (setting them also turns off autotuning).
constexpr int rcvbuf_bytes = 16 * 1024;
constexpr int poll_turn_ms = 100;  // the longest a turn waits; commands wake it at once
constexpr auto command_timeout = std::chrono::seconds(10);

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

sockaddr_in loopback(std::uint16_t port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return addr;
}

}  // namespace

struct FaultProxy::Link {
  // Proxy thread only.
  int client = -1;
  int upstream = -1;
  std::vector<char> to_upstream;
  std::vector<char> to_client;
  bool client_eof = false;    // the client ended its side
  bool upstream_eof = false;  // the broker ended its side
  bool client_shut = false;   // SHUT_WR passed on to the client
  bool upstream_shut = false;
  bool stalled_to_client = false;
  bool stalled_to_broker = false;
  bool blackholed = false;
  bool closed = false;
  // Shared, under mutex_.
  Command pending = Command::none;
  // Written by the proxy thread, read by anyone.
  std::atomic<std::uint64_t> bytes_to_client{0};
  std::atomic<std::uint64_t> bytes_to_upstream{0};
  std::atomic<bool> upstream_ended{false};  // the broker closed or reset its side
};

FaultProxy::FaultProxy(std::uint16_t upstream_port) : upstream_port_(upstream_port) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  sockaddr_in addr = loopback(0);
  socklen_t len = sizeof addr;
  int rcvbuf = rcvbuf_bytes;  // inherited by the accepted sockets
  if (listen_fd_ >= 0) ::setsockopt(listen_fd_, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  if (listen_fd_ < 0 || wake_fd_ < 0 ||
      ::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(listen_fd_, 64) < 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) < 0)
    return;
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { run(); });
}

FaultProxy::~FaultProxy() {
  stop_.store(true, std::memory_order_relaxed);
  wake();
  if (thread_.joinable()) thread_.join();
  for (auto& link : links_) close_link(*link, false);
  if (listen_fd_ >= 0) ::close(listen_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

std::size_t FaultProxy::connections() const {
  std::lock_guard lock(mutex_);
  return links_.size();
}

bool FaultProxy::wait_for_connections(std::size_t count, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return relayed_.wait_for(lock, timeout, [&] { return links_.size() >= count; });
}

bool FaultProxy::wait_for_upstream_end(std::size_t index, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return relayed_.wait_for(lock, timeout, [&] {
    return index < links_.size() && links_[index]->upstream_ended.load();
  });
}

void FaultProxy::refuse_new_connections(bool refuse) {
  refusing_.store(refuse, std::memory_order_relaxed);
}

std::size_t FaultProxy::refused_connections() const noexcept {
  return refused_count_.load(std::memory_order_relaxed);
}

std::uint64_t FaultProxy::bytes_to_client(std::size_t index) const {
  std::lock_guard lock(mutex_);
  return index < links_.size() ? links_[index]->bytes_to_client.load() : 0;
}

std::uint64_t FaultProxy::bytes_to_upstream(std::size_t index) const {
  std::lock_guard lock(mutex_);
  return index < links_.size() ? links_[index]->bytes_to_upstream.load() : 0;
}

bool FaultProxy::wait_for_bytes_to_upstream(std::size_t index, std::uint64_t bytes,
                                            std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mutex_);
  return relayed_.wait_for(lock, timeout, [&] {
    return index < links_.size() && links_[index]->bytes_to_upstream.load() >= bytes;
  });
}

bool FaultProxy::stall(std::size_t index, Direction direction) {
  return command(index, direction == Direction::to_client ? Command::stall_to_client
                                                          : Command::stall_to_broker);
}
bool FaultProxy::blackhole(std::size_t index) { return command(index, Command::blackhole); }
bool FaultProxy::resume(std::size_t index) { return command(index, Command::resume); }
bool FaultProxy::reset(std::size_t index) { return command(index, Command::reset); }

void FaultProxy::wake() {
  std::uint64_t one = 1;
  [[maybe_unused]] auto ignored = ::write(wake_fd_, &one, sizeof one);
}

bool FaultProxy::command(std::size_t index, Command command) {
  std::unique_lock lock(mutex_);
  if (index >= links_.size() || !thread_.joinable()) return false;
  Link& link = *links_[index];
  link.pending = command;
  wake();
  return applied_.wait_for(lock, command_timeout, [&] { return link.pending == Command::none; });
}

void FaultProxy::apply_commands() {
  std::lock_guard lock(mutex_);
  bool any = false;
  for (auto& link : links_) {
    switch (link->pending) {
      case Command::none:
        continue;
      case Command::stall_to_client:
        link->stalled_to_client = true;
        break;
      case Command::stall_to_broker:
        link->stalled_to_broker = true;
        break;
      case Command::blackhole:
        link->blackholed = true;
        break;
      case Command::resume:
        link->stalled_to_client = link->stalled_to_broker = link->blackholed = false;
        break;
      case Command::reset:
        close_link(*link, true);
        break;
    }
    link->pending = Command::none;
    any = true;
  }
  if (any) applied_.notify_all();
}

void FaultProxy::run() {
  std::vector<pollfd> fds;
  std::vector<Link*> owners;  // owners[i] for fds[2 + 2 * i] (client) and [3 + 2 * i] (upstream)
  while (!stop_.load(std::memory_order_relaxed)) {
    apply_commands();
    fds.assign({{listen_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
    owners.clear();
    {
      std::lock_guard lock(mutex_);
      for (auto& l : links_) {
        if (l->closed) continue;
        if (l->blackholed) {
          // Nothing moves; only the broker ending its side is watched for (POLLRDHUP sees a
          // FIN behind unread data). Negative fds are skipped by poll.
          bool watch = !l->upstream_ended.load(std::memory_order_relaxed);
          fds.push_back({-1, 0, 0});
          fds.push_back({watch ? l->upstream : -1, POLLRDHUP, 0});
          owners.push_back(l.get());
          continue;
        }
        short client_events = 0, upstream_events = 0;
        if (!l->client_eof && !l->stalled_to_broker && l->to_upstream.size() < relay_buffer_bytes)
          client_events |= POLLIN;
        if (!l->to_client.empty()) client_events |= POLLOUT;
        if (!l->upstream_eof && !l->stalled_to_client && l->to_client.size() < relay_buffer_bytes)
          upstream_events |= POLLIN;
        if (!l->to_upstream.empty()) upstream_events |= POLLOUT;
        fds.push_back({l->client, client_events, 0});
        fds.push_back({l->upstream, upstream_events, 0});
        owners.push_back(l.get());
      }
    }
    int rc = ::poll(fds.data(), fds.size(), poll_turn_ms);
    if (rc <= 0) continue;
    if (fds[1].revents & POLLIN) {
      std::uint64_t drained;
      [[maybe_unused]] auto ignored = ::read(wake_fd_, &drained, sizeof drained);
    }
    if (fds[0].revents & POLLIN) accept_one();
    for (std::size_t i = 0; i < owners.size(); ++i) {
      Link& link = *owners[i];
      if (link.blackholed) {
        if (fds[3 + 2 * i].revents & (POLLRDHUP | POLLHUP | POLLERR)) upstream_ended(link);
        continue;
      }
      for (int side = 0; side < 2; ++side) {
        if (link.closed) break;
        const pollfd& p = fds[2 + 2 * i + side];
        bool from_client = side == 0;
        if ((p.events & POLLIN) && (p.revents & (POLLIN | POLLHUP | POLLERR))) {
          relay(link, from_client);
        } else if (!(p.events & POLLIN) && (p.revents & POLLERR)) {
          if (!from_client) upstream_ended(link);
          close_link(link, true);  // a socket error nobody is reading for: the link is dead
          break;
        }
        if (!link.closed && (p.revents & POLLOUT)) flush(link, /*to_client=*/from_client);
      }
    }
  }
}

void FaultProxy::accept_one() {
  int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
  if (client < 0) return;
  if (refusing_.load(std::memory_order_relaxed)) {
    linger l{1, 0};  // RST at once
    ::setsockopt(client, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    ::close(client);
    refused_count_.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  int upstream = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int rcvbuf = rcvbuf_bytes;
  ::setsockopt(upstream, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_in addr = loopback(upstream_port_);
  // From 127.0.0.2: with no broker on the port, a connect from 127.0.0.1 could be given that
  // very port as its own and connect to itself (loopback simultaneous open), holding the port
  // a restarted broker needs. A different source address makes that impossible.
  sockaddr_in source{};
  source.sin_family = AF_INET;
  source.sin_addr.s_addr = htonl(0x7f000002);
  if (upstream >= 0) ::bind(upstream, reinterpret_cast<sockaddr*>(&source), sizeof source);
  if (upstream < 0 || ::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    if (upstream >= 0) ::close(upstream);
    ::close(client);
    return;
  }
  set_nonblocking(upstream);
  set_nodelay(upstream);
  set_nodelay(client);
  auto link = std::make_unique<Link>();
  link->client = client;
  link->upstream = upstream;
  std::lock_guard lock(mutex_);
  links_.push_back(std::move(link));
  relayed_.notify_all();
}

void FaultProxy::relay(Link& link, bool from_client) {
  int from = from_client ? link.client : link.upstream;
  auto& buffer = from_client ? link.to_upstream : link.to_client;
  std::size_t room = relay_buffer_bytes - std::min(relay_buffer_bytes, buffer.size());
  if (room == 0) return;
  std::size_t used = buffer.size();
  buffer.resize(used + room);
  ssize_t n = ::recv(from, buffer.data() + used, room, 0);
  buffer.resize(used + static_cast<std::size_t>(n > 0 ? n : 0));
  if (n > 0) {
    (from_client ? link.bytes_to_upstream : link.bytes_to_client)
        .fetch_add(static_cast<std::uint64_t>(n), std::memory_order_relaxed);
    if (from_client) {
      std::lock_guard lock(mutex_);  // so that a waiter cannot miss the notification
      relayed_.notify_all();
    }
  } else if (n == 0) {
    (from_client ? link.client_eof : link.upstream_eof) = true;
    if (!from_client) upstream_ended(link);
  } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
    if (!from_client) upstream_ended(link);
    close_link(link, true);  // a reset on one side is passed on as a reset on the other
    return;
  }
  flush(link, /*to_client=*/!from_client);
}

void FaultProxy::flush(Link& link, bool to_client) {
  int to = to_client ? link.client : link.upstream;
  auto& buffer = to_client ? link.to_client : link.to_upstream;
  if (!buffer.empty()) {
    ssize_t n = ::send(to, buffer.data(), buffer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      buffer.erase(buffer.begin(), buffer.begin() + n);
    } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      if (!to_client) upstream_ended(link);
      close_link(link, true);
      return;
    }
  }
  // Pass an end of stream on once everything before it is delivered.
  bool source_ended = to_client ? link.upstream_eof : link.client_eof;
  bool& shut = to_client ? link.client_shut : link.upstream_shut;
  if (buffer.empty() && source_ended && !shut) {
    ::shutdown(to, SHUT_WR);
    shut = true;
  }
  if (link.client_shut && link.upstream_shut) close_link(link, false);
}

void FaultProxy::upstream_ended(Link& link) {
  if (link.upstream_ended.exchange(true)) return;
  std::lock_guard lock(mutex_);  // so that a waiter cannot miss the notification
  relayed_.notify_all();
}

void FaultProxy::close_link(Link& link, bool with_reset) {
  if (link.closed) return;
  link.closed = true;
  for (int fd : {link.client, link.upstream}) {
    if (fd < 0) continue;
    if (with_reset) {
      linger l{1, 0};  // close() now sends RST and discards unsent data
      ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    ::close(fd);
  }
  link.client = link.upstream = -1;
  link.to_client.clear();
  link.to_upstream.clear();
}

}  // namespace brook::test
