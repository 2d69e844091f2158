// Delta streaming, end to end: a real brookd computes one delta per update, real clients
// rebuild every value from it and hand the application the whole value. Covered: realistic
// values (odds JSON, binary records, strings) arriving as deltas after a first whole value, a
// subscriber joining mid-stream, topics without deltas or without a retained value, values
// rebuilt correctly through conflation and through a session resumed after a cut, values of
// the wrong type refused on publish, the client's refusal of a damaged delta (against a
// scripted fake broker) and the CLI's --wire, --no-deltas and --dont-retain.
// Every wait is bounded; no assertion depends on timing.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/client/json.hpp"
#include "brook/codec/delta.hpp"
#include "brook/codec/messages.hpp"
#include "cli_output.hpp"
#include "fake_broker.hpp"
#include "fault_proxy.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using std::chrono::milliseconds;

// Large enough for a sanitizer build on a busy machine; only reached on failure.
constexpr auto long_wait = std::chrono::seconds(60);
constexpr auto short_wait = std::chrono::seconds(10);
constexpr auto cli_deadline = std::chrono::seconds(40);

// ---- what a client saw --------------------------------------------------------------------

struct Got {
  std::string path;
  TopicType type = TopicType::string;
  std::uint64_t topic_seq = 0;
  std::uint64_t session_seq = 0;
  std::string value;
  std::string old_value;
  bool resync = false;
  UpdateEncoding encoding = UpdateEncoding::full;
  std::size_t wire_bytes = 0;
  std::optional<nlohmann::json> json;  // brook::parse_json(value) of a json update
};

struct Seen {
  std::map<std::string, std::vector<Got>> by_path;  // each in arrival order
  std::size_t count = 0;
  std::vector<Status> errors;
  std::size_t disconnects = 0;
  std::vector<bool> reconnects;                // the resync flag of each on_reconnect
  std::vector<std::size_t> counts_at_reconnect;  // updates received when it fired
  std::optional<std::string> closed;

  const std::vector<Got>& of(const std::string& path) const {
    static const std::vector<Got> none;
    auto it = by_path.find(path);
    return it == by_path.end() ? none : it->second;
  }
  std::string describe() const {
    std::string text = std::to_string(count) + " updates; disconnects " +
                       std::to_string(disconnects) + "; reconnects " +
                       std::to_string(reconnects.size()) +
                       "; closed: " + (closed ? "'" + *closed + "'" : std::string("no")) +
                       "; errors:";
    for (const auto& e : errors) text += " '" + e.message + "'";
    return text;
  }
};

// Records one client's updates and events on the client's thread; the test thread waits
// (bounded) and reads copies. Declare it before the Client it listens to, so that the client
// (and its thread) goes first.
class Recorder {
 public:
  explicit Recorder(bool keep_old_values = true) : keep_old_(keep_old_values) {}

  UpdateHandler handler() {
    return [this](const Update& u) {
      Got g{std::string(u.path), u.type,     u.topic_seq, u.session_seq, std::string(u.text()),
            {},                  u.resync,   u.encoding,  u.wire_bytes,  std::nullopt};
      if (keep_old_) g.old_value = u.old_text();
      if (u.type == TopicType::json) {
        try {
          g.json = brook::parse_json(u.value);
        } catch (const std::exception&) {
          // Left empty: the test reports the value that did not parse.
        }
      }
      update([&](Seen& s) {
        s.by_path[g.path].push_back(std::move(g));
        ++s.count;
      });
    };
  }
  void listen(Client& client) {
    client.on_error([this](const Status& st) { update([&](Seen& s) { s.errors.push_back(st); }); });
    client.on_disconnect([this](const std::string&) { update([](Seen& s) { ++s.disconnects; }); });
    client.on_reconnect([this](bool resync) {
      update([&](Seen& s) {
        s.reconnects.push_back(resync);
        s.counts_at_reconnect.push_back(s.count);
      });
    });
    client.on_close(
        [this](const std::string& reason) { update([&](Seen& s) { s.closed = reason; }); });
  }
  bool wait(const std::function<bool(const Seen&)>& predicate, milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return predicate(seen_); });
  }
  bool wait_for_count(std::size_t count, milliseconds timeout) {
    return wait([&](const Seen& s) { return s.count >= count; }, timeout);
  }
  bool wait_for(const std::string& path, std::size_t count, milliseconds timeout) {
    return wait([&](const Seen& s) { return s.of(path).size() >= count; }, timeout);
  }
  Seen seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return seen_.count;
  }

 private:
  template <class F>
  void update(F&& f) {
    std::lock_guard lock(mutex_);
    f(seen_);
    changed_.notify_all();
  }
  const bool keep_old_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  Seen seen_;
};

// ---- helpers ------------------------------------------------------------------------------

Status subscribe_recorded(Client& client, std::string selector, Recorder& recorder) {
  struct Verdict {
    std::promise<Status> promise;
    std::atomic<bool> given{false};
  };
  auto verdict = std::make_shared<Verdict>();
  auto answer = verdict->promise.get_future();
  client.subscribe(std::move(selector), recorder.handler(), [verdict](const Status& status) {
    if (!verdict->given.exchange(true)) verdict->promise.set_value(status);
  });
  if (answer.wait_for(short_wait) != std::future_status::ready)
    return Status{ErrorCode::internal, "no answer to subscribe within the timeout"};
  return answer.get();
}

BrokerConfig broker_config(unsigned shards, std::string toml) {
  BrokerConfig config = with_shards(shards);
  config.config_toml = std::move(toml);
  return config;
}

std::string printable(const std::string& value, std::size_t max = 120) {
  std::string out;
  for (char c : value.substr(0, max)) {
    if (c >= 0x20 && c < 0x7f) {
      out += c;
    } else {
      static const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[(static_cast<unsigned char>(c) >> 4) & 0xf];
      out += hex[static_cast<unsigned char>(c) & 0xf];
    }
  }
  if (value.size() > max) out += "...(" + std::to_string(value.size()) + " bytes)";
  return out;
}

