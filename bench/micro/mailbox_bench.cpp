// Micro-benchmarks of the mailboxes between threads: SpscRing (shard to shard) and
// MpscByteRing (client outbox, one or two producers), each drained one record at a time and
// in batches, beside the baseline they replace: a std::mutex + std::deque queue bounded to
// the same capacity, between the same two pinned threads.
//
// Throughput runs move a fixed batch of 40-byte records flat out and time first push to last
// pop (manual time, so thread start-up is not counted). Latency runs send at a fixed rate
// (RatePacer, no coordinated omission: latency counts from the intended send time) and
// report percentiles of the one-way delay from the LatencyHistogram. Every run is bounded by
// ->Iterations so the binary stays short on a small, noisy machine.
#include <benchmark/benchmark.h>
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "brook/transport/mpsc_byte_ring.hpp"
#include "brook/transport/spsc_ring.hpp"

namespace {

using brook::runtime::LatencyHistogram;
using brook::runtime::RatePacer;
using brook::transport::MpscByteRing;
using brook::transport::SpscRing;

// The size of a shard message: sequence, send time and three words of payload.
struct Record {
  std::uint64_t seq;
  std::int64_t sent_ns;
  std::uint64_t a;
  std::uint64_t b;
  std::uint32_t c;
  std::uint32_t producer;
};
static_assert(sizeof(Record) == 40);

constexpr std::size_t ring_records = 4096;
constexpr std::uint64_t batch_records = 1'000'000;  // per throughput iteration
constexpr int throughput_iterations = 5;
constexpr std::size_t drain_batch = 64;

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             RatePacer::clock::now().time_since_epoch())
      .count();
}

// ---- threads: pinning and waiting ------------------------------------------------------

// The CPUs this process may use, in order; pinning uses the first two.
std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> cpus;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

// Pins the calling thread to one CPU for its scope (only when two or more are available),
// restoring the previous mask after, so the main thread is unpinned between benchmarks.
class Pin {
 public:
  explicit Pin(int slot) {
    static const std::vector<int> cpus = allowed_cpus();
    if (cpus.size() < 2) return;
    pthread_getaffinity_np(pthread_self(), sizeof saved_, &saved_);
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus[static_cast<std::size_t>(slot) % 2], &one);
    pinned_ = pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
  }
  ~Pin() {
    if (pinned_) pthread_setaffinity_np(pthread_self(), sizeof saved_, &saved_);
  }
  Pin(const Pin&) = delete;
  Pin& operator=(const Pin&) = delete;
  static bool available() { return allowed_cpus().size() >= 2; }

 private:
  cpu_set_t saved_{};
  bool pinned_ = false;
};

// Spin briefly, then yield: two producers and a consumer can share two cores.
class Backoff {
 public:
  void idle() {
    if (++spins_ < 64) {
#if defined(__x86_64__) || defined(__i386__)
      _mm_pause();
#endif
    } else {
      std::this_thread::yield();
      spins_ = 0;
    }
  }
  void reset() { spins_ = 0; }

 private:
  unsigned spins_ = 0;
};

// ---- the queues, behind one interface --------------------------------------------------

// Single consumer per queue; `max` is 1 for "single pop" and drain_batch for batches.
struct SpscQueue {
  SpscRing<Record> ring{ring_records};
  static constexpr int max_producers = 1;
  bool push(const Record& r) { return ring.try_push(r); }
  template <class F>
  std::size_t pop(F&& f, std::size_t max) {
    if (max == 1) {
      Record r;
      if (!ring.try_pop(r)) return 0;
      f(r);
      return 1;
    }
    return ring.drain(f, max);
  }
};

struct MpscQueue {
  // Same capacity in bytes as the SPSC ring holds records (8-byte header + 32-byte payload).
  MpscByteRing ring{ring_records * sizeof(Record)};
  static constexpr int max_producers = 2;
  bool push(const Record& r) {
    auto claim = ring.try_claim(sizeof(Record) - 8);
    if (!claim) return false;
    // The header replaces the record's last word in the byte ring: 32 payload bytes.
    std::memcpy(claim.payload, &r, sizeof(Record) - 8);
    MpscByteRing::commit(claim, r.producer + 1);
    return true;
  }
  template <class F>
  std::size_t pop(F&& f, std::size_t max) {
    return ring.drain(
        [&](std::uint32_t kind, std::span<const std::byte> payload) {
          Record r{};
          std::memcpy(&r, payload.data(), sizeof(Record) - 8);
          r.producer = kind - 1;
          f(r);
        },
        max);
  }
};

