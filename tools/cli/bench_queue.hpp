#pragma once
// `brook bench queue`: the fail-safe client's queue. A publisher whose way to the broker is
// cut (a CutRelay turning connections away) publishes --count updates into its client-side
// queue: in memory, then persistent with each fsync policy (never, batch, always). Per mode:
// calls/s taken into the queue, then, once the relay opens, how long the queue takes to reach
// a subscriber whole (every value checked, in order).
#include <cstddef>
#include <cstdint>
#include <string>

namespace brook::cli {

int run_queue(const std::string& url, std::uint64_t count, std::size_t payload, bool json);

}  // namespace brook::cli
