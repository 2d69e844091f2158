// The subscriber side: a session's subscriptions, the topics bound to it (each under a
// per-session alias announced once with TopicAdd), and the hand-off of shared update frames
// into session queues. A topic matched by several of a session's selectors is delivered once.
// Each binding remembers which topic sequence its client will hold, so that the shard's one
// delta per update (made here, from the update before it, which the shard keeps) goes to every
// subscriber that can apply it and the value to the others.
#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

namespace {

// Deltas are for values that change a little at a time; past this size an update is sent
// whole rather than holding the shard for the delta of a huge value.
constexpr std::uint32_t delta_max_value_bytes = 1u << 20;

}  // namespace

void Shard::subscribe(Session& c, const codec::SubscribeMsg& m) {
  auto selector = Selector::parse(m.selector);
  if (!selector) {
    refuse(c, codec::ErrorCode::invalid_selector, m.request_id,
           "invalid selector '" + std::string(m.selector) +
               "' (use PATH, PATH/* for children or PATH// for PATH and its descendants)");
    return;
  }
  if (const PrincipalRules* rules = rules_of(c); rules && !rules->may_subscribe(*selector)) {
    ++counters_.permission_denials;
    refuse(c, codec::ErrorCode::permission_denied, m.request_id,
           "permission denied: principal '" + c.principal + "' may not subscribe to '" + std::string(m.selector) + "'");
    return;
  }
  std::uint64_t key = new_subscription_key();
  std::vector<ResumePosition> positions;
  positions.reserve(m.positions.size());
  for (const auto& p : m.positions) positions.push_back({std::string(p.path), p.epoch, p.seq});
  c.subscriptions.push_back({.key = key, .request_id = m.request_id, .pending_shards = 0,
                             .selector = std::move(*selector), .history = m.history,
                             .since_plus_one = m.since ? std::min<std::uint64_t>(*m.since, ~std::uint64_t{0} - 1) + 1 : 0,
                             .resume = m.resume, .positions = std::move(positions)});
  add_selector(c, c.subscriptions.back());
}

void Shard::add_selector(Session& s, Subscription& subscription) {
  subscription.pending_shards = mesh_.shard_count;
  subscription_owner_.emplace(subscription.key, s.slot);
  std::string canonical = subscription.selector.text();
  for (unsigned shard = 0; shard < mesh_.shard_count; ++shard)
    send_to(shard, {ShardMessageKind::add_selector, subscription.resume ? add_selector_resume : std::uint8_t{0}, 0,
                    0, subscription.key, subscription.history, subscription.since_plus_one,
                    subscription.resume ? resume_buffer(subscription, shard) : text_buffer(pool_, canonical)});
  // Once: re-added after a gap, the subscription starts from current values.
  subscription.history = 0;
  subscription.since_plus_one = 0;
  subscription.resume = false;
  subscription.positions = {};
}

void Shard::on_selector_added(const ShardMessage& m) {
  auto owner = subscription_owner_.find(m.a);
  if (owner == subscription_owner_.end()) return;
  Session& c = *sessions_[owner->second];
  for (auto& s : c.subscriptions) {
    if (s.key != m.a || s.pending_shards == 0) continue;
    if (--s.pending_shards == 0) {
      s.resync = false;
      enqueue_control(c, encoder_.subscribed(s.request_id, s.selector.text()));
    }
    return;
  }
}

void Shard::unsubscribe(Session& c, std::uint32_t request_id, std::string_view text) {
  auto selector = Selector::parse(text);
  if (!selector) {
    refuse(c, codec::ErrorCode::invalid_selector, request_id,
           "invalid selector '" + std::string(text) + "'");
    return;
  }
  std::erase_if(c.subscriptions, [&](const Subscription& s) {
    if (!(s.selector == *selector)) return false;
    withdraw_selector(s.key);
    return true;
  });
  // Unbind the topics that no remaining subscription of this session matches.
  for (auto it = c.bindings.begin(); it != c.bindings.end();) {
    auto topic = local_topics_.find(it->first);
    bool still_matched = false;
    if (topic != local_topics_.end())
      for (const auto& s : c.subscriptions)
        if (s.selector.matches(topic->second.path)) {
          still_matched = true;
          break;
        }
    if (still_matched) {
      ++it;
      continue;
    }
    const std::uint64_t topic_key = it->first;
    ++it;
    unbind(c, topic_key);
  }
  enqueue_control(c, encoder_.unsubscribed(request_id, selector->text()));
}

