// Connections on a shard: multishot receive, frame reassembly, dispatch of inbound frames,
// one gathered send per connection per turn, and an orderly close that never frees a
// connection while the kernel still holds one of its buffers.
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <variant>

#include "brook/runtime/topic_path.hpp"
#include "brook/transport/tcp.hpp"
#include "shard.hpp"

namespace brook::runtime {

namespace {
constexpr std::size_t max_iovecs = 1024;  // IOV_MAX on Linux
constexpr std::uint32_t generation_mask = (1u << 24) - 1;

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

}  // namespace

Connection* Shard::connection_for(std::uint64_t token) {
  auto slot = static_cast<std::uint32_t>(token & 0xffffffffu);
  auto generation = static_cast<std::uint32_t>(token >> 32);
  if (slot >= connections_.size() || !connections_[slot]) return nullptr;
  Connection* c = connections_[slot].get();
  return c->generation == generation ? c : nullptr;
}

void Shard::adopt_connection(int fd, SharedBuffer* received, std::uint8_t flags, void* link,
                             transport::WebSocketServer* handed_ws) {
  std::unique_ptr<ShmLink> shm(flags & connection_shm_link ? static_cast<ShmLink*>(link) : nullptr);
  std::unique_ptr<transport::TlsStream> tls(flags & connection_tls_stream ? static_cast<transport::TlsStream*>(link)
                                                                         : nullptr);
  if (flags & connection_tls) {
    std::shared_ptr<const transport::TlsContext> context;
    {
      std::lock_guard lock(mesh_.reload_mutex);
      context = mesh_.tls;
    }
    if (context) tls = std::make_unique<transport::TlsStream>(std::move(context));
  }
  std::unique_ptr<transport::WebSocketServer> ws(flags & connection_ws_stream ? handed_ws : nullptr);
  if (flags & connection_ws) {
    std::lock_guard lock(mesh_.reload_mutex);  // SIGHUP may replace the static files
    ws = std::make_unique<transport::WebSocketServer>(mesh_.websocket);
  }
  if (open_connections_ >= options_.max_connections_per_shard) {
    ++counters_.connections_refused;
    ::close(fd);
    if (received) received->release();
    return;
  }
  if (flags & connection_shm) {
    std::string why;
    shm = accept_shm_peer(fd, options_, mesh_.broadcast_read_only_fds, why);
    if (!shm) {
      ++counters_.connections_refused;
      log_.line(now_ns(), "brookd: %s", why.c_str());
      ::close(fd);
      return;
    }
  } else if (!received && !shm) {
    transport::tune_connection(fd);
  }
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(connections_.size());
    connections_.emplace_back();
  }
  if (slot_generation_.size() <= slot) slot_generation_.resize(slot + 1, 0);
  std::uint32_t generation = slot_generation_[slot] = (slot_generation_[slot] + 1) & generation_mask;
  connections_[slot] = std::make_unique<Connection>();
  Connection& c = *connections_[slot];
  c.fd = fd;
  c.slot = slot;
  c.generation = generation;
  c.opened_ns = c.last_heard_ns = c.last_sent_ns = now_ns();
  c.tls = std::move(tls);
  c.ws = std::move(ws);
  ++open_connections_;
  if (shm) {
    c.shm = std::move(shm);
    shm_slots_.push_back(slot);
    arm_doorbell(c);
  }
  if (received) {
    // Handed over by the shard that accepted it: what it read (Connect first) comes first.
    process_input(c, received->bytes());
    received->release();
    if (c.closing) {
      maybe_release(c);
      return;
    }
  }
  if (layers_have_output(c)) mark_for_flush(c);  // a handed-over upgrade's answer, say
  if (c.recv_armed || c.paused || c.state == ConnectionState::handing_off) return;
  c.recv_armed = true;
  reactor_->recv_multishot(fd, token_of(c));
}

