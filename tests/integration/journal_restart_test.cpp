// The journal with a real brookd (--data-dir): topics, their current values and sequences
// survive a kill -9 and a restart; every acknowledged update is there afterwards, whatever
// the crash cut; sequences continue instead of starting again at 1; a broker restarted with
// another shard count finds every topic at its new owner.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

struct TopicState {
  std::uint64_t seq = 0;
  std::string value;
};

// Subscribes to `selector` and waits until `topics` topics have their current value.
std::map<std::string, TopicState> current_values(const std::string& url, const std::string& selector,
                                                 std::size_t topics) {
  Client client;
  std::map<std::string, TopicState> seen;
  std::mutex mutex;
  if (!connect_client_once(client, url, "journal-reader")) return {};
  auto confirmed = std::make_shared<std::promise<Status>>();
  auto answer = confirmed->get_future();
  client.subscribe(
      selector,
      [&](const Update& u) {
        std::lock_guard lock(mutex);
        seen[std::string(u.path)] = {u.topic_seq, std::string(u.text())};
      },
      [confirmed](const Status& s) { confirmed->set_value(s); });
  EXPECT_EQ(answer.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  eventually([&] {
    std::lock_guard lock(mutex);
    return seen.size() >= topics;
  }, std::chrono::seconds(10));
  client.close();
  return seen;
}

std::future<Status> publish_text(Client& client, const std::string& path, std::string_view text) {
  return client.publish_acked(path, std::as_bytes(std::span(text.data(), text.size())));
}

BrokerConfig journalled(const std::string& data_dir, unsigned shards, const std::string& sync = "always") {
  BrokerConfig config = with_shards(shards);
  config.extra_args = {"--data-dir", data_dir};
  config.config_toml = "[storage]\nsync = \"" + sync + "\"\n";
  return config;
}

// Publishes updates 1..updates to topics PREFIX0..PREFIX<topics-1> (round by round, the
// value value_of(n)) on a fresh broker with the journal, waits for every acknowledgement and
// kills the broker.
void publish_then_kill(const BrokerConfig& config, const std::string& prefix, int topics, int updates,
                       const std::function<std::string(int)>& value_of) {
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "journal-publisher"));
  std::vector<std::future<Status>> acks;
  for (int n = 1; n <= updates; ++n)
    for (int t = 0; t < topics; ++t) acks.push_back(publish_text(publisher, prefix + std::to_string(t), value_of(n)));
  for (auto& ack : acks) ASSERT_TRUE(ack.get());
  publisher.close();
  broker.crash();
}

TEST(JournalRestart, topics_values_and_sequences_survive_kill_9_and_sequences_continue) {
  const std::string data_dir = make_temp_dir("brook-journal");
  constexpr int topics = 20, updates_per_topic = 10;
  publish_then_kill(journalled(data_dir, 2), "Journal/t", topics, updates_per_topic,
                    [](int n) { return "v" + std::to_string(n); });
  BrokerProcess broker(journalled(data_dir, 2));
  BROOK_ASSERT_STARTED(broker);
  EXPECT_NE(broker.log().find("20 topic(s) and 0 session(s) from 200 record(s)"), std::string::npos) << broker.log();
  auto values = current_values(broker.url(), "Journal//", topics);
  ASSERT_EQ(values.size(), static_cast<std::size_t>(topics));
  for (auto& [path, state] : values) {
    EXPECT_EQ(state.seq, static_cast<std::uint64_t>(updates_per_topic)) << path;
    EXPECT_EQ(state.value, "v" + std::to_string(updates_per_topic)) << path;
  }
  // The next update continues the sequence.
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "journal-publisher"));
  ASSERT_TRUE(publish_text(publisher, "Journal/t0", "after restart").get());
  publisher.close();
  auto after = current_values(broker.url(), "Journal/t0", 1);
  EXPECT_EQ(after["Journal/t0"].seq, static_cast<std::uint64_t>(updates_per_topic + 1));
  EXPECT_EQ(after["Journal/t0"].value, "after restart");
  broker.stop();
  std::filesystem::remove_all(data_dir);
}

