// Integration: publish/subscribe semantics end to end, with a real brookd child process and
// real brook::Client sessions over loopback TCP. Every wait is bounded by a generous timeout;
// no assertion depends on timing.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

// Large enough for a sanitizer build on a busy two-core machine; only reached on failure.
constexpr auto long_wait = std::chrono::seconds(90);
constexpr auto short_wait = std::chrono::seconds(10);

// The first place where `got` (all of one topic, arrival order) differs from the values
// `expected` carrying topic sequence numbers first_seq, first_seq + 1, ...; empty if none.
std::string first_difference(const std::vector<Received>& got,
                             const std::vector<std::string>& expected,
                             std::uint64_t first_seq = 1) {
  for (std::size_t i = 0; i < std::min(got.size(), expected.size()); ++i) {
    if (got[i].topic_seq != first_seq + i || got[i].value != expected[i])
      return "update #" + std::to_string(i) + " of " + got[i].path + ": got seq " +
             std::to_string(got[i].topic_seq) + " value '" + got[i].value.substr(0, 64) +
             "', expected seq " + std::to_string(first_seq + i) + " value '" +
             expected[i].substr(0, 64) + "'";
  }
  if (got.size() != expected.size())
    return "got " + std::to_string(got.size()) + " updates, expected " +
           std::to_string(expected.size());
  return {};
}

std::vector<std::string> numbered(std::string_view prefix, std::size_t count) {
  std::vector<std::string> values;
  values.reserve(count);
  for (std::size_t i = 0; i < count; ++i) values.push_back(std::string(prefix) + std::to_string(i));
  return values;
}

// ---- ordering and fan-out ---------------------------------------------------------------

TEST(PubSub, one_subscriber_receives_each_of_100k_updates_once_in_topic_order) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Order/price", log));

  constexpr std::size_t n = 100'000;
  auto values = numbered("price-", n);
  for (const auto& v : values) publisher.publish("Order/price", v);
  // The acknowledged last update: once it arrives right after the n others, nothing was
  // duplicated or lost in between.
  values.push_back("last");
  ASSERT_TRUE(await(publisher.publish_acked("Order/price", bytes_of("last")), long_wait));

  ASSERT_TRUE(log.wait_for(values.size(), long_wait))
      << "received " << log.size() << " of " << values.size() << " updates";
  ASSERT_TRUE(round_trip(subscriber));
  auto got = log.entries();
  EXPECT_EQ(first_difference(got, values), "");
  for (const auto& r : got)
    if (r.path != "Order/price" || r.type != TopicType::string) {
      ADD_FAILURE() << "unexpected update of '" << r.path << "' type " << codec::to_string(r.type);
      break;
    }
}

TEST(PubSub, fifty_subscribers_each_receive_every_update_in_order) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  constexpr std::size_t subscriber_count = 50;
  constexpr std::size_t n = 2000;
  std::vector<UpdateLog> logs(subscriber_count);
  std::vector<std::unique_ptr<Client>> subscribers;
  for (std::size_t i = 0; i < subscriber_count; ++i) {
    subscribers.push_back(std::make_unique<Client>());
    ASSERT_TRUE(
        connect_client(*subscribers.back(), broker.url(), "subscriber-" + std::to_string(i)));
    // Three selector forms that all match the topic.
    const char* selector = i % 3 == 0 ? "Fan/odds" : i % 3 == 1 ? "Fan/*" : "Fan//";
    ASSERT_TRUE(subscribe_and_wait(*subscribers.back(), selector, logs[i])) << selector;
  }
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  auto values = numbered("odds-", n);
  for (const auto& v : values) publisher.publish("Fan/odds", v);
  ASSERT_TRUE(await(publisher.publish_acked("Fan/odds", bytes_of("last"))));
  values.push_back("last");

  for (std::size_t i = 0; i < subscriber_count; ++i) {
    EXPECT_TRUE(logs[i].wait_for(values.size(), long_wait))
        << "subscriber " << i << " received " << logs[i].size() << " of " << values.size();
    EXPECT_EQ(first_difference(logs[i].entries(), values), "") << "subscriber " << i;
  }
}

