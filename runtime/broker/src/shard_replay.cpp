// History and replay: a subscription may ask for the last N updates of each matching topic,
// or for every update after a topic sequence, before the live stream.
//
//   session shard                 owner shard (each)                    session shard
//   add_selector(b = N, c = since + 1) --> replay: per topic, in turn:
//                                            count interest, snapshot (its oldest wanted
//                                            update, snapshot_gap when older ones are gone),
//                                            history (the rest, up to the current value)
//                                          a batch at a time, then replay_paused --> queue
//                                          has room? replay_resume <---------------+
//                                          ... last topic: selector_added
//
// No gap and no duplicate between history and live updates: a topic's interest is counted
// in the same step that sends its history, so its live updates follow on the same FIFO ring,
// and none is delivered before. A topic the replay has not reached yet takes no live update
// for this subscription meanwhile; its history has them when it is reached (or says which
// are gone). The owner's live traffic is not held up: a batch is at most replay_batch updates,
// and the next waits until the subscriber's queue is under the flow-control low-water mark.
//
// History lives in memory (topic_history.hpp), a reference to each update's frame; with a
// data dir the journal holds the same updates, and a restart restores them. Every function
// runs on its shard's thread.
#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "shard.hpp"

namespace brook::runtime {

namespace {

// Updates per batch before the owner waits for the subscriber's queue to make room.
constexpr std::size_t replay_batch = 1024;
// Updates one replay sends in one turn at most, however fast its subscriber takes them (one
// on this shard answers at once): the turn's other work waits no longer than these take.
constexpr std::size_t replay_turn_share = 4 * replay_batch;

std::uint8_t property_flags_with_value(const OwnedTopic& topic, bool with_value) {
  return static_cast<std::uint8_t>(topic_property_flags(topic.properties) | (with_value ? snapshot_has_value : 0));
}

}  // namespace

HistoryLimits Shard::history_limits_for(const codec::TopicProperties& p) const {
  return {.depth = p.history >= 0 ? static_cast<std::uint32_t>(p.history) : options_.history_depth,
          .max_bytes = p.history_bytes != 0 ? p.history_bytes : options_.history_max_bytes,
          .max_age_ns = std::uint64_t{p.history_age_ms != 0 ? p.history_age_ms : options_.history_max_age_ms} *
                        1'000'000};
}

// Memory holds all of a topic's history unless it is journalled and its limits keep more than
// history.memory_bytes: then memory holds the newest of it, the journal all of it.
void Shard::set_history_limits(OwnedTopic& topic) {
  topic.history_limits = history_limits_for(topic.properties);
  topic.memory_limits = topic.history_limits;
  topic.spills = journal_ && topic.properties.durable && topic.history_limits.depth > 0 &&
                 topic.history_limits.max_bytes > options_.history_memory_bytes;
  if (topic.spills) topic.memory_limits.max_bytes = options_.history_memory_bytes;
  else topic.journal_index.clear();
}

std::uint64_t Shard::new_topic_epoch() {
  // splitmix64, seeded from the clock and the shard: a topic made anew (another run without
  // a data dir, wiped storage) gets another epoch. 48 bits travel in a shard message.
  if (epoch_state_ == 0) epoch_state_ = history_clock_ns() ^ (std::uint64_t{index_} << 56) ^ 0x9e3779b97f4a7c15ull;
  std::uint64_t z = (epoch_state_ += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z = (z ^ (z >> 31)) & ((std::uint64_t{1} << 48) - 1);
  return z == 0 ? 1 : z;
}

void Shard::record_history(OwnedTopic& topic) {
  if (topic.history_limits.depth == 0) return;
  topic.frame->add_ref();
  topic.history.push({topic.seq, history_clock_ns(), topic.frame}, topic.memory_limits);
}

// [u32 selector bytes][selector] then per position [u64 epoch][u64 seq][u16 path bytes][path]:
// a shard-internal record, read only by read_resume_buffer below.
SharedBuffer* Shard::resume_buffer(const Subscription& subscription, unsigned shard) {
  const std::string selector = subscription.selector.text();
  std::size_t bytes = 4 + selector.size();
  for (const ResumePosition& p : subscription.positions)
    if (owner_of(p.path) == shard) bytes += 18 + p.path.size();
  SharedBuffer* buffer = pool_.allocate(bytes);
  std::byte* at = buffer->data();
  auto put = [&](const void* data, std::size_t n) {
    std::memcpy(at, data, n);
    at += n;
  };
  const auto selector_bytes = static_cast<std::uint32_t>(selector.size());
  put(&selector_bytes, 4);
  put(selector.data(), selector.size());
  for (const ResumePosition& p : subscription.positions) {
    if (owner_of(p.path) != shard) continue;
    const auto path_bytes = static_cast<std::uint16_t>(p.path.size());
    put(&p.epoch, 8);
    put(&p.seq, 8);
    put(&path_bytes, 2);
    put(p.path.data(), p.path.size());
  }
  return buffer;
}

std::string_view Shard::read_resume_buffer(const SharedBuffer& buffer, Replay& replay) {
  const std::byte* at = buffer.data();
  const std::byte* end = at + buffer.size();
  std::uint32_t selector_bytes;
  std::memcpy(&selector_bytes, at, 4);
  std::string_view selector(reinterpret_cast<const char*>(at + 4), selector_bytes);
  at += 4 + selector_bytes;
  replay.resume = true;
  while (at + 18 <= end) {
    std::uint64_t epoch, seq;
    std::uint16_t path_bytes;
    std::memcpy(&epoch, at, 8);
    std::memcpy(&seq, at + 8, 8);
    std::memcpy(&path_bytes, at + 16, 2);
    replay.positions[std::string(reinterpret_cast<const char*>(at + 18), path_bytes)] = {epoch, seq};
    at += 18 + path_bytes;
  }
  return selector;
}

void Shard::run_replay(std::uint64_t subscription_key) {
  if (replaying_) return;  // a resume handled inside the loop below: the loop goes on
  replaying_ = true;
  std::size_t sent_this_turn = 0;
  for (;;) {
    auto it = std::find_if(replays_.begin(), replays_.end(),
                           [&](const auto& r) { return r->subscription_key == subscription_key; });
    if (it == replays_.end()) break;
    Replay& replay = **it;
    if (replay.cancelled) {
      if (!replay.journal.reading) replays_.erase(it);  // else its read's completion does
      break;
    }
    if (replay.waiting || replay.journal.reading) break;
    if (sent_this_turn >= replay_turn_share) {
      replays_to_continue_.push_back(subscription_key);
      break;
    }
    std::size_t sent = 0;
    // History older than memory comes from the journal first, for every topic that needs it
    // in one pass; each read's completion goes on (on_journal_read), and once the journal has
    // no more, memory sends the rest of those topics.
    if (!replay.journal_checked) {
      replay.journal_checked = true;
      start_journal_read(replay);
    }
    if (replay.journal.active) {
      if (!replay.journal.exhausted && read_journal(replay)) break;
      sent += finish_journal_read(replay);
    }
    while (replay.next < replay.topics.size() && sent < replay_batch && !replay.cancelled)
      sent += replay_topic(replay, *replay.topics[replay.next++]);
    sent_this_turn += sent;
    if (replay.cancelled) continue;  // erased above
    if (replay.next == replay.topics.size()) {
      const unsigned to = replay.to;
      // Sending may have added replays (the vector moved; the Replay did not).
      std::erase_if(replays_, [&](const auto& r) { return r.get() == &replay; });
      // After the history on the same FIFO ring: the subscriber knows it has all of it.
      send_to(to, {ShardMessageKind::selector_added, 0, 0, 0, subscription_key, 0, 0, nullptr});
      break;
    }
    replay.waiting = true;
    // When the subscriber is on this shard its answer comes back at once and the loop goes on.
    send_to(replay.to, {ShardMessageKind::replay_paused, 0, 0, 0, subscription_key, 0, 0, nullptr});
  }
  replaying_ = false;
  std::erase_if(replays_, [](const auto& r) { return r->cancelled && !r->journal.reading; });
}

std::uint64_t Shard::wanted_from(const Replay& replay, const OwnedTopic& topic,
                                 std::uint64_t& since_plus_one) const {
  since_plus_one = replay.since_plus_one;
  if (replay.resume) {
    // After the client's position in this epoch; from the start of the history otherwise.
    since_plus_one = 1;
    const auto publish = codec::read_trusted_publish(topic.frame->data(), topic.frame->size());
    if (auto found = replay.positions.find(std::string(publish.path));
        found != replay.positions.end() && found->second.first == topic.epoch)
      since_plus_one = found->second.second + 1;
  }
  if (since_plus_one != 0) return since_plus_one;  // since + 1
  return topic.seq >= replay.history ? topic.seq - replay.history + 1 : 1;
}

void Shard::send_replayed(const Replay& replay, const OwnedTopic& topic, std::uint64_t seq, SharedBuffer* frame,
                          bool as_snapshot, bool with_value, bool gap) {
  if (!as_snapshot) {  // gap: the updates before it are gone (flagged on the client's update)
    send_to(replay.to, {ShardMessageKind::history, gap ? snapshot_gap : std::uint8_t{0}, 0, 0, topic.key, seq,
                        replay.subscription_key, frame});
    return;
  }
  send_to(replay.to, {ShardMessageKind::snapshot,
                      static_cast<std::uint8_t>(property_flags_with_value(topic, with_value) |
                                                (gap ? snapshot_gap : 0)),
                      static_cast<std::uint16_t>(topic.epoch >> 32), static_cast<std::uint32_t>(topic.epoch),
                      topic.key, seq, replay.subscription_key, frame});
}

// Memory's part of a topic's history, and the start of its live updates for this
// subscription: both in this one step.
std::size_t Shard::replay_topic(Replay& replay, OwnedTopic& topic, const Replay::JournalTopic* from_journal) {
  if (topic.interest[replay.to]++ == 0) topic.interested_mask |= std::uint64_t{1} << replay.to;
  TopicHistory& history = topic.history;
  history.expire(history_clock_ns(), topic.history_limits);
  if (from_journal && from_journal->sent_first) {
    // The journal sent its snapshot and older updates: memory sends the rest as history. (A
    // pass that ended early, a failed journal, may leave a hole between the two: flagged.)
    std::size_t sent = 0;
    const std::size_t first = history.first_after(from_journal->next_seq - 1);
    for (std::size_t i = first; i < history.size(); ++i, ++sent) {
      history[i].frame->add_ref();
      send_replayed(replay, topic, history[i].seq, history[i].frame, false, true,
                    i == first && history[i].seq > from_journal->next_seq);
    }
    return sent;
  }
  // Memory decides (the journal had none of it), gap included.
  // The first sequence the subscriber wants, and where the history has it.
  std::uint64_t since_plus_one;
  const std::uint64_t wanted = wanted_from(replay, topic, since_plus_one);
  const std::size_t first = history.first_after(wanted - 1);
  const std::uint64_t oldest_kept = first < history.size() ? history[first].seq : topic.seq + 1;
  // A subscriber ahead of the topic holds sequences this broker never made durable: it must
  // start again, like one whose updates are gone.
  const bool ahead = since_plus_one != 0 && wanted > topic.seq + 1;
  const bool gap = ahead || (wanted <= topic.seq && oldest_kept > wanted);
  if (first == history.size() || ahead) {
    // Nothing kept to send: the current value when the subscriber lacks updates (flagged),
    // else the topic alone (the subscriber holds its value already).
    topic.frame->add_ref();
    send_replayed(replay, topic, topic.seq, topic.frame, true, gap && topic.has_value, gap);
    return 1;
  }
  history[first].frame->add_ref();
  send_replayed(replay, topic, history[first].seq, history[first].frame, true, true, gap);
  for (std::size_t i = first + 1; i < history.size(); ++i) {
    history[i].frame->add_ref();
    send_replayed(replay, topic, history[i].seq, history[i].frame, false, true, false);
  }
  return history.size() - first;
}

std::size_t Shard::continue_replays() {
  auto keys = std::move(replays_to_continue_);
  replays_to_continue_.clear();
  for (std::uint64_t key : keys) run_replay(key);
  return keys.size();
}

void Shard::on_replay_resume(const ShardMessage& m) {
  for (auto& replay : replays_)
    if (replay->subscription_key == m.a) replay->waiting = false;
  run_replay(m.a);
}

std::vector<OwnedTopic*> Shard::cancel_replay(std::uint64_t subscription_key) {
  std::vector<OwnedTopic*> unsent;
  for (auto& replay : replays_) {
    if (replay->subscription_key != subscription_key || replay->cancelled) continue;
    unsent.assign(replay->topics.begin() + static_cast<std::ptrdiff_t>(replay->next), replay->topics.end());
    // Topics a journal pass handed to memory have their interest counted: they were sent.
    std::erase_if(unsent, [&](OwnedTopic* t) { return replay->journal.handed_over.contains(t); });
    replay->cancelled = true;
  }
  if (!replaying_) std::erase_if(replays_, [](const auto& r) { return r->cancelled && !r->journal.reading; });
  return unsent;
}

// Subscriber side.

void Shard::on_history(const ShardMessage& m) {
  Session* s = nullptr;
  if (auto owner = subscription_owner_.find(m.c); owner != subscription_owner_.end())
    s = sessions_[owner->second].get();
  TopicBinding* binding = nullptr;
  if (s)
    if (auto found = s->bindings.find(m.a); found != s->bindings.end()) binding = &found->second;
  // Never backwards: a topic this session already had from another subscription has moved on.
  const bool wanted = binding && binding->held_topic_seq < m.b;
  const std::uint16_t flags = codec::frame_flag_sequenced | ((m.flags & snapshot_gap) ? codec::frame_flag_resync : 0);
  const bool queued = wanted && enqueue_update(*s, *binding, false, m.b, m.buffer, nullptr, flags) == QueuedBody::value;
  if (binding) binding->queued_sequence = 0;  // conflation must not replace an update before this one
  if (!queued) m.buffer->release();
}

bool Shard::wants_more_history(const Session& s) const {
  if (!s.connection) return false;  // a detached session drains nothing
  return flow_marks_.enabled() ? flow_marks_.under(s.out) : s.out.frames() < 2 * replay_batch;
}

void Shard::on_replay_paused(unsigned from, const ShardMessage& m) {
  auto owner = subscription_owner_.find(m.a);
  if (owner == subscription_owner_.end()) return;  // gone: the owner cancels on remove_selector
  Session& s = *sessions_[owner->second];
  if (s.ended) return;
  if (wants_more_history(s)) {
    send_to(from, {ShardMessageKind::replay_resume, 0, 0, 0, m.a, 0, 0, nullptr});
    return;
  }
  s.replays_waiting.emplace_back(from, m.a);
}

void Shard::resume_replays(Session& s) {
  auto waiting = std::move(s.replays_waiting);
  s.replays_waiting.clear();
  for (const auto& [owner, key] : waiting)
    send_to(owner, {ShardMessageKind::replay_resume, 0, 0, 0, key, 0, 0, nullptr});
}

}  // namespace brook::runtime
