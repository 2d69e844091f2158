// The callers' calls that travel as a Command (all but a plain publish), carried out in the
// order they were made: entered in the session's tables and appended to what goes out, or,
// once the session is closed or closing, failed with the reason.
//
// Threads: the client thread, as it drains the outbox; after the session has ended, the
// thread of the close() (or destructor) that drains what no loop reads any more.
#include <chrono>
#include <exception>
#include <stdexcept>

#include "client_impl.hpp"

namespace brook {

using client_detail::Command;
using client_detail::error_status;
using client_detail::now_ns;
using client_detail::failed_response;

namespace {

constexpr auto close_linger = std::chrono::seconds(2);

}  // namespace

void Client::Impl::handle(Command&& c) {
  using K = Command::Kind;
  if (c.refused) {  // refused before it could be sent: only the answer travels
    // Room taken before the refusal (the persistent queue's file said no) goes back.
    if (c.queued) give_back_reservation(1, static_cast<std::int64_t>(c.queued_bytes));
    fail_command(c, *c.refused);
    return;
  }
  if (c.kind == K::close && (closing || close_when_flushed)) return;
  if (c.kind == K::close && stream_closed) {
    closing = true;
    return;
  }
  if (c.kind == K::close && recovering) {
    if (options.retries != 0 && (held_entries > 0 || sent_log.last() >= sent_log.first())) {
      // Close goes last: after the queued calls, once a broker takes them (or close_timeout).
      close_when_flushed = true;
      close_when_flushed_hint.store(true, std::memory_order_relaxed);
      close_deadline = std::chrono::steady_clock::now() + options.close_timeout;
      return;
    }
    closing = true;
    give_up("closed by the client");
    return;
  }
  if (stream_closed || closing || close_when_flushed) {
    if (c.queued) give_back_reservation(1, static_cast<std::int64_t>(c.queued_bytes));
    fail_command(c);
    return;
  }
  if (c.queued) take_reservation(c.queued_bytes);
  switch (c.kind) {
    case K::frame: append_session(c.frame, c.record); break;
    case K::acked_frame:
      requests.emplace(c.request_id, std::move(c.status_promise));
      append_session(c.frame, c.record);
      confirm_on_answer(c.request_id);
      break;
    case K::subscribe: add_subscription(c); break;
    case K::unsubscribe: remove_subscription(c.id); break;
    case K::add_handler:
      request_handlers[c.text] = std::move(c.request_handler);
      handler_sticky[c.text] = c.sticky;
      requests.emplace(c.request_id, std::move(c.status_promise));
      append_session(c.frame);
      confirm_on_answer(c.request_id);
      break;
    case K::remove_handler:
      request_handlers.erase(c.text);
      handler_sticky.erase(c.text);
      requests.emplace(c.request_id, std::move(c.status_promise));
      append_session(c.frame);
      confirm_on_answer(c.request_id);
      break;
    case K::request: {
      PendingRequest r{std::move(c.response_promise), std::move(c.response_handler), c.deadline};
      if (c.frame.empty()) {  // refused before sending: the answer is the reason, in `text`
        complete(r, failed_response(ErrorCode::frame_too_large, std::move(c.text)));
        break;
      }
      pending_requests.emplace(c.request_id, std::move(r));
      append_session(c.frame);
      confirm_on_answer(c.request_id);
      break;
    }
    case K::ping: {
      std::uint64_t id = next_ping_id++;
      pings.emplace(id, std::move(c.ping_promise));
      append(encoder.ping(id, now_ns()));
      break;
    }
    case K::error_listener: error_listener = std::move(c.error_listener); break;
    case K::close_listener: close_listener = std::move(c.close_listener); break;
    case K::disconnect_listener: disconnect_listener = std::move(c.close_listener); break;
    case K::reconnect_listener: reconnect_listener = std::move(c.reconnect_listener); break;
    case K::flow_listener: flow_listener = std::move(c.flow_listener); break;
    case K::state_listener: state_listener = std::move(c.state_listener); break;
    case K::close:
      append(encoder.close("client closed the session"));
      closing = true;
      if (close_reason.empty()) close_reason = "closed by the client";
      close_deadline = std::chrono::steady_clock::now() + close_linger;
      break;
  }
}

void Client::Impl::fail_command(Command& c) {
  fail_command(c, error_status(ErrorCode::not_connected, "session is closed"));
}

void Client::Impl::fail_command(Command& c, const Status& closed) {
  if (c.status_promise) c.status_promise->set_value(closed);
  if (c.kind == Command::Kind::request) {
    PendingRequest r{std::move(c.response_promise), std::move(c.response_handler), {}};
    complete(r, failed_response(closed.code, closed.message));
  }
  if (c.ping_promise)
    c.ping_promise->set_exception(std::make_exception_ptr(std::runtime_error("session is closed")));
  notify(c.status_handler, closed);
  if (c.kind == Command::Kind::error_listener) error_listener = std::move(c.error_listener);
  if (c.kind == Command::Kind::close_listener) close_listener = std::move(c.close_listener);
  if (c.kind == Command::Kind::disconnect_listener) disconnect_listener = std::move(c.close_listener);
  if (c.kind == Command::Kind::reconnect_listener) reconnect_listener = std::move(c.reconnect_listener);
  if (c.kind == Command::Kind::flow_listener) flow_listener = std::move(c.flow_listener);
  if (c.kind == Command::Kind::state_listener) state_listener = std::move(c.state_listener);
}

}  // namespace brook
