// History and replay with a real brookd: a subscription that asks for the last N updates, or
// for those after a sequence, gets them oldest first and then the live stream, with no gap
// and no duplicate between the two, also while the topic keeps changing; history older than
// what the broker keeps arrives flagged as a gap; a replay far larger than a batch goes
// through paced by the subscriber; history and epochs survive a kill -9 with a data dir,
// transient topics do not; `brook sub --history / --since` print it.
#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <future>
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

std::future<Status> publish_acked(Client& client, const std::string& path, const std::string& text) {
  return client.publish_acked(path, std::as_bytes(std::span(text.data(), text.size())));
}

// Publishes values "v<from>".."v<to>" to `path` and waits for the last acknowledgement.
void publish_range(Client& client, const std::string& path, int from, int to) {
  std::future<Status> last;
  for (int n = from; n <= to; ++n) last = publish_acked(client, path, "v" + std::to_string(n));
  ASSERT_EQ(last.wait_for(30s), std::future_status::ready);
  ASSERT_TRUE(last.get());
}

// The sequences `log` holds for `path`, in arrival order.
std::vector<std::uint64_t> sequences(const UpdateLog& log, const std::string& path) {
  std::vector<std::uint64_t> seqs;
  for (const auto& e : log.entries())
    if (e.path == path) seqs.push_back(e.topic_seq);
  return seqs;
}

std::vector<std::uint64_t> range(std::uint64_t first, std::uint64_t last) {
  std::vector<std::uint64_t> r;
  for (std::uint64_t s = first; s <= last; ++s) r.push_back(s);
  return r;
}

BrokerConfig with_history_depth(unsigned shards, unsigned depth) {
  BrokerConfig config = with_shards(shards);
  config.config_toml = "[history]\ndepth = " + std::to_string(depth) + "\n";
  return config;
}

TEST(History, the_last_n_updates_come_first_then_the_live_ones_without_gap_or_duplicate) {
  BrokerProcess broker(with_history_depth(2, 8));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  publish_range(publisher, "History/a", 1, 20);

  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  ASSERT_TRUE(subscribe_with(subscriber, "History/a", log, {.history = 5}));
  EXPECT_EQ(sequences(log, "History/a"), range(16, 20));
  publish_range(publisher, "History/a", 21, 25);
  ASSERT_TRUE(log.wait_for(10, 10s));
  EXPECT_EQ(sequences(log, "History/a"), range(16, 25));
  const auto entries = log.entries();
  EXPECT_EQ(entries.front().value, "v16");
  EXPECT_EQ(entries.back().value, "v25");
  for (const auto& e : entries) EXPECT_FALSE(e.resync) << e.topic_seq;
  EXPECT_NE(entries.front().epoch, 0u);
}

TEST(History, since_a_sequence_sends_every_kept_update_after_it) {
  BrokerProcess broker(with_history_depth(2, 8));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  publish_range(publisher, "History/b", 1, 20);

  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  ASSERT_TRUE(subscribe_with(subscriber, "History/b", log, {.since = 14}));
  EXPECT_EQ(sequences(log, "History/b"), range(15, 20));

  // Up to date: the topic is bound, nothing is resent, and the next update arrives.
  UpdateLog current;
  ASSERT_TRUE(subscribe_with(subscriber, "History//", current, {.since = 20}));
  publish_range(publisher, "History/b", 21, 21);
  ASSERT_TRUE(current.wait_for(1, 10s));
  EXPECT_EQ(sequences(current, "History/b"), std::vector<std::uint64_t>{21});
}

TEST(History, history_older_than_what_is_kept_arrives_flagged_as_a_gap) {
  BrokerProcess broker(with_history_depth(1, 8));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  publish_range(publisher, "History/c", 1, 30);

  for (const SubscribeOptions& options : {SubscribeOptions{.history = 50}, SubscribeOptions{.since = 3}}) {
    UpdateLog log;
    Client subscriber;
    ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
    ASSERT_TRUE(subscribe_with(subscriber, "History/c", log, options));
    EXPECT_EQ(sequences(log, "History/c"), range(23, 30));
    const auto entries = log.entries();
    ASSERT_FALSE(entries.empty());
    EXPECT_TRUE(entries.front().resync) << "the gap before 23 must be flagged";
    for (std::size_t i = 1; i < entries.size(); ++i) EXPECT_FALSE(entries[i].resync) << entries[i].topic_seq;
  }
}

