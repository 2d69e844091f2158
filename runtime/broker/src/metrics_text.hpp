#pragma once
// The Prometheus text exposition (format 0.0.4) of every shard's counters, levels and
// histograms. A fixed set of series: per shard for the loops' levels, broker-wide sums for
// events, never per topic or per session (those are in the JSON endpoints).
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shard_metrics.hpp"

namespace brook::runtime {

class Shard;
struct MemoryGauge;

// A broker-wide event counter: its name in /metrics (brook_<name>_total) and in /api/broker.
struct CounterEntry {
  std::string_view json_name;
  std::string_view help;
  Counter ShardCounters::*member;
};
std::span<const CounterEntry> counter_table();

struct MetricsSources {
  std::vector<const Shard*> shards;
  const MemoryGauge* shard_memory = nullptr;  // one per shard
  std::uint64_t memory_budget = 0;
  std::uint64_t resident_bytes = 0;
  std::string_view version;
  double start_time_s = 0;
};

std::string prometheus_text(const MetricsSources& sources);

}  // namespace brook::runtime
