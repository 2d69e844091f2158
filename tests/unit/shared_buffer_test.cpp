// Unit tests of SharedBuffer and BufferPool: every size class and the large (heap) path,
// reference counting, recycling on the owning shard, cross-thread release through the return
// stack (collect_remote, counted in stats), one block at a time or in a shard's batches, and a
// two-thread stress run that hands references over an SpscRing and releases them on the other
// thread (clean under TSan and ASan).
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include "brook/runtime/shared_buffer.hpp"
#include "brook/transport/spsc_ring.hpp"

namespace brook::runtime {
namespace {

// Makes `pool` the calling thread's pool for the scope, as a shard thread does at start-up,
// and restores the previous one (gtest runs every test on the same thread).
class OwnPool {
 public:
  explicit OwnPool(BufferPool& pool) : previous_(BufferPool::thread_pool()) {
    BufferPool::thread_pool() = &pool;
  }
  ~OwnPool() { BufferPool::thread_pool() = previous_; }
  OwnPool(const OwnPool&) = delete;
  OwnPool& operator=(const OwnPool&) = delete;

 private:
  BufferPool* previous_;
};

constexpr std::uint32_t largest_class = BufferPool::class_bytes.back();

TEST(SharedBuffer, each_size_class_serves_requests_up_to_its_size) {
  BufferPool pool;
  OwnPool own(pool);
  std::uint32_t previous_class = 0;
  for (std::uint32_t class_size : BufferPool::class_bytes) {
    for (std::size_t bytes : {std::size_t{previous_class} + 1, std::size_t{class_size}}) {
      SharedBuffer* b = pool.allocate(bytes);
      ASSERT_NE(b, nullptr);
      EXPECT_EQ(b->capacity(), class_size) << bytes << " bytes";
      EXPECT_EQ(b->size(), bytes);
      EXPECT_EQ(b->ref_count_hint(), 1u);
      EXPECT_EQ(b->bytes().size(), bytes);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->data()) % 16, 0u) << "payload alignment";
      // The whole capacity is writable (ASan checks the bounds).
      std::memset(b->data(), 0x5a, b->capacity());
      EXPECT_EQ(b->data()[b->capacity() - 1], std::byte{0x5a});
      b->release();
    }
    previous_class = class_size;
  }
  EXPECT_EQ(pool.stats().large_allocations, 0u);
  EXPECT_GT(pool.stats().allocated_blocks, 0u);
  EXPECT_EQ(pool.stats().remote_returns, 0u);
}

// A publish of a 1 KiB value (its frame a little over 1 KiB) takes a 2 KiB block, not 4 KiB:
// a stream of them keeps half the memory, and half the lines, in queues and history.
TEST(SharedBuffer, the_frame_of_a_one_kib_value_takes_a_two_kib_block) {
  BufferPool pool;
  OwnPool own(pool);
  SharedBuffer* b = pool.allocate(1024 + 64);
  EXPECT_EQ(b->capacity(), 2048u);
  b->release();
}

TEST(SharedBuffer, a_slab_is_carved_one_block_per_allocation_not_all_at_once) {
  BufferPool pool;
  OwnPool own(pool);
  SharedBuffer* first = pool.allocate(200);
  EXPECT_EQ(pool.stats().slabs, 1u);
  EXPECT_EQ(pool.stats().allocated_blocks, 1u) << "the rest of the slab is left untouched";
  std::vector<SharedBuffer*> taken{first};
  const std::size_t per_slab = BufferPool::blocks_per_slab(200);
  for (std::size_t i = 1; i < per_slab; ++i) {
    taken.push_back(pool.allocate(200));
    // Consecutive blocks of the slab, in address order.
    EXPECT_GT(reinterpret_cast<std::uintptr_t>(taken.back()),
              reinterpret_cast<std::uintptr_t>(taken[taken.size() - 2]));
  }
  EXPECT_EQ(pool.stats().allocated_blocks, per_slab);
  EXPECT_EQ(pool.stats().slabs, 1u);
  taken.push_back(pool.allocate(200));
  EXPECT_EQ(pool.stats().slabs, 2u) << "a used-up slab with nothing returned takes a new one";
  for (SharedBuffer* b : taken) b->release();
  EXPECT_EQ(pool.allocate(200), taken.back()) << "returned blocks come before the new slab's rest";
  taken.back()->release();
}

