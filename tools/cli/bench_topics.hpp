#pragma once
// brook bench topics: updates spread over many topics, delivered to subscribers that each hold
// one selector for all of them: bench_topics.cpp.
#include <cstddef>
#include <cstdint>
#include <string>

namespace brook::cli {

struct TopicsArgs {
  std::string url;
  std::uint64_t topics = 100000;
  unsigned subscribers = 4;
  std::uint64_t count = 100000;           // updates published, over all topics
  std::size_t payload = 64;               // at least 16: sequence and intended send time
  std::uint64_t window_bytes = 1u << 20;  // payload the publisher may be ahead of the slowest subscriber
  bool spin = false;                      // subscribers' clients busy-poll
  double max_seconds = 60;
  bool json = false;
};
int run_topics(const TopicsArgs& args);

}  // namespace brook::cli
