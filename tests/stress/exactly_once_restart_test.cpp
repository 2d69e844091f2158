// Stress: twenty kill -9 restarts of a brookd with a data dir under a fail-safe publisher and a
// fail-safe subscriber, both on named (durable) sessions. The publisher publishes numbered
// values flat out to four topics with plain publishes (its client keeps each one until the
// broker reports it durable), about 100,000 a second so that each kill -9 comes mid-stream;
// the subscriber never subscribes again. At the end every value
// the publisher published is in its topic's history exactly once and in order, and the
// subscriber received every one exactly once and in order: nothing lost, nothing twice.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using namespace std::chrono_literals;

constexpr int rounds = 20, topics = 4;
constexpr std::uint64_t most_per_round = 20'000;  // bounds each round's stream

std::string topic_of(std::uint64_t k) { return "Once/t" + std::to_string(k % topics); }

// Each topic's values as `log` holds them, in arrival order.
std::map<std::string, std::vector<std::uint64_t>> values_by_topic(const std::vector<Received>& entries) {
  std::map<std::string, std::vector<std::uint64_t>> values;
  for (const auto& e : entries)
    if (e.path.starts_with("Once/t")) values[e.path].push_back(std::stoull(e.value));
  return values;
}

TEST(ExactlyOnceAcrossRestarts, twenty_kill_9s_lose_nothing_and_apply_nothing_twice) {
  const std::string data_dir = make_temp_dir("brook-exactly-once");
  BrokerConfig config = with_shards(2);
  config.listen = "127.0.0.1:" + std::to_string(free_port());
  config.extra_args = {"--data-dir", data_dir};
  // History covers everything, so the subscriber can always resume where it was.
  config.config_toml = "[history]\ndepth = 1000000\nmax_bytes = 1073741824\n";
  const std::string url = "tcp://" + config.listen;

  Client publisher, subscriber;
  UpdateLog log;
  std::atomic<int> new_sessions{0};
  for (Client* client : {&publisher, &subscriber})
    client->on_state_change([&](ClientState, ClientState to, const std::string& reason) {
      if (to == ClientState::connected && reason.starts_with("new session")) ++new_sessions;
    });
  subscriber.subscribe("Once//", log.handler());
  std::map<std::string, std::vector<std::uint64_t>> published;
  std::uint64_t next = 1;
  for (int round = 0; round < rounds; ++round) {
    BrokerProcess broker(config);
    BROOK_ASSERT_STARTED(broker);
    if (round == 0) {
      ASSERT_TRUE(publisher.connect(failsafe_named(url, "exactly-once-publisher", 31)));
      ASSERT_TRUE(subscriber.connect(failsafe_named(url, "exactly-once-subscriber", 32)));
    }
    std::atomic<bool> stop{false};
    std::thread stream([&] {
      for (std::uint64_t sent = 0; !stop.load() && sent < most_per_round; ++sent, ++next) {
        if (!publisher.publish(topic_of(next), std::to_string(next))) break;  // never: the queue is large
        published[topic_of(next)].push_back(next);
        // About 100,000 a second: the kill -9 comes in the middle of the stream.
        if (sent % 64 == 63) std::this_thread::sleep_for(500us);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(60 + 20 * (round % 5)));
    broker.crash();
    stop = true;
    stream.join();
  }
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  // Acknowledged after everything the publisher's session sent before it.
  ASSERT_EQ(publisher.publish_acked("Once/end", bytes_of("end")).wait_for(60s), std::future_status::ready);
  ASSERT_EQ(published.size(), static_cast<std::size_t>(topics));
  std::printf("published %llu values over %d restarts\n", static_cast<unsigned long long>(next - 1), rounds);

  // The journal: each topic's kept history is every published value, once, in order.
  UpdateLog history;
  Client reader;
  ASSERT_TRUE(connect_client_once(reader, broker.url(), "exactly-once-reader"));
  ASSERT_TRUE(subscribe_with(reader, "Once//", history, {.history = 0, .since = 0}));
  ASSERT_TRUE(history.wait_until(
      [&](const std::vector<Received>& e) { return values_by_topic(e) == published; }, 30s))
      << "the journal lost or doubled a value";

  // The subscriber: every value, once, in order, without a new session.
  const bool caught_up = log.wait_until(
      [&](const std::vector<Received>& e) { return values_by_topic(e) == published; }, 60s);
  if (!caught_up) {
    for (const auto& [path, values] : values_by_topic(log.entries())) {
      const auto& want = published[path];
      std::size_t same = 0;
      while (same < values.size() && same < want.size() && values[same] == want[same]) ++same;
      ADD_FAILURE() << path << ": " << values.size() << " received, " << want.size() << " published; first difference at "
                    << same << (same < values.size() ? ": got " + std::to_string(values[same]) : std::string())
                    << (same < want.size() ? ", wanted " + std::to_string(want[same]) : std::string());
    }
  }
  EXPECT_EQ(new_sessions.load(), 0) << "the broker lost a durable session";
  for (const auto& e : log.entries()) EXPECT_FALSE(e.resync) << e.path << " flagged a gap at " << e.value;
  publisher.close();
  subscriber.close();
  std::filesystem::remove_all(data_dir);
}

}  // namespace
}  // namespace brook::test
