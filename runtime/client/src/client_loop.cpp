#include "client_loop.hpp"

#include <pthread.h>

#include <algorithm>
#include <climits>
#include <memory>

namespace brook::client_detail {

namespace {
// token = generation (23 bits) << 33 | slot << 1 | kind: 56 bits, what the reactor carries.
constexpr std::uint64_t generation_mask = (1u << 23) - 1;
// How long the loop polls on after its last work before it sleeps: about what a wake-up
// costs, so a reply that comes sooner is cheaper to wait for than to be woken for. Only with
// four cores or more: the broker's shard polls the same way (broker.idle_spin_us), and on
// two cores a polling client, its peer and the shard fight over them (measured: the round
// trip got slower).
std::chrono::nanoseconds idle_spin_for_this_machine() {
  return std::thread::hardware_concurrency() >= 4 ? std::chrono::microseconds(50)
                                                  : std::chrono::microseconds(0);
}
std::uint64_t token_base(std::uint32_t slot, std::uint32_t generation) {
  return ((generation & generation_mask) << 33) | (std::uint64_t{slot} << 1);
}
thread_local bool running_a_loop = false;
}  // namespace

bool ClientLoop::on_a_loop_thread() noexcept { return running_a_loop; }

ClientLoop::ClientLoop(bool shared, unsigned recv_buffers) : shared_(shared), recv_buffers_(recv_buffers) {}

ClientLoop::~ClientLoop() {
  stop();
  if (!thread_.joinable()) return;
  // The last owner may be the loop thread itself, ending: it cannot wait for itself.
  if (std::this_thread::get_id() == thread_.get_id()) thread_.detach();
  else thread_.join();
}

bool ClientLoop::add(std::shared_ptr<LoopMember> member) {
  {
    std::lock_guard lock(mutex_);
    if (ended_) return false;
    joining_.push_back(std::move(member));
    joining_hint_.store(true, std::memory_order_release);
    member_count_.fetch_add(1, std::memory_order_relaxed);
    if (!started_) {
      started_ = true;
      thread_ = std::thread([self = shared_from_this()] { self->run(); });
      return true;
    }
  }
  wake();
  return true;
}

void ClientLoop::stop() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake();
}

void ClientLoop::wake() {
  // seq_cst: pairs with the end of run(), which waits for the count to fall to zero before
  // the reactor (and its eventfd) goes.
  wakers_.fetch_add(1, std::memory_order_seq_cst);
  if (auto* r = reactor_.load(std::memory_order_seq_cst)) r->wake();
  wakers_.fetch_sub(1, std::memory_order_release);
}

void ClientLoop::join() {
  if (thread_.joinable() && std::this_thread::get_id() != thread_.get_id()) thread_.join();
}

void ClientLoop::take_joiners() {
  std::vector<std::shared_ptr<LoopMember>> joining;
  {
    std::lock_guard lock(mutex_);
    joining.swap(joining_);
    joining_hint_.store(false, std::memory_order_relaxed);
  }
  for (auto& member : joining) {
    std::uint32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
    }
    Slot& s = slots_[slot];
    ++s.generation;
    s.touched = true;
    s.polls = s.spins = false;
    s.member = std::move(member);
    s.member->begin(*reactor_.load(std::memory_order_relaxed), token_base(slot, s.generation));
  }
}

