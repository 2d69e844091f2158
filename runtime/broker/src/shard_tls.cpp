// TLS connections on a shard, in user space over the same io_uring receive and send as plain
// TCP: received ciphertext goes through the connection's TlsStream and its plaintext on (to
// the WebSocket layer for wss, else to process_input()); sends go through shard_wire.cpp. The
// handshake is bytes like any other, so it never holds up the shard's other connections; one
// that stalls is closed by the connect timeout like any connection that never says Connect.
//
// Thread: the shard's own.
#include <cstdio>

#include "shard.hpp"

namespace brook::runtime {

void Shard::receive_tls(Connection& c, std::span<const std::byte> cipher) {
  const bool was_done = c.tls->handshake_done();
  tls_plain_.clear();
  const bool ok = c.tls->receive(cipher, tls_plain_);
  if (!was_done && c.tls->handshake_done()) ++counters_.tls_handshakes;
  if (!tls_plain_.empty()) {
    if (c.ws) receive_ws(c, tls_plain_);
    else process_input(c, tls_plain_);
  }
  if (!ok) {
    if (!c.tls->closed_by_peer()) tls_failed(c);
    begin_close(c);  // after the alert in its output, if any
    return;
  }
  if (!c.tls->output().empty()) mark_for_flush(c);
}

void Shard::tls_failed(Connection& c) {
  ++counters_.tls_failures;
  log_.line(now_ns(), "brookd: TLS connection closed: %s", c.tls->error().c_str());
}

}  // namespace brook::runtime
