// The topics this client holds: the alias table the broker's TopicAdd frames fill, the
// value of each subscribed topic (what the next delta applies to, and the old value handed
// on with the new one), and the local subscriptions each update is dispatched to.
//
// Threads: the client thread only; update handlers run on it.
#include <string>
#include <utility>

#include "brook/codec/delta.hpp"
#include "client_impl.hpp"

namespace brook {

using client_detail::Command;
using client_detail::error_status;

void Client::Impl::on_update(const codec::UpdateMsg& m) {
  if (m.alias >= aliases.size() || !aliases[m.alias].known) {
    protocol_failure("update for unknown topic alias " + std::to_string(m.alias));
    return;
  }
  if (m.session_seq != received_seq) {
    protocol_failure("update with session sequence " + std::to_string(m.session_seq) +
                     ", expected " + std::to_string(received_seq));
    return;
  }
  Alias& a = aliases[m.alias];
  TopicValue& v = *a.value;
  bool resync = (current_flags & codec::frame_flag_resync) != 0;
  if (m.encoding == codec::UpdateEncoding::delta) {
    if (!apply_delta(m.alias, v, m)) return;
  } else {
    v.next.assign(m.value.begin(), m.value.end());
    // The first whole value after a failed delta closes the gap the failure opened.
    resync |= std::exchange(v.awaiting_full, false);
  }
  Update u{a.path, a.type, m.topic_seq, m.session_seq, v.next,
           v.held ? std::span<const std::byte>(v.current) : std::span<const std::byte>{},
           resync, m.encoding, m.value.size(), a.epoch};
  v.current.swap(v.next);
  v.topic_seq = m.topic_seq;
  v.epoch = a.epoch;
  v.held = true;
  // By index: a handler may subscribe, which can grow the list.
  for (std::size_t i = 0; i < a.subscriptions.size(); ++i)
    notify(a.subscriptions[i]->handler, u);
}

// Builds the new value from the held one into v.next. A delta that does not apply is never
// handed on: the client asks the broker for the whole value and drops the topic's deltas
// until it arrives.
bool Client::Impl::apply_delta(std::uint32_t alias, TopicValue& v, const codec::UpdateMsg& m) {
  if (v.awaiting_full) return false;
  codec::DeltaError error = codec::DeltaError::none;
  if (v.held && v.topic_seq + 1 == m.topic_seq) {
    error = codec::apply_delta(v.current, m.value, v.next, max_value_bytes);
    if (error == codec::DeltaError::none) return true;
  }
  v.held = false;
  v.awaiting_full = true;
  append_session(encoder.refresh(alias));
  // A delta without the value it applies to is a race with an unsubscribe, not damage.
  if (error != codec::DeltaError::none)
    notify(error_listener, error_status(
        ErrorCode::delta_rejected,
        "topic '" + aliases[alias].path + "' update " + std::to_string(m.topic_seq) +
            ": delta refused (" + std::string(codec::to_string(error)) +
            "); asked the broker for the whole value"));
  return false;
}

void Client::Impl::on_topic_add(const codec::TopicAddMsg& m) {
  if (aliases.size() <= m.alias) aliases.resize(m.alias + 1);
  Alias& a = aliases[m.alias];
  a.path = m.path;
  a.type = m.type;
  a.epoch = m.epoch;
  a.known = true;
  a.value = &values[a.path];
  rematch(a);
}

void Client::Impl::rematch(Alias& a) {
  a.subscriptions.clear();
  for (auto& [id, s] : subscriptions)
    if (s.selector.matches(a.path)) a.subscriptions.push_back(&s);
}

void Client::Impl::add_subscription(Command& c) {
  auto selector = runtime::Selector::parse(c.text);
  std::uint32_t request_id = next_request_id.fetch_add(1, std::memory_order_relaxed);
  if (!selector) {
    notify(c.status_handler, error_status(ErrorCode::invalid_selector, "invalid selector '" + c.text + "'"));
    return;
  }
  auto& added = subscriptions
                    .emplace(c.id, LocalSubscription{*selector, std::move(c.handler),
                                                     std::move(c.status_handler), request_id})
                    .first->second;
  for (auto& a : aliases)
    if (a.known && selector->matches(a.path)) a.subscriptions.push_back(&added);
  append_session(encoder.subscribe(request_id, c.text, c.history, c.since));
  confirm_on_answer(request_id);
}

void Client::Impl::on_subscribed(const codec::SubscribedMsg& m) {
  answered(m.request_id);
  for (auto& [id, s] : subscriptions)
    if (s.request_id == m.request_id) {
      notify(std::exchange(s.on_subscribed, nullptr), Status::ok());  // once: a resync confirms it again
      break;
    }
}

void Client::Impl::remove_subscription(std::uint64_t subscription_id) {
  auto it = subscriptions.find(subscription_id);
  if (it == subscriptions.end()) return;
  std::string text = it->second.selector.text();
  for (auto& a : aliases) std::erase(a.subscriptions, &it->second);
  subscriptions.erase(it);
  // The broker keys subscriptions by selector: only the last local one unsubscribes.
  bool still_used = false;
  for (auto& [id, s] : subscriptions) still_used |= s.selector.text() == text;
  if (!still_used)
    append_session(encoder.unsubscribe(next_request_id.fetch_add(1, std::memory_order_relaxed), text));
}

}  // namespace brook
