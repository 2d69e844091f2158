#pragma once
// `brook bench replay`: how fast a subscriber that asks for history gets it. --count updates
// are published round --topics topics, each topic created to keep them all (its own history
// property), then one subscriber asks for the whole history of every topic with one selector:
// replayed updates per second, from the subscribe call to the last one received.
#include <cstddef>
#include <cstdint>
#include <string>

namespace brook::cli {

int run_replay_bench(const std::string& url, std::size_t payload_bytes, std::uint64_t count,
                     std::uint64_t topics, double max_seconds, bool json);

}  // namespace brook::cli
