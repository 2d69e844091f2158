// The owner shard's side of the journal (journal_writer.hpp, journal_topics.hpp): topics come
// back from it before the shard takes a connection, every update and creation of a topic is
// appended to it, and the answer to an acknowledged publish waits until the journal has the
// update durable under the sync policy. Subscribers get an update at once, without waiting
// for the disk: the journal orders acknowledgements, not deliveries. All on the shard's thread.
#include <bit>
#include <cstdio>
#include <cstring>
#include <utility>

#include "shard.hpp"

namespace brook::runtime {

void Shard::adopt_journal(std::unique_ptr<journal::JournalWriter> writer,
                          std::vector<journal::RestoredTopic> topics,
                          std::vector<journal::SessionRecord> sessions) {
  journal_ = std::move(writer);
  restored_ = std::move(topics);
  restored_sessions_ = std::move(sessions);
}

namespace {

SharedBuffer* buffer_of(BufferPool& pool, const std::vector<std::byte>& bytes) {
  SharedBuffer* buffer = pool.allocate(bytes.size());
  std::memcpy(buffer->data(), bytes.data(), bytes.size());
  return buffer;
}

}  // namespace

void Shard::restore_topics() {
  for (auto& restored : restored_) {
    SharedBuffer* frame = buffer_of(pool_, restored.frame);
    auto publish = codec::read_trusted_publish(frame->data(), frame->size());
    auto [topic, created] = topics_.try_emplace(publish.path);
    if (!created) {  // one record per path is restored: cannot happen, but never leak
      frame->release();
      continue;
    }
    const journal::TopicRecordHead& head = restored.head;
    topic_by_path_.emplace(std::string(publish.path), topic);
    topic->key = (std::uint64_t{index_} << 48) | next_topic_index_++;
    topic->properties = {.type = publish.type.value_or(codec::TopicType::string),
                         .conflate = (head.property_flags & topic_conflates) != 0,
                         .deltas = (head.property_flags & topic_without_deltas) == 0,
                         .retain = (head.property_flags & topic_not_retained) == 0,
                         .history = head.history,
                         .history_bytes = head.history_bytes,
                         .history_age_ms = head.history_age_ms,
                         .durable = true};
    set_history_limits(*topic);
    topic->epoch = head.epoch != 0 ? head.epoch : new_topic_epoch();
    topic->seq = head.seq;
    topic->has_value = head.has_value;
    topic->frame = frame;
    topic->publishers = std::move(restored.publishers);
    for (const journal::RestoredUpdate& update : restored.history) {
      // The current value's buffer is shared with the history, as a live update's is.
      SharedBuffer* entry = update.seq == head.seq ? (frame->add_ref(), frame) : buffer_of(pool_, update.frame);
      topic->history.push({update.seq, update.time_ns, entry}, topic->memory_limits);
    }
    if (topic->spills) topic->journal_index = std::move(restored.index);
  }
  restored_ = {};
}

std::uint64_t Shard::journal_topic(const OwnedTopic& topic) {
  return journal_update(topic, topic.seq, topic.frame, history_clock_ns(), topic.publishers);
}

std::uint64_t Shard::journal_update(const OwnedTopic& topic, std::uint64_t seq, const SharedBuffer* frame,
                                    std::uint64_t time_ns,
                                    std::span<const journal::PublisherPosition> publishers) {
  static_assert(sizeof(journal::PublisherPosition) == journal::publisher_position_bytes);
  const auto head = journal::encode_topic_head({.seq = seq,
                                                .property_flags = topic_property_flags(topic.properties),
                                                .has_value = topic.has_value,
                                                .history = topic.properties.history,
                                                .history_bytes = topic.properties.history_bytes,
                                                .history_age_ms = topic.properties.history_age_ms,
                                                .epoch = topic.epoch,
                                                .time_ns = time_ns});
  return journal_->append(journal::RecordType::topic, head.bytes, {frame->data(), frame->size()},
                          std::as_bytes(publishers));
}

void Shard::acknowledge_when_durable(std::uint64_t lsn, unsigned from, std::uint32_t request_id,
                                     std::uint64_t a) {
  if (lsn <= journal_->durable_lsn() && pending_acks_.empty()) {
    send_to(from, {ShardMessageKind::reply, 0, 0, request_id, a, 0, 0, nullptr});
    return;
  }
  pending_acks_.push_back({lsn, from, request_id, a});
}

void Shard::deliver_when_durable(std::uint64_t lsn, OwnedTopic& topic, PublisherRef publisher) {
  topic.frame->add_ref();
  pending_deliveries_.push_back({lsn, &topic, topic.seq, topic.frame, publisher});
}

// Once written, not once on disk: a written update survives a crash of brookd, and the
// fdatasync of `always` would add a flush to every delivery (its acknowledgement waits for it).
// `all`: the journal failed, nothing is written again: what waits is delivered anyway, as the
// broker goes on serving subscribers.
void Shard::deliver_durable_updates(bool all) {
  const std::uint64_t durable = journal_->written_lsn();
  while (!pending_deliveries_.empty() && (all || pending_deliveries_.front().lsn <= durable)) {
    const PendingDelivery d = pending_deliveries_.front();
    pending_deliveries_.pop_front();
    fan_out(*d.topic, d.seq, d.frame, d.publisher);
    d.frame->release();
  }
}

void Shard::on_journal_completion(const transport::Completion& completion) {
  if (!journal_) return;
  journal_->on_completion(*reactor_, completion, now_ns());
  deliver_durable_updates(!journal_->failure().empty());
  const std::uint64_t durable = journal_->durable_lsn();
  while (!pending_acks_.empty() && pending_acks_.front().lsn <= durable) {
    const PendingAck& ack = pending_acks_.front();
    if (ack.probed_seq != 0)
      send_to(ack.from, {ShardMessageKind::durable_through, 0, 0, 0, ack.a, ack.probed_seq, 0, nullptr});
    else
      send_to(ack.from, {ShardMessageKind::reply, 0, 0, ack.request_id, ack.a, 0, 0, nullptr});
    pending_acks_.pop_front();
  }
  if (!journal_->failure().empty()) refuse_pending_acks();
  bool snapshot_durable = false;
  while (!pending_snapshots_.empty() && pending_snapshots_.front().last_lsn <= durable) {
    durable_snapshot_segment_ = pending_snapshots_.front().segment_first;
    pending_snapshots_.pop_front();
    snapshot_durable = true;
  }
  if (snapshot_durable) remove_unretained_segments();
}

// A segment goes once a durable snapshot after it holds every topic's state, and no topic
// whose history spills still keeps an update in it. Not while a replay reads the journal: a
// descriptor closed under a read in flight could be reused.
void Shard::remove_unretained_segments() {
  if (durable_snapshot_segment_ == 0 || journal_->segments().size() < 2 || journal_reading()) return;
  std::uint64_t keep_from = durable_snapshot_segment_;
  const std::uint64_t now = history_clock_ns();
  for (auto& [path, topic] : topic_by_path_) {
    if (!topic->spills || topic->journal_index.empty()) continue;
    topic->journal_index.trim(topic->seq, topic->history_limits, now);
    keep_from = std::min(keep_from, topic->journal_index.oldest_lsn());
  }
  // A replay between two reads goes on from its segment; one paused for its subscriber holds
  // none (a stalled subscriber must not keep the journal from shrinking): if its segment
  // goes, it goes on from where the index says, and what is gone arrives flagged as a gap.
  for (const auto& replay : replays_)
    if (replay->journal.active && !replay->waiting)
      keep_from = std::min(keep_from, replay->journal.position.first_lsn);
  if (int removed = journal_->segments().remove_before(keep_from); removed < 0)
    std::fprintf(stderr, "brookd: shard %u: cannot remove old journal segments: %s\n", index_,
                 std::strerror(-removed));
}

// A spilling topic keeps updates that only older segments hold: memory lacks some of what
// its index points at. Otherwise (a quiet topic, a new shard count, everything expired)
// its history is written into the snapshot as any topic's, and no old segment is kept for it.
bool Shard::spills_beyond_memory(OwnedTopic& topic) {
  const std::uint64_t now = history_clock_ns();
  topic.history.expire(now, topic.history_limits);
  topic.journal_index.trim(topic.seq, topic.history_limits, now);
  if (topic.journal_index.empty() || topic.history.empty()) return false;
  const std::uint64_t depth = topic.history_limits.depth;
  const std::uint64_t kept_from = topic.seq >= depth ? topic.seq - depth + 1 : 1;
  const std::uint64_t memory_first = topic.history[0].seq;
  return memory_first > kept_from && memory_first > topic.journal_index.oldest_seq();
}

void Shard::snapshot_topics() {
  journal_->begin_snapshot();
  for (const auto& [path, topic] : topic_by_path_) {
    if (!topic->properties.durable) continue;
    if (topic->spills && spills_beyond_memory(*topic)) {
      journal_topic(*topic);  // its history stays where it is, in segments kept for it
      continue;
    }
    if (topic->spills) topic->journal_index.clear();  // its history is all in memory: written below
    // Its history, oldest first; the newest entry is the current value. Without history (or
    // when the current value has no entry), the topic's state as of now.
    // The record of the current value carries the topic's publisher positions.
    const TopicHistory& history = topic->history;
    const bool current_in_history = !history.empty() && history[history.size() - 1].seq == topic->seq;
    for (std::size_t i = 0; i + (current_in_history ? 1 : 0) < history.size(); ++i) {
      const std::uint64_t lsn = journal_update(*topic, history[i].seq, history[i].frame, history[i].time_ns);
      if (topic->spills) topic->journal_index.add(history[i].seq, lsn, history[i].time_ns, history[i].frame->size());
    }
    if (current_in_history) {
      const HistoryEntry& current = history[history.size() - 1];
      const std::uint64_t lsn = journal_update(*topic, topic->seq, current.frame, current.time_ns, topic->publishers);
      if (topic->spills) topic->journal_index.add(current.seq, lsn, current.time_ns, current.frame->size());
    } else {
      journal_topic(*topic);
    }
  }
  snapshot_sessions();
  journal_->end_snapshot();
  // Its records go to the segment being written or to one the next write starts.
  pending_snapshots_.push_back({journal_->last_lsn(), journal_->segment_first_lsn()});
}

void Shard::refuse_pending_acks() {
  for (const PendingAck& ack : pending_acks_)
    // A probe's session never hears Received (its client keeps what it sent, as nothing
    // became durable); one that is closing ends with storage_failed.
    if (ack.probed_seq == 0)
      send_to(ack.from, {ShardMessageKind::reply, 0, static_cast<std::uint16_t>(codec::ErrorCode::storage_failed),
                       ack.request_id, ack.a, 0, 0, text_buffer(pool_, "journal: " + journal_->failure())});
    else
      send_to(ack.from, {ShardMessageKind::durable_through, 0, static_cast<std::uint16_t>(codec::ErrorCode::storage_failed),
                         0, ack.a, ack.probed_seq, 0, nullptr});
  pending_acks_.clear();
}

// A fail-safe client lets go of what it sent once the broker reports it Received. With a
// journal that must mean durable, or a crash loses a publish the client no longer has:
//
//   session shard: every 256 frames ---durability_probe(seq)---> each owner published to since
//                                                                the last probe: answers once
//   Received(seq) to the client <---durable_through(seq)------- its journal is durable up to
//   once every owner answered                                   its last record then
//
// One probe round at a time per session; frames that arrive meanwhile go in the next.
void Shard::report_durable_received(Session& s) {
  if (s.probes_outstanding > 0) return;
  if (s.record_due) journal_session(s);  // the probe below must cover its record
  s.probed_seq = s.inbound_seq;
  if (s.unprobed_owners == 0) {  // nothing journalled since the last report
    s.reported_inbound_seq = s.probed_seq;
    if (s.connection) send_control(*s.connection, encoder_.received(s.probed_seq));
    return;
  }
  const std::uint64_t owners = std::exchange(s.unprobed_owners, 0);
  s.probes_outstanding = static_cast<std::uint32_t>(std::popcount(owners));
  const std::uint64_t token = session_token(s);
  for (std::uint64_t mask = owners; mask; mask &= mask - 1)
    send_to(static_cast<unsigned>(std::countr_zero(mask)),
            {ShardMessageKind::durability_probe, 0, 0, 0, token, s.probed_seq, 0, nullptr});
}

void Shard::on_durability_probe(unsigned from, const ShardMessage& m) {
  if (!journal_->failure().empty()) {
    send_to(from, {ShardMessageKind::durable_through, 0, static_cast<std::uint16_t>(codec::ErrorCode::storage_failed),
                   0, m.a, m.b, 0, nullptr});
    return;
  }
  if (journal_->last_lsn() <= journal_->durable_lsn() && pending_acks_.empty()) {
    send_to(from, {ShardMessageKind::durable_through, 0, 0, 0, m.a, m.b, 0, nullptr});
    return;
  }
  pending_acks_.push_back({journal_->last_lsn(), from, 0, m.a, m.b});
}

void Shard::on_durable_through(const ShardMessage& m) {
  Session* s = session_for(m.a);
  if (!s || s->probes_outstanding == 0 || s->probed_seq != m.b) return;
  if (m.code == static_cast<std::uint16_t>(codec::ErrorCode::storage_failed)) {
    // Never durable now: the probe round stays open (no Received again), and a Close ends.
    if (s->closing && !s->ended) end_session(*s, codec::ErrorCode::storage_failed, "the broker's journal failed");
    return;
  }
  if (--s->probes_outstanding != 0) return;
  s->reported_inbound_seq = s->probed_seq;
  if (s->connection && s->connection->state == ConnectionState::attached)
    send_control(*s->connection, encoder_.received(s->probed_seq));
  if (s->closing && !s->ended) {
    if (s->reported_inbound_seq < s->inbound_seq) report_durable_received(*s);
    if (s->reported_inbound_seq >= s->inbound_seq) end_session(*s, codec::ErrorCode::none, {});
  }
}

bool Shard::journal_idle() const {
  return !journal_ || (pending_acks_.empty() && pending_deliveries_.empty() &&
                       (journal_->idle() || !journal_->failure().empty()));
}

}  // namespace brook::runtime
