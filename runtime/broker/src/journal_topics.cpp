#include "journal_topics.hpp"

#include <charconv>
#include <cstring>
#include <filesystem>
#include <optional>

#include "brook/codec/frame.hpp"
#include "topic_owner.hpp"

namespace brook::runtime::journal {

namespace {

// The frame's own lengths agree with the record it came in: the record's checksum says the
// bytes are what was written, this says they are a publish frame the shards can read.
std::optional<std::string_view> publish_path(std::span<const std::byte> frame) {
  if (frame.size() < codec::publish_head_bytes) return std::nullopt;
  std::uint32_t size;
  std::uint16_t kind, path_bytes;
  std::memcpy(&size, frame.data(), 4);
  std::memcpy(&kind, frame.data() + 4, 2);
  std::memcpy(&path_bytes, frame.data() + 12, 2);
  if (size != frame.size() || kind != static_cast<std::uint16_t>(codec::FrameKind::publish) ||
      path_bytes == 0 || path_bytes > codec::max_path_bytes ||
      codec::publish_head_bytes + path_bytes > frame.size())
    return std::nullopt;
  return std::string_view(reinterpret_cast<const char*>(frame.data()) + codec::publish_head_bytes, path_bytes);
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

TopicRecordHead encode_topic_head(std::uint64_t seq, std::uint8_t property_flags, bool has_value) {
  TopicRecordHead head{.seq = seq, .property_flags = property_flags, .has_value = has_value};
  std::memcpy(head.bytes, &seq, 8);
  head.bytes[8] = std::byte{property_flags};
  head.bytes[9] = std::byte{has_value};
  return head;
}

RestoredJournal restore_topics(const std::string& data_dir, unsigned shard_count) {
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
  for (unsigned shard : shards) {
    const std::string dir = shard_directory(data_dir, shard);
    std::string bad_record;
    auto scan = scan_shard_journal(dir, shard, [&](const RecordView& r) {
      if (r.type != RecordType::topic || !bad_record.empty()) return;
      auto path = r.payload.size() > topic_record_head_bytes
                      ? publish_path(r.payload.subspan(topic_record_head_bytes))
                      : std::nullopt;
      if (!path) {
        bad_record = dir + ": record lsn " + std::to_string(r.lsn) + " is not a topic record";
        return;
      }
      std::uint64_t seq;
      std::memcpy(&seq, r.payload.data(), 8);
      auto [it, fresh] = latest.try_emplace(std::string(*path));
      if (!fresh && it->second.seq > seq) return;
      it->second.seq = seq;
      it->second.property_flags = static_cast<std::uint8_t>(r.payload[8]);
      it->second.has_value = r.payload[9] != std::byte{0};
      auto frame = r.payload.subspan(topic_record_head_bytes);
      it->second.frame.assign(frame.begin(), frame.end());
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
  for (auto& [path, topic] : latest)
    restored.topics_by_owner[topic_owner(path, shard_count)].push_back(std::move(topic));
  return restored;
}

}  // namespace brook::runtime::journal