// brook::Client may be called from any thread. Calls that the program orders (here by joining
// the thread that made the first ones) must reach the broker in that order, or a publisher
// that hands its work from one thread to another reorders its own topic's updates.
TEST(PubSub, publishes_ordered_by_a_thread_join_arrive_in_that_order) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Handoff/t", log));

  constexpr int rounds = 20, per_round = 500;
  auto value = [](int round, const std::string& what) {
    return "r" + std::to_string(round) + "-" + what;
  };
  std::vector<std::string> expected;
  for (int r = 0; r < rounds; ++r) {
    std::thread worker([&] {
      for (int i = 0; i < per_round; ++i)
        publisher.publish("Handoff/t", value(r, std::to_string(i)));
    });
    worker.join();
    publisher.publish("Handoff/t", value(r, "after-join"));  // this thread, after the join
    for (int i = 0; i < per_round; ++i) expected.push_back(value(r, std::to_string(i)));
    expected.push_back(value(r, "after-join"));
  }
  ASSERT_TRUE(log.wait_for(expected.size(), long_wait))
      << "received " << log.size() << " of " << expected.size();
  EXPECT_EQ(first_difference(log.entries(), expected), "");
}

// Callers that find the outbox full sleep until the client's thread drains it and wakes them
// (client_send.cpp, wait_for_room). Four threads publishing flat out into the smallest outbox
// wait over and over: every call arrives, each thread's in its order.
TEST(PubSub, threads_waiting_for_room_in_a_full_outbox_are_woken_and_lose_nothing) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber;
  Client publisher(4096);  // the smallest outbox: about forty of these publishes fill it
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Room//", log));

  constexpr int threads = 4, per_thread = 20'000;
  const std::string padding(48, '.');
  std::vector<std::thread> publishing;
  for (int t = 0; t < threads; ++t)
    publishing.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i)
        ASSERT_TRUE(publisher.publish("Room/t" + std::to_string(t), std::to_string(i) + padding));
    });
  for (auto& t : publishing) t.join();
  ASSERT_TRUE(log.wait_for(threads * per_thread, long_wait))
      << "received " << log.size() << " of " << threads * per_thread;
  auto groups = log.by_path();
  ASSERT_EQ(groups.size(), static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) {
    const auto& got = groups["Room/t" + std::to_string(t)];
    ASSERT_EQ(got.size(), static_cast<std::size_t>(per_thread)) << "thread " << t;
    for (int i = 0; i < per_thread; ++i)
      ASSERT_EQ(got[i].value, std::to_string(i) + padding) << "thread " << t << ", call " << i;
  }
  EXPECT_GT(publisher.waits_for_outbox_room(), 0u) << "the outbox never filled: the test did not wait";
}

// A handler that publishes into a full outbox makes the client's thread drain the outbox in
// the middle of a dispatch, where commands (an acknowledged publish) must wait until the
// dispatch ends. A plain publish queued behind one must wait too, not overtake it.
TEST(PubSub, a_publish_queued_behind_an_acknowledged_one_never_overtakes_it_during_a_dispatch) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber, trigger;
  Client publisher(4096);  // an outbox that two 1 KiB publishes fill
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(trigger, broker.url(), "trigger"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Overtake/t", log));

  std::atomic<bool> queued{false}, filled{false};
  const std::string filler(1024, 'f');
  // Runs on the publisher's thread: waits until the test thread has queued its two calls,
  // then publishes into the full outbox, which drains it right here.
  auto subscribed = std::make_shared<std::promise<Status>>();
  auto verdict = subscribed->get_future();
  publisher.subscribe(
      "Overtake/go",
      [&](const Update&) {
        if (filled.exchange(true)) return;
        eventually([&] { return queued.load(); }, short_wait);
        for (int i = 0; i < 8; ++i) publisher.publish("Overtake/fill", filler);
      },
      [subscribed](const Status& s) { subscribed->set_value(s); });
  ASSERT_TRUE(await(std::move(verdict)));
  trigger.publish("Overtake/go", "go");
  // Queued while the publisher's thread is busy with its first dispatch (or about to be).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  auto acked = publisher.publish_acked("Overtake/t", bytes_of("first"));
  publisher.publish("Overtake/t", "second");
  queued.store(true);
  ASSERT_TRUE(await(std::move(acked), long_wait));
  ASSERT_TRUE(log.wait_for(2, long_wait));
  ASSERT_TRUE(filled.load());
  EXPECT_EQ(first_difference(log.entries(), {"first", "second"}), "");
}

