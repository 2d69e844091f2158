// The owner side of topics: a topic lives on the shard its path hashes to. The owner assigns
// topic sequence numbers, checks values against the topic's type, keeps the retained value,
// knows which shards have matching subscriptions (every shard's selectors are registered with
// every owner) and sends each of those shards one reference per update, from which each makes
// the delta for its own subscribers. Per-topic order holds because every update of a topic
// passes through this one shard and then through FIFO rings.
#include <cstring>
#include <memory>
#include <unordered_set>

#include "shard.hpp"
#include "topic_owner.hpp"
#include "topic_value_check.hpp"

namespace brook::runtime {

namespace {

unsigned shard_of_key(std::uint64_t subscription_key) {
  return static_cast<unsigned>(subscription_key >> 48);
}


std::uint8_t snapshot_flags(const OwnedTopic& topic) {
  return static_cast<std::uint8_t>((topic.has_value ? snapshot_has_value : 0) |
                                   topic_property_flags(topic.properties));
}

// A snapshot record carries the topic's 48-bit epoch in its code and request_id.
ShardMessage snapshot_of(const OwnedTopic& topic, std::uint8_t flags, std::uint64_t seq,
                         std::uint64_t subscription_key, SharedBuffer* frame) {
  return {ShardMessageKind::snapshot, flags, static_cast<std::uint16_t>(topic.epoch >> 32),
          static_cast<std::uint32_t>(topic.epoch), topic.key, seq, subscription_key, frame};
}

}  // namespace

unsigned Shard::owner_of(std::string_view path) const {
  return topic_owner(path, mesh_.shard_count);
}

void Shard::on_publish(unsigned from, const ShardMessage& m) {
  SharedBuffer* frame = m.buffer;
  auto publish = codec::read_trusted_publish(frame->data(), frame->size());
  auto reply = [&](codec::ErrorCode code, std::string_view text) {
    if (m.request_id == 0 && code == codec::ErrorCode::none) return;
    send_to(from, {ShardMessageKind::reply, 0, static_cast<std::uint16_t>(code), m.request_id,
                   m.a, 0, 0, text.empty() ? nullptr : text_buffer(pool_, text)});
  };

  if (journal_ && !journal_->failure().empty()) {
    frame->release();
    reply(codec::ErrorCode::storage_failed, "journal: " + journal_->failure());
    return;
  }
  // A durable session's publish carries its key and frame number (shard_durable_sessions.cpp).
  const std::uint64_t publisher_key = m.c;
  const std::uint64_t publisher_frame = m.b;
  // Publishers repeat their topics: the path looked up last is compared first, which is
  // cheaper than hashing it again (topics are never removed, and map nodes never move).
  OwnedTopic* topic = nullptr;
  if (last_published_ && *last_published_path_ == publish.path) {
    topic = last_published_;
  } else if (auto found = topic_by_path_.find(publish.path); found != topic_by_path_.end()) {
    topic = found->second;
    last_published_path_ = &found->first;
    last_published_ = topic;
  }
  bool created = false;
  codec::TopicType type =
      publish.type.value_or(topic ? topic->properties.type : codec::TopicType::string);
  if (topic && publisher_key != 0 && already_applied(*topic, publisher_key, publisher_frame)) {
    // Sent again by a session resumed after a restart: applied (and journalled) before it.
    frame->release();
    reply(codec::ErrorCode::none, {});
    return;
  }
  if (topic && publish.type && *publish.type != topic->properties.type) {
    frame->release();
    reply(codec::ErrorCode::type_mismatch,
          "topic '" + std::string(publish.path) + "' is " +
              std::string(codec::to_string(topic->properties.type)) + ", not " +
              std::string(codec::to_string(*publish.type)));
    return;
  }
  std::span<const std::byte> value{frame->data() + publish.value_offset, publish.value_bytes};
  if (std::string why = invalid_value_reason(type, value); !why.empty()) {
    frame->release();
    reply(codec::ErrorCode::invalid_value, "topic '" + std::string(publish.path) + "' is " +
                                               std::string(codec::to_string(type)) +
                                               ": the value " + why);
    return;
  }
  if (!topic) {
    topic = topics_.try_emplace(publish.path).first;
    auto entry = topic_by_path_.emplace(std::string(publish.path), topic).first;
    last_published_path_ = &entry->first;
    last_published_ = topic;
    topic->key = (std::uint64_t{index_} << 48) | next_topic_index_++;
    topic->properties.type = type;
    set_history_limits(*topic);
    topic->epoch = new_topic_epoch();
    created = true;
  }
  // The frame becomes the retained value and the shared body of this update: record the
  // topic's real type in it so that subscriber shards can read it from there.
  codec::set_publish_type(frame->data(), type);
  if (topic->frame) topic->frame->release();
  topic->frame = frame;
  topic->has_value = topic->properties.retain;
  ++topic->seq;
  ++counters_.publishes;
  record_history(*topic);

  if (created) {
    // Subscriptions made before the topic existed: each gets the first value as a snapshot.
    remote_selectors_.for_each_match(publish.path, [&](std::uint64_t key, const Selector&) {
      unsigned shard = shard_of_key(key);
      if (topic->interest[shard]++ == 0) topic->interested_mask |= std::uint64_t{1} << shard;
      frame->add_ref();
      send_to(shard, snapshot_of(*topic, static_cast<std::uint8_t>(snapshot_flags(*topic) | snapshot_has_value),
                                 topic->seq, key, frame));
    });
  } else if (!(journal_ && topic->properties.durable)) {
    fan_out(*topic, topic->seq, topic->frame, {from, m.a});
  }
  if (journal_ && topic->properties.durable) {
    std::uint64_t lsn;
    if (publisher_key != 0) {
      record_publisher(*topic, publisher_key, publisher_frame);
      const journal::PublisherPosition position{publisher_key, publisher_frame};
      lsn = journal_update(*topic, topic->seq, topic->frame, history_clock_ns(), {&position, 1});
    } else {
      lsn = journal_update(*topic, topic->seq, topic->frame, history_clock_ns());
    }
    if (topic->spills) topic->journal_index.add(topic->seq, lsn, history_clock_ns(), topic->frame->size());
    // Subscribers see an update once the journal has written it: one a crash of brookd can
    // still lose is never delivered, and its sequence never seen twice.
    if (!created) deliver_when_durable(lsn, *topic, {from, m.a});
    if (m.request_id != 0) acknowledge_when_durable(lsn, from, m.request_id, m.a);
    return;
  }
  reply(codec::ErrorCode::none, {});
}

void Shard::fan_out(OwnedTopic& topic, std::uint64_t seq, SharedBuffer* frame, PublisherRef publisher) {
  // The publisher travels with the update: a subscriber that falls behind holds it back.
  const auto publisher_shard = static_cast<std::uint16_t>(publisher.shard + 1);
  // A delta is made by each subscriber shard, from the update before this one that it kept:
  // its block is written, sent and freed by the core that sends it. Made here, once for all,
  // its block crossed to the other core and back, which cost the owner as much as the rest of
  // its work (a stream whose publisher's shard owned the topic ran at two thirds the speed).
  const std::uint8_t flags = topic.properties.deltas && topic.properties.retain ? deliver_deltas : 0;
  const std::uint64_t interested = topic.interested_mask;
  // Each record carries a reference to the frame, all taken before the first record goes
  // (a record to this shard is handled at once), in one atomic operation: it waits for this
  // core's writes of the new block to land.
  const auto records = static_cast<std::uint32_t>(__builtin_popcountll(interested));
  if (records > 0) frame->add_ref(records);
  for (std::uint64_t mask = interested; mask; mask &= mask - 1) {
    unsigned shard = static_cast<unsigned>(__builtin_ctzll(mask));
    send_to(shard, {ShardMessageKind::deliver, flags, publisher_shard, 0, topic.key, seq,
                    publisher.token, frame});
  }
}

void Shard::on_refresh(unsigned from, const ShardMessage& m) {
  std::string_view path{reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size()};
  auto found = topic_by_path_.find(path);
  m.buffer->release();
  if (found == topic_by_path_.end()) return;
  OwnedTopic& topic = *found->second;
  // Without a retained value there is nothing to resend: the next update goes whole.
  if (!topic.has_value || topic.key != m.a) return;
  topic.frame->add_ref();
  send_to(from, {ShardMessageKind::current_value, snapshot_flags(topic), 0, 0, topic.key,
                 topic.seq, m.c, topic.frame});
}

void Shard::on_create_topic(unsigned from, const ShardMessage& m) {
  SharedBuffer* frame = m.buffer;
  auto publish = codec::read_trusted_publish(frame->data(), frame->size());
  codec::TopicType type = publish.type.value_or(codec::TopicType::string);
  // Not a structured binding: the lambda below captures `topic` (clang < 16 cannot).
  auto emplaced = topics_.try_emplace(publish.path);
  OwnedTopic* topic = emplaced.first;
  bool created = emplaced.second;
  std::uint16_t code = 0;
  SharedBuffer* text = nullptr;
  if (!created) {
    // An existing topic keeps the properties it was created with; only a different type is
    // refused, since values of the asked-for type would be refused anyway.
    frame->release();
    if (topic->properties.type != type) {
      code = static_cast<std::uint16_t>(codec::ErrorCode::type_mismatch);
      text = text_buffer(pool_, "topic '" + std::string(publish.path) + "' exists as " +
                                    std::string(codec::to_string(topic->properties.type)));
    }
  } else {
    topic_by_path_.emplace(std::string(publish.path), topic);
    topic->key = (std::uint64_t{index_} << 48) | next_topic_index_++;
    topic->properties = {.type = type,
                         .conflate = (m.flags & topic_conflates) != 0,
                         .deltas = (m.flags & (topic_without_deltas | topic_not_retained)) == 0,
                         .retain = (m.flags & topic_not_retained) == 0,
                         .history = static_cast<std::int32_t>(static_cast<std::uint32_t>(m.c)) - 1,
                         .history_bytes = m.b,
                         .history_age_ms = static_cast<std::uint32_t>(m.c >> 32),
                         .durable = (m.flags & topic_transient) == 0};
    set_history_limits(*topic);
    topic->epoch = new_topic_epoch();
    topic->frame = frame;  // path only: subscribers learn the topic, no value yet
    remote_selectors_.for_each_match(publish.path, [&](std::uint64_t key, const Selector&) {
      unsigned shard = shard_of_key(key);
      if (topic->interest[shard]++ == 0) topic->interested_mask |= std::uint64_t{1} << shard;
      frame->add_ref();
      send_to(shard, snapshot_of(*topic, snapshot_flags(*topic), 0, key, frame));
    });
    if (journal_ && topic->properties.durable) {
      if (!journal_->failure().empty()) {
        // The topic is made, for this run: say it will not survive a restart.
        code = static_cast<std::uint16_t>(codec::ErrorCode::storage_failed);
        text = text_buffer(pool_, "journal: " + journal_->failure());
      } else {
        acknowledge_when_durable(journal_topic(*topic), from, m.request_id, m.a);
        return;
      }
    }
  }
  send_to(from, {ShardMessageKind::reply, 0, code, m.request_id, m.a, 0, 0, text});
}

void Shard::on_add_selector(unsigned from, const ShardMessage& m) {
  auto replay = std::make_unique<Replay>();
  std::string_view text{reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size()};
  if (m.flags & add_selector_resume) text = read_resume_buffer(*m.buffer, *replay);
  auto selector = Selector::parse(text);
  m.buffer->release();
  if (selector) {
    remote_selectors_.add(*selector, m.a);
    if (m.b != 0 || m.c != 0 || replay->resume) {
      // History first: sent a batch at a time, and selector_added after the last.
      replay->to = from;
      replay->subscription_key = m.a;
      replay->history = static_cast<std::uint32_t>(m.b);
      replay->since_plus_one = m.c;
      topics_.for_each_match(*selector, [&](std::string_view, OwnedTopic& topic) { replay->topics.push_back(&topic); });
      selector_of_.emplace(m.a, std::move(*selector));
      replays_.push_back(std::move(replay));
      run_replay(m.a);
      return;
    }
    topics_.for_each_match(*selector, [&](std::string_view, OwnedTopic& topic) {
      if (topic.interest[from]++ == 0) topic.interested_mask |= std::uint64_t{1} << from;
      topic.frame->add_ref();
      send_to(from, snapshot_of(topic, snapshot_flags(topic), topic.seq, m.a, topic.frame));
    });
    selector_of_.emplace(m.a, std::move(*selector));
  }
  // After the snapshots on the same FIFO ring: the subscriber knows it has every current value.
  send_to(from, {ShardMessageKind::selector_added, 0, 0, 0, m.a, 0, 0, nullptr});
}

void Shard::on_remove_selector(unsigned from, const ShardMessage& m) {
  auto it = selector_of_.find(m.a);
  if (it == selector_of_.end()) return;
  remote_selectors_.remove(it->second, m.a);
  // Topics a replay had not reached yet never counted this subscription's interest.
  const std::vector<OwnedTopic*> unsent = cancel_replay(m.a);
  const std::unordered_set<const OwnedTopic*> uncounted(unsent.begin(), unsent.end());
  topics_.for_each_match(it->second, [&](std::string_view, OwnedTopic& topic) {
    if (uncounted.contains(&topic)) return;
    if (topic.interest[from] > 0 && --topic.interest[from] == 0)
      topic.interested_mask &= ~(std::uint64_t{1} << from);
  });
  selector_of_.erase(it);
}

}  // namespace brook::runtime
