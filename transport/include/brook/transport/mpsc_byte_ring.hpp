#pragma once
// Many producers, one consumer: variable-length records in one power-of-two byte buffer
// (Aeron's many-to-one ring design). A producer claims space with one CAS on the tail, writes
// its record in place and commits it by storing the record's 8-byte header with release. The
// consumer reads committed records in claim order, so all records of one producer thread keep
// their order, and zeroes what it consumed before handing the space back.
//
// Record layout: u64 header = (kind << 32) | length, then `length` payload bytes, padded to 8.
// kind 0 is reserved (an uncommitted header reads as 0); kind 0xffffffff marks the padding
// that fills the end of the buffer when a record does not fit before the wrap.
#include <sys/mman.h>

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <span>

namespace brook::transport {

class MpscByteRing {
 public:
  static constexpr std::uint32_t padding_kind = 0xffffffffu;
  static constexpr std::size_t header_bytes = 8;

  explicit MpscByteRing(std::size_t capacity_bytes)
      : capacity_(std::bit_ceil(std::max<std::size_t>(capacity_bytes, 4096))),
        buffer_(zeroed_pages(capacity_)) {}
  ~MpscByteRing() { ::munmap(buffer_, capacity_); }
  MpscByteRing(const MpscByteRing&) = delete;
  MpscByteRing& operator=(const MpscByteRing&) = delete;

  std::size_t capacity() const noexcept { return capacity_; }
  // The largest payload a record can carry.
  std::size_t max_payload() const noexcept { return capacity_ / 2 - header_bytes; }

  // Producer: a slot for `payload_bytes`, or {} when the ring lacks room right now. Fill the
  // slot, then call commit() exactly once.
  struct Claim {
    std::byte* payload = nullptr;
    std::byte* header = nullptr;
    std::uint32_t length = 0;
    explicit operator bool() const noexcept { return payload != nullptr; }
  };

  Claim try_claim(std::size_t payload_bytes) noexcept {
    if (payload_bytes == 0 || payload_bytes > max_payload()) return {};
    const std::uint64_t record = align8(header_bytes + payload_bytes);
    const std::uint64_t mask = capacity_ - 1;
    // relaxed: a stale head only makes us see less room; the CAS decides.
    std::uint64_t tail = tail_.load(std::memory_order_relaxed);
    std::uint64_t offset, padding;
    do {
      offset = tail & mask;
      padding = capacity_ - offset < record ? capacity_ - offset : 0;
      // acquire: pairs with the consumer's release of head after it zeroed the space.
      std::uint64_t head = head_.load(std::memory_order_acquire);
      if (tail + padding + record - head > capacity_) return {};
      // acq_rel is not needed for the claim itself (the header store publishes the record);
      // relaxed keeps claims cheap.
    } while (!tail_.compare_exchange_weak(tail, tail + padding + record,
                                          std::memory_order_relaxed, std::memory_order_relaxed));
    if (padding) {
      store_header(buffer_ + offset, (std::uint64_t{padding_kind} << 32) | (padding - header_bytes));
      offset = 0;
    }
    return {buffer_ + offset + header_bytes, buffer_ + offset,
            static_cast<std::uint32_t>(payload_bytes)};
  }

  static void commit(const Claim& claim, std::uint32_t kind) noexcept {
    store_header(claim.header, (std::uint64_t{kind} << 32) | claim.length);
  }

  // Consumer: calls f(kind, payload span) for up to `max` committed records, in order, then
  // zeroes their space and releases it to producers. Stops at the first uncommitted record.
  template <class F>
  std::size_t drain(F&& f, std::size_t max = SIZE_MAX) {
    const std::uint64_t mask = capacity_ - 1;
    std::uint64_t head = head_.load(std::memory_order_relaxed);
    const std::uint64_t start = head;
    // Only claimed space may be read: past the claims lie headers of the previous lap, which
    // are zeroed only after this drain.
    const std::uint64_t claimed = tail_.load(std::memory_order_acquire);
    std::size_t count = 0;
    while (count < max && head < claimed) {
      std::byte* at = buffer_ + (head & mask);
      // acquire: pairs with the release in store_header; the payload is visible after it.
      std::uint64_t header = std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at))
                                 .load(std::memory_order_acquire);
      if (header == 0) break;
      auto kind = static_cast<std::uint32_t>(header >> 32);
      auto length = static_cast<std::uint32_t>(header);
      if (kind != padding_kind) {
        f(kind, std::span<const std::byte>(at + header_bytes, length));
        ++count;
      }
      head += align8(header_bytes + length);
    }
    if (head != start) {
      zero(start, head);
      // release: pairs with the producers' acquire of head; the zeroed space is reusable.
      head_.store(head, std::memory_order_release);
    }
    return count;
  }

  // How far the consumer has drained (grows with every drain that frees space): a producer
  // that read it before a claim failed knows, reading it again, whether room was made since.
  std::uint64_t consumed() const noexcept { return head_.load(std::memory_order_seq_cst); }

  bool empty_hint() const noexcept {
    return head_.load(std::memory_order_relaxed) == tail_.load(std::memory_order_relaxed);
  }
  // Bytes claimed and not yet drained (producers' view; for back-pressure decisions).
  std::size_t used_bytes() const noexcept {
    return static_cast<std::size_t>(tail_.load(std::memory_order_relaxed) -
                                    head_.load(std::memory_order_relaxed));
  }

 private:
  static constexpr std::uint64_t align8(std::uint64_t n) noexcept { return (n + 7) & ~std::uint64_t{7}; }

  static void store_header(std::byte* at, std::uint64_t header) noexcept {
    // release: pairs with the acquire in drain; publishes the payload written before it.
    std::atomic_ref<std::uint64_t>(*reinterpret_cast<std::uint64_t*>(at))
        .store(header, std::memory_order_release);
  }

  void zero(std::uint64_t from, std::uint64_t to) noexcept {
    const std::uint64_t mask = capacity_ - 1;
    std::uint64_t begin = from & mask, bytes = to - from;
    std::uint64_t first = std::min<std::uint64_t>(bytes, capacity_ - begin);
    std::memset(buffer_ + begin, 0, first);
    if (bytes > first) std::memset(buffer_, 0, bytes - first);
  }

  const std::size_t capacity_;
  // Fresh anonymous pages read as zero and take no memory until written: a Client's 1 MiB
  // outbox is resident only as far as its calls have reached (a subscriber that sends little
  // costs a page or two, where zeroing the buffer made every session cost 1 MiB).
  static std::byte* zeroed_pages(std::size_t bytes) {
    void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<std::byte*>(p);
  }

  std::byte* const buffer_;
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  alignas(64) std::atomic<std::uint64_t> head_{0};
};

}  // namespace brook::transport
