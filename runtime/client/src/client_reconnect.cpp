// The connection, and the session across connections: the Connect frame, keep-alive pings,
// what happens when the connection is lost (recover the session or end it), the attempts
// the reconnection strategy schedules over the server list, and the broker's answer, which
// resumes the session, opens it anew (restart_session) or makes it live the first time.
//
// Threads: the client thread, except open_server() and reached_server(), which connect()
// also calls on the caller's thread before the loop has the session.
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <unordered_set>
#include <utility>

#include "brook/transport/tcp.hpp"
#include "client_impl.hpp"

namespace brook {

using client_detail::Command;
using client_detail::error_status;
using client_detail::now_ns;
using client_detail::failed_response;

// Reads the strategy's decision (ReconnectControl's fields are private to the API).
struct ClientReconnectAccess {
  static ReconnectControl make(unsigned attempt, std::chrono::milliseconds since, std::string reason) {
    return ReconnectControl(attempt, since, std::move(reason));
  }
  static bool aborted(const ReconnectControl& c) { return !c.decided_ || c.abort_; }
  static std::chrono::milliseconds delay(const ReconnectControl& c) { return c.after_; }
};

void Client::Impl::set_state(ClientState to, const std::string& reason) {
  const ClientState from = state.exchange(to, std::memory_order_acq_rel);
  if (from != to) notify(state_listener, from, to, reason);
}

std::span<const std::byte> Client::Impl::connect_frame(bool resume) {
  codec::ConnectMsg m;
  m.client_name = options.client_name;
  m.principal = options.principal;
  m.credentials = std::as_bytes(std::span(options.credentials));
  m.session_number = resume ? session_number : options.session_number;
  if (resume) m.token = token;
  if (!resume && std::exchange(resume_with_recorded_token, false)) {
    // Resume the session an earlier run of this process recorded, or open it anew if the
    // broker no longer has it.
    m.token = token;
    m.new_if_missing = true;
  }
  m.last_received = received_seq;
  // This client's own session: it counts its frames as the broker did, and a broker that
  // restored the session from its journal counts on from the first one it sends again.
  if (resume) m.resend_from = sent_log.empty() ? sent_log.last() + 1 : sent_log.first();
  m.transient_session = !options.durable_session;
  m.reconnect_timeout_ms = static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(options.reconnect_timeout.count(), 1, 0xffffffffLL));
  return encoder.connect(m);
}

// Pings a quiet broker; a ping unanswered for a whole interval means the connection is dead.
void Client::Impl::keep_alive(std::chrono::steady_clock::time_point now) {
  if (!has_session || hold_out) return;
  if (keepalive_sent != std::chrono::steady_clock::time_point{}) {
    if (now - keepalive_sent >= options.ping_interval) {
      lost("no answer to a ping within " + std::to_string(options.ping_interval.count()) + " ms");
      ::shutdown(fd, SHUT_RDWR);
    }
    return;
  }
  if (now - last_heard >= options.ping_interval) {
    keepalive_sent = now;
    append(encoder.ping(0, now_ns()));
  }
}

bool Client::Impl::can_recover() const {
  return has_session && !session_ended_by_broker && !closing && options.retries != 0 &&
         options.reconnect_timeout.count() > 0 && !finished.load(std::memory_order_relaxed);
}

// The connection is gone (or the attempt to resume failed): recover the session or end it.
void Client::Impl::lost(std::string reason) {
  if (stream_closed) return;
  if (recovering) {
    if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
    // The attempt's doorbell will never ring: take its read back, or the next attempt
    // would wait for it forever.
    if (shm && doorbell_armed) io->cancel(transport::Op::read, token_base | 1);
    if (hold_out) {
      hold_out = false;
      schedule_attempt(std::move(reason));
    }
    return;
  }
  if (can_recover()) {
    begin_recovery(std::move(reason));
    return;
  }
  if (!has_session && !connect_answered && !session_ended_by_broker && !closing &&
      options.retries != 0 && options.reconnect_timeout.count() > 0) {
    // The first connection broke before the broker answered: connect() returns, and the
    // calls made so far wait in the queue like those of a client that found no server.
    connect_answered = true;
    connected_promise.set_value(Status{ErrorCode::none, "recovering: " + reason});
    begin_recovery(std::move(reason));
    return;
  }
  stream_closed = true;
  drop_unsent();  // nothing more can be sent; producers blocked on a full outbox move on
  if (close_reason.empty()) close_reason = std::move(reason);
  end_session(close_reason);
}

