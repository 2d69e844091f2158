// Slow subscribers, against a real brookd: with a conflated topic a stalled subscriber ends
// with the latest values (fewer updates, none out of order) while a healthy one on the same
// topics sees every update; with the drop-oldest queue policy a subscriber past the queue
// limit keeps its session and is resynchronised with current values instead of closed.
#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"
#include "broker_process.hpp"
#include "fault_proxy.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using namespace std::chrono_literals;
constexpr auto long_wait = std::chrono::seconds(20);
constexpr int topics = 10;
constexpr int updates_per_topic = 2000;

struct Seen {
  std::uint64_t topic_seq;
  std::string value;
  bool resync;
};

// Every update per path, in arrival order.
class Recorder {
 public:
  void add(const Update& u) {
    std::lock_guard lock(mutex_);
    by_path_[std::string(u.path)].push_back({u.topic_seq, std::string(u.text()), u.resync});
    ++count_;
    changed_.notify_all();
  }
  template <class Predicate>
  bool wait(Predicate done, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return done(by_path_); });
  }
  std::map<std::string, std::vector<Seen>> snapshot() const {
    std::lock_guard lock(mutex_);
    return by_path_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return count_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, std::vector<Seen>> by_path_;
  std::size_t count_ = 0;
};

std::string path_of(int topic) { return "Prices/p" + std::to_string(topic); }
// 1 KiB values: 20 MB in all, more than the socket buffers between the broker and a stalled
// subscriber hold, so that the broker's queue for it really backs up.
std::string value_of(int topic, int i) {
  std::string v = "p" + std::to_string(topic) + "=" + std::to_string(i) + ";";
  v.resize(1024, '.');
  return v;
}

bool has_last_values(const std::map<std::string, std::vector<Seen>>& seen) {
  for (int t = 0; t < topics; ++t) {
    auto it = seen.find(path_of(t));
    if (it == seen.end() || it->second.empty() ||
        it->second.back().value != value_of(t, updates_per_topic))
      return false;
  }
  return true;
}

Status subscribe(Client& client, const std::string& selector, Recorder& recorder) {
  auto done = std::make_shared<std::promise<Status>>();
  auto answer = done->get_future();
  client.subscribe(selector, [&recorder](const Update& u) { recorder.add(u); },
                   [done](const Status& s) { done->set_value(s); });
  if (answer.wait_for(long_wait) != std::future_status::ready) return {ErrorCode::internal, "no answer"};
  return answer.get();
}

// Publishes updates_per_topic values to every topic, round robin, and waits for the last ack.
// Every 20 rounds it calls `paced(i)`, which may wait for a reader: a subscriber that reads
// is then never more than 200 KiB behind, however loaded the machine.
Status publish_all(Client& publisher, const std::function<void(int)>& paced = [](int) {}) {
  for (int i = 1; i < updates_per_topic; ++i) {
    for (int t = 0; t < topics; ++t) publisher.publish(path_of(t), value_of(t, i));
    if (i % 20 == 0) paced(i);
  }
  Status last;
  for (int t = 0; t < topics; ++t) {
    const std::string last_value = value_of(t, updates_per_topic);
    auto f = publisher.publish_acked(path_of(t), std::as_bytes(std::span(last_value)));
    if (f.wait_for(long_wait) != std::future_status::ready) return {ErrorCode::internal, "no ack"};
    last = f.get();
    if (!last) return last;
  }
  return last;
}

// Per topic: topic sequences strictly increase, values follow them.
std::string disorder(const std::map<std::string, std::vector<Seen>>& seen) {
  for (const auto& [path, list] : seen)
    for (std::size_t i = 1; i < list.size(); ++i)
      if (list[i].topic_seq <= list[i - 1].topic_seq && !list[i].resync)
        return path + ": topic_seq " + std::to_string(list[i].topic_seq) + " after " +
               std::to_string(list[i - 1].topic_seq);
  return {};
}

