// Flow control: a subscriber that is only slower than its publishers slows them down instead
// of being cut off.
//
//   publisher's shard            topic's owner              subscriber's shard
//   reads Publish  ---publish--> sequences, fan_out --deliver(publisher)--> enqueue_update
//        ^                                                                     |
//        |                                     unsent queue >= high-water mark |
//        +------------------------ flow_hold(publisher token) -----------------+
//   stops reading the connection: its TCP window (or shm ring) closes towards the publisher,
//   whose publish() waits; the client is told (FlowControl frame).
//
// The subscriber releases every publisher it holds once its queue is back under the low-water
// mark (after_progress, on each send that took bytes), when its connection goes, or when its
// session ends. A hold never outlives its cause: a subscriber that takes nothing for
// flow.max_stall_ms while holding publishers gets the queue-limit policy (drop-oldest with a
// resync, or close) and releases them, so a dead subscriber stalls a feed for a bounded time.
// A subscriber that keeps taking data, however slowly, sets the pace: nothing it was sent is
// dropped.
//
// Holds are counted on the publisher's session (held_by), not its connection: a publisher
// that reconnects is still held, and a hold from each of several subscribers counts once per
// subscriber. Hold and release for one publisher travel the same FIFO ring, so they arrive in
// order. Records already read when the hold arrives still go through: the queue overshoots the
// high-water mark by at most what the rings between the shards hold.
#include <algorithm>

#include "shard.hpp"

namespace brook::runtime {

void Shard::hold_publisher(Session& subscriber, unsigned shard, std::uint64_t token) {
  if (subscriber.ended || !subscriber.connection) return;  // a detached session is not draining
  for (const PublisherRef& held : subscriber.holding)
    if (held.token == token && held.shard == shard) return;
  if (subscriber.holding.empty()) {
    subscriber.holding_since_ns = now_ns();
    holding_sessions_.push_back(subscriber.slot);
    ++counters_.flow_holds;
  }
  subscriber.holding.push_back({shard, token});
  send_to(shard, {ShardMessageKind::flow_hold, 0, 0, 0, token, 0, 0, nullptr});
}

void Shard::release_publishers(Session& subscriber) {
  if (subscriber.holding.empty()) return;
  for (const PublisherRef& held : subscriber.holding)
    send_to(held.shard, {ShardMessageKind::flow_release, 0, 0, 0, held.token, 0, 0, nullptr});
  subscriber.holding.clear();
  auto it = std::find(holding_sessions_.begin(), holding_sessions_.end(), subscriber.slot);
  if (it != holding_sessions_.end()) {
    *it = holding_sessions_.back();
    holding_sessions_.pop_back();
  }
}

void Shard::check_flow(std::uint64_t now) {
  const std::uint64_t max_stall_ns = std::uint64_t{options_.flow_max_stall_ms} * 1'000'000;
  // Backwards: release_publishers() moves the last entry into the one it removes.
  for (std::size_t i = holding_sessions_.size(); i-- > 0;) {
    if (i >= holding_sessions_.size()) continue;
    Session* s = sessions_[holding_sessions_[i]].get();
    if (!s) {
      holding_sessions_[i] = holding_sessions_.back();
      holding_sessions_.pop_back();
      continue;
    }
    const Connection* c = s->connection;
    const std::uint64_t progress = std::max(s->holding_since_ns, c ? c->last_sent_ns : 0);
    if (now - std::min(now, progress) < max_stall_ns) continue;
    ++counters_.flow_timeouts;
    release_publishers(*s);
    apply_queue_limit_policy(*s, "flow control: the subscriber took nothing for " +
                                     std::to_string(options_.flow_max_stall_ms) +
                                     " ms while holding its publishers back (flow.max_stall_ms)");
  }
}

void Shard::on_flow_hold(const ShardMessage& m) {
  Session* s = session_for(m.a);
  if (!s || s->ended) return;
  if (s->held_by++ != 0) return;
  ++counters_.flow_stalls;
  // Reading stops at the next bytes that arrive (process_input, read_shm).
  if (Connection* c = s->connection; c && c->state == ConnectionState::attached)
    send_control(*c, encoder_.flow_control(true));
}

void Shard::on_flow_release(const ShardMessage& m) {
  Session* s = session_for(m.a);
  if (!s || s->held_by == 0 || --s->held_by != 0) return;
  Connection* c = s->connection;
  if (!c || c->state != ConnectionState::attached) return;
  send_control(*c, encoder_.flow_control(false));
  // A paused connection left the paused list when it was found held: list it again.
  if (c->paused) paused_.push_back(c->slot);
}

}  // namespace brook::runtime
