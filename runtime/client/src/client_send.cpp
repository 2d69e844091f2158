// The send state, the client thread's side. Every call becomes one record in the outbox (a
// frame, or a Command the thread adopts), so that the calls of one thread reach the broker in
// order; the client thread drains it into `out`, writes `out` with one gathered send at a
// time, and keeps each session frame in the recovery log (SentLog) until the broker confirms
// it. A call made while not connected takes room in the client's queue until a connection
// carries it; with a persistent queue every frame is in its file too, confirmed there as the
// broker confirms it.
//
// Threads: callers claim and commit records (client_send.hpp) and, while the client thread
// waits in its reactor, may take the send state for one direct send (send_state_owner: lent,
// held, left); the client thread takes it back before it touches the session (its loop's
// lend()/take_back()), then drains, sends and confirms. connect() opens the persistent queue
// on the caller's thread, before the loop has the session.
#include "client_send.hpp"
#include "futex.hpp"

#include <sys/socket.h>

#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <variant>

namespace brook {

using client_detail::Command;
using client_detail::error_status;
using client_detail::now_ns;
using client_detail::record_frame;
using client_detail::record_command;
using client_detail::record_queued_frame;
using client_detail::record_persisted_frame;
using client_detail::record_persisted_queued_frame;
using client_detail::record_void;

// The outbox is full: on the session's loop thread, make room (a loop never waits for itself);
// elsewhere wake the loop and sleep until its next drain (made_room). False (no_room() says
// why) once the session is over, or where waiting could never end: on a loop's thread, for a
// session that has not started (it may be about to join this very loop), or inside the drain
// that makes room.
// A flat-out publisher fills the outbox whenever the loop is busy elsewhere: polling with a
// 20 us sleep (70 us with the kernel's timer slack) left it asleep a third of the time while
// the room it waited for was long made.
bool Client::Impl::wait_for_room(std::uint64_t consumed_before) {
  if (finished.load(std::memory_order_acquire)) return false;
  if (on_client_thread()) return make_room_on_loop();
  if (client_detail::ClientLoop::on_a_loop_thread() && !begun()) return false;
  outbox_waits.fetch_add(1, std::memory_order_relaxed);
  wake_client();
  // seq_cst, with the fence in made_room(): either the drain sees this waiter, or this
  // waiter sees the drain's new consumed() and tries again at once.
  room_waiters.fetch_add(1, std::memory_order_seq_cst);
  const std::uint32_t seen = room_made.load(std::memory_order_seq_cst);
  // The limit is a safety net (a session that starts late drains and wakes as any other).
  if (outbox.consumed() == consumed_before && !finished.load(std::memory_order_acquire))
    client_detail::futex_wait_for(room_made, seen, std::chrono::milliseconds(1));
  room_waiters.fetch_sub(1, std::memory_order_relaxed);
  return true;
}

// After a drain that freed outbox space: wakes the callers waiting for it, if any.
void Client::Impl::made_room() {
  // seq_cst: pairs with wait_for_room()'s count; the drain's release of the space is before.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (room_waiters.load(std::memory_order_relaxed) != 0) wake_room_waiters();
}

void Client::Impl::wake_room_waiters() {
  room_made.fetch_add(1, std::memory_order_seq_cst);
  client_detail::futex_wake_all(room_made);
}

// Loop thread, from a callback: a call into this session's full outbox, made by the session's
// own handler or by another session's on the same loop, which the loop may be lending this
// session's send state to a caller meanwhile: it waits for that caller's write to end (take_back)
// and keeps the state until the session's next turn, so that no direct send overtakes what it
// drains here. The commands drained wait in `deferred` for that turn: none of this session's
// handlers runs inside another's, nor its tables change under a dispatch.
bool Client::Impl::make_room_on_loop() {
  if (draining) return false;
  take_back();
  const bool was_deferring = deferring;
  deferring = true;
  drain_outbox(SIZE_MAX);
  deferring = was_deferring;
  drained_outside_turn = true;
  work_posted->store(true, std::memory_order_relaxed);  // the loop asks this member too
  return true;
}

Status Client::Impl::no_room() const {
  if (finished.load(std::memory_order_acquire)) return error_status(ErrorCode::not_connected, "the client is closed");
  return error_status(ErrorCode::back_pressured,
                      "the client's outbox is full, and this call was made on a client thread that cannot "
                      "wait for room (for a session that has not started yet, or inside the drain that "
                      "makes room)");
}

// The calls set aside while deferring, in order; what they drain meanwhile goes behind them.
void Client::Impl::run_deferred() {
  const bool was_deferring = deferring;
  deferring = true;
  // By index: a handler run here may append (the Commands themselves never move).
  for (std::size_t i = 0; i < deferred.size(); ++i) handle(std::move(*deferred[i]));
  deferred.clear();
  deferring = was_deferring;
}

// Takes room in the client's queue for command `c` of about `bytes` (when not connected);
// a refusal travels to the call's handler on the client thread, like any other answer.
bool Client::Impl::reserve_for(Command& c, std::size_t bytes) {
  Status s = reserve(bytes, c.queued);
  c.queued_bytes = bytes;
  if (!s) c.refused = std::move(s);
  return !c.refused;
}

void Client::Impl::submit(Command&& command) {
  if (command.kind == Command::Kind::frame && command.frame.size() <= outbox.max_payload()) {
    submit_frame(command.frame);
    return;
  }
  auto* heap = new Command(std::move(command));
  auto c = claim(sizeof heap);
  if (!c) {
    fail_command(*heap, no_room());
    delete heap;
    return;
  }
  std::memcpy(c.payload, &heap, sizeof heap);
  transport::MpscByteRing::commit(c, record_command);
  committed();
}

void Client::Impl::submit_frame(std::span<const std::byte> frame) {
  auto c = claim(frame.size());
  if (!c) return;
  std::memcpy(c.payload, frame.data(), frame.size());
  transport::MpscByteRing::commit(c, record_frame);
  committed();
}

// The same for a call that travels as a Command (an acknowledged one, or a frame larger
// than an outbox record).
Status Client::Impl::submit_persisted_command(Command&& command) {
  auto* heap = new Command(std::move(command));
  for (;;) {
    const std::uint64_t consumed = outbox.consumed();
    {
      std::lock_guard lock(queue_file_mutex);
      if (auto c = outbox.try_claim(sizeof heap)) {
        heap->record = queue_file->append(heap->frame);
        if (heap->record == 0 && !heap->refused)
          heap->refused = error_status(ErrorCode::internal, "the persistent queue refused the call: " + queue_file->error());
        // Read before the commit: from then on the client thread owns the command and may
        // already have deleted it.
        Status result = heap->refused ? *heap->refused : Status::ok();
        std::memcpy(c.payload, &heap, sizeof heap);
        transport::MpscByteRing::commit(c, record_command);
        committed();
        return result;
      }
    }
    if (!wait_for_room(consumed)) {
      Status refused = no_room();
      fail_command(*heap, refused);
      delete heap;
      return refused;
    }
  }
}

// Writes `out` without blocking; what the socket or ring does not take now stays in `out`
// for the client thread (and an error is left for its own send to meet). True: all written.
bool Client::Impl::write_out_directly() {
  std::size_t written = 0;
  if (shm) {
    written = shm->to_broker.write(out);
    if (written > 0 && shm->to_broker.publish()) shm->ring_broker();
  } else {
    const ssize_t n = ::send(fd, out.data(), out.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) written = static_cast<std::size_t>(n);
  }
  out.erase(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(written));
  if (!out.empty()) return false;
  sent_log.trim(sent_log.last());
  return true;
}

// Client thread: lets callers send directly while it waits (`drained`: it just took calls
// from the outbox, so the next one may still be part of their burst), and takes it back.
void Client::Impl::lend_send_state(bool drained) {
  if (drained) last_call_ns = static_cast<std::int64_t>(now_ns());
  send_state_owner.store(send_state_lent, std::memory_order_release);
}

void Client::Impl::take_back_send_state() {
  // A caller holds it for one non-blocking write: spin briefly. Past that the caller was
  // preempted mid-write, and a thread that yield-spun here kept it from the core it needed
  // to finish (on two cores the caller then waited out a whole tick, 4 ms): sleep until
  // it lets go instead (release_send_state wakes us).
  for (int tries = 0;; ++tries) {
    std::uint8_t owner = send_state_owner.load(std::memory_order_relaxed);
    if (owner != send_state_held &&
        send_state_owner.compare_exchange_strong(owner, send_state_held, std::memory_order_acquire))
      return;
    if (tries < 64) continue;
    // seq_cst, with release_send_state's: either it sees us waiting, or we see it released.
    client_waits_for_send_state.store(true, std::memory_order_seq_cst);
    if (send_state_owner.load(std::memory_order_seq_cst) == send_state_held)
      send_state_owner.wait(send_state_held, std::memory_order_relaxed);
    client_waits_for_send_state.store(false, std::memory_order_relaxed);
  }
}

// Consumer side: moves frame records into `out` and runs command records, in order.
std::size_t Client::Impl::drain_outbox(std::size_t max) {
  draining = true;
  const std::uint64_t consumed = outbox.consumed();
  const std::size_t drained = outbox.drain(
      [&](std::uint32_t kind, std::span<const std::byte> payload) {
        if (kind == record_void) return;
        calls_handed_over.store(calls_handed_over.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
        if (kind == record_frame || kind == record_queued_frame || kind == record_persisted_frame ||
            kind == record_persisted_queued_frame) {
          std::uint64_t record = 0;
          if (kind == record_persisted_frame || kind == record_persisted_queued_frame) {
            std::memcpy(&record, payload.data(), sizeof record);
            payload = payload.subspan(sizeof record);
          }
          if (!deferred.empty()) {
            // A command ahead of this frame waits (for the dispatch to end, or the turn): so
            // does the frame, or a thread's calls would reach the broker out of order.
            auto frame = std::make_unique<Command>();
            frame->kind = Command::Kind::frame;
            frame->frame.assign(payload.begin(), payload.end());
            frame->record = record;
            frame->queued = kind == record_queued_frame || kind == record_persisted_queued_frame;
            frame->queued_bytes = payload.size();
            deferred.push_back(std::move(frame));
            return;
          }
          const bool taken = !stream_closed && !closing && !close_when_flushed;
          if (kind == record_queued_frame || kind == record_persisted_queued_frame) {
            if (taken) take_reservation(payload.size());
            else give_back_reservation(1, static_cast<std::int64_t>(payload.size()));
          }
          if (taken) append_session(payload, record);
          return;
        }
        Command* command;
        std::memcpy(&command, payload.data(), sizeof command);
        std::unique_ptr<Command> owned(command);
        // A handler that publishes into a full outbox drains it from inside the dispatch:
        // commands (and the frames behind them) wait until the dispatch is over, so it
        // never sees its lists change.
        if (deferring || !deferred.empty()) deferred.push_back(std::move(owned));
        else handle(std::move(*owned));
      },
      max);
  draining = false;
  // Space freed (a drain past a wrap's padding frees some with no record): waiters may go.
  if (outbox.consumed() != consumed) made_room();
  return drained;
}

// Client thread: a reserved call arrived. While not connected it stays held (its room
// taken) until the connection it waits for carries it.
void Client::Impl::take_reservation(std::size_t bytes) {
  if (live()) {
    give_back_reservation(1, static_cast<std::int64_t>(bytes));
    return;
  }
  ++held_entries;
  held_bytes += static_cast<std::int64_t>(bytes);
}

// The held calls went out (on connecting) or failed (on closing).
void Client::Impl::give_back_held() {
  give_back_reservation(held_entries, held_bytes);
  held_entries = held_bytes = 0;
}

// A frame of the session's stream: numbered and kept for resending after a drop, and sent
// from the log (start_send). Without a connection the log is the queue: its frames go out
// once connected, from the first the broker lacks (resumed()).
void Client::Impl::append_session(std::span<const std::byte> frame, std::uint64_t record) {
  sent_log.append(frame, record);
  if (!recovering) log_tail_bytes += frame.size();
}

// A connection frame follows: the log's unsent frames go into `out` ahead of it.
void Client::Impl::queue_log_tail() {
  if (recovering || log_queued >= sent_log.last()) return;
  sent_log.visit_after(log_queued, [&](std::span<const std::byte> frames) {
    out.insert(out.end(), frames.begin(), frames.end());
  });
  log_all_queued();
}

// The log's frames after `sequence` are to be sent (those it still holds); returns how many
// of them it no longer holds.
std::uint64_t Client::Impl::set_log_queued(std::uint64_t sequence) {
  log_queued = sequence;
  log_tail_bytes = 0;
  return sent_log.visit_after(sequence, [&](std::span<const std::byte> frames) { log_tail_bytes += frames.size(); });
}

// Nothing queued is sent on this connection (it ended, or a resumption decides afresh).
void Client::Impl::drop_unsent() {
  out.clear();
  log_all_queued();
}

void Client::Impl::start_send() {
  if (send_in_flight || !unsent() || stream_closed || fd < 0) return;
  if (hold_out || recovering) return;
  if (shm || tls) queue_log_tail();
  sending.swap(out);
  out.clear();
  send_parts.clear();
  if (!sending.empty()) send_parts.push_back({sending.data(), sending.size()});
  if (log_queued < sent_log.last()) {
    sent_log.visit_after(log_queued, [&](std::span<const std::byte> frames) {
      send_parts.push_back({const_cast<std::byte*>(frames.data()), frames.size()});
    });
    sent_log.hold_in_place();
    log_all_queued();
  }
  send_parts_in_order(sent_log.last());
}

// Sends send_parts, which end with the log's frame `last_sequence` (0: no log frame).
void Client::Impl::send_parts_in_order(std::uint64_t last_sequence) {
  sending_total = 0;
  for (const ::iovec& part : send_parts) sending_total += part.iov_len;
  sending_offset = 0;
  sending_last_seq = last_sequence;
  issue_send();
}

void Client::Impl::issue_send() {
  if (shm) {
    shm_send();
    return;
  }
  if (tls) {
    send_tls();
    return;
  }
  send_iov.clear();
  std::size_t skip = sending_offset;
  for (const ::iovec& part : send_parts) {
    if (skip >= part.iov_len) {
      skip -= part.iov_len;
      continue;
    }
    send_iov.push_back({static_cast<std::byte*>(part.iov_base) + skip, part.iov_len - skip});
    skip = 0;
  }
  send_in_flight = true;
  if (send_iov.size() == 1) {
    io->send(fd, send_iov[0].iov_base, send_iov[0].iov_len, token_base);
    return;
  }
  msg = {};
  msg.msg_iov = send_iov.data();
  msg.msg_iovlen = send_iov.size();
  io->sendmsg(fd, &msg, token_base);
}

// The send in flight is over: the log may move its bytes again.
void Client::Impl::end_sending() {
  sending.clear();
  send_parts.clear();
  sending_total = 0;
  sent_log.release_in_place();
}

// A "send" into the ring: what fits goes at once; the rest waits for the broker to read.
void Client::Impl::shm_send() {
  send_in_flight = true;
  auto& link = *shm;
  std::size_t n = link.to_broker.write(std::span(sending).subspan(sending_offset));
  if (n > 0 && link.to_broker.publish()) link.ring_broker();
  if (link.to_broker.corrupt()) {
    protocol_failure("shared memory: the broker's read position is corrupt");
    return;
  }
  if (n == 0) {
    shm_waiting_space = true;
    return;
  }
  sent(static_cast<int>(n));
}

void Client::Impl::sent(int result) {
  send_in_flight = false;
  if (result < 0) {
    end_sending();
    lost(std::string("connection lost: ") + std::strerror(-result));
    return;
  }
  if (recovering && !hold_out) {  // the old socket winding down
    end_sending();
    return;
  }
  sending_offset += static_cast<std::size_t>(result);
  if (sending_offset < sending_total) {
    issue_send();
  } else {
    end_sending();
    sent_log.trim(sending_last_seq);
    if (!finished.load(std::memory_order_relaxed)) start_send();
  }
}

void Client::Impl::rebase_log(std::uint64_t last_received) {
  sent_log.rebase(last_received);
  log_queued += last_received;
  for (auto& [id, seq] : answer_confirms) seq += last_received;
}

void Client::Impl::answered(std::uint32_t request_id) {
  auto it = answer_confirms.find(request_id);
  if (it == answer_confirms.end()) return;
  if (it->second <= sent_log.last() && !confirm_on_received_only) sent_log.confirm(it->second);
  answer_confirms.erase(it);
}

// Opens the persistent queue and puts what an earlier run left unconfirmed at the head of
// the log, so that it goes out first (calls made before connect() were not taken yet).
Status Client::Impl::open_queue_file() {
  client_detail::PersistentQueueOptions o;
  o.fsync = options.queue_fsync == QueueFsync::never    ? client_detail::FsyncPolicy::never
            : options.queue_fsync == QueueFsync::always ? client_detail::FsyncPolicy::always
                                                        : client_detail::FsyncPolicy::batch;
  std::string error;
  queue_file = client_detail::PersistentQueue::open(options.queue_path, o, error);
  if (!queue_file) return error_status(ErrorCode::internal, "persistent queue " + options.queue_path + ": " + error);
  for (const auto& w : queue_file->warnings())
    queue_file_warnings.push_back("persistent queue " + options.queue_path + ": " + w);
  std::uint64_t kept = 0;
  queue_file->for_each_pending([&](std::uint64_t record, std::span<const std::byte> frame) {
    std::uint32_t request_id = 0;
    if (replayable(frame, request_id)) {
      sent_log.append(frame, record);
      ++kept;
    }
    return true;
  });
  queue_file_confirmed = queue_file->confirmed_id();
  kept_from_earlier_run = kept;
  // A named session this file recorded: the first Connect resumes it with its token, which
  // is the proof a broker without a credentials file asks for.
  if (options.session_number > 0 &&
      queue_file->session_id() == (options.principal.empty() ? std::string("anonymous") : options.principal) +
                                      "/" + std::to_string(options.session_number)) {
    std::copy(queue_file->session_token().begin(), queue_file->session_token().end(), token.begin());
    resume_with_recorded_token = true;
  }
  return Status::ok();
}

// Whether a session frame is sent again in a new session (publishes, topic creations and
// requests; subscriptions and handlers are registered from what the client holds), and
// its request id.
bool Client::Impl::replayable(std::span<const std::byte> frame, std::uint32_t& request_id) {
  auto decoded = decoder.decode(frame);
  if (auto* p = std::get_if<codec::PublishMsg>(&decoded.message)) request_id = p->request_id;
  else if (auto* t = std::get_if<codec::CreateTopicMsg>(&decoded.message)) request_id = t->request_id;
  else if (auto* r = std::get_if<codec::RequestMsg>(&decoded.message)) request_id = r->request_id;
  else return false;
  return true;
}

// Client thread: records what the broker confirmed in the file, and syncs it (batch) when
// the thread has nothing else to do. Never waits for the lock (`wait` only at the end).
void Client::Impl::tend_queue_file(bool idle, bool wait) {
  if (!queue_file) return;
  const std::uint64_t confirmed = sent_log.confirmed_record();
  const bool confirm = confirmed > queue_file_confirmed;
  if (!confirm && !(idle && queue_file->needs_sync())) return;
  std::unique_lock lock(queue_file_mutex, std::defer_lock);
  if (wait) lock.lock();
  else if (!lock.try_lock()) return;
  if (confirm) {
    queue_file->confirm(confirmed);
    queue_file_confirmed = confirmed;
  }
  if (idle && queue_file->needs_sync()) queue_file->sync();
}

}  // namespace brook
