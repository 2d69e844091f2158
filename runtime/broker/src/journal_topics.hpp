#pragma once
// Topics in the journal. The owner shard writes a topic record whenever a topic is created
// and whenever it takes an update: the topic's sequence, its properties and its publish frame
// (path, type and value), so each record alone says what the topic was at that sequence.
// At start-up the broker reads every shard's journal and keeps, per path, the record with the
// highest sequence: the topic as it was last made durable. The shard count may have changed
// since (a topic's owner is its path's hash modulo the count), so records are gathered from
// every shard directory and handed to each topic's owner now.
//
//   topic record payload: u64 seq | u8 property flags | u8 has value | u16 0 | u32 0 | frame
//
// restore_topics() runs on the thread that starts the broker, before the shards run.
#include <cstdint>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "journal_scan.hpp"

namespace brook::runtime::journal {

constexpr std::size_t topic_record_head_bytes = 16;

struct TopicRecordHead {
  std::uint64_t seq = 0;
  std::uint8_t property_flags = 0;  // topic_property_flags() of shard_message.hpp
  bool has_value = false;
  std::byte bytes[topic_record_head_bytes]{};  // encoded: the record's payload head
};
TopicRecordHead encode_topic_head(std::uint64_t seq, std::uint8_t property_flags, bool has_value);

// A topic as its last durable record left it.
struct RestoredTopic {
  std::uint64_t seq = 0;
  std::uint8_t property_flags = 0;
  bool has_value = false;
  std::vector<std::byte> frame;  // a publish frame: path, type, value
};

struct RestoredJournal {
  std::vector<std::vector<RestoredTopic>> topics_by_owner;  // [owner shard]
  std::vector<ScanResult> scans;   // [shard] for shard < shard count: where each continues
  std::uint64_t records = 0;
  std::uint64_t topics = 0;
  std::string repaired;            // every repair, one per line
  std::string error;               // damage that stops the broker from starting
};

// Reads DATA_DIR/shard-* and returns each topic to its owner among `shard_count` shards
// (topic_owner.hpp).
RestoredJournal restore_topics(const std::string& data_dir, unsigned shard_count);

}  // namespace brook::runtime::journal