// A flat-out stream of acknowledged publishes, cut by kill -9 at a different moment each
// time: after each restart, every topic is at least at the last acknowledged update, and the
// sequence numbers are the ones the acknowledged values had.
TEST(JournalRestart, every_acknowledged_update_survives_kill_9_mid_stream) {
  const std::string data_dir = make_temp_dir("brook-journal");
  constexpr int rounds = 20, topics = 8;
  std::map<std::string, std::uint64_t> acked_n;  // the highest acknowledged value per topic
  // Each topic's values count up from what the journal gave back, so that a topic's value
  // is its sequence number as long as no update in the middle went missing.
  std::map<std::string, std::uint64_t> restored_n;
  for (int round = 0; round < rounds; ++round) {
    BrokerProcess broker(journalled(data_dir, 2));
    BROOK_ASSERT_STARTED(broker);
    // What the journal gave back is at least everything acknowledged so far.
    if (round > 0) {
      auto values = current_values(broker.url(), "Stream//", topics);
      ASSERT_EQ(values.size(), static_cast<std::size_t>(topics)) << broker.log();
      for (auto& [path, state] : values) {
        const std::uint64_t n = std::stoull(state.value);
        EXPECT_GE(n, acked_n[path]) << path << " lost an acknowledged update (round " << round << ")";
        EXPECT_EQ(state.seq, n) << path << ": an update in the middle went missing, or the sequence restarted";
        restored_n[path] = n;
      }
    }
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "stream-publisher"));
    std::atomic<bool> stop{false};
    std::mutex mutex;
    std::map<std::string, std::uint64_t> acked_now = acked_n;
    std::thread stream([&] {
      std::vector<std::pair<std::string, std::future<Status>>> in_flight;
      for (std::uint64_t k = 1; !stop.load(); ++k) {
        for (int t = 0; t < topics && !stop.load(); ++t) {
          const std::string path = "Stream/t" + std::to_string(t);
          const std::string n = std::to_string(restored_n[path] + k);
          in_flight.emplace_back(path + "#" + n, publish_text(publisher, path, n));
        }
        // Settle the acknowledgements that came back.
        std::erase_if(in_flight, [&](auto& entry) {
          if (entry.second.wait_for(std::chrono::seconds(0)) != std::future_status::ready) return false;
          if (entry.second.get()) {
            const auto hash = entry.first.find('#');
            std::lock_guard lock(mutex);
            auto& best = acked_now[entry.first.substr(0, hash)];
            best = std::max<std::uint64_t>(best, std::stoull(entry.first.substr(hash + 1)));
          }
          return true;
        });
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + 25 * (round % 8)));
    broker.crash();
    stop = true;
    stream.join();
    publisher.close();
    std::lock_guard lock(mutex);
    acked_n = acked_now;
  }
  // Each topic gets the same n in one loop pass, so every topic moved.
  EXPECT_EQ(acked_n.size(), static_cast<std::size_t>(topics));
  std::filesystem::remove_all(data_dir);
}

// Right after a kill -9 the old brookd's port may still be held for a moment (the kernel
// tears its io_uring down after the exit): a new brookd waits for the port instead of
// failing. Here a socket of the test holds it for 300 ms.
TEST(JournalRestart, a_brookd_started_while_its_port_is_still_held_waits_for_it) {
  const std::uint16_t port = free_port();
  int holder = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(port);
  ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::listen(holder, 1), 0);
  std::thread release([holder] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    ::close(holder);
  });
  BrokerConfig config = with_shards(1);
  config.listen = "127.0.0.1:" + std::to_string(port);
  BrokerProcess broker(config);
  release.join();
  BROOK_ASSERT_STARTED(broker);
  Client client;
  EXPECT_TRUE(connect_client_once(client, broker.url(), "port-waiter"));
}

TEST(JournalRestart, a_broker_restarted_with_another_shard_count_finds_every_topic) {
  const std::string data_dir = make_temp_dir("brook-journal");
  constexpr int topics = 30;
  {
    BrokerProcess broker(journalled(data_dir, 1, "never"));
    BROOK_ASSERT_STARTED(broker);
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "journal-publisher"));
    for (int t = 0; t < topics; ++t)
      ASSERT_TRUE(publish_text(publisher, "Shards/t" + std::to_string(t), "one shard").get());
    publisher.close();
    broker.stop();
  }
  BrokerProcess broker(journalled(data_dir, 3, "never"));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "journal-publisher"));
  for (int t = 0; t < topics; ++t)
    ASSERT_TRUE(publish_text(publisher, "Shards/t" + std::to_string(t), "three shards").get());
  publisher.close();
  broker.crash();
  // Restarted again with three: each topic's newest record is in another shard's directory
  // than its first, and the higher sequence wins.
  BrokerProcess again(journalled(data_dir, 3, "never"));
  BROOK_ASSERT_STARTED(again);
  auto values = current_values(again.url(), "Shards//", topics);
  ASSERT_EQ(values.size(), static_cast<std::size_t>(topics));
  for (auto& [path, state] : values) {
    EXPECT_EQ(state.seq, 2u) << path;
    EXPECT_EQ(state.value, "three shards") << path;
  }
  again.stop();
  std::filesystem::remove_all(data_dir);
}

