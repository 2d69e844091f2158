// Send coalescing against a real brookd: above broker.send_coalesce_rate the subscribers of a
// fan-out get several updates per send, every one of them, in order; a single stream and
// anything below the rate get each update at once.
// The counts come from the broker's /metrics (brook_send_batch_frames: one sample per send
// of session frames, its value the frames it carried).
#include <gtest/gtest.h>

#include <thread>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "http_get.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

std::map<std::string, double> scrape(const BrokerProcess& broker) {
  HttpAnswer answer = http_get(broker.http_port(), "/metrics");
  EXPECT_EQ(answer.status, 200) << answer.error;
  return parse_prometheus(answer.body);
}

BrokerConfig coalescing_broker(std::string toml, unsigned shards) {
  BrokerConfig config = with_shards(shards);
  config.http = true;
  config.config_toml = std::move(toml);
  return config;
}

struct Sends {
  double sends = 0;
  double frames = 0;
};

Sends sends_of(const BrokerProcess& broker) {
  auto samples = scrape(broker);
  return {samples["brook_send_batch_frames_count"], samples["brook_send_batch_frames_sum"]};
}

// Publishes `count` numbered updates to `topic`, one every `gap`, and returns when all are
// handed to the client.
void publish_paced(Client& publisher, const std::string& topic, std::size_t count, std::chrono::microseconds gap) {
  auto due = std::chrono::steady_clock::now();
  for (std::size_t i = 1; i <= count; ++i) {
    publisher.publish(topic, std::to_string(i));
    due += gap;
    std::this_thread::sleep_until(due);
  }
}

// Every subscriber got 1..count on `topic`, in order, nothing twice.
void expect_whole_and_in_order(const UpdateLog& log, const std::string& topic, std::size_t count) {
  auto groups = log.by_path();
  const auto& got = groups[topic];
  ASSERT_EQ(got.size(), count);
  for (std::size_t i = 0; i < count; ++i) ASSERT_EQ(got[i].value, std::to_string(i + 1)) << "at " << i;
}

TEST(SendCoalescing, above_the_rate_a_send_carries_several_updates_and_every_one_arrives_in_order) {
  // A rate of 1 a second: coalescing from the first delivery on. A 10 ms window against an
  // update every millisecond: about 10 updates a send.
  BrokerProcess broker(coalescing_broker("[broker]\nsend_coalesce_us = 10000\nsend_coalesce_rate = 1\n", 2));
  BROOK_ASSERT_STARTED(broker);
  constexpr std::size_t subscribers = 20;  // 10 a shard: a fan-out, not a stream
  constexpr std::size_t count = 300;
  std::vector<UpdateLog> logs(subscribers);
  std::vector<std::unique_ptr<Client>> clients;
  for (std::size_t i = 0; i < subscribers; ++i) {
    clients.push_back(std::make_unique<Client>());
    ASSERT_TRUE(connect_and_subscribe(*clients.back(), broker.url(), "subscriber-" + std::to_string(i), "Coalesced//", logs[i]));
  }
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  const Sends before = sends_of(broker);
  publish_paced(publisher, "Coalesced/price", count, std::chrono::milliseconds(1));
  for (auto& log : logs) ASSERT_TRUE(log.wait_for(count, std::chrono::seconds(30)));
  for (auto& log : logs) expect_whole_and_in_order(log, "Coalesced/price", count);
  const Sends after = sends_of(broker);
  const double frames = after.frames - before.frames;
  const double sends = after.sends - before.sends;
  EXPECT_GE(frames, subscribers * count);
  // Sent at once, about one send per update and subscriber (6,000); coalesced, about 30 per
  // subscriber over the 300 ms. The bound leaves room for a slow machine's natural batching
  // either way, not for sends that were never held.
  EXPECT_LT(sends, subscribers * count / 4) << frames << " frames in " << sends << " sends";
}

// One subscriber and one publisher on a one-shard broker configured by `toml`: 200 updates
// at one a millisecond on `topic`, all delivered whole and in order; returns the sends the
// subscriber got them in (-1 if something failed first).
double sends_for_one_subscriber(const std::string& toml, const std::string& topic, std::size_t count) {
  BrokerProcess broker(coalescing_broker(toml, 1));
  if (!broker.started()) {
    ADD_FAILURE() << "brookd did not start";
    return -1;
  }
  UpdateLog log;
  Client subscriber;
  if (!connect_and_subscribe(subscriber, broker.url(), "subscriber", topic.substr(0, topic.find('/')) + "//", log)) {
    ADD_FAILURE() << "subscriber did not subscribe";
    return -1;
  }
  Client publisher;
  if (!connect_client(publisher, broker.url(), "publisher")) {
    ADD_FAILURE() << "publisher did not connect";
    return -1;
  }
  const Sends before = sends_of(broker);
  publish_paced(publisher, topic, count, std::chrono::milliseconds(1));
  if (!log.wait_for(count, std::chrono::seconds(30))) {
    ADD_FAILURE() << "only " << log.size() << " of " << count << " updates arrived";
    return -1;
  }
  expect_whole_and_in_order(log, topic, count);
  return sends_of(broker).sends - before.sends;
}

TEST(SendCoalescing, one_stream_above_the_rate_is_not_held) {
  // Coalescing from the first delivery on, but only one subscriber: its sends are not a
  // fan-out's many small ones, and holding them would only leave it idle.
  constexpr std::size_t count = 200;
  EXPECT_GT(sends_for_one_subscriber("[broker]\nsend_coalesce_us = 10000\nsend_coalesce_rate = 1\n", "Stream/price", count),
            count / 2);
}

TEST(SendCoalescing, below_the_rate_every_update_goes_at_once) {
  // The default rate (200,000 deliveries a second) is far above this feed's 1,000. Held,
  // these 200 updates would have gone in about 20 sends; a loaded machine batches a few by
  // itself.
  constexpr std::size_t count = 200;
  EXPECT_GT(sends_for_one_subscriber("[broker]\nsend_coalesce_us = 10000\n", "Prompt/price", count), count / 2);
}

}  // namespace
}  // namespace brook::test