// Baseline: what a first version would use. Bounded like the rings so that a fast producer
// cannot grow it without limit.
struct MutexDequeQueue {
  std::mutex mutex;
  std::deque<Record> queue;
  static constexpr int max_producers = 2;
  bool push(const Record& r) {
    std::lock_guard lock(mutex);
    if (queue.size() >= ring_records) return false;
    queue.push_back(r);
    return true;
  }
  template <class F>
  std::size_t pop(F&& f, std::size_t max) {
    std::lock_guard lock(mutex);
    std::size_t n = 0;
    while (n < max && !queue.empty()) {
      f(queue.front());
      queue.pop_front();
      ++n;
    }
    return n;
  }
};

// ---- throughput: flat out --------------------------------------------------------------

struct RunResult {
  double seconds = 0;
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
};

// `producers` threads push `per_producer` records each; one consumer pops them `max` at a
// time. Producer 0 is pinned to the first CPU, the consumer to the second, producer 1 (if
// any) shares the first: the consumer is the side being measured.
template <class Queue>
RunResult run_flat_out(int producers, std::uint64_t per_producer, std::size_t max) {
  Queue queue;
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  RatePacer::time_point start{}, end{};
  RunResult result;
  std::vector<std::uint64_t> next(static_cast<std::size_t>(producers), 0);
  std::thread consumer([&] {
    Pin pin(1);
    ready.fetch_add(1, std::memory_order_release);  // pairs with the acquire wait below
    while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
    Backoff backoff;
    const std::uint64_t total = per_producer * static_cast<std::uint64_t>(producers);
    while (result.received < total) {
      const std::size_t n = queue.pop(
          [&](const Record& r) {
            result.out_of_order += r.seq == next[r.producer] ? 0 : 1;
            next[r.producer] = r.seq + 1;
          },
          max);
      result.received += n;
      if (n == 0) backoff.idle(); else backoff.reset();
    }
    end = RatePacer::clock::now();
  });
  std::vector<std::thread> extra;
  auto produce = [&](std::uint32_t id) {
    Backoff backoff;
    Record r{0, 0, 1, 2, 3, id};
    for (std::uint64_t seq = 0; seq < per_producer; ++seq) {
      r.seq = seq;
      while (!queue.push(r)) backoff.idle();
      backoff.reset();
    }
  };
  for (int p = 1; p < producers; ++p) {
    extra.emplace_back([&, p] {
      Pin pin(0);
      ready.fetch_add(1, std::memory_order_release);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      produce(static_cast<std::uint32_t>(p));
    });
  }
  {
    Pin pin(0);
    // acquire: pairs with each thread's release increment; all are spinning on `go`.
    while (ready.load(std::memory_order_acquire) < producers) std::this_thread::yield();
    start = RatePacer::clock::now();
    go.store(true, std::memory_order_release);  // release: pairs with the threads' acquire
    produce(0);
  }
  for (auto& t : extra) t.join();
  consumer.join();
  result.seconds = std::chrono::duration<double>(end - start).count();
  return result;
}

template <class Queue>
void BM_throughput(benchmark::State& state) {
  const int producers = static_cast<int>(state.range(0));
  const std::size_t max = static_cast<std::size_t>(state.range(1));
  const std::uint64_t per_producer = batch_records / static_cast<std::uint64_t>(producers);
  std::uint64_t received = 0, out_of_order = 0;
  for (auto _ : state) {
    const RunResult r = run_flat_out<Queue>(producers, per_producer, max);
    state.SetIterationTime(r.seconds);
    received += r.received;
    out_of_order += r.out_of_order;
  }
  if (out_of_order) state.SkipWithError("records arrived out of order");
  state.SetItemsProcessed(static_cast<std::int64_t>(received));
  state.SetBytesProcessed(static_cast<std::int64_t>(received * sizeof(Record)));
  state.SetLabel(std::string(max == 1 ? "single pop" : "batch drain 64") +
                 (Pin::available() ? ", pinned" : ", not pinned"));
}

