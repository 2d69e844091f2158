#pragma once
// brook bench oneway and fanout (latency and fan-out through the broker) and raw-ring (the same
// at the hardware: two processes and a shared-memory ring, no broker): bench_shm.cpp.
#include <cstddef>
#include <cstdint>
#include <string>

namespace brook::cli {

struct OnewayArgs {
  std::string scenario = "oneway";  // the result's name: "fanout" when it is about many subscribers
  std::string url;
  std::size_t payload = 64;
  std::uint64_t count = 100000;
  double rate = 10000;
  unsigned subscribers = 1;
  bool spin = false;       // clients busy-poll
  // Several subscribers share a ClientContext of their own (false), or the process's default
  // context with the publisher (true).
  bool default_context = false;
  long broker_pid = 0;     // for its CPU time per update (0: the only brookd, if one)
  double max_seconds = 60;
  bool json = false;
};
int run_oneway(const OnewayArgs& args);

struct RawRingArgs {
  std::size_t payload = 64;
  std::uint64_t count = 100000;
  double rate = 10000;  // 0: flat out (throughput)
  bool round_trip = false;  // closed loop over two rings instead; rate does not apply
  bool spin = false;
  std::size_t ring_bytes = 1 << 20;
  double max_seconds = 60;
  bool json = false;
};
int run_raw_ring(const RawRingArgs& args);

}  // namespace brook::cli