void Client::Impl::begin_recovery(std::string reason) {
  // The old connection's unsent bytes count for nothing now (a resumption sends from the log
  // what the broker lacks): left counted, they would stop the drain for the whole recovery.
  drop_unsent();
  recovering = true;
  hold_out = false;
  connected.store(false, std::memory_order_release);
  server_index.store(-1, std::memory_order_relaxed);
  set_state(ClientState::recovering, reason);
  disconnected_at = std::chrono::steady_clock::now();
  attempt = 0;
  keepalive_sent = {};
  assembly.clear();  // a frame cut in half by the drop is resent whole
  ::shutdown(fd, SHUT_RDWR);  // ends the operations in flight on the old socket
  if (shm) {
    send_in_flight = false;  // what did not fit in the ring is resent from the log
    shm_waiting_space = false;
    if (doorbell_armed) io->cancel(transport::Op::read, token_base | 1);
  }
  for (auto& [id, p] : pings)
    p->set_exception(std::make_exception_ptr(std::runtime_error("connection lost: " + reason)));
  pings.clear();
  notify(disconnect_listener, reason);
  // A hold belongs to a connection: the broker says so again on the next one if it lasts.
  set_flow_held(false);
  schedule_attempt(std::move(reason));
}

// Asks the strategy what to do after a drop or a failed attempt.
void Client::Impl::schedule_attempt(std::string reason) {
  if (!recovering) return;
  auto now = std::chrono::steady_clock::now();
  auto since = std::chrono::duration_cast<std::chrono::milliseconds>(now - disconnected_at);
  if (options.retries >= 0 && attempt >= static_cast<std::uint64_t>(options.retries)) {
    give_up("no connection after " + std::to_string(attempt) + " attempt(s) in " +
            std::to_string(since.count()) + " ms (retries " + std::to_string(options.retries) +
            "): " + reason);
    return;
  }
  auto control = ClientReconnectAccess::make(++attempt, since, reason);
  if (options.reconnect_strategy && !abandoned) {
    options.reconnect_strategy(control);
  } else {
    // A broker that answered but no longer had the session is tried again at once.
    const bool at_once = attempt == 1 || std::exchange(retry_at_once, false);
    control.reconnect(at_once ? std::chrono::milliseconds{0} : options.reconnect_delay);
  }
  if (ClientReconnectAccess::aborted(control)) {
    give_up("reconnection aborted after " + std::to_string(attempt) + " attempt(s): " + reason);
    return;
  }
  next_attempt = now + ClientReconnectAccess::delay(control);
}

void Client::Impl::give_up(std::string reason) {
  recovering = false;
  hold_out = false;
  close_when_flushed = false;
  if (fd >= 0) ::shutdown(fd, SHUT_RDWR);
  stream_closed = true;
  drop_unsent();
  if (close_reason.empty()) close_reason = std::move(reason);
  report_unsent(close_reason);
  end_session(close_reason);
}

// Nothing is dropped silently: calls that never reached a broker are reported once.
void Client::Impl::report_unsent(const std::string& reason) {
  const std::uint64_t unsent =
      sent_log.last() >= sent_log.first() ? sent_log.last() - sent_log.first() + 1 : 0;
  give_back_held();
  if (unsent > 0)
    notify(error_listener, error_status(ErrorCode::not_connected,
                                        std::to_string(unsent) + " call(s) the broker never confirmed were "
                                        "not sent (or may not have arrived): " + reason));
}