// 20,000 updates of history to one subscriber, twenty times a batch, while the publisher keeps
// publishing: the subscriber sees every sequence once, in order, from the first asked for to
// the last published; on two shards the replay crosses a mailbox.
TEST(History, a_replay_much_larger_than_a_batch_meets_the_live_stream_without_gap_or_duplicate) {
  BrokerConfig config = with_shards(2);
  config.config_toml = "[history]\ndepth = 20000\nmax_bytes = 104857600\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  const std::string path = "History/big";
  publish_range(publisher, path, 1, 20000);

  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  std::atomic<bool> stop{false};
  std::thread live([&] {
    for (int n = 20001; n <= 25000 && !stop; ++n) {
      publish_acked(publisher, path, "v" + std::to_string(n));
      if (n % 100 == 0) std::this_thread::sleep_for(1ms);
    }
  });
  ASSERT_TRUE(subscribe_with(subscriber, path, log, {.history = 20000}));
  live.join();
  ASSERT_TRUE(round_trip(publisher));
  ASSERT_TRUE(log.wait_until([](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq == 25000; },
                             30s))
      << log.size() << " updates";
  const auto seqs = sequences(log, path);
  ASSERT_FALSE(seqs.empty());
  EXPECT_LE(seqs.front(), 5001u) << "the replay started after the oldest kept update";
  for (std::size_t i = 1; i < seqs.size(); ++i) ASSERT_EQ(seqs[i], seqs[i - 1] + 1) << "at " << i;
  for (const auto& e : log.entries()) ASSERT_EQ(e.value, "v" + std::to_string(e.topic_seq));
}

// Unsubscribing in the middle of a replay leaves the broker's interest counts right: another
// subscriber of the same topics on the same shard keeps getting every update.
TEST(History, unsubscribing_during_a_replay_leaves_other_subscribers_whole) {
  BrokerConfig config = with_shards(1);
  config.config_toml = "[history]\ndepth = 2000\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
  for (int t = 0; t < 20; ++t) publish_range(publisher, "Replay/t" + std::to_string(t), 1, 500);

  UpdateLog steady;
  Client watcher;
  ASSERT_TRUE(connect_client_once(watcher, broker.url(), "history-watcher"));
  ASSERT_TRUE(subscribe_and_wait(watcher, "Replay//", steady));
  {
    UpdateLog replayed;
    Client leaver;
    ASSERT_TRUE(connect_client_once(leaver, broker.url(), "history-leaver"));
    Subscription s = leaver.subscribe("Replay//", replayed.handler(), SubscribeOptions{.history = 2000});
    replayed.wait_for(1, 10s);
    ASSERT_TRUE(leaver.unsubscribe(s));
    ASSERT_TRUE(round_trip(leaver));
  }
  publish_range(publisher, "Replay/t7", 501, 510);
  ASSERT_TRUE(steady.wait_until(
      [](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq == 510; }, 10s));
  EXPECT_EQ(sequences(steady, "Replay/t7"), (std::vector<std::uint64_t>{500, 501, 502, 503, 504, 505, 506, 507, 508, 509, 510}));
}

BrokerConfig journalled(const std::string& data_dir, const std::string& listen = "127.0.0.1:0") {
  BrokerConfig config = with_shards(2);
  config.listen = listen;
  config.extra_args = {"--data-dir", data_dir};
  config.config_toml = "[history]\ndepth = 4096\n";
  return config;
}

// With a data dir, history and epochs survive a kill -9, and `since` continues across it;
// a transient topic is gone after it. Without one, a restart gives a topic a new epoch.
TEST(History, history_and_epochs_survive_kill_9_with_a_data_dir_and_transient_topics_do_not) {
  const std::string data_dir = make_temp_dir("brook-history");
  std::uint64_t epoch_before = 0;
  {
    BrokerProcess broker(journalled(data_dir));
    BROOK_ASSERT_STARTED(broker);
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "history-publisher"));
    publish_range(publisher, "Kept/a", 1, 30);
    ASSERT_TRUE(publisher.create_topic("Kept/transient", TopicProperties{.durable = false}).get());
    publish_range(publisher, "Kept/transient", 1, 3);
    UpdateLog log;
    Client subscriber;
    ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
    ASSERT_TRUE(subscribe_and_wait(subscriber, "Kept/a", log));
    epoch_before = log.entries().at(0).epoch;
    broker.crash();
  }
  BrokerProcess broker(journalled(data_dir));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client_once(subscriber, broker.url(), "history-subscriber"));
  ASSERT_TRUE(subscribe_with(subscriber, "Kept//", log, {.since = 25}));
  EXPECT_EQ(sequences(log, "Kept/a"), range(26, 30));
  EXPECT_TRUE(sequences(log, "Kept/transient").empty()) << "a transient topic came back";
  ASSERT_FALSE(log.entries().empty());
  EXPECT_EQ(log.entries().front().epoch, epoch_before);
  for (const auto& e : log.entries()) EXPECT_EQ(e.value, "v" + std::to_string(e.topic_seq));
  UpdateLog last;
  Client another;  // a session that already receives a topic is never sent it backwards
  ASSERT_TRUE(connect_client_once(another, broker.url(), "history-another"));
  ASSERT_TRUE(subscribe_with(another, "Kept/a", last, {.history = 16}));
  EXPECT_EQ(sequences(last, "Kept/a"), range(15, 30));
  std::filesystem::remove_all(data_dir);
}

