#pragma once
// The client's I/O thread: one io_uring for every session on it. A ClientContext shares one
// loop between many Clients; a Client made without one runs on the process's default loop
// (client_default_context.hpp), or on a loop of its own with ClientOptions::own_thread. Every
// loop's thread is named "brook-client".
//
// Threads: everything here runs on the loop thread, except add() and wake() (any thread) and
// the constructor and destructor (the owner's). A member's completions carry its slot and
// generation in their token, so a late completion never reaches a member that has left.
//
// Each turn the loop asks the members that have something to do (a completion came, a call
// is waiting, or the time they asked for is up) to do it (turn(), which says how long it
// may then wait), waits once for all of them and hands out the completions. A member the
// loop is not working on has lent its send state (callers may then write to its socket
// directly); the loop takes it back before touching the member, also when a callback of
// another member calls into this one's full outbox (the member makes room itself then, since
// the loop cannot wait for itself). A member is asked whether it has work (wants_turn) when
// a producer said some member has (posted()), when it has a ring to poll, and at least once
// a millisecond; every member is asked before the loop sleeps (has_input): with a thousand
// sessions, asking each at every turn was a fifth of a fan-out's client thread.
// A member that has closed and has nothing in flight says done() and leaves.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "brook/transport/reactor.hpp"

namespace brook::client_detail {

class LoopMember {
 public:
  virtual ~LoopMember() = default;
  // Once, when the member joins; `token_base` | 0 and | 1 are its completion tokens.
  virtual void begin(transport::Reactor& reactor, std::uint64_t token_base) = 0;
  // Its work for this turn; returns the longest the loop may sleep for it (ms, 0: now).
  virtual int turn() = 0;
  // Cheap, any time: work is waiting that the loop would not otherwise see (calls in its
  // outbox, a caller's unfinished direct send, a shared-memory ring to poll).
  virtual bool wants_turn() = 0;
  // After the loop said it may sleep (sleeping() is set): true if work arrived meanwhile (a
  // call committed before the flag was up did not wake the loop).
  virtual bool has_input() = 0;
  // The send state: lent to callers while the loop is not working on the member.
  virtual void lend() = 0;
  virtual void take_back() = 0;
  // The loop slept (and woke).
  virtual void after_sleep() = 0;
  // A completion of one of its operations; `kind` is the token's low bit.
  virtual void on_completion(const transport::Completion& completion, unsigned kind) = 0;
  // Closed, and nothing of it in flight: it leaves the loop.
  virtual bool done() = 0;
  // After it left, on the loop thread, with the loop's reference to it, which it drops.
  virtual void left(std::shared_ptr<LoopMember> self) = 0;
  // Busy-poll instead of sleeping (ClientOptions::spin).
  virtual bool spins() const = 0;
  // Has work no completion and no producer announces (a shared-memory ring to read): asked
  // whether it wants a turn at every turn of the loop. Read after each of its turns.
  virtual bool polls() const = 0;
};

class ClientLoop final : transport::ReactorHandler, public std::enable_shared_from_this<ClientLoop> {
 public:
  // `shared`: a context's loop, which runs until destroyed; otherwise the loop ends with its
  // last member.
  ClientLoop(bool shared, unsigned recv_buffers);
  ~ClientLoop();
  ClientLoop(const ClientLoop&) = delete;
  ClientLoop& operator=(const ClientLoop&) = delete;

  // Any thread: the member joins at the loop's next turn (the thread starts on the first).
  // The loop is owned by shared_ptr: its thread holds it while it runs. False, and the member
  // is not taken, once the loop has ended (or is ending): its context is gone, or it was not
  // shared and its last member left.
  bool add(std::shared_ptr<LoopMember> member);
  // Any thread: a shared loop ends once it has no member left (its context is gone).
  void stop();
  // Any thread: the loop runs a turn soon.
  void wake();
  // A producer's handshake with the sleeping loop (seq_cst, as in the broker's shards).
  std::atomic<bool>& sleeping() noexcept { return sleeping_; }
  // Set (before the producer's seq_cst fence, or on the loop thread) when a member has work
  // the loop learns of from no completion: a call in its outbox, a call another member's
  // callback drained, its send state left to the loop. The loop then asks every member.
  std::atomic<bool>& posted() noexcept { return posted_; }
  // The loop's thread (default-constructed until it started).
  std::thread::id thread_id() const noexcept { return thread_id_.load(std::memory_order_acquire); }
  // The loop's reactor, for wake-ups from other threads; null once the loop has ended.
  std::atomic<transport::Reactor*>& reactor() noexcept { return reactor_; }
  // Waits for the loop's thread to end (a private loop ends when its member left); nothing
  // on the loop thread itself.
  void join();
  std::size_t members() const noexcept { return member_count_.load(std::memory_order_relaxed); }
  // Whether the calling thread is a loop's (any loop's): it must never wait for a loop.
  static bool on_a_loop_thread() noexcept;

 private:
  struct Slot {
    std::shared_ptr<LoopMember> member;
    std::uint32_t generation = 0;
    bool lent = false;     // its send state is with the callers
    bool touched = true;   // a completion came (or it just joined): it takes a turn
    bool polls = false;    // its member->polls(), as of its last turn
    bool spins = false;    // its member->spins(), as of its last turn
    std::chrono::steady_clock::time_point due{};  // the time it asked to be looked at again
    LoopMember& take() {   // before the loop works on the member
      if (lent) member->take_back();
      lent = false;
      return *member;
    }
  };
  void run();
  void take_joiners();
  void on_completion(const transport::Completion& completion) override;

  const bool shared_;
  const unsigned recv_buffers_;
  std::thread thread_;
  std::mutex mutex_;  // guards joining_, started_, stop_, ended_
  std::vector<std::shared_ptr<LoopMember>> joining_;
  bool started_ = false;
  bool stop_ = false;
  bool ended_ = false;
  std::atomic<bool> joining_hint_{false};
  std::atomic<bool> sleeping_{false};
  std::atomic<bool> posted_{false};
  std::atomic<std::thread::id> thread_id_{};
  std::atomic<transport::Reactor*> reactor_{nullptr};
  std::atomic<int> wakers_{0};
  std::atomic<std::size_t> member_count_{0};
  // Loop thread only.
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_slots_;
};

}  // namespace brook::client_detail
