// History larger than memory, with a real brookd and a data dir: a topic whose history limits
// keep more than history.memory_bytes holds only its newest updates in memory, and a replay
// reads the older ones back from the journal, in order, and meets the live stream with no gap
// and no duplicate; the segments holding them stay while the topic keeps them, survive a
// kill -9, and go once it no longer does, after which what is left arrives flagged as a gap.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
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

// 48 bytes of padding: some 100 bytes a record, so 64 KiB segments roll every ~650 updates.
std::string value_of(int n) { return "v" + std::to_string(n) + std::string(48, '.'); }

std::future<Status> publish_acked(Client& client, const std::string& path, int n) {
  const std::string text = value_of(n);
  return client.publish_acked(path, std::as_bytes(std::span(text.data(), text.size())));
}

void publish_range(Client& client, const std::string& path, int from, int to) {
  std::future<Status> last;
  for (int n = from; n <= to; ++n) last = publish_acked(client, path, n);
  ASSERT_EQ(last.wait_for(60s), std::future_status::ready);
  ASSERT_TRUE(last.get());
}

// Memory holds 4 KiB of each topic's history (some 60 updates); the limits keep `depth`.
BrokerConfig spilling(const std::string& data_dir, unsigned depth) {
  BrokerConfig config = with_shards(2);
  config.extra_args = {"--data-dir", data_dir};
  config.config_toml = "[storage]\nsync = \"interval\"\nsegment_bytes = 65536\n"
                       "[history]\ndepth = " + std::to_string(depth) +
                       "\nmax_bytes = 104857600\nmemory_bytes = 4096\n";
  return config;
}

std::uintmax_t journal_bytes(const std::string& data_dir) {
  std::uintmax_t n = 0;
  for (const auto& shard : std::filesystem::directory_iterator(data_dir))
    for (const auto& file : std::filesystem::directory_iterator(shard.path())) n += file.file_size();
  return n;
}

// Every update of `path` in `log` is the next sequence after the one before, from `first`
// to `last`, with its own value, and only the first may be flagged as a gap.
void expect_contiguous(const UpdateLog& log, const std::string& path, std::uint64_t first, std::uint64_t last,
                       bool first_is_gap) {
  std::vector<Received> mine;
  for (const auto& e : log.entries())
    if (e.path == path) mine.push_back(e);
  ASSERT_FALSE(mine.empty());
  EXPECT_EQ(mine.front().topic_seq, first);
  EXPECT_EQ(mine.back().topic_seq, last);
  EXPECT_EQ(mine.front().resync, first_is_gap) << "the first update's gap flag";
  for (std::size_t i = 1; i < mine.size(); ++i) {
    ASSERT_EQ(mine[i].topic_seq, mine[i - 1].topic_seq + 1) << "at " << i;
    ASSERT_FALSE(mine[i].resync) << mine[i].topic_seq;
  }
  for (const auto& e : mine) ASSERT_EQ(e.value, value_of(static_cast<int>(e.topic_seq)));
}

TEST(JournalHistory, history_beyond_memory_comes_from_the_journal_and_meets_the_live_stream) {
  const std::string data_dir = make_temp_dir("brook-journal-history");
  BrokerProcess broker(spilling(data_dir, 20000));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  const std::string path = "Spill/a";
  publish_range(publisher, path, 1, 20000);
  // 20,000 records of over 100 bytes in 64 KiB segments: the topic keeps them all, so do they.
  EXPECT_GE(journal_bytes(data_dir), 2'000'000u) << "segments holding kept history were removed";

  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  std::atomic<bool> stop{false};
  std::thread live([&] {
    for (int n = 20001; n <= 25000 && !stop; ++n) {
      publish_acked(publisher, path, n);
      if (n % 100 == 0) std::this_thread::sleep_for(1ms);
    }
  });
  const Status subscribed = subscribe_with(subscriber, path, log, {.history = 20000});
  live.join();
  ASSERT_TRUE(subscribed);
  ASSERT_TRUE(round_trip(publisher));
  ASSERT_TRUE(log.wait_until([](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq == 25000; },
                             60s))
      << log.size() << " updates";
  // The last 20,000 when the replay began (the live thread was already publishing), which
  // the journal alone still had but for the newest, up to the last live one.
  ASSERT_FALSE(log.entries().empty());
  const std::uint64_t first = log.entries().front().topic_seq;
  EXPECT_LE(first, 5001u);
  expect_contiguous(log, path, first, 25000, false);
  broker.stop();
  std::filesystem::remove_all(data_dir);
}

