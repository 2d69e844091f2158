// Sessions on a shard: opening, resuming (by token, or by name with the principal's
// credentials), taking over from a connection the broker still thinks alive, detaching when a
// connection drops, closing after the reconnect timeout, and the liveness pings.
//
// A session lives on one shard for its whole life: broker-numbered sessions on the shard that
// created them (the number says which), client-named ones on the shard their name hashes to.
// A Connect that arrives on another shard moves its socket there (the "handoff"): the
// accepting shard stops reading, and sends the fd and the bytes it read to the session's shard.
#include <sys/random.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

namespace {

constexpr std::string_view anonymous_principal = "anonymous";
// How long a session's old connection has to take the reason it was taken over.
constexpr std::uint64_t takeover_grace_ns = 200'000'000;

transport::TlsStream::PeerName certificate_principal_name(const std::string& option) {
  using Name = transport::TlsStream::PeerName;
  return option == "dns" ? Name::dns : option == "email" ? Name::email : Name::common_name;
}

bool valid_principal(std::string_view p) {
  if (p.empty() || p.size() > 128) return false;
  return std::all_of(p.begin(), p.end(), [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '@' || ch == '-';
  });
}

SessionToken random_token() {
  SessionToken token;
  std::size_t filled = 0;
  while (filled < token.size()) {
    ssize_t n = ::getrandom(token.data() + filled, token.size() - filled, 0);
    if (n > 0) filled += static_cast<std::size_t>(n);
  }
  return token;
}

// Constant time: a guesser learns nothing from how long a refusal takes.
bool same_token(const SessionToken& a, const SessionToken& b) {
  unsigned diff = 0;
  for (std::size_t i = 0; i < a.size(); ++i)
    diff |= static_cast<unsigned>(a[i]) ^ static_cast<unsigned>(b[i]);
  return diff == 0;
}

std::uint64_t ms_to_ns(std::uint64_t ms) { return ms * 1'000'000ull; }

}  // namespace

unsigned Shard::session_shard(std::string_view principal, std::int64_t number) const {
  if (number == 0) return index_;  // a new broker-numbered session starts where it landed
  if (number < 0) return static_cast<unsigned>(static_cast<std::uint64_t>(-(number + 1)) % mesh_.shard_count);
  return journal::session_home(std::string(principal) + "/" + std::to_string(number), mesh_.shard_count);
}

Session* Shard::session_for(std::uint64_t token) {
  auto slot = static_cast<std::uint32_t>(token & 0xffffffffu);
  auto generation = static_cast<std::uint32_t>(token >> 32);
  if (slot >= sessions_.size() || !sessions_[slot]) return nullptr;
  Session* s = sessions_[slot].get();
  return s->generation == generation && !s->ended ? s : nullptr;
}

void Shard::on_connect(Connection& c, const codec::ConnectMsg& m) {
  if (m.protocol_version != codec::wire_version) {
    protocol_error(c, codec::ErrorCode::protocol_version,
                   "protocol version " + std::to_string(m.protocol_version) +
                       " is not supported (broker speaks " + std::to_string(codec::wire_version) +
                       ")");
    return;
  }
  std::string_view principal = m.principal.empty() ? anonymous_principal : m.principal;
  // Mutual TLS with tls.principal_from_certificate: the verified client certificate names the
  // principal (tls.principal_name says which of its names), and proves it as a password would.
  std::string certified;
  if (c.tls && options_.tls_principal_from_certificate) {
    certified = c.tls->peer_name(certificate_principal_name(options_.tls_principal_name));
    if (certified.empty() || (!m.principal.empty() && m.principal != certified)) {
      protocol_error(c, codec::ErrorCode::authentication_failed,
                     certified.empty() ? "the client certificate has no " + options_.tls_principal_name +
                                             " name to be the principal"
                                       : "the client certificate is for '" + certified + "', not '" +
                                             std::string(m.principal) + "'");
      return;
    }
    principal = certified;
  }
  if (!valid_principal(principal)) {
    protocol_error(c, codec::ErrorCode::authentication_failed,
                   "invalid principal (1 to 128 of A-Z a-z 0-9 . _ @ -)");
    return;
  }
  if (!m.token.empty() && m.token.size() != codec::session_token_bytes) {
    protocol_error(c, codec::ErrorCode::authentication_failed, "a session token is 16 bytes");
    return;
  }
  unsigned target = session_shard(principal, m.session_number);
  if (target != index_) {
    start_handoff(c, target);
    return;
  }
  auto pending = std::make_unique<PendingConnect>();
  pending->principal = principal;
  pending->credentials.assign(reinterpret_cast<const char*>(m.credentials.data()), m.credentials.size());
  pending->session_number = m.session_number;
  pending->has_token = !m.token.empty();
  if (pending->has_token) std::memcpy(pending->token.data(), m.token.data(), m.token.size());
  pending->last_received = m.last_received;
  pending->reconnect_timeout_ms = m.reconnect_timeout_ms;
  pending->new_if_missing = m.new_if_missing;
  pending->resend_from = m.resend_from;
  pending->transient_session = m.transient_session;
  pending->verified = !certified.empty();
  c.pending = std::move(pending);
  c.state = ConnectionState::waiting;
  if (!c.pending->has_token && principal == anonymous_principal && !options_.allow_anonymous) {
    protocol_error(c, codec::ErrorCode::authentication_failed,
                   "anonymous sessions are not allowed: connect with a principal and credentials");
    return;
  }
  if (!c.pending->has_token && principal != anonymous_principal && authenticator_ && !c.pending->verified) {
    authenticator_->submit({index_, token_of(c), c.pending->principal, c.pending->credentials});
    return;  // on_authenticated() goes on
  }
  open_session(c);
}

