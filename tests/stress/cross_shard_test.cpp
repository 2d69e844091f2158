// Stress: two shards that feed each other. Publishers on both shards publish flat out to
// topics the other shard owns, and subscribers on both shards take every topic, so every
// update crosses a mailbox and its deliveries cross back. With tiny mailboxes (64 records)
// and with the default ones, for 20 s: every subscriber receives every update in order, and
// delivery never stops for a second. (Shards that stopped draining their mailboxes while
// back-pressured waited for each other for ever.) Under the same load, new named sessions
// whose Connect reaches a back-pressured shard (held with the connection's input) and belongs
// to the other shard are handed over and connect.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <functional>
#include <string>
#include <thread>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using clock = std::chrono::steady_clock;
constexpr auto run_for = std::chrono::seconds(20);
// Each publisher keeps at most this many updates ahead of the slower subscriber: far more
// than the mailboxes, socket buffers and queues between them hold, so the shards' rings run
// full, but not so many that a subscriber sharing the machine's two cores falls to the
// slow-consumer rules instead (those are tested on their own).
constexpr std::uint64_t window = 100'000;
constexpr std::uint64_t max_updates = 20'000'000;  // bounds each publisher whatever the rate

// A topic path whose owner (the hash of its path, modulo the shard count) is `shard`.
std::string topic_owned_by(unsigned shard, unsigned shards, const std::string& stem) {
  for (int i = 0;; ++i) {
    std::string path = stem + "/" + std::to_string(i);
    if (XXH3_64bits(path.data(), path.size()) % shards == shard) return path;
  }
}

// Counts one topic's updates on the client's thread and checks that they arrive in order:
// value N is the Nth update.
struct OrderedCount {
  std::atomic<std::uint64_t> received{0};
  std::atomic<bool> out_of_order{false};
  void take(std::string_view value) {
    std::uint64_t n = 0;
    std::from_chars(value.data(), value.data() + value.size(), n);
    std::uint64_t expected = received.load(std::memory_order_relaxed) + 1;
    if (n != expected) out_of_order.store(true);
    received.store(n, std::memory_order_release);
  }
};

struct Subscriber {
  Client client;
  std::array<OrderedCount, 2> topics;  // index: the publisher's shard
};

