// Integration: publishes written by the caller's own thread (ClientOptions::send_from_caller).
// A paced publish made while the client's thread sleeps goes straight to the socket or ring;
// a burst goes through the client's thread. The tests mix the two from several threads, over
// TCP and shared memory, and cut the connection under a paced publisher: every publish must
// arrive once, in each thread's call order. Every wait is bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "fault_proxy.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using namespace std::chrono_literals;

// Large enough for a sanitizer build on a busy two-core machine; only reached on failure.
constexpr auto long_wait = std::chrono::seconds(90);

// Long enough that the client's thread has gone back to sleep: the next publish is isolated.
constexpr auto pause_between_rounds = 300us;

// Where the values of one topic first differ from "<prefix>0", "<prefix>1", ...; "" if nowhere.
std::string first_gap(const std::vector<Received>& got, const std::string& prefix, std::size_t count) {
  for (std::size_t i = 0; i < std::min(got.size(), count); ++i)
    if (got[i].value != prefix + std::to_string(i))
      return got[i].path + " update #" + std::to_string(i) + " is '" + got[i].value + "'";
  if (got.size() != count)
    return "got " + std::to_string(got.size()) + " updates, expected " + std::to_string(count);
  return {};
}

// Publishes `count` numbered values to `path`: one after each pause, then a burst that grows
// round by round, so that calls alternate between the two paths.
void publish_paced_and_in_bursts(Client& publisher, const std::string& path, std::size_t count) {
  std::size_t next = 0;
  for (std::size_t round = 0; next < count; ++round) {
    std::this_thread::sleep_for(pause_between_rounds);
    const std::size_t burst = 1 + (round % 8) * 16;
    for (std::size_t i = 0; i < burst && next < count; ++i, ++next)
      publisher.publish(path, path + "#" + std::to_string(next));
  }
}

ClientOptions publisher_options(const std::string& url, bool send_from_caller = true) {
  ClientOptions options;
  options.url = url;
  options.client_name = "caller-send-publisher";
  options.connect_timeout = 10s;
  options.reconnect_delay = 50ms;
  options.send_from_caller = send_from_caller;
  return options;
}

class CallerSend : public ::testing::TestWithParam<bool /* over shared memory */> {};

TEST_P(CallerSend, paced_and_burst_publishes_of_two_threads_arrive_in_each_threads_call_order) {
  BrokerConfig config;
  config.shm = GetParam();
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(publisher.connect(publisher_options(GetParam() ? broker.shm_url() : broker.url())));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Mix/*", log));

  constexpr std::size_t per_thread = 3'000;
  {
    std::jthread a([&] { publish_paced_and_in_bursts(publisher, "Mix/a", per_thread); });
    std::jthread b([&] { publish_paced_and_in_bursts(publisher, "Mix/b", per_thread); });
  }
  ASSERT_TRUE(log.wait_for(2 * per_thread, long_wait)) << "received " << log.size() << " of " << 2 * per_thread;
  ASSERT_TRUE(round_trip(subscriber));
  auto groups = log.by_path();
  EXPECT_EQ(first_gap(groups["Mix/a"], "Mix/a#", per_thread), "");
  EXPECT_EQ(first_gap(groups["Mix/b"], "Mix/b#", per_thread), "");
  EXPECT_EQ(groups.size(), 2u);
  // Both paths were taken (and so crossed each other).
  EXPECT_GT(publisher.calls_sent_by_caller(), 0u);
  EXPECT_GT(publisher.calls_handed_to_client_thread(), 0u);
  RecordProperty("sent_by_caller", static_cast<int>(publisher.calls_sent_by_caller()));
}

INSTANTIATE_TEST_SUITE_P(Transports, CallerSend, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "shm" : "tcp"; });

TEST(CallerSendFaults, a_paced_publisher_cut_mid_stream_has_every_publish_delivered_once_in_order) {
  BrokerConfig config;
  config.config_toml = "[session]\nrecovery_bytes = 67108864\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  UpdateLog log;
  Client subscriber, publisher;
  std::mutex errors_mutex;
  std::vector<std::string> errors;
  publisher.on_error([&](const Status& s) {
    std::lock_guard lock(errors_mutex);
    errors.push_back(s.message);
  });
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(publisher.connect(publisher_options(proxy.url())));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Cut/price", log));

  constexpr std::size_t count = 3'000, cut_after = 1'000;
  std::atomic<std::size_t> published{0};
  std::jthread feed([&] {
    for (std::size_t i = 0; i < count; ++i) {
      std::this_thread::sleep_for(pause_between_rounds / 3);
      publisher.publish("Cut/price", "Cut/price#" + std::to_string(i));
      published.store(i + 1);
    }
  });
  ASSERT_TRUE(eventually([&] { return published.load() >= cut_after; }, long_wait));
  const std::uint64_t direct_before_cut = publisher.calls_sent_by_caller();
  ASSERT_TRUE(proxy.reset(0));
  feed.join();

  ASSERT_TRUE(log.wait_for(count, long_wait)) << "received " << log.size() << " of " << count;
  ASSERT_TRUE(await(publisher.publish_acked("Cut/price", bytes_of("end")), long_wait));
  ASSERT_TRUE(log.wait_for(count + 1, long_wait));
  auto got = log.entries();
  got.pop_back();  // "end"
  EXPECT_EQ(first_gap(got, "Cut/price#", count), "");
  EXPECT_GT(direct_before_cut, 0u);
  EXPECT_GE(proxy.connections(), 2u);  // it did reconnect
  std::lock_guard lock(errors_mutex);
  EXPECT_TRUE(errors.empty()) << errors.front();
}

TEST(CallerSendOption, off_every_publish_goes_through_the_client_thread) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(publisher.connect(publisher_options(broker.url(), false)));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Off/price", log));
  constexpr std::size_t count = 200;
  for (std::size_t i = 0; i < count; ++i) {
    std::this_thread::sleep_for(pause_between_rounds);
    publisher.publish("Off/price", "Off/price#" + std::to_string(i));
  }
  ASSERT_TRUE(log.wait_for(count, long_wait));
  EXPECT_EQ(first_gap(log.entries(), "Off/price#", count), "");
  EXPECT_EQ(publisher.calls_sent_by_caller(), 0u);
  EXPECT_GE(publisher.calls_handed_to_client_thread(), count);
}

}  // namespace
}  // namespace brook::test
