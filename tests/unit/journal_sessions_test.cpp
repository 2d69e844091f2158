// Session records and publisher positions in the journal: a session record reads back whole
// and a damaged one is refused; restore_topics() keeps each session's last record, drops the
// ended ones, hands each to its home shard, and merges every record's publisher positions.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../../runtime/broker/src/journal_format.hpp"
#include "../../runtime/broker/src/journal_sessions.hpp"
#include "../../runtime/broker/src/journal_topics.hpp"
#include "brook/codec/frame.hpp"

namespace brook::runtime::journal {
namespace {

namespace fs = std::filesystem;

SessionRecord sample_session(std::int64_t number) {
  SessionRecord r;
  r.principal = "desk";
  r.number = number;
  for (std::size_t i = 0; i < r.token.size(); ++i) r.token[i] = std::byte(i * 7 + 1);
  r.reconnect_timeout_ms = 30'000;
  r.time_ns = 1'000 + static_cast<std::uint64_t>(number);
  r.through = 42;
  r.publisher_key = 0xfeedfacecafebeefull;
  r.subscriptions = {{7, 0, 0, "Odds//"}, {9, 16, 0, "Scores/*"}};
  return r;
}

TEST(JournalSessions, a_session_record_reads_back_whole) {
  std::vector<std::byte> bytes;
  const SessionRecord written = sample_session(3);
  encode_session_record(written, bytes);
  auto read = decode_session_record(bytes);
  ASSERT_TRUE(read);
  EXPECT_EQ(read->id(), "desk/3");
  EXPECT_EQ(read->token, written.token);
  EXPECT_EQ(read->reconnect_timeout_ms, 30'000u);
  EXPECT_EQ(read->through, 42u);
  EXPECT_EQ(read->publisher_key, written.publisher_key);
  EXPECT_FALSE(read->ended);
  ASSERT_EQ(read->subscriptions.size(), 2u);
  EXPECT_EQ(read->subscriptions[0].request_id, 7u);
  EXPECT_EQ(read->subscriptions[0].selector, "Odds//");
  EXPECT_EQ(read->subscriptions[1].history, 16u);
  EXPECT_EQ(read->subscriptions[1].selector, "Scores/*");
}

TEST(JournalSessions, a_cut_or_padded_record_is_refused) {
  std::vector<std::byte> bytes;
  encode_session_record(sample_session(3), bytes);
  for (std::size_t cut = 0; cut < bytes.size(); ++cut)
    EXPECT_FALSE(decode_session_record(std::span(bytes).first(cut))) << "cut at " << cut;
  bytes.push_back(std::byte{0});
  EXPECT_FALSE(decode_session_record(bytes));
}

class JournalRestore : public ::testing::Test {
 protected:
  JournalRestore() {
    dir_ = fs::temp_directory_path() / ("brook-journal-sessions-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  ~JournalRestore() override { fs::remove_all(dir_); }

  // Writes `records` as shard `shard`'s only segment.
  void write_shard(unsigned shard, const std::vector<std::pair<RecordType, std::vector<std::byte>>>& records) {
    const std::string shard_dir = shard_directory(dir_.string(), shard);
    fs::create_directories(shard_dir);
    std::vector<std::byte> out(segment_header_bytes);
    write_segment_header(out.data(), {.shard = shard, .first_lsn = 1});
    std::uint64_t lsn = 1;
    for (const auto& [type, payload] : records) append_record(out, lsn++, type, payload);
    std::ofstream(shard_dir + "/" + segment_name(1), std::ios::binary)
        .write(reinterpret_cast<const char*>(out.data()), static_cast<std::streamsize>(out.size()));
  }

  static std::vector<std::byte> session_payload(const SessionRecord& r) {
    std::vector<std::byte> bytes;
    encode_session_record(r, bytes);
    return bytes;
  }

  // A topic record of `path` at `seq`, with the given publisher positions after its frame.
  static std::vector<std::byte> topic_payload(std::string_view path, std::uint64_t seq,
                                              std::vector<PublisherPosition> publishers) {
    const auto head = encode_topic_head({.seq = seq, .has_value = true, .epoch = 5});
    std::vector<std::byte> frame(codec::publish_frame_bytes(path.size(), 2));
    const char value[] = "v1";
    codec::write_publish(frame.data(), 0, path, codec::TopicType::string, std::as_bytes(std::span(value, 2)));
    std::vector<std::byte> payload(head.bytes, head.bytes + topic_record_head_bytes);
    payload.insert(payload.end(), frame.begin(), frame.end());
    const auto* p = reinterpret_cast<const std::byte*>(publishers.data());
    payload.insert(payload.end(), p, p + publishers.size() * publisher_position_bytes);
    return payload;
  }

  fs::path dir_;
};

TEST_F(JournalRestore, each_live_sessions_last_record_goes_to_its_home_shard) {
  SessionRecord first = sample_session(1);
  SessionRecord changed = first;
  changed.time_ns += 10;
  changed.subscriptions.pop_back();
  SessionRecord ended = sample_session(2);
  SessionRecord ended_later = ended;
  ended_later.time_ns += 10;
  ended_later.ended = true;
  write_shard(0, {{RecordType::session, session_payload(first)},
                  {RecordType::session, session_payload(ended)},
                  {RecordType::session, session_payload(changed)},
                  {RecordType::session, session_payload(ended_later)}});
  const unsigned shards = 3;
  auto restored = restore_topics(dir_.string(), shards, 8, 1u << 20);
  ASSERT_TRUE(restored.error.empty()) << restored.error;
  EXPECT_EQ(restored.sessions, 1u);
  const unsigned home = session_home("desk/1", shards);
  ASSERT_EQ(restored.sessions_by_home[home].size(), 1u);
  EXPECT_EQ(restored.sessions_by_home[home][0].subscriptions.size(), 1u) << "not the session's last record";
}

TEST_F(JournalRestore, publisher_positions_of_every_record_are_merged_per_topic) {
  write_shard(0, {{RecordType::topic, topic_payload("Odds/a", 1, {{11, 5}})},
                  {RecordType::topic, topic_payload("Odds/a", 2, {{22, 9}})},
                  {RecordType::topic, topic_payload("Odds/a", 3, {{11, 6}})},
                  {RecordType::topic, topic_payload("Odds/a", 4, {})}});
  auto restored = restore_topics(dir_.string(), 1, 8, 1u << 20);
  ASSERT_TRUE(restored.error.empty()) << restored.error;
  ASSERT_EQ(restored.topics_by_owner[0].size(), 1u);
  const auto& topic = restored.topics_by_owner[0][0];
  EXPECT_EQ(topic.head.seq, 4u);
  ASSERT_EQ(topic.publishers.size(), 2u);
  for (const auto& p : topic.publishers) EXPECT_EQ(p.frame, p.key == 11 ? 6u : 9u) << p.key;
}

TEST_F(JournalRestore, a_damaged_session_record_stops_the_start_with_where) {
  std::vector<std::byte> bad(10, std::byte{1});
  write_shard(0, {{RecordType::session, bad}});
  auto restored = restore_topics(dir_.string(), 1, 8, 1u << 20);
  EXPECT_NE(restored.error.find("is not a session record"), std::string::npos) << restored.error;
}

}  // namespace
}  // namespace brook::runtime::journal
