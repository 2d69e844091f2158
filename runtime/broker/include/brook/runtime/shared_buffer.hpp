#pragma once
// Immutable, reference-counted byte buffers that carry an update from its owner shard to every
// subscriber's outbound queue without copying. Buffers come from a per-shard BufferPool of
// size classes; the last release returns the block to the pool that allocated it: directly
// when released on the owning shard, through a lock-free return stack otherwise (Seastar's
// foreign_ptr idea), so the publish -> deliver path allocates nothing once pools are warm.
// A shard returns another pool's blocks in batches: the owner then reads one array per batch
// instead of chasing a list through blocks that sit in the other core's cache.
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <span>

namespace brook::runtime {

class BufferPool;

class SharedBuffer {
 public:
  std::byte* data() noexcept { return reinterpret_cast<std::byte*>(this + 1); }
  const std::byte* data() const noexcept { return reinterpret_cast<const std::byte*>(this + 1); }
  std::uint32_t size() const noexcept { return size_; }
  std::uint32_t capacity() const noexcept { return capacity_; }
  std::span<const std::byte> bytes() const noexcept { return {data(), size_}; }
  // Only the writer that allocated the buffer, before sharing it, may resize it.
  void set_size(std::uint32_t size) noexcept { size_ = size; }

  void add_ref(std::uint32_t n = 1) noexcept {
    // relaxed: a new reference is always made from an existing one, which keeps it alive.
    refs_.fetch_add(n, std::memory_order_relaxed);
  }
  // acq_rel: the release publishes this holder's reads; the acquire on the last release
  // makes every other holder's reads happen before the block is reused.
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) recycle();
  }
  std::uint32_t ref_count_hint() const noexcept { return refs_.load(std::memory_order_relaxed); }
  // A publish's: when the broker read it (now_ns(); 0: not stamped). Set by the writer before
  // sharing, like the bytes.
  std::uint64_t received_ns() const noexcept { return received_ns_; }
  void set_received_ns(std::uint64_t ns) noexcept { received_ns_ = ns; }

 private:
  friend class BufferPool;
  void recycle() noexcept;

  std::atomic<std::uint32_t> refs_{0};
  std::uint32_t size_ = 0;
  std::uint32_t capacity_ = 0;
  std::uint8_t size_class_ = 0;
  BufferPool* pool_ = nullptr;
  // A block is on a free list or in use, never both: the list's link and the stamp share
  // the space (the stamp costs no memory per block).
  union {
    SharedBuffer* next_free_ = nullptr;
    std::uint64_t received_ns_;
  };
};
static_assert(sizeof(SharedBuffer) % 16 == 0, "payload must stay 16-byte aligned");

struct BufferPoolStats {
  std::uint64_t allocated_blocks = 0;  // blocks carved from slabs, ever (as they are first used)
  std::uint64_t slabs = 0;             // slabs taken from the heap, ever
  std::uint64_t large_allocations = 0; // requests above the largest class (heap)
  std::uint64_t remote_returns = 0;    // blocks returned by other shards
  std::uint64_t released_slabs = 0;    // slabs given back to the heap
};

// Owned by one shard thread: only that thread may call allocate() and collect_remote().
class BufferPool {
 public:
  // 2048 for the frames of 1 KiB values, common in feeds: in a 4096 block each wasted three
  // quarters of its memory, and its broker spent 10% more per message.
  static constexpr std::array<std::uint32_t, 7> class_bytes{256, 1024, 2048, 4096, 16384, 65536, 262144};
  // A batch of returns is its first block and the addresses of up to this many more, kept in
  // the first block's payload (the smallest holds them).
  static constexpr std::size_t max_batch_blocks = class_bytes[0] / sizeof(std::uint64_t) - 1;

  BufferPool();
  ~BufferPool();
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;

  // A buffer of at least `bytes` with one reference held by the caller.
  SharedBuffer* allocate(std::size_t bytes);
  // How many blocks of the class that holds `bytes` one slab has room for.
  static std::size_t blocks_per_slab(std::size_t bytes) noexcept;
  // Takes the blocks other threads released: their batches, queued per size class in the
  // order they were released, to be handed out after this thread's own returns.
  void collect_remote() noexcept;
  // From now on, blocks of other pools that the calling thread releases wait in a batch per
  // pool and size class (up to 32 blocks, their list kept in the first block's dead payload)
  // until the batch is full or flush_returns() is called. Only for a thread that calls
  // flush_returns() regularly: a shard's loop, each turn (a thread that ends hands its
  // batches back too). Other threads return each block at once.
  static void batch_returns_on_this_thread() noexcept;
  // Hands the calling thread's partial batches to their pools.
  static void flush_returns() noexcept;
  const BufferPoolStats& stats() const noexcept { return stats_; }
  // Bytes of this pool's blocks that are held (allocated and not yet back), headers included,
  // as of the last collect_remote(): what the memory budget counts. Owner thread only.
  std::uint64_t in_use_bytes() const noexcept { return in_use_bytes_; }
  // Bytes taken from the heap (slabs and large blocks): what the pool really costs, free
  // blocks included. The memory budget counts this.
  std::uint64_t heap_bytes() const noexcept { return heap_bytes_; }
  // Gives back to the heap every slab none of whose blocks is in use, examining about
  // max_blocks free blocks (whole batches of returns: up to 31 more) and freeing at most 8
  // slabs per call: a release may take several calls (sweeping() until it is done). Returns
  // the bytes this call gave back. Owner thread only.
  std::uint64_t release_free_slabs(std::size_t max_blocks = SIZE_MAX);
  bool sweeping() const noexcept { return sweeping_; }  // a release is under way