// A fail-safe subscriber on a named session through five kill -9 restarts of a broker with a
// data dir, while acknowledged updates stream to eight topics: the broker brings the session
// back from its journal each time (same id, no new session), the client resumes it and its
// subscriptions from the sequences it holds, and it ends with every sequence of every topic
// exactly once, in order, and no gap.
TEST(History, a_failsafe_subscriber_gets_every_update_exactly_once_across_kill_9_restarts) {
  const std::string data_dir = make_temp_dir("brook-resume");
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  constexpr int rounds = 5, topics = 8;
  UpdateLog log;
  Client subscriber;
  const ClientOptions options = failsafe_named("tcp://" + listen, "resume-subscriber", 7);
  std::atomic<int> new_sessions{0}, resumed{0};
  subscriber.on_state_change([&](ClientState, ClientState to, const std::string& reason) {
    if (to != ClientState::connected) return;
    if (reason.starts_with("new session")) ++new_sessions;
    if (reason.starts_with("resumed")) ++resumed;
  });
  subscriber.subscribe("Resume//", log.handler());
  std::map<std::string, std::uint64_t> last_seq;
  for (int round = 0; round < rounds; ++round) {
    BrokerProcess broker(journalled(data_dir, listen));
    BROOK_ASSERT_STARTED(broker);
    if (round == 0) ASSERT_TRUE(subscriber.connect(options));
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "resume-publisher"));
    std::atomic<bool> stop{false};
    std::thread stream([&] {
      for (std::uint64_t k = 1; !stop.load(); ++k) {
        for (int t = 0; t < topics && !stop.load(); ++t)
          publish_acked(publisher, "Resume/t" + std::to_string(t), "r" + std::to_string(round) + "." + std::to_string(k));
        if (k % 16 == 0) std::this_thread::sleep_for(1ms);
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 30 * round));
    broker.crash();
    stop = true;
    stream.join();
    publisher.close();
  }
  // A last start: what the journal kept is what every topic ends at.
  BrokerProcess broker(journalled(data_dir, listen));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog current;
  Client reader;
  ASSERT_TRUE(connect_client_once(reader, broker.url(), "resume-reader"));
  ASSERT_TRUE(subscribe_and_wait(reader, "Resume//", current));
  for (const auto& e : current.entries()) last_seq[e.path] = e.topic_seq;
  ASSERT_EQ(last_seq.size(), static_cast<std::size_t>(topics));
  ASSERT_TRUE(log.wait_until(
      [&](const std::vector<Received>& entries) {
        std::map<std::string, std::uint64_t> seen;
        for (const auto& e : entries) seen[e.path] = e.topic_seq;
        return seen == last_seq;
      },
      30s))
      << "the subscriber did not catch up";
  for (const auto& [path, updates] : log.by_path()) {
    ASSERT_FALSE(updates.empty());
    EXPECT_EQ(updates.front().topic_seq, 1u) << path << " started late";
    for (std::size_t i = 0; i < updates.size(); ++i) {
      ASSERT_EQ(updates[i].topic_seq, updates.front().topic_seq + i) << path << ": a gap or a duplicate at " << i;
      EXPECT_FALSE(updates[i].resync && i > 0) << path << " flagged a gap at " << updates[i].topic_seq;
    }
  }
  EXPECT_EQ(new_sessions.load(), 0) << "the broker lost the durable session";
  EXPECT_GE(resumed.load(), rounds);
  EXPECT_EQ(subscriber.session_id(), "anonymous/7");
  subscriber.close();
  std::filesystem::remove_all(data_dir);
}

