#include "brook/runtime/shared_buffer.hpp"

#include <mimalloc.h>

#include <cassert>
#include <new>

namespace brook::runtime {

namespace {
constexpr std::uint8_t large_class = 0xff;
constexpr std::size_t slab_bytes = 1u << 20;  // blocks are carved from 1 MiB slabs
constexpr std::size_t slab_header_bytes = 16;
}  // namespace

BufferPool*& BufferPool::thread_pool() noexcept {
  thread_local BufferPool* pool = nullptr;
  return pool;
}

BufferPool::BufferPool() = default;

BufferPool::~BufferPool() {
  while (slabs_) {
    std::byte* next = *reinterpret_cast<std::byte**>(slabs_);
    mi_free(slabs_);
    slabs_ = next;
  }
}

std::size_t BufferPool::blocks_per_slab(std::size_t bytes) noexcept {
  std::size_t size_class = 0;
  while (size_class + 1 < class_bytes.size() && class_bytes[size_class] < bytes) ++size_class;
  const std::size_t block = sizeof(SharedBuffer) + class_bytes[size_class];
  return block >= slab_bytes / 2 ? 1 : (slab_bytes - slab_header_bytes) / block;
}

void BufferPool::add_slab(std::uint8_t size_class) {
  const std::size_t block = sizeof(SharedBuffer) + class_bytes[size_class];
  const std::size_t bytes = blocks_per_slab(class_bytes[size_class]) * block;
  auto* slab = static_cast<std::byte*>(mi_malloc_aligned(slab_header_bytes + bytes, 64));
  if (!slab) throw std::bad_alloc();
  *reinterpret_cast<std::byte**>(slab) = slabs_;
  slabs_ = slab;
  carving_[size_class] = {slab + slab_header_bytes, slab + slab_header_bytes + bytes};
  ++stats_.slabs;
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

SharedBuffer* BufferPool::take_free(std::uint8_t size_class) noexcept {
  SharedBuffer* b = free_[size_class];
  if (!b) return nullptr;
  free_[size_class] = b->next_free_;
  // The free list is threaded through the blocks themselves, which are often cold by the
  // time they come back: fetching the next one now hides that miss behind this update's work.
  if (b->next_free_) __builtin_prefetch(b->next_free_, 1);
  return b;
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
  }
  b->size_ = static_cast<std::uint32_t>(bytes);
  // relaxed: the buffer is not shared yet; sharing it later publishes this store.
  b->refs_.store(1, std::memory_order_relaxed);
  return b;
}

void BufferPool::give_back(SharedBuffer* block) noexcept {
  if (block->size_class_ == large_class) {
    block->~SharedBuffer();
    mi_free(block);
    return;
  }
  if (thread_pool() == this) {
    block->next_free_ = free_[block->size_class_];
    free_[block->size_class_] = block;
    return;
  }
  // Another thread: push onto the return stack. The owner takes the whole stack at once
  // with exchange(), so there is no ABA problem.
  SharedBuffer* head = remote_free_.load(std::memory_order_relaxed);
  do {
    block->next_free_ = head;
    // release: pairs with the acquire exchange in collect_remote, publishing next_free_.
  } while (!remote_free_.compare_exchange_weak(head, block, std::memory_order_release,
                                               std::memory_order_relaxed));
}

void BufferPool::collect_remote() noexcept {
  // acquire: pairs with the release CAS in give_back.
  SharedBuffer* list = remote_free_.exchange(nullptr, std::memory_order_acquire);
  while (list) {
    SharedBuffer* next = list->next_free_;
    list->next_free_ = free_[list->size_class_];
    free_[list->size_class_] = list;
    list = next;
    ++stats_.remote_returns;
  }
}

void SharedBuffer::recycle() noexcept { pool_->give_back(this); }

}  // namespace brook::runtime
