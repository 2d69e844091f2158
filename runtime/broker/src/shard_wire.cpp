// Connections with layers between Brook's stream and the socket: TLS, a WebSocket, or a
// WebSocket inside TLS. Sends go through the layers into one buffer, `wire_sending`, which
// io_uring writes as for plain TCP, again from where a short write stopped; the stream bytes
// it carries count as sent (on_send's accounting) only once all of it is written. The layers'
// own bytes (a TLS handshake, a WebSocket upgrade's answer, pongs, alerts, close frames) go
// first in each write, and alone when no stream bytes wait.
//
// Thread: the shard's own.
#include <cerrno>
#include <utility>

#include "shard.hpp"

namespace brook::runtime {

bool Shard::layers_mute(const Connection& c) noexcept {
  return (c.tls && (c.tls->failed() || !c.tls->handshake_done())) || (c.ws && !c.ws->open());
}

bool Shard::layers_have_output(const Connection& c) noexcept {
  // A WebSocket's bytes inside a failed TLS stream can never go: they do not count.
  const bool ws_can_go = !c.tls || !c.tls->failed();
  return (c.tls && !c.tls->output().empty()) || (c.ws && ws_can_go && !c.ws->output().empty());
}

void Shard::write_layer_output(Connection& c) {
  if (c.ws && !c.ws->output().empty()) {
    if (!c.tls) {
      c.wire_sending.swap(c.ws->output());
      c.ws->output().clear();
      write_wire(c, 0);
      return;
    }
    if (!c.tls->failed() && !c.tls->send(std::span<const std::byte>(c.ws->output()))) tls_failed(c);
    c.ws->output().clear();
  }
  if (c.tls && !c.tls->output().empty()) {
    c.wire_sending.swap(c.tls->output());
    c.tls->output().clear();
    write_wire(c, 0);
  }
}

bool Shard::send_layered(Connection& c, std::size_t iovecs) {
  std::span<const ::iovec> stream(c.iov.data(), iovecs);
  std::byte header[10];
  if (c.ws) {
    // The layer's pending frames, then the stream as one binary message.
    layered_iov_.clear();
    if (!c.ws->output().empty()) layered_iov_.push_back({c.ws->output().data(), c.ws->output().size()});
    layered_iov_.push_back({header, transport::WebSocketServer::frame_header(c.offered_bytes, header)});
    layered_iov_.insert(layered_iov_.end(), stream.begin(), stream.end());
    stream = layered_iov_;
  }
  if (c.tls) {
    if (c.tls->failed()) return false;
    if (!c.tls->send(stream)) {
      tls_failed(c);
      return false;
    }
    if (c.ws) c.ws->output().clear();
    c.wire_sending.swap(c.tls->output());
    c.tls->output().clear();
  } else {
    c.wire_sending.clear();
    for (const ::iovec& v : stream) {
      const auto* bytes = static_cast<const std::byte*>(v.iov_base);
      c.wire_sending.insert(c.wire_sending.end(), bytes, bytes + v.iov_len);
    }
    c.ws->output().clear();
  }
  write_wire(c, c.offered_bytes);
  return true;
}

void Shard::write_wire(Connection& c, std::size_t stream_bytes) {
  c.wire_written = 0;
  c.wire_partial = false;
  c.wire_stream_offered = stream_bytes;
  c.send_in_flight = true;
  c.send_started_ns = send_clock_ns_;
  reactor_->send(c.fd, c.wire_sending.data(), c.wire_sending.size(), token_of(c));
}

bool Shard::wire_send_done(Connection& c, int& result) {
  if (result < 0) return false;  // the plain path's failure handling
  if (result > 0) c.last_sent_ns = now_ns();
  counters_.bytes_out += static_cast<std::uint64_t>(result);  // the bytes on the wire, layers and all
  c.wire_written += static_cast<std::size_t>(result);
  if (c.wire_written < c.wire_sending.size()) {
    c.wire_partial = true;
    reactor_->send(c.fd, c.wire_sending.data() + c.wire_written, c.wire_sending.size() - c.wire_written,
                   token_of(c));
    return true;
  }
  c.wire_sending.clear();
  result = static_cast<int>(std::exchange(c.wire_stream_offered, 0));
  if (result > 0) return false;
  // The layers' own bytes only: nothing of the session's was in them.
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