// Connections go to shards round-robin in accept order, and a topic lives on the shard its
// path hashes to: with 64 topics and two publishers and two subscribers connected in the
// order below, updates cross between the shards in every direction.
TEST(PubSub, updates_cross_shards_in_order_for_publishers_and_subscribers_on_both_shards) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log_on_1, log_on_0;
  Client publisher_on_0, subscriber_on_1, subscriber_on_0, publisher_on_1;
  ASSERT_TRUE(connect_client(publisher_on_0, broker.url(), "publisher-0"));
  ASSERT_TRUE(connect_client(subscriber_on_1, broker.url(), "subscriber-1"));
  ASSERT_TRUE(connect_client(subscriber_on_0, broker.url(), "subscriber-0"));
  ASSERT_TRUE(connect_client(publisher_on_1, broker.url(), "publisher-1"));
  ASSERT_TRUE(subscribe_and_wait(subscriber_on_1, "Shards//", log_on_1));
  ASSERT_TRUE(subscribe_and_wait(subscriber_on_0, "Shards/*", log_on_0));

  constexpr std::size_t topics = 64, per_topic = 400;
  auto path = [](std::size_t t) { return "Shards/t" + std::to_string(t); };
  auto value = [](std::size_t t, std::size_t i) {
    return "t" + std::to_string(t) + "-" + std::to_string(i);
  };
  // Each publisher owns half of the topics (one writer per topic: per-topic order is defined).
  auto publish_half = [&](Client& publisher, std::size_t first_topic) {
    for (std::size_t i = 0; i < per_topic; ++i)
      for (std::size_t t = first_topic; t < first_topic + topics / 2; ++t)
        publisher.publish(path(t), value(t, i));
  };
  std::thread a([&] { publish_half(publisher_on_0, 0); });
  std::thread b([&] { publish_half(publisher_on_1, topics / 2); });
  a.join();
  b.join();
  ASSERT_TRUE(round_trip(publisher_on_0));
  ASSERT_TRUE(round_trip(publisher_on_1));

  for (UpdateLog* log : {&log_on_1, &log_on_0}) {
    const char* who = log == &log_on_1 ? "subscriber on shard 1" : "subscriber on shard 0";
    EXPECT_TRUE(log->wait_for(topics * per_topic, long_wait))
        << who << " received " << log->size() << " of " << topics * per_topic;
    auto groups = log->by_path();
    EXPECT_EQ(groups.size(), topics) << who;
    for (std::size_t t = 0; t < topics; ++t) {
      std::vector<std::string> expected;
      for (std::size_t i = 0; i < per_topic; ++i) expected.push_back(value(t, i));
      EXPECT_EQ(first_difference(groups[path(t)], expected), "") << who << ", " << path(t);
    }
  }

  // The broker's own counters confirm that both shards owned topics and delivered updates.
  subscriber_on_0.close();
  subscriber_on_1.close();
  publisher_on_0.close();
  publisher_on_1.close();
  broker.stop();
  auto publishes = broker.shard_counter("publishes");
  auto deliveries = broker.shard_counter("deliveries");
  EXPECT_GT(publishes[0], 0u) << broker.log();
  EXPECT_GT(publishes[1], 0u) << broker.log();
  EXPECT_EQ(publishes[0] + publishes[1], topics * per_topic) << broker.log();
  EXPECT_EQ(deliveries[0], topics * per_topic) << broker.log();
  EXPECT_EQ(deliveries[1], topics * per_topic) << broker.log();
}

