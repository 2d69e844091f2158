// Integration: publishes made on a client context's thread, from a callback, into a session
// whose outbox is full. On the session's own context the loop makes room itself (it cannot
// wait for itself) while an application thread may be writing to the same session's socket
// directly (ClientOptions::send_from_caller): every publish of both must arrive once, in each
// thread's order, and ThreadSanitizer must see the loop wait for that write.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using namespace std::chrono_literals;

constexpr auto long_wait = std::chrono::seconds(90);

// "<n>" then padding: a few of them fill a small outbox.
std::string numbered(std::size_t n) { return std::to_string(n) + std::string(200, '.'); }

// Where the values of one path stop being 0, 1, 2, ... (numbered()); "" if nowhere.
std::string first_gap(const std::vector<Received>& got, std::size_t count) {
  for (std::size_t i = 0; i < std::min(got.size(), count); ++i)
    if (got[i].value != numbered(i))
      return got[i].path + " update #" + std::to_string(i) + " is " + got[i].value.substr(0, 12);
  if (got.size() != count) return "got " + std::to_string(got.size()) + " of " + std::to_string(count);
  return {};
}

ClientOptions options_for(const std::string& url, const std::string& name) {
  ClientOptions options;
  options.url = url;
  options.client_name = name;
  options.connect_timeout = 10s;
  options.send_from_caller = true;
  return options;
}

TEST(LoopThreadPublish, a_callback_filling_a_sessions_outbox_while_a_thread_writes_to_it_directly_loses_nothing) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client watcher;
  ASSERT_TRUE(connect_and_subscribe(watcher, broker.url(), "watcher", "Relay/*", log));

  constexpr std::size_t rounds = 200, per_tick = 300;
  std::size_t relayed = 0;  // the context's thread only
  std::atomic<std::size_t> bursts{0};
  ErrorLog errors;
  ClientContext context;
  Client relay(context, 4096);  // the smallest: a callback's burst fills it, the loop drains it
  Client trigger(context);      // declared last, closed first: its callbacks use the relay
  relay.on_error(errors.listener());
  ASSERT_TRUE(trigger.connect(options_for(broker.url(), "trigger")));
  ASSERT_TRUE(relay.connect(options_for(broker.url(), "relay")));
  std::promise<Status> subscribed;
  trigger.subscribe(
      "Tick/now",
      [&](const Update&) {
        // Acknowledged publishes travel as commands: the loop never takes the relay's send
        // state for them, so only the drain they cause meets the thread's direct write.
        for (std::size_t i = 0; i < per_tick; ++i)
          relay.publish_acked("Relay/loop", bytes_of(numbered(relayed++)));
        bursts.fetch_add(1, std::memory_order_release);
      },
      [&](const Status& s) { subscribed.set_value(s); });
  ASSERT_TRUE(await(subscribed.get_future(), long_wait));

  // Each round: once the relay is quiet, a publish that this thread writes to the socket
  // itself (the loop lends it the relay's send state), then a tick, whose callback fills the
  // relay's outbox on the loop before the loop has looked at the relay again.
  Client ticker;
  ASSERT_TRUE(connect_client(ticker, broker.url(), "ticker"));
  for (std::size_t round = 0; round < rounds; ++round) {
    std::this_thread::sleep_for(500us);
    ASSERT_TRUE(relay.publish("Relay/thread", numbered(round)));
    ASSERT_TRUE(ticker.publish("Tick/now", std::to_string(round)));
    ASSERT_TRUE(eventually([&] { return bursts.load(std::memory_order_acquire) > round; }, long_wait));
  }

  const std::size_t total = rounds * (per_tick + 1);
  EXPECT_TRUE(log.wait_for(total, long_wait)) << "received " << log.size() << " of " << total;
  auto groups = log.by_path();
  EXPECT_EQ(first_gap(groups["Relay/loop"], rounds * per_tick), "");
  EXPECT_EQ(first_gap(groups["Relay/thread"], rounds), "");
  EXPECT_GT(relay.calls_sent_by_caller(), 0u) << "this thread never wrote directly: nothing crossed";
  EXPECT_EQ(errors.first(), "");
}

}  // namespace
}  // namespace brook::test
