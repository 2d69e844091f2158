// Send coalescing: under a fan-out's load, fewer and fuller sends.
//
// Runs on the shard's thread. A loopback send costs the broker 1-3 us in the kernel (the
// receiver's TCP processing and its wake-up are charged to the sender) whether it carries one
// update or ten. Sent at once, a fan-out of 100 subscribers at 10,000 updates/s is a million
// sends a second; on a small machine their cost takes the core the subscribers need, and the
// tail latency grows with it. So while a shard delivers more than send_coalesce_rate updates a
// second, and a turn has sends for many connections (a fan-out, not one stream), a connection
// sent to less than send_coalesce_us ago waits out the rest of that time: each subscriber then
// gets at most one send per window, carrying all it is due. Below the rate (round trips,
// ordinary feeds) nothing waits. Connection frames (pings, errors, a
// close), the TLS and WebSocket layers' own bytes, and a full batch are never held. The
// window is at most 10 ms, well inside the memory limit's 20 ms stall rule
// (shard_memory.cpp), which reads a held reader's last send.
#include "shard.hpp"

#include <time.h>

#include <cerrno>

namespace brook::runtime {

namespace {
constexpr std::uint64_t rate_window_ns = 1'000'000;  // the delivery rate is measured per ms
// A batch this big is worth a send of its own: holding it longer only adds latency.
constexpr std::uint64_t full_batch_bytes = 4 * 1024;
// Fewer connections than this with frames to send in a turn is a stream, not a fan-out: its
// sends are already full, and holding them only leaves the subscriber idle (a windowed
// 1 KiB stream lost 5-8% with holds).
constexpr std::size_t fan_out_connections = 8;
}  // namespace

bool Shard::coalescing_turn() const {
  return coalescing_ && flush_list_.size() >= fan_out_connections;
}

void Shard::update_coalescing(std::uint64_t now) {
  if (options_.send_coalesce_us == 0 || options_.send_coalesce_rate == 0) return;
  const std::uint64_t elapsed = now - coalesce_window_start_ns_;
  if (elapsed < rate_window_ns) return;
  // Deliveries, not sends: they do not fall when coalescing makes the sends fewer. The first
  // window (from 0) and one after a long sleep are long: divided, not multiplied, so that
  // nothing overflows.
  const std::uint64_t delivered = counters_.deliveries.get() - coalesce_window_deliveries_;
  coalescing_ = delivered * 1'000'000'000 / elapsed >= options_.send_coalesce_rate;
  coalesce_window_start_ns_ = now;
  coalesce_window_deliveries_ = counters_.deliveries.get();
}

bool Shard::hold_send(const Connection& c) const {
  if (c.send_in_flight || c.closing || c.shm || !c.control_out.empty() || layers_have_output(c))
    return false;
  if (send_clock_ns_ - c.send_started_ns >= coalesce_window_ns()) return false;
  const Session* s = c.state == ConnectionState::attached ? c.session : nullptr;
  return s && s->out.bytes() < full_batch_bytes;
}

void sleep_until_ns(std::uint64_t due_ns) {
  timespec due{static_cast<time_t>(due_ns / 1'000'000'000), static_cast<long>(due_ns % 1'000'000'000)};
  // now_ns() is steady_clock, which is CLOCK_MONOTONIC on Linux.
  while (::clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, nullptr) == EINTR) {
  }
}

}  // namespace brook::runtime