// The first place where one topic's updates differ from a stream that began with its first
// value (topic_seq 1) and was followed whole: every value published, in order, no resync, the
// previous value as old_value, the first whole and every later one a delta smaller than the
// value. Empty when it matches.
std::string first_difference(const std::vector<Got>& got, const std::vector<std::string>& expected,
                             TopicType type, std::uint64_t first_topic_seq = 1) {
  for (std::size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    const Got& g = got[i];
    std::string where = "update #" + std::to_string(i) + " (topic_seq " +
                        std::to_string(g.topic_seq) + "): ";
    if (g.topic_seq != first_topic_seq + i)
      return where + "expected topic_seq " + std::to_string(first_topic_seq + i);
    if (g.value != expected[i])
      return where + "value '" + printable(g.value) + "', expected '" + printable(expected[i]) +
             "'";
    if (g.type != type) return where + "type " + std::string(codec::to_string(g.type));
    if (g.resync) return where + "flagged resync";
    const std::string& before = i == 0 ? std::string() : expected[i - 1];
    if (g.old_value != before)
      return where + "old_value '" + printable(g.old_value) + "', expected '" +
             printable(before) + "'";
    if (i == 0 && g.encoding != UpdateEncoding::full) return where + "the first value came as a delta";
    if (i > 0 && g.encoding != UpdateEncoding::delta)
      return where + "came whole (" + std::to_string(g.wire_bytes) + " bytes), not as a delta";
    if (i > 0 && g.wire_bytes >= g.value.size())
      return where + "delta of " + std::to_string(g.wire_bytes) + " bytes for a value of " +
             std::to_string(g.value.size());
    if (i == 0 && g.wire_bytes != g.value.size())
      return where + "whole value of " + std::to_string(g.value.size()) + " bytes reported as " +
             std::to_string(g.wire_bytes) + " on the wire";
  }
  if (got.size() != expected.size())
    return "got " + std::to_string(got.size()) + " updates, expected " +
           std::to_string(expected.size());
  return {};
}

// ---- realistic values ---------------------------------------------------------------------

// One match's odds, printed as `brook demo` prints them (tools/cli/odds_feed.cpp).
struct Odds {
  double spread = 3.5;
  int home_odds = 120;
  int away_odds = -140;
  double total = 44.5;
  int over_odds = -110;
  int under_odds = -110;
};

std::string signed_text(double v) {
  char b[16];
  std::snprintf(b, sizeof b, "%+.1f", v);
  return b;
}
std::string odds_text(int v) { return v > 0 ? "+" + std::to_string(v) : std::to_string(v); }

std::string to_json(const Odds& m) {
  return "{\"Home_Spread\":\"" + signed_text(m.spread) + "\",\"Home_Odds\":\"" +
         odds_text(m.home_odds) + "\",\"Away_Spread\":\"" + signed_text(-m.spread) +
         "\",\"Away_Odds\":\"" + odds_text(m.away_odds) + "\",\"Total\":\"" +
         signed_text(m.total).substr(1) + "\",\"Over_Odds\":\"" + odds_text(m.over_odds) +
         "\",\"Under_Odds\":\"" + odds_text(m.under_odds) + "\"}";
}

// Moves American odds by a non-zero multiple of 5, skipping the band (-100, +100).
int nudge(int odds, std::mt19937& rng) {
  int step = std::uniform_int_distribution<int>(1, 3)(rng) * 5;
  if (rng() & 1) step = -step;
  int next = odds + step;
  if (next > -100 && next < 100) next = odds > 0 ? -100 - (100 - next) : 100 + (next + 100);
  return next;
}

// Changes one or two odds fields.
void change_odds(Odds& m, std::mt19937& rng) {
  switch (std::uniform_int_distribution<int>(0, 2)(rng)) {
    case 0:
      m.home_odds = nudge(m.home_odds, rng);
      m.away_odds = nudge(m.away_odds, rng);
      break;
    case 1:
      m.over_odds = nudge(m.over_odds, rng);
      m.under_odds = nudge(m.under_odds, rng);
      break;
    default: m.home_odds = nudge(m.home_odds, rng);
  }
}

// ---- 1. round trips on realistic values ------------------------------------------------------

TEST(DeltaRoundTrip, odds_json_arrives_as_deltas_and_every_value_and_old_value_is_exact) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "odds-subscriber"));
  seen.listen(subscriber);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "odds-publisher"));
  ASSERT_TRUE(subscribe_recorded(subscriber, "Odds//", seen));

  constexpr int matches = 6;
  constexpr int updates = 400;
  std::mt19937 rng(20240611);
  std::vector<Odds> odds(matches);
  std::map<std::string, std::vector<std::string>> expected;
  auto path_of = [](int m) { return "Odds/NFL/Match " + std::to_string(m) + "/Odds"; };
  for (int m = 0; m < matches; ++m) {
    odds[m].spread = 0.5 * (m - 3);
    std::string value = to_json(odds[m]);
    expected[path_of(m)].push_back(value);
    // The first publish creates the topic as json.
    ASSERT_TRUE(await(publisher.publish_acked(path_of(m), bytes_of(value), TopicType::json)));
  }
  for (int i = 0; i < updates; ++i) {
    int m = std::uniform_int_distribution<int>(0, matches - 1)(rng);
    change_odds(odds[m], rng);
    std::string value = to_json(odds[m]);
    expected[path_of(m)].push_back(value);
    publisher.publish(path_of(m), value);
  }
  ASSERT_TRUE(seen.wait_for_count(matches + updates, long_wait))
      << seen.seen().describe() << broker.log_tail();

  Seen got = seen.seen();
  EXPECT_EQ(got.count, static_cast<std::size_t>(matches + updates));
  EXPECT_TRUE(got.errors.empty()) << got.describe();
  for (int m = 0; m < matches; ++m) {
    const auto& list = got.of(path_of(m));
    EXPECT_EQ(first_difference(list, expected[path_of(m)], TopicType::json), "") << path_of(m);
    // Read as parsed JSON: the fields of the latest value.
    ASSERT_FALSE(list.empty());
    ASSERT_TRUE(list.back().json.has_value()) << list.back().value;
    const nlohmann::json& last = *list.back().json;
    EXPECT_EQ(last.at("Home_Odds").get<std::string>(), odds_text(odds[m].home_odds));
    EXPECT_EQ(last.at("Away_Odds").get<std::string>(), odds_text(odds[m].away_odds));
    EXPECT_EQ(last.at("Over_Odds").get<std::string>(), odds_text(odds[m].over_odds));
    EXPECT_EQ(last.at("Home_Spread").get<std::string>(), signed_text(odds[m].spread));
    EXPECT_EQ(last.size(), 7u);
    for (const auto& g : list)
      ASSERT_TRUE(g.json && *g.json == nlohmann::json::parse(g.value)) << g.value;
  }

  subscriber.close();
  publisher.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("deltas_computed"), static_cast<std::uint64_t>(updates))
      << broker.log();
  EXPECT_GE(broker.counter_total("delta_deliveries"), static_cast<std::uint64_t>(updates))
      << broker.log();
}

