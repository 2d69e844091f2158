#pragma once
// What a brook::Client subscription received, recorded for assertions. A handler() appends on
// the client's thread; the test thread waits (bounded) and reads copies. Declare a log before
// the Client that feeds it, so that the client (and its thread) goes first.
#include <gtest/gtest.h>

#include <sys/resource.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"

namespace brook::test {

struct Received {
  std::string path;
  TopicType type = TopicType::string;
  std::uint64_t topic_seq = 0;
  std::uint64_t session_seq = 0;
  std::string value;  // the value's bytes
  bool resync = false;
  std::uint64_t epoch = 0;
};

class UpdateLog {
 public:
  UpdateHandler handler() {
    return [this](const Update& u) {
      std::lock_guard lock(mutex_);
      entries_.push_back(
          {std::string(u.path), u.type, u.topic_seq, u.session_seq, std::string(u.text()), u.resync, u.epoch});
      changed_.notify_all();
    };
  }

  // True once at least `count` updates arrived; false if the timeout passed first.
  bool wait_for(std::size_t count, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return entries_.size() >= count; });
  }
  // True once `predicate(entries)` holds; evaluated under the lock after every update.
  template <class Predicate>
  bool wait_until(Predicate predicate, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return predicate(entries_); });
  }

  // Wakes the waiters so that they evaluate their predicates again (for predicates that also
  // look at state outside the log).
  void poke() {
    std::lock_guard lock(mutex_);
    changed_.notify_all();
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }
  std::vector<Received> entries() const {
    std::lock_guard lock(mutex_);
    return entries_;
  }
  // Entries grouped by topic path, each group in arrival order.
  std::map<std::string, std::vector<Received>> by_path() const {
    std::map<std::string, std::vector<Received>> groups;
    for (auto& e : entries()) groups[e.path].push_back(e);
    return groups;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<Received> entries_;
};

// Polls `condition` every few milliseconds until it holds or the timeout passes.
template <class Condition>
bool eventually(Condition condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

inline Status connect_client(Client& client, const std::string& url,
                             const std::string& name = "integration-test") {
  ClientOptions options;
  options.url = url;
  options.client_name = name;
  options.connect_timeout = std::chrono::seconds(10);
  return client.connect(options);
}

// The same without reconnection: a lost connection ends the session at once.
inline Status connect_client_once(Client& client, const std::string& url,
                                  const std::string& name = "integration-test") {
  ClientOptions options;
  options.url = url;
  options.client_name = name;
  options.connect_timeout = std::chrono::seconds(10);
  options.reconnect_timeout = std::chrono::milliseconds(0);
  options.retries = 0;
  return client.connect(options);
}

// A fail-safe client on a named session: it retries without end, quickly.
inline ClientOptions failsafe_named(const std::string& url, const std::string& name, std::int64_t session_number) {
  ClientOptions options;
  options.url = url;
  options.client_name = name;
  options.session_number = session_number;
  options.connect_timeout = std::chrono::seconds(10);
  options.reconnect_delay = std::chrono::milliseconds(20);
  options.retries = -1;
  return options;
}

// Subscribes and waits (bounded) for the broker's verdict. After an ok status every current
// value of the matching topics is already in `log`.
inline Status subscribe_and_wait(Client& client, std::string selector, UpdateLog& log,
                                 Subscription* subscription = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto verdict = std::make_shared<std::promise<Status>>();
  auto answer = verdict->get_future();
  Subscription s =
      client.subscribe(std::move(selector), log.handler(),
                       [verdict](const Status& status) { verdict->set_value(status); });
  if (subscription) *subscription = s;
  if (answer.wait_for(timeout) != std::future_status::ready)
    return Status{ErrorCode::internal, "no answer to subscribe within the timeout"};
  return answer.get();
}

// The same with history options (SubscribeOptions); a replay may take a while.
inline Status subscribe_with(Client& client, const std::string& selector, UpdateLog& log,
                             const SubscribeOptions& options) {
  auto verdict = std::make_shared<std::promise<Status>>();
  auto answer = verdict->get_future();
  client.subscribe(selector, log.handler(), options, [verdict](const Status& s) { verdict->set_value(s); });
  if (answer.wait_for(std::chrono::seconds(60)) != std::future_status::ready)
    return Status{ErrorCode::internal, "no answer to subscribe within the timeout"};
  return answer.get();
}

// A ping round trip: everything this client sent before it has been read by its shard.
inline bool round_trip(Client& client,
                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  auto pong = client.ping();
  if (pong.wait_for(timeout) != std::future_status::ready) return false;
  try {
    pong.get();
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// The broker's verdict on an acknowledged call, or `internal` if none came within the timeout.
inline Status await(std::future<Status> answer,
                    std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  if (answer.wait_for(timeout) != std::future_status::ready)
    return Status{ErrorCode::internal, "no answer within the timeout"};
  return answer.get();
}

inline std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

// connect_client(), then subscribe_and_wait(): a watching client in one step.
inline Status connect_and_subscribe(Client& client, const std::string& url, const std::string& name,
                                    std::string selector, UpdateLog& log) {
  if (Status s = connect_client(client, url, name); !s) return s;
  return subscribe_and_wait(client, std::move(selector), log);
}

// What a client's error listener reported. listener() runs on the client's thread.
class ErrorLog {
 public:
  std::function<void(const Status&)> listener() {
    return [this](const Status& s) {
      std::lock_guard lock(mutex_);
      messages_.push_back(s.message);
    };
  }
  // The first report, or "" when there was none.
  std::string first() const {
    std::lock_guard lock(mutex_);
    return messages_.empty() ? std::string() : messages_.front();
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::string> messages_;
};

// Counts updates whose values are the numbers 1, 2, 3, ... and notes any gap or repeat.
// take() runs on the client's thread; the test's thread reads the atomics.
struct InOrderCounter {
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> out_of_order{false};
  std::uint64_t next = 1;

  void take(const Update& u) {
    std::uint64_t n = 0;
    std::from_chars(u.text().data(), u.text().data() + u.text().size(), n);
    if (n != next) out_of_order.store(true);
    next = n + 1;
    received.fetch_add(1, std::memory_order_release);
  }
};

// Raises the soft limit on open descriptors to the hard one; true if `wanted` fit.
inline bool raise_descriptor_limit(std::size_t wanted) {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur >= wanted;
}

}  // namespace brook::test
