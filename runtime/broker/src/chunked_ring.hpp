#pragma once
// A ring addressed by absolute position whose capacity grows without moving what it holds.
//
// A session's outbound ring is also its recovery window: 8 MiB of small frames is ~100,000
// entries. A doubling vector copied the whole window into freshly faulted memory each time it
// doubled, on the shard thread: 3.5 ms at 16,384 entries, during which every session of the
// shard waited. Here a small ring still doubles (at most one chunk, 32 KiB, is copied); past a
// chunk, capacity grows by adding chunks, and a chunk is allocated only when the tail first
// enters it, so a growth step costs a directory of pointers and at most one chunk's copy.
//
//   directory_ (power of two)   ->  chunk (1 << shift_ entries)
//   position p lives at  directory_[(p >> shift_) & directory mask][p & (chunk - 1)]
//
// Chunks stay allocated at the ring's high-water mark until release_unused() frees the ones
// that hold no live entry (the memory budget calls it when memory runs short).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace brook::runtime {

template <class T, unsigned MaxChunkShift = 9>
class ChunkedRing {
 public:
  explicit ChunkedRing(unsigned initial_shift = 4) : shift_(initial_shift) {
    directory_.push_back(std::make_unique<T[]>(std::size_t{1} << shift_));
    allocated_chunks_ = 1;
  }

  std::size_t capacity() const noexcept { return directory_.size() << shift_; }
  // Entries in allocated chunks: what the ring's storage really costs, in entries.
  std::size_t allocated() const noexcept { return allocated_chunks_ << shift_; }

  std::size_t allocated_chunks() const noexcept { return allocated_chunks_; }

  // Frees every chunk (at most max_chunks) that holds none of the live entries [head, tail)
  // and is not the one the next push goes to. Returns the entries freed.
  std::size_t release_unused(std::uint64_t head, std::uint64_t tail, std::size_t max_chunks = SIZE_MAX) {
    if (directory_.size() == 1) return 0;  // a single chunk is the whole ring
    const std::uint64_t first = head >> shift_;
    const std::uint64_t last = tail >> shift_;  // the tail's chunk stays: it is written next
    std::size_t freed = 0;
    for (std::uint64_t c = 0; c < directory_.size() && max_chunks > 0; ++c) {
      if (!directory_[c]) continue;
      // The live chunks fill the slots from first's on, circularly, for last - first + 1.
      if (((c - first) & directory_mask_) <= last - first) continue;
      directory_[c].reset();
      --allocated_chunks_;
      --max_chunks;
      freed += std::size_t{1} << shift_;
    }
    return freed;
  }

  T& operator[](std::uint64_t position) noexcept {
    return directory_[(position >> shift_) & directory_mask_][position & slot_mask()];
  }
  const T& operator[](std::uint64_t position) const noexcept {
    return directory_[(position >> shift_) & directory_mask_][position & slot_mask()];
  }

  // Makes position `tail` writable while [head, tail) hold live entries.
  void prepare(std::uint64_t head, std::uint64_t tail) {
    if (tail - head == capacity()) grow(head, tail);
    std::unique_ptr<T[]>& chunk = directory_[(tail >> shift_) & directory_mask_];
    if (!chunk) {
      chunk = std::make_unique<T[]>(std::size_t{1} << shift_);
      ++allocated_chunks_;
    }
  }

 private:
  std::uint64_t slot_mask() const noexcept { return (std::uint64_t{1} << shift_) - 1; }

  // Only when full: [head, tail) spans every slot.
  void grow(std::uint64_t head, std::uint64_t tail) {
    if (shift_ < MaxChunkShift) {
      auto bigger = std::make_unique<T[]>(std::size_t{2} << shift_);
      const std::uint64_t mask = (std::uint64_t{2} << shift_) - 1;
      for (std::uint64_t p = head; p != tail; ++p) bigger[p & mask] = std::move((*this)[p]);
      directory_[0] = std::move(bigger);
      ++shift_;
      return;
    }
    const std::size_t old_mask = directory_mask_;
    std::vector<std::unique_ptr<T[]>> bigger(directory_.size() * 2);
    const std::size_t new_mask = bigger.size() - 1;
    const std::uint64_t first = head >> shift_, last = (tail - 1) >> shift_;
    // The tail's chunk shares its slot with the head's when the ring wrapped inside one chunk:
    // its entries, below the head's index, move to a chunk of their own. Allocated before
    // anything moves, so that running out of memory leaves the ring as it was.
    std::unique_ptr<T[]> own;
    if (last - first == directory_.size()) {
      own = std::make_unique<T[]>(std::size_t{1} << shift_);
      ++allocated_chunks_;
    }
    for (std::uint64_t c = first; c <= last; ++c) {
      std::unique_ptr<T[]>& from = directory_[c & old_mask];
      if (from) {
        bigger[c & new_mask] = std::move(from);
        continue;
      }
      T* shared = bigger[first & new_mask].get();
      for (std::uint64_t p = c << shift_; p != tail; ++p)
        own[p & slot_mask()] = std::move(shared[p & slot_mask()]);
      bigger[c & new_mask] = std::move(own);
    }
    directory_ = std::move(bigger);
    directory_mask_ = new_mask;
  }

  std::vector<std::unique_ptr<T[]>> directory_;
  std::size_t directory_mask_ = 0;
  std::size_t allocated_chunks_ = 0;
  unsigned shift_;
};

}  // namespace brook::runtime