TEST(JournalHistory, history_beyond_memory_survives_kill_9_and_since_reads_it_back) {
  const std::string data_dir = make_temp_dir("brook-journal-history");
  {
    BrokerProcess broker(spilling(data_dir, 10000));
    BROOK_ASSERT_STARTED(broker);
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
    publish_range(publisher, "Spill/b", 1, 6000);
    publish_range(publisher, "Spill/c", 1, 3000);
    broker.crash();
  }
  BrokerProcess broker(spilling(data_dir, 10000));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  ASSERT_TRUE(subscribe_with(subscriber, "Spill//", log, {.since = 100}));
  expect_contiguous(log, "Spill/b", 101, 6000, false);
  expect_contiguous(log, "Spill/c", 101, 3000, false);
  broker.stop();
  std::filesystem::remove_all(data_dir);
}

TEST(JournalHistory, segments_go_once_no_topic_keeps_their_updates_and_older_history_is_a_gap) {
  const std::string data_dir = make_temp_dir("brook-journal-history");
  BrokerProcess broker(spilling(data_dir, 1000));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  // 200 at a time: a segment rolls between writes, and one write takes what a turn made.
  for (int n = 1; n <= 20000; n += 200) publish_range(publisher, "Spill/d", n, n + 199);
  // Over 2 MB went through 64 KiB segments; the last 1,000 updates need some 150 KB of them.
  // The shards also check retention each second.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (journal_bytes(data_dir) > 600'000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  EXPECT_LE(journal_bytes(data_dir), 600'000u) << "segments nobody needs were kept: " << [&] {
    std::string files;
    for (const auto& shard : std::filesystem::directory_iterator(data_dir))
      for (const auto& file : std::filesystem::directory_iterator(shard.path()))
        files += file.path().filename().string() + " " + std::to_string(file.file_size()) + "; ";
    return files;
  }();

  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  ASSERT_TRUE(subscribe_with(subscriber, "Spill/d", log, {.history = 20000}));
  std::uint64_t first = 0;
  for (const auto& e : log.entries())
    if (e.path == "Spill/d") {
      first = e.topic_seq;
      break;
    }
  // At least the 1,000 it keeps, and fewer than all: what is older is reported as a gap.
  EXPECT_GT(first, 1u);
  EXPECT_LE(first, 19001u);
  expect_contiguous(log, "Spill/d", first, 20000, true);
  broker.stop();
  std::filesystem::remove_all(data_dir);
}


// A subscription that goes in the middle of a journal pass leaves the broker's interest
// counts right: a subscriber of the same topics keeps getting every update, and a new
// replay of them is whole.
TEST(JournalHistory, unsubscribing_during_a_journal_pass_leaves_other_subscribers_whole) {
  const std::string data_dir = make_temp_dir("brook-journal-history");
  BrokerProcess broker(spilling(data_dir, 10000));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  for (int t = 0; t < 10; ++t) publish_range(publisher, "Spill/t" + std::to_string(t), 1, 2000);

  UpdateLog steady;
  Client watcher;
  ASSERT_TRUE(connect_client_once(watcher, broker.url(), "history-watcher"));
  ASSERT_TRUE(subscribe_and_wait(watcher, "Spill//", steady));
  {
    UpdateLog replayed;
    Client leaver;
    ASSERT_TRUE(connect_client_once(leaver, broker.url(), "history-leaver"));
    Subscription s = leaver.subscribe("Spill//", replayed.handler(), SubscribeOptions{.history = 2000});
    replayed.wait_for(1, 10s);
    ASSERT_TRUE(leaver.unsubscribe(s));
    ASSERT_TRUE(round_trip(leaver));
  }
  publish_range(publisher, "Spill/t7", 2001, 2010);
  ASSERT_TRUE(steady.wait_until(
      [](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq == 2010; }, 10s));
  expect_contiguous(steady, "Spill/t7", 2000, 2010, false);

  UpdateLog again;
  Client late;
  ASSERT_TRUE(connect_client_once(late, broker.url(), "history-late"));
  ASSERT_TRUE(subscribe_with(late, "Spill//", again, {.history = 2000}));
  expect_contiguous(again, "Spill/t7", 11, 2010, false);
  expect_contiguous(again, "Spill/t3", 1, 2000, false);
  broker.stop();
  std::filesystem::remove_all(data_dir);
}


