// The four peer_bench scenarios, written once against PeerSystem/PeerLink so that every peer
// runs the load and the checks of `brook bench` (same payload layout, flow control and bounds):
//   throughput  one publisher -> one subscriber, flat out within --window-bytes of what the
//               subscriber has received; messages/s, loss, order
//   rtt         ping -> responder -> pong at a fixed rate; latency from each ping's intended
//               send time, so a stall is charged to every ping it delays
//   fanout      one publisher at a fixed rate -> N subscribers of one subject; one-way latency
//               of every delivery
//   topics      one publisher flat out over T subjects -> N subscribers of all of them; order
//               checked per topic
// Every run is bounded: sending stops after max_seconds, then stragglers are awaited until all
// arrived or none arrived for drain_seconds. Loss is reported in the result, never thrown;
// setup failures (cannot connect or subscribe) throw std::runtime_error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "brook/runtime/bench_report.hpp"
#include "peer_link.hpp"

namespace brook::bench {

// Bytes 0-7 of every payload: sequence number; 8-15: intended send time (the rest is filler).
inline constexpr std::size_t kMinPayloadBytes = 16;

struct ScenarioOptions {
  std::string url;
  std::size_t payload_bytes = 64;             // >= kMinPayloadBytes
  std::uint64_t count = 100'000;              // messages the publisher sends (updates, pings)
  double rate_per_sec = 10'000.0;             // rtt, fanout: publishes per second (> 0)
  std::uint32_t subscribers = 1;              // fanout, topics: subscriber links
  std::uint64_t topics = 1;                   // topics: distinct subjects
  std::uint64_t window_bytes = 1 << 20;       // throughput, topics: payload the publisher may be ahead
  std::uint64_t ack_window = 1024;            // acked: publishes awaiting their acknowledgement
  double max_seconds = 30.0;                  // sending stops after this long
  double drain_seconds = 5.0;                 // then: wait until nothing arrived for this long
};

runtime::BenchResult run_throughput(const PeerSystem& system, const ScenarioOptions& options);
runtime::BenchResult run_rtt(const PeerSystem& system, const ScenarioOptions& options);
runtime::BenchResult run_fanout(const PeerSystem& system, const ScenarioOptions& options);
runtime::BenchResult run_topics(const PeerSystem& system, const ScenarioOptions& options);

}  // namespace brook::bench
