// The session as a member of its ClientLoop (LoopMember): what it does when it joins, in each
// turn (drain the outbox, send, keep the connection alive or recover it, expire requests,
// read shared memory, tend the persistent queue), with each completion of its operations, and
// how it winds down: once closed it fails what is left, and leaves the loop when nothing of it
// is in flight.
//
// Threads: the client thread (the loop's), except join_loop(), which connect() runs on the
// caller's thread before the loop has the session, and the destructor (whoever drops the
// last reference).
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "client_default_context.hpp"
#include "client_impl.hpp"

namespace brook {

using client_detail::error_status;

namespace {

constexpr int idle_wait_ms = 100;
// Frames gathered for the next send. A flat-out publisher fills it while a send is in flight:
// at 4 MiB its bytes were gone from the cache by the time the kernel copied them (1 MiB: 5-7%
// less CPU for a one-core publisher and subscriber at 1 KiB), and a send that large is no
// cheaper per byte.
constexpr std::size_t max_out_bytes = 1u << 20;
constexpr std::size_t max_records_per_turn = 4096;  // bounds one turn of the client loop
// How often request deadlines are checked while requests wait for answers.
constexpr auto request_timer_resolution = std::chrono::milliseconds(5);

}  // namespace

Client::Impl::~Impl() {
  if (fd >= 0) ::close(fd);
}

// Caller side (connect): hands the session to its loop, whose thread runs it from now on.
// False when that is a ClientContext's loop that has ended (the context was destroyed).
bool Client::Impl::join_loop() {
  auto use = [this](const std::shared_ptr<client_detail::ClientLoop>& l) {
    loop = l;
    sleeping = &l->sleeping();
    work_posted = &l->posted();
  };
  if (loop_kind == LoopKind::context) {
    use(loop);
    if (!loop->add(shared_from_this())) return false;
  } else if (options.own_thread) {
    loop_kind = LoopKind::own_thread;
    use(std::make_shared<client_detail::ClientLoop>(false, 64));
    loop->add(shared_from_this());
  } else {
    client_detail::default_context::join(shared_from_this(), use);
  }
  joined = true;
  return true;
}

void Client::Impl::begin(transport::Reactor& r, std::uint64_t base) {
  io = &r;
  token_base = base;
  client_thread_id.store(std::this_thread::get_id(), std::memory_order_release);
  reactor.store(&r, std::memory_order_release);
  last_heard = std::chrono::steady_clock::now();
  if (start_recovering) {
    // No server answered connect(): poll them while the calls queue up. The listeners
    // registered before connect() are in the outbox: take them before the first change.
    recovering = true;
    disconnected_at = last_heard;
    drain_outbox(max_records_per_turn);
    set_state(ClientState::recovering, start_reason);
    schedule_attempt(start_reason);
  } else {
    recv_armed = true;
    io->recv_multishot(fd, token_base);
    if (shm) arm_doorbell();
    // Connect first; what a persistent queue kept from an earlier run follows from the log.
    const auto connect = connect_frame(false);
    out.insert(out.end(), connect.begin(), connect.end());
    set_log_queued(0);
    start_send();
  }
}

// Runs until close() is asked for and the broker has closed its side (or the linger
// passed); after the session is lost it keeps failing commands until then.
int Client::Impl::turn() {
  drained_this_turn = 0;
  drained_outside_turn = false;
  auto now = std::chrono::steady_clock::now();
  if (tearing_down) return 10;
  if (closing && (stream_closed || now > close_deadline)) {
    tear_down();
    return 0;
  }
  if (close_when_flushed && recovering && now > close_deadline) {
    closing = true;
    give_up("closed by the client: no broker took the queued calls within close_timeout");
  }
  if (recovering) step_recovery(now);
  else if (!stream_closed) keep_alive(now);
  if (!pending_requests.empty()) expire_requests(now);
  run_deferred();  // before the calls made after them
  std::size_t n = unsent_bytes() < max_out_bytes ? drain_outbox(max_records_per_turn) : 0;
  if (!send_in_flight && unsent()) start_send();
  // After the calls: a subscription made before connect() is in place before the frames
  // it matches are read (over TCP they arrive as completions, after this point too).
  if (shm && (!recovering || hold_out)) {
    pump_shm();
    if (!send_in_flight && unsent()) start_send();  // what the handlers just sent
  }
  if (closing && !stream_closed && !recovering && !send_in_flight && !unsent() &&
      !shut_down_write) {
    // Over shared memory the socket is the liveness signal: the broker takes its EOF for
    // a client that is gone, so the Close in the ring says it all.
    if (!shm) ::shutdown(fd, SHUT_WR);
    shut_down_write = true;
  }
  tend_queue_file(n == 0);
  if (!queue_file_warnings.empty() && error_listener) {
    for (auto& w : queue_file_warnings) notify(error_listener, error_status(ErrorCode::internal, w));
    queue_file_warnings.clear();
  }
  drained_this_turn = n;
  if (n > 0 || options.spin) return 0;
  return next_wake_ms(now);
}

int Client::Impl::next_wake_ms(std::chrono::steady_clock::time_point now) const {
  using std::chrono::milliseconds;
  auto wait = milliseconds(idle_wait_ms);
  if (recovering) wait = std::min(wait, std::chrono::duration_cast<milliseconds>(next_attempt - now));
  else wait = std::min(wait, options.ping_interval / 4);
  if (!pending_requests.empty()) wait = std::min(wait, request_timer_resolution);
  if (queue_file && queue_file->needs_sync()) wait = std::min(wait, milliseconds(10));
  return static_cast<int>(std::max<std::int64_t>(wait.count(), 1));
}

bool Client::Impl::wants_turn() {
  return !outbox.empty_hint() || (shm && (!recovering || hold_out)) || drained_outside_turn ||
         !deferred.empty() || send_state_owner.load(std::memory_order_relaxed) == send_state_left;
}

bool Client::Impl::has_input() {
  if (tearing_down) return false;
  if (drained_outside_turn || !deferred.empty()) return true;
  // While lent, `out` is the callers': judged by its size when it was lent.
  const bool out_full = lent ? out_full_when_lent : unsent_bytes() >= max_out_bytes;
  if (!outbox.empty_hint() && !out_full) return true;
  return shm && (!recovering || hold_out) && !shm_quiet();
}

// Not while calls a callback drained wait for the session's turn: a direct send would
// overtake them.
void Client::Impl::lend() {
  if (tearing_down || drained_outside_turn || !deferred.empty()) return;
  out_full_when_lent = unsent_bytes() >= max_out_bytes;
  lend_send_state(drained_this_turn > 0);
  lent = true;
}

void Client::Impl::take_back() {
  if (!lent) return;
  take_back_send_state();
  lent = false;
}

void Client::Impl::after_sleep() {
  if (shm && !tearing_down) shm->from_broker.awake();
}

bool Client::Impl::spins() const { return options.spin && !tearing_down; }

bool Client::Impl::polls() const { return shm != nullptr && !tearing_down; }

void Client::Impl::on_completion(const transport::Completion& c, unsigned) {
  switch (c.op) {
    case transport::Op::recv:
      if (c.result > 0) {
        last_heard = std::chrono::steady_clock::now();
        keepalive_sent = {};
        if (tls) receive_tls(c.data);
        else on_bytes(c.data);
      }
      if (!c.more) {
        recv_armed = false;
        if ((c.result > 0 || c.result == -ENOBUFS) && !finished.load(std::memory_order_relaxed) &&
            (!recovering || hold_out)) {
          recv_armed = true;
          io->recv_multishot(fd, token_base);
        } else {
          // The broker's last frames (the reason it closed) are in the ring, not the socket.
          if (shm && (!recovering || hold_out)) pump_shm();
          lost(c.result == 0 ? "connection closed by the broker"
                             : std::string("connection lost: ") + std::strerror(-c.result));
        }
      }
      break;
    case transport::Op::send: {
      int result = c.result;
      if (tls && wire_send_done(result)) break;
      sent(result);
      break;
    }
    case transport::Op::read:  // a shm doorbell: the loop reads the ring every turn
      doorbell_armed = false;
      if (shm && !finished.load(std::memory_order_relaxed) && (!recovering || hold_out) &&
          (c.result >= 0 || c.result == -EINTR))
        arm_doorbell();
      break;
    default:
      break;
  }
}

// The session is over: fail what is left, and stop the operations in flight; the loop
// lets us go once they have come back (done()).
void Client::Impl::tear_down() {
  recovering = false;
  end_session(close_reason.empty() ? "closed by the client" : close_reason);
  finished.store(true, std::memory_order_release);
  wake_room_waiters();  // a caller waiting for outbox room sees the end
  tend_queue_file(true, true);
  stream_closed = true;
  run_deferred();          // fails what waited,
  drain_outbox(SIZE_MAX);  // and what was submitted after the close
  // seq_cst: pairs with wake_client(); a caller either sees null or is counted (done()).
  reactor.store(nullptr, std::memory_order_seq_cst);
  if (shm) {
    send_in_flight = false;  // ring writes are never in flight
    if (doorbell_armed) io->cancel(transport::Op::read, token_base | 1);
  }
  if (fd >= 0 && (recv_armed || send_in_flight || doorbell_armed)) ::shutdown(fd, SHUT_RDWR);
  teardown_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  tearing_down = true;
}

bool Client::Impl::done() {
  if (!tearing_down) return false;
  const bool in_flight = fd >= 0 && (recv_armed || send_in_flight || doorbell_armed);
  if (in_flight && std::chrono::steady_clock::now() < teardown_deadline) return false;
  // A caller that took the reactor before it was cleared is still ringing its eventfd.
  return wakers.load(std::memory_order_seq_cst) == 0;
}

void Client::Impl::left(std::shared_ptr<client_detail::LoopMember> self) {
  drain_outbox(SIZE_MAX);  // calls made while it wound down fail (a close() among them)
  // The loop lets go before close() returns: when the Client holds the last reference, its
  // socket and persistent queue are closed once its close() or destructor has returned, even
  // on a loop that goes on with other sessions.
  auto leaving = std::move(left_promise);
  self.reset();  // may destroy *this (its Client is gone): nothing of it is touched after
  leaving.set_value();
}

}  // namespace brook
