// The broker's bytes, from the socket's multishot receive or the shared-memory ring: cut into
// frames (a frame split between two buffers is assembled, the others are read where they
// lie), decoded, and dispatched by kind to the session's tables. A stream we cannot follow
// ends the session: it could not be resumed either.
//
// Threads: the client thread only. A call it drains while it dispatches (a handler that
// publishes into a full outbox) waits in `deferred` until the dispatch is over.
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <variant>

#include "client_impl.hpp"

namespace brook {

using client_detail::error_status;
using client_detail::now_ns;

namespace {

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

}  // namespace

void Client::Impl::on_bytes(std::span<const std::byte> data) {
  deferring = true;
  dispatch_bytes(data);
  deferring = false;
  run_deferred();
}

void Client::Impl::dispatch_bytes(std::span<const std::byte> data) {
  if (!assembly.empty()) {
    // Complete the frame cut by the previous buffer's end, copying only its own bytes;
    // the frames after it are read where they lie.
    std::size_t want = codec::frame_header_bytes;
    if (assembly.size() >= codec::frame_header_bytes) {
      auto split = codec::split_frame(assembly, 0xffffffffu);
      want = split.status == codec::SplitStatus::need_more ? split.size : assembly.size();
    }
    std::size_t take = std::min(want - std::min(want, assembly.size()), data.size());
    assembly.insert(assembly.end(), data.begin(), data.begin() + static_cast<std::ptrdiff_t>(take));
    data = data.subspan(take);
    if (assembly.size() < want) return;
    if (want == codec::frame_header_bytes && assembly.size() == want) {
      dispatch_bytes(data);  // now the header is whole: learn the frame's size
      return;
    }
    std::size_t used = dispatch_frames(assembly);
    assembly.erase(assembly.begin(), assembly.begin() + static_cast<std::ptrdiff_t>(used));
    if (!assembly.empty() || stream_closed) {
      assembly.insert(assembly.end(), data.begin(), data.end());
      return;
    }
  }
  std::size_t used = dispatch_frames(data);
  assembly.assign(data.begin() + static_cast<std::ptrdiff_t>(used), data.end());
}

std::size_t Client::Impl::dispatch_frames(std::span<const std::byte> bytes) {
  std::size_t used = 0;
  while (!stream_closed) {
    // The broker's frames are bounded by what it accepts plus the update head.
    auto split = codec::split_frame(bytes.subspan(used), 0xffffffffu);
    if (split.status == codec::SplitStatus::need_more) break;
    if (split.status != codec::SplitStatus::frame) {
      protocol_failure("malformed frame from the broker");
      break;
    }
    handle_frame(bytes.subspan(used, split.size));
    used += split.size;
  }
  return used;
}

void Client::Impl::protocol_failure(std::string reason) {
  session_ended_by_broker = true;  // a stream we cannot follow cannot be resumed either
  lost(std::move(reason));
  ::shutdown(fd, SHUT_RDWR);
}

void Client::Impl::handle_frame(std::span<const std::byte> frame) {
  auto decoded = decoder.decode(frame);
  if (!decoded.ok()) {
    protocol_failure("undecodable frame from the broker: " +
                     std::string(codec::to_string(decoded.error)));
    return;
  }
  current_flags = codec::frame_flags(frame.data());
  if (current_flags & codec::frame_flag_sequenced) ++received_seq;
  std::visit(overloaded{
                 [&](const codec::UpdateMsg& m) { on_update(m); },
                 [&](const codec::SharedUpdateMsg& m) {
                   // Read in place from the broadcast segment, which the broker keeps intact
                   // until we have consumed this frame from our ring.
                   auto value = shared_value(m);
                   if (!value) {
                     protocol_failure("a shared update points outside its broadcast segment, "
                                      "or to a body already reclaimed");
                     return;
                   }
                   codec::UpdateMsg update = m.update;
                   update.value = *value;
                   on_update(update);
                 },
                 [&](const codec::TopicAddMsg& m) { on_topic_add(m); },
                 [&](const codec::ConnectedMsg& m) { on_connected(m); },
                 [&](const codec::ResyncMsg&) {
                   // The broker dropped this session's backlog: aliases start afresh and
                   // every topic's current value follows, flagged Update::resync.
                   aliases.clear();
                 },
                 [&](const codec::SubscribedMsg& m) { on_subscribed(m); },
                 [&](const codec::AckMsg& m) { answer(m.request_id, Status::ok()); },
                 [&](const codec::ReceivedMsg& m) {
                   // The broker has these frames: a resumption will never ask for them.
                   if (m.last_received <= sent_log.last()) sent_log.confirm(m.last_received);
                 },
                 [&](const codec::RequestResultMsg& m) { on_request_result(m); },
                 [&](const codec::FlowControlMsg& m) { set_flow_held(m.held); },
                 [&](const codec::HandleRequestMsg& m) { on_handle_request(m); },
                 [&](const codec::ErrorMsg& m) { on_error_frame(m); },
                 [&](const codec::PongMsg& m) {
                   if (m.id == 0) return;  // a keepalive: receiving it was the point
                   auto it = pings.find(m.id);
                   if (it == pings.end()) return;
                   it->second->set_value(std::chrono::nanoseconds(now_ns() - m.sent_ns));
                   pings.erase(it);
                 },
                 [&](const codec::CloseMsg& m) { lost("closed by the broker: " + std::string(m.reason)); },
                 [&](const codec::PingMsg& m) {
                   append(encoder.pong(m.id, m.sent_ns));
                   start_send();
                 },
                 [&](const auto&) {},
             },
             decoded.message);
}

void Client::Impl::on_error_frame(const codec::ErrorMsg& m) {
  Status status = error_status(m.code, std::string(m.message));
  if (m.request_id != 0) {
    answered(m.request_id);
    for (auto it = subscriptions.begin(); it != subscriptions.end(); ++it) {
      if (it->second.request_id != m.request_id) continue;
      auto handler = std::move(it->second.on_subscribed);
      for (auto& a : aliases) std::erase(a.subscriptions, &it->second);
      subscriptions.erase(it);
      if (handler) notify(handler, status);
      else notify(error_listener, status);
      return;
    }
    if (answer(m.request_id, status)) return;
  }
  if (m.request_id == 0) {
    // The broker restarted or the timeout passed: our session is gone (a restarted broker
    // may have given its number to another session, hence the wrong token). Carry on in a
    // new session (restart_session), at once; if that is refused too, give up below.
    const bool gone = m.code == ErrorCode::session_not_found ||
                      (m.code == ErrorCode::authentication_failed && has_session && !fresh_session);
    if (recovering && gone && options.retries != 0) {
      fresh_session = true;
      retry_at_once = true;
      fresh_session_reason = status.message;
      return;
    }
    // The broker ends the session after an error that answers no request.
    session_ended_by_broker = true;
    if (recovering) {
      give_up("session lost: " + status.message);
      notify(error_listener, status);
      return;
    }
    if (close_reason.empty()) {
      close_reason = "broker error: " + status.message;
      close_code = status.code;
    }
  }
  notify(error_listener, status);
}

void Client::Impl::set_flow_held(bool held) {
  // release: pairs with the acquire in Client::flow_held() and try_publish().
  if (flow_held.exchange(held, std::memory_order_release) == held) return;
  notify(flow_listener, held);
}

// Reads the broker's frames where they lie in the ring (a frame cut by the wrap is
// assembled), then frees them, and resumes a send that was waiting for room.
void Client::Impl::pump_shm() {
  bool wake_broker = false;
  for (int piece = 0; piece < 2 && shm && !stream_closed; ++piece) {
    auto bytes = shm->from_broker.readable();
    if (bytes.empty()) break;
    last_heard = std::chrono::steady_clock::now();
    keepalive_sent = {};
    on_bytes(bytes);
    if (!shm) return;
    wake_broker |= shm->from_broker.consume(bytes.size());
  }
  if (!shm) return;
  if (wake_broker) shm->ring_broker();
  if (shm->from_broker.corrupt()) {
    protocol_failure("shared memory: the broker's ring is corrupt");
    return;
  }
  if (shm_waiting_space && shm->to_broker.writable() > 0) {
    shm_waiting_space = false;
    shm_send();
  }
}

std::optional<std::span<const std::byte>> Client::Impl::shared_value(const codec::SharedUpdateMsg& m) const {
  if (!shm || m.segment >= shm->broadcast_logs.size()) return std::nullopt;
  auto log = shm->broadcast_logs[m.segment];
  const std::size_t at = static_cast<std::size_t>(m.position & (log.size() - 1));
  if (m.value_bytes > log.size() - at) return std::nullopt;
  // acquire: pairs with the broker's release before it writes over reclaimed bodies.
  // (A plain load on the read-only mapping: atomic_ref wants a non-const object.)
  auto reclaimed = std::atomic_ref<std::uint64_t>(
                       *const_cast<std::uint64_t*>(shm->broadcast_reclaimed[m.segment]))
                       .load(std::memory_order_acquire);
  if (m.position < reclaimed) return std::nullopt;  // read too late: the body is gone
  return log.subspan(at, m.value_bytes);
}

void Client::Impl::arm_doorbell() {
  doorbell_armed = true;
  io->read(shm->doorbell_in, &shm->doorbell_value, sizeof shm->doorbell_value, token_base | 1);
}

// About to sleep: asks the broker to ring. False when there is work already.
bool Client::Impl::shm_quiet() {
  if (shm->from_broker.prepare_to_sleep()) return false;
  return !(shm_waiting_space && shm->to_broker.wait_for_space());
}

}  // namespace brook
