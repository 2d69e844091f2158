// tls:// connections, the client's side: the context (CA, own certificate) made once by
// connect(), the handshake on each new connection, made where the TCP connect is (the
// caller's thread in connect(), the client thread on a reconnection) and bounded by
// connect_timeout, then the records in and out over the client loop's receive and send.
//
// Threads: make_tls_context() on connect()'s caller, before the loop has the session; the
// rest on whichever thread opens the connection (the caller, then the client thread), never
// two at once. Callers never write to a TLS socket themselves (connect() turns
// send_from_caller off): one thread uses a stream at a time.
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "client_impl.hpp"

namespace brook {

using client_detail::error_status;

Status Client::Impl::make_tls_context() {
  bool any = false;
  for (const auto& s : servers) any |= s.tls;
  if (!any) return Status::ok();
  transport::TlsOptions o;
  o.ca_file = options.tls_ca_file;
  o.cert_file = options.tls_cert_file;
  o.key_file = options.tls_key_file;
  o.verify_peer = options.tls_verify;
  std::string error;
  tls_context = transport::TlsContext::client(o, error);
  if (!tls_context) return error_status(ErrorCode::invalid_value, "tls: " + error);
  options.send_from_caller = false;
  return Status::ok();
}

// Blocking, as the TCP connect before it: the loop's other sessions wait at most
// connect_timeout, as they do for a connect.
bool Client::Impl::tls_handshake(const client_detail::ServerAddress& server, std::string& error) {
  tls = std::make_unique<transport::TlsStream>(tls_context, server.tcp->host);
  const auto deadline = std::chrono::steady_clock::now() + options.connect_timeout;
  auto remaining_ms = [&] {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    return static_cast<int>(std::max<std::int64_t>(left.count(), 0));
  };
  auto flush = [&]() -> bool {
    auto& out = tls->output();
    std::size_t at = 0;
    while (at < out.size()) {
      const ssize_t n = ::send(fd, out.data() + at, out.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        at += static_cast<std::size_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, remaining_ms()) <= 0) return false;
        continue;
      }
      return false;
    }
    out.clear();
    return true;
  };
  std::vector<std::byte> plain;
  std::byte buffer[16384];
  tls->start();
  for (;;) {
    if (!flush()) {
      error = "TLS handshake with " + server.url + ": cannot send (" + std::strerror(errno) + ")";
      return false;
    }
    if (tls->failed()) {
      error = "TLS handshake with " + server.url + " failed: " + tls->error();
      return false;
    }
    if (tls->handshake_done()) return true;
    pollfd p{fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, remaining_ms());
    if (ready <= 0) {
      error = "TLS handshake with " + server.url + ": no answer within the connect timeout";
      return false;
    }
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
    if (n <= 0) {
      error = "TLS handshake with " + server.url + ": the connection closed (is it a TLS port?)";
      return false;
    }
    tls->receive({buffer, static_cast<std::size_t>(n)}, plain);
  }
}

void Client::Impl::receive_tls(std::span<const std::byte> cipher) {
  tls_plain.clear();
  const bool ok = tls->receive(cipher, tls_plain);
  if (!tls_plain.empty()) on_bytes(tls_plain);
  // Records the stream owes the peer (a key update's answer) go with the next send.
  if (!ok) lost("TLS: " + tls->error());
}

void Client::Impl::send_tls() {
  const std::span<const std::byte> plain(sending.data() + sending_offset, sending.size() - sending_offset);
  if (!tls->send(plain)) {
    send_in_flight = true;  // sent() ends it, as for a failed send
    sent(-EPROTO);
    return;
  }
  wire_sending.swap(tls->output());
  tls->output().clear();
  wire_written = 0;
  wire_stream_offered = plain.size();
  send_in_flight = true;
  io->send(fd, wire_sending.data(), wire_sending.size(), token_base);
}

bool Client::Impl::wire_send_done(int& result) {
  if (result < 0 || !tls) return false;
  wire_written += static_cast<std::size_t>(result);
  if (wire_written < wire_sending.size()) {
    io->send(fd, wire_sending.data() + wire_written, wire_sending.size() - wire_written, token_base);
    return true;
  }
  wire_sending.clear();
  result = static_cast<int>(std::exchange(wire_stream_offered, 0));
  return false;
}

}  // namespace brook
