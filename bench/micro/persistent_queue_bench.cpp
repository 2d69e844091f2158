// Micro-benchmarks of PersistentQueue, the client's sent frames kept in a file: appending
// 64 B and 1 KiB frames under each fsync policy (never, batch every 10 ms, always), and
// reading back a queue of 100k unconfirmed frames (open, check every record, iterate).
// Baseline in the same run: a bare pwrite of the same number of bytes at the end of a file,
// without and with an fdatasync after each, the least any append-to-file scheme pays.
//
// Files live in a fresh directory under /tmp (a real disk here, not tmpfs: fdatasync must mean
// something). Appends report p50/p99/p99.9/max of each call from a LatencyHistogram (two clock
// reads per call are included). Every run has a fixed iteration count: `always` is bound by
// the disk's flush latency, and the whole file must stay short on a small machine.
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../../runtime/client/src/persistent_queue.hpp"
#include "brook/runtime/latency_histogram.hpp"

namespace {

using brook::client_detail::FsyncPolicy;
using brook::client_detail::PersistentQueue;
using brook::client_detail::PersistentQueueOptions;
using brook::runtime::LatencyHistogram;

constexpr std::size_t record_header_bytes = 17;  // what the queue adds to each frame
constexpr std::uint64_t read_back_frames = 100'000;
const char* const policy_names[] = {"never", "batch", "always"};

// A fresh directory under /tmp, removed with its files when the benchmark ends.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/brook-queue-bench-XXXXXX";
    if (::mkdtemp(pattern) == nullptr) std::abort();
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  std::string directory() const { return path_.string(); }
  std::string file(const char* name = "queue") const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Writes back the file system's dirty pages before a run: ext4 commits its journal for every
// file at once, so an fdatasync would otherwise also wait for the runs before it.
void settle_file_system(const TempDir& dir) {
  const int fd = ::open(dir.directory().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) std::abort();
  ::syncfs(fd);
  ::close(fd);
}

void report_percentiles(benchmark::State& state, const LatencyHistogram& histogram) {
  state.counters["p50_ns"] = static_cast<double>(histogram.percentile(50));
  state.counters["p99_ns"] = static_cast<double>(histogram.percentile(99));
  state.counters["p99.9_ns"] = static_cast<double>(histogram.percentile(99.9));
  state.counters["max_ns"] = static_cast<double>(histogram.max());
}

std::unique_ptr<PersistentQueue> open_or_abort(const std::string& path, FsyncPolicy policy) {
  PersistentQueueOptions options;
  options.fsync = policy;
  std::string error;
  auto queue = PersistentQueue::open(path, options, error);
  if (!queue) {
    std::fprintf(stderr, "%s\n", error.c_str());
    std::abort();
  }
  return queue;
}

// ---- append --------------------------------------------------------------------------------

// Args: policy (0 never, 1 batch, 2 always), frame bytes. Nothing is confirmed: the file only
// grows, as it does while the broker is away.
void BM_PersistentQueue_append(benchmark::State& state) {
  const auto policy = static_cast<FsyncPolicy>(state.range(0));
  const std::vector<std::byte> frame(static_cast<std::size_t>(state.range(1)), std::byte{0x5A});
  TempDir dir;
  auto queue = open_or_abort(dir.file(), policy);
  settle_file_system(dir);
  LatencyHistogram histogram;
  for (auto _ : state) {
    const std::int64_t start = now_ns();
    if (queue->append(frame) == 0) {
      state.SkipWithError(queue->error().c_str());
      break;
    }
    histogram.record(static_cast<std::uint64_t>(now_ns() - start));
  }
  queue->sync();
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(1));
  state.SetLabel(policy_names[state.range(0)]);
  report_percentiles(state, histogram);
}
BENCHMARK(BM_PersistentQueue_append)
    ->Args({0, 64})->Args({0, 1024})->Iterations(50'000);
BENCHMARK(BM_PersistentQueue_append)
    ->Args({1, 64})->Args({1, 1024})->Iterations(50'000);
BENCHMARK(BM_PersistentQueue_append)
    ->Args({2, 64})->Args({2, 1024})->Iterations(2'000);

// Args: fdatasync after each write (0 no, 1 yes), frame bytes. Writes as many bytes as the
// queue's record for that frame.
void BM_Baseline_pwrite_append(benchmark::State& state) {
  const bool sync_each = state.range(0) != 0;
  const auto record_bytes = record_header_bytes + static_cast<std::size_t>(state.range(1));
  const std::vector<std::byte> record(record_bytes, std::byte{0x5A});
  TempDir dir;
  const int fd = ::open(dir.file("baseline").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) std::abort();
  settle_file_system(dir);
  std::uint64_t offset = 0;
  LatencyHistogram histogram;
  for (auto _ : state) {
    const std::int64_t start = now_ns();
    if (::pwrite(fd, record.data(), record.size(), static_cast<off_t>(offset)) !=
            static_cast<ssize_t>(record.size()) ||
        (sync_each && ::fdatasync(fd) != 0)) {
      state.SkipWithError("pwrite or fdatasync failed");
      break;
    }
    histogram.record(static_cast<std::uint64_t>(now_ns() - start));
    offset += record.size();
  }
  ::close(fd);
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * state.range(1));
  state.SetLabel(sync_each ? "fdatasync each" : "no sync");
  report_percentiles(state, histogram);
}
BENCHMARK(BM_Baseline_pwrite_append)->Args({0, 64})->Args({0, 1024})->Iterations(50'000);
BENCHMARK(BM_Baseline_pwrite_append)->Args({1, 64})->Args({1, 1024})->Iterations(2'000);

// ---- read back -----------------------------------------------------------------------------

// Arg: frame bytes. The file (100k pending frames) is written once, outside the timing; each
// iteration is what a restarted publisher does: open (read and check every record) and hand
// every pending frame on. The file stays in the page cache, as it does after a kill -9.
void BM_PersistentQueue_read_back(benchmark::State& state) {
  const std::vector<std::byte> frame(static_cast<std::size_t>(state.range(0)), std::byte{0x5A});
  TempDir dir;
  {
    auto queue = open_or_abort(dir.file(), FsyncPolicy::never);
    for (std::uint64_t i = 0; i < read_back_frames; ++i)
      if (queue->append(frame) == 0) std::abort();
  }
  for (auto _ : state) {
    auto queue = open_or_abort(dir.file(), FsyncPolicy::never);
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
    queue->for_each_pending([&](std::uint64_t, std::span<const std::byte> pending) {
      ++frames;
      bytes += pending.size();
      return true;
    });
    if (frames != read_back_frames) state.SkipWithError("frames missing");
    benchmark::DoNotOptimize(bytes);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(read_back_frames));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(read_back_frames) *
                          state.range(0));
  state.counters["frames"] = static_cast<double>(read_back_frames);
}
BENCHMARK(BM_PersistentQueue_read_back)
    ->Arg(64)->Arg(1024)->Iterations(10)->Unit(benchmark::kMillisecond);

}  // namespace
