// Unit tests of the shared-memory byte ring (ShmRingWriter / ShmRingReader): order across the
// wrap, the capacity bound, the checks on a peer's scribbled indices, the sleep/wake handshake,
// and three stress runs (two threads busy-polling, two threads sleeping on eventfds, two
// processes over a real session segment). The thread runs are bounded and must pass
// ThreadSanitizer clean.
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "brook/transport/shm_ring.hpp"
#include "brook/transport/shm_segment.hpp"

namespace brook::transport {
namespace {

using Clock = std::chrono::steady_clock;

// The stream's byte at `position`: a hash of the position, not a counter, so a dropped,
// repeated or shifted byte shows up at once, even a shift by a whole ring.
std::byte stream_byte(std::uint64_t position) {
  std::uint64_t x = ((position >> 3) + 1) * 0x9e3779b97f4a7c15ull;
  x ^= x >> 31;
  return static_cast<std::byte>(x >> ((position & 7) * 8));
}

std::vector<std::byte> stream_bytes(std::uint64_t from, std::size_t n) {
  std::vector<std::byte> out(n);
  for (std::size_t i = 0; i < n; ++i) out[i] = stream_byte(from + i);
  return out;
}

bool is_stream(std::span<const std::byte> bytes, std::uint64_t from) {
  for (std::size_t i = 0; i < bytes.size(); ++i)
    if (bytes[i] != stream_byte(from + i)) return false;
  return true;
}

// FNV-1a: a checksum both processes compute the same way without sharing anything.
std::uint64_t fnv1a(std::uint64_t hash, std::span<const std::byte> bytes) {
  for (std::byte b : bytes) hash = (hash ^ std::to_integer<std::uint64_t>(b)) * 0x100000001b3ull;
  return hash;
}
constexpr std::uint64_t fnv1a_seed = 0xcbf29ce484222325ull;

// A ring's shared part in ordinary memory: the ring cannot tell it from a segment, and a test
// can scribble on the indices as a hostile peer would.
struct LocalRing {
  explicit LocalRing(std::size_t capacity) : data(capacity) {}
  ShmRingWriter writer() { return {&indices, data.data(), data.size()}; }
  ShmRingReader reader() { return {&indices, data.data(), data.size()}; }
  ShmRingIndices indices;
  std::vector<std::byte> data;
};

// Reads exactly `n` bytes through however many readable() pieces it takes.
std::vector<std::byte> read_exactly(ShmRingReader& reader, std::size_t n) {
  std::vector<std::byte> out;
  while (out.size() < n) {
    auto piece = reader.readable();
    if (piece.empty()) break;
    const std::size_t take = std::min(piece.size(), n - out.size());
    out.insert(out.end(), piece.begin(), piece.begin() + take);
    reader.consume(take);
  }
  return out;
}

TEST(ShmRing, a_frame_straddling_the_end_comes_out_in_two_pieces_in_order) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();

  ASSERT_EQ(writer.write(stream_bytes(0, 10)), 10u);
  writer.publish();
  ASSERT_EQ(read_exactly(reader, 10), stream_bytes(0, 10));

  // 12 bytes from offset 10: 6 before the end of the buffer, 6 after the wrap.
  ASSERT_EQ(writer.write(stream_bytes(10, 12)), 12u);
  writer.publish();
  auto first = reader.readable();
  ASSERT_EQ(first.size(), 6u) << "readable() stops at the end of the buffer";
  EXPECT_EQ(first.data(), ring.data.data() + 10);
  EXPECT_TRUE(is_stream(first, 10));
  reader.consume(first.size());
  auto second = reader.readable();
  ASSERT_EQ(second.size(), 6u);
  EXPECT_EQ(second.data(), ring.data.data());
  EXPECT_TRUE(is_stream(second, 16));
  reader.consume(second.size());

  EXPECT_TRUE(reader.empty());
  EXPECT_EQ(reader.position(), 22u);
  EXPECT_FALSE(reader.corrupt());
  EXPECT_FALSE(writer.corrupt());
}

TEST(ShmRing, frames_of_every_size_survive_many_wrap_arounds) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  std::uint64_t position = 0;
  for (int round = 0; round < 50; ++round) {
    for (std::size_t size = 1; size <= 16; ++size) {
      ASSERT_EQ(writer.write(stream_bytes(position, size)), size);
      writer.publish();
      ASSERT_EQ(read_exactly(reader, size), stream_bytes(position, size))
          << "round " << round << " size " << size;
      position += size;
    }
  }
  EXPECT_TRUE(reader.empty());
  EXPECT_EQ(reader.position(), position);
}

