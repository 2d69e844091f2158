#include "raw_connection.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
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
  if (ssl_) SSL_free(ssl_);
  if (ssl_ctx_) SSL_CTX_free(ssl_ctx_);
  ssl_ = nullptr;
  ssl_ctx_ = nullptr;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RawConnection::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool RawConnection::send_bytes(std::span<const std::byte> bytes) {
  return websocket_ ? send_websocket_frame(0x82, bytes) : send_raw(bytes);
}

bool RawConnection::send_raw(std::span<const std::byte> bytes) {
  std::size_t sent = 0;
  while (fd_ >= 0 && sent < bytes.size()) {
    ssize_t n;
    if (ssl_) {
      n = SSL_write(ssl_, bytes.data() + sent, static_cast<int>(bytes.size() - sent));
    } else {
      n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
    }
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return fd_ >= 0;
}

bool RawConnection::start_tls(const std::string& ca_file, const std::string& host) {
  if (fd_ < 0) return false;
  // Blocking reads and writes with a bound: a stalled broker fails the handshake, not the test.
  const ::timeval ten_seconds{10, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &ten_seconds, sizeof ten_seconds);
  ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &ten_seconds, sizeof ten_seconds);
  ssl_ctx_ = SSL_CTX_new(TLS_client_method());
  if (!ssl_ctx_ || SSL_CTX_load_verify_locations(ssl_ctx_, ca_file.c_str(), nullptr) != 1) return false;
  SSL_CTX_set_verify(ssl_ctx_, SSL_VERIFY_PEER, nullptr);
  ssl_ = SSL_new(ssl_ctx_);
  SSL_set_fd(ssl_, fd_);
  SSL_set_tlsext_host_name(ssl_, host.c_str());
  SSL_set1_host(ssl_, host.c_str());
  return SSL_connect(ssl_) == 1;
}

std::string RawConnection::upgrade_to_websocket(std::string_view target, std::string_view origin,
                                                std::chrono::milliseconds timeout) {
  std::string request = "GET " + std::string(target) +
                        " HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Protocol: brook\r\n";
  if (!origin.empty()) request += "Origin: " + std::string(origin) + "\r\n";
  request += "\r\n";
  return http_request(request, timeout);
}

std::string RawConnection::http_request(std::string_view request, std::chrono::milliseconds timeout) {
  if (!send_raw(std::as_bytes(std::span(request.data(), request.size())))) return {};
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    const std::string_view seen(reinterpret_cast<const char*>(ws_raw_.data()), ws_raw_.size());
    if (const std::size_t end = seen.find("\r\n\r\n"); end != std::string_view::npos) {
      const std::string status(seen.substr(0, seen.find("\r\n")));
      websocket_ = status.find(" 101 ") != std::string::npos &&
                   seen.substr(0, end).find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string_view::npos;
      // What follows the head: frames once upgraded, a refusal's text otherwise.
      ws_raw_.erase(ws_raw_.begin(), ws_raw_.begin() + static_cast<std::ptrdiff_t>(end + 4));
      if (!websocket_) {
        buffer_.insert(buffer_.end(), ws_raw_.begin(), ws_raw_.end());
        ws_raw_.clear();
      }
      return status;
    }
    if (!read_some(deadline, ws_raw_)) return {};
  }
}

bool RawConnection::send_websocket_frame(std::uint8_t first_byte, std::span<const std::byte> payload, bool masked) {
  std::vector<std::byte> frame{std::byte{first_byte}};
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  const std::size_t n = payload.size();
  if (n < 126) {
    frame.push_back(std::byte(mask_bit | n));
  } else if (n <= 0xffff) {
    frame.push_back(std::byte(mask_bit | 126));
    frame.push_back(std::byte(n >> 8));
    frame.push_back(std::byte(n & 0xff));
  } else {
    frame.push_back(std::byte(mask_bit | 127));
    for (int k = 7; k >= 0; --k) frame.push_back(std::byte((static_cast<std::uint64_t>(n) >> (8 * k)) & 0xff));
  }
  const std::byte key[4] = {std::byte{0x5a}, std::byte{0x13}, std::byte{0xc7}, std::byte{0x88}};
  if (masked) frame.insert(frame.end(), key, key + 4);
  for (std::size_t i = 0; i < n; ++i) frame.push_back(masked ? payload[i] ^ key[i % 4] : payload[i]);
  return send_raw(frame);
}

void RawConnection::unwrap_websocket() {
  std::size_t at = 0;
  while (!ws_closed_ && ws_raw_.size() - at >= 2) {
    const auto b0 = std::to_integer<std::uint8_t>(ws_raw_[at]);
    const auto b1 = std::to_integer<std::uint8_t>(ws_raw_[at + 1]);
    std::size_t head = 2;
    std::uint64_t length = b1 & 0x7f;
    if (length >= 126) {
      const std::size_t n = length == 126 ? 2 : 8;
      if (ws_raw_.size() - at < 2 + n) break;
      length = 0;
      for (std::size_t k = 0; k < n; ++k) length = (length << 8) | std::to_integer<std::uint8_t>(ws_raw_[at + 2 + k]);
      head += n;
    }
    if (b1 & 0x80) head += 4;  // a server must not mask; read it anyway
    if (ws_raw_.size() - at < head + length) break;
    std::vector<std::byte> payload(ws_raw_.begin() + static_cast<std::ptrdiff_t>(at + head),
                                   ws_raw_.begin() + static_cast<std::ptrdiff_t>(at + head + length));
    if (b1 & 0x80)
      for (std::size_t i = 0; i < payload.size(); ++i) payload[i] ^= ws_raw_[at + head - 4 + i % 4];
    at += head + static_cast<std::size_t>(length);
    switch (b0 & 0x0f) {
      case 0: case 1: case 2: buffer_.insert(buffer_.end(), payload.begin(), payload.end()); break;
      case 8:
        ws_closed_ = true;
        if (payload.size() >= 2)
          close_code_ = static_cast<std::uint16_t>((std::to_integer<int>(payload[0]) << 8) | std::to_integer<int>(payload[1]));
        break;
      case 9: send_websocket_frame(0x8a, payload); break;
      default: break;
    }
  }
  ws_raw_.erase(ws_raw_.begin(), ws_raw_.begin() + static_cast<std::ptrdiff_t>(at));
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
  if (!websocket_) return read_some(deadline, buffer_);
  const std::size_t before = buffer_.size();
  for (;;) {
    unwrap_websocket();
    if (buffer_.size() > before) return true;
    if (ws_closed_) {
      eof_ = true;  // the close frame ends the stream
      return false;
    }
    if (!read_some(deadline, ws_raw_)) return false;
  }
}

bool RawConnection::read_some(Clock::time_point deadline, std::vector<std::byte>& into) {
  if (fd_ < 0 || eof_) return false;
  if (!ssl_ || SSL_pending(ssl_) == 0) {
    pollfd p{fd_, POLLIN, 0};
    int rc;
    do rc = ::poll(&p, 1, remaining_ms(deadline));
    while (rc < 0 && errno == EINTR);
    if (rc <= 0) return false;
  }
  std::byte chunk[65536];
  ssize_t n;
  if (ssl_) {
    n = SSL_read(ssl_, chunk, sizeof chunk);
  } else {
    do n = ::recv(fd_, chunk, sizeof chunk, 0);
    while (n < 0 && errno == EINTR);
  }
  if (n <= 0) {
    eof_ = true;  // EOF, or a reset (ECONNRESET): either way the peer ended the stream
    return false;
  }
  into.insert(into.end(), chunk, chunk + n);
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