void Shard::on_recv(Connection& c, const transport::Completion& completion) {
  if (completion.result > 0 && c.shm) {
    // A shm client's frames come through its ring; the socket only tells us it is gone.
  } else if (completion.result > 0) {
    counters_.bytes_in += static_cast<std::uint64_t>(completion.result);
    c.last_heard_ns = now_ns();
    c.ping_sent_ns = 0;  // any bytes prove the peer alive
    if (!c.closing) {
      if (c.tls) receive_tls(c, completion.data);
      else if (c.ws) receive_ws(c, completion.data);
      else process_input(c, completion.data);
    }
  }
  if (completion.more) return;
  c.recv_armed = false;
  if (c.closing) {
    maybe_release(c);
    return;
  }
  if (c.state == ConnectionState::handing_off) {
    finish_handoff(c);
    return;
  }
  if (completion.result > 0 || completion.result == -ENOBUFS) {
    // The multishot receive ended without an error (or ran out of provided buffers, which
    // is back-pressure): arm it again unless input is paused.
    if (!c.paused) {
      c.recv_armed = true;
      reactor_->recv_multishot(c.fd, token_of(c));
    }
    return;
  }
  if (completion.result == -ECANCELED) {
    // Cancelled to pause input. A resume_input() that ran before this completion found the
    // receive still armed and left re-arming it to us.
    if (!c.paused) {
      c.recv_armed = true;
      reactor_->recv_multishot(c.fd, token_of(c));
    }
    return;
  }
  // EOF or a socket error: the connection is gone; its session (if any) waits for the
  // client to come back. A shm client that is gone reads nothing more from its ring, but
  // what it wrote there before it went (a Close, its last publishes) is read first.
  if (c.shm) {
    read_shm(c);
    c.send_failed = true;
  }
  begin_close(c);
}

void Shard::process_input(Connection& c, std::span<const std::byte> data) {
  if (draining_) return;  // stopping: what the client sent after our last Received comes again
  if (!accepts_frames(c)) {
    // Handing off or waiting for the session: keep the bytes, in order, for whoever goes on.
    hold_input(c, data);
    return;
  }
  if (c.paused || input_stopped(c)) {
    hold_input(c, data);
    if (!c.paused) {
      c.paused = true;
      paused_.push_back(c.slot);
      if (c.recv_armed) reactor_->cancel(transport::Op::recv, token_of(c));
    }
    return;
  }
  if (!c.assembly.empty()) {
    // Complete the frame that straddled the previous receive buffer, copying only its bytes.
    if (c.assembly.size() < codec::frame_header_bytes) {
      std::size_t take = std::min(codec::frame_header_bytes - c.assembly.size(), data.size());
      c.assembly.insert(c.assembly.end(), data.begin(), data.begin() + take);
      data = data.subspan(take);
      if (c.assembly.size() < codec::frame_header_bytes) return;
    }
    auto split = codec::split_frame(c.assembly, options_.max_frame_bytes);
    if (split.status == codec::SplitStatus::need_more) {
      std::size_t take = std::min<std::size_t>(split.size - c.assembly.size(), data.size());
      c.assembly.insert(c.assembly.end(), data.begin(), data.begin() + take);
      data = data.subspan(take);
      split = codec::split_frame(c.assembly, options_.max_frame_bytes);
      if (split.status == codec::SplitStatus::need_more) return;
    }
    std::size_t used = process_frames(c, c.assembly);
    if (c.closing) return;
    c.assembly.erase(c.assembly.begin(), c.assembly.begin() + static_cast<std::ptrdiff_t>(used));
    if (!accepts_frames(c)) {
      hold_input(c, data);
      return;
    }
    if (!c.assembly.empty()) {
      // Back-pressure stopped us mid-way: keep everything, in order, for resume_paused().
      process_input(c, data);
      return;
    }
  }
  std::size_t used = process_frames(c, data);
  if (c.closing) return;
  auto rest = data.subspan(used);
  if (input_stopped(c) && !rest.empty()) {
    process_input(c, rest);  // pauses and keeps the rest
    return;
  }
  c.assembly.assign(rest.begin(), rest.end());
}

