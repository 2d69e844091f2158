// Durable sessions (journal_sessions.hpp): a client-named session's home shard journals its
// token and subscriptions, and every owner shard journals, with each update, which frame of
// which session it came from. After a restart the home shard holds the session, detached, for
// its reconnect timeout; its fail-safe client resumes it with its token:
//
//   client --Connect(token, resend_from)--> home shard: the session counts the client's
//                                           frames on from resend_from
//   client <--Connected(resumed, restored)-- (the frames queued before the restart are gone)
//   client --ResumeSubscriptions(positions)--> each subscription resumes after the client's
//                                              place in each topic (shard_replay.cpp)
//   client --the frames it still holds--> an owner that journalled one of them before the
//                                         restart recognises it and does not apply it again
//
// All on the shard's thread.
#include <sys/random.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

namespace {

// How many sessions' positions a topic remembers. A session's position matters only while it
// may send a frame again, which it stops doing once the broker reports the frame Received
// (every 256 frames, and at the next liveness check, at most a second, for a quiet client):
// a topic with more publishers than this forgets the least recent ones.
constexpr std::size_t publishers_per_topic = 16;

// How far above the last count its journal knows a session's frames go on, for a client that
// does not know how they were counted: far more frames than a session sends between two of
// its records (a segment roll writes one), so that none of its new frames is taken for an old
// one, also when a crash comes before a record says where the count went.
constexpr std::uint64_t frame_count_jump = std::uint64_t{1} << 32;

std::uint64_t random_publisher_key() {
  std::uint64_t key = 0;
  while (key == 0)
    if (::getrandom(&key, sizeof key, 0) != sizeof key) key = 0;
  return key;
}

std::uint64_t realtime_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
}

}  // namespace

void Shard::make_durable(Session& s) {
  s.publisher_key = random_publisher_key();
  journal_session(s);
}

void Shard::session_changed(Session& s) {
  if (s.publisher_key == 0 || s.record_due) return;
  s.record_due = true;
  changed_sessions_.push_back(session_token(s));
  // A frame that changed the session is Received once its record is durable.
  s.unprobed_owners |= std::uint64_t{1} << index_;
}

void Shard::journal_changed_sessions() {
  for (std::uint64_t token : changed_sessions_)
    if (Session* s = session_for(token); s && s->record_due) journal_session(*s);
  changed_sessions_.clear();
}

void Shard::journal_session(Session& s) {
  s.record_due = false;
  if (s.publisher_key == 0 || !journal_ || !journal_->failure().empty()) return;
  journal::SessionRecord record;
  record.principal = s.principal;
  record.number = s.number;
  std::memcpy(record.token.data(), s.token.data(), record.token.size());
  record.reconnect_timeout_ms = s.reconnect_timeout_ms;
  record.time_ns = realtime_ns();
  record.through = std::max({s.inbound_seq, s.skip_through, s.restored_through});
  record.publisher_key = s.publisher_key;
  record.ended = s.ended;
  if (!s.ended) {
    record.subscriptions.reserve(s.subscriptions.size());
    for (const Subscription& sub : s.subscriptions)
      record.subscriptions.push_back({sub.request_id, 0, 0, sub.selector.text()});
  }
  journal::encode_session_record(record, session_record_);
  journal_->append(journal::RecordType::session, session_record_);
  // A frame that changed the session is Received once its record is durable.
  s.unprobed_owners |= std::uint64_t{1} << index_;
}

void Shard::snapshot_sessions() {
  for (auto& owned : sessions_)
    if (Session* s = owned.get(); s && !s->ended && s->publisher_key != 0) journal_session(*s);
}

