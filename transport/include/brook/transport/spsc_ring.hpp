#pragma once
// Bounded single-producer single-consumer ring of trivially copyable records. Exactly one
// producer thread calls try_push and one consumer thread calls try_pop / drain. Positions are
// 64-bit counters that only grow (index = position & mask), so full and empty never alias.
// Each side keeps a cached copy of the other side's position and reads the shared one only
// when the cache says the ring looks full (producer) or empty (consumer).
#include <atomic>
#include <bit>
#include <cassert>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace brook::transport {

inline constexpr std::size_t cache_line_bytes = 64;

template <class T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "ring slots are copied as bytes");

 public:
  explicit SpscRing(std::size_t capacity)
      : mask_(std::bit_ceil(capacity) - 1), slots_(new T[mask_ + 1]) {}

  std::size_t capacity() const noexcept { return mask_ + 1; }

  // Producer side.
  bool try_push(const T& value) noexcept {
    const std::uint64_t tail = producer_.position.load(std::memory_order_relaxed);
    if (tail - producer_.cached_other > mask_) {
      // acquire: pairs with the release store of the consumer position in try_pop/drain, so
      // the slot we are about to overwrite has been read.
      producer_.cached_other = consumer_.position.load(std::memory_order_acquire);
      if (tail - producer_.cached_other > mask_) return false;
    }
    slots_[tail & mask_] = value;
    // release: pairs with the acquire in the consumer's refresh, publishing the slot contents.
    producer_.position.store(tail + 1, std::memory_order_release);
    return true;
  }

  std::size_t free_slots() noexcept {
    const std::uint64_t tail = producer_.position.load(std::memory_order_relaxed);
    // acquire: same pairing as in try_push.
    producer_.cached_other = consumer_.position.load(std::memory_order_acquire);
    return capacity() - static_cast<std::size_t>(tail - producer_.cached_other);
  }

  // Consumer side.
  bool try_pop(T& out) noexcept {
    const std::uint64_t head = consumer_.position.load(std::memory_order_relaxed);
    if (head == consumer_.cached_other) {
      // acquire: pairs with the release in try_push.
      consumer_.cached_other = producer_.position.load(std::memory_order_acquire);
      if (head == consumer_.cached_other) return false;
    }
    out = slots_[head & mask_];
    // release: pairs with the acquire in try_push; the slot may now be reused.
    consumer_.position.store(head + 1, std::memory_order_release);
    return true;
  }

  // Pops up to `max` records, calling f(const T&) for each, and frees their slots at once.
  template <class F>
  std::size_t drain(F&& f, std::size_t max = SIZE_MAX) {
    return drain(std::forward<F>(f), max, [](const T&) {}, 0);
  }

  // drain(), also calling ahead(record) for the record `distance` places further on before
  // f(record): the consumer starts fetching what that record points to while it handles the
  // records in between.
  template <class F, class Ahead>
  std::size_t drain(F&& f, std::size_t max, Ahead&& ahead, std::size_t distance) {
    return drain(std::forward<F>(f), max, std::forward<Ahead>(ahead), distance, [](const T&) {}, 0);
  }

  // The same in two stages: far(record) `far_distance` places on, then near(record) when it
  // is `near_distance` (fewer) places on, so that near may read what far asked for.
  template <class F, class Far, class Near>
  std::size_t drain(F&& f, std::size_t max, Far&& far, std::size_t far_distance, Near&& near,
                    std::size_t near_distance) {
    const std::uint64_t head = consumer_.position.load(std::memory_order_relaxed);
    // acquire: pairs with the release in try_push.
    consumer_.cached_other = producer_.position.load(std::memory_order_acquire);
    std::uint64_t available = consumer_.cached_other - head;
    std::size_t n = available < max ? static_cast<std::size_t>(available) : max;
    for (std::size_t i = 0; i < n && i < far_distance; ++i) far(slots_[(head + i) & mask_]);
    for (std::size_t i = 0; i < n && i < near_distance; ++i) near(slots_[(head + i) & mask_]);
    for (std::size_t i = 0; i < n; ++i) {
      if (i + far_distance < n) far(slots_[(head + i + far_distance) & mask_]);
      if (i + near_distance < n) near(slots_[(head + i + near_distance) & mask_]);
      f(slots_[(head + i) & mask_]);
    }
    // release: pairs with the acquire in try_push.
    consumer_.position.store(head + n, std::memory_order_release);
    return n;
  }

  // Either side, as a hint only.
  std::size_t size_hint() const noexcept {
    // The consumer's position first: the producer's, read after, is never behind it.
    const std::uint64_t head = consumer_.position.load(std::memory_order_relaxed);
    return static_cast<std::size_t>(producer_.position.load(std::memory_order_relaxed) - head);
  }
  bool empty_hint() const noexcept {
    return consumer_.position.load(std::memory_order_relaxed) ==
           producer_.position.load(std::memory_order_relaxed);
  }

 private:
  struct alignas(cache_line_bytes) Side {
    std::atomic<std::uint64_t> position{0};
    std::uint64_t cached_other = 0;  // owned by this side's thread only
  };
  static_assert(sizeof(Side) == cache_line_bytes);

  Side producer_;
  Side consumer_;
  const std::uint64_t mask_;
  std::unique_ptr<T[]> slots_;
};

}  // namespace brook::transport
