// Stress: the shard loop's turns stay short whatever a session holds. A subscriber that stops
// reading collects more than a million queued updates from a flat-out publisher; when its
// session ends (its reconnect timeout passes), the broker releases them, their ring and the
// buffer pool's slabs a bounded amount per turn, and a client on the same shard keeps getting
// its pings answered within a few milliseconds meanwhile. Before, that end was one turn of
// 50-60 ms, and reading the publisher's input one of 20-30 ms.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using clock = std::chrono::steady_clock;

TEST(StressLongTurn, ending_a_session_with_a_million_queued_updates_keeps_the_shard_answering) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "turn lengths under a sanitizer are the sanitizer's: the release build measures them";
#endif
  constexpr std::uint64_t updates = 1'500'000;
  BrokerConfig config = with_shards(1);
  // Room for the whole backlog, no flow control (it would hold the publisher back), and a
  // short reconnect timeout: the stalled session ends soon after its connection goes.
  config.config_toml =
      "[session]\nqueue_max_frames = 4000000\nqueue_max_bytes = 1073741824\nreconnect_timeout_ms = 300\n"
      "[flow]\nhigh_water_bytes = 0\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);

  auto stalled = std::make_unique<RawConnection>(broker.port());
  ASSERT_TRUE(stalled->connected());
  ASSERT_TRUE(stalled->greet());
  codec::FrameEncoder encoder;
  ASSERT_TRUE(stalled->send_bytes(encoder.subscribe(1, "Turn//")));
  ASSERT_TRUE(stalled->read_frame(std::chrono::seconds(10)));  // Subscribed

  Client publisher, pinger;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client_once(pinger, broker.url(), "pinger"));
  for (std::uint64_t n = 0; n < updates; ++n) ASSERT_TRUE(publisher.publish("Turn/t", "x"));
  ASSERT_TRUE(round_trip(publisher, std::chrono::seconds(60)));  // all of it is queued

  // The stalled client goes; 300 ms later its session ends with its backlog.
  stalled.reset();
  std::chrono::nanoseconds slowest{0};
  int pings = 0;
  const auto until = clock::now() + std::chrono::milliseconds(1500);
  while (clock::now() < until) {
    auto answer = pinger.ping();
    ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
    slowest = std::max(slowest, answer.get());
    ++pings;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const auto slowest_ms = std::chrono::duration_cast<std::chrono::microseconds>(slowest).count() / 1000.0;
  publisher.close();
  pinger.close();
  broker.stop();
  std::fprintf(stderr, "%d pings while the session with %llu updates ended: slowest %.1f ms; "
               "longest turn %llu us\n", pings, (unsigned long long)updates, slowest_ms,
               (unsigned long long)broker.counter_total("longest_turn_us"));
  EXPECT_GE(broker.counter_total("sessions_closed"), 1u);
  std::fprintf(stderr, "%s\n", broker.log_tail(3000).c_str());
  // A few milliseconds of work per turn, and room for a shared machine's scheduling (a
  // turn's length is wall time: a preempted shard thread counts the preemption).
  EXPECT_LT(slowest_ms, 25.0) << "a turn held the shard";
  EXPECT_LT(broker.counter_total("longest_turn_us"), 50'000u) << "over the whole run, publishing included";
}

}  // namespace
}  // namespace brook::test