TEST(ShmRing, writes_are_invisible_until_published) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 5)), 5u);
  EXPECT_TRUE(reader.empty());
  writer.publish();
  EXPECT_EQ(reader.readable().size(), 5u);
}

TEST(ShmRing, writer_takes_no_more_than_capacity_and_returns_the_partial_count) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  EXPECT_EQ(writer.writable(), 16u);
  EXPECT_EQ(writer.write(stream_bytes(0, 10)), 10u);
  EXPECT_EQ(writer.write(stream_bytes(10, 10)), 6u) << "only 6 bytes were free";
  EXPECT_EQ(writer.write(stream_bytes(16, 1)), 0u);
  EXPECT_EQ(writer.writable(), 0u);
  writer.publish();

  EXPECT_EQ(reader.readable().size(), 16u) << "a full ring is readable in full";
  reader.consume(4);
  EXPECT_EQ(writer.writable(), 4u);
  EXPECT_EQ(writer.write(stream_bytes(16, 10)), 4u);
  writer.publish();
  EXPECT_EQ(read_exactly(reader, 16), stream_bytes(4, 16));
  EXPECT_FALSE(writer.corrupt());
  EXPECT_FALSE(reader.corrupt());
}

TEST(ShmRing, write_whole_writes_all_of_a_record_or_none_of_it) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  EXPECT_TRUE(writer.write_whole(stream_bytes(0, 10)));
  EXPECT_FALSE(writer.write_whole(stream_bytes(10, 7))) << "only 6 bytes are free";
  EXPECT_EQ(writer.position(), 10u) << "a refused record leaves nothing behind";
  writer.publish();
  read_exactly(reader, 4);
  EXPECT_TRUE(writer.write_whole(stream_bytes(10, 10))) << "it fits across the wrap";
  EXPECT_EQ(writer.consumer_position(), 4u);
  writer.publish();
  EXPECT_EQ(read_exactly(reader, 16), stream_bytes(4, 16));
}

TEST(ShmRing, write_whole_refuses_a_record_on_a_corrupt_ring) {
  LocalRing ring(16);
  auto writer = ring.writer();
  ring.indices.head.store(1);  // past the tail
  EXPECT_EQ(writer.writable(), 0u);
  ASSERT_TRUE(writer.corrupt());
  EXPECT_FALSE(writer.write_whole(stream_bytes(0, 4))) << "the cached room is not ours";
  EXPECT_EQ(writer.position(), 0u);
}

TEST(ShmRing, an_empty_write_writes_nothing) {
  LocalRing ring(16);
  auto writer = ring.writer();
  EXPECT_EQ(writer.write({}), 0u);
  EXPECT_EQ(writer.writable(), 16u);
}

TEST(ShmRing, reader_accepts_a_tail_exactly_one_capacity_ahead) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 10)), 10u);
  writer.publish();
  read_exactly(reader, 10);
  ring.indices.tail.store(10 + 16);  // a full ring: the largest honest tail
  EXPECT_EQ(reader.readable().size(), 6u);
  EXPECT_FALSE(reader.corrupt());
}

TEST(ShmRing, reader_marks_a_tail_beyond_head_plus_capacity_corrupt_for_good) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 10)), 10u);
  writer.publish();
  read_exactly(reader, 10);

  ring.indices.tail.store(10 + 16 + 1);
  EXPECT_TRUE(reader.readable().empty());
  EXPECT_TRUE(reader.corrupt());

  ring.indices.tail.store(12);  // an honest-looking tail does not cure it
  EXPECT_TRUE(reader.readable().empty());
  EXPECT_TRUE(reader.empty());
  EXPECT_TRUE(reader.corrupt());
  EXPECT_TRUE(reader.prepare_to_sleep()) << "a corrupt ring is not something to sleep on";
}

