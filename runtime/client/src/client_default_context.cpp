#include "client_default_context.hpp"

#include <pthread.h>

#include <cstdlib>
#include <mutex>
#include <vector>

namespace brook::client_detail::default_context {

namespace {

// Receive buffers of 64 KiB, shared by the loop's sessions: as many as a Client of its own
// had, so that a process with one session holds no more memory than before the default
// context. A process with many busy sessions may give them a ClientContext (256 buffers).
constexpr unsigned recv_buffers = 64;

struct State {
  std::mutex mutex;
  std::shared_ptr<ClientLoop> loop;  // the latest one, running or ended
  // Loops of the parent process, in a child after fork(): their threads are not in this
  // process, so they are kept, never destroyed.
  std::vector<std::shared_ptr<ClientLoop>> left_by_fork;
};

void join_ended_loop_at_exit();

// Never destroyed (see the header), and made once, with its fork and exit hooks.
State& state() {
  static State* const s = [] {
    auto* made = new State;
    ::pthread_atfork([] { state().mutex.lock(); }, [] { state().mutex.unlock(); },
                     [] {
                       State& child = state();
                       if (child.loop) child.left_by_fork.push_back(std::move(child.loop));
                       child.mutex.unlock();
                     });
    std::atexit(join_ended_loop_at_exit);
    return made;
  }();
  return *s;
}

// A loop without sessions ends by itself: wait for its thread. One that still has sessions
// (Clients never closed, or a static Client whose destructor runs later) is left running.
void join_ended_loop_at_exit() {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (!s.loop || s.loop->members() != 0) return;
  s.loop->join();
  s.loop.reset();
}

}  // namespace

std::shared_ptr<ClientLoop> join(std::shared_ptr<LoopMember> member,
                                 const std::function<void(const std::shared_ptr<ClientLoop>&)>& prepare) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  if (s.loop) {
    prepare(s.loop);
    if (s.loop->add(member)) return s.loop;
    s.loop->join();  // it ended with its last session: its thread is on its way out
  }
  s.loop = std::make_shared<ClientLoop>(false, recv_buffers);
  prepare(s.loop);
  s.loop->add(std::move(member));  // a new loop takes it
  return s.loop;
}

void leave(const std::shared_ptr<ClientLoop>& loop) {
  State& s = state();
  std::lock_guard lock(s.mutex);
  // Sessions join only under the lock: with none left, none can come, and the loop ends.
  if (loop->members() != 0) return;
  loop->join();
  if (s.loop == loop) s.loop.reset();
}

}  // namespace brook::client_detail::default_context