void Shard::unbind(Session& c, std::uint64_t topic_key) {
  if (auto topic = local_topics_.find(topic_key); topic != local_topics_.end()) {
    std::erase_if(topic->second.subscribers,
                  [&](const LocalTopic::Subscriber& s) { return s.session_slot == c.slot; });
    if (topic->second.subscribers.empty()) local_topics_.erase(topic);
  }
  c.bindings.erase(topic_key);
}

void Shard::withdraw_selector(std::uint64_t key) {
  if (key == 0) return;  // restored, not yet added (shard_durable_sessions.cpp)
  for (unsigned shard = 0; shard < mesh_.shard_count; ++shard)
    send_to(shard, {ShardMessageKind::remove_selector, 0, 0, 0, key, 0, 0, nullptr});
  subscription_owner_.erase(key);
}

void Shard::drop_subscriptions(Session& c) {
  for (const auto& s : c.subscriptions) withdraw_selector(s.key);
  c.subscriptions.clear();
  unbind_all(c);
}

void Shard::unbind_all(Session& c) {
  for (const auto& [topic_key, binding] : c.bindings) {
    auto topic = local_topics_.find(topic_key);
    if (topic == local_topics_.end()) continue;
    std::erase_if(topic->second.subscribers,
                  [&](const LocalTopic::Subscriber& s) { return s.session_slot == c.slot; });
    if (topic->second.subscribers.empty()) local_topics_.erase(topic);
  }
  c.bindings.clear();
  c.next_alias = 1;
}

void Shard::on_snapshot(const ShardMessage& m) {
  auto owner = subscription_owner_.find(m.c);
  if (owner == subscription_owner_.end()) {
    m.buffer->release();  // the subscription went away while this was in flight
    return;
  }
  Session& s = *sessions_[owner->second];
  bool resync = false;
  for (const auto& sub : s.subscriptions)
    if (sub.key == m.c) resync = sub.resync;
  bind(s, m.a, m, resync || (m.flags & snapshot_gap) != 0);
}

void Shard::bind(Session& c, std::uint64_t topic_key, const ShardMessage& m, bool resync) {
  SharedBuffer* frame = m.buffer;
  if (c.ended || c.bindings.contains(topic_key)) {
    frame->release();
    return;
  }
  auto publish = codec::read_trusted_publish(frame->data(), frame->size());
  // A wildcard delivers only the topics the principal may read: decided here, once per
  // topic and session; what is never bound is never delivered.
  if (const PrincipalRules* rules = rules_of(c); rules && !rules->allows(Operation::subscribe, publish.path)) {
    frame->release();
    return;
  }
  auto& topic = local_topics_[topic_key];
  if (topic.path.empty()) {
    topic.path = publish.path;
    topic.type = publish.type.value_or(codec::TopicType::string);
    topic.conflate = (m.flags & topic_conflates) != 0;
    topic.epoch = std::uint64_t{m.code} << 32 | m.request_id;
  }
  std::uint32_t alias = c.next_alias++;
  TopicBinding& binding = c.bindings.emplace(topic_key, TopicBinding{alias}).first->second;
  topic.subscribers.push_back({c.slot, &binding});
  enqueue_control(c, encoder_.topic_add(alias, topic.path, topic.type, topic.epoch));
  const bool queued =
      (m.flags & snapshot_has_value) &&
      enqueue_update(c, binding, topic.conflate, m.b, frame, nullptr,
                     codec::frame_flag_sequenced | (resync ? codec::frame_flag_resync : 0)) ==
          QueuedBody::value;
  // The value the subscriber now holds is the base of the delta the next update can be, on
  // a shard that had no update of the topic yet. One that had keeps its own: the delivers
  // keep it current, and a snapshot can be ahead of them (a durable topic's updates are
  // delivered once written), so keeping it would send the others whole until they caught up.
  const bool keep = (m.flags & snapshot_has_value) && (m.flags & (topic_without_deltas | topic_not_retained)) == 0 &&
                    !topic.kept_frame;
  if (keep) keep_for_next_delta(topic, m.b, frame);
  hand_over(frame, (queued ? 1u : 0u) + (keep ? 1u : 0u));
}

