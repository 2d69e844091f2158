// Stress: subscribers that stop reading, against a broker with a memory budget. However many
// updates pile up for them, the broker's resident memory stays within limits.max_memory_bytes:
// their sessions are shed (closed as slow consumers) when the budget
// runs short, and while shedding lags behind a flat-out publisher, publishes are refused with
// memory_limit (the publisher is told each time). The healthy subscriber beside them gets
// every update that was taken, in order. Once the stalled clients are gone, the broker gives
// the memory back.
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <fstream>
#include <memory>
#include <mutex>
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
constexpr std::uint64_t budget_bytes = 256ull << 20;
// Once the stalled clients are gone, brookd's memory comes back to within this of where it
// began: receive buffers now in use, pools' slack below their release threshold, code.
constexpr std::uint64_t margin_bytes = 64ull << 20;
constexpr int stalled_subscribers = 50;
constexpr auto run_for = std::chrono::seconds(8);
constexpr std::uint64_t window = 50'000;  // the publisher stays this far ahead of the healthy reader
constexpr std::uint64_t max_updates = 5'000'000;

std::uint64_t rss_bytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      std::uint64_t kib = 0;
      status >> kib;
      return kib * 1024;
    }
    status.ignore(1 << 12, '\n');
  }
  return 0;
}

