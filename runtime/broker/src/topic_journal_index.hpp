#pragma once
// Where a topic's history is in its owner's journal, for a topic that keeps more history
// than memory holds (history.memory_bytes): a mark every `updates_per_mark` updates (its
// sequence, the record's lsn, its time and the topic's update bytes before it), oldest
// first. A replay reads the journal from the mark at or before the sequence it wants
// (shard_journal_replay.cpp); the oldest mark says which segments the topic still needs
// (Shard::remove_unretained_segments). Sparse, so a million updates of history cost some
// 30,000 marks of 32 bytes. Owned by one shard's thread.
#include <cstdint>
#include <deque>

#include "topic_history.hpp"

namespace brook::runtime {

struct TopicMark {
  std::uint64_t seq = 0;
  std::uint64_t lsn = 0;
  std::uint64_t time_ns = 0;
  std::uint64_t bytes_before = 0;  // of the topic's updates journalled before this one
};

class TopicJournalIndex {
 public:
  static constexpr unsigned updates_per_mark = 32;

  // An update journalled at `lsn`; a sequence at or below the last one added (a snapshot
  // writing the current value again) adds nothing.
  void add(std::uint64_t seq, std::uint64_t lsn, std::uint64_t time_ns, std::uint64_t bytes) {
    if (seq <= last_seq_) return;
    if (marks_.empty() || ++since_mark_ >= updates_per_mark) {
      marks_.push_back({seq, lsn, time_ns, total_bytes_});
      since_mark_ = 0;
    }
    last_seq_ = seq;
    total_bytes_ += bytes;
  }

  // Drops the marks whose updates, up to the next mark, are all past the retention limits
  // for a topic now at `topic_seq`. The last mark stays.
  void trim(std::uint64_t topic_seq, const HistoryLimits& retention, std::uint64_t now_ns) {
    if (retention.depth == 0) return clear();
    const std::uint64_t oldest_kept = topic_seq >= retention.depth ? topic_seq - retention.depth + 1 : 1;
    while (marks_.size() > 1) {
      const TopicMark& next = marks_[1];
      const bool by_count = next.seq <= oldest_kept;
      const bool by_bytes = retention.max_bytes != 0 && total_bytes_ - next.bytes_before >= retention.max_bytes;
      const bool by_age = retention.max_age_ns != 0 && next.time_ns + retention.max_age_ns < now_ns;
      if (!by_count && !by_bytes && !by_age) break;
      marks_.pop_front();
    }
  }

  void clear() {
    marks_.clear();
    since_mark_ = 0;
    last_seq_ = 0;
  }
  bool empty() const noexcept { return marks_.empty(); }
  std::uint64_t oldest_seq() const noexcept { return marks_.empty() ? 0 : marks_.front().seq; }
  std::uint64_t oldest_lsn() const noexcept { return marks_.empty() ? 0 : marks_.front().lsn; }
  // The lsn to read from for `seq`: its mark's or the last one's before it (the oldest
  // mark's when `seq` is older).
  std::uint64_t lsn_for(std::uint64_t seq) const noexcept {
    std::size_t low = 0, high = marks_.size();
    while (low < high) {
      const std::size_t mid = (low + high) / 2;
      if (marks_[mid].seq <= seq) low = mid + 1;
      else high = mid;
    }
    return marks_.empty() ? 0 : marks_[low == 0 ? 0 : low - 1].lsn;
  }
  std::size_t marks() const noexcept { return marks_.size(); }

 private:
  std::deque<TopicMark> marks_;
  std::uint64_t total_bytes_ = 0;
  std::uint64_t last_seq_ = 0;
  unsigned since_mark_ = 0;
};

}  // namespace brook::runtime
