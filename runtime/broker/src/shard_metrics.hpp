#pragma once
// What a shard counts, in a form the HTTP side's thread can read while the shard runs.
//
// Each value has one writer, its shard: an increment is a relaxed load and a relaxed store
// (a plain load, add and store on x86, no lock prefix, no fence), and a reader on another
// thread sees each value whole, a little late. Nothing is published through these values,
// so nothing orders them: a scrape may see one counter of an event moved and another not yet.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

#include "brook/protocol.hpp"

namespace brook::runtime {

class Counter {
 public:
  void add(std::uint64_t n = 1) noexcept { value_.store(value_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  std::uint64_t operator++() noexcept { add(); return get(); }
  void operator++(int) noexcept { add(); }
  void operator+=(std::uint64_t n) noexcept { add(n); }
  void set(std::uint64_t n) noexcept { value_.store(n, std::memory_order_relaxed); }
  void operator=(std::uint64_t n) noexcept { set(n); }
  std::uint64_t get() const noexcept { return value_.load(std::memory_order_relaxed); }
  operator std::uint64_t() const noexcept { return get(); }

 private:
  std::atomic<std::uint64_t> value_{0};
};

// A Prometheus histogram with power-of-two bucket bounds: bucket i counts the values in
// (first_bound * 2^(i-1), first_bound * 2^i], the last one everything above. Not cumulative
// here; the exposition adds them up.
template <std::size_t Bounds>
class PowerHistogram {
 public:
  static constexpr std::size_t bound_count = Bounds;
  explicit constexpr PowerHistogram(std::uint64_t first_bound) : first_bound_(first_bound) {}
  void record(std::uint64_t value) noexcept {
    const std::uint64_t scaled = value <= first_bound_ ? 0 : (value - 1) / first_bound_;
    buckets_[std::min<std::size_t>(std::bit_width(scaled), Bounds)].add();
    sum_.add(value);
  }
  std::uint64_t bound(std::size_t i) const noexcept { return first_bound_ << i; }
  std::uint64_t bucket(std::size_t i) const noexcept { return buckets_[i].get(); }  // i <= Bounds
  std::uint64_t sum() const noexcept { return sum_.get(); }

 private:
  std::uint64_t first_bound_;
  std::array<Counter, Bounds + 1> buckets_;
  Counter sum_;
};

// Publish-to-send inside the broker, in ns: 1 µs to about 1 s.
using LatencyBuckets = PowerHistogram<21>;
// Frames per send to one subscriber: 1 to 1024.
using BatchBuckets = PowerHistogram<11>;

inline constexpr std::size_t error_code_slots = 32;

struct ShardCounters {
  Counter connections_accepted;
  Counter connections_closed;
  Counter frames_in;
  Counter bytes_in;
  Counter publishes;
  Counter deliveries;
  Counter bytes_out;
  Counter protocol_errors;
  Counter refused_requests;
  Counter slow_consumer_closes;
  Counter mailbox_overflows;
  Counter conflated;
  Counter shared_deliveries;  // broadcast log references written to shm clients' rings
  Counter deltas_computed;   // subscriber side: deltas made, one per update and subscribing shard
  Counter delta_deliveries;  // subscriber side: deliveries sent as a delta
  Counter refreshes;         // clients that asked for a full value again
  Counter requests;          // requests routed to a handler (owner side)
  Counter responses;         // answers passed back (handler side)
  Counter stray_responses;   // answers to requests the session was not given
  Counter sessions_opened;
  Counter sessions_resumed;
  Counter sessions_closed;
  Counter resyncs;
  Counter dropped_backlogs;  // queues dropped by the drop-oldest policy (each then resyncs)
  Counter handoffs;
  Counter ping_timeouts;
  Counter loop_turns;
  Counter busy_ns;           // the loop's time at work, its waits excluded
  Counter longest_turn_ns;
  Counter permission_denials;
  Counter auth_failures;     // connections refused for their credentials
  Counter connections_refused;  // accepted and closed at once: the shard was full, or an shm peer unfit
  Counter tls_handshakes;  // TLS connections that completed their handshake
  Counter tls_failures;    // TLS connections closed for a failed handshake or record
  Counter ws_upgrades;     // WebSocket connections that completed their upgrade
  Counter ws_failures;     // WebSocket connections refused or closed for a protocol error
  Counter memory_sheds;        // sessions given the queue-limit policy for memory
  Counter memory_refusals;     // publishes refused: the budget was spent
  Counter recovery_trimmed;    // sent frames forgotten early for memory
  Counter flow_holds;          // subscribers that began holding publishers back
  Counter flow_stalls;         // publishers held back (episodes, on their shard)
  Counter flow_timeouts;       // subscribers given their policy after max_stall_ms
  Counter sends;               // sends to subscribers carrying session frames
  std::array<Counter, error_code_slots> refusals;  // requests refused, by ErrorCode
  LatencyBuckets publish_to_send_ns{1000};
  BatchBuckets send_batch_frames{1};

  void refused(ErrorCode code) noexcept {
    ++refused_requests;
    refusals[std::min<std::size_t>(static_cast<std::size_t>(code), error_code_slots - 1)].add();
  }
};

// A shard's levels, stored once per turn for other threads to read.
struct ShardGauges {
  Counter connections;
  Counter sessions;
  Counter topics;          // owned here
  Counter subscriptions;   // of sessions here
  Counter overflow_records;  // mailbox records waiting behind full rings
  Counter pool_in_use_bytes;  // the buffer pool's blocks in use (updates, frames, deltas)
  Counter pool_heap_bytes;    // what the pool holds from the heap (slabs and large blocks)
  Counter last_turn_ns;    // now_ns() at the end of the last turn
};

}  // namespace brook::runtime
