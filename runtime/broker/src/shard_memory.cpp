// The broker's memory budget (limits.max_memory_bytes), kept without a lock and without a
// cost per message: every millisecond each shard counts what it holds, publishes the count
// in its gauge and sums all the gauges, then acts on its own sessions.
//
//   held = the buffer pool's slabs and large blocks (update bodies queued, retained for
//          recovery or as topic values, send staging, and free blocks not yet given back)
//          + the session queues' rings + the receive buffers
//
// What is counted is what the shard took from the heap, not only what it uses: that is what
// the process's resident memory is made of. Pools give whole free slabs back to the heap
// under pressure and, at most once a second, when what they hold unused is over 8 MiB and
// more than what they use, so that memory a closed session used is returned once the load
// is gone.
//
// A body allocated on one shard and held by another's subscribers counts on the shard that
// allocated it: only the sum means anything, so every shard acts on the broker's total.
//
//   past 55% of the budget   recovery windows shrink, oldest sent frames first: a client
//                            that reconnects then gets current values (resync), not a
//                            replay; pools give their free slabs back
//   past 65%                 the stalled sessions (unsent bytes, and nothing taken for
//                            20 ms) are given the queue-limit policy, the longest stalled
//                            first: drop-oldest + resync, or closed as slow consumers
//   past 85%                 publishes are refused (memory_limit) until the broker is back
//                            under 75%: nothing acknowledged is lost, the publisher is told
//
// The thresholds leave room for what a millisecond of flat-out fan-out adds between checks
// and for what the count leaves out (the allocator's own slack, connection buffers).
//
// Work per check is bounded (frames forgotten, sessions shed), so a check never makes a long
// turn; pressure that persists is worked off over successive checks.
#include <fcntl.h>
#include <mimalloc.h>
#include <unistd.h>

#include <cstdio>

#include <algorithm>
#include <vector>

#include "shard.hpp"

