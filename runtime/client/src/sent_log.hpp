#pragma once
// The client's recovery buffer: the session frames it wrote (publish, create topic, subscribe,
// unsubscribe), numbered from 1 in the order written, kept until the broker confirms it has
// them (Received, an answer, Connected.last_received on a resumption). After a drop,
// frames_after() gives the bytes to send again, so that nothing the application published is
// lost or applied twice.
// Bounded: past `limit_bytes`, the oldest frames already handed to the kernel are forgotten;
// a resumption that needs one of them reports the loss instead of hiding it.
// With a persistent queue each frame may carry the id of its record in the queue file (0:
// none); ids grow in log order, so confirmed_record() says how far the file may be confirmed.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <span>
#include <vector>

namespace brook {

class SentLog {
 public:
  explicit SentLog(std::size_t limit_bytes) : limit_(limit_bytes) {}

  // Appends one frame; returns its sequence number.
  // All or nothing: a frame whose bytes could not be stored leaves no entry behind.
  std::uint64_t append(std::span<const std::byte> frame, std::uint64_t record = 0) {
    entries_.push_back({static_cast<std::uint32_t>(frame.size()), record});
    try {
      bytes_.insert(bytes_.end(), frame.begin(), frame.end());
    } catch (...) {
      entries_.pop_back();
      throw;
    }
    if (record != 0) last_record_ = record;
    return ++last_;
  }
  std::uint64_t last() const noexcept { return last_; }
  std::uint64_t first() const noexcept { return last_ - entries_.size() + 1; }
  bool empty() const noexcept { return entries_.empty(); }

  // The broker has every frame up to `sequence`.
  void confirm(std::uint64_t sequence) {
    while (!entries_.empty() && first() <= sequence) {
      if (entries_.front().record != 0) confirmed_record_ = entries_.front().record;
      pop_front();
    }
    confirmed_ = std::max(confirmed_, std::min(sequence, last_));
    compact();
  }
  // Renumbers the log so that its first frame follows the broker's `last_received`: a named
  // session taken over from another process counts on from that process's frames. Only
  // before anything was confirmed.
  void rebase(std::uint64_t last_received) {
    last_ += last_received;
    confirmed_ += last_received;
  }
  // Frames forgotten (past the limit) that the broker never confirmed: perhaps lost.
  std::uint64_t forgotten_unconfirmed() const noexcept {
    return first() - 1 > confirmed_ ? first() - 1 - confirmed_ : 0;
  }
  // The last queue-file record the broker confirmed (a frame forgotten past the limit is not
  // confirmed: the file keeps it).
  std::uint64_t confirmed_record() const noexcept { return confirmed_record_; }
  std::uint64_t last_record() const noexcept { return last_record_; }

  // Forgets the oldest frames, among those up to `written` (handed to the kernel), while the
  // log holds more than its limit.
  void trim(std::uint64_t written) {
    while (!entries_.empty() && live_bytes() > limit_ && first() <= written) pop_front();
    compact();
  }
  // The frames after `sequence`, in order; `missing` is how many of them were forgotten.
  std::span<const std::byte> frames_after(std::uint64_t sequence, std::uint64_t& missing) const {
    missing = 0;
    std::size_t offset = start_;
    std::uint64_t seq = first();
    if (sequence + 1 < seq) missing = seq - (sequence + 1);
    for (std::size_t i = 0; i < entries_.size() && seq <= sequence; ++i, ++seq) offset += entries_[i].size;
    return {bytes_.data() + offset, bytes_.size() - offset};
  }
  // Every frame still held, in order, with its record id.
  template <class Visit>
  void for_each(Visit&& visit) const {
    std::size_t offset = start_;
    for (const Entry& e : entries_) {
      visit(std::span<const std::byte>(bytes_.data() + offset, e.size), e.record);
      offset += e.size;
    }
  }

 private:
  struct Entry {
    std::uint32_t size;
    std::uint64_t record;
  };
  std::size_t live_bytes() const noexcept { return bytes_.size() - start_; }
  void pop_front() {
    start_ += entries_.front().size;
    entries_.pop_front();
  }
  void compact() {
    // Move the live bytes down only when the dead prefix dominates: amortised O(1) per byte.
    if (start_ > 65536 && start_ * 2 > bytes_.size()) {
      bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(start_));
      start_ = 0;
    }
  }

  std::vector<std::byte> bytes_;
  std::size_t start_ = 0;
  std::deque<Entry> entries_;
  std::uint64_t last_ = 0;
  std::uint64_t confirmed_ = 0;
  std::uint64_t confirmed_record_ = 0;
  std::uint64_t last_record_ = 0;
  std::size_t limit_;
};

}  // namespace brook
