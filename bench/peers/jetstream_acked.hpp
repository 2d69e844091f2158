// peer_bench's `acked` scenario: what `brook bench acked` measures (tools/cli/bench_acked.cpp),
// against nats-server with JetStream through cnats' asynchronous JetStream publish. A stream
// of its own (file storage, one replica) on a subject of its own, then two phases:
//   latency   count/4 publishes at rate_per_sec on a send_asap connection; each
//             acknowledgement timed from its publish's intended send time (in the payload), so
//             a stall (a slow write to the store) is charged to every acknowledgement it delays;
//   flat out  count publishes on a batched connection with at most ack_window awaiting their
//             acknowledgement (PublishAsync.MaxPending): acknowledged msgs/s.
// As in brook bench acked, sent/received/lost are the flat-out phase's; a failed
// acknowledgement in the latency phase is counted as lost too. Every phase stops after
// max_seconds; an acknowledgement not back within 30 s is a failure (jsPubOptions.MaxWait).
//
// What an acknowledgement means (written, or written and fsynced) is the server's setting, not
// the client's: bench/compare records it beside the results.
#pragma once

#include "brook/runtime/bench_report.hpp"
#include "scenarios.hpp"

namespace brook::bench {

// Throws std::runtime_error when the stream cannot be created (no JetStream on the server).
runtime::BenchResult run_jetstream_acked(const ScenarioOptions& options);

}  // namespace brook::bench
