// Unit tests of OutboundQueue, a session's frames on their way to sendmsg and its recovery
// window: the frame and byte limits, gather() producing head-then-body iovecs in order (small
// frames staged into one iovec), rewind() resending retained frames after a reconnect, complete() after partial sends
// (in a head and in a body) resuming at exactly the next unsent byte, drop_unsent() keeping a
// send in flight and a partly sent frame, and growth of the ring while a send is in flight
// leaving the gathered iovecs untouched.
#include <gtest/gtest.h>

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "../../runtime/broker/src/outbound_queue.hpp"
#include "brook/runtime/shared_buffer.hpp"

namespace brook::runtime {
namespace {

using Bytes = std::vector<std::byte>;

// Every test owns a pool on its thread, as a shard does, so releases take the local path.
class OutboundQueueTest : public ::testing::Test {
 protected:
  OutboundQueueTest() : previous_(BufferPool::thread_pool()) { BufferPool::thread_pool() = &pool_; }
  ~OutboundQueueTest() override { BufferPool::thread_pool() = previous_; }

  // A frame whose every byte is distinct from its neighbours': head bytes 'h' + index, body
  // bytes from `seed`. The body lives at `offset` inside a larger shared buffer.
  OutFrame frame(std::uint8_t head_bytes, std::uint32_t body_bytes, std::uint32_t seed,
                 std::uint32_t offset = 0) {
    OutFrame f{};
    f.head_bytes = head_bytes;
    for (std::uint8_t i = 0; i < head_bytes; ++i)
      f.head[i] = static_cast<std::byte>(seed * 17 + i * 3 + 1);
    f.body_offset = offset;
    f.body_bytes = body_bytes;
    if (body_bytes > 0) {
      f.body = pool_.allocate(offset + body_bytes);
      for (std::uint32_t i = 0; i < offset + body_bytes; ++i)
        f.body->data()[i] = static_cast<std::byte>(i < offset ? 0xee : seed * 29 + i * 5 + 2);
    }
    return f;
  }
  static Bytes wire(const OutFrame& f) {
    Bytes b(f.head.begin(), f.head.begin() + f.head_bytes);
    if (f.body) {
      const std::byte* body = f.body->data() + f.body_offset;
      b.insert(b.end(), body, body + f.body_bytes);
    }
    return b;
  }
  // Pushes `f`, appending its wire bytes to `stream`.
  void push(OutboundQueue& q, const OutFrame& f, Bytes& stream) {
    const Bytes w = wire(f);
    ASSERT_TRUE(q.push(f));
    stream.insert(stream.end(), w.begin(), w.end());
  }
  static Bytes flatten(std::span<const ::iovec> iov) {
    Bytes out;
    for (const auto& v : iov) {
      EXPECT_GT(v.iov_len, 0u) << "no empty iovecs";
      const auto* p = static_cast<const std::byte*>(v.iov_base);
      out.insert(out.end(), p, p + v.iov_len);
    }
    return out;
  }
  Bytes gather_all(OutboundQueue& q, std::size_t iov_slots = 64) {
    std::vector<::iovec> iov(iov_slots);
    const std::size_t n = q.gather(iov, pool_);
    return flatten(std::span(iov).first(n));
  }
  static Bytes tail_of(const Bytes& stream, std::size_t from) {
    return Bytes(stream.begin() + static_cast<std::ptrdiff_t>(from), stream.end());
  }

