#pragma once
// A single-producer single-consumer byte ring in memory shared between two processes: a byte
// stream, like a socket, so frames use the wire format unchanged and may straddle the wrap.
//
// The indices live in the shared segment, each side's on its own cache line. Positions are
// 64-bit byte counts that only grow (offset = position & (capacity - 1)). Each side keeps its
// own position privately and only *writes* it to shared memory: the peer may be another,
// untrusted process that scribbles over the indices, so every position read from the peer is
// checked (a tail that runs ahead of the head by more than the capacity, or a head that goes
// backwards or past the tail) and a bad one marks the ring corrupt for good.
//
// Sleeping: a side that finds nothing to do raises its `waiting` flag (seq_cst), looks once
// more, then sleeps on its eventfd. The other side, after moving its position, issues a
// seq_cst fence and reads the flag: whichever clears it (exchange) does the wake-up. This is
// Dekker's handshake, as between the broker's shards.
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

namespace brook::transport {

struct ShmRingIndices {
  // The producer's line: written by the producer.
  alignas(64) std::atomic<std::uint64_t> tail{0};
  std::atomic<std::uint32_t> producer_waiting{0};  // the ring was full: wake me on space
  // The consumer's line: written by the consumer.
  alignas(64) std::atomic<std::uint64_t> head{0};
  std::atomic<std::uint32_t> consumer_waiting{0};  // the ring was empty: wake me on data
};
static_assert(sizeof(ShmRingIndices) == 128);
static_assert(std::atomic<std::uint64_t>::is_always_lock_free &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "atomics in shared memory must be address-free");

class ShmRingWriter {
 public:
  ShmRingWriter() = default;
  // `capacity` is a power of two; `data` holds capacity bytes.
  ShmRingWriter(ShmRingIndices* indices, std::byte* data, std::size_t capacity) noexcept
      : indices_(indices), data_(data), mask_(capacity - 1) {
    tail_ = indices->tail.load(std::memory_order_relaxed);
    head_ = tail_;
  }

  std::size_t capacity() const noexcept { return mask_ + 1; }
  bool corrupt() const noexcept { return corrupt_; }
  // Free bytes, reading the consumer's position.
  std::size_t writable() noexcept {
    if (corrupt_) return 0;
    // acquire: pairs with the consumer's release of head; the bytes before it have been read.
    const std::uint64_t head = indices_->head.load(std::memory_order_acquire);
    if (head < head_ || head > tail_) {
      corrupt_ = true;
      return 0;
    }
    head_ = head;
    return capacity() - static_cast<std::size_t>(tail_ - head_);
  }

  // Copies as much of `bytes` as fits; returns how much. Invisible until publish().
  std::size_t write(std::span<const std::byte> bytes) noexcept {
    // Corrupt is for good: the room cached before the corruption is not ours any more. An
    // empty span may have a null data(), which memcpy may not be given even for 0 bytes.
    if (corrupt_ || bytes.empty()) return 0;
    std::size_t room = capacity() - static_cast<std::size_t>(tail_ - head_);
    if (room < bytes.size()) room = writable();
    const std::size_t n = bytes.size() < room ? bytes.size() : room;
    const std::size_t at = static_cast<std::size_t>(tail_ & mask_);
    const std::size_t first = n < capacity() - at ? n : capacity() - at;
    std::memcpy(data_ + at, bytes.data(), first);
    std::memcpy(data_, bytes.data() + first, n - first);
    tail_ += n;
    return n;
  }

  // All of `bytes` or nothing: for records that must not be split (they are read in place).
  bool write_whole(std::span<const std::byte> bytes) noexcept {
    if (capacity() - static_cast<std::size_t>(tail_ - head_) < bytes.size() &&
        writable() < bytes.size())
      return false;
    return write(bytes) == bytes.size();  // not on a corrupt ring: write() takes nothing there
  }

  // Bytes written so far (published or not), and the consumer's position as last validated.
  std::uint64_t position() const noexcept { return tail_; }
  std::uint64_t consumer_position() const noexcept { return head_; }

