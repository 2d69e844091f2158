// History older than its topics' memory, read back from the owner's journal: for topics whose
// history limits keep more than history.memory_bytes (their history "spills").
//
//   run_replay, first: start_journal_read gathers the replay's topics that want sequences
//     memory no longer holds, and starts at the lowest of their index marks
//     read_journal --> reactor: read 1 MiB of the segment --> on_journal_read
//       send_journal_records: those topics' records among them, each topic's first as its
//         snapshot, the others as history
//       a topic reached its memory's oldest: hand_over_to_memory: memory sends the rest of
//         it, and its live updates start, in that one step (it leaves the replay's topics
//         when the pass ends)
//       every topic did, or the journal has no more: finish_journal_read hands the others
//         over; run_replay goes on with the topics that never needed the journal
//       else the next read; after journal_batch updates, first a pause until the
//         subscriber's queue has room (replay_paused / replay_resume, as for memory)
//
// One pass for all of them: a shard's journal interleaves its topics, and a pass per topic
// would read it once per topic. The shard's live traffic goes on between reads: the file read
// is the kernel's, through the shard's own io_uring, never a blocking pread on the loop. These
// topics take no live update for this subscription meanwhile, as for any topic its replay has
// not reached; memory keeps what arrives, and hand_over_to_memory sends it in the step that
// starts the live updates: no gap and no duplicate. Updates memory dropped before the
// journal wrote them are waited for a turn. Every function runs on the shard's thread.
#include <algorithm>
#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