TEST(ShmRing, reader_marks_a_tail_that_moved_backwards_corrupt_for_good) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 10)), 10u);
  writer.publish();
  ASSERT_EQ(reader.readable().size(), 10u);  // the reader has now seen tail 10

  ring.indices.tail.store(9);  // still ahead of head: only the backwards check catches it
  EXPECT_TRUE(reader.readable().empty());
  EXPECT_TRUE(reader.corrupt());

  ring.indices.tail.store(10);
  EXPECT_TRUE(reader.readable().empty());
  EXPECT_TRUE(reader.corrupt());
}

TEST(ShmRing, writer_marks_a_head_beyond_the_tail_corrupt_for_good) {
  LocalRing ring(16);
  auto writer = ring.writer();
  ASSERT_EQ(writer.write(stream_bytes(0, 8)), 8u);
  writer.publish();

  ring.indices.head.store(9);
  EXPECT_EQ(writer.writable(), 0u);
  EXPECT_TRUE(writer.corrupt());
  // The writer's own view still shows 8 free bytes, but a corrupt ring takes nothing more.
  EXPECT_EQ(writer.write(stream_bytes(8, 1)), 0u);

  ring.indices.head.store(8);
  EXPECT_EQ(writer.writable(), 0u);
  EXPECT_TRUE(writer.corrupt());
  EXPECT_TRUE(writer.wait_for_space()) << "a corrupt ring is not something to sleep on";
}

TEST(ShmRing, writer_marks_a_head_that_moved_backwards_corrupt_for_good) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 8)), 8u);
  writer.publish();
  read_exactly(reader, 8);
  ASSERT_EQ(writer.writable(), 16u);  // the writer has now seen head 8

  ring.indices.head.store(7);
  EXPECT_EQ(writer.writable(), 0u);
  EXPECT_TRUE(writer.corrupt());
  EXPECT_EQ(writer.write(stream_bytes(8, 1)), 0u);

  ring.indices.head.store(8);
  EXPECT_EQ(writer.writable(), 0u);
  EXPECT_TRUE(writer.corrupt());
}

TEST(ShmRing, neither_side_asks_for_a_wake_up_unless_the_other_said_it_sleeps) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 4)), 4u);
  EXPECT_FALSE(writer.publish());
  read_exactly(reader, 2);
  EXPECT_FALSE(reader.consume(2));
}

TEST(ShmRing, a_sleeping_consumer_is_woken_by_exactly_one_publish) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  EXPECT_FALSE(reader.prepare_to_sleep()) << "nothing to read: go to sleep";
  EXPECT_EQ(ring.indices.consumer_waiting.load(), 1u);

  ASSERT_EQ(writer.write(stream_bytes(0, 3)), 3u);
  EXPECT_TRUE(writer.publish()) << "the consumer sleeps: wake it";
  EXPECT_EQ(ring.indices.consumer_waiting.load(), 0u);
  ASSERT_EQ(writer.write(stream_bytes(3, 3)), 3u);
  EXPECT_FALSE(writer.publish()) << "it has been woken already";
  EXPECT_EQ(read_exactly(reader, 6), stream_bytes(0, 6));
}

TEST(ShmRing, a_consumer_that_finds_data_while_preparing_to_sleep_stays_awake) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 3)), 3u);
  writer.publish();
  EXPECT_TRUE(reader.prepare_to_sleep()) << "there is data: do not sleep";
  reader.awake();
  EXPECT_EQ(ring.indices.consumer_waiting.load(), 0u);
  ASSERT_EQ(writer.write(stream_bytes(3, 3)), 3u);
  EXPECT_FALSE(writer.publish()) << "an awake consumer needs no wake-up";
}

TEST(ShmRing, a_producer_waiting_for_space_is_woken_by_exactly_one_consume) {
  LocalRing ring(16);
  auto writer = ring.writer();
  auto reader = ring.reader();
  ASSERT_EQ(writer.write(stream_bytes(0, 16)), 16u);
  writer.publish();
  EXPECT_FALSE(writer.wait_for_space()) << "the ring is full: go to sleep";
  EXPECT_EQ(ring.indices.producer_waiting.load(), 1u);

  ASSERT_EQ(reader.readable().size(), 16u);
  EXPECT_TRUE(reader.consume(4)) << "the producer sleeps: wake it";
  EXPECT_EQ(ring.indices.producer_waiting.load(), 0u);
  EXPECT_FALSE(reader.consume(4)) << "it has been woken already";
  EXPECT_EQ(writer.writable(), 8u);
}