void Client::Impl::step_recovery(std::chrono::steady_clock::time_point now) {
  if (recv_armed || send_in_flight || hold_out || doorbell_armed) return;  // still winding down
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
    shm.reset();
    assembly.clear();  // the old socket's last, partial frame comes again whole
  }
  if (now < next_attempt) return;
  // One attempt walks the servers in order; the first that takes the connection wins.
  std::string failures;
  int reached = -1;
  bool refused = false;
  for (std::size_t i = 0; i < servers.size() && reached < 0; ++i) {
    std::string error;
    if (open_server(servers[i], error, refused)) reached = static_cast<int>(i);
    else failures += (failures.empty() ? "" : "; ") + error;
  }
  if (reached < 0 && refused && servers.size() == 1) {
    give_up(failures);  // the only broker refuses us: waiting will not change its mind
    return;
  }
  if (reached < 0) {
    schedule_attempt(failures);
    return;
  }
  server_index.store(reached, std::memory_order_relaxed);
  if (has_session && !fresh_session && reached != session_server) {
    // Sessions live in one broker: another server cannot resume ours.
    fresh_session = true;
    fresh_session_reason = "failed over from " +
                           servers[static_cast<std::size_t>(session_server)].url + " to " +
                           servers[static_cast<std::size_t>(reached)].url;
  }
  if (shm) {
    shm_waiting_space = false;
    arm_doorbell();
  }
  hold_out = true;
  last_heard = std::chrono::steady_clock::now();
  auto frame = connect_frame(has_session && !fresh_session);
  recv_armed = true;
  io->recv_multishot(fd, token_base);
  sending.assign(frame.begin(), frame.end());
  send_parts.assign(1, {sending.data(), sending.size()});
  send_parts_in_order(0);
}

// Opens a connection to `server` into fd (and shm); false with why not, and `refused` set
// when the broker itself said no (retrying would not help).
bool Client::Impl::open_server(const client_detail::ServerAddress& server, std::string& error, bool& refused) {
  const int timeout = static_cast<int>(options.connect_timeout.count());
  tls.reset();
  if (!server.tcp) {
    shm = client_detail::ShmClientLink::open(server.shm_path, timeout, error, &refused);
    if (!shm) return false;
    fd = shm->release_socket();
    return true;
  }
  int nfd = transport::connect_tcp(*server.tcp, timeout);
  if (nfd < 0) {
    error = "cannot connect to " + server.url + ": " + std::strerror(-nfd);
    return false;
  }
  fd = nfd;
  if (server.tls && !tls_handshake(server, error)) {
    // A certificate refused (or refusing ours) is an answer, as a wrong password is: trying
    // again would not change it. A timeout or a closed connection may be the network.
    refused = tls->failed();
    tls.reset();
    ::close(fd);
    fd = -1;
    return false;
  }
  return true;
}

std::string Client::Impl::reached_server() const {
  const int i = server_index.load(std::memory_order_relaxed);
  return i >= 0 ? servers[static_cast<std::size_t>(i)].url : std::string("?");
}

void Client::Impl::on_connected(const codec::ConnectedMsg& m) {
  const std::string previous_id = session_id;
  session_id = m.session_id;
  session_server = server_index.load(std::memory_order_relaxed);
  max_value_bytes = std::max<std::size_t>(m.max_frame_bytes, codec::default_max_frame_bytes);
  if (m.max_frame_bytes != 0) broker_max_frame_bytes.store(m.max_frame_bytes, std::memory_order_relaxed);
  if (m.token.size() == token.size()) std::memcpy(token.data(), m.token.data(), token.size());
  if (auto slash = session_id.rfind('/'); slash != std::string::npos)
    session_number = std::strtoll(session_id.c_str() + slash + 1, nullptr, 10);
  if (queue_file && session_number > 0) {
    std::lock_guard lock(queue_file_mutex);
    if (!queue_file->remember_session(session_id, token))
      notify(error_listener, error_status(ErrorCode::internal, "persistent queue " + options.queue_path +
                                                                   ": cannot record the session's token: " +
                                                                   queue_file->error()));
  }
  received_seq = m.next_sequence - 1;
  confirm_on_received_only = m.journal;
  if (recovering) {
    if (has_session && (fresh_session || !m.resumed)) restart_session(m, previous_id);
    else resumed(m, !has_session);
    return;
  }
  has_session = true;
  // A named session taken over from an earlier process goes on counting from its frames.
  rebase_log(m.last_received);
  // Taken back from a broker that restored it from its journal: its subscriptions resume.
  if (m.restored) append(encoder.resume_subscriptions(held_positions(nullptr)));
  // The calls made before this answer went out behind Connect: their room is free again.
  go_live("connected to " + reached_server() + " as " + session_id);
}

