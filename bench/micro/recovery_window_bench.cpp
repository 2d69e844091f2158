// A session's outbound queue filling its recovery window one small frame per send, as a quiet
// round-trip session does: each step allocates the body from the shard's pool, pushes it,
// gathers, completes and trims. The mean step is the steady cost; worst_step_us is the longest
// single step, the stall every other session of the shard waits through while the window
// grows (before ChunkedRing and lazily carved slabs it was milliseconds).
#include <benchmark/benchmark.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <memory>

#include "../../runtime/broker/src/outbound_queue.hpp"
#include "brook/runtime/shared_buffer.hpp"

namespace {

using brook::runtime::BufferPool;
using brook::runtime::OutboundLimits;
using brook::runtime::OutboundQueue;
using brook::runtime::OutFrame;

void BM_RecoveryWindow_fill_one_frame_per_send(benchmark::State& state) {
  const auto body_bytes = static_cast<std::uint32_t>(state.range(0));
  const std::uint64_t window_bytes = 8ull << 20;  // the default session.recovery_bytes
  // Enough steps to fill the window twice: growth first, then the steady state.
  const std::size_t steps = 2 * window_bytes / (body_bytes + 16);
  double worst_ns = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // A fresh pool and queue per iteration: growth is what is measured.
    auto pool = std::make_unique<BufferPool>();
    BufferPool* previous = BufferPool::thread_pool();
    BufferPool::thread_pool() = pool.get();
    OutboundLimits limits;
    limits.recovery_bytes = window_bytes;
    auto queue = std::make_unique<OutboundQueue>(limits);
    std::array<::iovec, 8> iov{};
    state.ResumeTiming();
    for (std::size_t i = 0; i < steps; ++i) {
      const auto start = std::chrono::steady_clock::now();
      OutFrame f{};
      f.head_bytes = 16;
      f.body = pool->allocate(body_bytes);
      std::memset(f.body->data(), static_cast<int>(i), body_bytes);
      f.body_bytes = body_bytes;
      queue->push(f);
      std::size_t n = queue->gather(iov, *pool);
      std::size_t bytes = 0;
      for (std::size_t k = 0; k < n; ++k) bytes += iov[k].iov_len;
      queue->complete(bytes);
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
      worst_ns = std::max(worst_ns, ns);
    }
    state.PauseTiming();
    queue.reset();
    BufferPool::thread_pool() = previous;
    pool.reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * steps));
  state.counters["worst_step_us"] = worst_ns / 1000;
}
BENCHMARK(BM_RecoveryWindow_fill_one_frame_per_send)->Arg(64)->Arg(1024)->Unit(benchmark::kMillisecond)->Iterations(3);

// The same step once the window is full: every send trims the oldest frame.
void BM_RecoveryWindow_steady_one_frame_per_send(benchmark::State& state) {
  const auto body_bytes = static_cast<std::uint32_t>(state.range(0));
  BufferPool pool;
  BufferPool* previous = BufferPool::thread_pool();
  BufferPool::thread_pool() = &pool;
  {
    OutboundLimits limits;
    limits.recovery_bytes = 8ull << 20;
    OutboundQueue queue(limits);
    std::array<::iovec, 8> iov{};
    auto step = [&](std::size_t i) {
      OutFrame f{};
      f.head_bytes = 16;
      f.body = pool.allocate(body_bytes);
      std::memset(f.body->data(), static_cast<int>(i), body_bytes);
      f.body_bytes = body_bytes;
      queue.push(f);
      std::size_t n = queue.gather(iov, pool);
      std::size_t bytes = 0;
      for (std::size_t k = 0; k < n; ++k) bytes += iov[k].iov_len;
      queue.complete(bytes);
    };
    std::size_t i = 0;
    for (; i < 2 * limits.recovery_bytes / (body_bytes + 16); ++i) step(i);
    for (auto _ : state) step(i++);
  }
  BufferPool::thread_pool() = previous;
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(BM_RecoveryWindow_steady_one_frame_per_send)->Arg(64)->Arg(1024);

}  // namespace