void Shard::on_authenticated(std::uint64_t connection_token, bool accepted) {
  Connection* c = connection_for(connection_token);
  if (!c || c->closing || c->state != ConnectionState::waiting || !c->pending) return;
  if (!accepted) {
    ++counters_.auth_failures;
    counters_.refused(codec::ErrorCode::authentication_failed);
    protocol_error(*c, codec::ErrorCode::authentication_failed,
                   "authentication failed for principal '" + c->pending->principal + "'");
    return;
  }
  c->pending->verified = true;
  open_session(*c);
}

void Shard::open_session(Connection& c) {
  PendingConnect& p = *c.pending;
  Session* s = nullptr;
  std::string id;
  if (p.session_number != 0) {
    id = p.principal + "/" + std::to_string(p.session_number);
    if (auto found = session_by_id_.find(id); found != session_by_id_.end())
      s = sessions_[found->second].get();
  }
  auto refuse_connect = [&](codec::ErrorCode code, std::string message) {
    counters_.refused(code);
    protocol_error(c, code, message);
  };
  // A session is resumed only with a proof: its token, or (a takeover by a new login) the
  // principal's credentials checked against the credentials file. Without that file a
  // principal is only a name anyone can state, so a name alone never resumes a session.
  if (p.has_token) {
    if (!s && !(p.new_if_missing && p.session_number > 0)) {
      refuse_connect(codec::ErrorCode::session_not_found,
                     "session " + id + " not found: it was closed or its reconnect timeout passed");
      return;
    }
    if (s && !same_token(s->token, p.token)) {
      refuse_connect(codec::ErrorCode::authentication_failed, "wrong token for session " + id);
      return;
    }
  } else if (p.session_number < 0) {
    refuse_connect(codec::ErrorCode::authentication_failed,
                   "session " + id + " was numbered by the broker: resume it with its token");
    return;
  } else if (s && !p.verified) {
    refuse_connect(codec::ErrorCode::authentication_failed,
                   "session " + id + " exists: resume it with its token" +
                       (p.principal == anonymous_principal ? std::string(" (an anonymous session has no other proof)")
                        : authenticator_ ? std::string()
                                         : std::string(" (without a credentials file, a principal's name proves nothing)")));
    return;
  }

  if (!s) {
    // A new session, broker-numbered (negative, unique across shards) or named by the client.
    s = &new_session();
    s->principal = p.principal;
    s->number = p.session_number != 0
                    ? p.session_number
                    : -static_cast<std::int64_t>((next_session_number_++ - 1) * mesh_.shard_count + index_ + 1);
    s->id = s->principal + "/" + std::to_string(s->number);
    s->token = random_token();
    session_by_id_.emplace(s->id, s->slot);
    s->reconnect_timeout_ms = p.reconnect_timeout_ms == 0
                                  ? options_.reconnect_timeout_ms
                                  : std::min(p.reconnect_timeout_ms, options_.reconnect_timeout_max_ms);
    // A client-named session is journalled (durable) unless its client opted out.
    if (journal_ && s->number > 0 && !p.transient_session) make_durable(*s);
    attach(*s, c, false);
    return;
  }
  if (p.reconnect_timeout_ms != 0)
    s->reconnect_timeout_ms = std::min(p.reconnect_timeout_ms, options_.reconnect_timeout_max_ms);
  if (s->connection) {
    // The broker still holds the session's previous connection: end it, and attach this one
    // once it is released.
    Connection& old = *s->connection;
    s->waiting_connection = token_of(c);
    if (p.has_token) {
      // The same client, back before the broker saw its old connection drop (or that one is
      // a blackhole): nobody to tell.
      abandon(old);
      return;
    }
    // A new login of the principal takes the session over: the old connection is told why,
    // so that its client ends rather than resumes, and is given a moment to read it.
    send_control(old, encoder_.error(codec::ErrorCode::session_closed, 0,
                                     "taken over by a new login of " + p.principal));
    begin_close(old);
    abandon_after(old, takeover_grace_ns);
    return;
  }
  attach(*s, c, true);
}