void Shard::on_deliver(const ShardMessage& m) {
  auto it = local_topics_.find(m.a);
  if (it == local_topics_.end() || it->second.subscribers.empty()) {
    release_buffers_of(m);
    return;
  }
  LocalTopic& topic = it->second;
  // The message's reference keeps the frame alive through the loop, and the delta's own its
  // delta; the queues' references are added once at the end, not one atomic operation per
  // subscriber.
  std::uint32_t value_users = 0, delta_users = 0;
  // The delta from the update kept here, made for the first subscriber that holds that one.
  const bool deltas = (m.flags & deliver_deltas) != 0;
  const bool delta_possible = deltas && topic.kept_frame && topic.kept_seq + 1 == m.b;
  SharedBuffer* delta = nullptr;
  bool delta_tried = false;
  SharedBodies shared;  // written once, for every shm subscriber here
  // Updates of conflated topics never hold their publisher back: conflation is how those
  // keep up with a slow subscriber.
  const bool flow_control = m.code != 0 && !topic.conflate && flow_marks_.enabled();
  for (const auto& s : topic.subscribers) {
    // Never backwards: a subscriber bound to the topic after this update was sequenced (its
    // snapshot or history went ahead of a fan-out waiting for the journal) holds it already.
    if (s.binding->held_topic_seq >= m.b) continue;
    if (delta_possible && !delta_tried && s.binding->held_topic_seq == topic.kept_seq) {
      delta = delta_from_kept(topic, *m.buffer);
      delta_tried = true;
    }
    Session& subscriber = *sessions_[s.session_slot];
    const std::uint64_t last_before = subscriber.out.last_sequence();
    switch (enqueue_update(subscriber, *s.binding, topic.conflate, m.b, m.buffer, delta,
                           codec::frame_flag_sequenced, broadcast_.enabled() ? &shared : nullptr)) {
      case QueuedBody::value: ++value_users; break;
      case QueuedBody::delta: ++delta_users; break;
      case QueuedBody::nothing: break;
    }
    if (subscriber.sampled_sequence == 0 && subscriber.out.last_sequence() != last_before &&
        m.buffer->received_ns() != 0) {
      subscriber.sampled_sequence = subscriber.out.last_sequence();
      subscriber.sampled_received_ns = m.buffer->received_ns();
    }
    if (flow_control && flow_marks_.over(subscriber.out)) hold_publisher(subscriber, m.code - 1u, m.c);
  }
  hand_over(delta, delta_users);
  // This update is the base of the next one's delta: the message's reference goes to it,
  // and the one it had is released in its place (one atomic operation either way).
  const bool keep = deltas && m.b > topic.kept_seq;
  if (keep) keep_for_next_delta(topic, m.b, m.buffer);
  hand_over(m.buffer, value_users + (keep ? 1u : 0u));
}

SharedBuffer* Shard::delta_from_kept(const LocalTopic& topic, const SharedBuffer& frame) {
  auto base = codec::read_trusted_publish(topic.kept_frame->data(), topic.kept_frame->size());
  auto next = codec::read_trusted_publish(frame.data(), frame.size());
  // Only when a delta could be smaller than the value at all, and not for a huge value,
  // whose delta would hold the shard up for little.
  if (next.value_bytes <= codec::delta_checksum_bytes + 2 || next.value_bytes > delta_max_value_bytes) return nullptr;
  SharedBuffer* delta = pool_.allocate(next.value_bytes);
  std::size_t bytes = delta_encoder_.encode({topic.kept_frame->data() + base.value_offset, base.value_bytes},
                                            {frame.data() + next.value_offset, next.value_bytes},
                                            {delta->data(), next.value_bytes - 1});
  if (bytes == 0) {
    delta->release();
    return nullptr;
  }
  delta->set_size(static_cast<std::uint32_t>(bytes));
  ++counters_.deltas_computed;
  return delta;
}

void Shard::keep_for_next_delta(LocalTopic& topic, std::uint64_t seq, SharedBuffer* frame) {
  topic.kept_seq = seq;
  topic.kept_frame = BufferRef(frame);
}

