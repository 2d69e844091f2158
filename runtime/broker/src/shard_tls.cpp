// TLS connections on a shard, in user space over the same io_uring receive and send as plain
// TCP: received ciphertext goes through the connection's TlsStream and its plaintext into
// process_input(); a send encrypts what start_send() gathered and writes the records, and the
// plaintext counts as sent once they are all written. The handshake is bytes like any other,
// so it never holds up the shard's other connections; one that stalls is closed by the
// connect timeout like any connection that never says Connect.
#include <cerrno>
#include <cstdio>
#include <utility>

#include "shard.hpp"

namespace brook::runtime {

void Shard::receive_tls(Connection& c, std::span<const std::byte> cipher) {
  const bool was_done = c.tls->handshake_done();
  tls_plain_.clear();
  const bool ok = c.tls->receive(cipher, tls_plain_);
  if (!was_done && c.tls->handshake_done()) ++counters_.tls_handshakes;
  if (!tls_plain_.empty()) process_input(c, tls_plain_);
  if (!ok) {
    if (!c.tls->closed_by_peer()) {
      ++counters_.tls_failures;
      std::fprintf(stderr, "brookd: TLS connection closed: %s\n", c.tls->error().c_str());
    }
    begin_close(c);  // after the alert in its output, if any
    return;
  }
  if (!c.tls->output().empty()) mark_for_flush(c);
}

bool Shard::send_tls(Connection& c, std::size_t iovecs) {
  if (c.tls->failed()) return false;
  if (!c.tls->send(std::span<const ::iovec>(c.iov.data(), iovecs))) {
    ++counters_.tls_failures;
    std::fprintf(stderr, "brookd: TLS connection closed: %s\n", c.tls->error().c_str());
    return false;
  }
  write_tls_output(c, c.offered_bytes);
  return true;
}

void Shard::write_tls_output(Connection& c, std::size_t plain_bytes) {
  c.tls_sending.swap(c.tls->output());
  c.tls->output().clear();
  c.tls_written = 0;
  c.tls_partial = false;
  c.tls_plain_offered = plain_bytes;
  c.send_in_flight = true;
  reactor_->send(c.fd, c.tls_sending.data(), c.tls_sending.size(), token_of(c));
}

bool Shard::tls_send_done(Connection& c, int& result) {
  if (result < 0) return false;  // the plain path's failure handling
  if (result > 0) c.last_sent_ns = now_ns();
  counters_.bytes_out += static_cast<std::uint64_t>(result);  // the bytes on the wire, records and all
  c.tls_written += static_cast<std::size_t>(result);
  if (c.tls_written < c.tls_sending.size()) {
    c.tls_partial = true;
    reactor_->send(c.fd, c.tls_sending.data() + c.tls_written, c.tls_sending.size() - c.tls_written, token_of(c));
    return true;
  }
  c.tls_sending.clear();
  result = static_cast<int>(std::exchange(c.tls_plain_offered, 0));
  if (result > 0) return false;
  // Handshake records (or an alert) only: nothing of the session's was in them.
  c.send_in_flight = false;
  if (c.state == ConnectionState::handing_off) {
    finish_handoff(c);
    return true;
  }
  mark_for_flush(c);
  if (c.closing) maybe_release(c);
  return true;
}

}  // namespace brook::runtime