TEST(ShmRing, a_producer_that_finds_space_while_preparing_to_wait_stays_awake) {
  LocalRing ring(16);
  auto writer = ring.writer();
  ASSERT_EQ(writer.write(stream_bytes(0, 15)), 15u);
  writer.publish();
  EXPECT_TRUE(writer.wait_for_space()) << "one byte is free: do not sleep";
}

// Both threads give up after this long without progress: a hang guard, not a timing assert.
constexpr auto stall_limit = std::chrono::seconds(30);

// 4096 trips round a 4 KiB ring: enough wraps and chunk boundaries, and a loaded machine
// (busy polling hands over once per scheduler slice there) still finishes in seconds.
constexpr std::uint64_t stress_bytes = 16ull << 20;
constexpr std::uint64_t cross_process_bytes = 4ull << 20;

TEST(ShmRing, two_threads_pass_a_16_mib_stream_through_a_4_kib_ring_byte_for_byte) {
  LocalRing ring(4096);
  std::atomic<bool> give_up{false};
  std::uint64_t producer_stalls = 0;
  bool producer_saw_corrupt = false;

  std::thread producer([&] {
    auto writer = ring.writer();
    std::mt19937_64 sizes(1);
    std::array<std::byte, 3000> chunk;
    std::uint64_t sent = 0;
    auto last_progress = Clock::now();
    while (sent < stress_bytes && !give_up.load(std::memory_order_relaxed)) {
      const std::size_t n =
          std::min<std::uint64_t>(1 + sizes() % chunk.size(), stress_bytes - sent);
      for (std::size_t i = 0; i < n; ++i) chunk[i] = stream_byte(sent + i);
      std::size_t done = 0;
      while (done < n) {
        const std::size_t wrote = writer.write(std::span(chunk).subspan(done, n - done));
        if (wrote > 0) {
          done += wrote;
          writer.publish();
          last_progress = Clock::now();
          continue;
        }
        if (writer.corrupt()) {
          producer_saw_corrupt = true;
          give_up = true;
          return;
        }
        if (give_up.load(std::memory_order_relaxed)) return;
        if (Clock::now() - last_progress > stall_limit) {
          ++producer_stalls;
          give_up = true;
          return;
        }
        std::this_thread::yield();  // 2-core machines: let the consumer run
      }
      sent += n;
    }
  });

  auto reader = ring.reader();
  std::mt19937_64 takes(2);
  std::uint64_t received = 0;
  std::uint64_t first_mismatch = UINT64_MAX;
  bool consumer_stalled = false;
  auto last_progress = Clock::now();
  while (received < stress_bytes && !give_up.load(std::memory_order_relaxed)) {
    auto piece = reader.readable();
    if (piece.empty()) {
      if (reader.corrupt()) break;
      if (Clock::now() - last_progress > stall_limit) {
        consumer_stalled = true;
        break;
      }
      std::this_thread::yield();
      continue;
    }
    // Consume a random part of what is there, so the consumer's position lands everywhere.
    const std::size_t take = 1 + takes() % piece.size();
    for (std::size_t i = 0; i < take; ++i) {
      if (piece[i] != stream_byte(received + i)) {
        first_mismatch = received + i;
        break;
      }
    }
    if (first_mismatch != UINT64_MAX) break;
    reader.consume(take);
    received += take;
    last_progress = Clock::now();
  }
  give_up = true;  // ends the producer early if the consumer stopped early
  producer.join();

  EXPECT_EQ(first_mismatch, UINT64_MAX) << "stream differs at byte " << first_mismatch;
  EXPECT_EQ(received, stress_bytes);
  EXPECT_TRUE(reader.empty()) << "nothing beyond the stream";
  EXPECT_FALSE(reader.corrupt());
  EXPECT_FALSE(producer_saw_corrupt);
  EXPECT_FALSE(consumer_stalled);
  EXPECT_EQ(producer_stalls, 0u);
}

// An eventfd each side sleeps on, and the count of sleeps that ended by timeout while the
// awaited condition already held: each is a wake-up the handshake lost.
struct Waker {
  Waker() : fd(::eventfd(0, EFD_CLOEXEC)) {}
  ~Waker() {
    if (fd >= 0) ::close(fd);
  }
  void wake() {
    const std::uint64_t one = 1;
    [[maybe_unused]] auto n = ::write(fd, &one, sizeof one);
  }
  // False on timeout.
  bool sleep(int timeout_ms) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) != 1) return false;
    std::uint64_t count;
    [[maybe_unused]] auto n = ::read(fd, &count, sizeof count);
    return true;
  }
  int fd;
};