  // Makes everything written visible to the consumer. Returns true when the consumer said it
  // is going to sleep: the caller must wake it (its eventfd).
  bool publish() noexcept {
    // release: pairs with the consumer's acquire of tail; the bytes are written before it.
    indices_->tail.store(tail_, std::memory_order_release);
    return consumer_sleeping();
  }

  // The ring was full: asks the consumer to wake us when it frees space. Returns true when
  // `needed` bytes fit after all (do not sleep).
  bool wait_for_space(std::size_t needed = 1) noexcept {
    indices_->producer_waiting.store(1, std::memory_order_seq_cst);
    // Our store before the load of the consumer's position, whatever the load compiles to:
    // pairs with the fence in consume() (Dekker's handshake).
    std::atomic_thread_fence(std::memory_order_seq_cst);
    return writable() >= needed || corrupt_;
  }

 private:
  bool consumer_sleeping() noexcept {
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with the consumer's store
    return indices_->consumer_waiting.load(std::memory_order_relaxed) != 0 &&
           indices_->consumer_waiting.exchange(0, std::memory_order_relaxed) != 0;
  }

  ShmRingIndices* indices_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t mask_ = 0;
  std::uint64_t tail_ = 0;  // ours: the only copy we trust
  std::uint64_t head_ = 0;  // the consumer's, as last validated
  bool corrupt_ = false;
};

class ShmRingReader {
 public:
  ShmRingReader() = default;
  ShmRingReader(ShmRingIndices* indices, std::byte* data, std::size_t capacity) noexcept
      : indices_(indices), data_(data), mask_(capacity - 1) {
    head_ = indices->head.load(std::memory_order_relaxed);
    tail_ = head_;
  }

  std::size_t capacity() const noexcept { return mask_ + 1; }
  bool corrupt() const noexcept { return corrupt_; }
  std::uint64_t position() const noexcept { return head_; }

  // The bytes readable in one piece (up to the end of the buffer: call again after consume()
  // for the part after the wrap). Reads the producer's position.
  std::span<const std::byte> readable() noexcept {
    if (corrupt_) return {};
    // acquire: pairs with the producer's release of tail; the bytes before it are written.
    const std::uint64_t tail = indices_->tail.load(std::memory_order_acquire);
    if (tail < tail_ || tail - head_ > capacity()) {
      corrupt_ = true;
      return {};
    }
    tail_ = tail;
    const std::size_t at = static_cast<std::size_t>(head_ & mask_);
    const std::size_t available = static_cast<std::size_t>(tail_ - head_);
    return {data_ + at, available < capacity() - at ? available : capacity() - at};
  }

  bool empty() noexcept { return readable().empty(); }

  // Frees `n` bytes of what readable() returned. Returns true when the producer said it waits
  // for space: the caller must wake it.
  bool consume(std::size_t n) noexcept {
    head_ += n;
    // release: our reads of the bytes happen before the producer may overwrite them.
    indices_->head.store(head_, std::memory_order_release);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with wait_for_space()
    return indices_->producer_waiting.load(std::memory_order_relaxed) != 0 &&
           indices_->producer_waiting.exchange(0, std::memory_order_relaxed) != 0;
  }

  // Going to sleep: asks the producer for a wake-up. Returns true when there is data after all
  // (do not sleep).
  bool prepare_to_sleep() noexcept {
    indices_->consumer_waiting.store(1, std::memory_order_seq_cst);
    std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with publish()'s fence
    return !readable().empty() || corrupt_;
  }
  void awake() noexcept { indices_->consumer_waiting.store(0, std::memory_order_relaxed); }

 private:
  ShmRingIndices* indices_ = nullptr;
  std::byte* data_ = nullptr;
  std::size_t mask_ = 0;
  std::uint64_t head_ = 0;  // ours
  std::uint64_t tail_ = 0;  // the producer's, as last validated
  bool corrupt_ = false;
};

}  // namespace brook::transport