// Appends bytes that must wait: into the shard's spare buffer if the connection's own would
// have to grow and the spare is large enough.
void Shard::hold_input(Connection& c, std::span<const std::byte> data) {
  const std::size_t needed = c.assembly.size() + data.size();
  if (needed > c.assembly.capacity() && spare_input_.capacity() >= needed) trade_with_spare(c, 0);
  c.assembly.insert(c.assembly.end(), data.begin(), data.end());
}

// The connection's bytes from `from` on go into the spare's buffer, which becomes the
// connection's; the spare keeps the connection's old buffer, emptied.
void Shard::trade_with_spare(Connection& c, std::size_t from) {
  spare_input_.assign(c.assembly.begin() + static_cast<std::ptrdiff_t>(from), c.assembly.end());
  c.assembly.swap(spare_input_);
  spare_input_.clear();
  spare_input_used_ns_ = now_ns();
}

bool Shard::accepts_frames(const Connection& c) const noexcept {
  return c.state == ConnectionState::greeting || c.state == ConnectionState::attached;
}

std::size_t Shard::process_frames(Connection& c, std::span<const std::byte> bytes) {
  std::size_t used = 0;
  while (!c.closing && !input_stopped(c) && accepts_frames(c)) {
    auto split = codec::split_frame(bytes.subspan(used), options_.max_frame_bytes);
    if (split.status == codec::SplitStatus::need_more) break;
    if (split.status == codec::SplitStatus::too_large) {
      protocol_error(c, codec::ErrorCode::frame_too_large,
                     "frame of " + std::to_string(split.size) + " bytes exceeds the limit of " +
                         std::to_string(options_.max_frame_bytes));
      break;
    }
    if (split.status == codec::SplitStatus::malformed) {
      protocol_error(c, codec::ErrorCode::malformed_frame, "malformed frame header");
      break;
    }
    handle_frame(c, bytes.subspan(used, split.size));
    // A Connect for another shard's session stays unprocessed: it travels with the socket.
    if (c.state == ConnectionState::handing_off) break;
    ++counters_.frames_in;
    used += split.size;
  }
  if (c.session && !c.closing) report_received(c, *c.session);
  return used;
}

void Shard::handle_frame(Connection& c, std::span<const std::byte> frame) {
  codec::Decoded decoded = decoder_.decode(frame);
  if (!decoded.ok()) {
    protocol_error(c, codec::ErrorCode::malformed_frame,
                   std::string("malformed frame: ") + std::string(codec::to_string(decoded.error)));
    return;
  }
  if (c.state == ConnectionState::greeting) {
    auto* connect = std::get_if<codec::ConnectMsg>(&decoded.message);
    if (!connect) {
      protocol_error(c, codec::ErrorCode::not_connected, "the first frame must be connect");
      return;
    }
    on_connect(c, *connect);
    return;
  }
  // Connection-level frames, then the session's.
  if (auto* ping = std::get_if<codec::PingMsg>(&decoded.message)) {
    send_control(c, encoder_.pong(ping->id, ping->sent_ns));
    return;
  }
  if (std::holds_alternative<codec::PongMsg>(decoded.message)) return;  // liveness only
  if (std::holds_alternative<codec::CloseMsg>(decoded.message)) {
    // Every frame before the Close was taken: the client may forget them all (its queue
    // file). With a journal only once they are durable (on_durable_through ends it then).
    Session& s = *c.session;
    if (journal_ && !journal_->failure().empty() && s.reported_inbound_seq < s.inbound_seq) {
      end_session(s, codec::ErrorCode::storage_failed, journal_->failure());  // never durable now
      return;
    }
    if (journal_ && s.reported_inbound_seq < s.inbound_seq) {
      s.closing = true;
      report_durable_received(s);
      if (s.reported_inbound_seq < s.inbound_seq) return;
    } else {
      send_control(c, encoder_.received(s.inbound_seq));
    }
    end_session(s, codec::ErrorCode::none, {});
    return;
  }
  handle_session_frame(c, *c.session, decoded, frame);
}