QueuedBody Shard::enqueue_update(Session& c, TopicBinding& binding, bool conflate,
                                 std::uint64_t topic_seq, SharedBuffer* frame,
                                 SharedBuffer* delta, std::uint16_t flags, SharedBodies* shared) {
  if (c.ended || c.overflowed) return QueuedBody::nothing;
  auto publish = codec::read_trusted_publish(frame->data(), frame->size());
  OutFrame out;
  out.head_bytes = codec::update_head_bytes;
  out.body = frame;
  out.body_offset = publish.value_offset;
  out.body_bytes = publish.value_bytes;
  // Conflation applies to a subscriber that is behind: away, or with a full connection and a
  // backlog past conflate_after_bytes. One that keeps up, even with a moment's burst, gets
  // every update. A connection is full when its last send was short, or when a send is still
  // waiting for room: a socket that filled exactly at the end of a send parks the next one
  // without a short completion, and that subscriber was never conflated.
  const bool full = c.connection && (c.connection->congested || c.connection->send_in_flight);
  const bool behind = !c.connection || (full && c.out.bytes() >= options_.conflate_after_bytes);
  if (conflate && behind && binding.queued_sequence != 0) {
    if (const OutFrame* queued = c.out.replaceable(binding.queued_sequence)) {
      // The subscriber has not been sent the previous value yet: it gets this one instead,
      // in the same place of its stream (a resync mark stays: the gap is still news). It is
      // the whole value: the client never got the one a delta would apply to.
      flags |= codec::frame_flags(queued->head.data()) & codec::frame_flag_resync;
      codec::write_update_head(out.head.data(), publish.value_bytes, binding.queued_sequence,
                               topic_seq, binding.alias, codec::UpdateEncoding::full, flags);
      if (shared && c.connection && c.connection->shm) out.shared_at = share_body(*shared, false, out);
      c.out.replace(binding.queued_sequence, out);
      binding.held_topic_seq = topic_seq;
      ++counters_.conflated;
      return QueuedBody::value;
    }
  }
  auto encoding = codec::UpdateEncoding::full;
  if (delta && binding.held_topic_seq != 0 && binding.held_topic_seq + 1 == topic_seq) {
    encoding = codec::UpdateEncoding::delta;
    out.body = delta;
    out.body_offset = 0;
    out.body_bytes = delta->size();
  }
  const std::uint64_t sequence = c.out.next_sequence();
  codec::write_update_head(out.head.data(), out.body_bytes, sequence, topic_seq, binding.alias,
                           encoding, flags);
  if (conflate) binding.queued_sequence = sequence;
  if (shared && c.connection && c.connection->shm)
    out.shared_at = share_body(*shared, encoding == codec::UpdateEncoding::delta, out);
  if (!c.out.push(out)) {
    mark_overflowed(c);
    return QueuedBody::nothing;
  }
  binding.held_topic_seq = topic_seq;
  ++counters_.deliveries;
  if (encoding == codec::UpdateEncoding::delta) ++counters_.delta_deliveries;
  mark_for_flush(c);
  return encoding == codec::UpdateEncoding::delta ? QueuedBody::delta : QueuedBody::value;
}

std::uint64_t Shard::share_body(SharedBodies& shared, bool delta, const OutFrame& out) {
  std::uint64_t& at = delta ? shared.delta_at : shared.value_at;
  if (at == 0) {
    // A body no larger than a reference's extra 16 bytes goes inline.
    std::optional<std::uint64_t> position;
    if (out.body_bytes > codec::shared_update_bytes - codec::update_head_bytes)
      position = broadcast_.append(
          std::span<const std::byte>(out.body->data() + out.body_offset, out.body_bytes),
          [this](std::uint64_t head) { return oldest_shared_pin(head); });
    at = position ? *position + 1 : ~0ull;
  }
  return at == ~0ull ? 0 : at;
}

void Shard::refresh(Session& s, std::uint32_t alias) {
  for (auto& [topic_key, binding] : s.bindings) {
    if (binding.alias != alias) continue;
    auto topic = local_topics_.find(topic_key);
    if (topic == local_topics_.end()) return;
    ++counters_.refreshes;
    // Until the current value arrives, updates go whole: the client holds nothing a delta
    // could apply to.
    binding.held_topic_seq = 0;
    send_to(static_cast<unsigned>(topic_key >> 48),
            {ShardMessageKind::refresh, 0, 0, 0, topic_key, 0, session_token(s),
             text_buffer(pool_, topic->second.path)});
    return;
  }
}

void Shard::on_current_value(const ShardMessage& m) {
  Session* s = session_for(m.c);
  TopicBinding* binding = nullptr;
  if (s)
    if (auto found = s->bindings.find(m.a); found != s->bindings.end()) binding = &found->second;
  auto topic = local_topics_.find(m.a);
  // Skipped when an update queued since the refresh already gives the client a whole value
  // at least as new (updates travel the same ring as this answer, so it cannot be newer).
  const bool wanted = binding && topic != local_topics_.end() && binding->held_topic_seq < m.b;
  const bool queued =
      wanted && enqueue_update(*s, *binding, topic->second.conflate, m.b, m.buffer, nullptr,
                               codec::frame_flag_sequenced | codec::frame_flag_resync) ==
                    QueuedBody::value;
  if (!queued) m.buffer->release();
}

void Shard::on_reply(const ShardMessage& m) {
  Session* c = session_for(m.a);
  std::string_view text;
  if (m.buffer) text = {reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size()};
  if (c) {
    if (m.code != 0)
      refuse(*c, static_cast<codec::ErrorCode>(m.code), m.request_id, text);
    else if (m.request_id != 0)
      enqueue_control(*c, encoder_.ack(m.request_id));
  }
  if (m.buffer) m.buffer->release();
}

}  // namespace brook::runtime
