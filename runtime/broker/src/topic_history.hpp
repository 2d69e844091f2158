#pragma once
// A topic's history on its owner shard: its last updates, oldest first, each a reference to
// the update's publish frame (the buffer the topic's subscribers were sent, so keeping it
// copies nothing), bounded by count, bytes of values and age. A subscriber that asks for
// history is sent these (shard_replay.cpp); the journal keeps the same updates, so they come
// back after a restart (journal_topics.hpp).
//
// A ring that grows by doubling up to the topic's depth and then stays: steady publishing
// allocates nothing. Owned by one shard's thread.
#include <time.h>

#include <cstdint>
#include <utility>
#include <vector>

#include "brook/runtime/shared_buffer.hpp"

namespace brook::runtime {

// The clock of history entries: realtime, so that their age means the same after a restart;
// coarse (a few ms), as an age limit needs.
inline std::uint64_t history_clock_ns() noexcept {
  timespec ts;
  ::clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec);
}

struct HistoryLimits {
  std::uint32_t depth = 0;           // updates kept; 0: none
  std::uint64_t max_bytes = 0;       // of their publish frames
  std::uint64_t max_age_ns = 0;      // 0: no age limit
};

struct HistoryEntry {
  std::uint64_t seq = 0;
  std::uint64_t time_ns = 0;  // when the broker took it (CLOCK_REALTIME: it survives restarts)
  SharedBuffer* frame = nullptr;
};

class TopicHistory {
 public:
  TopicHistory() = default;
  ~TopicHistory() { clear(); }
  TopicHistory(TopicHistory&& other) noexcept { *this = std::move(other); }
  TopicHistory& operator=(TopicHistory&& other) noexcept {
    std::swap(ring_, other.ring_);
    std::swap(head_, other.head_);
    std::swap(count_, other.count_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }

  // Takes over one reference to `frame`. Older entries go while the limits are exceeded;
  // the newest stays even when it alone is over max_bytes (it is the current value).
  void push(const HistoryEntry& entry, const HistoryLimits& limits);
  // Drops the entries older than the limits' age at `now_ns` (realtime).
  void expire(std::uint64_t now_ns, const HistoryLimits& limits);
  void clear();

  std::size_t size() const noexcept { return count_; }
  bool empty() const noexcept { return count_ == 0; }
  std::uint64_t bytes() const noexcept { return bytes_; }
  // Oldest first.
  const HistoryEntry& operator[](std::size_t i) const noexcept {
    return ring_[(head_ + i) & (ring_.size() - 1)];
  }
  // The index of the first entry whose seq is above `seq` (size() when none is).
  std::size_t first_after(std::uint64_t seq) const noexcept;

 private:
  void pop_front();
  std::vector<HistoryEntry> ring_;  // capacity a power of two
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace brook::runtime
