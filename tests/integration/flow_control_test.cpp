// Flow control, with a real brookd: a flat-out publisher and a subscriber slower than it. The
// subscriber's session queue is small enough that, without flow control, it would reach its
// limit and be closed as a slow consumer; with it the broker holds the publisher back and the
// subscriber gets every update, in order. A subscriber that stops reading holds the publisher
// back for at most flow.max_stall_ms, then gets its policy, while a healthy one beside it gets
// everything.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using clock = std::chrono::steady_clock;

Status subscribe_counting(Client& client, const std::string& selector, InOrderCounter& counter,
                          std::chrono::nanoseconds work_per_update) {
  auto verdict = std::make_shared<std::promise<Status>>();
  auto answer = verdict->get_future();
  client.subscribe(
      selector,
      [&counter, work_per_update](const Update& u) {
        counter.take(u);
        // And now and then a pause, so that a backlog builds however fast the build (a
        // sanitizer's publisher is slower than a release subscriber).
        if (work_per_update.count() != 0 && counter.next % 50'000 == 0)
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        // A subscriber slower than its publisher: this much work per update.
        const auto until = clock::now() + work_per_update;
        while (clock::now() < until) {
        }
      },
      [verdict](const Status& s) { verdict->set_value(s); });
  if (answer.wait_for(std::chrono::seconds(10)) != std::future_status::ready)
    return Status{ErrorCode::internal, "no answer to subscribe"};
  return answer.get();
}

// A 64-byte value that starts with the number n.
std::string numbered_value(std::uint64_t n) {
  std::string value(64, ' ');
  auto [end, ec] = std::to_chars(value.data(), value.data() + value.size(), n);
  (void)end;
  return value;
}

struct FlowEvents {
  std::atomic<int> holds{0};
  std::atomic<int> releases{0};
  void listen(Client& client) {
    client.on_flow_control([this](bool held) { (held ? holds : releases).fetch_add(1); });
  }
};

void slow_subscriber_gets_everything(const std::string& transport) {
  BrokerConfig config = with_shards(2);
  config.shm = transport == "shm";
  // Without flow control a queue of 16 MiB overflows within the first second. With it the
  // queue passes the high-water mark by what the publisher's shard read before the hold
  // reached it: up to its receive buffers (8 MiB) and a mailbox. The marks are low so that
  // a hold happens in every build.
  config.config_toml = "[session]\nqueue_max_bytes = 16777216\n"
                       "[flow]\nhigh_water_bytes = 65536\nlow_water_bytes = 16384\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  const std::string url = config.shm ? broker.shm_url() : broker.url();

  Client subscriber, publisher;
  ASSERT_TRUE(connect_client_once(subscriber, url, "slow-subscriber"));
  std::atomic<bool> subscriber_closed{false};
  subscriber.on_close([&](const std::string&) { subscriber_closed = true; });
  InOrderCounter counter;
  ASSERT_TRUE(subscribe_counting(subscriber, "Flow//", counter, std::chrono::microseconds(3)));
  // A thread of its own: on the subscriber's (the default context's), the slow handler
  // would hold the publisher back itself, and the broker would never have to.
  ClientOptions publisher_options;
  publisher_options.url = url;
  publisher_options.client_name = "flat-out-publisher";
  publisher_options.retries = 0;
  publisher_options.reconnect_timeout = std::chrono::milliseconds(0);
  publisher_options.own_thread = true;
  ASSERT_TRUE(publisher.connect(publisher_options));
  FlowEvents events;
  events.listen(publisher);

  constexpr std::uint64_t updates = 1'000'000;
  const auto start = clock::now();
  for (std::uint64_t n = 1; n <= updates; ++n) ASSERT_TRUE(publisher.publish("Flow/odds", numbered_value(n)));
  const auto published = clock::now();
  EXPECT_TRUE(eventually([&] { return counter.received.load() == updates || subscriber_closed.load(); },
                         std::chrono::seconds(120)))
      << "received " << counter.received.load() << " of " << updates;
  const auto received = clock::now();
  auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  std::fprintf(stderr, "%s: published %llu in %lld ms, the last received at %lld ms; held %d times\n",
               transport.c_str(), (unsigned long long)updates, (long long)ms(published - start),
               (long long)ms(received - start), events.holds.load());
  EXPECT_EQ(counter.received.load(), updates);
  EXPECT_FALSE(counter.out_of_order.load());
  EXPECT_FALSE(subscriber_closed.load()) << "the slow subscriber was cut off";
  subscriber.close();
  publisher.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("slow_consumer_closes"), 0u) << broker.log_tail();
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // A sanitizer's publisher is so slow that the socket buffers may absorb the subscriber's
  // pauses: there the test shows only that nothing is lost (the stalled-subscriber test
  // below holds the publisher in every build).
  EXPECT_GT(broker.counter_total("flow_stalls"), 0u) << "the publisher was never held back";
  EXPECT_GT(events.holds.load(), 0) << "the publisher was not told it was held back";
#endif
}