Session& Shard::new_session() {
  std::uint32_t slot;
  if (!free_session_slots_.empty()) {
    slot = free_session_slots_.back();
    free_session_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(sessions_.size());
    sessions_.emplace_back();
    session_generation_.push_back(0);
  }
  OutboundLimits limits{options_.session_queue_max_frames, options_.session_queue_max_bytes,
                        options_.session_recovery_bytes};
  limits.ring_bytes_total = &ring_bytes_total_;
  sessions_[slot] = std::make_unique<Session>(limits);
  Session& s = *sessions_[slot];
  s.slot = slot;
  s.opened_ns = now_ns();
  ++counters_.sessions_opened;
  s.generation = ++session_generation_[slot];
  return s;
}

void Shard::attach(Session& s, Connection& c, bool resumed) {
  const std::uint64_t last_received = c.pending ? c.pending->last_received : 0;
  const std::uint64_t resend_from = c.pending ? c.pending->resend_from : 0;
  c.pending.reset();
  s.connection = &c;
  s.expires_ns = 0;
  c.session = &s;
  c.state = ConnectionState::attached;
  codec::ConnectedMsg m;
  bool gap = false;
  if (s.restored) {
    attach_restored(s, resend_from, m);
  } else {
    if (s.awaiting_positions) reattach_awaiting_positions(s, m);
    else if (resumed && !s.out.rewind(last_received)) {
      gap = true;
      resync(s);
    }
    if (resumed && journal_) {
      // Only what Received reported is durable: the client keeps the rest and sends it again.
      s.skip_through = std::max(s.skip_through, s.inbound_seq);
      s.inbound_seq = s.reported_inbound_seq;
    }
  }
  m.journal = journal_ != nullptr;
  m.session_id = s.id;
  m.max_frame_bytes = options_.max_frame_bytes;
  m.token = s.token;
  m.resumed = resumed;
  m.resync = gap;
  m.last_received = s.inbound_seq;
  s.reported_inbound_seq = s.inbound_seq;
  m.reconnect_timeout_ms = s.reconnect_timeout_ms;
  m.ping_interval_ms = options_.ping_interval_ms;
  m.next_sequence = s.out.oldest_unsent_sequence();
  send_control(c, encoder_.connected(m));
  if (s.held_by > 0) send_control(c, encoder_.flow_control(true));  // still held back
  if (resumed) {
    ++counters_.sessions_resumed;
    announce_handler_presence(s, false);
  }
  mark_for_flush(s);
  // Frames the client sent right after Connect: processed at the end of this turn, not from
  // inside the frame loop that may be handling the Connect right now.
  to_resume_.push_back(c.slot);
}

void Shard::resync(Session& s) {
  // The frames since the client's last one are gone: start the stream afresh from current
  // values. Sequence numbers continue; aliases restart (the client forgets its own).
  s.out.clear();
  s.sampled_sequence = 0;  // its frame went with the rest
  resync_subscriptions(s);
}

void Shard::resync_subscriptions(Session& s) {
  ++counters_.resyncs;
  unbind_all(s);
  for (auto& sub : s.subscriptions) {
    if (sub.key == 0) continue;  // restored, waiting for the client's positions
    withdraw_selector(sub.key);
    sub.key = new_subscription_key();
    sub.resync = true;
    add_selector(s, sub);
  }
}

