#pragma once
// The client's recovery buffer: the session frames it wrote (publish, create topic, subscribe,
// unsubscribe), numbered from 1 in the order written, kept until the broker confirms it has
// them (Received, an answer, Connected.last_received on a resumption). After a drop,
// visit_after() gives the bytes to send again, so that nothing the application published is
// lost or applied twice.
// Bounded: past `limit_bytes`, the oldest frames already handed to the kernel are forgotten;
// a resumption that needs one of them reports the loss instead of hiding it.
// With a persistent queue each frame may carry the id of its record in the queue file (0:
// none); ids grow in log order, so confirmed_record() says how far the file may be confirmed.
//
// The bytes live in a ring, each frame in one piece (one that would straddle the end starts
// the next lap). A flat-out publisher's log holds megabytes that the broker has not confirmed
// yet: a vector whose confirmed front was cut away moved all of them again each time the dead
// front outgrew them, as much copying as the frames' first write (8% of a one-core publisher
// and subscriber's CPU). The ring moves nothing then; only a log that holds little is moved
// back to the ring's start, so that a quiet publisher keeps writing the same warm bytes.
#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>
#include <vector>

namespace brook {

class SentLog {
 public:
  explicit SentLog(std::size_t limit_bytes) : limit_(limit_bytes) {}

  // Appends one frame; returns its sequence number.
  // All or nothing: a frame whose bytes could not be stored leaves no entry behind.
  std::uint64_t append(std::span<const std::byte> frame, std::uint64_t record = 0) {
    std::uint64_t at = place(frame.size());
    entries_.push_back({at, static_cast<std::uint32_t>(frame.size()), record});
    if (!frame.empty()) std::memcpy(bytes_at(at), frame.data(), frame.size());
    end_ = at + frame.size();
    if (record != 0) last_record_ = record;
    return ++last_;
  }
  std::uint64_t last() const noexcept { return last_; }
  std::uint64_t first() const noexcept { return last_ - entries_.size() + 1; }
  bool empty() const noexcept { return entries_.empty(); }
  // Bytes the frames held take, the ends of laps they skipped included.
  std::size_t held_bytes() const noexcept { return entries_.empty() ? 0 : end_ - entries_.front().at; }
  std::size_t capacity() const noexcept { return capacity_; }
  // Where in the ring the next frame would go if it fits before the end.
  std::size_t end_offset() const noexcept { return capacity_ == 0 ? 0 : end_ & (capacity_ - 1); }

  // The broker has every frame up to `sequence`.
  void confirm(std::uint64_t sequence) {
    while (!entries_.empty() && first() <= sequence) {
      if (entries_.front().record != 0) confirmed_record_ = entries_.front().record;
      entries_.pop_front();
    }
    confirmed_ = std::max(confirmed_, std::min(sequence, last_));
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

  // While the kernel reads frames straight from the log (a send in flight), their bytes stay
  // where they are: a ring that grows keeps its old bytes until release_in_place(), and the
  // log is not moved back to its start. Frames the broker confirms meanwhile may be
  // overwritten: the kernel took their bytes already, or the broker could not have them.
  void hold_in_place() noexcept { in_place_ = true; }
  void release_in_place() noexcept {
    in_place_ = false;
    retired_.clear();
  }

  // Forgets the oldest frames, among those up to `written` (handed to the kernel), while the
  // log holds more than its limit.
  void trim(std::uint64_t written) {
    while (!entries_.empty() && held_bytes() > limit_ && first() <= written) entries_.pop_front();
  }
  // Hands `visit` the bytes of the frames after `sequence`, in order, as few contiguous spans
  // as the ring allows (two at most but for empty frames); returns how many of those frames
  // were forgotten.
  template <class Visit>
  std::uint64_t visit_after(std::uint64_t sequence, Visit&& visit) const {
    const std::uint64_t missing = sequence + 1 < first() ? first() - (sequence + 1) : 0;
    std::size_t i = sequence < first() ? 0 : static_cast<std::size_t>(std::min<std::uint64_t>(sequence - first() + 1, entries_.size()));
    while (i < entries_.size()) {
      const std::uint64_t from = entries_[i].at;
      std::uint64_t to = from + entries_[i].size;
      // A frame that ends exactly at the ring's end is followed by one at its start: the same
      // position counted on, but not the next byte in memory.
      for (++i; i < entries_.size() && entries_[i].at == to && (to & (capacity_ - 1)) != 0; ++i)
        to += entries_[i].size;
      if (to > from) visit(std::span<const std::byte>(bytes_at(from), to - from));
    }
    return missing;
  }
  // Every frame still held, in order, with its record id.
  template <class Visit>
  void for_each(Visit&& visit) const {
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      const Entry& e = entries_[i];
      visit(std::span<const std::byte>(bytes_at(e.at), e.size), e.record);
    }
  }