// Connected after a drop, or after connect() found no server: send what the broker does
// not have, in order, then carry on.
void Client::Impl::resumed(const codec::ConnectedMsg& m, bool first_session) {
  recovering = false;
  hold_out = false;
  if (first_session) {
    has_session = true;
    rebase_log(m.last_received);  // a named session taken over continues its count
  }
  // Everything queued is in the log from the first frame the broker lacks on; connection
  // frames (pings, pongs) of the old connection are stale.
  drop_unsent();
  if (m.restored) {
    // The broker restarted and brought the session back from its journal, without the
    // updates it had queued for us: each subscription resumes after what we hold.
    aliases.clear();
    const auto positions = held_positions(nullptr);
    auto frame = encoder.resume_subscriptions(positions);
    out.assign(frame.begin(), frame.end());
  }
  // The frames the broker lacks go out behind it, straight from the log.
  const std::uint64_t missing = set_log_queued(m.last_received);
  if (m.restored)  // request handlers are not journalled: register them again, after the rest
    for (auto& [path, handler] : request_handlers)
      append_session(encoder.add_handler(next_request_id.fetch_add(1, std::memory_order_relaxed), path,
                                         handler_sticky[path]));
  sent_log.confirm(m.last_received);
  if (m.resync) {
    aliases.clear();
  }
  go_live(first_session ? "connected to " + reached_server() + " as " + session_id
                        : "resumed " + session_id + " on " + reached_server());
  if (missing > 0)
    notify(error_listener, error_status(ErrorCode::internal,
                                        std::to_string(missing) +
                                            " session frame(s) sent before the drop were lost: the "
                                            "client's recovery buffer (recovery_bytes) was overrun"));
  if (!first_session) notify(reconnect_listener, m.resync);
  start_send();
  close_if_flushed();
}

void Client::Impl::go_live(const std::string& reason) {
  connected.store(true, std::memory_order_release);
  if (!connect_answered) {  // connect() held back by a first connection that broke
    connect_answered = true;
    connected_promise.set_value(Status::ok());
  }
  give_back_held();
  set_state(ClientState::connected, reason);
}

void Client::Impl::close_if_flushed() {
  if (!close_when_flushed) return;
  close_when_flushed = false;
  Command c;
  c.kind = Command::Kind::close;
  handle(std::move(c));
}