TEST(DeltaRoundTrip, one_kib_binary_records_with_a_few_fields_changed_arrive_as_small_deltas) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "binary-subscriber"));
  seen.listen(subscriber);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "binary-publisher"));
  ASSERT_TRUE(subscribe_recorded(subscriber, "Records//", seen));

  constexpr int topics = 3;
  constexpr int updates_per_topic = 120;
  constexpr std::size_t fields = 1024 / 8;
  auto path_of = [](int t) { return "Records/r" + std::to_string(t); };
  std::mt19937_64 rng(7);
  std::vector<std::vector<std::uint64_t>> records(topics, std::vector<std::uint64_t>(fields));
  std::map<std::string, std::vector<std::string>> expected;
  auto bytes = [](const std::vector<std::uint64_t>& r) {
    return std::string(reinterpret_cast<const char*>(r.data()), r.size() * 8);
  };
  for (int t = 0; t < topics; ++t) {
    for (auto& f : records[t]) f = rng();
    records[t][0] = 0;  // binary, not text: zero bytes too
    ASSERT_TRUE(await(publisher.create_topic(path_of(t), {.type = TopicType::binary})));
  }
  for (int i = 0; i < updates_per_topic; ++i)
    for (int t = 0; t < topics; ++t) {
      if (i > 0)
        for (int k = 0; k < 3; ++k)
          records[t][std::uniform_int_distribution<std::size_t>(1, fields - 1)(rng)] = rng();
      std::string value = bytes(records[t]);
      expected[path_of(t)].push_back(value);
      publisher.publish(path_of(t), bytes_of(value));
    }
  ASSERT_TRUE(seen.wait_for_count(topics * updates_per_topic, long_wait))
      << seen.seen().describe() << broker.log_tail();

  Seen got = seen.seen();
  EXPECT_TRUE(got.errors.empty()) << got.describe();
  for (int t = 0; t < topics; ++t) {
    const auto& list = got.of(path_of(t));
    EXPECT_EQ(first_difference(list, expected[path_of(t)], TopicType::binary), "") << path_of(t);
    // Three 8-byte fields changed: far less than the 1 KiB record.
    for (std::size_t i = 1; i < list.size(); ++i)
      EXPECT_LT(list[i].wire_bytes, 256u) << path_of(t) << " update " << i;
  }
}

// Each subscriber's shard makes the delta, from the update before it that the shard kept
// (shard_delivery.cpp). Connections go to shards round-robin in accept order: with a
// subscriber on each of two shards and topics owned by both, every update after a topic's
// first reaches both subscribers as a delta, and each shard made one per update.
TEST(DeltaAcrossShards, subscribers_on_both_shards_get_deltas_made_on_their_own_shard) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen_on_0, seen_on_1;
  Client subscriber_on_0, subscriber_on_1, publisher;
  ASSERT_TRUE(connect_client(subscriber_on_0, broker.url(), "delta-subscriber-0"));
  seen_on_0.listen(subscriber_on_0);
  ASSERT_TRUE(connect_client(subscriber_on_1, broker.url(), "delta-subscriber-1"));
  seen_on_1.listen(subscriber_on_1);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "delta-publisher"));
  ASSERT_TRUE(subscribe_recorded(subscriber_on_0, "Spread//", seen_on_0));
  ASSERT_TRUE(subscribe_recorded(subscriber_on_1, "Spread//", seen_on_1));

  constexpr int topics = 16, updates = 60;
  auto path_of = [](int t) { return "Spread/match " + std::to_string(t); };
  auto value = [](int t, int i) {
    return "match=" + std::to_string(t) + " home=1.95 draw=3.40 away=" + std::to_string(400 + i) +
           " minute=" + std::to_string(i) + " status=live";
  };
  std::map<std::string, std::vector<std::string>> expected;
  for (int i = 0; i < updates; ++i)
    for (int t = 0; t < topics; ++t) {
      expected[path_of(t)].push_back(value(t, i));
      publisher.publish(path_of(t), value(t, i));
    }
  for (Recorder* seen : {&seen_on_0, &seen_on_1}) {
    const char* who = seen == &seen_on_0 ? "subscriber on shard 0" : "subscriber on shard 1";
    ASSERT_TRUE(seen->wait_for_count(topics * updates, long_wait)) << who << seen->seen().describe();
    Seen got = seen->seen();
    EXPECT_TRUE(got.errors.empty()) << who << got.describe();
    for (int t = 0; t < topics; ++t)
      EXPECT_EQ(first_difference(got.of(path_of(t)), expected[path_of(t)], TopicType::string), "")
          << who << ", " << path_of(t);
  }

  subscriber_on_0.close();
  subscriber_on_1.close();
  publisher.close();
  broker.stop();
  auto computed = broker.shard_counter("deltas_computed");
  auto delivered = broker.shard_counter("delta_deliveries");
  for (unsigned shard : {0u, 1u}) {
    EXPECT_EQ(computed[shard], static_cast<std::uint64_t>(topics * (updates - 1))) << "shard " << shard << broker.log();
    EXPECT_EQ(delivered[shard], static_cast<std::uint64_t>(topics * (updates - 1))) << "shard " << shard;
  }
}

TEST(DeltaRoundTrip, strings_with_a_few_characters_changed_arrive_as_deltas) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "string-subscriber"));
  seen.listen(subscriber);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "string-publisher"));
  ASSERT_TRUE(subscribe_recorded(subscriber, "Trades/*", seen));

  const std::vector<std::string> paths = {"Trades/BTC-EUR", "Trades/ETH-EUR"};
  std::map<std::string, std::vector<std::string>> expected;
  for (int i = 0; i < 150; ++i)
    for (std::size_t p = 0; p < paths.size(); ++p) {
      std::string value = "trade id=" + std::to_string(1000000 + i) + " instrument=" + paths[p] +
                          " venue=XNAS-continuous-book side=" + (i % 3 ? "buy" : "sell") +
                          " price=" + std::to_string(61234 + (i * 7) % 50) + "." +
                          std::to_string(i % 10) + " quantity=" + std::to_string(1 + i % 13) +
                          " trader=desk-7/algo-twap-v2 — état: réglé ✓";
      expected[paths[p]].push_back(value);
      publisher.publish(paths[p], value);  // the first publish creates a string topic
    }
  ASSERT_TRUE(seen.wait_for_count(300, long_wait)) << seen.seen().describe() << broker.log_tail();
  Seen got = seen.seen();
  EXPECT_TRUE(got.errors.empty()) << got.describe();
  for (const auto& path : paths)
    EXPECT_EQ(first_difference(got.of(path), expected[path], TopicType::string), "") << path;
}