void Shard::handle_session_frame(Connection& c, Session& s, const codec::Decoded& decoded,
                                 std::span<const std::byte> frame) {
  // A frame sent again after a resumption that was taken before it: counted, not applied.
  if (s.inbound_seq < s.skip_through && !std::holds_alternative<codec::ResumeSubscriptionsMsg>(decoded.message) &&
      !std::holds_alternative<codec::ConnectMsg>(decoded.message)) {
    ++s.inbound_seq;
    return;
  }
  std::visit(
      overloaded{
          [&](const codec::PublishMsg& m) {
            ++s.inbound_seq;
            if (memory_state_ == MemoryState::refusing) {
              ++counters_.memory_refusals;
              refuse(s, codec::ErrorCode::memory_limit, m.request_id,
                     "broker memory limit reached (" + std::to_string(broker_memory_used_ >> 20) + " of " +
                         std::to_string(mesh_.memory_budget >> 20) +
                         " MiB, limits.max_memory_bytes): publish to '" + std::string(m.path) + "' refused");
              return;
            }
            if (s.last_publish_path.empty() || m.path != s.last_publish_path) {
              if (!is_valid_topic_path(m.path)) {
                refuse(s, codec::ErrorCode::invalid_path, m.request_id,
                       "invalid topic path '" + std::string(m.path) + "'");
                return;
              }
              if (!permitted(s, Operation::publish, m.path, m.request_id)) return;
              s.last_publish_path = m.path;
              s.last_publish_owner = owner_of(m.path);
            }
            SharedBuffer* copy = pool_.allocate(frame.size());
            std::memcpy(copy->data(), frame.data(), frame.size());
            copy->set_received_ns(received_clock_ns_);
            send_to(s.last_publish_owner, {ShardMessageKind::publish, 0, 0, m.request_id,
                                           session_token(s), s.inbound_seq, s.publisher_key, copy});
            s.unprobed_owners |= std::uint64_t{1} << s.last_publish_owner;
          },
          [&](const codec::CreateTopicMsg& m) {
            ++s.inbound_seq;
            if (!is_valid_topic_path(m.path)) {
              refuse(s, codec::ErrorCode::invalid_path, m.request_id,
                     "invalid topic path '" + std::string(m.path) + "'");
              return;
            }
            if (!permitted(s, Operation::publish, m.path, m.request_id)) return;
            SharedBuffer* copy = pool_.allocate(codec::publish_frame_bytes(m.path.size(), 0));
            codec::write_publish(copy->data(), m.request_id, m.path, m.properties.type,
                                 std::span<const std::byte>{});
            const auto history_plus_one = static_cast<std::uint32_t>(std::max(m.properties.history, -1) + 1);
            s.unprobed_owners |= std::uint64_t{1} << owner_of(m.path);
            send_to(owner_of(m.path), {ShardMessageKind::create_topic,
                                       topic_property_flags(m.properties), 0, m.request_id,
                                       session_token(s), m.properties.history_bytes,
                                       std::uint64_t{m.properties.history_age_ms} << 32 | history_plus_one,
                                       copy});
          },
          [&](const codec::RefreshMsg& m) {
            ++s.inbound_seq;
            refresh(s, m.alias);
          },
          [&](const codec::AddHandlerMsg& m) {
            ++s.inbound_seq;
            add_handler(s, m);
          },
          [&](const codec::RemoveHandlerMsg& m) {
            ++s.inbound_seq;
            remove_handler(s, m);
          },
          [&](const codec::RequestMsg& m) {
            ++s.inbound_seq;
            send_request(s, m);
          },
          [&](const codec::ResponseMsg& m) {
            ++s.inbound_seq;
            answer_request(s, m);
          },
          [&](const codec::SubscribeMsg& m) {
            // Sent again after a restart that kept the session: already among its subscriptions.
            if (++s.inbound_seq <= s.restored_through) return;
            subscribe(s, m);
            session_changed(s);
          },
          [&](const codec::UnsubscribeMsg& m) {
            if (++s.inbound_seq <= s.restored_through) return;
            unsubscribe(s, m.request_id, m.selector);
            session_changed(s);
          },
          [&](const codec::ResumeSubscriptionsMsg& m) {
            // Outside the counted frames: the client sends it once, right after Connected.
            resume_restored_subscriptions(s, m);
          },
          [&](const codec::ConnectMsg&) {
            protocol_error(c, codec::ErrorCode::unknown_frame, "connect sent twice");
          },
          [&](const auto&) {
            protocol_error(c, codec::ErrorCode::unknown_frame,
                           "frame not accepted from a client");
          }},
      decoded.message);
}

