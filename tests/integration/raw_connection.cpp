#include "raw_connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <variant>

namespace brook::test {

namespace {
using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}
}  // namespace

RawConnection::RawConnection(std::uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0) {
    ::close(fd);
    return;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fd_ = fd;
}

RawConnection::~RawConnection() { close(); }

void RawConnection::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RawConnection::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool RawConnection::send_bytes(std::span<const std::byte> bytes) {
  std::size_t sent = 0;
  while (fd_ >= 0 && sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return fd_ >= 0;
}

bool RawConnection::greet(std::chrono::milliseconds timeout) {
  if (!send_bytes(encoder_.connect("raw-test", "", {}))) return false;
  auto frame = read_frame(timeout);
  if (!frame) return false;
  auto decoded = decoder_.decode(*frame);
  return decoded.ok() && std::holds_alternative<codec::ConnectedMsg>(decoded.message);
}

bool RawConnection::fill(Clock::time_point deadline) {
  if (fd_ < 0 || eof_) return false;
  pollfd p{fd_, POLLIN, 0};
  int rc;
  do rc = ::poll(&p, 1, remaining_ms(deadline));
  while (rc < 0 && errno == EINTR);
  if (rc <= 0) return false;
  std::byte chunk[65536];
  ssize_t n;
  do n = ::recv(fd_, chunk, sizeof chunk, 0);
  while (n < 0 && errno == EINTR);
  if (n <= 0) {
    eof_ = true;  // EOF, or a reset (ECONNRESET): either way the peer ended the stream
    return false;
  }
  buffer_.insert(buffer_.end(), chunk, chunk + n);
  return true;
}

std::optional<std::vector<std::byte>> RawConnection::read_frame(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto split = codec::split_frame(buffer_, 0xffffffffu);
    if (split.status == codec::SplitStatus::frame) {
      std::vector<std::byte> frame(buffer_.begin(), buffer_.begin() + split.size);
      buffer_.erase(buffer_.begin(), buffer_.begin() + split.size);
      return frame;
    }
    if (split.status != codec::SplitStatus::need_more) return std::nullopt;
    if (!fill(deadline)) return std::nullopt;
  }
}

std::optional<ErrorReport> RawConnection::read_until_error(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    auto frame =
        read_frame(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()));
    if (!frame) return std::nullopt;
    auto decoded = decoder_.decode(*frame);
    if (!decoded.ok()) return std::nullopt;
    if (auto* e = std::get_if<codec::ErrorMsg>(&decoded.message))
      return ErrorReport{e->code, e->request_id, std::string(e->message)};
  }
  return std::nullopt;
}

bool RawConnection::wait_for_close(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!eof_ && Clock::now() < deadline) {
    buffer_.clear();
    fill(deadline);
  }
  return eof_;
}

}  // namespace brook::test
