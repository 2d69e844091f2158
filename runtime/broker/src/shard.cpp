// The shard's duty cycle: drain mailboxes, handle a batch of io_uring completions, flush
// session queues, wake the peers it pushed to, and sleep in io_uring when there is no work.
#include "shard.hpp"

#include <pthread.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

namespace brook::runtime {

namespace {
constexpr std::size_t mailbox_batch = 1024;  // per source per turn: bounds one duty cycle
// Records handled while a later one's buffers are fetched from the other core (each takes
// 0.1-0.3 us; the transfer about 0.1 us on the 2-core VMs).
constexpr std::size_t mailbox_prefetch_distance = 4;
constexpr std::size_t mailbox_prefetch_rest_distance = 2;  // its head asked for two records before
constexpr int idle_wait_ms = 200;            // the longest a sleeping shard waits unwoken
constexpr unsigned completions_per_turn = 16;  // receive buffers of up to 16 KiB each

}  // namespace

Shard::Shard(unsigned index, const BrokerOptions& options, Mesh& mesh, Authenticator* authenticator)
    : index_(index), options_(options), mesh_(mesh), authenticator_(authenticator),
      overflow_(mesh.shard_count) {}

namespace {
// Liveness is checked a few times per ping interval (and connect timeout), at most every
// second and at least every millisecond.
std::uint64_t liveness_period_ns(const BrokerOptions& o) {
  std::uint64_t ms = std::min(o.ping_interval_ms, o.connect_timeout_ms) / 4;
  return std::clamp<std::uint64_t>(ms, 1, 1000) * 1'000'000ull;
}
}  // namespace

Shard::~Shard() {
  release_buffers();
  if (statm_fd_ >= 0) ::close(statm_fd_);
}

void Shard::release_buffers() {
  for (auto& c : connections_)
    if (c && c->fd >= 0) ::close(c->fd);
  connections_.clear();
  sessions_.clear();  // their queues release their frames
  dying_.clear();     // and those of ended sessions still releasing theirs
  for (auto& queue : overflow_) {
    for (auto& m : queue) release_message(m);
    queue.clear();
  }
  if (overflow_count_ > 0) mesh_.shards_overflowing.fetch_sub(1, std::memory_order_relaxed);
  overflow_count_ = 0;
  topics_.for_each_match(*Selector::parse("//"), [](std::string_view, OwnedTopic& t) {
    if (t.frame) t.frame->release();
    t.frame = nullptr;
    t.history.clear();
  });
  for (const PendingDelivery& d : pending_deliveries_) d.frame->release();
  pending_deliveries_.clear();
  local_topics_.clear();  // the frames kept as the base of the next delta
  // Records still in the rings towards this shard carry references too.
  for (unsigned from = 0; from < mesh_.shard_count; ++from)
    mesh_.ring(from, index_).drain([](const ShardMessage& m) { release_message(m); });
}

void Shard::wait_ready() {
  while (!ready_.load(std::memory_order_acquire)) std::this_thread::yield();
}

void Shard::request_stop() {
  // release: pairs with the acquire load in run(); the wake makes a sleeping shard see it.
  stop_requested_.store(true, std::memory_order_release);
  if (ready_.load(std::memory_order_acquire)) reactor_->wake();
}

void Shard::request_drain() {
  drain_requested_.store(true, std::memory_order_release);
  if (ready_.load(std::memory_order_acquire)) reactor_->wake();
}

// One turn of a graceful stop. A publisher is told exactly which of its frames this broker
// took (the last Received), so that it sends the rest, and only the rest, to the next one;
// every subscriber gets what was queued for it before the Close, so nothing this broker
// confirmed is lost with it.
bool Shard::drain_step() {
  draining_ = true;
  bool quiet = !inbound_pending() && journal_idle();
  for (auto& owned : connections_) {
    Connection* c = owned.get();
    if (!c || c->closing || !c->session || c->state != ConnectionState::attached) continue;
    Session& s = *c->session;
    const bool busy = c->send_in_flight || !c->control_out.empty();
    if (c->drain_closed) {
      quiet &= !busy;
      continue;
    }
    if (busy || !s.out.empty()) {
      quiet = false;
      continue;
    }
    send_control(*c, encoder_.received(s.inbound_seq));
    send_control(*c, encoder_.close("broker shutting down"));
    c->drain_closed = true;
    quiet = false;
  }
  return quiet;
}

void Shard::run(const Listeners& listeners) {
  BufferPool::thread_pool() = &pool_;
  BufferPool::batch_returns_on_this_thread();
  if (options_.pin_threads) {
    unsigned cores = std::thread::hardware_concurrency();
    if (cores > 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(index_ % cores, &set);
      pthread_setaffinity_np(pthread_self(), sizeof set, &set);
    }
  }
  transport::ReactorOptions ro;
  ro.recv_buffer_count = options_.recv_buffer_count;
  ro.recv_buffer_bytes = options_.recv_buffer_bytes;
  reactor_ = std::make_unique<transport::Reactor>(ro);
  listeners_ = listeners;
  take_permissions();
  restore_topics();
  restore_sessions();
  if (index_ < mesh_.broadcast_logs.size())
    broadcast_ = ShmBroadcastLog(mesh_.broadcast_logs[index_],
                                 &transport::broadcast_reclaimed(mesh_.broadcast[index_].data()));
  for (unsigned token = 0; token < listener_count; ++token)
    if (listeners_[token] >= 0) reactor_->accept_multishot(listeners_[token], token);
  ready_.store(true, std::memory_order_release);

  const std::uint64_t idle_spin_ns = std::uint64_t{resolve_idle_spin_us(options_, mesh_.shard_count)} * 1000;
  // acquire: pairs with the release store in request_stop.
  while (!stop_requested_.load(std::memory_order_acquire)) {
    auto turn_start = now_ns();
    received_clock_ns_ = turn_start;  // shared memory is read before the wait
    std::size_t work = 0;
    if (overflow_count_) flush_overflow();
    if (mesh_.permissions_generation.load(std::memory_order_relaxed) != permissions_generation_) take_permissions();
    // Mailboxes are drained on every turn, back-pressured or not; see send_to() for why
    // this cannot deadlock.
    work += drain_mailboxes();
    if (!replays_to_continue_.empty()) work += continue_replays();
    if (!paused_.empty() && !back_pressured()) resume_paused();
    if (!to_resume_.empty() && !back_pressured()) resume_attached();
    if (authenticator_)
      authenticator_->drain(index_, [&](const AuthResult& r) { on_authenticated(r.connection, r.accepted); });
    const bool shm_input = !shm_slots_.empty() && poll_shm() > 0;
    if (!handoffs_due_.empty()) finish_due_handoffs();
    check_memory();
    if (!holding_sessions_.empty()) check_flow(now_ns());
    if (!to_abandon_.empty()) abandon_overdue();
    // Counted as work: the loop does not sleep while there is more to release.
    if (!releasing_.empty() || !dying_.empty()) work += release_ended_sessions();
    // Read again: the mailboxes just drained may have adopted connections, stamped after
    // turn_start, which a check against turn_start would find 2^64 ns old and time out.
    const std::uint64_t now = now_ns();
    if (now >= next_liveness_check_ns_) {
      check_liveness(now);
      next_liveness_check_ns_ = now + liveness_period_ns(options_);
      if (journal_ && now >= next_retention_check_ns_) {
        next_retention_check_ns_ = now + 1'000'000'000;
        remove_unretained_segments();
      }
    }
    flush_sessions();
    wake_peers();
    if (drain_requested_.load(std::memory_order_relaxed))
      drained_.store(drain_step(), std::memory_order_release);

    int timeout_ms = 0;
    // Asking the shm clients to ring raises their rings' waiting flags: lowered again below,
    // whether or not the shard then sleeps.
    bool shm_asked = false;
    const bool spinning = options_.spin || turn_start - last_active_ns_ < idle_spin_ns;
    // While coalescing, a shard with sends held back sleeps until they are due and is not
    // woken by what arrives meanwhile: those updates go out in the same sends, for one
    // wake-up instead of one per update (shard_coalescing.cpp).
    const bool batch_sleep = held_sends_due_ns_ != 0 && coalescing_ && work == 0 && !spinning &&
                             !back_pressured() && shm_slots_.empty() && !reactor_->completions_pending();
    if (!batch_sleep && work == 0 && !back_pressured() && !spinning && handoffs_due_.empty() &&
        (shm_slots_.empty() || (shm_asked = true, shm_quiet()))) {
      // Tell producers we may sleep, then look once more: a record pushed before our store
      // is seen by inbound_pending(); one pushed after it sees sleeping_ and wakes us.
      // seq_cst: a full barrier between this store and the ring loads in inbound_pending();
      // pairs with the fence in wake_peers (Dekker's handshake).
      sleeping_.store(true, std::memory_order_seq_cst);
      const auto until_check_ms = static_cast<int>(
          (next_liveness_check_ns_ - std::min(next_liveness_check_ns_, now_ns())) / 1'000'000 + 1);
      timeout_ms = inbound_pending() ? 0 : std::min(idle_wait_ms, until_check_ms);
    }
    if (journal_) {
      journal_changed_sessions();
      journal_->submit(*reactor_, now_ns());
      if (journal_->take_rolled()) snapshot_topics();
      // The next periodic sync is due within the interval, sleeping or not.
      if (options_.storage_sync == StorageSync::interval && timeout_ms > 0)
        timeout_ms = static_cast<int>(std::min<std::uint64_t>(timeout_ms, options_.storage_sync_interval_ms));
    }
    pool_.collect_remote();
    BufferPool::flush_returns();  // other shards' blocks this turn released, before any sleep
    ++counters_.loop_turns;
    const std::uint64_t work_ns = now_ns() - turn_start;
    // A bounded number of completions per turn: a receive buffer of tiny publishes is a
    // thousand frames, and a full ring of them took tens of milliseconds in one turn, while
    // the mailboxes, timers and every other connection waited. The rest waits in the
    // completion queue for the next turn (which then does not sleep).
    if (batch_sleep) {
      reactor_->submit();  // this turn's sends (and journal writes) go before the sleep
      sleep_until_ns(held_sends_due_ns_);
    }
    std::int64_t timeout_us = reactor_->completions_pending() || batch_sleep ? 0
                              : back_pressured()                              ? 1000
                                                                              : timeout_ms * 1000ll;
    // Sends held back for coalescing go when due, whatever else the loop waits for.
    if (held_sends_due_ns_ != 0 && timeout_us != 0) {
      const std::uint64_t now_held = now_ns();
      const std::int64_t due_us =
          held_sends_due_ns_ <= now_held ? 0 : static_cast<std::int64_t>((held_sends_due_ns_ - now_held) / 1000 + 1);
      timeout_us = std::min(timeout_us, due_us);  // the loop never waits for ever
    }
    reactor_->wait_us(timeout_us);
    const std::uint64_t woken = now_ns();
    received_clock_ns_ = woken;
    const int completions = reactor_->process(*this, completions_per_turn);
    // A turn's length is its work, the wait excluded: what the shard's other connections
    // and its mailboxes waited for.
    const std::uint64_t processed = now_ns();
    if (!reactor_->completions_pending()) completions_seen_ns_ = processed;
    const std::uint64_t turn_ns = work_ns + (processed - woken);
    if (turn_ns > counters_.longest_turn_ns) counters_.longest_turn_ns = turn_ns;
    counters_.busy_ns += turn_ns;
    store_gauges(processed);
    sleeping_.store(false, std::memory_order_relaxed);
    if (work > 0 || completions > 0 || shm_input) last_active_ns_ = now_ns();
    // A polling shard with nothing to do lets a thread waiting for its core (a client on a
    // small machine) run first, rather than holding the core for a whole time slice.
    else if (spinning) std::this_thread::yield();
    closing_links_.clear();  // their last doorbell writes, if any, were just submitted
    if (shm_asked) shm_awake();
  }
  // What the journal was given goes to disk before the thread ends: a clean stop loses nothing.
  // History reads from it end first: the kernel writes into their buffers until they do.
  stopping_ = true;
  for (auto& replay : replays_) replay->cancelled = true;
  for (int i = 0; i < 500 && !journal_idle(); ++i) {
    journal_->submit(*reactor_, now_ns());
    reactor_->run_once(*this, 10);
  }
  while (journal_reading()) reactor_->run_once(*this, 10);  // a file read always completes
  // The kernel writes into each armed doorbell's link: take them back before the links go.
  for (std::uint32_t slot : shm_slots_)
    if (Connection* c = connections_[slot].get(); c && c->shm && c->shm->doorbell_armed)
      reactor_->cancel(transport::Op::read, token_of(*c));
  for (int i = 0; i < 100 && doorbells_armed(); ++i) reactor_->run_once(*this, 10);
  BufferPool::flush_returns();
}

bool Shard::doorbells_armed() const {
  for (std::uint32_t slot : shm_slots_)
    if (const Connection* c = connections_[slot].get(); c && c->shm && c->shm->doorbell_armed)
      return true;
  return false;
}

void Shard::release_message(const ShardMessage& m) {
  release_buffers_of(m);
  if (m.kind == ShardMessageKind::new_connection) {
    if (m.flags & connection_shm_link) delete reinterpret_cast<ShmLink*>(m.b);
    if (m.flags & connection_tls_stream) delete reinterpret_cast<transport::TlsStream*>(m.b);
    if (m.flags & connection_ws_stream) delete reinterpret_cast<transport::WebSocketServer*>(m.c);
    ::close(static_cast<int>(m.a));
  }
}

bool Shard::inbound_pending() const {
  for (unsigned from = 0; from < mesh_.shard_count; ++from)
    if (!mesh_.ring(from, index_).empty_hint()) return true;
  return false;
}

std::size_t Shard::drain_mailboxes() {
  std::size_t total = 0;
  for (unsigned from = 0; from < mesh_.shard_count; ++from) {
    if (from == index_) continue;
    total += mesh_.ring(from, index_).drain(
        [&](const ShardMessage& m) { handle_message(from, m); }, mailbox_batch,
        [](const ShardMessage& ahead) { prefetch_buffers_of(ahead); }, mailbox_prefetch_distance,
        [](const ShardMessage& ahead) { prefetch_rest_of(ahead); }, mailbox_prefetch_rest_distance);
  }
  return total;
}

void Shard::send_to(unsigned shard, const ShardMessage& message) {
  if (shard == index_) {
    handle_message(index_, message);
    return;
  }
  auto& pending = overflow_[shard];
  if (pending.empty() && mesh_.ring(index_, shard).try_push(message)) {
    peers_to_wake_ |= std::uint64_t{1} << shard;
    return;
  }
  // The peer's ring is full: keep order by queueing behind it, never drop. While anything
  // waits here every shard is back-pressured (Mesh::shards_overflowing): none reads sockets
  // (TCP windows close towards the publishers), but each keeps draining its own mailboxes.
  // Every shard, because the reads that feed this ring may be another shard's: a publisher's
  // shard feeds the topic's owner, whose delivers fill the rings to the subscribers' shards.
  //
  // Why that cannot deadlock: draining a mailbox never waits. Handling a record either
  // finishes locally or produces records for other shards, which go into their rings or
  // behind them here. So every shard empties its inbound rings at least mailbox_batch
  // records per turn whatever its peers do, and a full ring A->B always drains on B's next
  // turn: no cycle of shards can wait on each other. (Before, a back-pressured shard also
  // stopped draining; two shards whose rings to each other were full then slept for ever.)
  //
  // Why this queue stays bounded: new work enters the broker only through socket reads,
  // which stop on every shard while it is non-empty. What is then in flight is finite (frames already read, and the records derived
  // from them: a publish becomes one deliver per interested shard, a request one answer),
  // and peers consume it at mailbox_batch per turn, so the queue holds at most what the
  // records already read can derive.
  pending.push_back(message);
  if (overflow_count_++ == 0) mesh_.shards_overflowing.fetch_add(1, std::memory_order_relaxed);
  ++counters_.mailbox_overflows;
}

void Shard::flush_overflow() {
  for (unsigned shard = 0; shard < mesh_.shard_count; ++shard) {
    auto& pending = overflow_[shard];
    auto& ring = mesh_.ring(index_, shard);
    while (!pending.empty() && ring.try_push(pending.front())) {
      pending.pop_front();
      if (--overflow_count_ == 0) mesh_.shards_overflowing.fetch_sub(1, std::memory_order_relaxed);
      peers_to_wake_ |= std::uint64_t{1} << shard;
    }
    // A peer with a full ring must be awake to empty it.
    if (!pending.empty()) peers_to_wake_ |= std::uint64_t{1} << shard;
  }
}

void Shard::wake_peers() {
  if (!peers_to_wake_) return;
  std::atomic_thread_fence(std::memory_order_seq_cst);  // pairs with run()'s fence
  for (unsigned shard = 0; shard < mesh_.shard_count; ++shard) {
    if (!(peers_to_wake_ & (std::uint64_t{1} << shard))) continue;
    Shard* peer = mesh_.shards[shard];
    // acquire: pairs with the seq_cst store in run(), which follows the reactor's creation.
    // exchange: of several shards that find the peer asleep, one writes its eventfd.
    if (peer->sleeping_.load(std::memory_order_acquire) &&
        peer->sleeping_.exchange(false, std::memory_order_acq_rel))
      peer->reactor_->wake();
  }
  peers_to_wake_ = 0;
}

void Shard::handle_message(unsigned from, const ShardMessage& m) {
  switch (m.kind) {
    case ShardMessageKind::new_connection:
      adopt_connection(static_cast<int>(m.a), m.buffer, m.flags, reinterpret_cast<void*>(m.b),
                       reinterpret_cast<transport::WebSocketServer*>(m.c));
      break;
    case ShardMessageKind::publish: on_publish(from, m); break;
    case ShardMessageKind::create_topic: on_create_topic(from, m); break;
    case ShardMessageKind::reply: on_reply(m); break;
    case ShardMessageKind::add_selector: on_add_selector(from, m); break;
    case ShardMessageKind::remove_selector: on_remove_selector(from, m); break;
    case ShardMessageKind::selector_added: on_selector_added(m); break;
    case ShardMessageKind::snapshot: on_snapshot(m); break;
    case ShardMessageKind::history: on_history(m); break;
    case ShardMessageKind::replay_paused: on_replay_paused(from, m); break;
    case ShardMessageKind::replay_resume: on_replay_resume(m); break;
    case ShardMessageKind::durability_probe: on_durability_probe(from, m); break;
    case ShardMessageKind::durable_through: on_durable_through(m); break;
    case ShardMessageKind::deliver: on_deliver(m); break;
    case ShardMessageKind::flow_hold: on_flow_hold(m); break;
    case ShardMessageKind::flow_release: on_flow_release(m); break;
    case ShardMessageKind::refresh: on_refresh(from, m); break;
    case ShardMessageKind::current_value: on_current_value(m); break;
    case ShardMessageKind::add_handler: on_add_handler(from, m); break;
    case ShardMessageKind::remove_handler: on_remove_handler(from, m); break;
    case ShardMessageKind::handler_presence: on_handler_presence(from, m); break;
    case ShardMessageKind::forget_requester: on_forget_requester(from, m); break;
    case ShardMessageKind::request: on_request(from, m); break;
    case ShardMessageKind::handle_request: on_handle_request(m); break;
    case ShardMessageKind::request_result: on_request_result(m); break;
    case ShardMessageKind::stop: request_stop(); break;
  }
}

void Shard::on_completion(const transport::Completion& completion) {
  using transport::Op;
  switch (completion.op) {
    case Op::wake:
      break;  // the loop drains mailboxes on every turn
    case Op::accept: {
      if (completion.result >= 0) {
        // Spread connections round-robin; the next connection goes to the next shard, which
        // makes placement predictable for tests and even for many clients.
        unsigned target = next_connection_shard_++ % mesh_.shard_count;
        ++counters_.connections_accepted;
        static constexpr std::uint8_t flags_of[listener_count] = {0, connection_shm, connection_tls, connection_ws,
                                                                   connection_tls | connection_ws};
        const std::uint8_t flags = flags_of[completion.token % listener_count];
        send_to(target, {ShardMessageKind::new_connection, flags, 0, 0,
                         static_cast<std::uint64_t>(completion.result), 0, 0, nullptr});
      }
      if (!completion.more && !stop_requested_.load(std::memory_order_relaxed))
        reactor_->accept_multishot(listeners_[completion.token % listener_count], completion.token);
      break;
    }
    case Op::recv:
      if (Connection* c = connection_for(completion.token)) on_recv(*c, completion);
      break;
    case Op::send:
      if (Connection* c = connection_for(completion.token)) on_send(*c, completion.result);
      break;
    case Op::read:
      if (Connection* c = connection_for(completion.token)) on_doorbell(*c, completion.result);
      break;
    case Op::cancel:
    case Op::write:
      break;
    case Op::file_write:
    case Op::file_sync:
      on_journal_completion(completion);
      break;
    case Op::file_read:
      on_journal_read(completion);
      break;
  }
}

std::string Shard::describe_counters() const {
  char line[1800];
  std::snprintf(line, sizeof line,
                "shard %u: accepted=%llu closed=%llu frames_in=%llu bytes_in=%llu publishes=%llu "
                "deliveries=%llu bytes_out=%llu protocol_errors=%llu refused=%llu "
                "slow_consumer_closes=%llu mailbox_overflows=%llu turns=%llu longest_turn_us=%llu "
                "pool_blocks=%llu sessions_resumed=%llu sessions_closed=%llu resyncs=%llu "
                "handoffs=%llu ping_timeouts=%llu sessions_open=%llu conflated=%llu "
                "deltas_computed=%llu delta_deliveries=%llu refreshes=%llu requests=%llu "
                "responses=%llu stray_responses=%llu shared_bodies=%llu shared_deliveries=%llu "
                "memory_sheds=%llu memory_refusals=%llu recovery_trimmed=%llu pool_slab_bytes=%llu "
                "flow_holds=%llu flow_stalls=%llu flow_timeouts=%llu permission_denials=%llu "
                "tls_handshakes=%llu tls_failures=%llu ws_upgrades=%llu ws_failures=%llu connections_refused=%llu",
                index_, (unsigned long long)counters_.connections_accepted,
                (unsigned long long)counters_.connections_closed,
                (unsigned long long)counters_.frames_in, (unsigned long long)counters_.bytes_in,
                (unsigned long long)counters_.publishes, (unsigned long long)counters_.deliveries,
                (unsigned long long)counters_.bytes_out,
                (unsigned long long)counters_.protocol_errors,
                (unsigned long long)counters_.refused_requests,
                (unsigned long long)counters_.slow_consumer_closes,
                (unsigned long long)counters_.mailbox_overflows,
                (unsigned long long)counters_.loop_turns,
                (unsigned long long)(counters_.longest_turn_ns / 1000),
                (unsigned long long)pool_.stats().allocated_blocks,
                (unsigned long long)counters_.sessions_resumed,
                (unsigned long long)counters_.sessions_closed,
                (unsigned long long)counters_.resyncs, (unsigned long long)counters_.handoffs,
                (unsigned long long)counters_.ping_timeouts,
                (unsigned long long)std::count_if(sessions_.begin(), sessions_.end(),
                                                  [](const auto& s) { return s != nullptr; }),
                (unsigned long long)counters_.conflated,
                (unsigned long long)counters_.deltas_computed,
                (unsigned long long)counters_.delta_deliveries,
                (unsigned long long)counters_.refreshes,
                (unsigned long long)counters_.requests, (unsigned long long)counters_.responses,
                (unsigned long long)counters_.stray_responses,
                (unsigned long long)broadcast_.bodies_written(),
                (unsigned long long)counters_.shared_deliveries,
                (unsigned long long)counters_.memory_sheds,
                (unsigned long long)counters_.memory_refusals,
                (unsigned long long)counters_.recovery_trimmed,
                (unsigned long long)pool_.heap_bytes(),
                (unsigned long long)counters_.flow_holds, (unsigned long long)counters_.flow_stalls,
                (unsigned long long)counters_.flow_timeouts,
                (unsigned long long)counters_.permission_denials,
                (unsigned long long)counters_.tls_handshakes, (unsigned long long)counters_.tls_failures,
                (unsigned long long)counters_.ws_upgrades, (unsigned long long)counters_.ws_failures,
                (unsigned long long)counters_.connections_refused);
  return line;
}

}  // namespace brook::runtime
