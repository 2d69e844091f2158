// Unit tests of SentLog, the client's recovery buffer: numbering and confirmation, the limit
// and what it forgets, the bytes handed back for a resend in order across the ring's laps and
// growth, and the small log moved back to the ring's start; frames ending at the ring's end,
// and bytes a send reads in place while the ring grows. Checked against a model that
// keeps every frame whole in a plain list.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <random>
#include <vector>

#include "../../runtime/client/src/sent_log.hpp"

namespace brook {
namespace {

using Bytes = std::vector<std::byte>;

Bytes frame_of(std::uint64_t seq, std::size_t size) {
  Bytes b(size);
  for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::byte>((seq * 131 + i) & 0xff);
  return b;
}

Bytes bytes_after(const SentLog& log, std::uint64_t sequence, std::uint64_t& missing, std::size_t& spans) {
  Bytes out;
  spans = 0;
  missing = log.visit_after(sequence, [&](std::span<const std::byte> b) {
    ++spans;
    out.insert(out.end(), b.begin(), b.end());
  });
  return out;
}

TEST(SentLog, numbers_frames_from_one_and_forgets_what_the_broker_confirmed) {
  SentLog log(1 << 20);
  EXPECT_TRUE(log.empty());
  EXPECT_EQ(log.append(frame_of(1, 10)), 1u);
  EXPECT_EQ(log.append(frame_of(2, 20), 7), 2u);
  EXPECT_EQ(log.append(frame_of(3, 30), 8), 3u);
  EXPECT_EQ(log.first(), 1u);
  EXPECT_EQ(log.last_record(), 8u);
  log.confirm(2);
  EXPECT_EQ(log.first(), 3u);
  EXPECT_EQ(log.confirmed_record(), 7u);
  std::uint64_t missing = 0;
  std::size_t spans = 0;
  EXPECT_EQ(bytes_after(log, 2, missing, spans), frame_of(3, 30));
  EXPECT_EQ(missing, 0u);
  EXPECT_TRUE(bytes_after(log, 3, missing, spans).empty());
  EXPECT_EQ(spans, 0u);
}

TEST(SentLog, past_its_limit_forgets_only_frames_handed_to_the_kernel_and_reports_them) {
  SentLog log(1000);
  for (std::uint64_t s = 1; s <= 30; ++s) log.append(frame_of(s, 100));
  log.trim(5);  // only 5 were written: those may go, the rest stays whatever the limit
  EXPECT_EQ(log.first(), 6u);
  log.trim(30);
  EXPECT_LE(log.held_bytes(), 1000u);
  EXPECT_EQ(log.first(), 21u);
  EXPECT_EQ(log.forgotten_unconfirmed(), 20u);
  std::uint64_t missing = 0;
  std::size_t spans = 0;
  Bytes expected;
  for (std::uint64_t s = 21; s <= 30; ++s) {
    Bytes f = frame_of(s, 100);
    expected.insert(expected.end(), f.begin(), f.end());
  }
  EXPECT_EQ(bytes_after(log, 3, missing, spans), expected);
  EXPECT_EQ(missing, 17u);  // 4 to 20
  log.confirm(25);
  EXPECT_EQ(log.forgotten_unconfirmed(), 0u);
}

TEST(SentLog, a_rebased_log_counts_on_from_the_brokers_last_received) {
  SentLog log(1 << 20);
  log.append(frame_of(1, 8));
  log.rebase(100);
  EXPECT_EQ(log.first(), 101u);
  EXPECT_EQ(log.append(frame_of(2, 8)), 102u);
  log.confirm(101);
  EXPECT_EQ(log.first(), 102u);
}

// Frames of random sizes, confirmed and trimmed at random, the bytes after a random point
// compared with the model's after every step: laps, growth and rewinds all happen.
TEST(SentLog, hands_back_every_unconfirmed_frame_in_order_through_laps_growth_and_rewinds) {
  std::mt19937_64 rng(20261206);
  SentLog log(256 * 1024);
  std::deque<std::pair<std::uint64_t, Bytes>> model;  // frames held, oldest first
  std::uint64_t next = 1;
  std::size_t capacities_seen = 0, last_capacity = 0, two_span_reads = 0;
  for (int step = 0; step < 20000; ++step) {
    const std::size_t size = std::uniform_int_distribution<std::size_t>(0, 9)(rng) == 0
                                 ? std::uniform_int_distribution<std::size_t>(1000, 40000)(rng)
                                 : std::uniform_int_distribution<std::size_t>(0, 300)(rng);
    Bytes f = frame_of(next, size);
    ASSERT_EQ(log.append(f, next), next);
    model.emplace_back(next, std::move(f));
    ++next;
    const auto action = std::uniform_int_distribution<int>(0, 9)(rng);
    if (action < 3 && !model.empty()) {  // the broker confirms a prefix
      const std::uint64_t upto = model.front().first +
                                 std::uniform_int_distribution<std::uint64_t>(0, model.size() - 1)(rng);
      log.confirm(upto);
      while (!model.empty() && model.front().first <= upto) model.pop_front();
    } else if (action == 3) {  // everything was written: the limit applies
      log.trim(next - 1);
      while (!model.empty() && model.front().first < log.first()) model.pop_front();
    }
    if (log.capacity() != last_capacity) ++capacities_seen, last_capacity = log.capacity();
    ASSERT_EQ(log.empty(), model.empty());
    if (model.empty()) continue;
    ASSERT_EQ(log.first(), model.front().first);
    const std::uint64_t after =
        model.front().first - 1 + std::uniform_int_distribution<std::uint64_t>(0, model.size())(rng);
    Bytes expected;
    for (auto& [seq, bytes] : model)
      if (seq > after) expected.insert(expected.end(), bytes.begin(), bytes.end());
    std::uint64_t missing = 0;
    std::size_t spans = 0;
    ASSERT_EQ(bytes_after(log, after, missing, spans), expected) << "step " << step;
    ASSERT_EQ(missing, 0u);
    two_span_reads += spans > 1;
    std::size_t i = 0;
    log.for_each([&](std::span<const std::byte> frame, std::uint64_t record) {
      ASSERT_LT(i, model.size());
      EXPECT_EQ(record, model[i].first);
      EXPECT_TRUE(std::equal(frame.begin(), frame.end(), model[i].second.begin(), model[i].second.end()));
      ++i;
    });
    ASSERT_EQ(i, model.size());
  }
  EXPECT_GT(capacities_seen, 1u);  // it grew
  EXPECT_GT(two_span_reads, 0u);   // and frames were read across a lap's end
}

// A burst grew the ring to megabytes; then a quiet publisher, each frame confirmed soon
// after: the log writes the same bytes near the ring's start instead of walking all of it
// (the memory stays warm), and what it hands back is still right.
TEST(SentLog, a_log_that_holds_little_is_moved_back_to_the_rings_start) {
  SentLog log(16u << 20);
  std::uint64_t s = 0;
  for (int i = 0; i < 400; ++i) log.append(frame_of(++s, 10000));
  const std::size_t grown = log.capacity();
  EXPECT_GE(grown, 4000000u);
  log.confirm(s - 1);  // one frame left, far from the start
  std::size_t furthest = 0;
  for (int i = 0; i < 100000; ++i) {
    log.append(frame_of(++s, 100));
    if (s % 4 == 0) log.confirm(s - 2);  // two or three frames stay unconfirmed
    if (i > 1000) furthest = std::max(furthest, log.end_offset());
  }
  EXPECT_EQ(log.capacity(), grown);
  EXPECT_LE(furthest, 65536u + 1000u);
  std::uint64_t missing = 0;
  std::size_t spans = 0;
  Bytes expected = frame_of(s - 1, 100), last = frame_of(s, 100);
  expected.insert(expected.end(), last.begin(), last.end());
  EXPECT_EQ(bytes_after(log, s - 2, missing, spans), expected);
  EXPECT_EQ(spans, 1u);
}

// Frames whose sizes divide the ring's: one ends exactly at the ring's end and the next
// starts at its beginning, the same position counted on but not the next byte in memory.
// Each span handed back must lie in the ring (the client sends them as they are).
TEST(SentLog, a_frame_ending_at_the_rings_end_starts_a_new_span) {
  SentLog log(16u << 20);
  std::deque<std::pair<std::uint64_t, Bytes>> model;
  std::uint64_t s = 0;
  std::size_t laps_crossed = 0;
  for (int i = 0; i < 20000; ++i) {
    Bytes f = frame_of(++s, 32);
    log.append(f);
    model.emplace_back(s, std::move(f));
    if (s % 64 == 0) {  // the broker confirms all but the last 1,000 or so
      const std::uint64_t upto = s > 1000 ? s - 1000 : 0;
      log.confirm(upto);
      while (!model.empty() && model.front().first <= upto) model.pop_front();
    }
    if (s % 97 != 0) continue;
    const std::uint64_t after = model.front().first - 1 + model.size() / 2;
    Bytes expected;
    for (auto& [seq, bytes] : model)
      if (seq > after) expected.insert(expected.end(), bytes.begin(), bytes.end());
    std::uint64_t missing = 0;
    std::size_t spans = 0;
    ASSERT_EQ(bytes_after(log, after, missing, spans), expected) << "frame " << s;
    laps_crossed += spans > 1;
  }
  EXPECT_EQ(log.capacity(), 65536u);  // 1,000 frames of 32 B never outgrow the first ring
  EXPECT_GT(laps_crossed, 0u);
}

// While a send reads frames in place, the ring may grow: the bytes handed out stay valid and
// unchanged until release_in_place(), whatever is appended meanwhile.
TEST(SentLog, bytes_held_in_place_outlive_the_rings_growth) {
  SentLog log(64u << 20);
  std::uint64_t s = 0;
  for (int i = 0; i < 100; ++i) log.append(frame_of(++s, 300));
  std::vector<std::span<const std::byte>> in_flight;
  log.visit_after(0, [&](std::span<const std::byte> b) { in_flight.push_back(b); });
  Bytes expected;
  for (std::uint64_t i = 1; i <= s; ++i) {
    Bytes f = frame_of(i, 300);
    expected.insert(expected.end(), f.begin(), f.end());
  }
  log.hold_in_place();
  const std::size_t before = log.capacity();
  for (int i = 0; i < 2000; ++i) log.append(frame_of(++s, 1000));
  EXPECT_GT(log.capacity(), before);
  Bytes seen;
  for (auto span : in_flight) seen.insert(seen.end(), span.begin(), span.end());
  EXPECT_EQ(seen, expected);
  log.release_in_place();
  std::uint64_t missing = 0;
  std::size_t spans = 0;
  EXPECT_EQ(bytes_after(log, s - 1, missing, spans), frame_of(s, 1000));
}

}  // namespace
}  // namespace brook