namespace brook::runtime {

namespace {
constexpr std::uint64_t memory_check_period_ns = 1'000'000;
constexpr std::size_t recovery_frames_per_check = 65'536;
constexpr std::size_t sessions_shed_per_check = 4;
// A session with less than this unsent is not "behind": shedding it frees nothing.
constexpr std::uint64_t shed_min_backlog_bytes = 64 * 1024;
// A connection whose peer took nothing for this long is stalled, as of the last time the
// shard had every completion in hand: a send that completed while the shard itself waited
// for a core (or behind a full completion queue) is not a stall.
constexpr std::uint64_t stalled_after_ns = 20'000'000;
// Free slabs go back to the heap every 10 ms under pressure; otherwise 100 ms later, when a
// pool holds more than this unused.
constexpr std::uint64_t pressure_release_period_ns = 10'000'000;
constexpr std::uint64_t idle_release_delay_ns = 990'000'000;
constexpr std::uint64_t spare_input_kept_ns = 1'000'000'000;
constexpr std::uint64_t pool_slack_bytes = 8ull << 20;
// Free blocks a slab release examines per check: about a millisecond of cold reads.
constexpr std::size_t pool_blocks_per_check = 16'384;
// mimalloc is asked to return freed memory when a shard's count fell this much, at most this
// often.
constexpr std::uint64_t collect_after_drop_bytes = 16ull << 20;
constexpr std::uint64_t collect_period_ns = 100'000'000;
// /proc/self/statm is read this often (by shard 0).
constexpr std::uint64_t rss_read_period_ns = 10'000'000;
}  // namespace

std::uint64_t Shard::resident_bytes() {
  if (statm_fd_ < 0) statm_fd_ = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  char text[128];
  const ssize_t n = statm_fd_ < 0 ? -1 : ::pread(statm_fd_, text, sizeof text - 1, 0);
  if (n <= 0) return 0;
  text[n] = '\0';
  unsigned long long size_pages = 0, resident_pages = 0;
  if (std::sscanf(text, "%llu %llu", &size_pages, &resident_pages) != 2) return 0;
  static const long page = ::sysconf(_SC_PAGESIZE);
  return resident_pages * static_cast<std::uint64_t>(page);
}

std::uint64_t Shard::memory_in_use() const noexcept {
  return pool_.heap_bytes() + ring_bytes_total_ +
         std::uint64_t{options_.recv_buffer_count} * options_.recv_buffer_bytes;
}

void Shard::check_memory() {
  const std::uint64_t now = now_ns();
  if (now < next_memory_check_ns_) return;
  next_memory_check_ns_ = now + memory_check_period_ns;
  if (spare_input_.capacity() > 0 &&
      (memory_state_ != MemoryState::normal || now >= spare_input_used_ns_ + spare_input_kept_ns))
    std::vector<std::byte>().swap(spare_input_);
  if (!mesh_.memory_used || mesh_.memory_budget == 0) return;
  // Outside pressure, only slack that outweighs what is in use is given back, and at most
  // once a second: a pool that breathes with the load keeps its slabs (a slab given back and
  // taken again costs 256 page faults).
  const std::uint64_t unused = pool_.heap_bytes() - std::min(pool_.heap_bytes(), pool_.in_use_bytes());
  const bool idle_slack = unused > pool_slack_bytes && unused > pool_.in_use_bytes();
  if (pool_.sweeping()) {
    pool_.release_free_slabs(pool_blocks_per_check);  // a release under way goes on
  } else if ((memory_state_ != MemoryState::normal && now >= next_pool_release_ns_) ||
             (idle_slack && now >= next_pool_release_ns_ + idle_release_delay_ns)) {
    pool_.release_free_slabs(pool_blocks_per_check);
    next_pool_release_ns_ = now + pressure_release_period_ns;
  }
  const std::uint64_t held = memory_in_use();
  // What this thread freed (rings, slabs, sessions) stays in mimalloc's pages until it
  // collects them: once the shard holds much less than when it last collected, it does, so
  // that the memory goes back to the system and not only to the allocator.
  if (held + collect_after_drop_bytes < held_at_collect_ && now >= next_collect_ns_) {
    mi_collect(true);
    held_at_collect_ = held;
    next_collect_ns_ = now + collect_period_ns;
  }
  held_at_collect_ = std::max(held_at_collect_, held);
  mesh_.memory_used[index_].bytes.store(held, std::memory_order_relaxed);
  std::uint64_t used = 0;
  for (unsigned i = 0; i < mesh_.shard_count; ++i)
    used += mesh_.memory_used[i].bytes.load(std::memory_order_relaxed);
  // The process's resident memory is the floor: it also holds what no count sees (the
  // allocator's freed pages not yet returned, connection buffers). Shard 0 reads it.
  if (index_ == 0 && now >= next_rss_read_ns_) {
    mesh_.process_rss.bytes.store(resident_bytes(), std::memory_order_relaxed);
    next_rss_read_ns_ = now + rss_read_period_ns;
  }
  used = std::max(used, mesh_.process_rss.bytes.load(std::memory_order_relaxed));
  broker_memory_used_ = used;
  const std::uint64_t budget = mesh_.memory_budget;
  const bool was_refusing = memory_state_ == MemoryState::refusing;
  const std::uint64_t percent = budget / 100;
  if (used >= percent * 85 || (was_refusing && used >= percent * 75)) memory_state_ = MemoryState::refusing;
  else if (used >= percent * 65) memory_state_ = MemoryState::shedding;
  else if (used >= percent * 55) memory_state_ = MemoryState::pressure;
  else memory_state_ = MemoryState::normal;
  if (memory_state_ == MemoryState::normal) return;

  // Recovery windows first: sent frames only serve a reconnect.
  std::size_t budget_frames = recovery_frames_per_check;
  for (auto& owned : sessions_) {
    if (budget_frames == 0) break;
    Session* s = owned.get();
    if (!s || s->ended || s->out.retained_frames() == 0) continue;
    const std::size_t forgotten = s->out.forget_retained(budget_frames);
    budget_frames -= forgotten;
    counters_.recovery_trimmed += forgotten;
  }
  // Rings keep their high-water mark: give back the chunks nothing lives in any more.
  for (auto& owned : sessions_)
    if (Session* s = owned.get()) s->out.release_unused_ring();
  if (memory_state_ != MemoryState::pressure) shed_longest_stalled(sessions_shed_per_check);
}

void Shard::shed_longest_stalled(std::size_t max_sessions) {
  // Behind: a backlog, and nobody taking it (disconnected, or its peer took nothing for a
  // while). A session whose connection still takes what it is sent is slow, not stalled:
  // flow control's business, never shed. The longest stalled go first (a disconnected one
  // before any).
  const std::uint64_t seen = completions_seen_ns_;
  struct Stalled {
    Session* session;
    std::uint64_t stalled_ns;
  };
  std::vector<Stalled> behind;
  for (auto& owned : sessions_) {
    Session* s = owned.get();
    if (!s || s->ended || s->out.bytes() < shed_min_backlog_bytes) continue;
    const Connection* c = s->connection;
    const std::uint64_t stalled_ns = c ? seen - std::min(seen, c->last_sent_ns) : UINT64_MAX;
    if (stalled_ns >= stalled_after_ns) behind.push_back({s, stalled_ns});
  }
  if (behind.empty()) return;
  const std::size_t n = std::min(max_sessions, behind.size());
  std::partial_sort(behind.begin(), behind.begin() + static_cast<std::ptrdiff_t>(n), behind.end(),
                    [](const Stalled& a, const Stalled& b) { return a.stalled_ns > b.stalled_ns; });
  const std::string why = "memory limit: the broker holds " + std::to_string(broker_memory_used_ >> 20) +
                          " MiB of its " + std::to_string(mesh_.memory_budget >> 20) +
                          " MiB budget (limits.max_memory_bytes), and this session had stalled longest";
  for (std::size_t i = 0; i < n; ++i) {
    ++counters_.memory_sheds;
    apply_queue_limit_policy(*behind[i].session, why);
  }
}

}  // namespace brook::runtime