TEST(Conflation, stalled_subscriber_gets_the_latest_values_while_a_healthy_one_gets_every_update) {
  BrokerProcess broker(with_shards(1));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Client publisher, healthy, slow;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client(healthy, broker.url(), "healthy"));
  ASSERT_TRUE(connect_client_once(slow, proxy.url(), "slow"));
  for (int t = 0; t < topics; ++t) {
    // Whole values: deltas would shrink the stalled backlog below the point where the broker
    // starts to conflate (delta_test.cpp covers conflation with deltas).
    auto created = publisher.create_topic(
        path_of(t), {.type = TopicType::string, .conflate = true, .deltas = false});
    ASSERT_EQ(created.wait_for(long_wait), std::future_status::ready);
    ASSERT_TRUE(created.get());
  }
  Recorder healthy_seen, slow_seen;
  ASSERT_TRUE(subscribe(healthy, "Prices//", healthy_seen));
  ASSERT_TRUE(subscribe(slow, "Prices//", slow_seen));

  ASSERT_TRUE(proxy.stall(0, FaultProxy::Direction::to_client));
  auto healthy_has = [&](int i) {
    return healthy_seen.wait(
        [i](const auto& seen) {
          auto it = seen.find(path_of(topics - 1));
          return it != seen.end() && it->second.size() >= static_cast<std::size_t>(i);
        },
        long_wait);
  };
  ASSERT_TRUE(publish_all(publisher, [&](int i) { healthy_has(i); }));
  ASSERT_TRUE(healthy_seen.wait([](const auto& s) { return has_last_values(s); }, long_wait));
  ASSERT_TRUE(proxy.resume(0));
  ASSERT_TRUE(slow_seen.wait([](const auto& s) { return has_last_values(s); }, long_wait))
      << "the stalled subscriber did not reach the latest values; it has " << slow_seen.count();

  auto all = healthy_seen.snapshot();
  for (int t = 0; t < topics; ++t) {
    const auto& list = all[path_of(t)];
    ASSERT_EQ(list.size(), static_cast<std::size_t>(updates_per_topic)) << path_of(t);
    for (int i = 0; i < updates_per_topic; ++i)
      ASSERT_EQ(list[i].value, value_of(t, i + 1)) << "the healthy subscriber missed an update";
  }
  EXPECT_EQ(disorder(slow_seen.snapshot()), "");
  EXPECT_LT(slow_seen.count(), static_cast<std::size_t>(topics * updates_per_topic))
      << "nothing was conflated for the stalled subscriber";
  EXPECT_EQ(slow.state(), ClientState::connected);
  slow.close();
  healthy.close();
  publisher.close();
  broker.stop();
  std::uint64_t conflated = 0;
  for (auto& [shard, n] : broker.shard_counter("conflated")) conflated += n;
  EXPECT_GT(conflated, 0u) << broker.log();
}

TEST(QueueLimitPolicy, drop_oldest_resyncs_a_subscriber_past_the_limit_instead_of_closing_it) {
  BrokerConfig config;
  config.shards = 1;
  // Flow control off: it would hold the publisher back while the proxy's socket buffers take
  // it all, and the queue would never reach its limit (flow_control_test.cpp covers the two
  // together).
  config.config_toml = "[session]\nqueue_max_frames = 64\nqueue_limit_policy = \"drop-oldest\"\n"
                       "[flow]\nhigh_water_bytes = 0\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Client publisher, slow;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client_once(slow, proxy.url(), "slow"));
  std::atomic<bool> closed{false};
  slow.on_close([&](const std::string&) { closed = true; });
  Recorder seen;
  ASSERT_TRUE(subscribe(slow, "Prices//", seen));

  ASSERT_TRUE(proxy.stall(0, FaultProxy::Direction::to_client));
  ASSERT_TRUE(publish_all(publisher));  // far more than 64 frames behind
  ASSERT_TRUE(proxy.resume(0));
  ASSERT_TRUE(seen.wait([](const auto& s) { return has_last_values(s); }, long_wait))
      << "no current values after the drop; got " << seen.count();
  auto all = seen.snapshot();
  bool any_resync = false;
  for (const auto& [path, list] : all)
    for (const auto& u : list) any_resync |= u.resync;
  EXPECT_TRUE(any_resync) << "the gap was not reported";
  EXPECT_EQ(disorder(all), "");
  EXPECT_FALSE(closed.load()) << "the session was closed instead of resynchronised";
  EXPECT_EQ(slow.state(), ClientState::connected);
  slow.close();
  publisher.close();
  broker.stop();
  std::uint64_t resyncs = 0, closes = 0;
  for (auto& [shard, n] : broker.shard_counter("resyncs")) resyncs += n;
  for (auto& [shard, n] : broker.shard_counter("slow_consumer_closes")) closes += n;
  EXPECT_GE(resyncs, 1u) << broker.log();
  EXPECT_EQ(closes, 0u) << broker.log();
}

}  // namespace
}  // namespace brook::test
