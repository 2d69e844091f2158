#include "fake_broker.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>

namespace brook::test {

FakeBroker::FakeBroker() {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listen_fd_, 4) != 0 ||
      ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0)
    return;
  port_ = ntohs(addr.sin_port);
}

FakeBroker::~FakeBroker() {
  if (fd_ >= 0) ::close(fd_);
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

bool FakeBroker::accept(std::chrono::milliseconds timeout) {
  if (!listening()) return false;
  pollfd p{listen_fd_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
  fd_ = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
  return fd_ >= 0;
}

bool FakeBroker::greet(std::chrono::milliseconds timeout) {
  if (!next<codec::ConnectMsg>(timeout)) return false;
  std::array<std::byte, codec::session_token_bytes> token{};
  for (std::size_t i = 0; i < token.size(); ++i) token[i] = static_cast<std::byte>(0xa0 + i);
  codec::ConnectedMsg m;
  m.session_id = "anon/-1";
  m.max_frame_bytes = codec::default_max_frame_bytes;
  m.token = token;
  m.ping_interval_ms = 90'000;
  m.next_sequence = next_sequence_;
  return send_bytes(encoder_.connected(m));
}

bool FakeBroker::send_sequenced(std::span<const std::byte> control_frame) {
  std::vector<std::byte> frame(control_frame.begin(), control_frame.end());
  codec::set_frame_flags(frame.data(), codec::frame_flag_sequenced);
  ++next_sequence_;
  return send_bytes(frame);
}

bool FakeBroker::send_update(std::uint32_t alias, std::uint64_t topic_seq,
                             codec::UpdateEncoding encoding, std::span<const std::byte> body,
                             std::uint16_t flags) {
  std::vector<std::byte> frame(codec::update_head_bytes + body.size());
  codec::write_update_head(frame.data(), body.size(), next_sequence_++, topic_seq, alias,
                           encoding, flags);
  std::copy(body.begin(), body.end(), frame.begin() + codec::update_head_bytes);
  return send_bytes(frame);
}

bool FakeBroker::send_bytes(std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
  return true;
}

void FakeBroker::hang_up() {
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
}

bool FakeBroker::read_frame(std::chrono::steady_clock::time_point deadline) {
  if (fd_ < 0) return false;
  for (;;) {
    auto split = codec::split_frame(buffer_, codec::default_max_frame_bytes);
    if (split.status == codec::SplitStatus::frame) {
      frame_.assign(buffer_.begin(), buffer_.begin() + split.size);
      buffer_.erase(buffer_.begin(), buffer_.begin() + split.size);
      decoded_ = decoder_.decode(frame_);
      return decoded_.ok();
    }
    if (split.status != codec::SplitStatus::need_more) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd_, POLLIN, 0};
    int ready = ::poll(&p, 1, static_cast<int>(left.count()));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;
    std::array<std::byte, 65536> chunk;
    ssize_t n = ::recv(fd_, chunk.data(), chunk.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    buffer_.insert(buffer_.end(), chunk.begin(), chunk.begin() + n);
  }
}

}  // namespace brook::test