void Shard::detach(Session& s) {
  s.connection = nullptr;
  release_publishers(s);  // a detached session drains nothing: it must not hold a feed
  if (s.ended) {
    free_session(s);
    return;
  }
  if (Connection* next = connection_for(s.waiting_connection)) {
    s.waiting_connection = 0;
    if (!next->closing && next->state == ConnectionState::waiting) {
      attach(s, *next, true);
      return;
    }
  }
  s.waiting_connection = 0;
  s.expires_ns = now_ns() + ms_to_ns(s.reconnect_timeout_ms);
  announce_handler_presence(s, true);
}

void Shard::end_session(Session& s, codec::ErrorCode code, std::string_view reason) {
  if (s.ended) return;
  s.ended = true;
  ++counters_.sessions_closed;
  remember_closed(s, !reason.empty() ? reason
                     : code == codec::ErrorCode::none ? std::string_view{} : codec::to_string(code),
                  code != codec::ErrorCode::none);
  journal_session(s);  // a durable session's last record: ended
  drop_subscriptions(s);
  end_requests(s);
  release_publishers(s);
  // What the session held goes now, even while its connection still sends the reason (a
  // stalled consumer may take long to read it): the unsent backlog, the recovery window (an
  // ended session is never resumed) and the ring chunks they filled. A few turns release it,
  // a bounded number of frames each (release_ended_sessions).
  s.out.abandon_unsent();
  if (s.out.holds_frames_to_release()) releasing_.push_back(session_token(s));
  session_by_id_.erase(s.id);
  if (Connection* c = s.connection) {
    if (code != codec::ErrorCode::none) send_control(*c, encoder_.error(code, 0, reason));
    begin_close(*c);
    return;
  }
  free_session(s);
}

void Shard::free_session(Session& s) {
  std::uint32_t slot = s.slot;
  if (s.ended && s.out.holds_frames_to_release()) dying_.push_back(std::move(sessions_[slot]));
  else sessions_[slot].reset();
  free_session_slots_.push_back(slot);
}

std::size_t Shard::release_ended_sessions() {
  // About a millisecond of reference drops per turn (each body is cold by now), and of
  // the ring's chunks given back to the heap.
  constexpr std::size_t frames_per_turn = 8'192;
  constexpr std::size_t chunks_per_turn = 256;
  std::size_t budget = frames_per_turn;
  std::size_t chunks = chunks_per_turn;
  auto release = [&](Session& s) {
    budget -= s.out.release_abandoned(budget);
    budget -= s.out.forget_retained(budget);
    if (s.out.holds_frames_to_release()) return false;
    const std::size_t before = s.out.ring_chunks();
    s.out.release_unused_ring(chunks);
    chunks -= std::min(chunks, before - s.out.ring_chunks());
    return s.out.ring_chunks() <= 1;
  };
  std::erase_if(dying_, [&](const std::unique_ptr<Session>& s) { return budget > 0 && chunks > 0 && release(*s); });
  std::erase_if(releasing_, [&](std::uint64_t token) {
    // session_for() finds no ended session: look it up by slot and generation.
    const auto slot = static_cast<std::uint32_t>(token & 0xffffffffu);
    Session* s = slot < sessions_.size() ? sessions_[slot].get() : nullptr;
    if (!s || s->generation != static_cast<std::uint32_t>(token >> 32)) return true;  // in dying_
    return budget > 0 && chunks > 0 && release(*s);
  });
  return frames_per_turn - budget;
}

void Shard::start_handoff(Connection& c, unsigned shard) {
  c.state = ConnectionState::handing_off;
  c.handoff_shard = shard;
  if (c.shm && c.shm->doorbell_armed) reactor_->cancel(transport::Op::read, token_of(c));
  if (c.recv_armed)
    reactor_->cancel(transport::Op::recv, token_of(c));  // on_recv() finishes the handoff
  else if (!c.paused)
    handoffs_due_.push_back(token_of(c));  // the frame loop that got here still reads `c`
}

void Shard::finish_due_handoffs() {
  auto due = std::move(handoffs_due_);
  handoffs_due_.clear();
  for (std::uint64_t token : due)
    if (Connection* c = connection_for(token); c && c->state == ConnectionState::handing_off)
      finish_handoff(*c);
}

