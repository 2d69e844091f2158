#pragma once
// Topics in the journal. The owner shard writes a topic record whenever a durable topic is
// created and whenever it takes an update: the topic's sequence, its properties, epoch, the
// time and its publish frame (path, type and value), so each record alone says what the
// topic was at that sequence. At start-up the broker reads every shard's journal and keeps,
// per path, the record with the highest sequence (the topic as it was last made durable) and
// the last records of its history, as many as its history limits keep. The shard count may
// have changed since (a topic's owner is its path's hash modulo the count), so records are
// gathered from every shard directory and handed to each topic's owner now.
//
//   topic record payload: u64 seq | u8 property flags | u8 has value | u16 0 | i32 history |
//                         u64 epoch | u64 time (realtime ns) | u64 history bytes |
//                         u32 history age ms | u32 0 | frame |
//                         publisher positions (format 3): per position u64 key | u64 frame
//
// A record with seq 0 is a topic created without a value; the others are its updates. A
// publisher position says that the durable session with that key (journal_sessions.hpp) had
// this topic's updates applied up to its session frame `frame`: an update names the session
// that published it, and a snapshot record every recent publisher of the topic, so a resumed
// session's frame sent again after a restart is recognised and not applied twice.
//
// restore_topics() runs on the thread that starts the broker, before the shards run.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "journal_scan.hpp"
#include "journal_sessions.hpp"
#include "topic_journal_index.hpp"

namespace brook::runtime::journal {

constexpr std::size_t topic_record_head_bytes = 48;

struct TopicRecordHead {
  std::uint64_t seq = 0;
  std::uint8_t property_flags = 0;  // topic_property_flags() of shard_message.hpp
  bool has_value = false;
  std::int32_t history = -1;        // the topic's own history properties (-1 / 0: defaults)
  std::uint64_t history_bytes = 0;
  std::uint32_t history_age_ms = 0;
  std::uint64_t epoch = 0;
  std::uint64_t time_ns = 0;
};
// The payload head of a topic record.
struct EncodedTopicHead {
  std::byte bytes[topic_record_head_bytes]{};
};
EncodedTopicHead encode_topic_head(const TopicRecordHead& head);
TopicRecordHead decode_topic_head(std::span<const std::byte> payload);

struct PublisherPosition {
  std::uint64_t key = 0;
  std::uint64_t frame = 0;
};
constexpr std::size_t publisher_position_bytes = 16;

// A topic record's frame and the publisher positions after it (the payload after its head).
struct TopicRecordBody {
  std::string_view path;
  std::span<const std::byte> frame;
  std::span<const std::byte> publishers;
};
// The frame's own lengths agree with the record it came in: the record's checksum says the
// bytes are what was written, this says they are a publish frame the shards can read.
std::optional<TopicRecordBody> topic_record_body(std::span<const std::byte> body);

// One update of a topic's history, as its record kept it.
struct RestoredUpdate {
  std::uint64_t seq = 0;
  std::uint64_t time_ns = 0;
  std::vector<std::byte> frame;
};

// A topic as its last durable record left it, with its history oldest first (the last entry
// is the current value when the topic keeps history).
struct RestoredTopic {
  TopicRecordHead head;
  std::vector<std::byte> frame;  // a publish frame: path, type, value
  std::vector<RestoredUpdate> history;
  std::vector<PublisherPosition> publishers;  // the highest frame of each, from every record
  // Where its updates are in its owner's journal (records in another shard's directory, left
  // by another shard count, are not indexed): for a topic whose history spills to disk.
  TopicJournalIndex index;
  std::uint64_t history_bytes = 0;  // of `history`'s frames
};

struct RestoredJournal {
  std::vector<std::vector<RestoredTopic>> topics_by_owner;  // [owner shard]
  std::vector<std::vector<SessionRecord>> sessions_by_home;  // [home shard], live ones only
  std::vector<ScanResult> scans;   // [shard] for shard < shard count: where each continues
  std::uint64_t records = 0;
  std::uint64_t topics = 0;
  std::uint64_t sessions = 0;
  std::string repaired;            // every repair, one per line
  std::string error;               // damage that stops the broker from starting
};

// Reads DATA_DIR/shard-* and returns each topic to its owner among `shard_count` shards
// (topic_owner.hpp), and each durable session that had not ended to its home shard.
// `history_depth` is the broker's default for topics without their own (history.depth): a
// topic's history holds at most that many of its last updates, and at most about
// `memory_bytes` of them (history.memory_bytes; the index finds the others).
RestoredJournal restore_topics(const std::string& data_dir, unsigned shard_count,
                               std::uint32_t history_depth, std::uint64_t memory_bytes);

}  // namespace brook::runtime::journal