void ClientLoop::run() {
  running_a_loop = true;
  // What `top -H`, /proc/PID/task/*/comm and the tests that count the process's I/O threads see.
  ::pthread_setname_np(::pthread_self(), "brook-client");
  thread_id_.store(std::this_thread::get_id(), std::memory_order_release);
  transport::ReactorOptions ro;
  ro.recv_buffer_count = recv_buffers_;
  ro.recv_buffer_bytes = 65536;
  ro.sq_entries = 256;
  // On the heap, reachable from the loop through reactor_: a child after fork() keeps the
  // loop but not this thread's stack, and its leak checker then still finds the reactor.
  const auto reactor = std::make_unique<transport::Reactor>(ro);
  transport::Reactor& r = *reactor;
  reactor_.store(&r, std::memory_order_release);
  const auto idle_spin = idle_spin_for_this_machine();
  std::chrono::steady_clock::time_point last_active{};
  std::chrono::steady_clock::time_point last_full_look{};
  for (;;) {
    if (joining_hint_.load(std::memory_order_acquire)) take_joiners();
    int timeout = INT_MAX;
    const auto now = std::chrono::steady_clock::now();
    // Polling on a little after work: the answer to what was just sent (a round trip's
    // second half, the next update of a burst) then finds the loop awake.
    bool spin = now - last_active < idle_spin;
    // A producer's flag says some member has calls (acquire: they are visible). The flag is
    // one for all producers, so one may be taken before another's call shows: every member is
    // asked at least once a millisecond too, and always before the loop sleeps (below).
    bool posted = posted_.load(std::memory_order_relaxed) && posted_.exchange(false, std::memory_order_acq_rel);
    if (now - last_full_look >= std::chrono::milliseconds(1)) {
      posted = true;
      last_full_look = now;
    }
    std::size_t live = 0;
    for (std::uint32_t i = 0; i < slots_.size(); ++i) {
      Slot& s = slots_[i];
      if (!s.member) continue;
      ++live;
      spin |= s.spins;
      if (!s.touched && now < s.due && !((posted || s.polls) && s.member->wants_turn())) {
        const auto wait = std::chrono::ceil<std::chrono::milliseconds>(s.due - now).count();
        timeout = std::min<int>(timeout, static_cast<int>(std::min<std::int64_t>(wait, INT_MAX)));
        continue;
      }
      LoopMember& m = s.take();
      if (m.done()) {
        auto gone = std::move(s.member);
        free_slots_.push_back(i);
        member_count_.fetch_sub(1, std::memory_order_relaxed);
        --live;
        LoopMember* member = gone.get();
        member->left(std::move(gone));
        continue;
      }
      const int wait = m.turn();
      if (wait == 0) last_active = now;
      s.touched = false;
      s.polls = m.polls();
      s.spins = m.spins();
      s.due = now + std::chrono::milliseconds(wait);
      timeout = std::min(timeout, wait);
    }
    if (live == 0) {
      std::lock_guard lock(mutex_);
      if (joining_.empty() && (!shared_ || stop_)) {
        ended_ = true;
        break;
      }
    }
    // A member that joined (or was asked to leave) while we looked: another turn at once.
    if (joining_hint_.load(std::memory_order_relaxed)) timeout = 0;
    if (timeout == INT_MAX) timeout = 100;
    if (timeout > 0 && !spin) {
      sleeping_.store(true, std::memory_order_seq_cst);
      // A producer that committed before our store saw the flag clear and did not wake us:
      // look at the members once more (joiners too).
      // Every member, not only those with rings: this is the handshake with the producers'
      // fence that no call committed before the flag went up is left waiting.
      if (joining_hint_.load(std::memory_order_seq_cst) || posted_.load(std::memory_order_seq_cst)) timeout = 0;
      for (Slot& s : slots_)
        if (timeout > 0 && s.member && s.member->has_input()) timeout = 0;
    }
    for (Slot& s : slots_) {
      if (!s.member || s.lent) continue;
      s.member->lend();
      s.lent = true;
    }
    const bool sleep = timeout > 0 && !spin;
    r.wait(sleep ? timeout : 0);
    sleeping_.store(false, std::memory_order_relaxed);
    if (sleep)
      for (Slot& s : slots_)
        if (s.member && s.polls) s.member->after_sleep();
    if (r.process(*this) > 0) last_active = std::chrono::steady_clock::now();
    else if (spin) std::this_thread::yield();
  }
  // seq_cst: pairs with wake(); a caller either sees null or is counted below, and the
  // reactor (with the eventfd it writes) outlives the call.
  reactor_.store(nullptr, std::memory_order_seq_cst);
  while (wakers_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();
}

void ClientLoop::on_completion(const transport::Completion& completion) {
  const auto slot = static_cast<std::uint32_t>((completion.token >> 1) & 0xffffffffu);
  const auto generation = static_cast<std::uint32_t>(completion.token >> 33);
  if (slot >= slots_.size()) return;
  Slot& s = slots_[slot];
  if (!s.member || (s.generation & generation_mask) != generation) return;
  s.touched = true;
  s.take().on_completion(completion, static_cast<unsigned>(completion.token & 1));
}

}  // namespace brook::client_detail
