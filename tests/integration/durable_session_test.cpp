// Durable sessions with a real brookd and a data dir: a client-named session survives a
// kill -9 of the broker with its id, token and subscriptions (also an unsubscribe, and
// topics created after the restart), and its fail-safe client resumes it without a new
// session; a client that opts out gets a new session instead; a restored session nobody
// resumes ends after its reconnect timeout, and a later restart no longer has it.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "fault_proxy.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using namespace std::chrono_literals;

// One shard: an acknowledged publish from a session is durable after every record its shard
// wrote for the session before it (the tests use one to know the session's record is on disk
// before they kill the broker).
BrokerConfig journalled(const std::string& data_dir, const std::string& listen) {
  BrokerConfig config = with_shards(1);
  config.listen = listen;
  config.extra_args = {"--data-dir", data_dir};
  // Enough history to cover what is published while the client is away.
  config.config_toml = "[history]\ndepth = 64\n";
  return config;
}

ClientOptions named(const std::string& url, std::int64_t number) {
  return failsafe_named(url, "durable-session-test", number);
}

// Counts how the client came back after each drop.
struct Comebacks {
  std::atomic<int> resumed{0}, new_sessions{0};
  void watch(Client& client) {
    client.on_state_change([this](ClientState, ClientState to, const std::string& reason) {
      if (to != ClientState::connected) return;
      if (reason.starts_with("resumed")) ++resumed;
      if (reason.starts_with("new session")) ++new_sessions;
    });
  }
};

void publish_values(Client& publisher, const std::string& path, int from, int to) {
  std::future<Status> last;
  for (int n = from; n <= to; ++n) last = publisher.publish_acked(path, bytes_of("v" + std::to_string(n)));
  ASSERT_TRUE(await(std::move(last), 30s));
}

std::vector<std::string> values_of(const UpdateLog& log, const std::string& path) {
  std::vector<std::string> values;
  for (const auto& e : log.entries())
    if (e.path == path) values.push_back(e.value);
  return values;
}

std::vector<std::string> numbered(int from, int to) {
  std::vector<std::string> values;
  for (int n = from; n <= to; ++n) values.push_back("v" + std::to_string(n));
  return values;
}

enum class Stop { kill_9, sigterm };

// A named subscriber, its broker stopped (`how`) and started again on the same data dir while
// a publisher goes on: the same session, its subscriptions, every update once.
void a_session_outlives_its_broker(Stop how) {
  const std::string data_dir = make_temp_dir("brook-durable-session");
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  UpdateLog log;
  Client subscriber;
  Comebacks comebacks;
  comebacks.watch(subscriber);
  {
    BrokerProcess broker(journalled(data_dir, listen));
    BROOK_ASSERT_STARTED(broker);
    ASSERT_TRUE(subscriber.connect(named(broker.url(), 11)));
    ASSERT_TRUE(subscribe_and_wait(subscriber, "Kept//", log));
    UpdateLog gone;
    Subscription dropped;
    ASSERT_TRUE(subscribe_and_wait(subscriber, "Dropped//", gone, &dropped));
    subscriber.unsubscribe(dropped);
    ASSERT_TRUE(await(subscriber.publish_acked("Barrier/s", bytes_of("durable")), 10s));
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "durable-session-publisher"));
    publish_values(publisher, "Kept/a", 1, 10);
    ASSERT_TRUE(log.wait_for(10, 10s));
    if (how == Stop::kill_9) broker.crash();
    else broker.stop();
  }
  BrokerProcess broker(journalled(data_dir, listen));
  BROOK_ASSERT_STARTED(broker);
  EXPECT_NE(broker.log().find("and 1 session(s)"), std::string::npos) << broker.log();
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "durable-session-publisher"));
  publish_values(publisher, "Kept/a", 11, 20);
  publish_values(publisher, "Kept/new", 1, 3);  // a topic made after the restart
  publish_values(publisher, "Dropped/x", 1, 1);
  ASSERT_TRUE(log.wait_until(
      [](const std::vector<Received>& entries) {
        int seen = 0;
        for (const auto& e : entries) seen += e.path == "Kept/new" && e.value == "v3";
        return seen > 0;
      },
      20s))
      << "the restored subscription did not see a topic made after the restart";
  EXPECT_TRUE(log.wait_until([](const std::vector<Received>& e) { return e.size() >= 23; }, 20s)) << log.size();
  std::string dump;
  for (const auto& e : log.entries()) dump += e.path + ":" + std::to_string(e.topic_seq) + ":" + e.value + (e.resync ? ":R" : "") + " ";
  EXPECT_EQ(values_of(log, "Kept/a"), numbered(1, 20)) << "a gap or a duplicate across the restart: " << dump;
  EXPECT_EQ(values_of(log, "Kept/new"), numbered(1, 3));
  EXPECT_TRUE(values_of(log, "Dropped/x").empty()) << "an unsubscribe was forgotten by the restart";
  EXPECT_EQ(comebacks.new_sessions.load(), 0);
  EXPECT_EQ(comebacks.resumed.load(), 1);
  EXPECT_EQ(subscriber.session_id(), "anonymous/11");
  subscriber.close();
  std::filesystem::remove_all(data_dir);
}