namespace {

constexpr std::size_t journal_read_bytes = 1u << 20;
// Below the journal writer's token (2^48 - 1) and far above every connection's.
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

bool Shard::start_journal_read(Replay& replay) {
  if (!journal_ || !journal_->failure().empty() || stopping_) return false;
  Replay::JournalCursor& c = replay.journal;
  const std::uint64_t now = history_clock_ns();
  std::uint64_t from_lsn = ~0ull;
  for (std::size_t i = replay.next; i < replay.topics.size(); ++i) {
    OwnedTopic& topic = *replay.topics[i];
    if (!topic.spills || topic.journal_index.empty()) continue;
    topic.history.expire(now, topic.history_limits);
    // Memory empty: nothing it keeps is left but the current value, which memory sends.
    if (topic.history.empty()) continue;
    topic.journal_index.trim(topic.seq, topic.history_limits, now);
    std::uint64_t since_plus_one;
    const std::uint64_t from = wanted_from(replay, topic, since_plus_one);
    // What the topic keeps, not whatever its segments still hold: older is a gap.
    const std::uint64_t depth = topic.history_limits.depth;
    const std::uint64_t kept_from =
        std::max(topic.journal_index.oldest_seq(), topic.seq >= depth ? topic.seq - depth + 1 : 1);
    const std::uint64_t memory_first = memory_first_seq(topic);
    const std::uint64_t read_from = std::max(from, kept_from);
    if (read_from >= memory_first || from > topic.seq) continue;
    const std::string path(codec::read_trusted_publish(topic.frame->data(), topic.frame->size()).path);
    c.by_path.emplace(path, c.topics.size());
    c.topics.push_back({&topic, from, read_from, false, false});
    from_lsn = std::min(from_lsn, topic.journal_index.lsn_for(read_from));
  }
  if (c.topics.empty()) return false;
  auto position = journal_->segments().locate(from_lsn);
  if (!position) {
    c = {};
    return false;
  }
  c.active = true;
  c.position = *position;
  c.token = journal_read_token_base | (++next_journal_read_ & 0xffffffffu);
  return true;
}

// True when a read is in flight (or waits for the journal to write), false when the journal
// has nothing more for this topic.
bool Shard::read_journal(Replay& replay) {
  Replay::JournalCursor& c = replay.journal;
  // Again: the segment being written grows, and a paused replay's segment may have gone.
  auto position = journal_->segments().advance(c.position, 0);
  if (!position) {
    std::uint64_t lsn = ~0ull;
    for (const Replay::JournalTopic& t : c.topics)
      if (!t.reached_memory) lsn = std::min(lsn, t.topic->journal_index.lsn_for(t.next_seq));
    position = journal_->segments().locate(lsn);
  }
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
  c.requested = static_cast<unsigned>(std::min<std::uint64_t>(c.position.bytes_left, c.buffer.size()));
  reactor_->read_file(c.position.fd, c.buffer.data(), c.requested, c.position.offset, c.token);
  c.reading = true;
  return true;
}

std::size_t Shard::send_journal_records(Replay& replay, std::span<const std::byte> bytes, std::size_t& consumed) {
  Replay::JournalCursor& c = replay.journal;
  std::size_t sent = 0;
  consumed = 0;
  while (consumed < bytes.size() && c.reached < c.topics.size()) {
    journal::RecordView record;
    const journal::RecordCheck check = journal::read_record_unchecked(bytes.subspan(consumed), record);
    if (check == journal::RecordCheck::incomplete) break;  // the next read starts with it
    bool damaged = check == journal::RecordCheck::damaged;
    Replay::JournalTopic* wanted = nullptr;
    std::span<const std::byte> frame_bytes;
    if (!damaged) {
      consumed += record.bytes;
      if (record.type != journal::RecordType::topic) continue;
      auto body = record.payload.size() > journal::topic_record_head_bytes
                      ? journal::topic_record_body(record.payload.subspan(journal::topic_record_head_bytes))
                      : std::nullopt;
      if (body) {
        auto found = c.by_path.find(body->path);
        if (found == c.by_path.end()) continue;  // another topic's: its checksum is its reader's
        wanted = &c.topics[found->second];
        frame_bytes = body->frame;
      }
      damaged = !body || !journal::record_checksum_matches(record);
    }
    if (damaged) {
      std::fprintf(stderr, "brookd: shard %u: a damaged journal record at offset %llu: history read stops there\n",
                   index_, static_cast<unsigned long long>(c.position.offset + consumed));
      c.exhausted = true;
      break;
    }
    if (wanted->reached_memory) continue;
    OwnedTopic& topic = *wanted->topic;
    const journal::TopicRecordHead head = journal::decode_topic_head(record.payload);
    // Another epoch is a topic of the same path before it was removed; a sequence already
    // sent is a snapshot's copy of an update; one older than the age limit is not kept.
    if (head.epoch != topic.epoch || head.seq < wanted->next_seq || head.seq == 0) continue;
    if (topic.history_limits.max_age_ns != 0 && head.time_ns + topic.history_limits.max_age_ns < history_clock_ns())
      continue;
    if (head.seq >= memory_first_seq(topic)) {
      // Memory has the rest: it sends them now, and the topic's live updates start, before a
      // later publish can push what it holds out.
      wanted->reached_memory = true;
      ++c.reached;
      sent += hand_over_to_memory(replay, *wanted);
      continue;
    }
    SharedBuffer* frame = pool_.allocate(frame_bytes.size());
    std::memcpy(frame->data(), frame_bytes.data(), frame_bytes.size());
    // A jump after the first: its segment went while the replay was paused.
    send_replayed(replay, topic, head.seq, frame, !wanted->sent_first, true,
                  head.seq > (wanted->sent_first ? wanted->next_seq : wanted->wanted_from));
    wanted->sent_first = true;
    wanted->next_seq = head.seq + 1;
    ++sent;
  }
  if (c.reached == c.topics.size()) c.exhausted = true;
  return sent;
}

// Memory's part of a topic the pass served, and its live updates from now on; it leaves the
// replay's list of topics still to send.
std::size_t Shard::hand_over_to_memory(Replay& replay, const Replay::JournalTopic& t) {
  replay.journal.handed_over.insert(t.topic);
  return replay_topic(replay, *t.topic, &t);
}

// The pass ended (every topic reached its memory, or the journal has no more): the topics
// still in it are handed over now.
std::size_t Shard::finish_journal_read(Replay& replay) {
  Replay::JournalCursor& c = replay.journal;
  std::size_t sent = 0;
  for (const Replay::JournalTopic& t : c.topics)
    if (!t.reached_memory) sent += hand_over_to_memory(replay, t);
  std::erase_if(replay.topics, [&](OwnedTopic* topic) { return c.handed_over.contains(topic); });
  std::vector<std::byte> buffer = std::move(c.buffer);
  c = {};
  c.buffer = std::move(buffer);
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
  if (completion.result <= 0) {
    if (completion.result < 0)
      std::fprintf(stderr, "brookd: shard %u: reading history from the journal failed: %s\n", index_,
                   std::strerror(-completion.result));
    c.exhausted = true;
  } else {
    std::size_t consumed = 0;
    const auto bytes = static_cast<std::size_t>(completion.result);
    c.sent += send_journal_records(replay, {c.buffer.data(), bytes}, consumed);
    c.short_reads = consumed == 0 ? c.short_reads + 1 : 0;
    if (!c.exhausted && consumed == 0) {
      // A record longer than the buffer: the next read takes it whole. (Shorter: the read
      // came back short, and the next one reads it again.)
      std::uint32_t payload = 0;
      if (bytes >= 4) std::memcpy(&payload, c.buffer.data(), 4);
      const std::size_t whole = journal::record_header_bytes + payload;
      // Damage: a whole read that holds no whole record, or a file shorter than its index.
      if (payload > journal::max_payload_bytes || (bytes == c.requested && whole <= c.buffer.size()) ||
          c.short_reads > 2)
        c.exhausted = true;
      else if (whole > c.buffer.size())
        c.buffer.resize(whole);
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