void Shard::restore_sessions() {
  const std::uint64_t now = now_ns();
  for (journal::SessionRecord& record : restored_sessions_) {
    std::string id = record.id();
    if (session_by_id_.contains(id)) continue;
    Session& s = new_session();
    s.principal = record.principal;
    s.number = record.number;
    s.id = std::move(id);
    std::memcpy(s.token.data(), record.token.data(), s.token.size());
    s.reconnect_timeout_ms = std::min(record.reconnect_timeout_ms, options_.reconnect_timeout_max_ms);
    s.publisher_key = record.publisher_key;
    s.restored_through = record.through;
    s.restored = true;
    for (journal::SessionSubscriptionRecord& sub : record.subscriptions) {
      auto selector = Selector::parse(sub.selector);
      if (!selector) continue;  // the broker wrote it from a parsed selector: cannot happen
      s.subscriptions.push_back({.key = 0, .request_id = sub.request_id, .pending_shards = 0,
                                 .selector = std::move(*selector)});
    }
    // Detached, as after a dropped connection: the client has its reconnect timeout.
    s.expires_ns = now + s.reconnect_timeout_ms * 1'000'000ull;
    session_by_id_.emplace(s.id, s.slot);
  }
  restored_sessions_ = {};
}

void Shard::attach_restored(Session& s, std::uint64_t resend_from, codec::ConnectedMsg& connected) {
  s.restored = false;
  connected.restored = true;
  if (resend_from > 0) {
    // The client counts its frames as before the restart: the ones it sends again keep their
    // numbers, and an owner that journalled one knows it. It sends its positions next.
    s.inbound_seq = resend_from - 1;
    s.awaiting_positions = true;
  } else {
    // A client that does not know how the session's frames were counted (a new login, a
    // process that lost its count, or one older than restored sessions) counts on from far
    // above the old frames. It may not send positions: the subscriptions start again from
    // the topics' current values, flagged resync.
    s.inbound_seq = s.restored_through + frame_count_jump;
    for (Subscription& sub : s.subscriptions) {
      if (sub.key != 0) continue;
      sub.key = new_subscription_key();
      sub.resync = true;
      add_selector(s, sub);
    }
  }
  s.reported_inbound_seq = s.inbound_seq;
}

void Shard::reattach_awaiting_positions(Session& s, codec::ConnectedMsg& connected) {
  // The connection that took the restored session back dropped before the client's positions
  // came: start the restored stream again. Subscriptions made since wait for the positions
  // too (the client's aliases of them go with this reset), and nothing queued is kept.
  unbind_all(s);
  s.out.clear();
  for (Subscription& sub : s.subscriptions) {
    withdraw_selector(sub.key);
    sub.key = 0;
  }
  connected.restored = true;
}

void Shard::resume_restored_subscriptions(Session& s, const codec::ResumeSubscriptionsMsg& m) {
  if (!s.awaiting_positions) return;
  s.awaiting_positions = false;
  for (Subscription& sub : s.subscriptions) {
    if (sub.key != 0) continue;  // made in this session since the restart
    sub.positions.clear();
    sub.key = new_subscription_key();
    sub.resume = true;
    for (const codec::TopicPosition& p : m.positions)
      if (sub.selector.matches(p.path)) sub.positions.push_back({std::string(p.path), p.epoch, p.seq});
    add_selector(s, sub);
  }
}

bool Shard::already_applied(const OwnedTopic& topic, std::uint64_t publisher_key, std::uint64_t frame) const {
  for (auto p = topic.publishers.rbegin(); p != topic.publishers.rend(); ++p)
    if (p->key == publisher_key) return frame <= p->frame;
  return false;
}

void Shard::record_publisher(OwnedTopic& topic, std::uint64_t publisher_key, std::uint64_t frame) {
  auto& publishers = topic.publishers;
  // Most topics have one publisher, which is then always the last entry.
  if (!publishers.empty() && publishers.back().key == publisher_key) {
    publishers.back().frame = frame;
    return;
  }
  auto known = std::find_if(publishers.begin(), publishers.end(),
                            [&](const journal::PublisherPosition& p) { return p.key == publisher_key; });
  if (known != publishers.end()) publishers.erase(known);
  else if (publishers.size() >= publishers_per_topic) publishers.erase(publishers.begin());
  publishers.push_back({publisher_key, frame});
}

}  // namespace brook::runtime
