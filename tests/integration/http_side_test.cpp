// brookd's HTTP side against a real broker: each counter moves when its event happens, the
// sessions endpoint names the stalled subscriber first, garbage and crowds at the HTTP port
// leave the broker serving, and basic auth and HTTPS guard it when asked.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <thread>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/frame.hpp"
#include "credentials_file.hpp"
#include "http_get.hpp"
#include "raw_connection.hpp"
#include "test_certificates.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using Json = nlohmann::json;

BrokerConfig http_broker(std::string toml = {}, unsigned shards = 2) {
  BrokerConfig config = with_shards(shards);
  config.http = true;
  config.config_toml = std::move(toml);
  return config;
}

std::map<std::string, double> scrape(const BrokerProcess& broker) {
  HttpAnswer answer = http_get(broker.http_port(), "/metrics");
  EXPECT_EQ(answer.status, 200) << answer.error;
  return parse_prometheus(answer.body);
}

Json get_json(const BrokerProcess& broker, std::string_view target) {
  HttpAnswer answer = http_get(broker.http_port(), target);
  EXPECT_EQ(answer.status, 200) << target << ": " << answer.error << answer.body;
  return Json::parse(answer.body, nullptr, false);
}

// Waits until the metric reaches `at_least`; its last value either way.
double wait_for_metric(const BrokerProcess& broker, const std::string& name, double at_least,
                       std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  double value = 0;
  eventually([&] { return (value = scrape(broker)[name]) >= at_least; }, timeout);
  return value;
}

// A subscriber that subscribes and never reads again: its queue only grows.
struct StalledSubscriber {
  explicit StalledSubscriber(const BrokerProcess& broker, std::string_view selector) : connection(broker.port()) {
    EXPECT_TRUE(connection.connected());
    EXPECT_TRUE(connection.greet());
    codec::FrameEncoder encoder;
    EXPECT_TRUE(connection.send_bytes(encoder.subscribe(1, selector)));
    EXPECT_TRUE(connection.read_frame(std::chrono::seconds(10)));  // Subscribed
  }
  RawConnection connection;
};

std::string value_of(std::size_t i, std::size_t bytes = 512) {
  std::string v = "v" + std::to_string(i) + ":";
  v.resize(bytes, '.');
  return v;
}

TEST(HttpSide, endpoints_answer_in_their_formats) {
  BrokerProcess broker(http_broker());
  BROOK_ASSERT_STARTED(broker);
  ASSERT_NE(broker.http_port(), 0);
  HttpAnswer health = http_get(broker.http_port(), "/healthz");
  EXPECT_EQ(health.status, 200) << health.error;
  EXPECT_EQ(health.body, "ok\n");
  EXPECT_EQ(http_get(broker.http_port(), "/readyz").status, 200);
  HttpAnswer metrics = http_get(broker.http_port(), "/metrics");
  EXPECT_NE(metrics.head.find("text/plain; version=0.0.4"), std::string::npos) << metrics.head;
  auto samples = parse_prometheus(metrics.body);
  EXPECT_EQ(samples.count("brook_publishes_total"), 1u);
  EXPECT_EQ(samples.count("brook_shard_busy_seconds_total{shard=\"1\"}"), 1u);
  EXPECT_EQ(samples.count("brook_publish_to_send_seconds_bucket{le=\"+Inf\"}"), 1u);
  EXPECT_EQ(samples.count("brook_refusals_total{reason=\"invalid_path\"}"), 1u);

  Json info = get_json(broker, "/api/broker");
  ASSERT_TRUE(info.is_object());
  EXPECT_EQ(info["shard_count"], 2);
  EXPECT_EQ(info["listeners"]["tcp"], broker.url().substr(6));
  EXPECT_EQ(info["shards"].size(), 2u);

  EXPECT_EQ(http_get(broker.http_port(), "/api/nothing").status, 404);
  EXPECT_EQ(http_get(broker.http_port(), "/api/sessions?sort=colour").status, 400);
  EXPECT_EQ(http_get(broker.http_port(), "/api/topics?limit=ten").status, 400);
  // No console directory: the root page lists the endpoints.
  HttpAnswer root = http_get(broker.http_port(), "/");
  EXPECT_EQ(root.status, 200);
  EXPECT_NE(root.body.find("/metrics"), std::string::npos);
}

