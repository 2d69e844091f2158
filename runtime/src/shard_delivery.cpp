// The subscriber side: a session's subscriptions, the topics bound to it (each under a
// per-session alias announced once with TopicAdd), and the hand-off of shared update frames
// into session queues. A topic matched by several of a session's selectors is delivered once.
#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

void Shard::subscribe(Session& c, std::uint32_t request_id, std::string_view text) {
  auto selector = Selector::parse(text);
  if (!selector) {
    refuse(c, codec::ErrorCode::invalid_selector, request_id,
           "invalid selector '" + std::string(text) +
               "' (use PATH, PATH/* for children or PATH// for PATH and its descendants)");
    return;
  }
  std::uint64_t key = (std::uint64_t{index_} << 48) | next_subscription_++;
  c.subscriptions.push_back({key, request_id, 0, std::move(*selector)});
  add_selector(c, c.subscriptions.back());
}

void Shard::add_selector(Session& s, Subscription& subscription) {
  subscription.pending_shards = mesh_.shard_count;
  subscription_owner_.emplace(subscription.key, s.slot);
  std::string canonical = subscription.selector.text();
  for (unsigned shard = 0; shard < mesh_.shard_count; ++shard)
    send_to(shard, {ShardMessageKind::add_selector, 0, 0, 0, subscription.key, 0, 0,
                    text_buffer(pool_, canonical)});
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
    for (unsigned shard = 0; shard < mesh_.shard_count; ++shard)
      send_to(shard, {ShardMessageKind::remove_selector, 0, 0, 0, s.key, 0, 0, nullptr});
    subscription_owner_.erase(s.key);
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
    if (topic != local_topics_.end()) {
      std::erase_if(topic->second.subscribers,
                    [&](const LocalTopic::Subscriber& s) { return s.session_slot == c.slot; });
      if (topic->second.subscribers.empty()) local_topics_.erase(topic);
    }
    it = c.bindings.erase(it);
  }
  enqueue_control(c, encoder_.unsubscribed(request_id, selector->text()));
}

void Shard::drop_subscriptions(Session& c) {
  for (const auto& s : c.subscriptions) {
    for (unsigned shard = 0; shard < mesh_.shard_count; ++shard)
      send_to(shard, {ShardMessageKind::remove_selector, 0, 0, 0, s.key, 0, 0, nullptr});
    subscription_owner_.erase(s.key);
  }
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
  bind(s, m.a, m, resync);
}

void Shard::bind(Session& c, std::uint64_t topic_key, const ShardMessage& m, bool resync) {
  SharedBuffer* frame = m.buffer;
  if (c.ended || c.bindings.contains(topic_key)) {
    frame->release();
    return;
  }
  auto publish = codec::read_trusted_publish(frame->data(), frame->size());
  auto& topic = local_topics_[topic_key];
  if (topic.path.empty()) {
    topic.path = publish.path;
    topic.type = publish.type.value_or(codec::TopicType::string);
    topic.conflate = (m.flags & topic_conflates) != 0;
  }
  std::uint32_t alias = c.next_alias++;
  TopicBinding& binding = c.bindings.emplace(topic_key, TopicBinding{alias}).first->second;
  topic.subscribers.push_back({c.slot, &binding});
  enqueue_control(c, encoder_.topic_add(alias, topic.path, topic.type));
  if (m.flags & snapshot_has_value)
    enqueue_update(c, binding, topic.conflate, m.b, frame,
                   codec::frame_flag_sequenced | (resync ? codec::frame_flag_resync : 0));
  else
    frame->release();
}

void Shard::on_deliver(const ShardMessage& m) {
  auto it = local_topics_.find(m.a);
  if (it == local_topics_.end() || it->second.subscribers.empty()) {
    m.buffer->release();
    return;
  }
  auto& subscribers = it->second.subscribers;
  // The message brought one reference; each further subscriber needs its own.
  if (subscribers.size() > 1) m.buffer->add_ref(static_cast<std::uint32_t>(subscribers.size() - 1));
  const bool conflate = it->second.conflate;
  for (const auto& s : subscribers)
    enqueue_update(*sessions_[s.session_slot], *s.binding, conflate, m.b, m.buffer);
}

void Shard::enqueue_update(Session& c, TopicBinding& binding, bool conflate,
                           std::uint64_t topic_seq, SharedBuffer* frame, std::uint16_t flags) {
  if (c.ended || c.overflowed) {
    frame->release();
    return;
  }
  auto publish = codec::read_trusted_publish(frame->data(), frame->size());
  OutFrame out;
  out.head_bytes = codec::update_head_bytes;
  out.body = frame;
  out.body_offset = publish.value_offset;
  out.body_bytes = publish.value_bytes;
  // Conflation applies to a subscriber that is behind: away, or with a full connection and a
  // backlog past conflate_after_bytes. One that keeps up, even with a moment's burst, gets
  // every update.
  const bool behind = !c.connection || (c.connection->congested &&
                                        c.out.bytes() >= options_.conflate_after_bytes);
  if (conflate && behind && binding.queued_sequence != 0) {
    if (const OutFrame* queued = c.out.replaceable(binding.queued_sequence)) {
      // The subscriber has not been sent the previous value yet: it gets this one instead,
      // in the same place of its stream (a resync mark stays: the gap is still news).
      flags |= codec::frame_flags(queued->head.data()) & codec::frame_flag_resync;
      codec::write_update_head(out.head.data(), publish.value_bytes, binding.queued_sequence,
                               topic_seq, binding.alias, 0, flags);
      c.out.replace(binding.queued_sequence, out);
      ++counters_.conflated;
      return;
    }
  }
  const std::uint64_t sequence = c.out.next_sequence();
  codec::write_update_head(out.head.data(), publish.value_bytes, sequence, topic_seq,
                           binding.alias, 0, flags);
  if (conflate) binding.queued_sequence = sequence;
  if (!c.out.push(out)) {
    frame->release();
    mark_overflowed(c);
    return;
  }
  ++counters_.deliveries;
  mark_for_flush(c);
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