void Shard::resume_paused() {
  auto paused = std::move(paused_);
  paused_.clear();
  for (std::uint32_t slot : paused) {
    Connection* c = connections_[slot].get();
    if (!c || !c->paused) continue;
    // Held back by flow control: stays paused, listed again when released.
    if (!c->closing && c->session && c->session->held_by > 0) continue;
    c->paused = false;
    if (c->closing) {
      maybe_release(*c);
      continue;
    }
    resume_input(*c);
  }
}

void Shard::resume_attached() {
  auto list = std::move(to_resume_);
  to_resume_.clear();
  for (std::uint32_t slot : list) {
    Connection* c = connections_[slot].get();
    if (!c || c->closing || c->paused || c->state != ConnectionState::attached) continue;
    resume_input(*c);
  }
}

void Shard::resume_input(Connection& c) {
  // The held bytes are processed where they lie. Held back again part-way (a flat-out
  // publisher is, turn after turn), the rest stays where it is: copying it to a new buffer
  // each time cost a copy of the whole backlog, and its pages faulted in anew, per episode.
  if (c.assembly_from < c.assembly.size() && !draining_ && accepts_frames(c)) {
    if (!input_stopped(c)) {
      const std::span<const std::byte> held(c.assembly.data() + c.assembly_from,
                                            c.assembly.size() - c.assembly_from);
      const std::size_t used = process_frames(c, held);
      if (c.closing) return;
      c.assembly_from += used;
    }
    if (c.assembly_from < c.assembly.size() && accepts_frames(c) && input_stopped(c)) {
      c.paused = true;
      paused_.push_back(c.slot);
      if (c.recv_armed) reactor_->cancel(transport::Op::recv, token_of(c));
      return;
    }
    if (c.assembly_from > 0) {
      // What is left (a frame not whole yet, or bytes for the shard a hand-off goes to, or
      // nothing) goes to the front.
      const auto rest = c.assembly.begin() + static_cast<std::ptrdiff_t>(c.assembly_from);
      if (c.assembly.capacity() <= max_kept_assembly_bytes) c.assembly.erase(c.assembly.begin(), rest);
      else if (c.assembly.capacity() > spare_input_.capacity()) trade_with_spare(c, c.assembly_from);  // the large one kept
      else c.assembly = std::vector<std::byte>(rest, c.assembly.end());
      c.assembly_from = 0;
    }
  }
  if (!c.paused && !c.closing && !c.recv_armed && c.state != ConnectionState::handing_off) {
    c.recv_armed = true;
    reactor_->recv_multishot(c.fd, token_of(c));
  }
}

void Shard::mark_for_flush(Connection& c) {
  if (c.flush_listed) return;
  c.flush_listed = true;
  flush_list_.push_back(c.slot);
}

void Shard::mark_for_flush(Session& s) {
  if (s.connection && s.connection->state == ConnectionState::attached)
    mark_for_flush(*s.connection);
}

