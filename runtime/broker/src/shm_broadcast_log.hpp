#pragma once
// A shard's broadcast log: update bodies written once into a shared segment that every shm
// client of the broker maps read-only, so that an update for many co-located subscribers costs
// one copy, and each subscriber's ring carries only a 48-byte reference (FrameKind::
// shared_update) to it.
//
// A body is written when its update reaches the shard (on_deliver) and an shm session is among
// its subscribers. Positions are byte counts that only grow; a body never straddles the end of
// the buffer (the space before the end is skipped). Nothing is overwritten while a client may
// still read it: each reference written to a ring pins its body until the client's read
// position passes the reference (ShmLink::pins), and the log reclaims space only up to the
// oldest pin. A body that is reclaimed before a ring took its reference (its subscriber was
// behind while the log went round), or that found no room, goes inline as over TCP.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>

namespace brook::runtime {

class ShmBroadcastLog {
 public:
  ShmBroadcastLog() = default;
  // `reclaimed`: the segment header's word where clients read how far the log was reclaimed.
  ShmBroadcastLog(std::span<std::byte> log, std::uint64_t* reclaimed) noexcept
      : data_(log.data()), mask_(log.size() - 1), reclaimed_(reclaimed) {}

  bool enabled() const noexcept { return data_ != nullptr; }
  // Whether the body at `position` is still intact (not reclaimed).
  bool live(std::uint64_t position) const noexcept { return position >= tail_; }
  std::uint64_t bodies_written() const noexcept { return bodies_written_; }

  // Copies `body` in and returns its position, or nullopt when there is no room even after
  // reclaiming up to oldest_pinned(head) (the oldest position a client may still read, the
  // head when none) or when the body is too large to be worth sharing.
  template <class OldestPinned>
  std::optional<std::uint64_t> append(std::span<const std::byte> body, OldestPinned&& oldest_pinned) {
    const std::size_t capacity = mask_ + 1;
    if (!data_ || body.empty() || body.size() > capacity / 4) return std::nullopt;
    const std::size_t at = static_cast<std::size_t>(head_ & mask_);
    const std::size_t skip = capacity - at < body.size() ? capacity - at : 0;
    const std::uint64_t end = head_ + skip + body.size();
    if (end - tail_ > capacity) {
      tail_ = oldest_pinned(head_);
      // release: a client that reads this before a body knows not to trust the body.
      std::atomic_ref<std::uint64_t>(*reclaimed_).store(tail_, std::memory_order_release);
      if (end - tail_ > capacity) return std::nullopt;
    }
    const std::uint64_t position = head_ + skip;
    std::memcpy(data_ + (position & mask_), body.data(), body.size());
    head_ = end;
    ++bodies_written_;
    return position;
  }

 private:
  std::byte* data_ = nullptr;
  std::size_t mask_ = 0;
  std::uint64_t* reclaimed_ = nullptr;
  std::uint64_t head_ = 0;  // where the next body goes
  std::uint64_t tail_ = 0;  // everything before it may be overwritten
  std::uint64_t bodies_written_ = 0;
};

}  // namespace brook::runtime