TEST(ShmRing, two_threads_that_sleep_on_eventfds_never_lose_a_wake_up) {
  constexpr std::uint64_t total = stress_bytes;
  // Long enough that only a lost wake-up times out; a stalled peer is not a lost wake-up.
  constexpr int sleep_limit_ms = 5000;
  LocalRing ring(4096);
  Waker wake_producer, wake_consumer;
  ASSERT_GE(wake_producer.fd, 0);
  ASSERT_GE(wake_consumer.fd, 0);
  std::atomic<bool> give_up{false};
  std::uint64_t producer_lost_wakeups = 0, producer_sleeps = 0;

  std::thread producer([&] {
    auto writer = ring.writer();
    std::mt19937_64 sizes(3);
    std::array<std::byte, 3000> chunk;
    std::uint64_t sent = 0;
    while (sent < total && !give_up.load(std::memory_order_relaxed)) {
      const std::size_t n = std::min<std::uint64_t>(1 + sizes() % chunk.size(), total - sent);
      for (std::size_t i = 0; i < n; ++i) chunk[i] = stream_byte(sent + i);
      std::size_t done = 0;
      while (done < n && !give_up.load(std::memory_order_relaxed)) {
        const std::size_t wrote = writer.write(std::span(chunk).subspan(done, n - done));
        if (wrote > 0) {
          done += wrote;
          if (writer.publish()) wake_consumer.wake();
          continue;
        }
        if (writer.corrupt() || writer.wait_for_space()) continue;
        ++producer_sleeps;
        if (!wake_producer.sleep(sleep_limit_ms) && writer.writable() > 0) {
          ++producer_lost_wakeups;
          give_up = true;
        }
      }
      sent += n;
    }
    wake_consumer.wake();  // in case the consumer sleeps after we gave up
  });

  auto reader = ring.reader();
  std::uint64_t received = 0, consumer_lost_wakeups = 0, consumer_sleeps = 0;
  bool mismatch = false;
  while (received < total && !give_up.load(std::memory_order_relaxed)) {
    auto piece = reader.readable();
    if (!piece.empty()) {
      mismatch = !is_stream(piece, received);
      if (mismatch) break;
      received += piece.size();
      if (reader.consume(piece.size())) wake_producer.wake();
      continue;
    }
    if (reader.corrupt()) break;
    if (reader.prepare_to_sleep()) {
      reader.awake();
      continue;
    }
    ++consumer_sleeps;
    if (!wake_consumer.sleep(sleep_limit_ms) && !reader.readable().empty()) {
      ++consumer_lost_wakeups;
      break;
    }
    reader.awake();
  }
  give_up = true;
  wake_producer.wake();
  producer.join();

  EXPECT_FALSE(mismatch);
  EXPECT_EQ(received, total);
  EXPECT_FALSE(reader.corrupt());
  EXPECT_EQ(consumer_lost_wakeups, 0u);
  EXPECT_EQ(producer_lost_wakeups, 0u);
  // Not asserted (it depends on scheduling), but a run where nobody slept tests little.
  RecordProperty("consumer_sleeps", std::to_string(consumer_sleeps));
  RecordProperty("producer_sleeps", std::to_string(producer_sleeps));
}