// A fail-safe publisher's plain publishes through a kill -9: the broker reports them Received
// (and the client lets them go) only once they are durable, so after the restart the client
// sends again what it still holds, and the topic's history holds every value exactly once:
// the restored session knows which of the frames sent again it had journalled already.
TEST(DurablePublish, a_failsafe_publishers_plain_publishes_all_survive_a_kill_9) {
  const std::string data_dir = make_temp_dir("brook-durable-publish");
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  BrokerConfig config = journalled(data_dir, listen);
  config.config_toml = "[history]\ndepth = 100000\nmax_bytes = 104857600\n";
  constexpr int count = 30000;
  Client publisher;
  const ClientOptions options = failsafe_named("tcp://" + listen, "durable-publisher", 3);
  {
    BrokerProcess broker(config);
    BROOK_ASSERT_STARTED(broker);
    ASSERT_TRUE(publisher.connect(options));
    for (int n = 1; n <= count / 2; ++n) ASSERT_TRUE(publisher.publish("Durable/t", "n" + std::to_string(n)));
    std::thread rest([&] {
      for (int n = count / 2 + 1; n <= count; ++n) publisher.publish("Durable/t", "n" + std::to_string(n));
    });
    std::this_thread::sleep_for(20ms);
    broker.crash();
    rest.join();
  }
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  // The last one acknowledged: everything before it from this publisher has been taken.
  ASSERT_EQ(publisher.publish_acked("Durable/t", std::as_bytes(std::span("end", 3))).wait_for(60s),
            std::future_status::ready);
  UpdateLog log;
  Client reader;
  ASSERT_TRUE(connect_client_once(reader, broker.url(), "durable-reader"));
  ASSERT_TRUE(subscribe_with(reader, "Durable/t", log, {.since = 0}));
  std::vector<int> seen(count + 1, 0);
  for (const auto& e : log.entries())
    if (e.value.size() > 1 && e.value[0] == 'n') ++seen[std::stoul(e.value.substr(1))];
  int missing = 0, first_missing = 0, twice = 0, first_twice = 0;
  for (int n = 1; n <= count; ++n) {
    if (seen[n] == 0 && missing++ == 0) first_missing = n;
    if (seen[n] > 1 && twice++ == 0) first_twice = n;
  }
  EXPECT_EQ(missing, 0) << "first missing: n" << first_missing << " of " << log.size() << " kept";
  EXPECT_EQ(twice, 0) << "first applied twice: n" << first_twice << " of " << log.size() << " kept";
  EXPECT_EQ(publisher.session_id(), "anonymous/3");
  publisher.close();
  std::filesystem::remove_all(data_dir);
}

TEST(History, a_broker_without_a_data_dir_gives_a_remade_topic_a_new_epoch) {
  std::uint64_t epochs[2] = {};
  for (auto& epoch : epochs) {
    BrokerProcess broker(with_shards(1));
    BROOK_ASSERT_STARTED(broker);
    Client client;
    ASSERT_TRUE(connect_client_once(client, broker.url(), "history-epoch"));
    publish_range(client, "Epoch/a", 1, 1);
    UpdateLog log;
    ASSERT_TRUE(subscribe_and_wait(client, "Epoch/a", log));
    epoch = log.entries().at(0).epoch;
  }
  EXPECT_NE(epochs[0], 0u);
  EXPECT_NE(epochs[0], epochs[1]);
}

TEST(History, brook_sub_prints_history_and_since_and_says_when_updates_are_gone) {
  BrokerProcess broker(with_history_depth(2, 8));
  BROOK_ASSERT_STARTED(broker);
  // Created keeping 4 (the broker's default here is 8).
  ASSERT_EQ(run_cli({"pub", "--url", broker.url(), "--history", "4", "Cli/h", "v1"}, {}, 30s).exit_code(), 0);
  auto pub = [&](int n) {
    return run_cli({"pub", "--url", broker.url(), "Cli/h", "v" + std::to_string(n)}, {}, 30s);
  };
  for (int n = 2; n <= 6; ++n) ASSERT_EQ(pub(n).exit_code(), 0);
  auto last_two = run_cli({"sub", "--url", broker.url(), "--history", "2", "--count", "2", "--timeout", "30", "Cli/h"}, {}, 60s);
  ASSERT_EQ(last_two.exit_code(), 0) << last_two.describe();
  EXPECT_EQ(last_two.out, "Cli/h\t5\tv5\nCli/h\t6\tv6\n");
  auto since = run_cli({"sub", "--url", broker.url(), "--since", "4", "--count", "2", "--timeout", "30", "Cli/h"}, {}, 60s);
  ASSERT_EQ(since.exit_code(), 0) << since.describe();
  EXPECT_EQ(since.out, "Cli/h\t5\tv5\nCli/h\t6\tv6\n");
  // Depth 4 keeps 3..6: asking for all after 0 reports the gap before 3 on stderr.
  auto gone = run_cli({"sub", "--url", broker.url(), "--since", "0", "--count", "4", "--timeout", "30", "Cli/h"}, {}, 60s);
  ASSERT_EQ(gone.exit_code(), 0) << gone.describe();
  EXPECT_EQ(gone.out, "Cli/h\t3\tv3\nCli/h\t4\tv4\nCli/h\t5\tv5\nCli/h\t6\tv6\n");
  EXPECT_NE(gone.err.find("updates before 3 were missed"), std::string::npos) << gone.describe();
}

}  // namespace
}  // namespace brook::test