TEST(SharedBuffer, a_zero_byte_request_gets_the_smallest_class) {
  BufferPool pool;
  OwnPool own(pool);
  SharedBuffer* b = pool.allocate(0);
  EXPECT_EQ(b->capacity(), BufferPool::class_bytes.front());
  EXPECT_EQ(b->size(), 0u);
  b->release();
}

TEST(SharedBuffer, requests_above_the_largest_class_come_from_the_heap_and_are_freed) {
  BufferPool pool;
  OwnPool own(pool);
  const auto blocks_before = pool.stats().allocated_blocks;
  for (std::size_t bytes : {std::size_t{largest_class} + 1, std::size_t{1} << 20, std::size_t{3'000'001}}) {
    SharedBuffer* b = pool.allocate(bytes);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b->capacity(), bytes);
    EXPECT_EQ(b->size(), bytes);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b->data()) % 16, 0u);
    std::memset(b->data(), 0x11, bytes);
    b->add_ref();
    b->release();
    EXPECT_EQ(b->data()[bytes - 1], std::byte{0x11}) << "one reference is still held";
    b->release();  // frees it; ASan reports a leak or double free if this is wrong
  }
  EXPECT_EQ(pool.stats().large_allocations, 3u);
  EXPECT_EQ(pool.stats().allocated_blocks, blocks_before) << "large buffers use no slab";
}

TEST(SharedBuffer, large_buffer_released_on_another_thread_is_freed_there) {
  BufferPool pool;
  OwnPool own(pool);
  SharedBuffer* b = pool.allocate(largest_class * 2);
  std::memset(b->data(), 1, b->size());
  std::thread([b] { b->release(); }).join();
  pool.collect_remote();
  EXPECT_EQ(pool.stats().remote_returns, 0u) << "large buffers never enter the return stack";
}

TEST(SharedBuffer, block_returns_to_the_pool_only_when_the_last_reference_goes) {
  BufferPool pool;
  OwnPool own(pool);
  SharedBuffer* b = pool.allocate(100);
  b->add_ref(2);
  EXPECT_EQ(b->ref_count_hint(), 3u);
  b->release();
  b->release();
  EXPECT_EQ(b->ref_count_hint(), 1u);
  // Still held: a new allocation of the same class must not hand out the same block.
  SharedBuffer* other = pool.allocate(100);
  EXPECT_NE(other, b);
  b->release();
  SharedBuffer* again = pool.allocate(200);
  EXPECT_EQ(again, b) << "the freed block is reused first";
  EXPECT_EQ(again->ref_count_hint(), 1u) << "a reused block starts with one reference";
  EXPECT_EQ(again->size(), 200u);
  again->release();
  other->release();
}