void stalled_subscribers_stay_within_the_budget(std::size_t value_bytes) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "resident memory under a sanitizer is mostly the sanitizer's: the release build measures it";
#endif
  BrokerConfig config = with_shards(2);
  // A session whose connection is gone keeps its backlog for a reconnect until its timeout
  // (60 s by default): that memory is held on purpose. A short timeout lets the stalled
  // sessions that were not shed end soon after their clients go. Flow control is off: with
  // it, stalled subscribers are closed after flow.max_stall_ms, before the budget is reached;
  // the budget is what bounds memory when flow control does not.
  config.config_toml = "[limits]\nmax_memory_bytes = " + std::to_string(budget_bytes) +
                       "\n[session]\nreconnect_timeout_ms = 200\n[flow]\nhigh_water_bytes = 0\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  const std::uint64_t rss_at_start = rss_bytes(broker.pid());

  // Subscribers that connect, subscribe and never read again.
  std::vector<std::unique_ptr<RawConnection>> stalled;
  codec::FrameEncoder encoder;
  for (int i = 0; i < stalled_subscribers; ++i) {
    auto c = std::make_unique<RawConnection>(broker.port());
    ASSERT_TRUE(c->connected());
    ASSERT_TRUE(c->greet());
    ASSERT_TRUE(c->send_bytes(encoder.subscribe(1, "Memory//")));
    stalled.push_back(std::move(c));
  }
  // The healthy subscriber counts every update and checks their order.
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> last{0};
  std::atomic<bool> out_of_order{false};
  Client healthy;
  // A reader that takes nothing for 20 ms while the broker is past 65% of its budget is
  // stalled by the broker's rule, healthy or not: on a loaded 2-core machine this one can be
  // starved that long. Then it must be told, with the memory reason: a gap, never silence.
  std::mutex healthy_close_mutex;
  std::string healthy_closed_because;
  healthy.on_close([&](const std::string& reason) {
    std::lock_guard lock(healthy_close_mutex);
    healthy_closed_because = reason;
  });
  ASSERT_TRUE(connect_client_once(healthy, broker.url(), "healthy"));
  auto verdict = std::make_shared<std::promise<Status>>();
  auto answer = verdict->get_future();
  healthy.subscribe(
      "Memory//",
      [&](const Update& u) {
        std::uint64_t n = 0;
        std::from_chars(u.text().data(), u.text().data() + u.text().size(), n);
        // Numbers only grow; a refused publish leaves a gap, counted by the publisher.
        if (n <= last.load(std::memory_order_relaxed)) out_of_order.store(true);
        last.store(n, std::memory_order_relaxed);
        received.fetch_add(1, std::memory_order_release);
      },
      [verdict](const Status& s) { verdict->set_value(s); });
  ASSERT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  ASSERT_TRUE(answer.get());

  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "publisher"));
  std::atomic<std::uint64_t> refusals{0};
  std::atomic<std::uint64_t> other_errors{0};
  std::mutex first_error_mutex;
  std::string first_error;  // the first error that is not a refusal, for the report
  publisher.on_error([&](const Status& s) {
    if (s.code == ErrorCode::memory_limit) {
      ++refusals;
      return;
    }
    if (other_errors++ == 0) {
      std::lock_guard lock(first_error_mutex);
      first_error = s.message;
    }
  });
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> published{0};
  std::thread publishing([&] {
    std::string value(value_bytes, ' ');
    for (std::uint64_t n = 1; n <= max_updates && !stop.load(); ++n) {
      while (n > received.load() + refusals.load() + window && !stop.load()) std::this_thread::yield();
      auto [end, ec] = std::to_chars(value.data(), value.data() + value.size(), n);
      std::fill(end, value.data() + value.size(), ' ');
      // The value is a number followed by padding: the healthy reader parses the number.
      if (!publisher.publish("Memory/t", value)) break;
      published.store(n);
    }
  });

  std::uint64_t highest_rss = 0;
  const auto start = clock::now();
  while (clock::now() - start < run_for) {
    highest_rss = std::max(highest_rss, rss_bytes(broker.pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  stop.store(true);
  publishing.join();
  const auto drain_deadline = clock::now() + std::chrono::seconds(30);
  auto healthy_shed = [&] {
    std::lock_guard lock(healthy_close_mutex);
    return !healthy_closed_because.empty();
  };
  while (received.load() + refusals.load() < published.load() && clock::now() < drain_deadline && !healthy_shed())
    std::this_thread::sleep_for(std::chrono::milliseconds(10));

  std::fprintf(stderr, "values of %zu B: %llu published, %llu refused, broker RSS %llu MiB at start, "
               "%llu MiB at most (budget %llu MiB)\n", value_bytes,
               (unsigned long long)published.load(), (unsigned long long)refusals.load(),
               (unsigned long long)(rss_at_start >> 20), (unsigned long long)(highest_rss >> 20),
               (unsigned long long)(budget_bytes >> 20));
  EXPECT_LE(highest_rss, budget_bytes) << "the broker outgrew its memory budget";
  std::string shed_reason;
  {
    std::lock_guard lock(healthy_close_mutex);
    shed_reason = healthy_closed_because;
  }
  if (shed_reason.empty()) {
    EXPECT_EQ(received.load() + refusals.load(), published.load())
        << "the healthy subscriber lost updates the broker took (" << received.load() << " received)";
  } else {
    // Shed as stalled (see above): every update up to the close, in order, then the reason.
    EXPECT_NE(shed_reason.find("memory limit"), std::string::npos) << shed_reason;
    std::fprintf(stderr, "the healthy reader was starved and shed: %s\n", shed_reason.c_str());
  }
  {
    std::lock_guard lock(first_error_mutex);
    EXPECT_EQ(other_errors.load(), 0u) << "first: " << first_error;
  }
  EXPECT_FALSE(out_of_order.load());
  if (shed_reason.empty())
    EXPECT_GT(published.load() - refusals.load(), 10 * window) << "the publisher hardly got through";

  // The stalled clients go: within a second of their sessions' end, the broker's memory is
  // back near where it began.
  stalled.clear();
  healthy.close();
  publisher.close();
  std::uint64_t rss_after = rss_bytes(broker.pid());
  for (int i = 0; i < 100 && rss_after > rss_at_start + margin_bytes; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    rss_after = rss_bytes(broker.pid());
  }
  std::fprintf(stderr, "broker RSS once they were gone: %llu MiB\n", (unsigned long long)(rss_after >> 20));
  EXPECT_LE(rss_after, rss_at_start + margin_bytes) << "the broker kept the memory";
  broker.stop();
  EXPECT_GT(broker.counter_total("memory_sheds"), 0u) << broker.log_tail();
  // The shards' counters, printed at stop, say who was shed and who refused.
  if (::testing::Test::HasFailure()) std::fprintf(stderr, "%s\n", broker.log_tail(8000).c_str());
}

TEST(StressMemoryBudget, stalled_subscribers_of_short_values_keep_the_broker_within_its_budget) {
  stalled_subscribers_stay_within_the_budget(8);
}

TEST(StressMemoryBudget, stalled_subscribers_of_long_values_keep_the_broker_within_its_budget) {
  stalled_subscribers_stay_within_the_budget(508);
}

}  // namespace
}  // namespace brook::test