// ---- 2. joining mid-stream ------------------------------------------------------------------

TEST(DeltaLateSubscriber, joining_mid_stream_gets_the_current_value_whole_then_deltas) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "late-publisher"));
  const std::string path = "Late/score";
  auto value = [](int i) {
    return "home=" + std::to_string(i / 3) + " away=" + std::to_string(i / 5) + " minute=" +
           std::to_string(i) + " possession=" + std::to_string(40 + i % 20) +
           "% shots=" + std::to_string(i / 2) + " corners=" + std::to_string(i / 7);
  };
  constexpr int before = 40, after = 40;
  for (int i = 1; i < before; ++i) publisher.publish(path, value(i));
  ASSERT_TRUE(await(publisher.publish_acked(path, bytes_of(value(before)))));

  ASSERT_TRUE(connect_client(subscriber, broker.url(), "late-subscriber"));
  seen.listen(subscriber);
  ASSERT_TRUE(subscribe_recorded(subscriber, path, seen));
  std::vector<std::string> expected = {value(before)};
  for (int i = before + 1; i <= before + after; ++i) {
    expected.push_back(value(i));
    publisher.publish(path, value(i));
  }
  ASSERT_TRUE(seen.wait_for(path, after + 1, long_wait)) << seen.seen().describe();
  Seen got = seen.seen();
  const auto& list = got.of(path);
  ASSERT_FALSE(list.empty());
  EXPECT_EQ(list[0].encoding, UpdateEncoding::full);
  EXPECT_EQ(list[0].value, value(before));
  EXPECT_EQ(list[0].topic_seq, static_cast<std::uint64_t>(before));
  EXPECT_EQ(first_difference(list, expected, TopicType::string, before), "");
}

// ---- 3. topic properties ----------------------------------------------------------------------

TEST(DeltaTopicProperties, topic_created_without_deltas_sends_every_update_whole) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "plain-subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "plain-publisher"));
  const std::string path = "Plain/quote";
  ASSERT_TRUE(await(publisher.create_topic(path, {.type = TopicType::string, .deltas = false})));
  ASSERT_TRUE(subscribe_recorded(subscriber, path, seen));
  std::vector<std::string> expected;
  for (int i = 0; i < 50; ++i) {
    expected.push_back("quote bid=" + std::to_string(100 + i) + " ask=" + std::to_string(101 + i) +
                       " " + std::string(200, 'x'));
    publisher.publish(path, expected.back());
  }
  ASSERT_TRUE(seen.wait_for(path, expected.size(), long_wait)) << seen.seen().describe();
  const auto list = seen.seen().of(path);
  ASSERT_EQ(list.size(), expected.size());
  for (std::size_t i = 0; i < list.size(); ++i) {
    EXPECT_EQ(list[i].value, expected[i]) << i;
    EXPECT_EQ(list[i].encoding, UpdateEncoding::full) << "update " << i << " came as a delta";
    EXPECT_EQ(list[i].wire_bytes, expected[i].size()) << i;
  }
  subscriber.close();
  publisher.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("deltas_computed"), 0u) << broker.log();
  EXPECT_EQ(broker.counter_total("delta_deliveries"), 0u) << broker.log();
}

TEST(DeltaTopicProperties, topic_not_retained_gives_a_late_subscriber_only_later_publishes) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "event-subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "event-publisher"));
  const std::string path = "Events/goal";
  ASSERT_TRUE(await(publisher.create_topic(path, {.type = TopicType::string, .retain = false})));
  ASSERT_TRUE(await(publisher.publish_acked(path, bytes_of("goal by 9 at 12'"))));
  ASSERT_TRUE(await(publisher.publish_acked(path, bytes_of("goal by 10 at 31'"))));

  // After the broker's verdict every current value would be in the log: there is none.
  ASSERT_TRUE(subscribe_recorded(subscriber, path, seen));
  EXPECT_EQ(seen.count(), 0u) << "got '" << seen.seen().of(path).front().value << "'";

  ASSERT_TRUE(await(publisher.publish_acked(path, bytes_of("goal by 9 at 58'"))));
  ASSERT_TRUE(await(publisher.publish_acked(path, bytes_of("goal by 7 at 77'"))));
  ASSERT_TRUE(seen.wait_for(path, 2, long_wait)) << seen.seen().describe();
  ASSERT_TRUE(round_trip(publisher));
  const auto list = seen.seen().of(path);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].value, "goal by 9 at 58'");
  EXPECT_EQ(list[0].topic_seq, 3u);
  EXPECT_EQ(list[1].value, "goal by 7 at 77'");
  EXPECT_EQ(list[1].topic_seq, 4u);
}

// ---- 4. conflation with deltas ------------------------------------------------------------------

constexpr int conflated_topics = 10;
constexpr int conflated_updates = 3000;

std::string conflated_path(int topic) { return "Book/b" + std::to_string(topic); }
// 1 KiB: a header and a 200-byte field that change with every update, the rest fixed per
// topic, so that a delta is a fifth of the value.
std::string conflated_value(int topic, int i) {
  std::string v(1024, ' ');
  for (std::size_t k = 0; k < v.size(); ++k) v[k] = static_cast<char>('a' + (k * 7 + topic) % 26);
  std::string head = "b" + std::to_string(topic) + "=" + std::to_string(i) + ";";
  v.replace(0, head.size(), head);
  std::mt19937 rng(static_cast<unsigned>(topic * 1'000'003 + i));
  for (std::size_t k = 0; k < 200; ++k) v[400 + k] = static_cast<char>('A' + rng() % 26);
  return v;
}

