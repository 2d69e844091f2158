#pragma once
// `brook bench acked`: acknowledged publishes (publish_acked), the latency of an
// acknowledgement at a fixed rate and acknowledged msgs/s flat out with a window; against a
// broker with a journal, what each storage.sync costs.
#include <cstddef>
#include <cstdint>
#include <string>

namespace brook::cli {

inline constexpr std::size_t default_acked_window = 1024;

// `window`: publishes awaiting their acknowledgement at most, flat out (at least 1).
int run_acked(const std::string& url, std::size_t payload_bytes, std::uint64_t count, double rate,
              std::size_t window, double max_seconds, bool json);

}  // namespace brook::cli
