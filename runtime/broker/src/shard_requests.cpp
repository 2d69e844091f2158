// Request/response. An endpoint path is owned, like a topic, by the shard it hashes to; the
// owner keeps the endpoint's handlers and routes each request to one of them:
//
//   requester's shard: Request frame -> ForwardedRequest buffer -> owner
//   owner:             pick a handler (sticky per requester, else round-robin) -> its shard
//   handler's shard:   HandleRequest frame (id) into the handler's session stream; remembers
//                      where the answer for that id goes
//   handler's shard:   Response frame with the id -> request_result -> requester's shard
//   requester's shard: RequestResult frame into the requester's session stream
//
// Requests and answers travel in the sessions' streams, so a handler or requester that is
// only disconnected gets them when it resumes. While a handler is disconnected, new requests
// go to the endpoint's connected handlers if it has any (a sticky requester comes back to it
// once it has resumed). A handler whose session ends (or that unregisters) gets no more
// requests, and the requests it was serving fail at once.
#include <algorithm>
#include <bit>
#include <cstdio>

#include "forwarded_request.hpp"
#include "shard.hpp"
#include "topic_value_check.hpp"

namespace brook::runtime {

namespace {

SharedBuffer* answer_buffer(BufferPool& pool, codec::TopicType type,
                            std::span<const std::byte> payload) {
  SharedBuffer* b = pool.allocate(1 + payload.size());
  b->data()[0] = static_cast<std::byte>(type);
  if (!payload.empty()) std::memcpy(b->data() + 1, payload.data(), payload.size());
  b->set_size(static_cast<std::uint32_t>(1 + payload.size()));
  return b;
}

std::uint64_t ms_to_ns(std::uint64_t ms) { return ms * 1'000'000ull; }

}  // namespace

// ---- the sessions' side -------------------------------------------------------------------

void Shard::add_handler(Session& s, const codec::AddHandlerMsg& m) {
  if (!is_valid_topic_path(m.path)) {
    refuse(s, codec::ErrorCode::invalid_path, m.request_id,
           "invalid endpoint path '" + std::string(m.path) + "'");
    return;
  }
  if (!permitted(s, Operation::handle, m.path, m.request_id)) return;
  s.handled_endpoints[std::string(m.path)] = m.sticky;
  send_to(owner_of(m.path), {ShardMessageKind::add_handler,
                             static_cast<std::uint8_t>(m.sticky ? handler_sticky : 0), 0,
                             m.request_id, session_token(s), 0, 0, text_buffer(pool_, m.path)});
}

void Shard::remove_handler(Session& s, const codec::RemoveHandlerMsg& m) {
  auto it = s.handled_endpoints.find(std::string(m.path));
  if (it == s.handled_endpoints.end()) {
    enqueue_control(s, encoder_.ack(m.request_id));  // nothing to remove: done already
    return;
  }
  s.handled_endpoints.erase(it);
  fail_served(s, m.path, "handler gone: it unregistered from '" + std::string(m.path) + "'");
  send_to(owner_of(m.path), {ShardMessageKind::remove_handler, 0, 0, m.request_id,
                             session_token(s), 0, 0, text_buffer(pool_, m.path)});
}

void Shard::send_request(Session& s, const codec::RequestMsg& m) {
  if (!is_valid_topic_path(m.path)) {
    enqueue_control(s, encoder_.request_result({m.request_id, codec::ErrorCode::invalid_path,
                                                "invalid endpoint path '" + std::string(m.path) + "'",
                                                codec::TopicType::string, {}}));
    return;
  }
  if (const PrincipalRules* rules = rules_of(s); rules && !rules->allows(Operation::request, m.path)) {
    ++counters_.permission_denials;
    enqueue_control(s, encoder_.request_result({m.request_id, codec::ErrorCode::permission_denied,
                                                "permission denied: principal '" + s.principal +
                                                    "' may not request '" + std::string(m.path) + "'",
                                                codec::TopicType::string, {}}));
    return;
  }
  if (s.requests_in_flight >= options_.request_max_in_flight) {
    enqueue_control(s, encoder_.request_result(
                           {m.request_id, codec::ErrorCode::too_many_requests,
                            "too many requests in flight (the limit is " +
                                std::to_string(options_.request_max_in_flight) + " per session)",
                            codec::TopicType::string, {}}));
    return;
  }
  if (std::string why = invalid_value_reason(m.type, m.payload); !why.empty()) {
    enqueue_control(s, encoder_.request_result(
                           {m.request_id, codec::ErrorCode::invalid_value,
                            "the request's payload is " + std::string(codec::to_string(m.type)) +
                                " but " + why,
                            codec::TopicType::string, {}}));
    return;
  }
  ++s.requests_in_flight;
  if (!s.requested_endpoints.contains(std::string(m.path)))
    s.requested_endpoints.emplace(m.path);
  const std::uint32_t timeout_ms =
      m.timeout_ms == 0 ? options_.request_timeout_max_ms
                        : std::min(m.timeout_ms, options_.request_timeout_max_ms);
  send_to(owner_of(m.path),
          {ShardMessageKind::request, 0, 0, m.request_id, session_token(s), timeout_ms, 0,
           forward_request(pool_, {m.path, s.id, m.type, m.payload})});
}

void Shard::answer_request(Session& s, const codec::ResponseMsg& m) {
  auto it = s.serving.find(m.id);
  if (it == s.serving.end()) {
    // Not given to this session, answered already, or timed out: the requester has its
    // answer (or its failure); this one goes nowhere.
    // Logged at the 1st, 2nd, 4th, 8th... so that a client sending a flood of them cannot
    // flood the log too.
    if (std::has_single_bit(++counters_.stray_responses))
      std::fprintf(stderr, "brookd: dropped an answer from session %s to request %llu, which it "
                           "was not serving (%llu such answers so far)\n",
                   s.id.c_str(), (unsigned long long)m.id,
                   (unsigned long long)counters_.stray_responses);
    return;
  }
  const ServedRequest r = it->second;
  s.serving.erase(it);
  ++counters_.responses;
  if (m.failed) {
    fail_request(r.requester_shard, r.requester_token, r.request_id,
                 codec::ErrorCode::handler_failed, "handler failed: " + std::string(m.message));
    return;
  }
  if (std::string why = invalid_value_reason(m.type, m.payload); !why.empty()) {
    fail_request(r.requester_shard, r.requester_token, r.request_id,
                 codec::ErrorCode::handler_failed,
                 "handler failed: its answer is " + std::string(codec::to_string(m.type)) +
                     " but " + why);
    return;
  }
  send_to(r.requester_shard, {ShardMessageKind::request_result, 0, 0, r.request_id,
                              r.requester_token, 0, 0, answer_buffer(pool_, m.type, m.payload)});
}

void Shard::fail_request(unsigned requester_shard, std::uint64_t requester_token,
                         std::uint32_t request_id, codec::ErrorCode code, std::string_view why) {
  send_to(requester_shard, {ShardMessageKind::request_result, 0, static_cast<std::uint16_t>(code),
                            request_id, requester_token, 0, 0, text_buffer(pool_, why)});
}

void Shard::fail_served(Session& s, std::string_view path, std::string_view why) {
  std::erase_if(s.serving, [&](const auto& entry) {
    const ServedRequest& r = entry.second;
    if (!path.empty() && r.path != path) return false;
    fail_request(r.requester_shard, r.requester_token, r.request_id,
                 codec::ErrorCode::handler_gone, why);
    return true;
  });
}

void Shard::end_requests(Session& s) {
  fail_served(s, {}, "handler gone: its session " + s.id + " closed");
  for (const auto& [path, sticky] : s.handled_endpoints)
    send_to(owner_of(path), {ShardMessageKind::remove_handler, 0, 0, 0, session_token(s), 0, 0,
                             text_buffer(pool_, path)});
  s.handled_endpoints.clear();
  for (const auto& path : s.requested_endpoints)
    send_to(owner_of(path), {ShardMessageKind::forget_requester, 0, 0, 0, session_token(s), 0, 0,
                             text_buffer(pool_, path)});
  s.requested_endpoints.clear();
}

void Shard::announce_handler_presence(Session& s, bool away) {
  for (const auto& [path, sticky] : s.handled_endpoints)
    send_to(owner_of(path), {ShardMessageKind::handler_presence,
                             static_cast<std::uint8_t>(away ? handler_away : 0), 0, 0,
                             session_token(s), 0, 0, text_buffer(pool_, path)});
}

void Shard::expire_requests(Session& s, std::uint64_t now) {
  std::erase_if(s.serving, [&](const auto& entry) {
    const ServedRequest& r = entry.second;
    if (now < r.deadline_ns) return false;
    fail_request(r.requester_shard, r.requester_token, r.request_id,
                 codec::ErrorCode::request_timeout,
                 "timeout: no answer from the handler in time");
    return true;
  });
}

void Shard::on_handle_request(const ShardMessage& m) {
  const unsigned requester_shard = static_cast<unsigned>(m.c & 0xffffffffu);
  const std::uint64_t timeout_ms = m.c >> 32;
  Session* s = session_for(m.a);
  ForwardedRequest r = read_forwarded_request(m.buffer);
  if (!s || s->ended || !s->handled_endpoints.contains(std::string(r.path))) {
    fail_request(requester_shard, m.b, m.request_id, codec::ErrorCode::handler_gone,
                 "handler gone: it left '" + std::string(r.path) + "'");
    m.buffer->release();
    return;
  }
  const std::uint64_t id = s->next_serving_id++;
  s->serving.emplace(id, ServedRequest{requester_shard, m.b, m.request_id,
                                       now_ns() + ms_to_ns(timeout_ms), std::string(r.path)});
  enqueue_control(*s, encoder_.handle_request({id, r.path, r.requester, r.type, r.payload}));
  if (s->overflowed) {  // its queue is full: the request never reached it
    s->serving.erase(id);
    fail_request(requester_shard, m.b, m.request_id, codec::ErrorCode::handler_gone,
                 "handler gone: its session's queue is full");
  }
  m.buffer->release();
}

void Shard::on_request_result(const ShardMessage& m) {
  Session* s = session_for(m.a);
  if (s && !s->ended) {
    if (s->requests_in_flight > 0) --s->requests_in_flight;
    const auto code = static_cast<codec::ErrorCode>(m.code);
    if (code == codec::ErrorCode::none) {
      auto type = static_cast<codec::TopicType>(m.buffer->data()[0]);
      enqueue_control(*s, encoder_.request_result(
                              {m.request_id, code, {}, type,
                               {m.buffer->data() + 1, m.buffer->size() - 1u}}));
    } else {
      std::string_view why{reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size()};
      enqueue_control(*s, encoder_.request_result({m.request_id, code, why,
                                                   codec::TopicType::string, {}}));
    }
  }
  m.buffer->release();
}

// ---- the endpoint owner's side -----------------------------------------------------------

void Shard::on_add_handler(unsigned from, const ShardMessage& m) {
  std::string path(reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size());
  m.buffer->release();
  Endpoint& e = endpoints_[path];
  const bool sticky = (m.flags & handler_sticky) != 0;
  bool known = false;
  for (auto& h : e.handlers)
    if (h.shard == from && h.session_token == m.a) {
      h.sticky = sticky;
      known = true;
    }
  if (!known) e.handlers.push_back({from, m.a, sticky});
  if (m.request_id != 0)
    send_to(from, {ShardMessageKind::reply, 0, 0, m.request_id, m.a, 0, 0, nullptr});
}

void Shard::on_remove_handler(unsigned from, const ShardMessage& m) {
  std::string path(reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size());
  m.buffer->release();
  if (auto it = endpoints_.find(path); it != endpoints_.end()) {
    Endpoint& e = it->second;
    for (std::size_t i = 0; i < e.handlers.size(); ++i) {
      if (e.handlers[i].shard != from || e.handlers[i].session_token != m.a) continue;
      e.handlers.erase(e.handlers.begin() + static_cast<std::ptrdiff_t>(i));
      // Requesters that stuck to it choose again; indexes past it move down by one.
      for (auto s = e.sticky_handler.begin(); s != e.sticky_handler.end();) {
        if (s->second == i) {
          s = e.sticky_handler.erase(s);
          continue;
        }
        if (s->second > i) --s->second;
        ++s;
      }
      break;
    }
    if (e.handlers.empty()) endpoints_.erase(it);
  }
  if (m.request_id != 0)
    send_to(from, {ShardMessageKind::reply, 0, 0, m.request_id, m.a, 0, 0, nullptr});
}

void Shard::on_handler_presence(unsigned from, const ShardMessage& m) {
  std::string path(reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size());
  m.buffer->release();
  if (auto it = endpoints_.find(path); it != endpoints_.end())
    for (auto& h : it->second.handlers)
      if (h.shard == from && h.session_token == m.a) h.away = (m.flags & handler_away) != 0;
}

void Shard::on_forget_requester(unsigned from, const ShardMessage& m) {
  std::string path(reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size());
  m.buffer->release();
  if (auto it = endpoints_.find(path); it != endpoints_.end())
    it->second.sticky_handler.erase({from, m.a});
}

void Shard::on_request(unsigned from, const ShardMessage& m) {
  ForwardedRequest r = read_forwarded_request(m.buffer);
  auto it = endpoints_.find(std::string(r.path));
  if (it == endpoints_.end() || it->second.handlers.empty()) {
    fail_request(from, m.a, m.request_id, codec::ErrorCode::no_handler,
                 "no handler for '" + std::string(r.path) + "'");
    m.buffer->release();
    return;
  }
  Endpoint& e = it->second;
  // Sticky unless the broker or any of the endpoint's handlers says otherwise.
  bool sticky = options_.requests_sticky;
  for (const auto& h : e.handlers) sticky = sticky && h.sticky;
  // A disconnected handler gets new requests only when no handler is connected.
  const bool any_connected =
      std::any_of(e.handlers.begin(), e.handlers.end(), [](const auto& h) { return !h.away; });
  auto usable = [&](std::size_t i) { return !any_connected || !e.handlers[i].away; };
  std::size_t chosen = 0;
  auto stuck = sticky ? e.sticky_handler.find({from, m.a}) : e.sticky_handler.end();
  if (stuck != e.sticky_handler.end() && stuck->second < e.handlers.size() &&
      usable(stuck->second)) {
    chosen = stuck->second;
  } else {
    for (std::size_t tries = 0; tries < e.handlers.size(); ++tries) {
      chosen = e.next++ % e.handlers.size();
      if (usable(chosen)) break;
    }
    // Stuck to a handler that is away: this request goes elsewhere, later ones return to it.
    if (sticky && stuck == e.sticky_handler.end()) e.sticky_handler[{from, m.a}] = chosen;
  }
  const EndpointHandler& h = e.handlers[chosen];
  ++counters_.requests;
  send_to(h.shard, {ShardMessageKind::handle_request, 0, 0, m.request_id, h.session_token, m.a,
                    (m.b << 32) | from, m.buffer});
}

}  // namespace brook::runtime