// The conflated subscriber is cut off while the updates are published: the broker conflates
// for a subscriber that is away, whatever the socket buffers could have held (a stalled
// connection only conflates once the kernel's buffers are full, which depends on the
// machine), and it resumes its session afterwards.
TEST(DeltaConflation, subscriber_away_rebuilds_exact_values_while_a_healthy_one_gets_every_delta) {
  BrokerProcess broker(broker_config(1, "[session]\nconflate_after_bytes = 262144\n"));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Recorder healthy_seen(false), slow_seen(false);
  Client publisher, healthy, slow;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client(healthy, broker.url(), "healthy"));
  ClientOptions slow_options;
  slow_options.url = proxy.url();
  slow_options.client_name = "slow";
  slow_options.reconnect_delay = std::chrono::milliseconds(100);
  ASSERT_TRUE(slow.connect(slow_options));
  healthy_seen.listen(healthy);
  slow_seen.listen(slow);
  for (int t = 0; t < conflated_topics; ++t)
    ASSERT_TRUE(await(publisher.create_topic(
        conflated_path(t), {.type = TopicType::string, .conflate = true, .deltas = true})));
  ASSERT_TRUE(subscribe_recorded(healthy, "Book//", healthy_seen));
  ASSERT_TRUE(subscribe_recorded(slow, "Book//", slow_seen));

  proxy.refuse_new_connections(true);
  ASSERT_TRUE(proxy.reset(0));
  const std::string last_path = conflated_path(conflated_topics - 1);
  for (int i = 1; i <= conflated_updates; ++i) {
    for (int t = 0; t < conflated_topics; ++t)
      publisher.publish(conflated_path(t), conflated_value(t, i));
    // The healthy subscriber is never more than ten rounds (~30 KiB) behind: it keeps up.
    if (i % 10 == 0) {
      ASSERT_TRUE(healthy_seen.wait_for(last_path, static_cast<std::size_t>(i), long_wait))
          << "round " << i << ": " << healthy_seen.seen().describe();
    }
  }
  ASSERT_TRUE(healthy_seen.wait_for_count(conflated_topics * conflated_updates, long_wait));
  proxy.refuse_new_connections(false);
  auto has_last_values = [](const Seen& s) {
    for (int t = 0; t < conflated_topics; ++t) {
      const auto& list = s.of(conflated_path(t));
      if (list.empty() || list.back().topic_seq != conflated_updates) return false;
    }
    return true;
  };
  ASSERT_TRUE(slow_seen.wait(has_last_values, long_wait))
      << "the subscriber that was away did not reach the latest values: " << slow_seen.seen().describe();

  // The healthy one: every update, in order, and after the first as deltas.
  Seen healthy_got = healthy_seen.seen();
  std::size_t healthy_deltas = 0;
  for (int t = 0; t < conflated_topics; ++t) {
    const auto& list = healthy_got.of(conflated_path(t));
    ASSERT_EQ(list.size(), static_cast<std::size_t>(conflated_updates)) << conflated_path(t);
    for (int i = 0; i < conflated_updates; ++i) {
      ASSERT_EQ(list[i].topic_seq, static_cast<std::uint64_t>(i + 1)) << conflated_path(t);
      ASSERT_EQ(list[i].value, conflated_value(t, i + 1)) << conflated_path(t) << " #" << i;
      if (list[i].encoding == UpdateEncoding::delta) ++healthy_deltas;
    }
  }
  EXPECT_GE(healthy_deltas, static_cast<std::size_t>(conflated_topics * (conflated_updates - 1)))
      << "the healthy subscriber got updates whole that could have been deltas";

  // The one that was away: fewer updates, each exactly the value published with its topic_seq.
  Seen slow_got = slow_seen.seen();
  std::size_t slow_deltas = 0, slow_full = 0;
  for (int t = 0; t < conflated_topics; ++t) {
    const auto& list = slow_got.of(conflated_path(t));
    for (std::size_t i = 0; i < list.size(); ++i) {
      const Got& g = list[i];
      ASSERT_GE(g.topic_seq, 1u);
      ASSERT_LE(g.topic_seq, static_cast<std::uint64_t>(conflated_updates));
      ASSERT_EQ(g.value, conflated_value(t, static_cast<int>(g.topic_seq)))
          << conflated_path(t) << " topic_seq " << g.topic_seq << " ("
          << (g.encoding == UpdateEncoding::delta ? "delta" : "full") << ")";
      if (i > 0) {
        ASSERT_GT(g.topic_seq, list[i - 1].topic_seq) << conflated_path(t) << " out of order";
      }
      (g.encoding == UpdateEncoding::delta ? slow_deltas : slow_full)++;
    }
    EXPECT_EQ(list.back().value, conflated_value(t, conflated_updates));
  }
  RecordProperty("away_deltas", static_cast<int>(slow_deltas));
  RecordProperty("away_whole", static_cast<int>(slow_full));
  EXPECT_TRUE(slow_got.errors.empty()) << slow_got.describe();
  EXPECT_TRUE(healthy_got.errors.empty()) << healthy_got.describe();
  EXPECT_LT(slow_got.count, static_cast<std::size_t>(conflated_topics * conflated_updates))
      << "nothing was conflated for the subscriber that was away";
  EXPECT_TRUE(eventually([&] { return slow.state() == ClientState::connected; }, long_wait));
  slow.close();
  healthy.close();
  publisher.close();
  broker.stop();
  EXPECT_GT(broker.counter_total("conflated"), 0u) << broker.log();
  EXPECT_GT(broker.counter_total("delta_deliveries"), 0u) << broker.log();
}

// ---- 5. a resumed session -------------------------------------------------------------------