TEST(FlowControl, flat_out_publisher_is_slowed_to_a_slower_subscriber_who_gets_every_update_over_tcp) {
  slow_subscriber_gets_everything("tcp");
}

TEST(FlowControl, flat_out_publisher_is_slowed_to_a_slower_subscriber_who_gets_every_update_over_shm) {
  slow_subscriber_gets_everything("shm");
}

TEST(FlowControl, a_stalled_subscriber_holds_the_publisher_at_most_max_stall_then_gets_its_policy) {
  constexpr int max_stall_ms = 300;
  BrokerConfig config = with_shards(2);
  config.config_toml = "[session]\nqueue_max_bytes = 16777216\n[flow]\nmax_stall_ms = " +
                       std::to_string(max_stall_ms) + "\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);

  // Subscribes, then never reads again.
  RawConnection stalled(broker.port());
  ASSERT_TRUE(stalled.connected());
  ASSERT_TRUE(stalled.greet());
  codec::FrameEncoder encoder;
  ASSERT_TRUE(stalled.send_bytes(encoder.subscribe(1, "Flow//")));
  ASSERT_TRUE(stalled.read_frame(std::chrono::seconds(10)));  // Subscribed

  Client healthy, publisher;
  ASSERT_TRUE(connect_client_once(healthy, broker.url(), "healthy"));
  InOrderCounter counter;
  ASSERT_TRUE(subscribe_counting(healthy, "Flow//", counter, {}));
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "publisher"));
  FlowEvents events;
  events.listen(publisher);
  // While held back, try_publish() refuses at once: asked from the listener itself, which
  // runs after the client has noted the hold.
  std::promise<Status> try_while_held;
  auto try_verdict = try_while_held.get_future();
  std::atomic<bool> tried{false};
  publisher.on_flow_control([&](bool held) {
    (held ? events.holds : events.releases).fetch_add(1);
    if (held && !tried.exchange(true)) try_while_held.set_value(publisher.try_publish("Flow/odds", "0"));
  });

  constexpr std::uint64_t updates = 400'000;
  auto longest_wait = clock::duration::zero();
  for (std::uint64_t n = 1; n <= updates; ++n) {
    const auto before = clock::now();
    ASSERT_TRUE(publisher.publish("Flow/odds", numbered_value(n)));
    longest_wait = std::max(longest_wait, clock::now() - before);
  }
  EXPECT_TRUE(eventually([&] { return counter.received.load() == updates; }, std::chrono::seconds(60)))
      << "the healthy subscriber received " << counter.received.load() << " of " << updates;
  EXPECT_FALSE(counter.out_of_order.load());
  const auto longest_ms = std::chrono::duration_cast<std::chrono::milliseconds>(longest_wait).count();
  std::fprintf(stderr, "longest publish() wait: %lld ms (flow.max_stall_ms = %d)\n", (long long)longest_ms,
               max_stall_ms);
  // The hold lasts max_stall_ms after the stalled one last took anything; what the kernel's
  // socket buffers took before that adds a little, a loaded machine more.
  EXPECT_LT(longest_ms, 10 * max_stall_ms + 2000);
  ASSERT_EQ(try_verdict.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "the publisher was never told it was held back";
  EXPECT_EQ(try_verdict.get().code, ErrorCode::back_pressured);
  healthy.close();
  publisher.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("flow_timeouts"), 1u) << broker.log_tail();
  EXPECT_GE(broker.counter_total("slow_consumer_closes"), 1u) << "the stalled subscriber kept its session";
  EXPECT_GT(events.releases.load(), 0) << "the publisher was not told it was let go";
}

}  // namespace
}  // namespace brook::test