// ---- subscriptions and current values ---------------------------------------------------

TEST(PubSub, subscription_made_before_topics_exist_receives_them_when_created) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog descendants, children;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Early//", descendants));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Early/*", children));

  // Created by a publish (child, grandchild) and by create_topic (child, the base itself).
  ASSERT_TRUE(await(publisher.publish_acked("Early/a", bytes_of("a1"))));
  ASSERT_TRUE(await(publisher.publish_acked("Early/b/c", bytes_of("c1"))));
  ASSERT_TRUE(await(publisher.create_topic("Early/d", TopicType::json)));
  ASSERT_TRUE(await(publisher.create_topic("Early", TopicType::string)));
  ASSERT_TRUE(await(publisher.publish_acked("Early/d", bytes_of(R"({"d":1})"))));
  ASSERT_TRUE(await(publisher.publish_acked("Early", bytes_of("e1"))));
  // A second round: per-topic order means any duplicate of a first update would show up
  // before these.
  for (const char* path : {"Early/a", "Early/b/c", "Early/d", "Early"})
    ASSERT_TRUE(await(publisher.publish_acked(
        path, bytes_of(path == std::string("Early/d") ? R"({"d":2})" : "second"))));

  ASSERT_TRUE(descendants.wait_for(8, long_wait)) << "Early// received " << descendants.size();
  ASSERT_TRUE(children.wait_for(4, long_wait)) << "Early/* received " << children.size();
  ASSERT_TRUE(round_trip(subscriber));

  auto d = descendants.by_path();
  EXPECT_EQ(first_difference(d["Early/a"], {"a1", "second"}), "");
  EXPECT_EQ(first_difference(d["Early/b/c"], {"c1", "second"}), "");
  EXPECT_EQ(first_difference(d["Early/d"], {R"({"d":1})", R"({"d":2})"}), "");
  EXPECT_EQ(first_difference(d["Early"], {"e1", "second"}), "");
  EXPECT_EQ(d.size(), 4u);
  ASSERT_FALSE(d["Early/d"].empty());
  EXPECT_EQ(d["Early/d"].front().type, TopicType::json);

  auto c = children.by_path();
  EXPECT_EQ(first_difference(c["Early/a"], {"a1", "second"}), "");
  EXPECT_EQ(first_difference(c["Early/d"], {R"({"d":1})", R"({"d":2})"}), "");
  EXPECT_EQ(c.size(), 2u) << "Early/* must match only the children of Early";
}

TEST(PubSub, subscriber_receives_the_current_value_first_then_the_updates) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));  // shard 0
  for (int i = 1; i <= 5; ++i) publisher.publish("Current/x", "x" + std::to_string(i));
  for (int i = 1; i <= 3; ++i) publisher.publish("Current/y", "y" + std::to_string(i));
  ASSERT_TRUE(await(publisher.publish_acked("Current/x", bytes_of("x6"))));
  ASSERT_TRUE(await(publisher.publish_acked("Current/y", bytes_of("y4"))));

  UpdateLog log;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));  // shard 1
  // on_subscribed comes after the snapshots: they are in the log when the wait returns.
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Current//", log));
  {
    auto snapshot = log.by_path();
    EXPECT_EQ(first_difference(snapshot["Current/x"], {"x6"}, 6), "");
    EXPECT_EQ(first_difference(snapshot["Current/y"], {"y4"}, 4), "");
    EXPECT_EQ(log.size(), 2u);
  }
  ASSERT_TRUE(await(publisher.publish_acked("Current/x", bytes_of("x7"))));
  ASSERT_TRUE(await(publisher.publish_acked("Current/y", bytes_of("y5"))));
  ASSERT_TRUE(log.wait_for(4, long_wait)) << "received " << log.size();
  auto all = log.by_path();
  EXPECT_EQ(first_difference(all["Current/x"], {"x6", "x7"}, 6), "");
  EXPECT_EQ(first_difference(all["Current/y"], {"y4", "y5"}, 4), "");
}