void Shard::finish_handoff(Connection& c) {
  if (c.recv_armed || (c.shm && c.shm->doorbell_armed)) return;  // the last one comes back here
  if (layered(c) && c.send_in_flight) return;  // the layers' bytes still being written: on_send comes back
  std::uint8_t flags = 0;
  void* link = nullptr;
  if (c.shm) {
    forget_shm(c);
    flags = connection_shm_link;
    link = c.shm.release();
  } else if (c.tls) {
    flags = connection_tls_stream;
    link = c.tls.release();
  }
  transport::WebSocketServer* ws = c.ws.release();
  if (ws) flags |= connection_ws_stream;
  SharedBuffer* received = pool_.allocate(c.assembly.size());
  std::memcpy(received->data(), c.assembly.data(), c.assembly.size());
  received->set_size(static_cast<std::uint32_t>(c.assembly.size()));
  send_to(c.handoff_shard, {ShardMessageKind::new_connection, flags, 0, 0,
                            static_cast<std::uint64_t>(c.fd), reinterpret_cast<std::uint64_t>(link),
                            reinterpret_cast<std::uint64_t>(ws), received});
  ++counters_.handoffs;
  --open_connections_;
  std::uint32_t slot = c.slot;
  connections_[slot].reset();  // the socket lives on, on the other shard
  free_slots_.push_back(slot);
}

void Shard::abandon(Connection& c) {
  // The peer may be gone without a word: a send waiting for room in its socket would wait
  // forever, so it is cancelled rather than awaited (its frames stay for the replay).
  ::shutdown(c.fd, SHUT_RDWR);
  if (c.send_in_flight) reactor_->cancel(transport::Op::send, token_of(c));
  if (c.shm) c.send_failed = true;  // its ring may never be read again
  begin_close(c);
}

namespace {
// Time from `since` to `now`, zero when `since` is later: a connection adopted, or heard,
// after `now` was read is not old.
std::uint64_t elapsed(std::uint64_t now, std::uint64_t since) { return now > since ? now - since : 0; }
}  // namespace

void Shard::abandon_after(Connection& c, std::uint64_t grace_ns) {
  if (c.abandon_at_ns != 0) return;
  c.abandon_at_ns = now_ns() + grace_ns;
  to_abandon_.push_back(token_of(c));
}

void Shard::abandon_overdue() {
  const std::uint64_t now = now_ns();
  std::erase_if(to_abandon_, [&](std::uint64_t token) {
    Connection* c = connection_for(token);
    if (!c || !c->closing) return true;  // released meanwhile
    if (now < c->abandon_at_ns) return false;
    abandon(*c);  // a connection that would not take its last words
    return true;
  });
}

void Shard::check_liveness(std::uint64_t now) {
  if (!draining_links_.empty()) sweep_draining_links(now);
  const std::uint64_t interval = ms_to_ns(options_.ping_interval_ms);
  const std::uint64_t connect_window = ms_to_ns(options_.connect_timeout_ms);
  for (auto& owned : connections_) {
    Connection* c = owned.get();
    if (!c || c->closing) continue;
    if (c->state == ConnectionState::greeting) {
      // From the connection's start, not its last bytes: a client that dribbles a byte now
      // and then (slowloris, in a TLS handshake or a Connect) is not let in for longer.
      if (elapsed(now, c->opened_ns) > connect_window)
        protocol_error(*c, codec::ErrorCode::not_connected,
                       "no connect within " + std::to_string(options_.connect_timeout_ms) + " ms");
      continue;
    }
    if (c->state != ConnectionState::attached) continue;
    // A quiet client hears about its last frames too, within a period: it lets them go, and
    // a journal's owners need not remember its position for long (shard_durable_sessions.cpp).
    if (c->session) report_received(*c, *c->session, 1);
    if (c->ping_sent_ns != 0) {
      if (elapsed(now, c->ping_sent_ns) >= interval) {
        // No answer for a whole interval: the connection is dead, the session waits.
        ++counters_.ping_timeouts;
        abandon(*c);
      }
    } else if (elapsed(now, c->last_heard_ns) >= interval) {
      c->ping_sent_ns = now;
      send_control(*c, encoder_.ping(now, now));
    }
  }
  for (auto& owned : sessions_) {
    Session* s = owned.get();
    if (s && !s->connection && !s->ended && s->expires_ns != 0 && now >= s->expires_ns)
      end_session(*s, codec::ErrorCode::none, "reconnect timeout");
    else if (s && !s->ended && !s->serving.empty())
      expire_requests(*s, now);
  }
}

}  // namespace brook::runtime