TEST(HttpSide, topics_sessions_and_subscriptions_are_listed) {
  BrokerProcess broker(http_broker());
  BROOK_ASSERT_STARTED(broker);
  Client publisher, subscriber;
  UpdateLog log;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "watcher"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Listed//", log));
  for (int i = 1; i <= 5; ++i) ASSERT_TRUE(await(publisher.publish_acked("Listed/busy", bytes_of(std::to_string(i)))));
  ASSERT_TRUE(await(publisher.publish_acked("Listed/quiet", bytes_of("{\"odds\":1.95}"))));
  ASSERT_TRUE(log.wait_for(6, std::chrono::seconds(10)));

  Json topics = get_json(broker, "/api/topics?sort=path&values=1");
  ASSERT_EQ(topics["total"], 2) << topics.dump();
  EXPECT_EQ(topics["topics"][0]["path"], "Listed/busy");
  EXPECT_EQ(topics["topics"][0]["sequence"], 5);
  EXPECT_EQ(topics["topics"][0]["value"], "5");
  EXPECT_EQ(topics["topics"][0]["subscribers"], 1);
  EXPECT_EQ(topics["topics"][1]["value"], "{\"odds\":1.95}");
  Json without_values = get_json(broker, "/api/topics?prefix=Listed/q");
  ASSERT_EQ(without_values["total"], 1);
  EXPECT_FALSE(without_values["topics"][0].contains("value"));

  Json sessions = get_json(broker, "/api/sessions");
  ASSERT_EQ(sessions["total"], 2) << sessions.dump();
  for (const Json& s : sessions["sessions"]) {
    EXPECT_EQ(s["transport"], "tcp");
    EXPECT_EQ(s["state"], "attached");
    EXPECT_EQ(s["address"].get<std::string>().rfind("127.0.0.1:", 0), 0u);
  }
  Json page = get_json(broker, "/api/sessions?limit=1&offset=1");
  EXPECT_EQ(page["sessions"].size(), 1u);

  Json subscriptions = get_json(broker, "/api/subscriptions");
  ASSERT_EQ(subscriptions["total"], 1);
  EXPECT_EQ(subscriptions["subscriptions"][0]["selector"], "Listed//");

  // A closed session is listed with its reason.
  subscriber.close();
  EXPECT_TRUE(eventually([&] { return get_json(broker, "/api/sessions")["closed"].size() >= 1; },
                         std::chrono::seconds(10)));
  EXPECT_EQ(get_json(broker, "/api/sessions")["closed"][0]["reason"], "closed by the client");
  publisher.close();
  EXPECT_TRUE(eventually([&] { return get_json(broker, "/api/sessions")["closed_total"] == 2; },
                         std::chrono::seconds(10)));
  Json last_closed = get_json(broker, "/api/sessions?limit=1");
  ASSERT_EQ(last_closed["closed"].size(), 1u) << "?limit applies to the closed sessions too";
  EXPECT_EQ(last_closed["closed_total"], 2);
  const Json all_closed = get_json(broker, "/api/sessions")["closed"];
  ASSERT_EQ(all_closed.size(), 2u);
  EXPECT_EQ(last_closed["closed"][0]["id"], all_closed[0]["id"]) << "the most recent first";
  EXPECT_EQ(all_closed[1]["reason"], "closed by the client");
  EXPECT_GE(all_closed[0]["closed_at"].get<std::string>(), all_closed[1]["closed_at"].get<std::string>());
}

