#pragma once
// `brook bench deltas`: the demo's odds feed published at a fixed rate through the broker
// twice, to topics without and with deltas. Per pass: bytes on the wire per update (update
// head + value or delta), one-way latency percentiles (from each update's intended send time,
// so that a stall shows in every update it delays) and a check of every value the subscriber
// reconstructed against the one published (xxhash).
#include <cstdint>
#include <string>

namespace brook::cli {

int run_deltas(const std::string& url, std::uint64_t count, double rate, bool json);

}  // namespace brook::cli