// Small segments roll many times: each new one starts with every topic's state, the older
// ones go, and a restart still finds every topic at its last update.
TEST(JournalRestart, rolled_segments_are_removed_and_the_last_ones_restore_everything) {
  const std::string data_dir = make_temp_dir("brook-journal");
  constexpr int topics = 10, updates_per_topic = 2000;
  BrokerConfig config = journalled(data_dir, 2, "interval");
  config.config_toml += "segment_bytes = 65536\n";
  publish_then_kill(config, "Roll/t", topics, updates_per_topic,
                    [](int n) { return std::to_string(n) + std::string(40, '.'); });
  std::size_t segments = 0;
  for (const auto& shard : std::filesystem::directory_iterator(data_dir))
    for ([[maybe_unused]] const auto& file : std::filesystem::directory_iterator(shard.path())) ++segments;
  // 20,000 records of about 90 bytes are some 30 segments of 64 KiB; a few remain.
  EXPECT_LE(segments, 6u) << "old segments were not removed";
  BrokerProcess broker(journalled(data_dir, 2));
  BROOK_ASSERT_STARTED(broker);
  auto values = current_values(broker.url(), "Roll//", topics);
  ASSERT_EQ(values.size(), static_cast<std::size_t>(topics)) << broker.log();
  for (auto& [path, state] : values) {
    EXPECT_EQ(state.seq, static_cast<std::uint64_t>(updates_per_topic)) << path;
    EXPECT_EQ(state.value, std::to_string(updates_per_topic) + std::string(40, '.')) << path;
  }
  broker.stop();
  std::filesystem::remove_all(data_dir);
}

// A data directory on a full disk (a 256 KiB tmpfs): the publish the journal cannot take is
// refused with why, every acknowledged one survives a kill -9, and the broker goes on serving
// subscribers the values it has.
TEST(JournalRestart, a_full_disk_refuses_publishes_with_why_and_loses_nothing_acknowledged) {
  const std::string data_dir = make_temp_dir("brook-journal-full");
  if (::mount("tmpfs", data_dir.c_str(), "tmpfs", 0, "size=256k") != 0)
    GTEST_SKIP() << "cannot mount a small tmpfs here (needs root): " << std::strerror(errno);
  struct Unmount {
    std::string dir;
    ~Unmount() {
      ::umount2(dir.c_str(), MNT_DETACH);
      std::filesystem::remove_all(dir);
    }
  } unmount{data_dir};
  constexpr int topics = 4;
  std::map<std::string, int> acked;  // the last acknowledged n per topic
  Status refusal;
  {
    BrokerProcess broker(journalled(data_dir, 2));
    BROOK_ASSERT_STARTED(broker);
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "journal-publisher"));
    const std::string pad(1000, '.');
    for (int n = 1; n <= 2000 && refusal.code == ErrorCode::none; ++n) {
      const std::string path = "Full/t" + std::to_string(n % topics);
      Status s = publish_text(publisher, path, std::to_string(n) + pad).get();
      if (s) acked[path] = n;
      else refusal = s;
    }
    EXPECT_EQ(refusal.code, ErrorCode::storage_failed) << refusal.message;
    EXPECT_NE(refusal.message.find("journal"), std::string::npos) << refusal.message;
    EXPECT_NE(refusal.message.find("No space left"), std::string::npos) << refusal.message;
    // Still serving: a new subscriber gets every topic's value.
    auto values = current_values(broker.url(), "Full//", topics);
    EXPECT_EQ(values.size(), static_cast<std::size_t>(topics));
    publisher.close();
    broker.crash();
  }
  ASSERT_EQ(acked.size(), static_cast<std::size_t>(topics)) << "the disk filled before every topic had a value";
  BrokerProcess broker(journalled(data_dir, 2));
  BROOK_ASSERT_STARTED(broker);
  auto values = current_values(broker.url(), "Full//", topics);
  ASSERT_EQ(values.size(), static_cast<std::size_t>(topics)) << broker.log();
  for (auto& [path, state] : values)
    EXPECT_GE(std::stoi(state.value), acked[path]) << path << " lost an acknowledged update";
  broker.stop();
}

}  // namespace
}  // namespace brook::test