TEST(HttpSide, counters_move_when_a_subscriber_stalls) {
  // Flow control holds the publisher for 200 ms at most, then the stalled subscriber gets its
  // policy: close, as a slow consumer. Its conflated topic replaces queued updates first.
  BrokerProcess broker(http_broker("[limits]\nmax_frame_bytes = 1048576\n[session]\nqueue_max_bytes = 4194304\nconflate_after_bytes = 0\n"
                                   "[flow]\nmax_stall_ms = 200\n"));
  BROOK_ASSERT_STARTED(broker);
  StalledSubscriber stalled(broker, "Stall//");
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  // Whole values, no deltas: the backlog is as many bytes as the test publishes.
  ASSERT_TRUE(await(publisher.create_topic("Stall/latest", {.type = TopicType::string, .conflate = true, .deltas = false})));
  ASSERT_TRUE(await(publisher.create_topic("Stall/every", {.type = TopicType::string, .deltas = false})));
  for (std::size_t i = 0; i < 40'000; ++i) publisher.publish("Stall/latest", value_of(i, 1024));
  ASSERT_TRUE(await(publisher.publish_acked("Stall/latest", bytes_of("last")), std::chrono::seconds(60)));
  EXPECT_GE(wait_for_metric(broker, "brook_conflated_total", 1), 1);

  for (std::size_t i = 0; i < 40'000; ++i) publisher.publish("Stall/every", value_of(i));
  ASSERT_TRUE(await(publisher.publish_acked("Stall/every", bytes_of("last")), std::chrono::seconds(60)));
  EXPECT_GE(wait_for_metric(broker, "brook_flow_holds_total", 1), 1);
  EXPECT_GE(wait_for_metric(broker, "brook_flow_stalls_total", 1), 1);
  EXPECT_GE(wait_for_metric(broker, "brook_flow_timeouts_total", 1), 1);
  EXPECT_GE(wait_for_metric(broker, "brook_slow_consumer_closes_total", 1), 1);
  Json sessions = get_json(broker, "/api/sessions");
  bool closed_as_slow = false;
  for (const Json& s : sessions["closed"])
    closed_as_slow |= s["reason"].get<std::string>().find("slow consumer") != std::string::npos;
  EXPECT_TRUE(closed_as_slow) << sessions["closed"].dump();
  // The operator's log says it too.
  const std::string log = broker.log();
  EXPECT_NE(log.find("ended by the broker"), std::string::npos) << broker.log_tail();
  EXPECT_NE(log.find("slow consumer"), std::string::npos) << broker.log_tail();

  auto samples = scrape(broker);
  EXPECT_GE(samples["brook_publishes_total"], 60'000);
  EXPECT_GE(samples["brook_deliveries_total"], 1);
  EXPECT_GE(samples["brook_sends_total"], 1);
  EXPECT_GE(samples["brook_publish_to_send_seconds_count"], 1);
  EXPECT_EQ(samples["brook_send_batch_frames_count"], samples["brook_sends_total"]);
  EXPECT_GT(samples["brook_shard_busy_seconds_total{shard=\"0\"}"] + samples["brook_shard_busy_seconds_total{shard=\"1\"}"], 0);
  publisher.close();
}

TEST(HttpSide, counters_move_for_a_dropped_backlog_a_resync_and_a_refused_publish) {
  BrokerProcess broker(http_broker("[limits]\nmax_frame_bytes = 1048576\n[session]\nqueue_max_bytes = 2097152\nqueue_limit_policy = \"drop-oldest\"\n"
                                   "[flow]\nhigh_water_bytes = 0\n"));
  BROOK_ASSERT_STARTED(broker);
  StalledSubscriber stalled(broker, "Drop//");
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(await(publisher.create_topic("Drop/every", {.type = TopicType::string, .deltas = false})));
  for (std::size_t i = 0; i < 40'000; ++i) publisher.publish("Drop/every", value_of(i));
  ASSERT_TRUE(await(publisher.publish_acked("Drop/every", bytes_of("last")), std::chrono::seconds(60)));
  EXPECT_GE(wait_for_metric(broker, "brook_dropped_backlogs_total", 1), 1);
  EXPECT_GE(wait_for_metric(broker, "brook_resyncs_total", 1), 1);
  EXPECT_EQ(scrape(broker)["brook_slow_consumer_closes_total"], 0);
  EXPECT_NE(broker.log().find("unsent updates dropped, resynchronised"), std::string::npos) << broker.log_tail();

  // A value that is not JSON, to a json topic: refused by the broker (the client cannot know).
  ASSERT_TRUE(await(publisher.create_topic("Drop/json", {.type = TopicType::json})));
  const std::string refusals = "brook_refusals_total{reason=\"invalid_value\"}";
  const double refused_before = scrape(broker)[refusals];
  Status refused = await(publisher.publish_acked("Drop/json", bytes_of("{not json")));
  EXPECT_FALSE(refused);
  EXPECT_EQ(refused.code, ErrorCode::invalid_value) << refused.message;
  EXPECT_GE(wait_for_metric(broker, refusals, refused_before + 1), refused_before + 1);
  EXPECT_GE(scrape(broker)["brook_refused_requests_total"], 1);
  publisher.close();
}

TEST(HttpSide, sends_over_shared_memory_are_counted_and_timed) {
  BrokerConfig config = http_broker({}, 1);
  config.shm = true;
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client publisher, subscriber;
  UpdateLog log;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client(subscriber, broker.shm_url(), "shm-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Shm//", log));
  const auto before = scrape(broker);
  for (std::size_t i = 1; i <= 1'000; ++i) publisher.publish("Shm/odds", value_of(i));
  ASSERT_TRUE(log.wait_for(1'000, std::chrono::seconds(30)));
  // The subscriber is the only one: every send and latency sample after `before` is its own.
  std::map<std::string, double> after;
  EXPECT_TRUE(eventually(
      [&] {
        after = scrape(broker);
        return after["brook_publish_to_send_seconds_count"] > before.at("brook_publish_to_send_seconds_count");
      },
      std::chrono::seconds(10)));
  EXPECT_GT(after["brook_sends_total"], before.at("brook_sends_total"));
  EXPECT_EQ(after["brook_send_batch_frames_count"], after["brook_sends_total"]);
  EXPECT_GE(after["brook_send_batch_frames_sum"] - before.at("brook_send_batch_frames_sum"), 1'000);
  subscriber.close();
  publisher.close();
}

TEST(HttpSide, an_authentication_failure_is_counted) {
  CredentialsFile credentials;
  BrokerConfig config = auth_broker(credentials, false);
  config.http = true;
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  Client intruder;
  EXPECT_FALSE(intruder.connect(login(broker.url(), "alice", "not her password")));
  EXPECT_GE(wait_for_metric(broker, "brook_auth_failures_total", 1), 1);
  EXPECT_GE(scrape(broker)["brook_refusals_total{reason=\"authentication_failed\"}"], 1);
}

TEST(HttpSide, the_sessions_endpoint_names_the_stalled_subscriber_first) {
  // No flow control and room for the backlog: the stalled subscriber keeps its session and
  // its queue grows while the others keep up.
  BrokerProcess broker(http_broker("[session]\nqueue_max_bytes = 67108864\n[flow]\nhigh_water_bytes = 0\n"));
  BROOK_ASSERT_STARTED(broker);
  Client healthy_a, healthy_b, publisher;
  UpdateLog log_a, log_b;
  ASSERT_TRUE(connect_client(healthy_a, broker.url(), "healthy-a"));
  ASSERT_TRUE(subscribe_and_wait(healthy_a, "Slow//", log_a));
  StalledSubscriber stalled(broker, "Slow//");
  ASSERT_TRUE(connect_client(healthy_b, broker.url(), "healthy-b"));
  ASSERT_TRUE(subscribe_and_wait(healthy_b, "Slow//", log_b));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(await(publisher.create_topic("Slow/odds", {.type = TopicType::string, .deltas = false})));
  constexpr std::size_t updates = 60'000;  // 30 MiB: far more than the kernel's socket buffers
  for (std::size_t i = 0; i < updates; ++i) publisher.publish("Slow/odds", value_of(i));
  ASSERT_TRUE(log_a.wait_for(updates, std::chrono::seconds(60)));
  ASSERT_TRUE(log_b.wait_for(updates, std::chrono::seconds(60)));

  Json sessions;
  ASSERT_TRUE(eventually(
      [&] {
        sessions = get_json(broker, "/api/sessions?sort=queue");
        return sessions["sessions"].size() == 4 && sessions["sessions"][0]["pending_bytes"] > 0;
      },
      std::chrono::seconds(10)))
      << sessions.dump();
  // Named by its address: the stalled connection's own.
  sockaddr_in local{};
  socklen_t length = sizeof local;
  ASSERT_EQ(::getsockname(stalled.connection.fd(), reinterpret_cast<sockaddr*>(&local), &length), 0);
  const Json& first = sessions["sessions"][0];
  EXPECT_EQ(first["address"], "127.0.0.1:" + std::to_string(ntohs(local.sin_port))) << sessions.dump();
  EXPECT_GT(first["pending_frames"].get<std::uint64_t>(), 1000u);
  for (std::size_t i = 1; i < 4; ++i) EXPECT_EQ(sessions["sessions"][i]["pending_bytes"], 0) << sessions.dump();
  healthy_a.close();
  healthy_b.close();
  publisher.close();
}

TEST(HttpSide, garbage_and_many_connections_leave_the_broker_serving) {
  BrokerProcess broker(http_broker());
  BROOK_ASSERT_STARTED(broker);
  Client publisher, subscriber;
  UpdateLog log;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Busy//", log));

  // Bounded: 400 connections, each sends one kind of trouble, then they all hang open while
  // the broker carries a feed; an HTTP side that shared the shards' threads would stall it.
  const std::vector<std::string> garbage = {
      std::string("\x00\xff\x13\x37 garbage\r\n\r\n", 16),
      "GET /metrics HTTP/1.1\r\nHost: x\r\n",  // never finished
      "GET /" + std::string(100'000, 'a') + " HTTP/1.1\r\n\r\n",
      "GET /api/topics HTTP/1.1\r\nX: " + std::string(200'000, 'b') + "\r\n\r\n",
      "POST /metrics HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
      "GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n",
      "BREW /pot HTCPCP/1.0\r\n\r\n",
      "GET /metrics HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
  };
  std::vector<std::unique_ptr<RawConnection>> crowd;
  for (std::size_t i = 0; i < 400; ++i) {
    auto c = std::make_unique<RawConnection>(broker.http_port());
    if (c->connected()) {
      const std::string& bytes = garbage[i % garbage.size()];
      c->send_raw(std::as_bytes(std::span(bytes.data(), bytes.size())));
    }
    crowd.push_back(std::move(c));
  }
  for (std::size_t i = 1; i <= 2'000; ++i) publisher.publish("Busy/odds", value_of(i));
  EXPECT_TRUE(log.wait_for(2'000, std::chrono::seconds(30))) << "the feed stalled: " << log.size();
  EXPECT_TRUE(broker.running());
  crowd.clear();
  // It still answers, for real requests, once the crowd has gone.
  HttpAnswer health;
  EXPECT_TRUE(eventually([&] { return (health = http_get(broker.http_port(), "/healthz")).status == 200; },
                         std::chrono::seconds(30)))
      << health.error;
  EXPECT_GE(scrape(broker)["brook_publishes_total"], 2'000);
  subscriber.close();
  publisher.close();
}

TEST(HttpSide, basic_auth_and_https_guard_it_when_configured) {
  CredentialsFile credentials;
  const std::string dir = make_temp_dir("http-tls");
  TestCertificates pki(dir, "brook");
  auto server = pki.issue("server", "localhost");
  BrokerConfig config = http_broker("[tls]\ncert_file = \"" + server.cert_file + "\"\nkey_file = \"" +
                                    server.key_file + "\"\n[http]\ntls = true\ncredentials_file = \"" +
                                    credentials.path() + "\"\n");
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  auto status_of = [&](const std::string& authorization) {
    RawConnection c(broker.http_port());
    EXPECT_TRUE(c.start_tls(pki.ca_file()));
    return c.http_request("GET /healthz HTTP/1.1\r\nHost: localhost\r\n" + authorization + "\r\n");
  };
  // base64("alice:alice's secret") and base64("alice:wrong")
  EXPECT_EQ(status_of("Authorization: Basic YWxpY2U6YWxpY2UncyBzZWNyZXQ=\r\n").substr(0, 12), "HTTP/1.1 200");
  EXPECT_EQ(status_of("Authorization: Basic YWxpY2U6d3Jvbmc=\r\n").substr(0, 12), "HTTP/1.1 401");
  EXPECT_EQ(status_of("").substr(0, 12), "HTTP/1.1 401");
  // Plain HTTP on the TLS port gets nothing useful.
  EXPECT_NE(http_get(broker.http_port(), "/healthz", {}, std::chrono::seconds(3)).status, 200);
  broker.stop();
  remove_temp_dir(dir);
}

}  // namespace
}  // namespace brook::test