void Shard::flush_sessions() {
  send_clock_ns_ = now_ns();
  update_coalescing(send_clock_ns_);
  if (!overflowed_.empty()) close_slow_consumers();
  // Held connections stay listed, at the front, for a later turn (shard_coalescing.cpp).
  std::size_t held = 0;
  held_sends_due_ns_ = 0;
  const bool may_hold = coalescing_turn();
  for (std::size_t i = 0; i < flush_list_.size(); ++i) {
    Connection* c = connections_[flush_list_[i]].get();
    if (!c) continue;
    if (may_hold && hold_send(*c)) {
      const std::uint64_t due = c->send_started_ns + coalesce_window_ns();
      if (held_sends_due_ns_ == 0 || due < held_sends_due_ns_) held_sends_due_ns_ = due;
      flush_list_[held++] = flush_list_[i];
      continue;
    }
    c->flush_listed = false;
    if (!c->send_in_flight) start_send(*c);
    if (c->closing) maybe_release(*c);
  }
  flush_list_.resize(held);
}

void Shard::start_send(Connection& c) {
  std::size_t n = 0;
  if (c.send_failed) return;
  if (c.shm) {
    if (!c.shm->waiting_for_space) send_shm(c);  // else poll_shm() comes back when there is room
    return;
  }
  Session* s = c.state == ConnectionState::attached ? c.session : nullptr;
  // A closing connection sends its session's frames only as an ending session's last words;
  // otherwise they wait for the session's next connection.
  const bool session_frames = s && !s->out.empty() && (!c.closing || s->ended);
  if (layered(c) && (layers_mute(c) || (c.control_out.empty() && !session_frames))) {
    // Only the layers' own bytes (a handshake, the upgrade's answer, a pong, an alert): no
    // stream bytes can go yet, or none are waiting.
    if (layers_have_output(c)) write_layer_output(c);
    return;
  }
  if (c.control_out.empty() && !session_frames) return;
  std::size_t wanted = 1 + (session_frames ? std::min(max_iovecs - 1, s->out.frames() * 2) : 0);
  if (c.iov.size() < wanted) c.iov.resize(std::max<std::size_t>(wanted, 16));
  // Connection frames go between whole session frames: ahead of them, unless the last send
  // left part of a frame behind, whose rest must come first (a ping inside a frame would
  // become part of its value).
  c.control_last = session_frames && s->out.mid_frame() && !c.control_out.empty();
  if (!c.control_out.empty()) {
    c.control_sending.swap(c.control_out);
    c.control_out.clear();
    if (!c.control_last) c.iov[n++] = {c.control_sending.data(), c.control_sending.size()};
  }
  c.session_in_send = false;
  if (session_frames) {
    // gather() takes whole frames (after the rest of a partly sent one).
    std::size_t gathered =
        s->out.gather(std::span(c.iov).subspan(n, c.iov.size() - n - (c.control_last ? 1 : 0)), pool_);
    c.session_in_send = gathered > 0;
    if (gathered > 0) note_send(*s, s->out.frames_in_flight(), s->out.in_flight_through());
    n += gathered;
  }
  if (c.control_last) c.iov[n++] = {c.control_sending.data(), c.control_sending.size()};
  if (n == 0) return;
  c.offered_bytes = 0;
  for (std::size_t i = 0; i < n; ++i) c.offered_bytes += c.iov[i].iov_len;
  if (layered(c)) {
    if (!send_layered(c, n)) on_send(c, -EPROTO);
    return;
  }
  c.send_in_flight = true;
  c.send_started_ns = send_clock_ns_;
  // Small frames are copied into one staging block (OutboundQueue::gather), so a fan-out's
  // send is usually a single buffer: the cheaper plain send then.
  if (n == 1) {
    reactor_->send(c.fd, c.iov[0].iov_base, c.iov[0].iov_len, token_of(c));
    return;
  }
  c.msg = {};
  c.msg.msg_iov = c.iov.data();
  c.msg.msg_iovlen = n;
  reactor_->sendmsg(c.fd, &c.msg, token_of(c));
}