// The broker opened a new session in place of ours: register the subscriptions and request
// handlers again from what this client holds, then send the calls the old session's broker
// never confirmed (publishes, topic creations, requests), in their order. Each subscription
// resumes from the topic sequences this client holds: the broker sends the updates after
// them from its history (a restarted broker with a data dir still has it), and flags resync
// only a topic whose missed updates it no longer keeps.
void Client::Impl::restart_session(const codec::ConnectedMsg& m, const std::string& old_id) {
  recovering = false;
  hold_out = false;
  fresh_session = false;
  SentLog fresh(options.recovery_bytes);
  drop_unsent();
  auto add = [&](std::span<const std::byte> frame, std::uint64_t record = 0) {
    fresh.append(frame, record);
    out.insert(out.end(), frame.begin(), frame.end());
  };
  std::vector<std::uint64_t> ids;
  for (auto& [id, s] : subscriptions) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  for (std::uint64_t id : ids) {
    LocalSubscription& s = subscriptions.at(id);
    s.request_id = next_request_id.fetch_add(1, std::memory_order_relaxed);
    add(encoder.subscribe_resuming(s.request_id, s.selector.text(), held_positions(&s.selector)));
  }
  for (auto& [path, handler] : request_handlers)
    add(encoder.add_handler(next_request_id.fetch_add(1, std::memory_order_relaxed), path,
                            handler_sticky[path]));
  const std::uint64_t forgotten = sent_log.forgotten_unconfirmed();
  std::unordered_set<std::uint32_t> resent_ids;
  answer_confirms.clear();
  sent_log.for_each([&](std::span<const std::byte> frame, std::uint64_t record) {
    std::uint32_t request_id = 0;
    if (!replayable(frame, request_id)) return;  // registered above, or a stale answer
    add(frame, record);
    if (request_id != 0) {
      resent_ids.insert(request_id);
      answer_confirms[request_id] = fresh.last();
    }
  });
  // Calls the old broker had taken but not answered: the answer is lost with the session.
  const std::string lost_answer = "session " + old_id + " was lost before the broker answered";
  for (auto it = requests.begin(); it != requests.end();) {
    if (resent_ids.count(it->first)) {
      ++it;
      continue;
    }
    it->second->set_value(error_status(ErrorCode::session_closed, lost_answer));
    it = requests.erase(it);
  }
  for (auto it = pending_requests.begin(); it != pending_requests.end();) {
    if (resent_ids.count(it->first)) {
      ++it;
      continue;
    }
    PendingRequest r = std::move(it->second);
    it = pending_requests.erase(it);
    complete(r, failed_response(ErrorCode::session_closed, lost_answer));
  }
  sent_log = std::move(fresh);
  rebase_log(m.last_received);
  log_all_queued();  // all of it is in `out`, copied as it was rebuilt
  // Values stay held: the subscriptions resume from them (positions above), and the broker
  // flags resync only where the updates after them are gone.
  aliases.clear();
  go_live("new session " + session_id + " on " + reached_server() + " (" + fresh_session_reason + ")");
  if (forgotten > 0)
    notify(error_listener, error_status(ErrorCode::internal,
                                        std::to_string(forgotten) +
                                            " call(s) sent before session " + old_id + " was lost may "
                                            "not have arrived: the client's recovery buffer "
                                            "(recovery_bytes) no longer held them"));
  notify(reconnect_listener, true);
  start_send();
  close_if_flushed();
}

// Where this client is in each topic it holds a value of (matching `selector`, or all).
std::vector<codec::TopicPosition> Client::Impl::held_positions(const runtime::Selector* selector) const {
  std::vector<codec::TopicPosition> positions;
  for (const auto& [path, value] : values)
    if (value.held && (!selector || selector->matches(path))) positions.push_back({path, value.epoch, value.topic_seq});
  return positions;
}

void Client::Impl::end_session(const std::string& reason) {
  bool was_connected = connected.exchange(false);
  server_index.store(-1, std::memory_order_relaxed);
  give_back_held();
  const ClientState from = state.exchange(ClientState::closed);
  bool was_open = from != ClientState::closed;
  if (was_open) notify(state_listener, from, ClientState::closed, reason);
  if (!connect_answered) {
    connect_answered = true;
    connected_promise.set_value(error_status(close_code, reason));
  }
  for (auto& [id, p] : requests) p->set_value(error_status(ErrorCode::not_connected, reason));
  for (auto& [id, r] : pending_requests)
    complete(r, failed_response(ErrorCode::not_connected, "session closed: " + reason));
  pending_requests.clear();
  requests.clear();
  for (auto& [id, p] : pings)
    p->set_exception(std::make_exception_ptr(std::runtime_error("session closed: " + reason)));
  pings.clear();
  if (was_connected || (was_open && has_session)) notify(close_listener, reason);
}

}  // namespace brook
