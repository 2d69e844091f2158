// History older than a topic's memory, read back from its owner's journal: for a topic whose
// history limits keep more than history.memory_bytes (its history "spills").
//
//   run_replay: topics[next] wants sequences memory no longer holds
//     start_journal_read: from the topic index's mark at or before the first one wanted
//     read_journal --> reactor: read 256 KiB of the segment --> on_journal_read
//       send_journal_records: the topic's records among them, as its snapshot then history
//       memory's oldest reached (or the journal has no more): run_replay goes on, and
//         replay_topic sends the rest from memory and counts the subscriber's interest
//       else the next read; after replay_batch updates, first a pause until the
//         subscriber's queue has room (replay_paused / replay_resume, as for memory)
//
// The shard's live traffic goes on between reads: the file read is the kernel's, through the
// shard's own io_uring, never a blocking pread on the loop. The topic takes no live update for
// this subscription meanwhile, as for any topic its replay has not reached; memory keeps what
// arrives, and replay_topic sends it in the step that starts the live updates: no gap and no
// duplicate. Updates memory dropped before the journal wrote them are waited for a turn.
// Every function runs on the shard's thread.
#include <algorithm>
#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

namespace {

constexpr std::size_t journal_read_bytes = 256u << 10;
// Above the journal writer's token and below every connection's.
constexpr std::uint64_t journal_read_token_base = 0xfffe00000000ull;
// Updates read from the journal before the replay waits for its subscriber's queue.
constexpr std::uint64_t journal_batch = 1024;

std::uint64_t memory_first_seq(const OwnedTopic& topic) {
  return topic.history.empty() ? topic.seq + 1 : topic.history[0].seq;
}

}  // namespace

bool Shard::journal_reading() const {
  return std::any_of(replays_.begin(), replays_.end(), [](const auto& r) { return r->journal.reading; });
}

bool Shard::start_journal_read(Replay& replay, OwnedTopic& topic) {
  if (!journal_ || !topic.spills || topic.journal_index.empty() || !journal_->failure().empty()) return false;
  topic.history.expire(history_clock_ns(), topic.history_limits);
  std::uint64_t since_plus_one;
  const std::uint64_t from = wanted_from(replay, topic, since_plus_one);
  const std::uint64_t memory_first = memory_first_seq(topic);
  if (from >= memory_first || from > topic.seq || topic.journal_index.oldest_seq() >= memory_first) return false;
  auto position = journal_->segments().locate(topic.journal_index.lsn_for(from));
  if (!position) return false;
  Replay::JournalCursor& c = replay.journal;
  c.finish();
  c.active = true;
  c.wanted_from = c.next_seq = from;
  c.position = *position;
  if (c.token == 0) c.token = journal_read_token_base | (++next_journal_read_ & 0xffffffffu);
  return true;
}

// True when a read is in flight (or waits for the journal to write), false when the journal
// has nothing more for this topic.
bool Shard::read_journal(Replay& replay) {
  Replay::JournalCursor& c = replay.journal;
  // Again: the segment being written grows, and a paused replay's segment may have gone.
  auto position = journal_->segments().advance(c.position, 0);
  if (!position)
    position = journal_->segments().locate(replay.topics[replay.next]->journal_index.lsn_for(c.next_seq));
  if (!position || !journal_->failure().empty()) {
    c.exhausted = true;
    return false;
  }
  c.position = *position;
  if (c.position.bytes_left == 0) {
    if (journal_->written_lsn() < journal_->last_lsn()) {
      replays_to_continue_.push_back(replay.subscription_key);  // what memory dropped is on its way
      return true;
    }
    c.exhausted = true;
    return false;
  }
  if (c.buffer.size() < journal_read_bytes) c.buffer.resize(journal_read_bytes);
  const auto bytes = static_cast<unsigned>(std::min<std::uint64_t>(c.position.bytes_left, c.buffer.size()));
  reactor_->read_file(c.position.fd, c.buffer.data(), bytes, c.position.offset, c.token);
  c.reading = true;
  return true;
}

