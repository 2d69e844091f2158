#include "journal_topics.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>

#include "brook/codec/frame.hpp"
#include "topic_owner.hpp"

namespace brook::runtime::journal {

std::optional<TopicRecordBody> topic_record_body(std::span<const std::byte> body) {
  if (body.size() < codec::publish_head_bytes) return std::nullopt;
  std::uint32_t size;
  std::uint16_t kind, path_bytes;
  std::memcpy(&size, body.data(), 4);
  std::memcpy(&kind, body.data() + 4, 2);
  std::memcpy(&path_bytes, body.data() + 12, 2);
  if (size > body.size() || (body.size() - size) % publisher_position_bytes != 0 ||
      kind != static_cast<std::uint16_t>(codec::FrameKind::publish) || path_bytes == 0 ||
      path_bytes > codec::max_path_bytes || codec::publish_head_bytes + path_bytes > size)
    return std::nullopt;
  return TopicRecordBody{
      std::string_view(reinterpret_cast<const char*>(body.data()) + codec::publish_head_bytes, path_bytes),
      body.first(size), body.subspan(size)};
}

namespace {

void merge_publishers(std::vector<PublisherPosition>& into, std::span<const std::byte> positions) {
  for (std::size_t at = 0; at + publisher_position_bytes <= positions.size(); at += publisher_position_bytes) {
    PublisherPosition p;
    std::memcpy(&p.key, positions.data() + at, 8);
    std::memcpy(&p.frame, positions.data() + at + 8, 8);
    auto known = std::find_if(into.begin(), into.end(), [&](const PublisherPosition& q) { return q.key == p.key; });
    if (known == into.end()) into.push_back(p);
    else known->frame = std::max(known->frame, p.frame);
  }
}

std::optional<unsigned> shard_of_directory(const std::string& name) {
  constexpr std::string_view prefix = "shard-";
  if (name.size() <= prefix.size() || name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  unsigned shard = 0;
  auto [end, error] = std::from_chars(name.data() + prefix.size(), name.data() + name.size(), shard);
  if (error != std::errc{} || end != name.data() + name.size()) return std::nullopt;
  return shard;
}

}  // namespace

EncodedTopicHead encode_topic_head(const TopicRecordHead& head) {
  EncodedTopicHead out;
  std::byte* p = out.bytes;
  std::memcpy(p, &head.seq, 8);
  p[8] = std::byte{head.property_flags};
  p[9] = std::byte{head.has_value};
  std::memcpy(p + 12, &head.history, 4);
  std::memcpy(p + 16, &head.epoch, 8);
  std::memcpy(p + 24, &head.time_ns, 8);
  std::memcpy(p + 32, &head.history_bytes, 8);
  std::memcpy(p + 40, &head.history_age_ms, 4);
  return out;
}

TopicRecordHead decode_topic_head(std::span<const std::byte> payload) {
  TopicRecordHead head;
  const std::byte* p = payload.data();
  std::memcpy(&head.seq, p, 8);
  head.property_flags = static_cast<std::uint8_t>(p[8]);
  head.has_value = p[9] != std::byte{0};
  std::memcpy(&head.history, p + 12, 4);
  std::memcpy(&head.epoch, p + 16, 8);
  std::memcpy(&head.time_ns, p + 24, 8);
  std::memcpy(&head.history_bytes, p + 32, 8);
  std::memcpy(&head.history_age_ms, p + 40, 4);
  return head;
}

namespace {

// The newest `depth` updates, of at most `memory_bytes` (the newest always).
void trim_history(RestoredTopic& topic, std::size_t depth, std::uint64_t memory_bytes) {
  auto& history = topic.history;
  std::size_t keep = 0;
  std::uint64_t bytes = 0;
  while (keep < history.size() && keep < depth) {
    const std::uint64_t next = history[history.size() - 1 - keep].frame.size();
    if (keep > 0 && bytes + next > memory_bytes) break;
    bytes += next;
    ++keep;
  }
  history.erase(history.begin(), history.end() - static_cast<std::ptrdiff_t>(keep));
  topic.history_bytes = bytes;
}

// Keeps a topic's last `depth` updates in seq order, each seq once, and about `memory_bytes`
// of them. Records come in seq order within a shard's journal; across shard directories (the
// shard count changed) they may not, and a snapshot after a roll writes an update again: both
// are rare, so the common case is an append, and trimming waits until twice the limits are held.
void add_to_history(RestoredTopic& topic, const TopicRecordHead& head, std::span<const std::byte> frame,
                    std::size_t depth, std::uint64_t memory_bytes) {
  auto& history = topic.history;
  auto at = history.end();
  if (!history.empty() && head.seq <= history.back().seq) {
    at = std::lower_bound(history.begin(), history.end(), head.seq,
                          [](const RestoredUpdate& u, std::uint64_t seq) { return u.seq < seq; });
    if (at != history.end() && at->seq == head.seq) return;
  }
  history.insert(at, RestoredUpdate{head.seq, head.time_ns, {frame.begin(), frame.end()}});
  topic.history_bytes += frame.size();
  if (history.size() >= 2 * depth || topic.history_bytes >= 2 * memory_bytes) trim_history(topic, depth, memory_bytes);
}

}  // namespace

RestoredJournal restore_topics(const std::string& data_dir, unsigned shard_count,
                               std::uint32_t history_depth, std::uint64_t memory_bytes) {
  RestoredJournal restored;
  restored.topics_by_owner.resize(shard_count);
  restored.scans.resize(shard_count);
  namespace fs = std::filesystem;
  std::error_code ec;
  std::vector<unsigned> shards;
  if (fs::exists(data_dir, ec)) {
    for (const auto& entry : fs::directory_iterator(data_dir, ec))
      if (auto shard = shard_of_directory(entry.path().filename().string()); shard && entry.is_directory())
        shards.push_back(*shard);
  }
  if (ec) {
    restored.error = "cannot read " + data_dir + ": " + ec.message();
    return restored;
  }

  std::unordered_map<std::string, RestoredTopic> latest;
  std::unordered_map<std::string, SessionRecord> sessions;
  for (unsigned shard : shards) {
    const std::string dir = shard_directory(data_dir, shard);
    std::string bad_record;
    auto scan = scan_shard_journal(dir, shard, [&](const RecordView& r, const SegmentMark&) {
      if (!bad_record.empty()) return;
      if (r.type == RecordType::session) {
        auto session = decode_session_record(r.payload);
        if (!session) {
          bad_record = dir + ": record lsn " + std::to_string(r.lsn) + " is not a session record";
          return;
        }
        // A session's records are on its home shard, in order; after a change of the shard
        // count they may be on two, and the later one in time is the later record.
        auto [it, fresh] = sessions.try_emplace(session->id());
        if (fresh || it->second.time_ns <= session->time_ns) it->second = std::move(*session);
        return;
      }
      if (r.type != RecordType::topic) return;
      auto body = r.payload.size() > topic_record_head_bytes
                      ? topic_record_body(r.payload.subspan(topic_record_head_bytes))
                      : std::nullopt;
      if (!body) {
        bad_record = dir + ": record lsn " + std::to_string(r.lsn) + " is not a topic record";
        return;
      }
      const TopicRecordHead head = decode_topic_head(r.payload);
      auto [it, fresh] = latest.try_emplace(std::string(body->path));
      RestoredTopic& topic = it->second;
      merge_publishers(topic.publishers, body->publishers);
      const std::size_t depth = head.history >= 0 ? static_cast<std::size_t>(head.history) : history_depth;
      if (head.seq > 0 && depth > 0) {
        add_to_history(topic, head, body->frame, depth, memory_bytes);
        if (shard < shard_count && topic_owner(body->path, shard_count) == shard)
          topic.index.add(head.seq, r.lsn, head.time_ns, body->frame.size());
      }
      if (!fresh && topic.head.seq > head.seq) return;
      topic.head = head;
      topic.frame.assign(body->frame.begin(), body->frame.end());
    });
    if (!scan.error.empty() || !bad_record.empty()) {
      restored.error = !scan.error.empty() ? scan.error : bad_record;
      return restored;
    }
    if (!scan.repaired.empty()) restored.repaired += scan.repaired + "\n";
    restored.records += scan.records;
    if (shard < shard_count) restored.scans[shard] = std::move(scan);
  }
  restored.topics = latest.size();
  for (auto& [path, topic] : latest) {
    const std::size_t depth = topic.head.history >= 0 ? static_cast<std::size_t>(topic.head.history) : history_depth;
    trim_history(topic, depth, memory_bytes);
  }
  for (auto& [path, topic] : latest)
    restored.topics_by_owner[topic_owner(path, shard_count)].push_back(std::move(topic));
  restored.sessions_by_home.resize(shard_count);
  for (auto& [id, session] : sessions) {
    if (session.ended) continue;
    ++restored.sessions;
    restored.sessions_by_home[session_home(id, shard_count)].push_back(std::move(session));
  }
  return restored;
}

}  // namespace brook::runtime::journal
