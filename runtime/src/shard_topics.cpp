// The owner side of topics: a topic lives on the shard its path hashes to. The owner assigns
// topic sequence numbers, keeps the retained value, knows which shards have matching
// subscriptions (every shard's selectors are registered with every owner) and sends each of
// those shards one reference per update. Per-topic order holds because every update of a
// topic passes through this one shard and then through FIFO rings.
#include <xxhash.h>

#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

namespace {

unsigned shard_of_key(std::uint64_t subscription_key) {
  return static_cast<unsigned>(subscription_key >> 48);
}

bool value_fits_type(codec::TopicType type, std::uint32_t value_bytes) {
  switch (type) {
    case codec::TopicType::int64:
    case codec::TopicType::float64: return value_bytes == 8;
    default: return true;
  }
}

}  // namespace

unsigned Shard::owner_of(std::string_view path) const {
  return static_cast<unsigned>(XXH3_64bits(path.data(), path.size()) % mesh_.shard_count);
}

void Shard::on_publish(unsigned from, const ShardMessage& m) {
  SharedBuffer* frame = m.buffer;
  auto publish = codec::read_trusted_publish(frame->data(), frame->size());
  auto reply = [&](codec::ErrorCode code, std::string_view text) {
    if (m.request_id == 0 && code == codec::ErrorCode::none) return;
    send_to(from, {ShardMessageKind::reply, 0, static_cast<std::uint16_t>(code), m.request_id,
                   m.a, 0, 0, text.empty() ? nullptr : text_buffer(pool_, text)});
  };

  auto found = topic_by_path_.find(publish.path);
  OwnedTopic* topic = found == topic_by_path_.end() ? nullptr : found->second;
  bool created = false;
  codec::TopicType type = publish.type.value_or(topic ? topic->type : codec::TopicType::string);
  if (topic && publish.type && *publish.type != topic->type) {
    frame->release();
    reply(codec::ErrorCode::type_mismatch,
          "topic '" + std::string(publish.path) + "' is " +
              std::string(codec::to_string(topic->type)) + ", not " +
              std::string(codec::to_string(*publish.type)));
    return;
  }
  if (!value_fits_type(type, publish.value_bytes)) {
    frame->release();
    reply(codec::ErrorCode::invalid_value,
          "a " + std::string(codec::to_string(type)) + " value must be 8 bytes, got " +
              std::to_string(publish.value_bytes));
    return;
  }
  if (!topic) {
    topic = topics_.try_emplace(publish.path).first;
    topic_by_path_.emplace(std::string(publish.path), topic);
    topic->key = (std::uint64_t{index_} << 48) | next_topic_index_++;
    topic->type = type;
    created = true;
  }
  // The frame becomes the retained value and the shared body of this update: record the
  // topic's real type in it so that subscriber shards can read it from there.
  codec::set_publish_type(frame->data(), type);
  if (topic->frame) topic->frame->release();
  topic->frame = frame;
  topic->has_value = true;
  ++topic->seq;
  ++counters_.publishes;

  if (created) {
    // Subscriptions made before the topic existed: each gets the first value as a snapshot.
    remote_selectors_.for_each_match(publish.path, [&](std::uint64_t key, const Selector&) {
      unsigned shard = shard_of_key(key);
      if (topic->interest[shard]++ == 0) topic->interested_mask |= std::uint64_t{1} << shard;
      frame->add_ref();
      send_to(shard, {ShardMessageKind::snapshot,
                      static_cast<std::uint8_t>(snapshot_has_value | (topic->conflate ? topic_conflates : 0)),
                      0, 0, topic->key, topic->seq, key, frame});
    });
  } else {
    fan_out(*topic);
  }
  reply(codec::ErrorCode::none, {});
}

void Shard::fan_out(OwnedTopic& topic) {
  for (std::uint64_t mask = topic.interested_mask; mask; mask &= mask - 1) {
    unsigned shard = static_cast<unsigned>(__builtin_ctzll(mask));
    topic.frame->add_ref();
    send_to(shard, {ShardMessageKind::deliver, 0, 0, 0, topic.key, topic.seq, 0, topic.frame});
  }
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
    frame->release();
    if (topic->type != type) {
      code = static_cast<std::uint16_t>(codec::ErrorCode::type_mismatch);
      text = text_buffer(pool_, "topic '" + std::string(publish.path) + "' exists as " +
                                    std::string(codec::to_string(topic->type)));
    }
  } else {
    topic_by_path_.emplace(std::string(publish.path), topic);
    topic->key = (std::uint64_t{index_} << 48) | next_topic_index_++;
    topic->type = type;
    topic->conflate = (m.flags & topic_conflates) != 0;
    topic->frame = frame;  // path only: subscribers learn the topic, no value yet
    remote_selectors_.for_each_match(publish.path, [&](std::uint64_t key, const Selector&) {
      unsigned shard = shard_of_key(key);
      if (topic->interest[shard]++ == 0) topic->interested_mask |= std::uint64_t{1} << shard;
      frame->add_ref();
      send_to(shard, {ShardMessageKind::snapshot,
                      static_cast<std::uint8_t>(topic->conflate ? topic_conflates : 0), 0, 0,
                      topic->key, 0, key, frame});
    });
  }
  send_to(from, {ShardMessageKind::reply, 0, code, m.request_id, m.a, 0, 0, text});
}

void Shard::on_add_selector(unsigned from, const ShardMessage& m) {
  std::string_view text{reinterpret_cast<const char*>(m.buffer->data()), m.buffer->size()};
  auto selector = Selector::parse(text);
  m.buffer->release();
  if (selector) {
    remote_selectors_.add(*selector, m.a);
    topics_.for_each_match(*selector, [&](std::string_view, OwnedTopic& topic) {
      if (topic.interest[from]++ == 0) topic.interested_mask |= std::uint64_t{1} << from;
      topic.frame->add_ref();
      send_to(from, {ShardMessageKind::snapshot,
                     static_cast<std::uint8_t>((topic.has_value ? snapshot_has_value : 0) |
                                               (topic.conflate ? topic_conflates : 0)),
                     0, 0,
                     topic.key, topic.seq, m.a, topic.frame});
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
  topics_.for_each_match(it->second, [&](std::string_view, OwnedTopic& topic) {
    if (topic.interest[from] > 0 && --topic.interest[from] == 0)
      topic.interested_mask &= ~(std::uint64_t{1} << from);
  });
  selector_of_.erase(it);
}

}  // namespace brook::runtime