 private:
  struct Entry {
    std::uint64_t at;  // position: bytes written to the ring before it, laps' ends included
    std::uint32_t size;
    std::uint64_t record;
  };
  std::byte* bytes_at(std::uint64_t at) const noexcept { return ring_.get() + (at & (capacity_ - 1)); }

  // Where a frame of `size` bytes goes: after the last one, or at the start of the next lap
  // when it would straddle the end. Grows the ring (strong guarantee) if it is full.
  std::uint64_t place(std::size_t size) {
    rewind_if_small();
    const std::uint64_t start = entries_.empty() ? end_ : entries_.front().at;
    std::uint64_t at = lap_position(end_, size);
    if (capacity_ == 0 || at + size - start > capacity_) {
      grow(held_bytes() + size);
      at = lap_position(end_, size);
    }
    return at;
  }
  // Moves the frames held to the ring's start when they take less than an eighth of the
  // bytes before them (at least `warm_bytes` in): at most one byte moved for eight written.
  void rewind_if_small() noexcept {
    if (in_place_) return;
    if (entries_.empty()) {
      end_ = 0;
      return;
    }
    const std::uint64_t front = entries_.front().at;
    const std::size_t offset = front & (capacity_ - 1);
    const std::size_t held = held_bytes();
    if (offset < warm_bytes || held * 8 > offset || offset + held > capacity_) return;  // or laps
    std::memmove(ring_.get(), ring_.get() + offset, held);
    for (std::size_t i = 0; i < entries_.size(); ++i) entries_[i].at -= front;
    end_ = held;
  }
  std::uint64_t lap_position(std::uint64_t end, std::size_t size) const noexcept {
    if (capacity_ == 0) return end;
    const std::uint64_t offset = end & (capacity_ - 1);
    return offset + size > capacity_ ? end + (capacity_ - offset) : end;
  }
  // Copies the frames held to the start of a ring half as large again as the log needs now
  // (at least twice the last); the positions start again from 0.
  void grow(std::size_t needed) {
    const std::size_t capacity =
        std::max<std::size_t>({std::bit_ceil(needed + needed / 2), capacity_ * 2, warm_bytes});
    auto ring = std::make_unique_for_overwrite<std::byte[]>(capacity);  // before anything moves
    if (in_place_) retired_.reserve(retired_.size() + 1);
    std::uint64_t at = 0;
    for (std::size_t i = 0; i < entries_.size(); ++i) {
      Entry& e = entries_[i];
      if (e.size) std::memcpy(ring.get() + at, bytes_at(e.at), e.size);
      e.at = at;
      at += e.size;
    }
    if (in_place_ && ring_) retired_.push_back(std::move(ring_));
    ring_ = std::move(ring);
    capacity_ = capacity;
    end_ = at;
  }

  static constexpr std::size_t warm_bytes = 65536;

  std::unique_ptr<std::byte[]> ring_;
  bool in_place_ = false;
  std::vector<std::unique_ptr<std::byte[]>> retired_;  // rings outgrown while in place
  std::size_t capacity_ = 0;  // a power of two (0 until the first frame)
  std::uint64_t end_ = 0;     // position after the last frame written
  // A ring of entries, not a deque: a deque allocates a block for every 21 frames and frees
  // one as many are confirmed, and a flat-out publisher's log turns over thousands of them.
  class Entries {
   public:
    std::size_t size() const noexcept { return count_; }
    bool empty() const noexcept { return count_ == 0; }
    Entry& operator[](std::size_t i) noexcept { return slots_[(head_ + i) & (slots_.size() - 1)]; }
    const Entry& operator[](std::size_t i) const noexcept { return slots_[(head_ + i) & (slots_.size() - 1)]; }
    Entry& front() noexcept { return slots_[head_]; }
    const Entry& front() const noexcept { return slots_[head_]; }
    void pop_front() noexcept {
      head_ = (head_ + 1) & (slots_.size() - 1);
      --count_;
    }
    void push_back(const Entry& e) {
      if (count_ == slots_.size()) grow();
      slots_[(head_ + count_) & (slots_.size() - 1)] = e;
      ++count_;
    }

   private:
    void grow() {
      std::vector<Entry> slots(std::max<std::size_t>(slots_.size() * 2, 64));
      for (std::size_t i = 0; i < count_; ++i) slots[i] = (*this)[i];
      slots_ = std::move(slots);
      head_ = 0;
    }
    std::vector<Entry> slots_;
    std::size_t head_ = 0;
    std::size_t count_ = 0;
  };
  Entries entries_;
  std::uint64_t last_ = 0;
  std::uint64_t confirmed_ = 0;
  std::uint64_t confirmed_record_ = 0;
  std::uint64_t last_record_ = 0;
  std::size_t limit_;
};

}  // namespace brook