void Shard::on_send(Connection& c, int result) {
  if (layered(c) && wire_send_done(c, result)) return;
  c.send_in_flight = false;
  Session* s = c.session_in_send ? c.session : nullptr;
  c.session_in_send = false;
  if (result < 0) {
    c.send_failed = true;
    c.control_last = false;
    c.control_sending.clear();
    c.control_out.clear();
    if (s) s->out.abort_send();  // the frames stay for replay when the client comes back
    begin_close(c);
    maybe_release(c);
    return;
  }
  if (!layered(c)) counters_.bytes_out += static_cast<std::uint64_t>(result);  // layered: counted as written
  std::size_t bytes = static_cast<std::size_t>(result);
  c.congested = bytes < c.offered_bytes || c.wire_partial;
  if (bytes > 0) c.last_sent_ns = now_ns();
  std::size_t control = std::min(bytes, c.control_sending.size());
  if (c.control_last) {
    // The session's frames went first: the connection frames got what they left.
    const std::size_t session_offered = c.offered_bytes - c.control_sending.size();
    control = bytes > session_offered ? bytes - session_offered : 0;
    c.control_last = false;
  }
  if (control < c.control_sending.size()) {
    // The rest of the connection frames goes first next time, ahead of anything newer.
    c.control_out.insert(c.control_out.begin(), c.control_sending.begin() + static_cast<std::ptrdiff_t>(control),
                         c.control_sending.end());
  }
  c.control_sending.clear();
  if (s) {
    s->out.complete(bytes - control);
    after_progress(*s);
  }
  // Frames queued while this send was in flight (flush_sessions passed them over) go next,
  // also when this send carried only connection frames: a Subscribed queued behind a
  // Received otherwise waited for the client's next frame.
  Session* attached = c.state == ConnectionState::attached ? c.session : nullptr;
  if (!c.control_out.empty() || (attached && !attached->out.empty()) || layers_have_output(c))
    mark_for_flush(c);
  if (c.closing) maybe_release(c);
}

// A client keeps what it sent until the broker says it has it; without this it would keep its
// whole recovery_bytes of publishes, and writing them to memory that cold cost the publisher
// more than sending them. Once per 256 frames keeps it small and adds a frame per ~64 KiB;
// a client gone quiet hears about the rest at the next liveness check (check_liveness).
void Shard::report_received(Connection& c, Session& s, std::uint64_t every) {
  if (s.inbound_seq <= s.reported_inbound_seq || s.inbound_seq - s.reported_inbound_seq < every) return;
  if (journal_) {
    report_durable_received(s);
    return;
  }
  s.reported_inbound_seq = s.inbound_seq;
  send_control(c, encoder_.received(s.inbound_seq));
}

void Shard::send_control(Connection& c, std::span<const std::byte> frame) {
  c.control_out.insert(c.control_out.end(), frame.begin(), frame.end());
  mark_for_flush(c);
}

void Shard::enqueue_control(Session& s, std::span<const std::byte> frame) {
  if (s.ended || s.overflowed) return;
  SharedBuffer* buffer = pool_.allocate(frame.size());
  std::memcpy(buffer->data(), frame.data(), frame.size());
  codec::set_frame_flags(buffer->data(), codec::frame_flag_sequenced);
  OutFrame out{};
  out.body = buffer;
  out.body_bytes = static_cast<std::uint32_t>(frame.size());
  if (!s.out.push(out)) {
    buffer->release();
    mark_overflowed(s);
    return;
  }
  mark_for_flush(s);
}

void Shard::mark_overflowed(Session& s) {
  if (s.overflowed) return;
  s.overflowed = true;
  overflowed_.push_back(s.slot);
}

