#include "topic_history.hpp"

#include <algorithm>
#include <bit>

namespace brook::runtime {

void TopicHistory::push(const HistoryEntry& entry, const HistoryLimits& limits) {
  if (limits.depth == 0) {
    entry.frame->release();
    clear();
    return;
  }
  while (count_ >= limits.depth) pop_front();
  if (count_ == ring_.size()) {
    // count_ < depth here, so the new capacity is above count_.
    std::vector<HistoryEntry> grown(std::min(std::bit_ceil(std::size_t{limits.depth}),
                                             std::max<std::size_t>(2, ring_.size() * 2)));
    for (std::size_t i = 0; i < count_; ++i) grown[i] = (*this)[i];
    ring_.swap(grown);
    head_ = 0;
  }
  ring_[(head_ + count_) & (ring_.size() - 1)] = entry;
  ++count_;
  bytes_ += entry.frame->size();
  while (count_ > 1 && bytes_ > limits.max_bytes) pop_front();
}

void TopicHistory::expire(std::uint64_t now_ns, const HistoryLimits& limits) {
  if (limits.max_age_ns == 0) return;
  while (count_ > 0 && (*this)[0].time_ns + limits.max_age_ns < now_ns) pop_front();
}

void TopicHistory::clear() {
  while (count_ > 0) pop_front();
}

void TopicHistory::pop_front() {
  HistoryEntry& oldest = ring_[head_];
  bytes_ -= oldest.frame->size();
  oldest.frame->release();
  oldest = {};
  head_ = (head_ + 1) & (ring_.size() - 1);
  --count_;
}

std::size_t TopicHistory::first_after(std::uint64_t seq) const noexcept {
  std::size_t low = 0, high = count_;
  while (low < high) {
    const std::size_t mid = (low + high) / 2;
    if ((*this)[mid].seq <= seq) low = mid + 1;
    else high = mid;
  }
  return low;
}

}  // namespace brook::runtime
