#include "brook/runtime/shared_buffer.hpp"

#include <mimalloc.h>

#include <algorithm>
#include <array>
#include <cassert>
#include <new>
#include <utility>

namespace brook::runtime {

namespace {
constexpr std::uint8_t large_class = 0xff;
// Blocks are carved from 1 MiB slabs aligned to their size, so that a block finds its slab's
// header by masking its address: the header counts the slab's blocks in use, and a slab
// whose count falls to zero can go back to the heap (release_free_slabs).
constexpr std::size_t slab_bytes = 1u << 20;
constexpr std::size_t slab_header_bytes = 64;

struct SlabHeader {
  std::byte* next = nullptr;  // the pool's slabs, singly linked
  std::uint32_t live = 0;     // blocks handed out and not yet back (owner thread)
  bool releasing = false;
};
static_assert(sizeof(SlabHeader) <= slab_header_bytes);

SlabHeader* slab_of(const void* block) noexcept {
  return reinterpret_cast<SlabHeader*>(reinterpret_cast<std::uintptr_t>(block) & ~std::uintptr_t{slab_bytes - 1});
}

// Blocks come back cold: last written on the other core, which read them to deliver and
// dropped its reference. Their header and the start of their payload are written as soon as
// they are handed out, so the cursor asks for the lines a few blocks ahead.
constexpr std::uint32_t prefetch_ahead = 4;
void prefetch_for_writing(SharedBuffer* block) noexcept {
  __builtin_prefetch(block, 1);
  __builtin_prefetch(reinterpret_cast<std::byte*>(block) + 64, 1);
  __builtin_prefetch(reinterpret_cast<std::byte*>(block) + 128, 1);
}

// A batch of blocks of one size class returned to another pool. Its first block's payload,
// dead once released, holds the count and the other blocks' addresses: the owner takes the
// batch without touching the blocks. A batch of one has a count of zero.
std::uint64_t* batch_list(SharedBuffer* head) noexcept {
  return reinterpret_cast<std::uint64_t*>(head->data());
}

// The calling thread's partial batches, per pool and size class (a pool whose slot another
// pool holds flushes it). Shards are few, so eight slots rarely collide.
struct PendingReturns {
  struct Slot {
    BufferPool* pool = nullptr;
    std::array<SharedBuffer*, BufferPool::class_bytes.size()> heads{};
  };
  bool enabled = false;
  std::array<Slot, 8> slots{};