  BufferPool pool_;
  BufferPool* previous_;
};

TEST_F(OutboundQueueTest, push_refuses_at_the_frame_limit_and_the_caller_keeps_the_body) {
  OutboundQueue q({4, 1 << 20, 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 4; ++i) push(q, frame(32, 100, i), stream);
  OutFrame refused = frame(32, 100, 9);
  EXPECT_FALSE(q.push(refused));
  EXPECT_EQ(q.frames(), 4u);
  EXPECT_EQ(q.bytes(), 4u * 132u);
  EXPECT_EQ(refused.body->ref_count_hint(), 1u) << "a refused push takes no reference";
  refused.body->release();
  // push_unbounded is for the one error frame that explains a close: it ignores the limit.
  OutFrame error = frame(40 - 32, 24, 10);
  q.push_unbounded(error);
  EXPECT_EQ(q.frames(), 5u);
  EXPECT_EQ(q.bytes(), 4u * 132u + 32u);
}

TEST_F(OutboundQueueTest, push_refuses_at_the_byte_limit_but_a_smaller_frame_still_fits) {
  // The limit counts each queued frame's entry too: room for 1000 bytes in 8 frames.
  constexpr auto entry = OutboundQueue::entry_bytes;
  OutboundQueue q({1000, static_cast<std::uint32_t>(1000 + 8 * entry), 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 7; ++i) push(q, frame(32, 100, i), stream);  // 924 bytes
  OutFrame too_big = frame(32, 100, 7);  // would make 1056
  EXPECT_FALSE(q.push(too_big));
  too_big.body->release();
  EXPECT_EQ(q.bytes(), 924u);
  push(q, frame(32, 44, 8), stream);  // exactly 1000
  EXPECT_EQ(q.bytes(), 1000u);
  OutFrame one_more = frame(1, 0, 9);
  EXPECT_FALSE(q.push(one_more)) << "a full byte budget refuses even one byte";
  // Sending frees budget: after the first frame goes, another 132-byte frame fits.
  EXPECT_EQ(gather_all(q), stream);
  q.complete(132);
  EXPECT_EQ(q.bytes(), 868u);
  push(q, frame(32, 100, 10), stream);
  EXPECT_EQ(q.frames(), 8u);
}

TEST_F(OutboundQueueTest, gather_gives_head_then_body_per_frame_in_push_order) {
  OutboundQueue q({100, 1 << 20, 0, 0});
  Bytes stream;
  OutFrame update = frame(32, 64, 1);
  OutFrame head_only = frame(8, 0, 2);       // e.g. a small frame built in place
  OutFrame body_only = frame(0, 50, 3);      // e.g. an encoded control frame, shared
  OutFrame offset_body = frame(32, 20, 4, 16);  // a value inside a retained publish frame
  for (const auto& f : {update, head_only, body_only, offset_body}) push(q, f, stream);
  std::array<::iovec, 16> iov{};
  ASSERT_EQ(q.gather(iov, pool_), 6u);
  EXPECT_EQ(iov[0].iov_len, 32u);
  EXPECT_EQ(iov[1].iov_base, update.body->data());
  EXPECT_EQ(iov[1].iov_len, 64u);
  EXPECT_EQ(iov[2].iov_len, 8u);
  EXPECT_EQ(iov[3].iov_base, body_only.body->data()) << "bodies are referenced, not copied";
  EXPECT_EQ(iov[3].iov_len, 50u);
  EXPECT_EQ(iov[4].iov_len, 32u);
  EXPECT_EQ(iov[5].iov_base, offset_body.body->data() + 16);
  EXPECT_EQ(iov[5].iov_len, 20u);
  EXPECT_EQ(flatten(std::span(iov).first(6)), stream);
}

// Small frames (heads, and bodies up to copy_body_max) are copied one after the other into
// the staging block: a run of them is one iovec, whatever the iovec array's size.
TEST_F(OutboundQueueTest, small_frames_are_staged_into_one_iovec_and_large_bodies_referenced) {
  OutboundQueue q({100, 1 << 20, 0, 64});
  Bytes stream;
  for (std::uint32_t i = 0; i < 7; ++i) push(q, frame(32, i * 10, i), stream);  // bodies <= 60
  OutFrame large = frame(32, 65, 7);
  push(q, large, stream);
  push(q, frame(8, 0, 8), stream);
  std::array<::iovec, 4> iov{};
  const std::size_t n = q.gather(iov, pool_);
  ASSERT_EQ(n, 3u) << "staged run, large body, staged run";
  EXPECT_EQ(iov[1].iov_base, large.body->data()) << "a large body is referenced, not copied";
  EXPECT_EQ(flatten(std::span(iov).first(n)), stream);
  q.complete(stream.size());
  EXPECT_TRUE(q.empty());
}

// The staging block is 64 KiB: a backlog larger than that goes out over several sends.
TEST_F(OutboundQueueTest, a_backlog_larger_than_the_staging_block_is_sent_in_several_gathers) {
  OutboundQueue q({100'000, 1 << 30, 0, 512});
  Bytes stream;
  for (std::uint32_t i = 0; i < 2000; ++i) push(q, frame(32, 100, i), stream);  // 264,000 bytes
  Bytes sent;
  int sends = 0;
  while (!q.empty()) {
    const Bytes offered = gather_all(q);
    ASSERT_LE(offered.size(), 65536u + 0u) << "bounded by the staging block";
    sent.insert(sent.end(), offered.begin(), offered.end());
    q.complete(offered.size());
    ++sends;
  }
  EXPECT_EQ(sent, stream);
  EXPECT_GE(sends, 5);
}

// A frame's session sequence number is its position + 1; the sent frames stay in the ring up
// to recovery_bytes, and rewind() resends exactly the frames after the one a client last got.
TEST_F(OutboundQueueTest, rewind_resends_the_same_bytes_after_the_last_received_sequence) {
  OutboundQueue q({100, 1 << 20, 10 * 132, 512});
  Bytes stream;
  EXPECT_EQ(q.next_sequence(), 1u);
  for (std::uint32_t i = 0; i < 6; ++i) push(q, frame(32, 100, i), stream);
  EXPECT_EQ(q.last_sequence(), 6u);
  ASSERT_EQ(gather_all(q), stream);
  q.complete(stream.size() - 10);  // frame 6 partly sent when the connection drops
  q.abort_send();
  EXPECT_EQ(q.retained_bytes(), 5u * 132u);
  push(q, frame(32, 100, 6), stream);  // queued while the session is detached
  ASSERT_TRUE(q.rewind(3)) << "the client got frames 1..3";
  EXPECT_EQ(q.frames(), 4u);
  EXPECT_EQ(q.bytes(), 4u * 132u);
  EXPECT_EQ(q.retained_bytes(), 0u) << "frames the client confirmed leave the window";
  EXPECT_EQ(gather_all(q), tail_of(stream, 3 * 132));
  q.complete(4 * 132);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.rewind(8)) << "beyond the last frame pushed";
  EXPECT_TRUE(q.rewind(7)) << "nothing to resend";
  EXPECT_TRUE(q.empty());
  // A cancelled send may have delivered frames the queue still counts as unsent.
  push(q, frame(32, 100, 7), stream);
  push(q, frame(32, 100, 8), stream);
  ASSERT_TRUE(q.rewind(8)) << "the client got frame 8 although no send reported it";
  EXPECT_EQ(q.frames(), 1u);
  EXPECT_EQ(gather_all(q), tail_of(stream, 8 * 132));
  q.complete(132);
  EXPECT_TRUE(q.empty());
}

// Bodies above copy_body_max are referenced by the sends, so the window holds them.
TEST_F(OutboundQueueTest, rewind_past_the_recovery_window_reports_a_gap) {
  // The window counts each retained frame's entry too: room for three 132-byte frames.
  OutboundQueue q({100, 1 << 20, 3 * (132 + OutboundQueue::entry_bytes), 0});
  Bytes stream;
  std::vector<SharedBuffer*> bodies;
  for (std::uint32_t i = 0; i < 8; ++i) {
    OutFrame f = frame(32, 100, i);
    f.body->add_ref();
    bodies.push_back(f.body);
    push(q, f, stream);
  }
  ASSERT_EQ(gather_all(q), stream);
  q.complete(stream.size());
  EXPECT_EQ(q.retained_bytes(), 3u * 132u) << "bounded by recovery_bytes";
  EXPECT_EQ(q.oldest_retained_sequence(), 6u);
  for (std::size_t i = 0; i < bodies.size(); ++i)
    EXPECT_EQ(bodies[i]->ref_count_hint(), i < 5 ? 1u : 2u) << "frame " << i + 1;
  EXPECT_FALSE(q.rewind(4)) << "frame 5 fell out of the window";
  EXPECT_TRUE(q.empty()) << "a refused rewind changes nothing";
  ASSERT_TRUE(q.rewind(5));
  EXPECT_EQ(gather_all(q), tail_of(stream, 5 * 132));
  q.complete(3 * 132);
  q.clear();
  EXPECT_EQ(q.next_sequence(), 9u) << "sequence numbers continue after clear()";
  for (auto* b : bodies) {
    EXPECT_EQ(b->ref_count_hint(), 1u);
    b->release();
  }
}

// A small frame that went out is retained from its send's staging block: its own body goes
// back to the pool at once, and a rewind resends the same bytes from the staging copy. (The
// queue holds the bodies' only references: the test watches the pool, not the counts.)
TEST_F(OutboundQueueTest, sent_small_frames_are_retained_from_the_staging_block_not_their_bodies) {
  OutboundQueue q({100, 1 << 20, 1 << 20, 512});
  Bytes stream;
  std::vector<const SharedBuffer*> bodies;
  for (std::uint32_t i = 0; i < 6; ++i) {
    OutFrame f = frame(32, 100, i);
    bodies.push_back(f.body);
    push(q, f, stream);
  }
  OutFrame large = frame(32, 600, 6);  // above copy_body_max: referenced by the send
  large.body->add_ref();
  push(q, large, stream);
  ASSERT_EQ(gather_all(q), stream);
  q.complete(132 * 4 + 50);  // frames 1..4 and part of frame 5
  // The pool hands out most recently returned blocks first: frames 1..4's bodies, last first.
  std::vector<SharedBuffer*> reused;
  for (int i = 0; i < 4; ++i) reused.push_back(pool_.allocate(100));
  EXPECT_EQ(std::set<const SharedBuffer*>(reused.begin(), reused.end()),
            std::set<const SharedBuffer*>(bodies.begin(), bodies.begin() + 4))
      << "the bodies of the frames sent whole went back to the pool";
  for (SharedBuffer* b : reused) b->release();
  ASSERT_EQ(gather_all(q), tail_of(stream, 132 * 4 + 50)) << "the partly sent frame resumes";
  q.complete(stream.size() - (132 * 4 + 50));
  EXPECT_TRUE(q.empty());
  SharedBuffer* next = pool_.allocate(100);
  EXPECT_EQ(next, bodies[5]) << "frame 6's body went back too; frame 5, split over two sends, keeps its own";
  next->release();
  EXPECT_EQ(large.body->ref_count_hint(), 2u) << "a referenced body stays in the window";
  ASSERT_TRUE(q.rewind(0)) << "everything is still in the window";
  EXPECT_EQ(gather_all(q), stream) << "the staging copies give back the same bytes";
  q.complete(stream.size());
  q.clear();
  large.body->release();
}

// A small body that others still hold (every subscriber's window in a fan-out, the topic's
// retained value) stays referenced: a copy per subscriber would cost a block each. The send's
// staging block then goes straight back to the pool.
TEST_F(OutboundQueueTest, a_shared_small_body_is_retained_itself_and_the_staging_block_is_returned) {
  OutboundQueue q({100, 1 << 20, 1 << 20, 512});
  Bytes stream;
  OutFrame f = frame(32, 100, 1);
  f.body->add_ref();  // another subscriber's reference
  SharedBuffer* body = f.body;
  push(q, f, stream);
  std::array<::iovec, 4> iov{};
  ASSERT_EQ(q.gather(iov, pool_), 1u);
  auto* staging = reinterpret_cast<SharedBuffer*>(static_cast<std::byte*>(iov[0].iov_base)) - 1;
  const std::uint32_t staging_capacity = staging->capacity();
  q.complete(132);
  EXPECT_EQ(body->ref_count_hint(), 2u) << "the window keeps the shared body";
  SharedBuffer* next = pool_.allocate(staging_capacity);
  EXPECT_EQ(next, staging) << "the staging block went back to the pool after the send";
  next->release();
  ASSERT_TRUE(q.rewind(0));
  EXPECT_EQ(gather_all(q), stream) << "a rewind resends the same bytes from the body";
  q.complete(132);
  q.clear();
  EXPECT_EQ(body->ref_count_hint(), 1u);
  body->release();
}

// A quiet session's sends are small: each staging block is sized to what it holds, since it
// stays in the recovery window after the send.
TEST_F(OutboundQueueTest, a_staging_block_is_sized_to_the_frames_it_stages) {
  OutboundQueue q({100, 1 << 20, 1 << 20, 512});
  Bytes stream;
  push(q, frame(32, 20, 1), stream);
  std::array<::iovec, 4> iov{};
  ASSERT_EQ(q.gather(iov, pool_), 1u);
  const auto* staged = static_cast<const std::byte*>(iov[0].iov_base);
  const auto* block = reinterpret_cast<const SharedBuffer*>(staged) - 1;
  EXPECT_EQ(block->capacity(), BufferPool::class_bytes[0]);
  q.complete(52);
  EXPECT_TRUE(q.empty());
}

TEST_F(OutboundQueueTest, gather_stops_when_the_iovec_array_is_full) {
  OutboundQueue q({100, 1 << 20, 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 5; ++i) push(q, frame(32, 10, i), stream);
  std::array<::iovec, 5> iov{};  // room for two whole frames (a frame may need two iovecs)
  ASSERT_EQ(q.gather(iov, pool_), 4u);
  EXPECT_EQ(flatten(std::span(iov).first(4)), Bytes(stream.begin(), stream.begin() + 84));
  q.complete(84);
  EXPECT_EQ(q.frames(), 3u);
  EXPECT_EQ(gather_all(q), tail_of(stream, 84));
}

TEST_F(OutboundQueueTest, complete_in_the_middle_of_a_head_resumes_at_the_next_head_byte) {
  OutboundQueue q({100, 1 << 20, 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 3; ++i) push(q, frame(32, 100, i), stream);
  ASSERT_EQ(gather_all(q), stream);
  q.complete(132 + 5);  // frame 0 and 5 bytes of frame 1's head
  EXPECT_EQ(q.frames(), 2u);
  EXPECT_EQ(q.bytes(), stream.size() - 137);
  std::array<::iovec, 8> iov{};
  ASSERT_EQ(q.gather(iov, pool_), 4u);
  EXPECT_EQ(iov[0].iov_len, 27u) << "the rest of frame 1's head";
  EXPECT_EQ(flatten(std::span(iov).first(4)), tail_of(stream, 137));
  q.complete(27 + 99);  // up to the last byte of frame 1's body
  EXPECT_EQ(q.frames(), 2u);
  ASSERT_EQ(q.gather(iov, pool_), 3u);
  EXPECT_EQ(iov[0].iov_len, 1u);
  EXPECT_EQ(flatten(std::span(iov).first(3)), tail_of(stream, 263));
}

TEST_F(OutboundQueueTest, complete_in_the_middle_of_a_body_resumes_at_the_next_body_byte) {
  OutboundQueue q({100, 1 << 20, 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 3; ++i) push(q, frame(32, 100, i), stream);
  ASSERT_EQ(gather_all(q), stream);
  q.complete(32 + 40);  // frame 0's head and 40 bytes of its body
  EXPECT_EQ(q.frames(), 3u);
  std::array<::iovec, 8> iov{};
  ASSERT_EQ(q.gather(iov, pool_), 5u) << "no head iovec for the partly sent frame";
  EXPECT_EQ(iov[0].iov_len, 60u);
  Bytes expected = tail_of(stream, 72);
  EXPECT_EQ(flatten(std::span(iov).first(5)), expected);
  q.complete(60);  // exactly the end of frame 0
  EXPECT_EQ(q.frames(), 2u);
  EXPECT_EQ(gather_all(q), tail_of(stream, 132));
  q.complete(32);  // exactly the end of frame 1's head
  EXPECT_EQ(gather_all(q), tail_of(stream, 164));
}

TEST_F(OutboundQueueTest, every_split_point_of_the_stream_resumes_at_the_right_byte) {
  // One queue per split point k: gather, kernel takes k bytes, gather again == stream[k:].
  std::vector<OutFrame> shapes = {frame(32, 7, 1), frame(8, 0, 2), frame(0, 13, 3),
                                  frame(32, 1, 4, 3), frame(16, 40, 5)};
  Bytes stream;
  for (const auto& f : shapes) {
    const Bytes w = wire(f);
    stream.insert(stream.end(), w.begin(), w.end());
  }
  for (std::size_t k = 0; k <= stream.size(); ++k) {
    OutboundQueue q({100, 1 << 20, 0, 0});
    for (auto& f : shapes) {
      if (f.body) f.body->add_ref();  // each queue takes its own reference
      ASSERT_TRUE(q.push(f));
    }
    ASSERT_EQ(gather_all(q), stream);
    q.complete(k);
    ASSERT_EQ(q.bytes(), stream.size() - k) << "k=" << k;
    ASSERT_EQ(gather_all(q), tail_of(stream, k)) << "k=" << k;
    // And a second partial send from there on.
    const std::size_t k2 = (stream.size() - k) / 2;
    q.complete(k2);
    ASSERT_EQ(gather_all(q), tail_of(stream, k + k2)) << "k=" << k << " k2=" << k2;
  }
  for (auto& f : shapes)
    if (f.body) {
      EXPECT_EQ(f.body->ref_count_hint(), 1u) << "every queue released its references";
      f.body->release();
    }
}

TEST_F(OutboundQueueTest, a_stream_sent_in_uneven_pieces_arrives_whole_and_in_order) {
  OutboundQueue q({10'000, 1 << 24, 0, 0});
  Bytes stream, sent;
  std::uint32_t next = 0;
  std::uint64_t rng = 12345;
  auto random = [&](std::uint64_t n) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (rng >> 33) % n;
  };
  for (int turn = 0; turn < 2000; ++turn) {
    // Frames keep arriving between sends, some with empty heads or bodies.
    for (std::uint64_t i = random(4); i > 0; --i, ++next) {
      // Heads of 0..32 bytes, bodies of 0..300 bytes, never both empty.
      const auto body = static_cast<std::uint32_t>(random(3) ? random(300) + 1 : 0);
      const auto head = static_cast<std::uint8_t>(body ? random(33) : 1 + random(32));
      push(q, frame(head, body, next), stream);
    }
    if (q.empty()) continue;
    std::vector<::iovec> iov(2 + 2 * random(8));
    const std::size_t n = q.gather(iov, pool_);
    const Bytes offered = flatten(std::span(iov).first(n));
    // A prefix of the unsent bytes, at least one frame, and all of them if iovecs were left.
    const Bytes unsent = tail_of(stream, sent.size());
    ASSERT_FALSE(offered.empty()) << "turn " << turn;
    ASSERT_LE(offered.size(), unsent.size());
    ASSERT_EQ(offered, Bytes(unsent.begin(), unsent.begin() + static_cast<std::ptrdiff_t>(offered.size())))
        << "turn " << turn;
    if (n + 2 <= iov.size()) {
      ASSERT_EQ(offered, unsent) << "turn " << turn;
    }
    // The kernel takes some prefix of what was offered (possibly nothing).
    const std::size_t took = random(offered.size() + 1);
    sent.insert(sent.end(), offered.begin(), offered.begin() + static_cast<std::ptrdiff_t>(took));
    q.complete(took);
    ASSERT_EQ(q.bytes(), stream.size() - sent.size());
  }
  EXPECT_EQ(sent, Bytes(stream.begin(), stream.begin() + static_cast<std::ptrdiff_t>(sent.size())));
}

TEST_F(OutboundQueueTest, drop_unsent_keeps_the_frames_of_the_send_in_flight) {
  OutboundQueue q({100, 1 << 20, 0, 0});
  Bytes stream;
  std::vector<SharedBuffer*> bodies;
  for (std::uint32_t i = 0; i < 6; ++i) {
    OutFrame f = frame(32, 100, i);
    f.body->add_ref();  // the test watches the body after the queue lets go
    bodies.push_back(f.body);
    push(q, f, stream);
  }
  std::array<::iovec, 4> iov{};  // two frames in flight
  ASSERT_EQ(q.gather(iov, pool_), 4u);
  const Bytes in_flight = flatten(iov);
  q.drop_unsent();
  EXPECT_EQ(q.frames(), 2u);
  EXPECT_EQ(q.bytes(), 264u);
  for (std::size_t i = 0; i < 6; ++i)
    EXPECT_EQ(bodies[i]->ref_count_hint(), i < 2 ? 2u : 1u) << "frame " << i;
  EXPECT_EQ(flatten(iov), in_flight) << "the kernel's bytes are untouched";
  // The send completes in full: nothing is left.
  q.complete(264);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
  for (auto* b : bodies) {
    EXPECT_EQ(b->ref_count_hint(), 1u);
    b->release();
  }
}

TEST_F(OutboundQueueTest, drop_unsent_keeps_a_partly_sent_frame_so_the_stream_stays_whole) {
  OutboundQueue q({100, 1 << 20, 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 4; ++i) push(q, frame(32, 100, i), stream);
  ASSERT_EQ(gather_all(q), stream);
  q.complete(132 + 50);  // frame 1 partly sent, no send in flight any more
  q.drop_unsent();
  EXPECT_EQ(q.frames(), 1u);
  EXPECT_EQ(q.bytes(), 82u);
  EXPECT_EQ(gather_all(q), Bytes(stream.begin() + 182, stream.begin() + 264));
  q.complete(82);
  EXPECT_TRUE(q.empty());
  // With nothing sent and nothing in flight, drop_unsent empties the queue.
  push(q, frame(32, 10, 7), stream);
  push(q, frame(32, 10, 8), stream);
  q.drop_unsent();
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(q.bytes(), 0u);
}

TEST_F(OutboundQueueTest, drop_unsent_during_a_partial_send_keeps_in_flight_and_partial_frames) {
  OutboundQueue q({100, 1 << 20, 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 5; ++i) push(q, frame(32, 100, i), stream);
  ASSERT_EQ(gather_all(q), stream);
  q.complete(10);  // frame 0 partly sent
  std::array<::iovec, 4> iov{};  // the next send: the rest of frame 0 and all of frame 1
  ASSERT_EQ(q.gather(iov, pool_), 4u) << "rest of head 0, body 0, head 1, body 1";
  const Bytes in_flight = flatten(iov);
  EXPECT_EQ(in_flight, Bytes(stream.begin() + 10, stream.begin() + 264));
  q.drop_unsent();
  EXPECT_EQ(q.frames(), 2u);
  EXPECT_EQ(q.bytes(), 254u);
  EXPECT_EQ(flatten(iov), in_flight);
  q.complete(254);
  EXPECT_TRUE(q.empty());
}

TEST_F(OutboundQueueTest, growth_while_a_send_is_in_flight_leaves_the_gathered_bytes_alone) {
  OutboundQueue q({100'000, 1 << 30, 0, 0});
  Bytes stream;
  for (std::uint32_t i = 0; i < 12; ++i) push(q, frame(static_cast<std::uint8_t>(8 + i), 30 + i, i), stream);
  ASSERT_EQ(gather_all(q), stream);
  q.complete(38 + 3);  // frame 0 (8 + 30 bytes), then 3 bytes into frame 1's head
  const std::ptrdiff_t start = 41;
  std::array<::iovec, 16> iov{};  // the in-flight send: frames 1..8, starting mid-head
  const std::size_t n = q.gather(iov, pool_);
  ASSERT_EQ(n, 16u);
  const std::array<::iovec, 16> saved = iov;
  const Bytes before = flatten(iov);
  const auto sent_end = start + static_cast<std::ptrdiff_t>(before.size());
  ASSERT_EQ(before, Bytes(stream.begin() + start, stream.begin() + sent_end));
  // Thousands more frames arrive while the kernel holds the iovecs: the ring doubles many
  // times and the old storage is freed (ASan would flag a read of it below).
  for (std::uint32_t i = 12; i < 5000; ++i) push(q, frame(32, 1 + i % 50, i), stream);
  EXPECT_EQ(q.frames(), 4999u);
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(iov[i].iov_base, saved[i].iov_base);
    EXPECT_EQ(iov[i].iov_len, saved[i].iov_len);
  }
  EXPECT_EQ(flatten(iov), before) << "heads or bodies moved under the kernel";
  // The kernel takes all but 7 bytes of the send (the last frame's body is 38 bytes long);
  // the next gather continues exactly after what it took.
  q.complete(before.size() - 7);
  std::vector<::iovec> more(64);
  const std::size_t m = q.gather(more, pool_);
  const Bytes next = flatten(std::span(more).first(m));
  ASSERT_GE(next.size(), 7u);
  EXPECT_EQ(next, Bytes(stream.begin() + sent_end - 7,
                        stream.begin() + sent_end - 7 + static_cast<std::ptrdiff_t>(next.size())));
  // Send the whole rest and check nothing is lost or repeated.
  q.complete(0);  // that send took nothing
  std::size_t sent = static_cast<std::size_t>(sent_end) - 7;
  while (!q.empty()) {
    const Bytes offered = gather_all(q);
    ASSERT_EQ(offered, Bytes(stream.begin() + static_cast<std::ptrdiff_t>(sent),
                             stream.begin() + static_cast<std::ptrdiff_t>(sent + offered.size())));
    q.complete(offered.size());
    sent += offered.size();
  }
  EXPECT_EQ(sent, stream.size());
}

TEST_F(OutboundQueueTest, clear_releases_every_body) {
  std::vector<SharedBuffer*> bodies;
  {
    OutboundQueue q({100, 1 << 20, 0, 0});
    Bytes stream;
    for (std::uint32_t i = 0; i < 20; ++i) {
      OutFrame f = frame(32, 10, i);
      f.body->add_ref();
      bodies.push_back(f.body);
      push(q, f, stream);
    }
    gather_all(q);
    q.complete(50);
  }  // the destructor clears
  for (auto* b : bodies) {
    EXPECT_EQ(b->ref_count_hint(), 1u);
    b->release();
  }
}

}  // namespace
}  // namespace brook::runtime