TEST(DeltaRecovery, subscriber_cut_mid_stream_rebuilds_every_value_once_in_order_from_deltas) {
  BrokerProcess broker(broker_config(1, "[session]\nrecovery_bytes = 67108864\n"));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  Recorder seen;
  Client subscriber, publisher;
  ClientOptions options;
  options.url = proxy.url();
  options.client_name = "cut-subscriber";
  options.connect_timeout = short_wait;
  options.reconnect_timeout = std::chrono::seconds(30);
  options.reconnect_delay = milliseconds(50);
  ASSERT_TRUE(subscriber.connect(options));
  seen.listen(subscriber);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  const std::string path = "Cut/quote";
  ASSERT_TRUE(subscribe_recorded(subscriber, path, seen));

  constexpr std::size_t n = 20'000;
  std::vector<std::string> values;
  values.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    values.push_back("quote seq=" + std::to_string(i) + " bid=" + std::to_string(1000 + i % 97) +
                     " ask=" + std::to_string(1001 + i % 89) + " venue=XLON " +
                     std::string(160, '.') + " end=" + std::to_string(i));
  std::atomic<std::size_t> acked{0};
  std::string feed_failure;
  std::jthread feed([&] {
    for (std::size_t i = 0; i < n; ++i) {
      if ((i + 1) % 500 != 0 && i + 1 != n) {
        publisher.publish(path, values[i]);
        continue;
      }
      Status s = await(publisher.publish_acked(path, bytes_of(values[i])), long_wait);
      if (!s) {
        feed_failure = "publish " + std::to_string(i) + ": " + s.message;
        return;
      }
      acked.store(i + 1);
    }
  });

  // Mid-stream: hold back what the broker sends while the publisher gets ahead, then cut; what
  // sat in the sockets and the proxy is lost with the connection and must be replayed.
  EXPECT_TRUE(seen.wait_for_count(2000, long_wait)) << seen.seen().describe();
  ASSERT_TRUE(proxy.stall(0));
  const std::size_t acked_at_stall = acked.load();
  eventually([&] { return acked.load() >= std::min(n, acked_at_stall + 5000); }, long_wait);
  proxy.refuse_new_connections(true);
  ASSERT_TRUE(proxy.reset(0));
  const std::size_t received_at_cut = seen.count();
  // Cut off while more is published (its reconnection attempts are turned away).
  const std::size_t acked_at_cut = acked.load();
  eventually([&] { return acked.load() >= std::min(n, acked_at_cut + 3000); }, long_wait);
  proxy.refuse_new_connections(false);
  EXPECT_LT(received_at_cut, n) << "the cut did not happen mid-stream";
  RecordProperty("updates_before_the_cut", static_cast<int>(received_at_cut));

  feed.join();
  ASSERT_EQ(feed_failure, "");
  ASSERT_TRUE(seen.wait_for(path, n, long_wait))
      << "state " << to_string(subscriber.state()) << "; " << seen.seen().describe()
      << "; proxy connections: " << proxy.connections() << broker.log_tail();

  Seen got = seen.seen();
  const auto& list = got.of(path);
  EXPECT_EQ(first_difference(list, values, TopicType::string), "");
  EXPECT_GE(got.disconnects, 1u);
  EXPECT_EQ(got.reconnects, std::vector<bool>(got.reconnects.size(), false))
      << "every reconnection resumes without resync";
  ASSERT_GE(got.counts_at_reconnect.size(), 1u) << got.describe();
  RecordProperty("updates_before_the_resume", static_cast<int>(got.counts_at_reconnect.front()));
  std::size_t deltas_after_resume = 0;
  for (std::size_t i = got.counts_at_reconnect.front(); i < list.size(); ++i)
    if (list[i].encoding == UpdateEncoding::delta) ++deltas_after_resume;
  EXPECT_GT(deltas_after_resume, 0u) << "no delta after the session was resumed at update "
                                     << got.counts_at_reconnect.front();
  EXPECT_TRUE(got.errors.empty()) << got.describe();
  EXPECT_FALSE(got.closed.has_value()) << *got.closed;
  EXPECT_GE(proxy.connections(), 2u) << "the subscriber did not reconnect through the proxy";

  subscriber.close();
  publisher.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("sessions_resumed"), 1u) << broker.log();
  EXPECT_EQ(broker.counter_total("resyncs"), 0u) << broker.log();
  EXPECT_EQ(broker.counter_total("refreshes"), 0u) << broker.log();
}

// ---- 6. values of the wrong type --------------------------------------------------------------

TEST(DeltaValueChecks, values_not_of_the_topic_type_are_refused_and_never_reach_subscribers) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "typed-subscriber"));
  seen.listen(subscriber);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "typed-publisher"));
  const std::string json_path = "Typed/odds", text_path = "Typed/name", count_path = "Typed/count";
  ASSERT_TRUE(await(publisher.create_topic(json_path, TopicType::json)));
  ASSERT_TRUE(await(publisher.create_topic(text_path, TopicType::string)));
  ASSERT_TRUE(await(publisher.create_topic(count_path, TopicType::int64)));
  ASSERT_TRUE(subscribe_recorded(subscriber, "Typed//", seen));

  auto int64_bytes = [](std::int64_t v) {
    std::string b(8, '\0');
    std::memcpy(b.data(), &v, 8);
    return b;
  };
  struct Case {
    std::string path;
    std::string good_before, bad, good_after;
  };
  const std::vector<Case> cases = {
      {json_path, R"({"Home_Odds":"+120","Away_Odds":"-140"})", R"({"Home_Odds":)",
       R"({"Home_Odds":"+125","Away_Odds":"-145"})"},
      {text_path, "Bills vs Dolphins", "\xff\xfe", "Bills vs Jets"},
      {count_path, int64_bytes(41), std::string("\x01\x02\x03", 3), int64_bytes(42)},
  };
  for (const auto& c : cases) {
    ASSERT_TRUE(await(publisher.publish_acked(c.path, bytes_of(c.good_before)))) << c.path;
    Status refused = await(publisher.publish_acked(c.path, bytes_of(c.bad)));
    EXPECT_EQ(refused.code, ErrorCode::invalid_value)
        << c.path << ": " << codec::to_string(refused.code) << " '" << refused.message << "'";
    EXPECT_NE(refused.message.find("topic '" + c.path + "'"), std::string::npos)
        << refused.message;
    ASSERT_TRUE(await(publisher.publish_acked(c.path, bytes_of(c.good_after)))) << c.path;
  }
  // An explicit type that is not the topic's.
  Status mismatch = await(publisher.publish_acked(text_path, bytes_of("{}"), TopicType::json));
  EXPECT_EQ(mismatch.code, ErrorCode::type_mismatch) << mismatch.message;

  // The broker keeps serving: a publish after the refusals goes through and arrives.
  ASSERT_TRUE(await(publisher.publish_acked("Typed/after", bytes_of("still here"))));
  ASSERT_TRUE(seen.wait_for("Typed/after", 1, long_wait)) << seen.seen().describe();
  Seen got = seen.seen();
  for (const auto& c : cases) {
    const auto& list = got.of(c.path);
    ASSERT_EQ(list.size(), 2u) << c.path << ": " << got.describe();
    EXPECT_EQ(list[0].value, c.good_before) << c.path;
    EXPECT_EQ(list[0].topic_seq, 1u) << c.path;
    EXPECT_EQ(list[1].value, c.good_after) << c.path;
    EXPECT_EQ(list[1].topic_seq, 2u) << c.path << ": a refused publish took a topic sequence";
  }
  EXPECT_TRUE(got.errors.empty()) << got.describe();
  EXPECT_EQ(subscriber.state(), ClientState::connected);
  EXPECT_EQ(publisher.state(), ClientState::connected);
}

// ---- 7. damaged deltas, against a scripted broker ------------------------------------------------

std::vector<std::byte> to_bytes(std::string_view text) {
  auto b = bytes_of(text);
  return {b.begin(), b.end()};
}

std::vector<std::byte> delta_between(const std::string& old_value, const std::string& new_value) {
  codec::DeltaEncoder encoder;
  std::vector<std::byte> out(new_value.size());
  std::size_t n = encoder.encode(bytes_of(old_value), bytes_of(new_value), out);
  out.resize(n);
  return out;
}

void append_varint(std::vector<std::byte>& out, std::uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<std::byte>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<std::byte>(v));
}

