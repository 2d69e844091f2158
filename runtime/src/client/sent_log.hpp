#pragma once
// The client's recovery buffer: the session frames it wrote (publish, create topic, subscribe,
// unsubscribe), numbered from 1 in the order written, kept until the broker confirms it has
// them (Connected.last_received on a resumption). After a drop, frames_after() gives the bytes
// to send again, so that nothing the application published is lost or applied twice.
// Bounded: past `limit_bytes`, the oldest frames already handed to the kernel are forgotten;
// a resumption that needs one of them reports the loss instead of hiding it.
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
  std::uint64_t append(std::span<const std::byte> frame) {
    bytes_.insert(bytes_.end(), frame.begin(), frame.end());
    sizes_.push_back(static_cast<std::uint32_t>(frame.size()));
    return ++last_;
  }
  std::uint64_t last() const noexcept { return last_; }
  std::uint64_t first() const noexcept { return last_ - sizes_.size() + 1; }

  // The broker has every frame up to `sequence`.
  void confirm(std::uint64_t sequence) {
    while (!sizes_.empty() && first() <= sequence) pop_front();
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
  // Forgets the oldest frames, among those up to `written` (handed to the kernel), while the
  // log holds more than its limit.
  void trim(std::uint64_t written) {
    while (!sizes_.empty() && live_bytes() > limit_ && first() <= written) pop_front();
    compact();
  }
  // The frames after `sequence`, in order; `missing` is how many of them were forgotten.
  std::span<const std::byte> frames_after(std::uint64_t sequence, std::uint64_t& missing) const {
    missing = 0;
    std::size_t offset = start_;
    std::uint64_t seq = first();
    if (sequence + 1 < seq) missing = seq - (sequence + 1);
    for (std::size_t i = 0; i < sizes_.size() && seq <= sequence; ++i, ++seq) offset += sizes_[i];
    return {bytes_.data() + offset, bytes_.size() - offset};
  }

 private:
  std::size_t live_bytes() const noexcept { return bytes_.size() - start_; }
  void pop_front() {
    start_ += sizes_.front();
    sizes_.pop_front();
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
  std::deque<std::uint32_t> sizes_;
  std::uint64_t last_ = 0;
  std::uint64_t confirmed_ = 0;
  std::size_t limit_;
};

}  // namespace brook
