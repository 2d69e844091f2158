#pragma once
// The send state, the callers' side: reserving room in the client's queue while not
// connected, claiming and committing an outbox record, waking the client thread, and the
// direct send a caller may make while that thread sleeps with the send state lent to callers.
// Inline, as when all of Client::Impl was one file, since every publish runs it;
// client_send.cpp holds the client thread's side.
//
// Threads: the callers', any number at once; the loop's thread too when a handler it runs
// makes a call, into its own session or another on the same loop (claim() then makes room
// itself rather than wait for itself: client_send.cpp, make_room_on_loop()).
#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include "client_impl.hpp"

namespace brook {

namespace client_detail {

// A call that follows the previous one sooner than this is part of a burst: it goes through
// the outbox, gathered with the others into one send, rather than a syscall of its own.
constexpr std::int64_t burst_gap_ns = 20'000;

}  // namespace client_detail

// Caller side: a call made while the client is not connected takes room in the queue.
// `queued` says whether it did (the record is then marked, and the client thread gives
// the room back once the call went out). A call seen as connected does not count, even if
// the connection drops before the client thread takes it: the bound is the callers'.
inline Status Client::Impl::reserve(std::size_t bytes, bool& queued) {
  queued = false;
  const ClientState s = state.load(std::memory_order_acquire);
  if (s == ClientState::connected) return Status::ok();
  if (s == ClientState::closed || finished.load(std::memory_order_acquire) || close_when_flushed_hint.load(std::memory_order_relaxed))
    return client_detail::error_status(ErrorCode::not_connected, "the client is closed");
  const std::int64_t max_entries = queue_entries_limit.load(std::memory_order_relaxed);
  const std::int64_t max_bytes = queue_bytes_limit.load(std::memory_order_relaxed);
  if (max_entries == 0 || max_bytes == 0)
    return client_detail::error_status(ErrorCode::not_connected,
                        std::string("not connected (") + std::string(to_string(s)) +
                            ") and the client's queue is off (queue_entries or queue_bytes 0)");
  const auto size = static_cast<std::int64_t>(bytes);
  const std::int64_t entries = queue_entries_used.fetch_add(1, std::memory_order_relaxed) + 1;
  const std::int64_t total = queue_bytes_used.fetch_add(size, std::memory_order_relaxed) + size;
  if ((max_entries >= 0 && entries > max_entries) || (max_bytes >= 0 && total > max_bytes)) {
    queue_entries_used.fetch_sub(1, std::memory_order_relaxed);
    queue_bytes_used.fetch_sub(size, std::memory_order_relaxed);
    return client_detail::error_status(ErrorCode::queue_full,
                        "the client's queue is full: " + std::to_string(entries - 1) + " calls, " +
                            std::to_string(total - size) + " bytes wait for a connection (limits: " +
                            std::to_string(max_entries) + " calls, " + std::to_string(max_bytes) +
                            " bytes; -1 is none)");
  }
  queued = true;
  return Status::ok();
}

// Producer side: claims a record, waiting while the ring is full (back-pressure on a
// caller that outruns the network). On the session's loop thread it drains the ring instead
// of waiting for itself. Empty when it gives up (no_room()).
inline transport::MpscByteRing::Claim Client::Impl::claim(std::size_t bytes) {
  for (;;) {
    const std::uint64_t consumed = outbox.consumed();
    if (auto c = outbox.try_claim(bytes)) return c;
    if (!wait_for_room(consumed)) return {};
  }
}

inline void Client::Impl::committed() {
  // Release, after the commit: a loop that takes the flag sees the call. Every time, not only
  // when clear: a flag another producer set may be taken before this call is visible.
  work_posted->store(true, std::memory_order_release);
  // seq_cst: pairs with the store of `sleeping` in run(); one of us sees the other.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  // Only the producer that finds the client asleep and clears the flag writes the eventfd:
  // one wake-up per sleep, not one per call until the client thread gets a core.
  if (sleeping->load(std::memory_order_relaxed) &&
      sleeping->exchange(false, std::memory_order_relaxed))
    wake_client();
}

inline void Client::Impl::wake_client() {
  work_posted->store(true, std::memory_order_relaxed);  // ordered by the eventfd it writes
  // seq_cst: pairs with the end of run(), which waits for the count to fall to zero.
  wakers.fetch_add(1, std::memory_order_seq_cst);
  if (auto* r = reactor.load(std::memory_order_seq_cst)) r->wake();
  wakers.fetch_sub(1, std::memory_order_release);
}

// Caller side: writes one session frame of `bytes` (filled in by `fill`) to the socket or
// ring from the caller's own thread, when the client thread is asleep with nothing in hand:
// one thread hand-off fewer per call. False when the call must go through the outbox (the
// client thread is awake, the call is part of a burst, the connection is not plainly up, or
// something sent earlier is still waiting), which keeps each thread's calls in order.
template <class Fill>
bool Client::Impl::send_directly(std::size_t bytes, Fill&& fill) {
  if (!options.send_from_caller || state.load(std::memory_order_acquire) != ClientState::connected) return false;
  std::uint8_t owner = send_state_owner.load(std::memory_order_relaxed);
  if (owner != send_state_lent ||
      !send_state_owner.compare_exchange_strong(owner, send_state_held, std::memory_order_acquire))
    return false;
  const auto now = static_cast<std::int64_t>(client_detail::now_ns());
  const bool isolated = now - last_call_ns >= client_detail::burst_gap_ns;
  last_call_ns = now;
  bool taken = false, rest_waits = false;
  if (isolated && live() && !closing && !close_when_flushed && !queue_file && fd >= 0 && !send_in_flight &&
      !shm_waiting_space && !unsent() && outbox.empty_hint()) {
    try {
      out.resize(bytes);
      fill(out.data());
      sent_log.append(out);
      log_all_queued();  // in `out`, written here
    } catch (...) {
      // Out of memory: nothing was logged or sent. The state goes back to the client
      // thread as it was (which would otherwise wait for it forever), and the call fails.
      out.clear();
      release_send_state(send_state_left);
      wake_client();
      throw;
    }
    rest_waits = !write_out_directly();
    taken = true;
    calls_sent_by_caller.store(calls_sent_by_caller.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // Queued (or partly written): the client thread will be woken to send it, and takes the
  // send state back first; until then no other caller need try.
  const bool done = taken && !rest_waits;
  release_send_state(done ? send_state_lent : send_state_left);
  if (rest_waits) wake_client();
  return taken;
}

// Caller side: hands the send state on (`lent` for the next caller, `left` for the client
// thread), waking the client thread if it fell asleep waiting for it.
inline void Client::Impl::release_send_state(std::uint8_t to) {
  send_state_owner.store(to, std::memory_order_seq_cst);
  if (client_waits_for_send_state.load(std::memory_order_seq_cst)) send_state_owner.notify_one();
}

// Persistent queue, caller side: the frame (written by `fill` at the pointer it is given)
// goes to the file and into the outbox in one hold of the lock. Waits for outbox room
// without holding it.
template <class Fill>
Status Client::Impl::submit_persisted_frame(std::size_t frame_bytes, bool queued, Fill&& fill) {
  for (;;) {
    const std::uint64_t consumed = outbox.consumed();
    {
      std::lock_guard lock(queue_file_mutex);
      if (auto c = outbox.try_claim(sizeof(std::uint64_t) + frame_bytes)) {
        std::byte* frame = c.payload + sizeof(std::uint64_t);
        fill(frame);
        const std::uint64_t record = queue_file->append({frame, frame_bytes});
        if (record == 0) {
          transport::MpscByteRing::commit(c, client_detail::record_void);
          committed();
          return client_detail::error_status(ErrorCode::internal,
                                             "the persistent queue refused the call: " + queue_file->error());
        }
        std::memcpy(c.payload, &record, sizeof record);
        transport::MpscByteRing::commit(c, queued ? client_detail::record_persisted_queued_frame
                                                  : client_detail::record_persisted_frame);
        committed();
        return Status::ok();
      }
    }
    if (!wait_for_room(consumed)) return no_room();
  }
}

}  // namespace brook