  Slot& slot_of(const BufferPool* pool) noexcept {
    const auto key = reinterpret_cast<std::uintptr_t>(pool) >> 6;
    return slots[(key * 0x9E3779B97F4A7C15ull) >> 61];
  }
  ~PendingReturns() { BufferPool::flush_returns(); }
};
thread_local PendingReturns pending_returns;
}  // namespace

BufferPool*& BufferPool::thread_pool() noexcept {
  thread_local BufferPool* pool = nullptr;
  return pool;
}

BufferPool::BufferPool() = default;

BufferPool::~BufferPool() {
  while (slabs_) {
    std::byte* next = reinterpret_cast<SlabHeader*>(slabs_)->next;
    mi_free(slabs_);
    slabs_ = next;
  }
}

std::size_t BufferPool::blocks_per_slab(std::size_t bytes) noexcept {
  std::size_t size_class = 0;
  while (size_class + 1 < class_bytes.size() && class_bytes[size_class] < bytes) ++size_class;
  const std::size_t block = sizeof(SharedBuffer) + class_bytes[size_class];
  return (slab_bytes - slab_header_bytes) / block;
}

void BufferPool::add_slab(std::uint8_t size_class) {
  const std::size_t block = sizeof(SharedBuffer) + class_bytes[size_class];
  const std::size_t bytes = blocks_per_slab(class_bytes[size_class]) * block;
  auto* slab = static_cast<std::byte*>(mi_malloc_aligned(slab_bytes, slab_bytes));
  if (!slab) throw std::bad_alloc();
  auto* header = new (slab) SlabHeader();
  header->next = slabs_;
  slabs_ = slab;
  carving_[size_class] = {slab + slab_header_bytes, slab + slab_header_bytes + bytes};
  ++stats_.slabs;
  heap_bytes_ += slab_bytes;
}

std::uint64_t BufferPool::release_free_slabs(std::size_t max_blocks) {
  // A slab goes when none of its blocks is in use and none is left to carve: its blocks are
  // then all free (on the free lists, in the cursors, in queued batches). A sweep sets all
  // three aside whole and puts the blocks of the slabs that stay on the free lists, about
  // max_blocks per call (after a burst the lists hold millions of cold blocks: one walk of
  // them held a shard for 30 ms). Meanwhile allocations take what is freed anew or carve;
  // none can reach a releasing slab, whose blocks are all set aside, so its count stays at
  // zero until the sweep ends and it goes.
  if (!sweeping_) {
    bool any = false;
    for (std::byte* s = slabs_; s; s = reinterpret_cast<SlabHeader*>(s)->next) {
      auto* header = reinterpret_cast<SlabHeader*>(s);
      bool carving = false;
      for (const Carving& c : carving_) carving |= c.end && slab_of(c.end - 1) == header && c.next != c.end;
      header->releasing = header->live == 0 && !carving;
      any |= header->releasing;
    }
    if (!any) return 0;
    for (Carving& c : carving_)
      if (c.end && slab_of(c.end - 1)->releasing) c = {};  // a used-up slab's pointers
    sweep_ = free_;
    free_ = {};
    for (std::size_t size_class = 0; size_class < cursors_.size(); ++size_class) {
      Cursor& cursor = cursors_[size_class];
      while (cursor.next < cursor.count) {
        SharedBuffer* block = cursor.blocks[cursor.next++];
        block->next_free_ = sweep_[size_class];
        sweep_[size_class] = block;
      }
    }
    sweep_batches_ = batches_;
    batches_ = {};
    sweeping_ = true;
  }
  std::size_t examined = 0;
  for (std::size_t size_class = 0; size_class < sweep_.size(); ++size_class) {
    const auto c = static_cast<std::uint8_t>(size_class);
    SharedBuffer*& rest = sweep_[size_class];
    while (rest && examined < max_blocks) {
      SharedBuffer* block = rest;
      rest = block->next_free_;
      ++examined;
      keep_unless_releasing(block, c);
    }
    if (rest) return 0;  // more next time
    BatchQueue& batches = sweep_batches_[size_class];
    while (batches.front && examined < max_blocks) {
      SharedBuffer* head = batches.front;
      batches.front = head->next_free_;
      const std::uint64_t* list = batch_list(head);
      examined += 1 + list[0];
      for (std::uint64_t i = 1; i <= list[0]; ++i) keep_unless_releasing(reinterpret_cast<SharedBuffer*>(list[i]), c);
      keep_unless_releasing(head, c);  // last: its payload held the list
    }
    if (batches.front) return 0;
    batches.back = nullptr;
  }
  // Then the slabs go, a few per call: each is 1 MiB handed back to the system (about
  // 0.1 ms of page-table work).
  constexpr std::size_t slabs_per_call = 8;
  std::uint64_t released = 0;
  std::byte** link = &slabs_;
  while (*link && released < slabs_per_call * slab_bytes) {
    auto* header = reinterpret_cast<SlabHeader*>(*link);
    if (!header->releasing) {
      link = &header->next;
      continue;
    }
    std::byte* slab = *link;
    *link = header->next;
    mi_free(slab);
    released += slab_bytes;
  }
  heap_bytes_ -= released;
  stats_.released_slabs += released / slab_bytes;
  if (released < slabs_per_call * slab_bytes) sweeping_ = false;  // none left
  return released;
}

SharedBuffer* BufferPool::carve(std::uint8_t size_class) noexcept {
  Carving& slab = carving_[size_class];
  const std::size_t block = sizeof(SharedBuffer) + class_bytes[size_class];
  if (static_cast<std::size_t>(slab.end - slab.next) < block) return nullptr;
  auto* b = new (slab.next) SharedBuffer();
  slab.next += block;
  b->capacity_ = class_bytes[size_class];
  b->size_class_ = size_class;
  b->pool_ = this;
  ++stats_.allocated_blocks;
  return b;
}

void BufferPool::keep_unless_releasing(SharedBuffer* block, std::uint8_t size_class) noexcept {
  if (slab_of(block)->releasing) return;
  block->next_free_ = free_[size_class];
  free_[size_class] = block;
}

SharedBuffer* BufferPool::take_free(std::uint8_t size_class) noexcept {
  if (SharedBuffer* b = free_[size_class]) {
    free_[size_class] = b->next_free_;
    // Mostly this thread's own returns, still warm (after a sweep, also the cold blocks it
    // kept); fetching the next one now hides the miss when they are not.
    if (b->next_free_) __builtin_prefetch(b->next_free_, 1);
    return b;
  }
  Cursor& cursor = cursors_[size_class];
  if (cursor.next == cursor.count) return open_batch(size_class);
  SharedBuffer* b = cursor.blocks[cursor.next++];
  if (cursor.next + prefetch_ahead <= cursor.count) prefetch_for_writing(cursor.blocks[cursor.next + prefetch_ahead - 1]);
  return b;
}

// Hands out the next batch's first block and keeps the others' addresses in the cursor, in
// the order they were released.
SharedBuffer* BufferPool::open_batch(std::uint8_t size_class) noexcept {
  BatchQueue& queue = batches_[size_class];
  SharedBuffer* head = queue.front;
  if (!head) return nullptr;
  queue.front = head->next_free_;
  if (!queue.front) queue.back = nullptr;
  Cursor& cursor = cursors_[size_class];
  const std::uint64_t* list = batch_list(head);
  cursor.count = static_cast<std::uint32_t>(list[0]);
  cursor.next = 0;
  for (std::uint32_t i = 0; i < cursor.count; ++i) cursor.blocks[i] = reinterpret_cast<SharedBuffer*>(list[1 + i]);
  for (std::uint32_t i = 0; i < std::min<std::uint32_t>(cursor.count, prefetch_ahead); ++i)
    prefetch_for_writing(cursor.blocks[i]);
  if (queue.front) __builtin_prefetch(queue.front);
  return head;
}

SharedBuffer* BufferPool::allocate(std::size_t bytes) {
  std::uint8_t size_class = 0;
  while (size_class < class_bytes.size() && class_bytes[size_class] < bytes) ++size_class;
  SharedBuffer* b;
  if (size_class == class_bytes.size()) {
    void* mem = mi_malloc_aligned(sizeof(SharedBuffer) + bytes, 64);
    if (!mem) throw std::bad_alloc();
    b = new (mem) SharedBuffer();
    b->capacity_ = static_cast<std::uint32_t>(bytes);
    b->size_class_ = large_class;
    b->pool_ = this;
    ++stats_.large_allocations;
    in_use_bytes_ += sizeof(SharedBuffer) + bytes;
    heap_bytes_ += sizeof(SharedBuffer) + bytes;
  } else {
    // Recycled blocks first, then the rest of the current slab; other threads' returns only
    // when both are empty (one exchange, not one per allocation), and a new slab last.
    b = take_free(size_class);
    if (!b) b = carve(size_class);
    if (!b) {
      collect_remote();
      b = take_free(size_class);
    }
    if (!b) {
      add_slab(size_class);
      b = carve(size_class);
    }
    in_use_bytes_ += sizeof(SharedBuffer) + class_bytes[size_class];
    ++slab_of(b)->live;
  }
  b->size_ = static_cast<std::uint32_t>(bytes);
  b->received_ns_ = 0;
  // relaxed: the buffer is not shared yet; sharing it later publishes this store.
  b->refs_.store(1, std::memory_order_relaxed);
  return b;
}

void BufferPool::give_back(SharedBuffer* block) noexcept {
  if (block->size_class_ == large_class) {
    const std::uint64_t bytes = sizeof(SharedBuffer) + block->capacity_;
    if (thread_pool() == this) {
      in_use_bytes_ -= std::min(in_use_bytes_, bytes);
      heap_bytes_ -= std::min(heap_bytes_, bytes);
    } else {
      remote_large_freed_.fetch_add(bytes, std::memory_order_relaxed);
    }
    block->~SharedBuffer();
    mi_free(block);
    return;
  }
  if (thread_pool() == this) {
    block->next_free_ = free_[block->size_class_];
    free_[block->size_class_] = block;
    in_use_bytes_ -= std::min<std::uint64_t>(in_use_bytes_, sizeof(SharedBuffer) + class_bytes[block->size_class_]);
    --slab_of(block)->live;
    return;
  }
  // Another thread. The block's last reference went here: this thread alone may write it.
  PendingReturns& pending = pending_returns;
  if (!pending.enabled) {
    batch_list(block)[0] = 0;
    push_remote(block);
    return;
  }
  PendingReturns::Slot& slot = pending.slot_of(this);
  if (slot.pool != this) {
    if (slot.pool) slot.pool->push_batches(slot.heads);
    slot.pool = this;
  }
  SharedBuffer*& head = slot.heads[block->size_class_];
  if (!head) {
    batch_list(block)[0] = 0;
    head = block;
    return;
  }
  std::uint64_t* list = batch_list(head);
  list[1 + list[0]++] = reinterpret_cast<std::uintptr_t>(block);
  if (list[0] == max_batch_blocks) push_remote(std::exchange(head, nullptr));
}

void BufferPool::push_remote(SharedBuffer* batch) noexcept {
  // The owner takes the whole stack at once with exchange(), so there is no ABA problem.
  SharedBuffer* head = remote_free_.load(std::memory_order_relaxed);
  do {
    batch->next_free_ = head;
    // release: pairs with the acquire exchange in collect_remote, publishing next_free_ and
    // the batch's list.
  } while (!remote_free_.compare_exchange_weak(head, batch, std::memory_order_release,
                                               std::memory_order_relaxed));
}

void BufferPool::batch_returns_on_this_thread() noexcept { pending_returns.enabled = true; }

void BufferPool::flush_returns() noexcept {
  for (PendingReturns::Slot& slot : pending_returns.slots) {
    if (slot.pool) slot.pool->push_batches(slot.heads);
    slot.pool = nullptr;
  }
}

void BufferPool::push_batches(std::span<SharedBuffer*> heads) noexcept {
  for (SharedBuffer*& head : heads)
    if (head) push_remote(std::exchange(head, nullptr));
}

void BufferPool::collect_remote() noexcept {
  // acquire: pairs with the release CAS in push_remote.
  SharedBuffer* stack = remote_free_.exchange(nullptr, std::memory_order_acquire);
  const std::uint64_t large_returned = remote_large_freed_.exchange(0, std::memory_order_relaxed);
  std::uint64_t returned = large_returned;
  // The stack holds the batches newest first; pushed one by one onto the front of a list per
  // class, they come out oldest first, and that list goes after the class's older batches.
  // Handed out in the order they were released, most often the order they were allocated
  // in, a stream's buffers stay in address order, which the prefetchers of both cores follow
  // (handed out newest first, the other shard's deliveries cost 0.1 us more each).
  std::array<BatchQueue, class_bytes.size()> collected{};
  while (stack) {
    SharedBuffer* head = stack;
    stack = head->next_free_;
    const std::uint8_t size_class = head->size_class_;
    const std::uint64_t* list = batch_list(head);
    for (std::uint64_t i = 1; i <= list[0]; ++i) --slab_of(reinterpret_cast<SharedBuffer*>(list[i]))->live;
    --slab_of(head)->live;
    returned += (1 + list[0]) * (sizeof(SharedBuffer) + class_bytes[size_class]);
    stats_.remote_returns += 1 + list[0];
    BatchQueue& into = collected[size_class];
    head->next_free_ = into.front;
    into.front = head;
    if (!into.back) into.back = head;
  }
  for (std::size_t size_class = 0; size_class < collected.size(); ++size_class) {
    const BatchQueue& newer = collected[size_class];
    if (!newer.front) continue;
    BatchQueue& queue = batches_[size_class];
    if (queue.back) queue.back->next_free_ = newer.front;
    else queue.front = newer.front;
    queue.back = newer.back;
  }
  in_use_bytes_ -= std::min(in_use_bytes_, returned);
  heap_bytes_ -= std::min(heap_bytes_, large_returned);
}

void SharedBuffer::recycle() noexcept { pool_->give_back(this); }

}  // namespace brook::runtime