TEST(PubSub, unsubscribed_selector_receives_nothing_published_after_the_unsubscribe) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog dropped, kept;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  Subscription to_drop;
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Unsub/a", dropped, &to_drop));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Unsub/b", kept));
  ASSERT_TRUE(await(publisher.publish_acked("Unsub/a", bytes_of("a1"))));
  ASSERT_TRUE(dropped.wait_for(1, long_wait));

  subscriber.unsubscribe(to_drop);
  ASSERT_TRUE(round_trip(subscriber));  // the broker has read the unsubscribe
  for (int i = 2; i <= 50; ++i) publisher.publish("Unsub/a", "a" + std::to_string(i));
  ASSERT_TRUE(await(publisher.publish_acked("Unsub/b", bytes_of("b1"))));
  ASSERT_TRUE(kept.wait_for(1, long_wait));
  ASSERT_TRUE(round_trip(subscriber));
  EXPECT_EQ(first_difference(dropped.entries(), {"a1"}), "");
}

// The same, seen on the wire: after Unsubscribed, the broker sends no update frame for the
// topic's alias, while the session's other subscription keeps flowing. One shard, so that
// the two topics' updates reach the session in publish order.
TEST(PubSub, broker_sends_no_update_frames_for_a_topic_after_unsubscribed) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  RawConnection raw(broker.port());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.greet());
  codec::FrameEncoder encoder;
  codec::FrameDecoder decoder;
  ASSERT_TRUE(raw.send_bytes(encoder.subscribe(1, "RawUnsub/a")));
  ASSERT_TRUE(raw.send_bytes(encoder.subscribe(2, "RawUnsub/b")));
  ASSERT_TRUE(await(publisher.publish_acked("RawUnsub/a", bytes_of("a1"))));
  ASSERT_TRUE(await(publisher.publish_acked("RawUnsub/b", bytes_of("b1"))));

  std::map<std::uint32_t, std::string> alias_path;
  auto value_of = [](const codec::UpdateMsg& u) {
    return std::string(reinterpret_cast<const char*>(u.value.data()), u.value.size());
  };
  // Reads frames until `done` says so; every update is checked against `allowed`.
  auto read_until = [&](auto done, auto allowed) {
    for (int frames = 0; frames < 1000; ++frames) {
      auto frame = raw.read_frame(long_wait);
      if (!frame) return false;
      auto decoded = decoder.decode(*frame);
      if (!decoded.ok()) return false;
      if (auto* add = std::get_if<codec::TopicAddMsg>(&decoded.message))
        alias_path[add->alias] = std::string(add->path);
      if (auto* u = std::get_if<codec::UpdateMsg>(&decoded.message))
        if (!allowed(alias_path[u->alias], value_of(*u))) {
          ADD_FAILURE() << "unexpected update " << alias_path[u->alias] << " = " << value_of(*u);
          return false;
        }
      if (done(decoded.message)) return true;
    }
    return false;
  };
  auto any = [](const std::string&, const std::string&) { return true; };
  int subscribed = 0;
  bool a1 = false, b1 = false;
  ASSERT_TRUE(read_until(
      [&](const codec::Message& m) {
        if (std::holds_alternative<codec::SubscribedMsg>(m)) ++subscribed;
        if (auto* u = std::get_if<codec::UpdateMsg>(&m)) {
          a1 |= value_of(*u) == "a1";
          b1 |= value_of(*u) == "b1";
        }
        return subscribed == 2 && a1 && b1;
      },
      any));

  ASSERT_TRUE(raw.send_bytes(encoder.unsubscribe(3, "RawUnsub/a")));
  // Pongs jump ahead of the session's stream (liveness must not wait behind a backlog), so
  // the barrier is the Unsubscribed answer itself, which is part of the stream.
  bool unsubscribed = false;
  ASSERT_TRUE(read_until(
      [&](const codec::Message& m) {
        if (auto* u = std::get_if<codec::UnsubscribedMsg>(&m))
          unsubscribed = u->request_id == 3 && u->selector == "RawUnsub/a";
        return unsubscribed;
      },
      any));

  for (int i = 2; i <= 20; ++i) publisher.publish("RawUnsub/a", "a" + std::to_string(i));
  ASSERT_TRUE(await(publisher.publish_acked("RawUnsub/b", bytes_of("b2"))));
  EXPECT_TRUE(read_until(
      [&](const codec::Message& m) {
        auto* u = std::get_if<codec::UpdateMsg>(&m);
        return u && value_of(*u) == "b2";
      },
      [](const std::string& path, const std::string&) { return path == "RawUnsub/b"; }));
}