// The client of a FakeBroker, subscribed to `path` (alias 1) and holding its first value.
class DeltaRefusal : public ::testing::Test {
 protected:
  static constexpr std::uint32_t alias = 1;
  const std::string path = "Fake/quote";

  std::string value(int i) const {
    return "quote seq=" + std::to_string(i) + " bid=" + std::to_string(100 + i) +
           " ask=" + std::to_string(102 + i) + " venue=XNAS book=continuous trader=desk-7";
  }

  void SetUp() override {
    ASSERT_TRUE(fake_.listening());
    auto connecting = std::async(std::launch::async, [this] {
      return connect_client_once(client_, fake_.url(), "fake-broker-client");
    });
    ASSERT_TRUE(fake_.accept(short_wait));
    ASSERT_TRUE(fake_.greet(short_wait));
    ASSERT_EQ(connecting.wait_for(short_wait), std::future_status::ready);
    ASSERT_TRUE(connecting.get());
    seen_.listen(client_);
    client_.subscribe(path, seen_.handler());
    const auto* subscribe = fake_.next<codec::SubscribeMsg>(short_wait);
    ASSERT_NE(subscribe, nullptr);
    ASSERT_EQ(subscribe->selector, path);
    const std::uint32_t request_id = subscribe->request_id;
    ASSERT_TRUE(fake_.send_sequenced(fake_.encoder().subscribed(request_id, path)));
    ASSERT_TRUE(fake_.send_sequenced(fake_.encoder().topic_add(alias, path, TopicType::string)));
    ASSERT_TRUE(fake_.send_update(alias, 1, UpdateEncoding::full, to_bytes(value(1))));
    ASSERT_TRUE(seen_.wait_for(path, 1, short_wait)) << seen_.seen().describe();
  }
  // The client lingers after its Close until the broker ends the stream: end it.
  void TearDown() override {
    auto closing = std::async(std::launch::async, [this] { client_.close(); });
    fake_.next<codec::CloseMsg>(short_wait);
    fake_.hang_up();
    closing.wait();
  }

  // The client's refusal: one delta_rejected error naming the topic, and a Refresh for it.
  void expect_refusal(std::size_t errors_before) {
    ASSERT_TRUE(seen_.wait([&](const Seen& s) { return s.errors.size() > errors_before; },
                           short_wait))
        << "no error reported: " << seen_.seen().describe();
    Status error = seen_.seen().errors[errors_before];
    EXPECT_EQ(error.code, ErrorCode::delta_rejected) << error.message;
    EXPECT_NE(error.message.find("'" + path + "'"), std::string::npos) << error.message;
    const auto* refresh = fake_.next<codec::RefreshMsg>(short_wait);
    ASSERT_NE(refresh, nullptr) << "the client did not ask for the whole value";
    EXPECT_EQ(refresh->alias, alias);
  }
  // The broker's answer to the Refresh: the current value, whole and flagged resync.
  void send_resync(int i) {
    ASSERT_TRUE(fake_.send_update(alias, static_cast<std::uint64_t>(i), UpdateEncoding::full,
                                  to_bytes(value(i)),
                                  codec::frame_flag_sequenced | codec::frame_flag_resync));
  }

  FakeBroker fake_;
  Recorder seen_;
  Client client_;
};

TEST_F(DeltaRefusal, delta_with_a_wrong_checksum_is_never_applied_and_the_whole_value_follows) {
  auto damaged = delta_between(value(1), value(2));
  ASSERT_GT(damaged.size(), codec::delta_checksum_bytes);
  for (std::size_t k = 0; k < codec::delta_checksum_bytes; ++k) damaged[k] ^= std::byte{0xff};
  ASSERT_TRUE(fake_.send_update(alias, 2, UpdateEncoding::delta, damaged));
  // A good delta sent before the broker saw the Refresh: the client holds nothing it applies
  // to, so it drops it.
  ASSERT_TRUE(fake_.send_update(alias, 3, UpdateEncoding::delta, delta_between(value(2), value(3))));
  expect_refusal(0);
  send_resync(3);
  ASSERT_TRUE(seen_.wait_for(path, 2, short_wait)) << seen_.seen().describe();

  // Deltas apply again after the whole value.
  ASSERT_TRUE(fake_.send_update(alias, 4, UpdateEncoding::delta, delta_between(value(3), value(4))));
  ASSERT_TRUE(seen_.wait_for(path, 3, short_wait)) << seen_.seen().describe();
  Seen got = seen_.seen();
  const auto& list = got.of(path);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[0].value, value(1));
  EXPECT_EQ(list[1].value, value(3)) << "the handler saw a value from a damaged delta";
  EXPECT_EQ(list[1].topic_seq, 3u);
  EXPECT_TRUE(list[1].resync);
  EXPECT_EQ(list[1].encoding, UpdateEncoding::full);
  EXPECT_EQ(list[2].value, value(4));
  EXPECT_EQ(list[2].topic_seq, 4u);
  EXPECT_EQ(list[2].encoding, UpdateEncoding::delta);
  EXPECT_FALSE(list[2].resync);
  EXPECT_EQ(list[2].old_value, value(3));
  EXPECT_EQ(got.errors.size(), 1u) << got.describe();
  EXPECT_EQ(client_.state(), ClientState::connected);
}

TEST_F(DeltaRefusal, delta_copying_outside_the_held_value_is_never_applied_and_the_whole_value_follows) {
  // A right checksum, but a copy of 4 bytes at offset 1 MiB of a 90-byte value.
  const std::string next = value(2);
  std::vector<std::byte> damaged(codec::delta_checksum_bytes);
  codec::store_le(damaged.data(), codec::value_checksum(bytes_of(next)));
  append_varint(damaged, std::uint64_t{4} << 1);  // copy, length 4
  append_varint(damaged, std::uint64_t{1} << 21);  // zigzag(1 MiB - 0)
  append_varint(damaged, (next.size() << 1) | 1);  // then the whole value as a literal
  for (char c : next) damaged.push_back(static_cast<std::byte>(c));
  ASSERT_TRUE(fake_.send_update(alias, 2, UpdateEncoding::delta, damaged));
  expect_refusal(0);
  send_resync(2);
  ASSERT_TRUE(seen_.wait_for(path, 2, short_wait)) << seen_.seen().describe();
  ASSERT_TRUE(fake_.send_update(alias, 3, UpdateEncoding::delta, delta_between(value(2), value(3))));
  ASSERT_TRUE(seen_.wait_for(path, 3, short_wait)) << seen_.seen().describe();

  Seen got = seen_.seen();
  const auto& list = got.of(path);
  ASSERT_EQ(list.size(), 3u);
  EXPECT_EQ(list[1].value, value(2));
  EXPECT_EQ(list[1].topic_seq, 2u);
  EXPECT_TRUE(list[1].resync);
  EXPECT_EQ(list[1].encoding, UpdateEncoding::full);
  EXPECT_EQ(list[2].value, value(3));
  EXPECT_EQ(list[2].encoding, UpdateEncoding::delta);
  EXPECT_EQ(got.errors.size(), 1u) << got.describe();
  EXPECT_NE(got.errors.front().message.find("outside"), std::string::npos)
      << got.errors.front().message;
}