void Shard::close_slow_consumers() {
  for (std::uint32_t slot : overflowed_) {
    Session* s = slot < sessions_.size() ? sessions_[slot].get() : nullptr;
    if (!s || s->ended) continue;
    apply_queue_limit_policy(*s, "queue limit: outbound queue full (" + std::to_string(s->out.frames()) +
                                     " frames, " + std::to_string(s->out.bytes()) + " bytes)");
  }
  overflowed_.clear();
}

void Shard::apply_queue_limit_policy(Session& s, std::string_view why) {
  if (options_.queue_limit_policy == QueueLimitPolicy::drop_oldest) {
    // Memory stays bounded either way; this subscriber keeps its session and gets current
    // values instead of the backlog it could not take.
    s.overflowed = false;
    ++counters_.dropped_backlogs;
    log_.line(now_ns(), "brookd: shard %u: session %s of '%s': %zu unsent updates dropped, resynchronised: %.*s",
              index_, s.id.c_str(), s.principal.c_str(), s.out.frames(), static_cast<int>(why.size()), why.data());
    s.out.drop_unsent();
    s.sampled_sequence = 0;
    release_publishers(s);
    s.out.release_unused_ring();
    // The requests among the dropped frames fail now rather than at their timeout.
    fail_served(s, {}, "handler gone: its session's queue was dropped");
    enqueue_control(s, encoder_.resync(std::string(why) + ": unsent updates dropped"));
    resync_subscriptions(s);
    return;
  }
  ++counters_.slow_consumer_closes;
  end_session(s, codec::ErrorCode::queue_full, std::string(why) + ": session closed as a slow consumer");
}

void Shard::refuse(Session& s, codec::ErrorCode code, std::uint32_t request_id,
                   std::string_view message) {
  counters_.refused(code);
  enqueue_control(s, encoder_.error(code, request_id, message));
}

void Shard::protocol_error(Connection& c, codec::ErrorCode code, std::string_view message) {
  if (c.closing) return;
  ++counters_.protocol_errors;
  // A client that breaks the protocol loses its session: the reason goes out, then the close.
  if (c.session && c.state == ConnectionState::attached) {
    end_session(*c.session, code, message);
    return;
  }
  send_control(c, encoder_.error(code, 0, message));
  begin_close(c);
}

void Shard::begin_close(Connection& c) {
  if (!c.closing) {
    c.closing = true;
    if (c.recv_armed) reactor_->cancel(transport::Op::recv, token_of(c));
    if (c.shm && c.shm->doorbell_armed) reactor_->cancel(transport::Op::read, token_of(c));
  }
  mark_for_flush(c);
}

void Shard::maybe_release(Connection& c) {
  if (!c.closing || c.send_in_flight || c.recv_armed) return;
  if (c.shm && c.shm->doorbell_armed) return;  // the kernel still writes into the link
  // Frames still to go out before the close: an ending session's last words.
  const bool ending = c.session && c.session->ended && c.session->connection == &c;
  // A connection whose layers cannot carry the stream has no way to send connection frames:
  // only the layers' own last words (an alert, an HTTP refusal, a close frame) wait.
  const bool mute = layers_mute(c);
  if (!c.send_failed && ((!c.control_out.empty() && !mute) || (ending && !c.session->out.empty()) ||
                         layers_have_output(c)))
    return;
  if (c.flush_listed) return;  // flush_sessions() comes back here
  if (!c.send_failed && send_ws_close(c)) return;  // written, then back here
  ::shutdown(c.fd, SHUT_RDWR);
  ::close(c.fd);
  ++counters_.connections_closed;
  --open_connections_;
  if (Session* s = c.session; s && s->connection == &c) detach(*s);
  if (c.shm) {
    forget_shm(c);
    retire_shm_link(std::move(c.shm));
  }
  std::uint32_t slot = c.slot;
  connections_[slot].reset();
  free_slots_.push_back(slot);
}

}  // namespace brook::runtime