// One pass serves several topics: one that reached its memory early gets the rest and its
// live updates at once, and misses nothing while the pass goes on through another topic's
// far longer history for a slow subscriber (its memory meanwhile moves far past where the
// pass left it).
TEST(JournalHistory, a_topic_done_early_in_a_pass_misses_nothing_while_the_pass_goes_on) {
  const std::string data_dir = make_temp_dir("brook-journal-history");
  BrokerConfig config = spilling(data_dir, 30000);
  config.shards = 1;
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  publish_range(publisher, "Spill/a", 1, 200);
  const std::string big(2000, 'x');
  std::future<Status> last;
  for (int n = 1; n <= 20000; ++n) last = publisher.publish_acked("Spill/b", std::as_bytes(std::span(big.data(), big.size())));
  ASSERT_EQ(last.wait_for(60s), std::future_status::ready);
  ASSERT_TRUE(last.get());

  UpdateLog log;
  auto to_log = log.handler();
  std::atomic<int> count{0};
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  subscriber.subscribe("Spill//", [&](const Update& u) {
    to_log(u);
    if (++count % 5 == 0) std::this_thread::sleep_for(1ms);  // slower than the journal
  }, SubscribeOptions{.history = 30000});
  ASSERT_TRUE(log.wait_until([](const std::vector<Received>& e) { return e.size() > 10; }, 30s));
  publish_range(publisher, "Spill/a", 201, 3200);
  ASSERT_TRUE(log.wait_until([](const std::vector<Received>& e) {
    for (auto it = e.rbegin(); it != e.rend(); ++it)
      if (it->path == "Spill/a") return it->topic_seq == 3200;
    return false;
  }, 120s));
  expect_contiguous(log, "Spill/a", 1, 3200, false);
  broker.stop();
  std::filesystem::remove_all(data_dir);
}

// A replay from the journal sends what the topic keeps (its depth), not whatever its
// segments still hold, and flags what is older as a gap.
TEST(JournalHistory, a_replay_from_the_journal_sends_only_what_the_topic_keeps) {
  const std::string data_dir = make_temp_dir("brook-journal-history");
  BrokerConfig config = spilling(data_dir, 100);
  config.shards = 1;
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  publish_range(publisher, "Spill/kept", 1, 500);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  ASSERT_TRUE(subscribe_with(subscriber, "Spill/kept", log, {.history = 500}));
  expect_contiguous(log, "Spill/kept", 401, 500, true);
  broker.stop();
  std::filesystem::remove_all(data_dir);
}

// A quiet topic whose updates aged out holds no segment: the journal shrinks as the busy
// topic's segments go.
TEST(JournalHistory, a_quiet_topic_keeps_no_old_segment) {
  const std::string data_dir = make_temp_dir("brook-journal-history");
  BrokerConfig config = with_shards(1);
  config.extra_args = {"--data-dir", data_dir};
  config.config_toml = "[storage]\nsync = \"interval\"\nsegment_bytes = 65536\n"
                       "[history]\ndepth = 1000\nmax_bytes = 104857600\nmemory_bytes = 4096\nmax_age_ms = 1000\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  publish_range(publisher, "Spill/quiet", 1, 5);
  for (int n = 1; n <= 20000; n += 200) publish_range(publisher, "Spill/busy", n, n + 199);
  std::this_thread::sleep_for(1500ms);  // every update so far is past the age limit
  for (int n = 20001; n <= 21000; n += 200) publish_range(publisher, "Spill/busy", n, n + 199);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (journal_bytes(data_dir) > 600'000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(100ms);
  EXPECT_LE(journal_bytes(data_dir), 600'000u) << "a quiet topic kept the old segments";
  // Its current value is still there after a restart.
  broker.crash();
  BrokerProcess again(config);
  BROOK_ASSERT_STARTED(again);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, again.url(), "history-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Spill/quiet", log));
  EXPECT_EQ(log.entries().at(0).topic_seq, 5u);
  again.stop();
  std::filesystem::remove_all(data_dir);
}

}  // namespace
}  // namespace brook::test