// ---- 8. the command line ----------------------------------------------------------------------

std::vector<std::string> fields_of(const std::string& line) {
  std::vector<std::string> fields;
  std::size_t start = 0;
  for (std::size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1)
    fields.push_back(line.substr(start, tab - start));
  fields.push_back(line.substr(start));
  return fields;
}

// The `brook` CLI on its own thread; result() waits for it to exit. The thread that forks the
// CLI lives until the CLI has been reaped, so its parent-death signal cannot fire early.
class BackgroundCli {
 public:
  explicit BackgroundCli(std::vector<std::string> args)
      : result_(std::async(std::launch::async,
                           [args = std::move(args)] { return run_cli(args, {}, cli_deadline); })) {}
  ~BackgroundCli() {
    if (result_.valid()) result_.wait();
  }
  BackgroundCli(const BackgroundCli&) = delete;
  BackgroundCli& operator=(const BackgroundCli&) = delete;
  CliResult result() { return result_.get(); }

 private:
  std::future<CliResult> result_;
};

// A json value whose first version is large enough that seeing it relayed to `brook sub` can
// only mean its subscription's snapshot.
std::string cli_json(int i) {
  Odds m;
  m.home_odds = 120 + 5 * i;
  std::string odds = to_json(m);
  odds.pop_back();
  return odds + ",\"Notes\":\"" + std::string(3000, 'n') + "\"}";
}

class DeltaCli : public ::testing::Test {
 protected:
  void SetUp() override {
    BROOK_ASSERT_STARTED(broker_);
    ASSERT_TRUE(proxy_.listening());
    ASSERT_TRUE(connect_client(publisher_, broker_.url(), "cli-publisher"));
  }
  CliResult brook(std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"--url", broker_.url()});
    return run_cli(args, {}, cli_deadline);
  }
  // Runs `brook sub --wire` through the proxy (its connection `index`), publishes `count`
  // values of cli_json once it has the first, and returns its output lines split in fields.
  std::vector<std::vector<std::string>> sub_wire(const std::string& path, int count,
                                                 std::size_t index) {
    BackgroundCli sub({"sub", "--url", proxy_.url(), "--wire", "--count", std::to_string(count),
                       "--timeout", "30", path});
    std::vector<std::vector<std::string>> out;
    EXPECT_TRUE(proxy_.wait_for_connections(index + 1, short_wait));
    EXPECT_TRUE(eventually([&] { return proxy_.bytes_to_client(index) >= cli_json(1).size(); },
                           short_wait))
        << "brook sub did not subscribe";
    for (int i = 2; i <= count; ++i)
      EXPECT_TRUE(await(publisher_.publish_acked(path, bytes_of(cli_json(i)))));
    CliResult result = sub.result();
    EXPECT_EQ(result.exit_code(), 0) << result.describe();
    for (const auto& line : lines_of(result.out)) out.push_back(fields_of(line));
    EXPECT_EQ(out.size(), static_cast<std::size_t>(count)) << result.describe();
    return out;
  }

  BrokerProcess broker_{1};
  FaultProxy proxy_{broker_.port()};
  Client publisher_;
};

TEST_F(DeltaCli, sub_wire_prints_full_for_the_first_value_then_delta_with_its_size) {
  const std::string path = "CliDelta/odds";
  ASSERT_TRUE(await(publisher_.publish_acked(path, bytes_of(cli_json(1)), TopicType::json)));
  constexpr int count = 6;
  auto lines = sub_wire(path, count, 0);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    const auto& f = lines[i];
    ASSERT_EQ(f.size(), 4u) << "line " << i;
    EXPECT_EQ(f[0], path);
    EXPECT_EQ(f[1], std::to_string(i + 1));
    EXPECT_EQ(f[2], cli_json(i + 1)) << "line " << i;
    const std::string expected_kind = i == 0 ? "full " : "delta ";
    ASSERT_EQ(f[3].rfind(expected_kind, 0), 0u) << "line " << i << ": '" << f[3] << "'";
    std::size_t n = std::stoul(f[3].substr(expected_kind.size()));
    if (i == 0)
      EXPECT_EQ(n, cli_json(1).size());
    else
      EXPECT_LT(n, 100u) << "a delta for one changed field of a " << cli_json(i + 1).size()
                         << "-byte value";
  }
}

TEST_F(DeltaCli, pub_no_deltas_creates_a_topic_whose_updates_all_travel_whole) {
  const std::string path = "CliDelta/plain";
  auto created = brook({"pub", "--type", "json", "--no-deltas", path, cli_json(1)});
  ASSERT_EQ(created.exit_code(), 0) << created.describe();
  constexpr int count = 5;
  auto lines = sub_wire(path, count, 0);
  ASSERT_EQ(lines.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(lines[i].size(), 4u) << "line " << i;
    EXPECT_EQ(lines[i][2], cli_json(i + 1)) << "line " << i;
    EXPECT_EQ(lines[i][3], "full " + std::to_string(cli_json(i + 1).size())) << "line " << i;
  }
}

TEST_F(DeltaCli, pub_dont_retain_creates_an_event_topic_a_later_subscriber_gets_no_value_of) {
  const std::string path = "CliDelta/events";
  auto created = brook({"pub", "--dont-retain", path, "kick-off"});
  ASSERT_EQ(created.exit_code(), 0) << created.describe();
  Recorder seen;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker_.url(), "event-subscriber"));
  ASSERT_TRUE(subscribe_recorded(subscriber, path, seen));
  EXPECT_EQ(seen.count(), 0u) << "got '" << seen.seen().of(path).front().value << "'";
  auto later = brook({"pub", path, "goal"});
  ASSERT_EQ(later.exit_code(), 0) << later.describe();
  ASSERT_TRUE(seen.wait_for(path, 1, long_wait)) << seen.seen().describe();
  const auto list = seen.seen().of(path);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].value, "goal");
  EXPECT_EQ(list[0].topic_seq, 2u);
  subscriber.close();
}

}  // namespace
}  // namespace brook::test
