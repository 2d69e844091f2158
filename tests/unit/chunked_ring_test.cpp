// Unit tests of ChunkedRing: entries keep their positions while the ring doubles inside one
// chunk, while it adds chunks, and when it grows with the ring wrapped inside a chunk.
#include <gtest/gtest.h>

#include <cstdint>
#include <deque>
#include <random>

#include "../../runtime/broker/src/chunked_ring.hpp"

namespace {

using brook::runtime::ChunkedRing;

// Chunks of 8 entries, so that a few dozen pushes cross from doubling to adding chunks.
using SmallRing = ChunkedRing<std::uint64_t, 3>;

struct Model {
  SmallRing ring{1};
  std::deque<std::uint64_t> expected;
  std::uint64_t head = 0, tail = 0;

  void push(std::uint64_t value) {
    ring.prepare(head, tail);
    ring[tail++] = value;
    expected.push_back(value);
  }
  void pop_front() {
    ++head;
    expected.pop_front();
  }
  void pop_back() {
    --tail;
    expected.pop_back();
  }
  void check() const {
    ASSERT_EQ(tail - head, expected.size());
    ASSERT_GE(ring.capacity(), expected.size());
    for (std::uint64_t p = head; p != tail; ++p)
      ASSERT_EQ(ring[p], expected[p - head]) << "position " << p << " of [" << head << ", " << tail << ")";
  }
};

TEST(ChunkedRing, doubles_within_a_chunk_then_adds_chunks_keeping_every_position) {
  Model m;
  for (std::uint64_t i = 0; i < 100; ++i) {
    m.push(i * 7);
    m.check();
  }
  EXPECT_EQ(m.ring.capacity(), 128u);
}

TEST(ChunkedRing, grows_when_full_with_the_ring_wrapped_inside_one_chunk) {
  Model m;
  // Fill one whole chunk, then move the head to mid-chunk and fill again: the ring is full with
  // the tail's entries sharing the head's chunk, which the next push must split.
  for (std::uint64_t i = 0; i < 8; ++i) m.push(i);
  for (int i = 0; i < 3; ++i) m.pop_front();
  for (std::uint64_t i = 8; i < 11; ++i) m.push(i);
  ASSERT_EQ(m.ring.capacity(), m.tail - m.head) << "full, wrapped";
  m.push(11);
  m.check();
  EXPECT_EQ(m.ring.capacity(), 16u);
  // The same with several chunks: full, the head mid-chunk, then a push.
  while (m.tail - m.head < m.ring.capacity()) m.push(m.tail * 3);
  for (int i = 0; i < 2; ++i) m.pop_front();
  for (int i = 0; i < 2; ++i) m.push(m.tail * 3);
  ASSERT_EQ(m.ring.capacity(), m.tail - m.head);
  ASSERT_NE(m.head % 8, 0u);
  m.push(m.tail * 3);
  m.check();
  EXPECT_EQ(m.ring.capacity(), 32u);
}

TEST(ChunkedRing, random_pushes_and_pops_at_both_ends_match_a_deque) {
  Model m;
  std::mt19937_64 random(42);
  for (int step = 0; step < 200'000; ++step) {
    const auto roll = random() % 100;
    // Mostly pushes at first, then balanced, so the ring grows through many sizes and wraps.
    const auto push_chance = step < 100'000 ? 60u : 50u;
    if (roll < push_chance || m.expected.empty()) {
      m.push(random());
    } else if (roll < 95) {
      m.pop_front();
    } else {
      m.pop_back();  // as OutboundQueue::drop_unsent moves its tail back
    }
    if (step % 997 == 0) m.check();
  }
  m.check();
}

TEST(ChunkedRing, a_steady_window_stops_growing) {
  Model m;
  for (std::uint64_t i = 0; i < 1000; ++i) m.push(i);
  const auto capacity = m.ring.capacity();
  for (std::uint64_t i = 1000; i < 100'000; ++i) {
    m.push(i);
    m.pop_front();
  }
  m.check();
  EXPECT_EQ(m.ring.capacity(), capacity);
}

}  // namespace