TEST(PubSub, topic_matched_by_two_selectors_keeps_arriving_after_one_is_unsubscribed) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog exact, subtree;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  Subscription exact_subscription;
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Two/a", exact, &exact_subscription));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Two//", subtree));
  ASSERT_TRUE(await(publisher.publish_acked("Two/a", bytes_of("v1"))));
  ASSERT_TRUE(exact.wait_for(1, long_wait));
  ASSERT_TRUE(subtree.wait_for(1, long_wait));

  subscriber.unsubscribe(exact_subscription);
  ASSERT_TRUE(round_trip(subscriber));
  ASSERT_TRUE(await(publisher.publish_acked("Two/a", bytes_of("v2"))));
  ASSERT_TRUE(await(publisher.publish_acked("Two/a", bytes_of("v3"))));
  ASSERT_TRUE(subtree.wait_for(3, long_wait)) << "Two// received " << subtree.size() << " of 3";
  ASSERT_TRUE(round_trip(subscriber));
  EXPECT_EQ(first_difference(subtree.entries(), {"v1", "v2", "v3"}), "");
  EXPECT_EQ(first_difference(exact.entries(), {"v1"}), "");
}

// ---- values, types and refusals ---------------------------------------------------------

TEST(PubSub, one_mebibyte_binary_value_round_trips_intact) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog live, late;
  Client subscriber, publisher, late_subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Big/blob", live));

  std::string blob(1u << 20, '\0');
  std::mt19937_64 rng(20240611);
  for (auto& ch : blob) ch = static_cast<char>(rng());
  ASSERT_TRUE(await(publisher.publish_acked("Big/blob", bytes_of(blob), TopicType::binary)));
  ASSERT_TRUE(live.wait_for(1, long_wait));
  // A subscriber that comes later gets the same bytes as the topic's current value.
  ASSERT_TRUE(connect_client(late_subscriber, broker.url(), "late-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(late_subscriber, "Big//", late));
  ASSERT_EQ(late.size(), 1u);

  for (const auto& log : {live.entries(), late.entries()}) {
    ASSERT_EQ(log.size(), 1u);
    EXPECT_EQ(log[0].type, TopicType::binary);
    EXPECT_EQ(log[0].topic_seq, 1u);
    EXPECT_EQ(log[0].value.size(), blob.size());
    EXPECT_TRUE(log[0].value == blob) << "the value's bytes changed on the way";
  }
}

TEST(PubSub, wrong_type_publish_is_refused_while_other_subscribers_keep_receiving) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber, publisher, wrong_publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client(wrong_publisher, broker.url(), "wrong-publisher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Typed//", log));
  ASSERT_TRUE(await(publisher.publish_acked("Typed/name", bytes_of("first"), TopicType::string)));

  constexpr std::size_t n = 2000;
  auto values = numbered("name-", n);
  std::thread good([&] {
    for (const auto& v : values) publisher.publish("Typed/name", v);
  });
  std::int64_t number = 42;
  std::vector<std::future<Status>> refusals;
  for (int i = 0; i < 20; ++i)
    refusals.push_back(wrong_publisher.publish_acked(
        "Typed/name", std::as_bytes(std::span(&number, 1)), TopicType::int64));
  good.join();
  for (auto& r : refusals) {
    Status status = await(std::move(r));
    EXPECT_EQ(status.code, ErrorCode::type_mismatch) << status.message;
  }
  // The refused session stays usable.
  EXPECT_TRUE(await(wrong_publisher.publish_acked("Typed/other", bytes_of("fine"))));

  values.insert(values.begin(), "first");
  ASSERT_TRUE(log.wait_until(
      [&](const std::vector<Received>& e) {
        std::size_t name = 0;
        for (const auto& r : e) name += r.path == "Typed/name";
        return name >= values.size();
      },
      long_wait));
  auto groups = log.by_path();
  EXPECT_EQ(first_difference(groups["Typed/name"], values), "");
  for (const auto& r : groups["Typed/name"]) {
    if (r.type != TopicType::string) {
      ADD_FAILURE() << "an update of a string topic arrived as " << codec::to_string(r.type);
      break;
    }
  }
}