// Reaps the child on every path out of the test, killing it if it has not finished.
struct ChildProcess {
  explicit ChildProcess(pid_t pid) : pid(pid) {}
  ~ChildProcess() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
  }
  // The exit status, or nullopt when the child is still running after `limit`.
  std::optional<int> wait(std::chrono::milliseconds limit) {
    const auto deadline = Clock::now() + limit;
    for (;;) {
      int status = 0;
      const pid_t r = ::waitpid(pid, &status, WNOHANG);
      if (r == pid) {
        pid = -1;
        return status;
      }
      if (r < 0 || Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
  pid_t pid;
};

// The child's side: cross_process_bytes of the stream, then their FNV-1a checksum
// (little-endian), so the parent can tell a lost or changed byte from a short stream.
[[noreturn]] void write_stream_then_exit(const SessionRings& rings) {
  ShmRingWriter writer(rings.to_broker, rings.to_broker_data, rings.to_broker_bytes);
  std::mt19937_64 sizes(4);
  std::array<std::byte, 4000> chunk;
  std::uint64_t sent = 0, checksum = fnv1a_seed;
  auto send = [&](std::span<const std::byte> bytes) {
    auto last_progress = Clock::now();
    while (!bytes.empty()) {
      const std::size_t n = writer.write(bytes);
      if (n > 0) {
        writer.publish();
        bytes = bytes.subspan(n);
        last_progress = Clock::now();
      } else if (writer.corrupt()) {
        ::_exit(2);
      } else if (Clock::now() - last_progress > stall_limit) {
        ::_exit(3);
      } else {
        std::this_thread::yield();
      }
    }
  };
  while (sent < cross_process_bytes) {
    const std::size_t n =
        std::min<std::uint64_t>(1 + sizes() % chunk.size(), cross_process_bytes - sent);
    for (std::size_t i = 0; i < n; ++i) chunk[i] = stream_byte(sent + i);
    checksum = fnv1a(checksum, std::span(chunk).first(n));
    send(std::span(chunk).first(n));
    sent += n;
  }
  std::array<std::byte, 8> trailer;
  for (std::size_t i = 0; i < 8; ++i) trailer[i] = static_cast<std::byte>(checksum >> (8 * i));
  send(trailer);
  ::_exit(0);
}

TEST(ShmRing, a_child_process_streams_through_a_session_segment_to_its_parent) {
  auto segment = SharedSegment::create("brook-ring-test", session_segment_bytes(4096, 4096));
  const SessionRings rings = init_session_segment(segment.bytes(), 4096, 4096);
  ASSERT_EQ(rings.to_broker_bytes, 4096u);

  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0) << "fork";
  if (pid == 0) write_stream_then_exit(rings);
  ChildProcess child(pid);

  ShmRingReader reader(rings.to_broker, rings.to_broker_data, rings.to_broker_bytes);
  std::uint64_t received = 0, checksum = fnv1a_seed;
  std::uint64_t first_mismatch = UINT64_MAX;
  std::vector<std::byte> trailer;
  auto last_progress = Clock::now();
  bool stalled = false;
  while (received < cross_process_bytes + 8) {
    auto piece = reader.readable();
    if (piece.empty()) {
      if (reader.corrupt()) break;
      if (Clock::now() - last_progress > stall_limit) {
        stalled = true;
        break;
      }
      std::this_thread::yield();
      continue;
    }
    const std::uint64_t stream_left =
        received < cross_process_bytes ? cross_process_bytes - received : 0;
    const std::size_t stream_part = std::min<std::uint64_t>(piece.size(), stream_left);
    auto body = piece.first(stream_part);
    if (first_mismatch == UINT64_MAX && !is_stream(body, received)) {
      for (std::size_t i = 0; i < body.size(); ++i)
        if (body[i] != stream_byte(received + i)) {
          first_mismatch = received + i;
          break;
        }
    }
    checksum = fnv1a(checksum, body);
    const auto rest = piece.subspan(stream_part);
    const std::size_t trailer_part = std::min<std::size_t>(rest.size(), 8 - trailer.size());
    trailer.insert(trailer.end(), rest.begin(), rest.begin() + trailer_part);
    reader.consume(stream_part + trailer_part);
    received += stream_part + trailer_part;
    last_progress = Clock::now();
  }

  const auto status = child.wait(std::chrono::seconds(10));
  ASSERT_TRUE(status.has_value()) << "the child did not exit";
  ASSERT_TRUE(WIFEXITED(*status)) << "the child died of signal " << WTERMSIG(*status);
  EXPECT_EQ(WEXITSTATUS(*status), 0) << "2: it saw a corrupt ring, 3: it stalled";
  EXPECT_FALSE(stalled);
  EXPECT_FALSE(reader.corrupt());
  EXPECT_EQ(first_mismatch, UINT64_MAX) << "stream differs at byte " << first_mismatch;
  ASSERT_EQ(received, cross_process_bytes + 8);
  std::uint64_t their_checksum = 0;
  for (std::size_t i = 0; i < 8; ++i)
    their_checksum |= std::to_integer<std::uint64_t>(trailer[i]) << (8 * i);
  EXPECT_EQ(checksum, their_checksum);
  EXPECT_TRUE(reader.empty());
}

}  // namespace
}  // namespace brook::transport