TEST(SharedBuffer, blocks_released_on_the_owning_thread_are_recycled_last_in_first_out) {
  BufferPool pool;
  OwnPool own(pool);
  SharedBuffer* a = pool.allocate(1000);
  SharedBuffer* b = pool.allocate(1000);
  SharedBuffer* c = pool.allocate(1000);
  a->release();
  b->release();
  EXPECT_EQ(pool.allocate(1000), b);
  EXPECT_EQ(pool.allocate(1000), a);
  // Recycling many times over never grows the pool: only the first allocation takes a block
  // that was never used.
  pool.allocate(1024)->release();
  const auto blocks = pool.stats().allocated_blocks;
  for (int i = 0; i < 10'000; ++i) pool.allocate(1024)->release();
  EXPECT_EQ(pool.stats().allocated_blocks, blocks);
  EXPECT_EQ(pool.stats().remote_returns, 0u);
  a->release();
  b->release();
  c->release();
}

TEST(SharedBuffer, buffer_ref_copies_add_a_reference_and_moves_do_not) {
  BufferPool pool;
  OwnPool own(pool);
  SharedBuffer* raw = pool.allocate(10);
  {
    BufferRef first(raw);
    EXPECT_EQ(raw->ref_count_hint(), 1u);
    BufferRef copy = first;
    EXPECT_EQ(raw->ref_count_hint(), 2u);
    BufferRef moved = std::move(copy);
    EXPECT_FALSE(copy);  // NOLINT(bugprone-use-after-move): moved-from state is specified
    EXPECT_EQ(raw->ref_count_hint(), 2u);
    BufferRef assigned;
    assigned = first;
    EXPECT_EQ(raw->ref_count_hint(), 3u);
    assigned = BufferRef();
    EXPECT_EQ(raw->ref_count_hint(), 2u);
    SharedBuffer* detached = moved.detach();
    EXPECT_EQ(detached, raw);
    EXPECT_EQ(raw->ref_count_hint(), 2u);
    detached->release();
  }
  EXPECT_EQ(pool.allocate(10), raw) << "the last BufferRef returned the block";
  raw->release();
}

TEST(SharedBuffer, blocks_released_on_another_thread_come_back_through_collect_remote) {
  BufferPool pool;
  OwnPool own(pool);
  constexpr int count = 100;
  std::vector<SharedBuffer*> handed;
  for (int i = 0; i < count; ++i) handed.push_back(pool.allocate(i % 2 ? 300 : 3000));
  const auto blocks = pool.stats().allocated_blocks;
  std::thread other([&] {
    for (SharedBuffer* b : handed) b->release();
  });
  other.join();
  EXPECT_EQ(pool.stats().remote_returns, 0u) << "returned blocks wait until the owner collects";
  // The free lists still hold fresh blocks, so this allocation does not collect.
  SharedBuffer* fresh = pool.allocate(300);
  EXPECT_EQ(std::count(handed.begin(), handed.end(), fresh), 0);
  EXPECT_EQ(pool.stats().remote_returns, 0u);
  fresh->release();
  const auto blocks_with_fresh = pool.stats().allocated_blocks;
  EXPECT_EQ(blocks_with_fresh, blocks + 1);

  pool.collect_remote();
  EXPECT_EQ(pool.stats().remote_returns, std::uint64_t{count});
  pool.collect_remote();
  EXPECT_EQ(pool.stats().remote_returns, std::uint64_t{count}) << "collected once only";
  // Every returned block can be handed out again, and allocating them back grows nothing. The
  // owner's own return comes first: it is the one still in this core's cache.
  EXPECT_EQ(pool.allocate(300), fresh);
  std::set<SharedBuffer*> returned(handed.begin(), handed.end());
  std::vector<SharedBuffer*> got;
  for (int i = 0; i < count; ++i) got.push_back(pool.allocate(i % 2 ? 300 : 3000));
  for (SharedBuffer* b : got) EXPECT_EQ(returned.count(b), 1u);
  EXPECT_EQ(std::set<SharedBuffer*>(got.begin(), got.end()).size(), std::size_t{count});
  EXPECT_EQ(pool.stats().allocated_blocks, blocks_with_fresh);
  for (SharedBuffer* b : got) b->release();
  fresh->release();
}

TEST(SharedBuffer, allocation_collects_remote_returns_when_a_class_runs_dry) {
  BufferPool pool;
  OwnPool own(pool);
  // Take every block of the first slab of the 64 KiB class.
  const std::size_t slab_blocks = BufferPool::blocks_per_slab(65536);
  ASSERT_GT(slab_blocks, 4u);
  std::vector<SharedBuffer*> all;
  for (std::size_t i = 0; i < slab_blocks; ++i) all.push_back(pool.allocate(65536));
  ASSERT_EQ(pool.stats().allocated_blocks, slab_blocks);
  SharedBuffer* victim = all[3];
  std::thread([victim] { victim->release(); }).join();
  EXPECT_EQ(pool.allocate(40000), victim) << "the empty class collects before it grows";
  EXPECT_EQ(pool.stats().remote_returns, 1u);
  EXPECT_EQ(pool.stats().allocated_blocks, slab_blocks);
  for (SharedBuffer* b : all) b->release();
}

// Stress: an owner thread allocates, fills and shares buffers (one to three references each)
// over an SpscRing; the consumer checks the bytes and releases its references. The owner keeps
// one more reference of every fifth buffer and drops it at a pseudo-random later point, so the
// last release races between the two threads and both return paths run concurrently. A
// consumer that batches its returns flushes them after each drain, as a shard does each turn.
void hand_references_over_a_ring(bool consumer_batches) {
  constexpr std::uint64_t total = 200'000;
  constexpr std::size_t ring_slots = 256;
  constexpr std::size_t max_kept = 64;
  std::array<std::byte, 4096> pattern{};
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<std::byte>(i * 7 + 3);
  // Classes 256 and 1024 mostly, 4096 now and then, the heap path rarely. At most
  // ring_slots + max_kept + 2 buffers are alive at once, fewer than one slab of any class
  // used holds, so the pool never needs a second slab unless blocks fail to come back.
  auto size_of = [](std::uint64_t seq) -> std::size_t {
    if (seq % 997 == 0) return largest_class + 100 + seq % 1000;
    if (seq % 13 == 0) return 3000;
    return 8 + (seq * 2654435761u) % 1016;
  };
  transport::SpscRing<SharedBuffer*> ring(ring_slots);
  std::atomic<bool> owner_done{false};
  std::atomic<bool> consumer_done{false};
  BufferPoolStats stats_after_warmup{}, stats_at_end{};
  std::vector<std::uint64_t> blocks_per_class;
  bool every_block_came_back = true;

  std::thread owner([&] {
    BufferPool pool;
    OwnPool own(pool);
    // Warm-up: one slab of each class the stress uses, and how many blocks each holds.
    for (std::size_t bytes : {256u, 1024u, 4096u}) {
      const auto before = pool.stats().allocated_blocks;
      pool.allocate(bytes)->release();
      blocks_per_class.push_back(pool.stats().allocated_blocks - before);
    }
    stats_after_warmup = pool.stats();
    std::vector<SharedBuffer*> kept;
    for (std::uint64_t seq = 0; seq < total; ++seq) {
      const std::size_t bytes = size_of(seq);
      SharedBuffer* b = pool.allocate(bytes);
      std::memcpy(b->data(), &seq, 8);
      for (std::size_t at = 8; at < bytes; at += pattern.size())
        std::memcpy(b->data() + at, pattern.data(), std::min(pattern.size(), bytes - at));
      // The allocation's reference is the first share; the others are added before sharing.
      const std::uint32_t shares = 1 + seq % 3;
      const bool keep = seq % 5 == 0;
      if (shares > 1) b->add_ref(shares - 1);
      if (keep) {
        b->add_ref();
        kept.push_back(b);
      }
      for (std::uint32_t s = 0; s < shares; ++s) {
        while (!ring.try_push(b)) std::this_thread::yield();
      }
      // Drop kept references out of order, while the consumer may still hold others.
      if (kept.size() > max_kept) {
        const std::size_t victim = (seq * 31) % kept.size();
        kept[victim]->release();
        kept[victim] = kept.back();
        kept.pop_back();
      }
    }
    for (SharedBuffer* b : kept) b->release();
    // release: pairs with the consumer's acquire; every push happened before it.
    owner_done.store(true, std::memory_order_release);
    // The pool must outlive every reference: wait until the consumer has released its last.
    // acquire: pairs with the consumer's release store, ordering its returns before collect.
    while (!consumer_done.load(std::memory_order_acquire)) std::this_thread::yield();
    pool.collect_remote();
    stats_at_end = pool.stats();
    // Every block is free again: a whole slab of each class can be taken without growing.
    const std::size_t classes[] = {256, 1024, 4096};
    for (std::size_t c = 0; c < 3; ++c) {
      std::vector<SharedBuffer*> all;
      for (std::uint64_t i = 0; i < blocks_per_class[c]; ++i) all.push_back(pool.allocate(classes[c]));
      if (pool.stats().allocated_blocks != stats_at_end.allocated_blocks) every_block_came_back = false;
      for (SharedBuffer* b : all) b->release();
    }
  });

  std::uint64_t received = 0, bad_seq = 0, bad_bytes = 0;
  std::uint64_t last_seq = 0;
  auto check_and_release = [&](SharedBuffer* const& b) {
    std::uint64_t seq;
    std::memcpy(&seq, b->data(), 8);
    if (seq < last_seq || seq >= total) ++bad_seq;
    last_seq = seq;
    if (b->size() != size_of(seq)) {
      ++bad_bytes;
    } else {
      for (std::size_t at = 8; at < b->size(); at += pattern.size())
        if (std::memcmp(b->data() + at, pattern.data(), std::min(pattern.size(), b->size() - at)) != 0)
          ++bad_bytes;
    }
    b->release();
    ++received;
  };
  std::thread consumer([&] {
    if (consumer_batches) BufferPool::batch_returns_on_this_thread();
    for (;;) {
      // acquire: pairs with the owner's release store of owner_done.
      const bool done = owner_done.load(std::memory_order_acquire);
      // A batching consumer takes the whole ring at once, so that its batches fill (a record
      // is one of 1-3 references, and a batch needs 32 last releases) while the owner
      // collects; the other takes 32 records at a time.
      const std::size_t n = ring.drain(check_and_release, consumer_batches ? ring_slots : 32);
      BufferPool::flush_returns();
      if (n == 0) {
        if (done) break;
        std::this_thread::yield();
      }
    }
    // release: pairs with the owner's acquire; all our releases happen before its collect.
    consumer_done.store(true, std::memory_order_release);
  });
  consumer.join();
  owner.join();

  std::uint64_t expected_refs = 0;
  for (std::uint64_t seq = 0; seq < total; ++seq) expected_refs += 1 + seq % 3;
  EXPECT_EQ(received, expected_refs);
  EXPECT_EQ(bad_seq, 0u);
  EXPECT_EQ(bad_bytes, 0u);
  EXPECT_GT(stats_at_end.remote_returns, 0u) << "the consumer's last releases take the remote path";
  EXPECT_EQ(stats_at_end.large_allocations, (total + 996) / 997);
  EXPECT_EQ(stats_at_end.slabs, stats_after_warmup.slabs)
      << "the pool grew: released blocks did not come back in time";
  EXPECT_TRUE(every_block_came_back) << "some blocks never returned to their pool";
}

TEST(SharedBuffer, references_handed_over_a_ring_and_released_on_the_other_thread) {
  hand_references_over_a_ring(false);
}

TEST(SharedBuffer, references_handed_over_a_ring_and_released_in_batches_on_the_other_thread) {
  hand_references_over_a_ring(true);
}

// A shard's releases of another pool's blocks: in batches of 32, the rest when it flushes (or
// ends), and the owner hands them out again in the order they were released.
TEST(SharedBuffer, a_batching_thread_returns_blocks_in_batches_and_the_owner_reuses_them_in_release_order) {
  BufferPool pool;
  OwnPool own(pool);
  constexpr int count = 100;  // 66 of 256 B and 34 of 1 KiB: three whole batches, 4 blocks over
  std::vector<SharedBuffer*> handed;
  for (int i = 0; i < count; ++i) handed.push_back(pool.allocate(i % 3 ? 200 : 1000));
  std::atomic<int> step{0};
  std::thread other([&] {
    BufferPool::batch_returns_on_this_thread();
    for (SharedBuffer* b : handed) b->release();
    step.store(1, std::memory_order_release);
    while (step.load(std::memory_order_acquire) != 2) std::this_thread::yield();
    BufferPool::flush_returns();
    step.store(3, std::memory_order_release);
  });
  while (step.load(std::memory_order_acquire) != 1) std::this_thread::yield();
  const auto blocks = pool.stats().allocated_blocks;
  auto allocate_like_handed = [&](int from, int to) {
    std::vector<SharedBuffer*> got;
    for (int i = from; i < to; ++i) got.push_back(pool.allocate(i % 3 ? 200 : 1000));
    return got;
  };
  pool.collect_remote();
  EXPECT_EQ(pool.stats().remote_returns, 96u) << "whole batches come back at once";
  std::vector<SharedBuffer*> again = allocate_like_handed(0, 96);
  EXPECT_TRUE(std::equal(again.begin(), again.end(), handed.begin()))
      << "each class hands its blocks out in the order they were released";
  step.store(2, std::memory_order_release);
  while (step.load(std::memory_order_acquire) != 3) std::this_thread::yield();
  other.join();
  pool.collect_remote();
  EXPECT_EQ(pool.stats().remote_returns, std::uint64_t{count}) << "the flush returns the rest";
  std::vector<SharedBuffer*> rest = allocate_like_handed(96, count);
  EXPECT_TRUE(std::equal(rest.begin(), rest.end(), handed.begin() + 96));
  EXPECT_EQ(pool.stats().allocated_blocks, blocks) << "nothing new was carved";
  for (SharedBuffer* b : again) b->release();
  for (SharedBuffer* b : rest) b->release();
  EXPECT_EQ(pool.in_use_bytes(), 0u);
}

TEST(SharedBuffer, a_batching_thread_that_ends_hands_back_its_partial_batches) {
  BufferPool first, second;
  OwnPool own(first);
  std::vector<SharedBuffer*> handed;
  for (int i = 0; i < 5; ++i) handed.push_back(first.allocate(100));
  {
    OwnPool other_pool(second);
    for (int i = 0; i < 3; ++i) handed.push_back(second.allocate(5000));
  }
  std::thread([&] {
    BufferPool::batch_returns_on_this_thread();
    for (SharedBuffer* b : handed) b->release();
  }).join();
  first.collect_remote();
  second.collect_remote();
  EXPECT_EQ(first.stats().remote_returns, 5u);
  EXPECT_EQ(second.stats().remote_returns, 3u);
  EXPECT_EQ(first.in_use_bytes(), 0u);
  EXPECT_EQ(second.in_use_bytes(), 0u);
}

TEST(SharedBuffer, slabs_with_no_block_in_use_go_back_to_the_heap_and_the_pool_still_works) {
  BufferPool pool;
  OwnPool own(pool);
  const std::size_t per_slab = BufferPool::blocks_per_slab(1000);
  std::vector<SharedBuffer*> taken;
  for (std::size_t i = 0; i < 3 * per_slab + 1; ++i) taken.push_back(pool.allocate(1000));
  EXPECT_EQ(pool.stats().slabs, 4u);
  const std::uint64_t heap = pool.heap_bytes();
  EXPECT_GE(pool.in_use_bytes(), (3 * per_slab + 1) * 1024);
  EXPECT_EQ(pool.release_free_slabs(), 0u) << "every slab holds a block in use";
  // Give back the first two slabs' blocks, one of them through another thread's return.
  std::thread([&] {
    for (std::size_t i = 0; i < per_slab; ++i) taken[i]->release();
  }).join();
  for (std::size_t i = per_slab; i < 2 * per_slab; ++i) taken[i]->release();
  pool.collect_remote();
  EXPECT_EQ(pool.release_free_slabs(), 2u << 20) << "two slabs with nothing in use";
  EXPECT_EQ(pool.heap_bytes(), heap - (2u << 20));
  EXPECT_EQ(pool.stats().released_slabs, 2u);
  // The rest is intact and the pool hands out blocks again, none from a released slab.
  for (std::size_t i = 2 * per_slab; i < taken.size(); ++i) EXPECT_EQ(taken[i]->capacity(), 1024u);
  std::vector<SharedBuffer*> again;
  for (std::size_t i = 0; i < per_slab; ++i) {
    again.push_back(pool.allocate(1000));
    std::memset(again.back()->data(), 0x5a, 1000);  // ASan: the memory is the pool's
  }
  for (SharedBuffer* b : again) b->release();
  for (std::size_t i = 2 * per_slab; i < taken.size(); ++i) taken[i]->release();
  EXPECT_EQ(pool.in_use_bytes(), 0u);
  EXPECT_GT(pool.release_free_slabs(), 0u);
}

TEST(SharedBuffer, a_slab_whose_blocks_wait_in_returned_batches_goes_back_after_a_sweep_in_steps) {
  BufferPool pool;
  OwnPool own(pool);
  const std::size_t per_slab = BufferPool::blocks_per_slab(1000);
  const std::size_t half = per_slab / 2;
  std::vector<SharedBuffer*> taken;
  for (std::size_t i = 0; i < 3 * per_slab; ++i) taken.push_back(pool.allocate(1000));
  ASSERT_EQ(pool.stats().slabs, 3u);
  const std::set<SharedBuffer*> first_slab(taken.begin(), taken.begin() + static_cast<std::ptrdiff_t>(per_slab));
  // All of the first slab and half of the second come back in batches from a shard-like
  // thread; the rest of the second and the third stay in use.
  std::thread([&] {
    BufferPool::batch_returns_on_this_thread();
    for (std::size_t i = 0; i < per_slab + half; ++i) taken[i]->release();
    BufferPool::flush_returns();
  }).join();
  pool.collect_remote();
  EXPECT_EQ(pool.stats().remote_returns, per_slab + half);
  // Some are handed out again (a batch opened part-way), in release order, and come back.
  std::vector<SharedBuffer*> again;
  for (std::size_t i = 0; i < 40; ++i) again.push_back(pool.allocate(1000));
  EXPECT_TRUE(std::equal(again.begin(), again.end(), taken.begin())) << "in release order";
  for (SharedBuffer* b : again) b->release();
  EXPECT_EQ(pool.release_free_slabs(10), 0u) << "ten blocks examined: the sweep goes on";
  EXPECT_TRUE(pool.sweeping());
  // Between steps the shard goes on: it allocates, and another thread's return arrives.
  std::uint64_t released = 0;
  SharedBuffer* returned_during_sweep = taken.back();
  for (std::size_t step = 0; step < 1000 && pool.sweeping(); ++step) {
    SharedBuffer*& mine = taken[2 * per_slab + step % per_slab];
    mine->release();
    EXPECT_EQ(pool.allocate(1000), mine) << "the block just released, not one set aside";
    if (step == 3) {
      std::thread([returned_during_sweep] { returned_during_sweep->release(); }).join();
      pool.collect_remote();
    }
    released += pool.release_free_slabs(10);
  }
  EXPECT_FALSE(pool.sweeping());
  EXPECT_EQ(released, 1u << 20) << "the slab whose blocks all came back";
  EXPECT_EQ(pool.stats().released_slabs, 1u);
  // Every free block of the slabs that stay is handed out again, none of the released one,
  // and nothing is carved: the kept blocks went back on the lists, the late return is queued.
  const auto carved = pool.stats().allocated_blocks;
  std::vector<SharedBuffer*> fresh;
  for (std::size_t i = 0; i < half + 1; ++i) {
    fresh.push_back(pool.allocate(1000));
    EXPECT_EQ(first_slab.count(fresh.back()), 0u);
  }
  EXPECT_EQ(std::count(fresh.begin(), fresh.end(), returned_during_sweep), 1);
  EXPECT_EQ(pool.stats().allocated_blocks, carved);
  EXPECT_EQ(pool.stats().slabs, 3u);
  for (SharedBuffer* b : fresh) b->release();
  for (std::size_t i = per_slab + half; i + 1 < taken.size(); ++i) taken[i]->release();
  EXPECT_EQ(pool.in_use_bytes(), 0u);
}

}  // namespace
}  // namespace brook::runtime
