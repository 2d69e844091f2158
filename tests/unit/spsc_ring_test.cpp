// Unit tests of SpscRing, the shard mailbox ring: capacity rounding, full and empty, FIFO
// order across many wrap-arounds, bounded drains, and a two-thread stress run (bounded count,
// strict sequence and checksum) that ThreadSanitizer must pass clean.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <string>
#include <vector>

#include "brook/transport/spsc_ring.hpp"

namespace brook::transport {
namespace {

// A shard-message-sized record whose fields all derive from its sequence number, so a torn or
// stale slot shows up as a mismatch rather than as a plausible value.
struct Record {
  std::uint64_t seq;
  std::uint64_t a;
  std::uint64_t b;
  std::uint32_t c;
  std::uint32_t check;
};
static_assert(sizeof(Record) == 32);

Record make_record(std::uint64_t seq) {
  Record r{seq, seq * 0x9e3779b97f4a7c15ull, ~seq, static_cast<std::uint32_t>(seq >> 3), 0};
  r.check = static_cast<std::uint32_t>(r.seq ^ r.a ^ r.b ^ r.c);
  return r;
}
bool intact(const Record& r) {
  return r.a == r.seq * 0x9e3779b97f4a7c15ull && r.b == ~r.seq &&
         r.c == static_cast<std::uint32_t>(r.seq >> 3) &&
         r.check == static_cast<std::uint32_t>(r.seq ^ r.a ^ r.b ^ r.c);
}

TEST(SpscRing, capacity_rounds_up_to_a_power_of_two) {
  EXPECT_EQ(SpscRing<std::uint64_t>(1).capacity(), 1u);
  EXPECT_EQ(SpscRing<std::uint64_t>(2).capacity(), 2u);
  EXPECT_EQ(SpscRing<std::uint64_t>(3).capacity(), 4u);
  EXPECT_EQ(SpscRing<std::uint64_t>(1000).capacity(), 1024u);
  EXPECT_EQ(SpscRing<std::uint64_t>(1024).capacity(), 1024u);
  EXPECT_EQ(SpscRing<std::uint64_t>(1025).capacity(), 2048u);
}

TEST(SpscRing, rounded_capacity_is_usable_in_full_and_not_one_more) {
  SpscRing<std::uint64_t> ring(5);  // rounds to 8
  ASSERT_EQ(ring.capacity(), 8u);
  EXPECT_EQ(ring.free_slots(), 8u);
  for (std::uint64_t i = 0; i < 8; ++i) ASSERT_TRUE(ring.try_push(i)) << i;
  EXPECT_FALSE(ring.try_push(99));
  EXPECT_EQ(ring.free_slots(), 0u);
  std::uint64_t v = 0;
  ASSERT_TRUE(ring.try_pop(v));
  EXPECT_EQ(v, 0u);
  EXPECT_EQ(ring.free_slots(), 1u);
  EXPECT_TRUE(ring.try_push(8));
  EXPECT_FALSE(ring.try_push(99));
}

TEST(SpscRing, empty_ring_pops_nothing_and_drains_nothing) {
  SpscRing<std::uint64_t> ring(4);
  std::uint64_t v = 42;
  EXPECT_TRUE(ring.empty_hint());
  EXPECT_FALSE(ring.try_pop(v));
  EXPECT_EQ(v, 42u) << "a failed pop must not write its output";
  EXPECT_EQ(ring.drain([](const std::uint64_t&) { ADD_FAILURE() << "drained a record"; }), 0u);
  ASSERT_TRUE(ring.try_push(7));
  EXPECT_FALSE(ring.empty_hint());
  ASSERT_TRUE(ring.try_pop(v));
  EXPECT_EQ(v, 7u);
  EXPECT_FALSE(ring.try_pop(v));
  EXPECT_TRUE(ring.empty_hint());
}

TEST(SpscRing, capacity_one_ring_alternates_full_and_empty) {
  SpscRing<std::uint64_t> ring(1);
  std::uint64_t v = 0;
  for (std::uint64_t i = 0; i < 100; ++i) {
    ASSERT_TRUE(ring.try_push(i));
    ASSERT_FALSE(ring.try_push(i + 1000));
    ASSERT_TRUE(ring.try_pop(v));
    ASSERT_EQ(v, i);
    ASSERT_FALSE(ring.try_pop(v));
  }
}

TEST(SpscRing, keeps_fifo_order_across_many_wrap_arounds) {
  // Uneven fill levels (1..capacity) so pushes and pops land on every slot at every phase.
  SpscRing<Record> ring(16);
  std::uint64_t pushed = 0, popped = 0;
  for (int round = 0; round < 2000; ++round) {
    const std::size_t fill = 1 + static_cast<std::size_t>(round * 7) % ring.capacity();
    for (std::size_t i = 0; i < fill; ++i) ASSERT_TRUE(ring.try_push(make_record(pushed++)));
    const std::size_t take = 1 + static_cast<std::size_t>(round * 5) % fill;
    for (std::size_t i = 0; i < take; ++i) {
      Record r{};
      ASSERT_TRUE(ring.try_pop(r));
      ASSERT_EQ(r.seq, popped++);
      ASSERT_TRUE(intact(r));
    }
    // Empty what is left so the next round's fill always fits.
    ring.drain([&](const Record& r) {
      ASSERT_EQ(r.seq, popped++);
      ASSERT_TRUE(intact(r));
    });
    ASSERT_EQ(pushed, popped);
  }
  EXPECT_GT(pushed, 100 * ring.capacity()) << "the test must wrap the ring many times";
}

TEST(SpscRing, drain_takes_at_most_max_and_leaves_the_rest_in_order) {
  SpscRing<std::uint64_t> ring(8);
  for (std::uint64_t i = 0; i < 7; ++i) ASSERT_TRUE(ring.try_push(i));
  std::vector<std::uint64_t> got;
  auto collect = [&](const std::uint64_t& v) { got.push_back(v); };
  EXPECT_EQ(ring.drain(collect, 3), 3u);
  EXPECT_EQ(got, (std::vector<std::uint64_t>{0, 1, 2}));
  EXPECT_EQ(ring.free_slots(), 4u) << "drain must free the slots it took";
  EXPECT_EQ(ring.drain(collect, 0), 0u);
  // The freed slots are reusable at once, and the new records come after the old ones.
  for (std::uint64_t i = 7; i < 11; ++i) ASSERT_TRUE(ring.try_push(i));
  EXPECT_FALSE(ring.try_push(99));
  EXPECT_EQ(ring.drain(collect, 100), 8u);
  EXPECT_EQ(got, (std::vector<std::uint64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10}));
  EXPECT_EQ(ring.drain(collect), 0u);
}

// The look-ahead drain: each record is looked ahead at once, `distance` records before it is
// handled (the first ones at the start), and only records of this drain are.
TEST(SpscRing, drain_with_look_ahead_sees_each_record_once_distance_records_early) {
  SpscRing<std::uint64_t> ring(16);
  for (std::uint64_t i = 0; i < 14; ++i) ASSERT_TRUE(ring.try_push(i));  // wraps round below
  ASSERT_EQ(ring.drain([](const std::uint64_t&) {}, 10), 10u);
  for (std::uint64_t i = 14; i < 24; ++i) ASSERT_TRUE(ring.try_push(i));
  std::vector<std::string> events;
  auto handle = [&](const std::uint64_t& v) { events.push_back("f" + std::to_string(v)); };
  auto ahead = [&](const std::uint64_t& v) { events.push_back("a" + std::to_string(v)); };
  EXPECT_EQ(ring.drain(handle, 6, ahead, 3), 6u);
  EXPECT_EQ(events, (std::vector<std::string>{"a10", "a11", "a12", "a13", "f10", "a14", "f11",
                                              "a15", "f12", "f13", "f14", "f15"}));
  events.clear();
  EXPECT_EQ(ring.drain(handle, 100, ahead, 3), 8u);
  EXPECT_EQ(events.size(), 16u);
  EXPECT_EQ(events.front(), "a16");
  EXPECT_EQ(events.back(), "f23");
  EXPECT_EQ(ring.drain(handle, 100, ahead, 3), 0u);
}

// The two-stage drain: each record is seen by `far` far_distance records before it is
// handled and by `near` near_distance records before, always far first.
TEST(SpscRing, two_stage_look_ahead_sees_each_record_far_then_near_then_handles_it) {
  SpscRing<std::uint64_t> ring(16);
  for (std::uint64_t i = 0; i < 6; ++i) ASSERT_TRUE(ring.try_push(i));
  std::vector<std::string> events;
  auto handle = [&](const std::uint64_t& v) { events.push_back("f" + std::to_string(v)); };
  auto far = [&](const std::uint64_t& v) { events.push_back("a" + std::to_string(v)); };
  auto near = [&](const std::uint64_t& v) { events.push_back("b" + std::to_string(v)); };
  EXPECT_EQ(ring.drain(handle, 100, far, 3, near, 1), 6u);
  EXPECT_EQ(events, (std::vector<std::string>{"a0", "a1", "a2", "b0", "a3", "b1", "f0", "a4", "b2", "f1",
                                              "a5", "b3", "f2", "b4", "f3", "b5", "f4", "f5"}));
  events.clear();
  ASSERT_TRUE(ring.try_push(6));
  EXPECT_EQ(ring.drain(handle, 100, far, 3, near, 1), 1u);
  EXPECT_EQ(events, (std::vector<std::string>{"a6", "b6", "f6"}));
}

TEST(SpscRing, two_threads_pass_two_million_records_in_order_and_intact) {
  constexpr std::uint64_t total = 2'000'000;
  SpscRing<Record> ring(1024);
  std::uint64_t producer_sum = 0;
  std::atomic<bool> producer_done{false};
  std::thread producer([&] {
    for (std::uint64_t seq = 0; seq < total;) {
      const Record r = make_record(seq);
      if (ring.try_push(r)) {
        producer_sum += r.a + r.check;
        ++seq;
      } else {
        std::this_thread::yield();  // 2-core machines: let the consumer run
      }
    }
    // release: pairs with the acquire below, so the consumer's final drain sees every push.
    producer_done.store(true, std::memory_order_release);
  });
  std::uint64_t received = 0, expected = 0, consumer_sum = 0, out_of_order = 0, torn = 0;
  std::uint64_t idle = 0;
  auto take = [&](const Record& r) {
    if (r.seq != expected) ++out_of_order;
    if (!intact(r)) ++torn;
    consumer_sum += r.a + r.check;
    expected = r.seq + 1;
    ++received;
  };
  // Alternate between single pops and bounded batch drains so both consumer paths race with
  // the producer. The loop counts records, not sequence numbers, so it ends even if a
  // record is lost or duplicated, and the counters below say which; a lost record ends the
  // loop once the producer is done and a final drain finds nothing.
  while (received < total) {
    std::size_t n = 0;
    if ((received / 4096) % 2 == 0) {
      Record r{};
      if (ring.try_pop(r)) {
        take(r);
        n = 1;
      }
    } else {
      n = ring.drain(take, 64);
    }
    if (n == 0) {
      // acquire: pairs with the producer's release store of producer_done.
      if (producer_done.load(std::memory_order_acquire) && ring.drain(take) == 0) break;
      if (++idle % 64 == 0) std::this_thread::yield();
    }
  }
  producer.join();
  EXPECT_EQ(out_of_order, 0u);
  EXPECT_EQ(torn, 0u);
  EXPECT_EQ(received, total);
  EXPECT_EQ(expected, total);
  EXPECT_EQ(consumer_sum, producer_sum);
  Record r{};
  EXPECT_FALSE(ring.try_pop(r));
}

}  // namespace
}  // namespace brook::transport