// `meanwhile` runs on a thread of its own while the traffic flows, until told to stop.
void cross_traffic_keeps_flowing(std::uint32_t mailbox_capacity,
                                 const std::function<void(BrokerProcess&, const std::atomic<bool>&)>& meanwhile = {}) {
  BrokerConfig config = with_shards(2);
  config.config_toml = "[shards]\nmailbox_capacity = " + std::to_string(mailbox_capacity) + "\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);

  // Publisher p (on shard p) publishes to a topic owned by the other shard.
  const std::array<std::string, 2> topic = {topic_owned_by(1, 2, "Cross/from0"),
                                            topic_owned_by(0, 2, "Cross/from1")};
  // Connections go to the shards in turn: subscriber 0, subscriber 1, publisher 0, publisher 1.
  std::array<Subscriber, 2> subscribers;
  for (int i = 0; i < 2; ++i) {
    ASSERT_TRUE(connect_client_once(subscribers[i].client, broker.url(), "cross-sub")) << i;
    for (int p = 0; p < 2; ++p) {
      auto verdict = std::make_shared<std::promise<Status>>();
      auto answer = verdict->get_future();
      auto* counter = &subscribers[i].topics[p];
      subscribers[i].client.subscribe(
          topic[p], [counter](const Update& u) { counter->take(u.text()); },
          [verdict](const Status& s) { verdict->set_value(s); });
      ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
      ASSERT_TRUE(answer.get());
    }
  }
  std::array<Client, 2> publishers;
  for (int p = 0; p < 2; ++p) ASSERT_TRUE(connect_client_once(publishers[p], broker.url(), "cross-pub")) << p;

  auto slowest = [&](int p) {
    return std::min(subscribers[0].topics[p].received.load(), subscribers[1].topics[p].received.load());
  };
  std::atomic<bool> stop{false};
  std::array<std::atomic<std::uint64_t>, 2> published{};
  std::array<std::thread, 2> publishing;
  for (int p = 0; p < 2; ++p) {
    publishing[p] = std::thread([&, p] {
      char text[24];
      for (std::uint64_t n = 1; n <= max_updates && !stop.load(std::memory_order_relaxed); ++n) {
        while (n > slowest(p) + window && !stop.load(std::memory_order_relaxed)) std::this_thread::yield();
        auto [end, ec] = std::to_chars(text, text + sizeof text, n);
        if (!publishers[p].publish(topic[p], std::string_view(text, end))) break;
        published[p].store(n, std::memory_order_release);
      }
    });
  }

  // Watch delivery: the longest time, while updates were published and not yet received,
  // without any subscriber receiving anything.
  auto total = [&] {
    std::uint64_t sum = 0;
    for (auto& s : subscribers)
      for (auto& t : s.topics) sum += t.received.load();
    return sum;
  };
  std::atomic<bool> stop_meanwhile{false};
  std::thread side;
  if (meanwhile) side = std::thread([&] { meanwhile(broker, stop_meanwhile); });
  const auto start = clock::now();
  auto last_progress = start;
  auto longest_stall = clock::duration::zero();
  std::uint64_t last_total = 0;
  while (clock::now() - start < run_for) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const std::uint64_t outstanding_before = 2 * (published[0].load() + published[1].load());
    std::uint64_t now_total = total();
    auto now = clock::now();
    if (now_total != last_total || now_total >= outstanding_before) {
      last_total = now_total;
      last_progress = now;
    }
    longest_stall = std::max(longest_stall, now - last_progress);
  }
  stop_meanwhile.store(true);
  if (side.joinable()) side.join();
  stop.store(true);
  for (auto& t : publishing) t.join();

  // Everything published arrives, in order.
  const auto drain_deadline = clock::now() + std::chrono::seconds(60);
  for (int p = 0; p < 2; ++p)
    while (slowest(p) < published[p].load() && clock::now() < drain_deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  for (int i = 0; i < 2; ++i)
    for (int p = 0; p < 2; ++p) {
      EXPECT_EQ(subscribers[i].topics[p].received.load(), published[p].load())
          << "subscriber " << i << ", publisher " << p << "'s topic";
      EXPECT_FALSE(subscribers[i].topics[p].out_of_order.load()) << "subscriber " << i << ", topic " << p;
    }
  EXPECT_GT(published[0].load() + published[1].load(), 4 * window) << "the publishers hardly ran";
  EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(longest_stall).count(), 1000)
      << "delivery stopped for that long";
  std::fprintf(stderr, "mailbox_capacity %u: published %llu + %llu in %lld s, longest stall %lld ms\n",
               mailbox_capacity, (unsigned long long)published[0].load(), (unsigned long long)published[1].load(),
               (long long)std::chrono::duration_cast<std::chrono::seconds>(run_for).count(),
               (long long)std::chrono::duration_cast<std::chrono::milliseconds>(longest_stall).count());
  for (auto& s : subscribers) s.client.close();
  for (auto& p : publishers) p.close();
  broker.stop();
  std::fprintf(stderr, "mailbox_overflows=%llu\n", (unsigned long long)broker.counter_total("mailbox_overflows"));
}

TEST(StressCrossShard, tiny_mailboxes_flat_out_both_ways_every_subscriber_gets_everything_in_order) {
  cross_traffic_keeps_flowing(64);
}

TEST(StressCrossShard, default_mailboxes_flat_out_both_ways_every_subscriber_gets_everything_in_order) {
  cross_traffic_keeps_flowing(16384);
}

// A named session lives on the shard its name hashes to, and connections are dealt to the
// shards in turn, so about half of these Connects reach the other shard and are handed over;
// with the shards' rings running full, many reach one that is back-pressured and wait with the
// connection's input until it may read again. (Handed over from inside that resumed input, the
// connection was freed while its frames were still being read.)
TEST(StressCrossShard, named_sessions_connecting_to_back_pressured_shards_are_handed_over) {
  std::uint64_t attempts = 0, connected = 0;
  std::string first_failure;
  cross_traffic_keeps_flowing(64, [&](BrokerProcess& broker, const std::atomic<bool>& stop) {
    for (std::int64_t number = 1; !stop.load() && number <= 2000; ++number) {
      ClientOptions options;
      options.url = broker.url();
      options.client_name = "handed-over";
      options.session_number = number;
      options.connect_timeout = std::chrono::seconds(10);
      options.reconnect_timeout = std::chrono::milliseconds(0);
      options.retries = 0;
      Client client;
      ++attempts;
      Status status = client.connect(options);
      const std::string expected = "anonymous/" + std::to_string(number);
      if (status && client.session_id() == expected) ++connected;
      else if (first_failure.empty())
        first_failure = expected + ": " + status.message + " (session '" + client.session_id() + "')";
      client.close();
    }
  });
  EXPECT_GE(attempts, 5u) << "hardly any session was tried";
  EXPECT_EQ(connected, attempts) << first_failure;
  std::fprintf(stderr, "named sessions connected: %llu of %llu\n", (unsigned long long)connected,
               (unsigned long long)attempts);
}

}  // namespace
}  // namespace brook::test