std::size_t Shard::send_journal_records(Replay& replay, OwnedTopic& topic, std::span<const std::byte> bytes,
                                        std::size_t& consumed) {
  Replay::JournalCursor& c = replay.journal;
  const std::string_view path = codec::read_trusted_publish(topic.frame->data(), topic.frame->size()).path;
  std::size_t sent = 0;
  consumed = 0;
  while (consumed < bytes.size()) {
    if (c.next_seq >= memory_first_seq(topic)) {
      c.exhausted = true;
      break;
    }
    journal::RecordView record;
    const journal::RecordCheck check = journal::read_record(bytes.subspan(consumed), record);
    if (check == journal::RecordCheck::incomplete) break;  // the next read starts with it
    if (check == journal::RecordCheck::damaged) {
      std::fprintf(stderr, "brookd: shard %u: a damaged journal record at offset %llu: history read stops there\n",
                   index_, static_cast<unsigned long long>(c.position.offset + consumed));
      c.exhausted = true;
      break;
    }
    consumed += record.bytes;
    if (record.type != journal::RecordType::topic || record.payload.size() <= journal::topic_record_head_bytes)
      continue;
    auto body = journal::topic_record_body(record.payload.subspan(journal::topic_record_head_bytes));
    if (!body || body->path != path) continue;
    const journal::TopicRecordHead head = journal::decode_topic_head(record.payload);
    // Another epoch is a topic of the same path before it was removed; a sequence already
    // sent is a snapshot's copy of an update.
    if (head.epoch != topic.epoch || head.seq < c.next_seq || head.seq == 0) continue;
    if (head.seq >= memory_first_seq(topic)) {
      c.exhausted = true;
      break;
    }
    SharedBuffer* frame = pool_.allocate(body->frame.size());
    std::memcpy(frame->data(), body->frame.data(), body->frame.size());
    send_replayed(replay, topic, head.seq, frame, !c.sent_first, true, !c.sent_first && head.seq > c.wanted_from);
    c.sent_first = true;
    c.next_seq = head.seq + 1;
    ++sent;
  }
  return sent;
}

void Shard::on_journal_read(const transport::Completion& completion) {
  auto it = std::find_if(replays_.begin(), replays_.end(), [&](const auto& r) {
    return r->journal.reading && r->journal.token == completion.token;
  });
  if (it == replays_.end()) return;
  Replay& replay = **it;
  Replay::JournalCursor& c = replay.journal;
  c.reading = false;
  if (replay.cancelled) {
    if (!replaying_) replays_.erase(it);
    return;
  }
  OwnedTopic& topic = *replay.topics[replay.next];
  if (completion.result <= 0) {
    if (completion.result < 0)
      std::fprintf(stderr, "brookd: shard %u: reading history from the journal failed: %s\n", index_,
                   std::strerror(-completion.result));
    c.exhausted = true;
  } else {
    std::size_t consumed = 0;
    const auto bytes = static_cast<std::size_t>(completion.result);
    c.sent += send_journal_records(replay, topic, {c.buffer.data(), bytes}, consumed);
    if (!c.exhausted && consumed == 0) {
      // A record longer than the buffer: the next read takes it whole.
      std::uint32_t payload = 0;
      if (bytes >= 4) std::memcpy(&payload, c.buffer.data(), 4);
      const std::size_t whole = journal::record_header_bytes + payload;
      if (bytes < 4 || payload > journal::max_payload_bytes || whole <= c.buffer.size()) c.exhausted = true;
      else c.buffer.resize(whole);
    }
    if (!c.exhausted) {
      auto next = journal_->segments().advance(c.position, consumed);
      if (next) c.position = *next;
      else c.exhausted = true;
    }
  }
  if (!c.exhausted && c.sent >= journal_batch) {
    c.sent = 0;
    replay.waiting = true;
    send_to(replay.to, {ShardMessageKind::replay_paused, 0, 0, 0, replay.subscription_key, 0, 0, nullptr});
    return;
  }
  run_replay(replay.subscription_key);
}

}  // namespace brook::runtime
