#pragma once
// What a shard tells the HTTP side about its sessions, topics and subscriptions, and the desk
// it is asked through. Per-session and per-topic detail is the shard's own (its thread alone
// touches it), so another thread cannot read it: it asks, the shard copies it out at the end
// of its next turn, and the asker waits. A shard nobody asks pays one relaxed load per turn.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace brook::runtime {

struct SessionReport {
  std::string id, principal, address, transport, state;
  unsigned shard = 0;
  std::uint32_t subscriptions = 0;
  std::uint64_t pending_frames = 0, pending_bytes = 0;
  std::uint64_t recovery_frames = 0, recovery_bytes = 0;
  double age_s = 0, idle_s = 0;
  bool holding_publishers = false, held_back = false;
};

struct ClosedSessionReport {
  std::string id, principal, address, transport, reason;
  unsigned shard = 0;
  std::int64_t closed_at_ms = 0;  // Unix time
  double age_s = 0;
};

struct TopicReport {
  std::string path, type;
  unsigned shard = 0;
  std::uint64_t sequence = 0;
  std::uint32_t subscribers = 0;  // matching subscriptions, on every shard
  bool retained = false, conflate = false;
  std::int32_t history = 0;
  std::uint32_t value_bytes = 0;
  std::optional<std::string> value;  // asked for: text, or hex of a binary value's start
  bool value_truncated = false;
};

struct SubscriptionReport {
  std::string session, selector;
  unsigned shard = 0;
  bool resync = false;
  std::uint32_t history = 0;
};

struct ReportRequest {
  bool sessions = false;
  bool topics = false;
  bool values = false;           // topics with their values
  std::string topic_prefix;      // topics under this path only
  bool subscriptions = false;
};

struct ShardReport {
  std::vector<SessionReport> sessions;
  std::vector<ClosedSessionReport> closed;
  std::vector<TopicReport> topics;
  std::vector<SubscriptionReport> subscriptions;
};

// One asker at a time per shard (the HTTP side serialises them); the shard answers once per
// turn. requested_ is the shard's hint to look; the rest is under the mutex.
class ReportDesk {
 public:
  // The asking thread: returns the report, or nothing if the shard did not answer in time.
  template <class Wake>
  std::optional<ShardReport> ask(const ReportRequest& request, std::chrono::milliseconds timeout, Wake&& wake) {
    std::unique_lock lock(mutex_);
    request_ = request;
    answer_.reset();
    const std::uint64_t ticket = ++asked_;
    requested_.store(true, std::memory_order_release);
    lock.unlock();
    wake();
    lock.lock();
    if (!answered_cv_.wait_for(lock, timeout, [&] { return answered_ >= ticket; })) return std::nullopt;
    return std::move(answer_);
  }
  // The shard's thread, once per turn.
  bool wanted() const noexcept { return requested_.load(std::memory_order_acquire); }
  template <class Build>
  void answer(Build&& build) {
    std::unique_lock lock(mutex_);
    requested_.store(false, std::memory_order_relaxed);
    const ReportRequest request = request_;
    const std::uint64_t ticket = asked_;
    lock.unlock();
    ShardReport report = build(request);  // the shard's data, read on its own thread
    lock.lock();
    if (ticket == asked_) answer_ = std::move(report);
    answered_ = ticket;
    answered_cv_.notify_all();
  }

 private:
  std::atomic<bool> requested_{false};
  std::mutex mutex_;
  std::condition_variable answered_cv_;
  ReportRequest request_;
  std::uint64_t asked_ = 0, answered_ = 0;
  std::optional<ShardReport> answer_;
};

}  // namespace brook::runtime
