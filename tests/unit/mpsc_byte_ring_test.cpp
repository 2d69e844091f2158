// Unit tests of MpscByteRing, the client library's outbox: records of many sizes (including
// ones that force padding at the wrap), claim order and per-producer order, refusal when full
// or above max_payload, and a stress run of three producer threads and one consumer (bounded
// count; every record exactly once, each producer's records in order, payload checksums) that
// ThreadSanitizer must pass clean.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <span>
#include <thread>
#include <vector>

#include "brook/transport/mpsc_byte_ring.hpp"

namespace brook::transport {
namespace {

std::uint64_t align8(std::uint64_t n) { return (n + 7) & ~std::uint64_t{7}; }
std::uint64_t record_bytes(std::size_t payload) {
  return align8(MpscByteRing::header_bytes + payload);
}

// The byte at `i` of record `seq`: differs between neighbouring records and positions.
std::byte pattern(std::uint64_t seq, std::size_t i) {
  return static_cast<std::byte>((seq * 131 + i * 7 + (i >> 8)) & 0xff);
}

// Claims, fills and commits one record of `bytes` carrying pattern(seq, .).
bool put(MpscByteRing& ring, std::uint64_t seq, std::size_t bytes, std::uint32_t kind) {
  auto claim = ring.try_claim(bytes);
  if (!claim) return false;
  EXPECT_EQ(claim.length, bytes);
  for (std::size_t i = 0; i < bytes; ++i) claim.payload[i] = pattern(seq, i);
  MpscByteRing::commit(claim, kind);
  return true;
}

bool matches(std::uint64_t seq, std::span<const std::byte> payload) {
  for (std::size_t i = 0; i < payload.size(); ++i)
    if (payload[i] != pattern(seq, i)) return false;
  return true;
}

TEST(MpscByteRing, capacity_rounds_up_to_a_power_of_two_of_at_least_4_KiB) {
  EXPECT_EQ(MpscByteRing(1).capacity(), 4096u);
  EXPECT_EQ(MpscByteRing(4096).capacity(), 4096u);
  EXPECT_EQ(MpscByteRing(5000).capacity(), 8192u);
  EXPECT_EQ(MpscByteRing(1u << 20).capacity(), 1u << 20);
  EXPECT_EQ(MpscByteRing(4096).max_payload(), 2048u - MpscByteRing::header_bytes);
}

TEST(MpscByteRing, claims_above_max_payload_or_of_zero_bytes_are_refused) {
  MpscByteRing ring(4096);
  EXPECT_FALSE(ring.try_claim(0));
  EXPECT_FALSE(ring.try_claim(ring.max_payload() + 1));
  EXPECT_FALSE(ring.try_claim(std::size_t{1} << 40));
  EXPECT_EQ(ring.used_bytes(), 0u) << "a refused claim must not take space";
  ASSERT_TRUE(put(ring, 1, ring.max_payload(), 5));
  std::size_t seen = 0;
  ring.drain([&](std::uint32_t kind, std::span<const std::byte> payload) {
    EXPECT_EQ(kind, 5u);
    EXPECT_EQ(payload.size(), ring.max_payload());
    EXPECT_TRUE(matches(1, payload));
    ++seen;
  });
  EXPECT_EQ(seen, 1u);
}

TEST(MpscByteRing, records_of_every_size_from_1_to_600_bytes_round_trip_across_many_laps) {
  MpscByteRing ring(4096);
  std::uint64_t sent = 0, received = 0, tail = 0, drained_to = 0, paddings = 0;
  std::uint64_t next_size = 0;
  auto size_of = [](std::uint64_t seq) { return 1 + static_cast<std::size_t>(seq * 37 % 600); };
  auto check = [&](std::uint32_t kind, std::span<const std::byte> payload) {
    EXPECT_EQ(kind, static_cast<std::uint32_t>(received % 1000 + 1));
    EXPECT_EQ(payload.size(), size_of(received));
    EXPECT_TRUE(matches(received, payload)) << "record " << received;
    ++received;
  };
  for (int round = 0; round < 500; ++round) {
    // Fill until refused, predicting where padding must be inserted.
    for (;;) {
      const std::size_t bytes = size_of(next_size);
      const std::uint64_t offset = tail % ring.capacity();
      const std::uint64_t pad = ring.capacity() - offset < record_bytes(bytes)
                                    ? ring.capacity() - offset
                                    : 0;
      if (!put(ring, sent, bytes, static_cast<std::uint32_t>(sent % 1000 + 1))) break;
      paddings += pad ? 1 : 0;
      tail += pad + record_bytes(bytes);
      ++sent;
      ++next_size;
    }
    EXPECT_EQ(ring.used_bytes(), tail - drained_to) << "round " << round;
    // Drain in two bounded batches, then the rest.
    ring.drain(check, 1);
    ring.drain(check, 3);
    ring.drain(check);
    ASSERT_EQ(received, sent);
    ASSERT_TRUE(ring.empty_hint());
    ASSERT_EQ(ring.used_bytes(), 0u);
    drained_to = tail;
  }
  EXPECT_GT(tail, 100 * ring.capacity()) << "the test must wrap the ring many times";
  EXPECT_GT(paddings, 100u) << "the test must force padding at the wrap";
}

TEST(MpscByteRing, a_record_that_does_not_fit_before_the_wrap_goes_to_the_start_after_padding) {
  MpscByteRing ring(4096);
  auto noop = [](std::uint32_t, std::span<const std::byte>) {};
  auto first = ring.try_claim(2040);  // 2048 bytes at offset 0
  ASSERT_TRUE(first);
  std::byte* const start = first.header;
  EXPECT_EQ(first.payload, start + MpscByteRing::header_bytes);
  MpscByteRing::commit(first, 1);
  auto second = ring.try_claim(1528);  // 1536 bytes at offset 2048
  ASSERT_TRUE(second);
  EXPECT_EQ(second.header, start + 2048);
  MpscByteRing::commit(second, 1);
  EXPECT_EQ(ring.drain(noop), 2u);
  // 512 bytes remain before the wrap: a 1008-byte record must not straddle it.
  ASSERT_TRUE(put(ring, 77, 1000, 9));
  EXPECT_EQ(ring.used_bytes(), 512u + 1008u) << "padding counts as used until drained";
  std::size_t seen = 0;
  EXPECT_EQ(ring.drain([&](std::uint32_t kind, std::span<const std::byte> payload) {
    EXPECT_EQ(kind, 9u) << "padding must not reach the consumer";
    EXPECT_EQ(payload.data(), start + MpscByteRing::header_bytes);
    EXPECT_EQ(payload.size(), 1000u);
    EXPECT_TRUE(matches(77, payload));
    ++seen;
  }), 1u);
  EXPECT_EQ(seen, 1u);
  EXPECT_TRUE(ring.empty_hint());
  // A record that ends exactly at the wrap needs no padding.
  ASSERT_TRUE(put(ring, 1, 2040, 1));                   // [1008, 3056)
  ASSERT_TRUE(put(ring, 2, 4096 - 3056 - 8, 1));        // [3056, 4096) exactly
  EXPECT_EQ(ring.used_bytes(), 2048u + 1040u);
  EXPECT_EQ(ring.drain(noop), 2u);
  auto wrapped = ring.try_claim(8);
  ASSERT_TRUE(wrapped);
  EXPECT_EQ(wrapped.header, start) << "the next record starts the next lap at offset 0";
  MpscByteRing::commit(wrapped, 1);
  EXPECT_EQ(ring.drain(noop), 1u);
}

TEST(MpscByteRing, full_ring_returns_an_empty_claim_until_the_consumer_drains) {
  MpscByteRing ring(4096);
  std::uint64_t claimed = 0;
  while (put(ring, claimed, 120, 1)) ++claimed;  // 128 bytes each: 32 fill the ring exactly
  EXPECT_EQ(claimed, 32u);
  EXPECT_FALSE(ring.try_claim(1)) << "even the smallest record must wait";
  EXPECT_EQ(ring.used_bytes(), 4096u);
  // Freeing one record is enough for one more of the same size, not for two.
  std::uint64_t received = 0;
  auto check = [&](std::uint32_t, std::span<const std::byte> payload) {
    EXPECT_TRUE(matches(received, payload)) << received;
    ++received;
  };
  EXPECT_EQ(ring.drain(check, 1), 1u);
  EXPECT_TRUE(put(ring, claimed++, 120, 1));
  EXPECT_FALSE(ring.try_claim(1));
  EXPECT_EQ(ring.drain(check), claimed - 1);
  EXPECT_EQ(received, claimed);
}

TEST(MpscByteRing, drained_space_is_zeroed_so_stale_headers_never_read_as_committed) {
  MpscByteRing ring(4096);
  auto claim = ring.try_claim(64);
  ASSERT_TRUE(claim);
  std::memset(claim.payload, 0xab, 64);
  MpscByteRing::commit(claim, 3);
  EXPECT_EQ(ring.drain([](std::uint32_t, std::span<const std::byte>) {}), 1u);
  for (std::size_t i = 0; i < record_bytes(64); ++i)
    ASSERT_EQ(claim.header[i], std::byte{0}) << "byte " << i;
}

TEST(MpscByteRing, consumer_reads_in_claim_order_and_stops_at_an_uncommitted_record) {
  MpscByteRing ring(4096);
  std::vector<std::uint32_t> kinds;
  auto collect = [&](std::uint32_t kind, std::span<const std::byte>) { kinds.push_back(kind); };
  auto a = ring.try_claim(10);
  auto b = ring.try_claim(20);
  auto c = ring.try_claim(30);
  ASSERT_TRUE(a && b && c);
  MpscByteRing::commit(c, 3);
  MpscByteRing::commit(b, 2);
  EXPECT_EQ(ring.drain(collect), 0u) << "a is claimed first and not committed";
  MpscByteRing::commit(a, 1);
  EXPECT_EQ(ring.drain(collect, 2), 2u);
  EXPECT_EQ(ring.drain(collect), 1u);
  EXPECT_EQ(kinds, (std::vector<std::uint32_t>{1, 2, 3}));
}

// Payload of a stress record: producer, sequence number, filler, then a checksum of all that.
constexpr std::size_t stress_fixed_bytes = 12;

std::uint32_t fnv1a(std::span<const std::byte> bytes) {
  std::uint32_t h = 2166136261u;
  for (std::byte b : bytes) h = (h ^ static_cast<std::uint32_t>(b)) * 16777619u;
  return h;
}

std::size_t stress_size(std::uint32_t producer, std::uint32_t seq) {
  // Mostly small, some medium, now and then one large enough to force padding often.
  const std::uint32_t r = (seq * 2654435761u) ^ (producer * 40503u);
  if (r % 61 == 0) return stress_fixed_bytes + 1500 + r % 500;
  return stress_fixed_bytes + r % 180;
}

TEST(MpscByteRing, three_producers_and_one_consumer_deliver_every_record_once_in_order) {
  constexpr std::uint32_t producers = 3;
  constexpr std::uint32_t per_producer = 150'000;
  MpscByteRing ring(16 * 1024);
  std::atomic<std::uint32_t> done{0};
  std::array<std::uint64_t, producers> refused{};
  std::vector<std::thread> threads;
  for (std::uint32_t p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      for (std::uint32_t seq = 0; seq < per_producer;) {
        const std::size_t bytes = stress_size(p, seq);
        auto claim = ring.try_claim(bytes);
        if (!claim) {
          ++refused[p];
          std::this_thread::yield();  // back-pressure: let the consumer run
          continue;
        }
        std::memcpy(claim.payload, &p, 4);
        std::memcpy(claim.payload + 4, &seq, 4);
        for (std::size_t i = 8; i < bytes - 4; ++i)
          claim.payload[i] = static_cast<std::byte>((seq + p * 7 + i) & 0xff);
        const std::uint32_t sum = fnv1a({claim.payload, bytes - 4});
        std::memcpy(claim.payload + bytes - 4, &sum, 4);
        MpscByteRing::commit(claim, p + 1);
        ++seq;
      }
      // release: pairs with the consumer's acquire, so its last drain sees every commit.
      done.fetch_add(1, std::memory_order_release);
    });
  }
  std::array<std::uint32_t, producers> next{};
  std::uint64_t received = 0, bad_kind = 0, bad_size = 0, bad_sum = 0, out_of_order = 0;
  auto take = [&](std::uint32_t kind, std::span<const std::byte> payload) {
    ++received;
    if (kind < 1 || kind > producers) {
      ++bad_kind;
      return;
    }
    if (payload.size() < stress_fixed_bytes) {
      ++bad_size;
      return;
    }
    std::uint32_t p, seq, sum;
    std::memcpy(&p, payload.data(), 4);
    std::memcpy(&seq, payload.data() + 4, 4);
    std::memcpy(&sum, payload.data() + payload.size() - 4, 4);
    if (p != kind - 1) ++bad_kind;
    if (p >= producers) return;
    if (payload.size() != stress_size(p, seq)) ++bad_size;
    if (sum != fnv1a(payload.first(payload.size() - 4))) ++bad_sum;
    if (seq != next[p]) ++out_of_order;
    next[p] = seq + 1;
  };
  std::uint64_t idle = 0;
  for (;;) {
    // acquire: pairs with the producers' release increments of `done`.
    const bool all_done = done.load(std::memory_order_acquire) == producers;
    const std::size_t n = ring.drain(take, 256);
    if (n == 0) {
      if (all_done) break;  // every commit happened before `done`, and nothing is left
      if (++idle % 16 == 0) std::this_thread::yield();
    }
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(received, std::uint64_t{producers} * per_producer);
  EXPECT_EQ(bad_kind, 0u);
  EXPECT_EQ(bad_size, 0u);
  EXPECT_EQ(bad_sum, 0u);
  EXPECT_EQ(out_of_order, 0u);
  for (std::uint32_t p = 0; p < producers; ++p) EXPECT_EQ(next[p], per_producer) << "producer " << p;
  EXPECT_TRUE(ring.empty_hint());
  EXPECT_EQ(ring.used_bytes(), 0u);
  // Only a note: on a fast consumer the ring may never fill.
  std::uint64_t total_refused = 0;
  for (auto r : refused) total_refused += r;
  RecordProperty("claims_refused_while_full", static_cast<int>(std::min<std::uint64_t>(total_refused, INT32_MAX)));
}

}  // namespace
}  // namespace brook::transport
