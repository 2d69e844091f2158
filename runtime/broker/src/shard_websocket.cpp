// WebSocket connections on a shard (ws.listen, ws.tls_listen): the same sessions and frames
// as over TCP, carried in binary messages. Received bytes (plaintext, for wss) go through the
// connection's WebSocketServer: the upgrade first, then frames, whose payloads are Brook's
// stream for process_input(); sends wrap the stream in a binary frame (shard_wire.cpp). A
// stalled upgrade meets the connect timeout like a connection that never says Connect.
//
// Thread: the shard's own.
#include <cstdio>

#include "shard.hpp"

namespace brook::runtime {

void Shard::receive_ws(Connection& c, std::span<const std::byte> bytes) {
  const bool was_open = c.ws->upgraded();
  ws_stream_.clear();
  const bool ok = c.ws->receive(bytes, ws_stream_);
  if (!was_open && c.ws->open()) ++counters_.ws_upgrades;
  if (!ws_stream_.empty()) process_input(c, ws_stream_);
  if (!ok) {
    if (!c.ws->closed_by_peer() && !c.ws->served_file()) {
      ++counters_.ws_failures;
      log_.line(now_ns(), "brookd: WebSocket connection closed: %s", c.ws->error().c_str());
    }
    begin_close(c);  // after the refusal or close frame in its output
    return;
  }
  if (!c.ws->output().empty()) mark_for_flush(c);
}

bool Shard::send_ws_close(Connection& c) {
  if (!c.ws || !c.ws->open() || (c.tls && c.tls->failed())) return false;
  // The broker is stopping: "going away"; anything else (the session ended, a protocol error
  // explained by the Error frame before this) is a normal end of the conversation.
  c.ws->close(draining_ ? transport::CloseCode::going_away : transport::CloseCode::normal, "");
  mark_for_flush(c);
  return true;
}

}  // namespace brook::runtime
