#pragma once
// `brook bench requests`: request/response through the broker. H handler clients (each its own
// session) echo every request on one endpoint; one requester client sends --count requests in
// two phases: at a fixed rate (latency from each request's intended send time to its answer,
// so a stall shows in every request it delays) and flat out within a window of requests in
// flight (requests/s). Every answer is checked against its request; the share of requests each
// handler served shows how sticky or round-robin routing spread them.
#include <cstddef>
#include <cstdint>
#include <string>

namespace brook::cli {

struct RequestsBenchArgs {
  std::string url;
  std::uint64_t count = 100000;  // requests per phase
  double rate = 10000;           // requests/s in the latency phase
  std::size_t payload = 64;      // request bytes (at least 16: index and intended send time)
  unsigned handlers = 1;
  bool sticky = true;
  bool json = false;
};

int run_requests(const RequestsBenchArgs& args);

}  // namespace brook::cli