TEST(PubSub, publish_to_an_invalid_path_is_refused_and_the_session_keeps_working) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog everything;
  Client subscriber;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "//", everything));
  // Each bad path on a fresh session too: the first publish of a session is checked as
  // carefully as any other.
  const std::string_view bad_paths[] = {"", "/a", "a/", "a//b", "a/*", "*", {"a\0b", 3}};
  for (std::string_view path : bad_paths) {
    Client fresh;
    ASSERT_TRUE(connect_client(fresh, broker.url(), "publisher"));
    Status first = await(fresh.publish_acked(path, bytes_of("x")));
    EXPECT_EQ(first.code, ErrorCode::invalid_path) << "first publish to '" << path << "'";
    Status again = await(fresh.publish_acked(path, bytes_of("y")));
    EXPECT_EQ(again.code, ErrorCode::invalid_path) << "second publish to '" << path << "'";
    EXPECT_TRUE(await(fresh.publish_acked("Valid/path", bytes_of("ok"))));
  }
  ASSERT_TRUE(round_trip(subscriber));
  for (const auto& r : everything.entries())
    EXPECT_EQ(r.path, "Valid/path") << "an update of an invalid path was delivered";
}

TEST(PubSub, invalid_selector_is_refused_and_the_session_keeps_working) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog bad, good;
  Client client;
  ASSERT_TRUE(connect_client(client, broker.url(), "client"));
  for (const char* selector : {"a//b", "a/*/b", "/a", "", "a/**"}) {
    Status status = subscribe_and_wait(client, selector, bad);
    EXPECT_EQ(status.code, ErrorCode::invalid_selector)
        << "'" << selector << "': " << status.message;
  }
  ASSERT_TRUE(subscribe_and_wait(client, "Valid/*", good));
  ASSERT_TRUE(await(client.publish_acked("Valid/t", bytes_of("ok"))));
  ASSERT_TRUE(good.wait_for(1, long_wait));
  EXPECT_EQ(bad.size(), 0u);
  EXPECT_TRUE(client.is_connected());
}

// brook::Client checks selectors itself; the broker must refuse them too, per request.
TEST(PubSub, broker_refuses_an_invalid_selector_with_the_request_id_and_keeps_the_session) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  RawConnection raw(broker.port());
  ASSERT_TRUE(raw.connected());
  ASSERT_TRUE(raw.greet());
  codec::FrameEncoder encoder;
  codec::FrameDecoder decoder;
  ASSERT_TRUE(raw.send_bytes(encoder.subscribe(41, "a/*/b")));
  auto error = raw.read_until_error(short_wait);
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, ErrorCode::invalid_selector) << error->message;
  EXPECT_EQ(error->request_id, 41u);

  ASSERT_TRUE(raw.send_bytes(encoder.ping(5, 123)));
  auto frame = raw.read_frame(short_wait);
  ASSERT_TRUE(frame.has_value()) << "the session was closed after a refused subscribe";
  auto decoded = decoder.decode(*frame);
  ASSERT_TRUE(decoded.ok());
  auto* pong = std::get_if<codec::PongMsg>(&decoded.message);
  ASSERT_NE(pong, nullptr);
  EXPECT_EQ(pong->id, 5u);
  EXPECT_EQ(pong->sent_ns, 123u);
}

}  // namespace
}  // namespace brook::test