TEST(DurableSession, survives_kill_9_with_its_id_and_subscriptions_and_its_client_misses_nothing) {
  a_session_outlives_its_broker(Stop::kill_9);
}

TEST(DurableSession, survives_a_graceful_restart_the_same_way) {
  a_session_outlives_its_broker(Stop::sigterm);
}

// Request handlers are not journalled: the client registers them again when it takes a
// restored session back, and requests reach it as before.
TEST(DurableSession, a_request_handler_on_a_restored_session_answers_again) {
  const std::string data_dir = make_temp_dir("brook-durable-handler");
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  Client handler;
  Comebacks comebacks;
  comebacks.watch(handler);
  auto answer = [](const Request& request, Responder responder) { responder.respond("quote for " + std::string(request.text())); };
  {
    BrokerProcess broker(journalled(data_dir, listen));
    BROOK_ASSERT_STARTED(broker);
    ASSERT_TRUE(handler.connect(named(broker.url(), 15)));
    ASSERT_TRUE(await(handler.add_request_handler("Svc/quote", answer)));
    ASSERT_TRUE(await(handler.publish_acked("Barrier/s", bytes_of("durable")), 10s));
    broker.crash();
  }
  BrokerProcess broker(journalled(data_dir, listen));
  BROOK_ASSERT_STARTED(broker);
  Client requester;
  ASSERT_TRUE(connect_client_once(requester, broker.url(), "durable-handler-requester"));
  Response response;
  for (int attempt = 0; attempt < 200; ++attempt) {  // until the handler is back (bounded)
    auto future = requester.send_request("Svc/quote", "EURUSD", 5s);
    ASSERT_EQ(future.wait_for(10s), std::future_status::ready);
    response = future.get();
    if (response.status.code != ErrorCode::no_handler) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_TRUE(response.status) << response.status.message;
  EXPECT_EQ(response.text(), "quote for EURUSD");
  EXPECT_EQ(comebacks.resumed.load(), 1);
  EXPECT_EQ(comebacks.new_sessions.load(), 0);
  handler.close();
  std::filesystem::remove_all(data_dir);
}

// The frames a raw connection reads until one decodes as T (bounded), or nothing.
template <class T>
std::optional<T> read_until(RawConnection& raw, codec::FrameDecoder& decoder, std::vector<std::byte>& keep) {
  for (int frames = 0; frames < 64; ++frames) {
    auto frame = raw.read_frame(10s);
    if (!frame) return std::nullopt;
    keep = std::move(*frame);  // the decoded views point into it
    auto decoded = decoder.decode(keep);
    if (auto* m = std::get_if<T>(&decoded.message)) return *m;
  }
  return std::nullopt;
}

// A session named 21 speaking the wire format by hand, subscribed to Raw// on a broker that was
// then killed: the tests take it back from the restarted broker (broker()).
class RestoredRawSession : public ::testing::Test {
 protected:
  void SetUp() override {
    BrokerProcess first(journalled(data_dir_, listen_));
    BROOK_ASSERT_STARTED(first);
    RawConnection raw(port_);
    auto connected = connect(raw, 0, false);
    ASSERT_TRUE(connected);
    token_.assign(connected->token.begin(), connected->token.end());
    ASSERT_TRUE(raw.send_bytes(encoder_.subscribe(1, "Raw//")));
    ASSERT_TRUE(read_until<codec::SubscribedMsg>(raw, decoder_, frame_));
    Client publisher;  // one shard: its acknowledged publish is durable after the session's record
    ASSERT_TRUE(connect_client_once(publisher, first.url(), "raw-durable-publisher"));
    ASSERT_TRUE(await(publisher.publish_acked("Barrier/s", bytes_of("durable")), 10s));
    first.crash();
    broker_ = std::make_unique<BrokerProcess>(journalled(data_dir_, listen_));
  }
  void TearDown() override {
    broker_.reset();
    std::filesystem::remove_all(data_dir_);
  }

  // Connects (with the session's token unless `with_token` is false) and reads Connected.
  std::optional<codec::ConnectedMsg> connect(RawConnection& raw, std::uint64_t resend_from, bool with_token = true) {
    codec::ConnectMsg m;
    m.client_name = "raw-durable";
    m.session_number = 21;
    m.reconnect_timeout_ms = 60'000;
    if (with_token) m.token = token_;
    m.resend_from = resend_from;
    if (!raw.send_bytes(encoder_.connect(m))) return std::nullopt;
    return read_until<codec::ConnectedMsg>(raw, decoder_, frame_);
  }
  // Publishes to Raw/x and returns the TopicAdd `raw` reads for it, if any.
  std::optional<codec::TopicAddMsg> publish_and_read(RawConnection& raw) {
    Client publisher;
    if (!connect_client_once(publisher, broker_->url(), "raw-durable-publisher")) return std::nullopt;
    if (!await(publisher.publish_acked("Raw/x", bytes_of("after")), 10s)) return std::nullopt;
    return read_until<codec::TopicAddMsg>(raw, decoder_, frame_);
  }

  const std::string data_dir_ = make_temp_dir("brook-durable-raw");
  const std::uint16_t port_ = free_port();
  const std::string listen_ = "127.0.0.1:" + std::to_string(port_);
  std::unique_ptr<BrokerProcess> broker_;
  codec::FrameEncoder encoder_;
  codec::FrameDecoder decoder_;
  std::vector<std::byte> frame_;
  std::vector<std::byte> token_;
};

// A client whose connection drops after it took a restored session back, before it sent its
// positions: the next connection is told `restored` again, and its positions still bring the
// session's subscriptions back.
TEST_F(RestoredRawSession, positions_that_never_came_are_asked_for_again_on_the_next_connection) {
  BROOK_ASSERT_STARTED(*broker_);
  {
    RawConnection first(port_);
    auto connected = connect(first, 2);  // the Subscribe was frame 1, confirmed
    ASSERT_TRUE(connected);
    EXPECT_TRUE(connected->resumed);
    EXPECT_TRUE(connected->restored);
    EXPECT_EQ(connected->last_received, 1u);
  }  // gone before it sent its positions
  RawConnection second(port_);
  auto connected = connect(second, 2);
  ASSERT_TRUE(connected);
  EXPECT_TRUE(connected->resumed);
  EXPECT_TRUE(connected->restored) << "the positions were not asked for again";
  ASSERT_TRUE(second.send_bytes(encoder_.resume_subscriptions({})));
  auto added = publish_and_read(second);
  ASSERT_TRUE(added) << "the restored subscription did not come back";
  EXPECT_EQ(added->path, "Raw/x");
}

// A client that does not say how its frames were counted (resend_from 0: a new process, or a
// client older than restored sessions) is counted on from far above the old frames, so that
// none of its new ones is taken for an old one, and its subscriptions come back at once.
TEST_F(RestoredRawSession, a_client_that_does_not_know_its_count_goes_on_far_above_it) {
  BROOK_ASSERT_STARTED(*broker_);
  RawConnection raw(port_);
  auto connected = connect(raw, 0);
  ASSERT_TRUE(connected);
  EXPECT_TRUE(connected->resumed);
  EXPECT_GT(connected->last_received, std::uint64_t{1} << 32);
  auto added = publish_and_read(raw);
  ASSERT_TRUE(added) << "the restored subscription did not come back without positions";
  EXPECT_EQ(added->path, "Raw/x");
}

// A connection reset while a fail-safe publisher streams to a broker with a journal: the
// broker reports only durable frames as taken (Connected.last_received is its last Received),
// the client sends the rest again, and the broker skips those it had taken: the topic's history
// holds every value once.
TEST(DurableSession, a_connection_reset_mid_stream_with_a_journal_applies_nothing_twice) {
  const std::string data_dir = make_temp_dir("brook-durable-reset");
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  BrokerConfig config = journalled(data_dir, listen);
  config.config_toml = "[history]\ndepth = 100000\nmax_bytes = 104857600\n";
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Client publisher;
  Comebacks comebacks;
  comebacks.watch(publisher);
  ASSERT_TRUE(publisher.connect(named(proxy.url(), 16)));
  constexpr int count = 20'000;
  std::thread stream([&] {
    for (int n = 1; n <= count; ++n) {
      publisher.publish("Reset/t", "n" + std::to_string(n));
      if (n % 64 == 0) std::this_thread::sleep_for(200us);
    }
  });
  ASSERT_TRUE(proxy.wait_for_bytes_to_upstream(0, 200'000, 10s));
  ASSERT_TRUE(proxy.reset(0));
  stream.join();
  ASSERT_TRUE(await(publisher.publish_acked("Reset/t", bytes_of("end")), 30s));
  UpdateLog log;
  Client reader;
  ASSERT_TRUE(connect_client_once(reader, broker.url(), "durable-reset-reader"));
  ASSERT_TRUE(subscribe_with(reader, "Reset/t", log, {.history = 0, .since = 0}));
  ASSERT_TRUE(log.wait_until([](const std::vector<Received>& e) { return !e.empty() && e.back().value == "end"; }, 30s));
  std::vector<std::string> want = {};
  for (int n = 1; n <= count; ++n) want.push_back("n" + std::to_string(n));
  want.push_back("end");
  EXPECT_EQ(values_of(log, "Reset/t") == want, true) << "lost or doubled across the reset (" << log.size()
                                                     << " values kept for " << want.size() << " published)";
  EXPECT_EQ(comebacks.resumed.load(), 1);
  publisher.close();
  std::filesystem::remove_all(data_dir);
}

TEST(DurableSession, a_client_that_opts_out_gets_a_new_session_after_a_restart_and_still_misses_nothing) {
  const std::string data_dir = make_temp_dir("brook-transient-session");
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  UpdateLog log;
  Client subscriber;
  Comebacks comebacks;
  comebacks.watch(subscriber);
  ClientOptions options = named("tcp://" + listen, 12);
  options.durable_session = false;
  {
    BrokerProcess broker(journalled(data_dir, listen));
    BROOK_ASSERT_STARTED(broker);
    ASSERT_TRUE(subscriber.connect(options));
    ASSERT_TRUE(subscribe_and_wait(subscriber, "Kept//", log));
    ASSERT_TRUE(await(subscriber.publish_acked("Barrier/s", bytes_of("durable")), 10s));
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, broker.url(), "transient-session-publisher"));
    publish_values(publisher, "Kept/a", 1, 5);
    ASSERT_TRUE(log.wait_for(5, 10s));
    broker.crash();
  }
  BrokerProcess broker(journalled(data_dir, listen));
  BROOK_ASSERT_STARTED(broker);
  EXPECT_NE(broker.log().find("and 0 session(s)"), std::string::npos) << broker.log();
  Client publisher;
  ASSERT_TRUE(connect_client_once(publisher, broker.url(), "transient-session-publisher"));
  publish_values(publisher, "Kept/a", 6, 10);
  ASSERT_TRUE(log.wait_until([](const std::vector<Received>& e) { return e.size() >= 10; }, 20s));
  EXPECT_EQ(values_of(log, "Kept/a"), numbered(1, 10));
  EXPECT_EQ(comebacks.new_sessions.load(), 1);
  subscriber.close();
  std::filesystem::remove_all(data_dir);
}

TEST(DurableSession, a_restored_session_nobody_resumes_ends_after_its_reconnect_timeout) {
  const std::string data_dir = make_temp_dir("brook-expired-session");
  const std::string listen = "127.0.0.1:" + std::to_string(free_port());
  {
    BrokerProcess broker(journalled(data_dir, listen));
    BROOK_ASSERT_STARTED(broker);
    Client subscriber;
    ClientOptions options = named(broker.url(), 13);
    options.reconnect_timeout = 1s;
    options.close_timeout = 100ms;
    ASSERT_TRUE(subscriber.connect(options));
    UpdateLog log;
    ASSERT_TRUE(subscribe_and_wait(subscriber, "Kept//", log));
    ASSERT_TRUE(await(subscriber.publish_acked("Barrier/s", bytes_of("durable")), 10s));
    broker.crash();
    subscriber.close();  // gone for good: it never comes back to the restarted broker
  }
  {
    BrokerProcess broker(journalled(data_dir, listen));
    BROOK_ASSERT_STARTED(broker);
    EXPECT_NE(broker.log().find("and 1 session(s)"), std::string::npos) << broker.log();
    std::this_thread::sleep_for(2s);  // the session's reconnect timeout (1 s) passes
    broker.crash();
  }
  BrokerProcess broker(journalled(data_dir, listen));
  BROOK_ASSERT_STARTED(broker);
  EXPECT_NE(broker.log().find("and 0 session(s)"), std::string::npos) << broker.log();
  std::filesystem::remove_all(data_dir);
}

}  // namespace
}  // namespace brook::test