  // The pool that belongs to the calling thread, if any; set by the thread that owns it.
  static BufferPool*& thread_pool() noexcept;

 private:
  friend class SharedBuffer;
  // Slabs are carved one block at a time, as allocations need them: threading a whole 1 MiB
  // slab onto the free list at once faulted in its 256 pages in one go, a stall of a
  // millisecond on the shard thread each time a recovery window grew by a slab.
  struct Carving {
    std::byte* next = nullptr;
    std::byte* end = nullptr;
  };
  // Other threads' returns, a size class's batches in release order, linked through their
  // first blocks. Allocation reads each batch's list once, into a Cursor, so that handing a
  // block out never waits for a link stored in the block before it (the blocks come back
  // cold, last written on the other core).
  struct BatchQueue {
    SharedBuffer* front = nullptr;
    SharedBuffer* back = nullptr;
  };
  struct Cursor {
    std::array<SharedBuffer*, max_batch_blocks> blocks{};
    std::uint32_t next = 0;
    std::uint32_t count = 0;
  };
  void give_back(SharedBuffer* block) noexcept;
  void push_remote(SharedBuffer* batch) noexcept;
  void push_batches(std::span<SharedBuffer*> heads) noexcept;  // and clears them
  SharedBuffer* take_free(std::uint8_t size_class) noexcept;
  SharedBuffer* open_batch(std::uint8_t size_class) noexcept;
  void keep_unless_releasing(SharedBuffer* block, std::uint8_t size_class) noexcept;
  SharedBuffer* carve(std::uint8_t size_class) noexcept;  // null: the class's slab is used up
  void add_slab(std::uint8_t size_class);

  // This thread's returns, newest first (and, after a sweep, the free blocks it kept).
  std::array<SharedBuffer*, class_bytes.size()> free_{};
  std::array<BatchQueue, class_bytes.size()> batches_{};
  std::array<Cursor, class_bytes.size()> cursors_{};
  // Set aside by a release: the free lists (with what the cursors held) and the batches.
  std::array<SharedBuffer*, class_bytes.size()> sweep_{};
  std::array<BatchQueue, class_bytes.size()> sweep_batches_{};
  bool sweeping_ = false;
  std::array<Carving, class_bytes.size()> carving_{};
  std::atomic<SharedBuffer*> remote_free_{nullptr};
  std::byte* slabs_ = nullptr;  // singly linked through the first word of each slab
  BufferPoolStats stats_;
  std::uint64_t in_use_bytes_ = 0;
  std::uint64_t heap_bytes_ = 0;
  // Large blocks freed by other threads: the owner subtracts them in collect_remote().
  // relaxed: a counter, read by exchange on the owner thread.
  std::atomic<std::uint64_t> remote_large_freed_{0};
};

// Owning handle: releases its reference when it goes away.
class BufferRef {
 public:
  BufferRef() = default;
  explicit BufferRef(SharedBuffer* adopted) noexcept : buffer_(adopted) {}
  BufferRef(const BufferRef& other) noexcept : buffer_(other.buffer_) {
    if (buffer_) buffer_->add_ref();
  }
  BufferRef(BufferRef&& other) noexcept : buffer_(other.buffer_) { other.buffer_ = nullptr; }
  BufferRef& operator=(BufferRef other) noexcept {
    std::swap(buffer_, other.buffer_);
    return *this;
  }
  ~BufferRef() {
    if (buffer_) buffer_->release();
  }
  SharedBuffer* get() const noexcept { return buffer_; }
  SharedBuffer* operator->() const noexcept { return buffer_; }
  explicit operator bool() const noexcept { return buffer_ != nullptr; }
  SharedBuffer* detach() noexcept {
    auto* b = buffer_;
    buffer_ = nullptr;
    return b;
  }

 private:
  SharedBuffer* buffer_ = nullptr;
};

}  // namespace brook::runtime
