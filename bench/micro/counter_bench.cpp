// What counting costs on the hot path (issue 24: "counting costs no lock and no allocation per
// message"). A shard counts with Counter (a relaxed load and store of its own atomic, read by
// the HTTP side's thread) and samples latency into a PowerHistogram; beside them the plain
// uint64_t the shards used before and an atomic fetch_add (a locked instruction), each
// counting a delivery loop's worth of events, with and without a reader thread scraping the
// same counters all the while (what a Prometheus scrape does, flat out here).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "../../runtime/broker/src/shard_metrics.hpp"

namespace {

using brook::runtime::BatchBuckets;
using brook::runtime::Counter;
using brook::runtime::LatencyBuckets;

constexpr int events_per_iteration = 1024;

// Two counters per event, as a delivery moves deliveries and bytes_out.
struct PlainCounters {
  std::uint64_t deliveries = 0, bytes = 0;
};
struct RelaxedCounters {
  Counter deliveries, bytes;
};
struct LockedCounters {
  std::atomic<std::uint64_t> deliveries{0}, bytes{0};
};

// A reader on another thread, reading both counters until told to stop.
template <class Read>
class Scraper {
 public:
  explicit Scraper(bool active, Read read) {
    if (active)
      thread_ = std::thread([this, read] {
        while (!stop_.load(std::memory_order_relaxed)) benchmark::DoNotOptimize(read());
      });
  }
  ~Scraper() {
    stop_.store(true, std::memory_order_relaxed);
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

void BM_count_plain(benchmark::State& state) {
  PlainCounters c;
  for (auto _ : state) {
    for (int i = 0; i < events_per_iteration; ++i) {
      ++c.deliveries;
      c.bytes += 64;
      benchmark::ClobberMemory();
    }
  }
  benchmark::DoNotOptimize(c.deliveries);
  state.SetItemsProcessed(state.iterations() * events_per_iteration);
}

void BM_count_relaxed_counter(benchmark::State& state) {
  RelaxedCounters c;
  Scraper scraper(state.range(0) != 0, [&] { return c.deliveries.get() + c.bytes.get(); });
  for (auto _ : state) {
    for (int i = 0; i < events_per_iteration; ++i) {
      ++c.deliveries;
      c.bytes += 64;
      benchmark::ClobberMemory();
    }
  }
  state.SetItemsProcessed(state.iterations() * events_per_iteration);
}

void BM_count_atomic_fetch_add(benchmark::State& state) {
  LockedCounters c;
  Scraper scraper(state.range(0) != 0, [&] {
    return c.deliveries.load(std::memory_order_relaxed) + c.bytes.load(std::memory_order_relaxed);
  });
  for (auto _ : state) {
    for (int i = 0; i < events_per_iteration; ++i) {
      c.deliveries.fetch_add(1, std::memory_order_relaxed);
      c.bytes.fetch_add(64, std::memory_order_relaxed);
    }
  }
  state.SetItemsProcessed(state.iterations() * events_per_iteration);
}

// One histogram sample per send: the bucket's counter and the sum.
void BM_histogram_record(benchmark::State& state) {
  LatencyBuckets latency{1000};
  BatchBuckets batch{1};
  std::uint64_t value = 1;
  for (auto _ : state) {
    for (int i = 0; i < events_per_iteration; ++i) {
      value = value * 6364136223846793005ull + 1442695040888963407ull;  // spread over the buckets
      latency.record(value >> 40);
      batch.record((value >> 58) + 1);
    }
  }
  benchmark::DoNotOptimize(latency.sum());
  state.SetItemsProcessed(state.iterations() * events_per_iteration);
}

// min and max beside Google Benchmark's mean and median, over --benchmark_repetitions.
double smallest(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }
double largest(const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); }

BENCHMARK(BM_count_plain)->ComputeStatistics("min", smallest)->ComputeStatistics("max", largest);
BENCHMARK(BM_count_relaxed_counter)->Arg(0)->Arg(1)->ArgName("scraped")
    ->ComputeStatistics("min", smallest)->ComputeStatistics("max", largest);
BENCHMARK(BM_count_atomic_fetch_add)->Arg(0)->Arg(1)->ArgName("scraped")
    ->ComputeStatistics("min", smallest)->ComputeStatistics("max", largest);
BENCHMARK(BM_histogram_record)->ComputeStatistics("min", smallest)->ComputeStatistics("max", largest);

}  // namespace