// Args: producers, records per pop.
BENCHMARK_TEMPLATE(BM_throughput, SpscQueue)
    ->Name("BM_SpscRing_throughput")
    ->ArgNames({"producers", "max"})
    ->Args({1, 1})
    ->Args({1, drain_batch})
    ->Iterations(throughput_iterations)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_throughput, MpscQueue)
    ->Name("BM_MpscByteRing_throughput")
    ->ArgNames({"producers", "max"})
    ->Args({1, 1})
    ->Args({1, drain_batch})
    ->Args({2, 1})
    ->Args({2, drain_batch})
    ->Iterations(throughput_iterations)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_throughput, MutexDequeQueue)
    ->Name("BM_Baseline_mutex_deque_throughput")
    ->ArgNames({"producers", "max"})
    ->Args({1, 1})
    ->Args({1, drain_batch})
    ->Args({2, 1})
    ->Iterations(throughput_iterations)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

// ---- latency: fixed rate ---------------------------------------------------------------

// One producer sends `count` records at `rate` per second; the consumer records, for each,
// now - intended send time. Percentiles in ns go to counters.
template <class Queue>
void BM_latency(benchmark::State& state) {
  const double rate = static_cast<double>(state.range(0));
  const std::uint64_t count = static_cast<std::uint64_t>(rate * 0.25);  // 0.25 s per run
  LatencyHistogram histogram;
  std::uint64_t out_of_order = 0;
  for (auto _ : state) {
    Queue queue;
    std::atomic<bool> ready{false}, go{false};
    std::thread consumer([&] {
      Pin pin(1);
      ready.store(true, std::memory_order_release);  // pairs with the acquire below
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      std::uint64_t received = 0, next = 0;
      while (received < count) {
        // Busy-poll: this measures the queue, not a wake-up; one record at a time.
        received += queue.pop(
            [&](const Record& r) {
              histogram.record(static_cast<std::uint64_t>(now_ns() - r.sent_ns));
              out_of_order += r.seq == next ? 0 : 1;
              next = r.seq + 1;
            },
            drain_batch);
      }
    });
    {
      Pin pin(0);
      while (!ready.load(std::memory_order_acquire)) std::this_thread::yield();
      RatePacer pacer(rate, RatePacer::clock::now() + std::chrono::milliseconds(1));
      go.store(true, std::memory_order_release);  // release: pairs with the consumer's acquire
      Record r{0, 0, 1, 2, 3, 0};
      for (std::uint64_t seq = 0; seq < count; ++seq) {
        const auto due = pacer.wait_until_due(seq);
        r.seq = seq;
        r.sent_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(due.time_since_epoch()).count();
        while (!queue.push(r)) {}
      }
    }
    consumer.join();
  }
  if (out_of_order) state.SkipWithError("records arrived out of order");
  state.SetItemsProcessed(static_cast<std::int64_t>(histogram.count()));
  state.counters["p50_ns"] = static_cast<double>(histogram.percentile(50));
  state.counters["p99_ns"] = static_cast<double>(histogram.percentile(99));
  state.counters["p99.9_ns"] = static_cast<double>(histogram.percentile(99.9));
  state.counters["max_ns"] = static_cast<double>(histogram.max());
  state.SetLabel(Pin::available() ? "fixed rate, pinned" : "fixed rate, not pinned");
}

// Arg: records per second.
BENCHMARK_TEMPLATE(BM_latency, SpscQueue)
    ->Name("BM_SpscRing_latency")
    ->ArgName("rate")
    ->Arg(200'000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_latency, MpscQueue)
    ->Name("BM_MpscByteRing_latency")
    ->ArgName("rate")
    ->Arg(200'000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_TEMPLATE(BM_latency, MutexDequeQueue)
    ->Name("BM_Baseline_mutex_deque_latency")
    ->ArgName("rate")
    ->Arg(200'000)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
