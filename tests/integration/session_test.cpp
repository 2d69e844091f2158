// Fault tests: sessions that survive disconnection. A client reaches brookd through a
// FaultProxy (its URL is the proxy's, so cutting, stalling or blackholing the proxy link is the
// fault, and the proxy accepts the client's next connection); healthy clients connect
// directly. Covered: replay of missed updates and publishes from the recovery buffers, resync
// when the broker's buffer was overrun, the reconnect timeout, broker and client pings, session
// tokens, the reconnection strategy, clean closes and a resume that lands on another shard.
// Every wait is bounded; the few fixed waits are the timeouts under test, not race fixes.
#include <gtest/gtest.h>
#include <xxhash.h>

#include <array>
#include <atomic>
#include <charconv>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "fault_proxy.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Large enough for a sanitizer build on a busy two-core machine; only reached on failure.
constexpr auto long_wait = std::chrono::seconds(60);
constexpr auto short_wait = std::chrono::seconds(10);

// ---- what a client saw --------------------------------------------------------------------

struct SeenUpdate {
  std::string path;
  std::uint64_t topic_seq = 0;
  std::uint64_t session_seq = 0;
  std::string value;
  bool resync = false;
};

struct Seen {
  std::vector<SeenUpdate> updates;
  std::vector<std::string> disconnects;  // reasons
  std::vector<bool> reconnects;          // the resync flag of each on_reconnect
  std::optional<std::string> closed;     // the close reason
  std::vector<Status> errors;

  // The updates of one topic, in arrival order.
  std::vector<SeenUpdate> of(std::string_view path) const {
    std::vector<SeenUpdate> out;
    for (const auto& u : updates)
      if (u.path == path) out.push_back(u);
    return out;
  }
  // For failure messages.
  std::string describe() const {
    std::string text = std::to_string(updates.size()) + " updates; disconnects:";
    for (const auto& d : disconnects) text += " '" + d + "'";
    text += "; reconnects:";
    for (bool r : reconnects) text += r ? " resync" : " resumed";
    text += "; closed: " + (closed ? "'" + *closed + "'" : std::string("no"));
    text += "; errors:";
    for (const auto& e : errors) text += " '" + e.message + "'";
    return text;
  }
  bool has_value(std::string_view value) const {
    for (const auto& u : updates)
      if (u.value == value) return true;
    return false;
  }
};

// Records one client's updates and session events on the client's thread; the test thread
// waits (bounded) and reads copies. Declare it before the Client it listens to, so that the
// client (and its thread) goes first.
class Recorder {
 public:
  UpdateHandler handler() {
    return [this](const Update& u) {
      update([&](Seen& s) {
        s.updates.push_back(
            {std::string(u.path), u.topic_seq, u.session_seq, std::string(u.text()), u.resync});
      });
    };
  }
  void listen(Client& client) {
    client.on_disconnect([this](const std::string& reason) {
      update([&](Seen& s) { s.disconnects.push_back(reason); });
    });
    client.on_reconnect(
        [this](bool resync) { update([&](Seen& s) { s.reconnects.push_back(resync); }); });
    client.on_close(
        [this](const std::string& reason) { update([&](Seen& s) { s.closed = reason; }); });
    client.on_error(
        [this](const Status& status) { update([&](Seen& s) { s.errors.push_back(status); }); });
  }
  // True once `predicate(seen)` holds; evaluated under the lock after every event.
  bool wait(const std::function<bool(const Seen&)>& predicate, milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return predicate(seen_); });
  }
  bool wait_for_updates(std::size_t count, milliseconds timeout) {
    return wait([&](const Seen& s) { return s.updates.size() >= count; }, timeout);
  }
  bool wait_for_value(std::string_view value, milliseconds timeout) {
    return wait([&](const Seen& s) { return s.has_value(value); }, timeout);
  }
  Seen seen() const {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::size_t update_count() const {
    std::lock_guard lock(mutex_);
    return seen_.updates.size();
  }

 private:
  template <class F>
  void update(F&& f) {
    std::lock_guard lock(mutex_);
    f(seen_);
    changed_.notify_all();
  }
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  Seen seen_;
};

// ---- helpers ------------------------------------------------------------------------------

// Quick reconnection, so that a cut costs tens of milliseconds.
ClientOptions session_options(const std::string& url, std::string name) {
  ClientOptions options;
  options.url = url;
  options.client_name = std::move(name);
  options.connect_timeout = short_wait;
  options.reconnect_timeout = std::chrono::seconds(30);
  options.reconnect_delay = milliseconds(50);
  return options;
}

BrokerConfig broker_config(unsigned shards, std::string toml) {
  BrokerConfig config = with_shards(shards);
  config.config_toml = std::move(toml);
  return config;
}

// Room for every update a test sends while its subscriber is cut off: nothing is resynced.
constexpr const char* ample_recovery = "[session]\nrecovery_bytes = 67108864\n";

// Subscribes and waits (bounded) for the broker's first verdict. The client may report the
// selector registered again after a reconnection; only the first report answers here.
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

// The first place where the updates of one topic differ from `expected` (values carrying topic
// sequence numbers 1, 2, ...); empty when they match exactly (no gap, duplicate or reorder).
std::string first_difference(const std::vector<SeenUpdate>& got,
                             const std::vector<std::string>& expected) {
  for (std::size_t i = 0; i < std::min(got.size(), expected.size()); ++i)
    if (got[i].topic_seq != i + 1 || got[i].value != expected[i] || got[i].resync)
      return "update #" + std::to_string(i) + ": got seq " + std::to_string(got[i].topic_seq) +
             " value '" + got[i].value + "'" + (got[i].resync ? " (resync)" : "") +
             ", expected seq " + std::to_string(i + 1) + " value '" + expected[i] + "'";
  if (got.size() != expected.size())
    return "got " + std::to_string(got.size()) + " updates, expected " +
           std::to_string(expected.size());
  return {};
}

// The end of brookd's stderr, for failure messages.
std::vector<std::string> numbered(std::string_view prefix, std::size_t count) {
  std::vector<std::string> values;
  values.reserve(count);
  for (std::size_t i = 0; i < count; ++i) values.push_back(std::string(prefix) + std::to_string(i));
  return values;
}

// ---- raw session handshakes -----------------------------------------------------------------

using Token = std::array<std::byte, codec::session_token_bytes>;

Token random_token() {
  std::random_device device;
  Token token;
  for (auto& b : token) b = static_cast<std::byte>(device());
  return token;
}

// The broker's answer to a Connect: Connected (copied out of the decoder's views) or Error.
struct ConnectAnswer {
  bool connected = false;
  std::string session_id;
  Token token{};
  bool resumed = false;
  ErrorReport error;  // when !connected; code none: no answer at all (see message)
};

ConnectAnswer raw_connect(RawConnection& raw, const codec::ConnectMsg& connect) {
  ConnectAnswer answer;
  codec::FrameEncoder encoder;
  codec::FrameDecoder decoder;
  if (!raw.send_bytes(encoder.connect(connect))) {
    answer.error.message = "cannot send connect";
    return answer;
  }
  for (int frames = 0; frames < 16; ++frames) {  // a ping may come first
    auto frame = raw.read_frame(short_wait);
    if (!frame) {
      answer.error.message = "no answer to connect";
      return answer;
    }
    auto decoded = decoder.decode(*frame);
    if (!decoded.ok()) {
      answer.error.message = "undecodable answer to connect";
      return answer;
    }
    if (auto* c = std::get_if<codec::ConnectedMsg>(&decoded.message)) {
      answer.connected = true;
      answer.session_id = c->session_id;
      answer.resumed = c->resumed;
      if (c->token.size() == answer.token.size())
        std::copy(c->token.begin(), c->token.end(), answer.token.begin());
      else
        answer.error.message =
            "connected with a token of " + std::to_string(c->token.size()) + " bytes";
      return answer;
    }
    if (auto* e = std::get_if<codec::ErrorMsg>(&decoded.message)) {
      answer.error = {e->code, e->request_id, std::string(e->message)};
      return answer;
    }
  }
  answer.error.message = "no connected or error among the first frames";
  return answer;
}

codec::ConnectMsg connect_message(std::string_view name, std::int64_t session_number = 0,
                                  std::span<const std::byte> token = {}) {
  codec::ConnectMsg m;
  m.client_name = name;
  m.session_number = session_number;
  m.token = token;
  return m;
}

// N of a session id "principal/N".
std::int64_t session_number_of(std::string_view session_id) {
  std::int64_t number = 0;
  auto slash = session_id.rfind('/');
  if (slash == std::string_view::npos) return 0;
  std::from_chars(session_id.data() + slash + 1, session_id.data() + session_id.size(), number);
  return number;
}

// ---- replay of what was missed --------------------------------------------------------------

TEST(SessionRecovery, subscriber_cut_mid_stream_receives_every_update_once_in_order) {
  BrokerProcess broker(broker_config(1, ample_recovery));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(subscriber.connect(session_options(proxy.url(), "cut-subscriber")));
  seen.listen(subscriber);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_recorded(subscriber, "Cut/price", seen));

  constexpr std::size_t n = 50'000;
  auto values = numbered("p", n);
  std::atomic<std::size_t> acked{0};
  std::string feed_failure;
  std::jthread feed([&] {
    for (std::size_t i = 0; i < n; ++i) {
      if ((i + 1) % 1000 != 0) {
        publisher.publish("Cut/price", values[i]);
        continue;
      }
      Status s = await(publisher.publish_acked("Cut/price", bytes_of(values[i])), long_wait);
      if (!s) {
        feed_failure = "publish " + std::to_string(i) + ": " + s.message;
        return;
      }
      acked.store(i + 1);
    }
  });

  // Mid-stream: hold back what the broker sends, let the publisher get well ahead, then cut.
  // What sat in the sockets and the proxy is lost with the connection and must be replayed.
  EXPECT_TRUE(seen.wait_for_updates(2000, long_wait)) << "received " << seen.update_count();
  ASSERT_TRUE(proxy.stall(0));
  const std::size_t acked_at_stall = acked.load();
  eventually([&] { return acked.load() >= std::min(n, acked_at_stall + 10'000); }, long_wait);
  // The subscriber stays cut off for 2 s (its reconnection attempts are turned away) while the
  // rest of the updates are published.
  proxy.refuse_new_connections(true);
  ASSERT_TRUE(proxy.reset(0));
  const std::size_t received_at_cut = seen.update_count();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  proxy.refuse_new_connections(false);
  RecordProperty("updates_before_the_cut", static_cast<int>(received_at_cut));
  EXPECT_LT(received_at_cut, n) << "the cut did not happen mid-stream";

  feed.join();
  ASSERT_EQ(feed_failure, "");
  // The last one, acknowledged: once it is in, every replayed update came before it.
  ASSERT_TRUE(await(publisher.publish_acked("Cut/price", bytes_of("end")), long_wait));
  values.push_back("end");
  ASSERT_TRUE(seen.wait_for_value("end", long_wait))
      << "received " << seen.update_count() << " of " << values.size() << "; state "
      << to_string(subscriber.state()) << "; " << seen.seen().describe()
      << "; proxy connections: " << proxy.connections() << broker.log_tail();

  Seen got = seen.seen();
  EXPECT_EQ(first_difference(got.of("Cut/price"), values), "");
  EXPECT_GE(got.disconnects.size(), 1u);
  EXPECT_EQ(got.reconnects, std::vector<bool>(got.disconnects.size(), false))
      << "every reconnection resumes without resync";
  EXPECT_FALSE(got.closed.has_value()) << *got.closed;
  EXPECT_EQ(subscriber.state(), ClientState::connected);
  EXPECT_GE(proxy.connections(), 2u) << "the subscriber did not reconnect through the proxy";

  subscriber.close();
  publisher.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("sessions_resumed"), 1u) << broker.log();
  EXPECT_EQ(broker.counter_total("resyncs"), 0u) << broker.log();
}

TEST(SessionRecovery, publisher_cut_mid_stream_has_every_publish_delivered_exactly_once) {
  BrokerProcess broker(broker_config(1, ample_recovery));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  Recorder seen, publisher_seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "subscriber"));
  ASSERT_TRUE(publisher.connect(session_options(proxy.url(), "cut-publisher")));
  publisher_seen.listen(publisher);
  ASSERT_TRUE(subscribe_recorded(subscriber, "Up/counter", seen));

  constexpr std::size_t n = 50'000;
  auto values = numbered("c", n);
  std::atomic<std::size_t> published{0};
  Status last;
  std::jthread feed([&] {
    for (std::size_t i = 0; i < n; ++i) {
      publisher.publish("Up/counter", values[i]);
      published.store(i + 1);
    }
    last = await(publisher.publish_acked("Up/counter", bytes_of("end")), long_wait);
  });

  // Mid-stream: stop the publisher's path, let publishes pile up in its socket and queue, cut.
  EXPECT_TRUE(proxy.wait_for_bytes_to_upstream(0, 64 * 1024, long_wait))
      << "the publisher sent only " << proxy.bytes_to_upstream(0) << " bytes";
  ASSERT_TRUE(proxy.stall(0, FaultProxy::Direction::to_broker));
  const std::size_t at_stall = published.load();
  // publish() may block once the path is full (back-pressure): then cut anyway.
  eventually([&] { return published.load() >= std::min(n, at_stall + 10'000); }, short_wait);
  ASSERT_TRUE(proxy.reset(0));
  RecordProperty("publishes_before_the_cut", static_cast<int>(published.load()));

  feed.join();
  ASSERT_TRUE(last) << last.message;
  values.push_back("end");
  ASSERT_TRUE(seen.wait_for_value("end", long_wait))
      << "received " << seen.update_count() << " of " << values.size();
  EXPECT_EQ(first_difference(seen.seen().of("Up/counter"), values), "");

  Seen pub = publisher_seen.seen();
  EXPECT_GE(pub.disconnects.size(), 1u);
  EXPECT_GE(pub.reconnects.size(), 1u);
  EXPECT_FALSE(pub.closed.has_value()) << *pub.closed;
  EXPECT_TRUE(pub.errors.empty()) << pub.errors.front().message;
  EXPECT_EQ(publisher.state(), ClientState::connected);

  subscriber.close();
  publisher.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("sessions_resumed"), 1u) << broker.log();
  EXPECT_EQ(broker.counter_total("publishes"), n + 1) << broker.log();
}

// ---- the end of a session --------------------------------------------------------------------

// The broker forgets a session its client has not resumed within the reconnect timeout. The
// client, once a broker takes its connection again, is told the session is gone and goes on
// in a new one: the subscription is made again, resumed from the sequence the client holds,
// and the update it missed comes from the broker's history.
TEST(SessionTimeout, cut_longer_than_the_reconnect_timeout_goes_on_in_a_new_session) {
  // connect_timeout_ms = 1000: the broker checks liveness and expiries every 250 ms.
  BrokerProcess broker(broker_config(1, "[session]\nconnect_timeout_ms = 1000\n"));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  Recorder seen;
  Client client;
  ClientOptions options = session_options(proxy.url(), "short-lived");
  options.reconnect_timeout = milliseconds(300);
  ASSERT_TRUE(client.connect(options));
  seen.listen(client);
  ASSERT_TRUE(subscribe_recorded(client, "Gone/t", seen));
  const std::string first_session = client.session_id();
  Client publisher;
  ASSERT_TRUE(publisher.connect(session_options(broker.url(), "gone-publisher")));
  ASSERT_TRUE(await(publisher.publish_acked("Gone/t", bytes_of("before"))));
  ASSERT_TRUE(seen.wait_for_value("before", short_wait)) << seen.seen().describe();

  // Every attempt to come back is refused until well after the broker's side of the timeout:
  // 300 ms after the drop, noticed at the next liveness check (every 250 ms), plus slack.
  proxy.refuse_new_connections(true);
  const auto cut = Clock::now();
  ASSERT_TRUE(proxy.reset(0));
  ASSERT_TRUE(await(publisher.publish_acked("Gone/t", bytes_of("missed"))));
  ASSERT_TRUE(await(publisher.publish_acked("Gone/t", bytes_of("current"))));
  std::this_thread::sleep_until(cut + milliseconds(300 + 2 * 250 + 700));
  EXPECT_EQ(client.state(), ClientState::recovering) << seen.seen().describe();
  EXPECT_GE(proxy.refused_connections(), 1u) << "the client never tried to reconnect";
  proxy.refuse_new_connections(false);

  ASSERT_TRUE(seen.wait([](const Seen& s) { return !s.reconnects.empty(); }, short_wait))
      << "no new session; state " << to_string(client.state()) << "; " << seen.seen().describe()
      << broker.log_tail();
  ASSERT_TRUE(seen.wait_for_value("current", short_wait)) << seen.seen().describe();
  ASSERT_TRUE(await(publisher.publish_acked("Gone/t", bytes_of("after"))));
  ASSERT_TRUE(seen.wait_for_value("after", short_wait)) << seen.seen().describe();

  Seen got = seen.seen();
  EXPECT_EQ(client.state(), ClientState::connected);
  EXPECT_NE(client.session_id(), first_session) << "a broker-numbered session gets a new number";
  EXPECT_EQ(got.reconnects, std::vector<bool>{true}) << "a new session is a resync";
  EXPECT_FALSE(got.closed.has_value()) << got.describe();
  std::vector<std::pair<std::string, bool>> values;
  for (const auto& u : got.of("Gone/t")) values.emplace_back(u.value, u.resync);
  // The new session resumes the subscription from the sequence the client holds: the
  // broker's history (history.depth, 8 by default) still has the missed update.
  const std::vector<std::pair<std::string, bool>> expected{
      {"before", false}, {"missed", false}, {"current", false}, {"after", false}};
  EXPECT_EQ(values, expected) << "the missed value comes from the broker's history, nothing flagged";
  client.close();
  publisher.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("sessions_resumed"), 0u) << broker.log();
  EXPECT_EQ(broker.counter_total("sessions_closed"), 3u) << "the expired one and the two closes";
}

// With a bounded number of retries the client gives up: closed, with the reason.
TEST(SessionTimeout, a_client_out_of_retries_closes_with_the_reason) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Recorder seen;
  Client client;
  ClientOptions options = session_options(proxy.url(), "few-retries");
  options.retries = 3;
  ASSERT_TRUE(client.connect(options));
  seen.listen(client);
  proxy.refuse_new_connections(true);
  const auto cut = Clock::now();
  ASSERT_TRUE(proxy.reset(0));
  ASSERT_TRUE(seen.wait([](const Seen& s) { return s.closed.has_value(); }, short_wait))
      << "the client did not give up; state " << to_string(client.state()) << "; " << seen.seen().describe();
  RecordProperty("closed_after_ms",
                 static_cast<int>(std::chrono::duration_cast<milliseconds>(Clock::now() - cut).count()));
  EXPECT_EQ(client.state(), ClientState::closed);
  EXPECT_NE(seen.seen().closed->find("no connection after 3 attempt(s)"), std::string::npos)
      << *seen.seen().closed;
  EXPECT_EQ(proxy.refused_connections(), 3u);
  client.close();
}

// ---- resync after an overrun -------------------------------------------------------------------

TEST(SessionRecovery, overrun_recovery_buffer_resyncs_every_topic_to_its_current_value) {
  BrokerProcess broker(broker_config(1, "[session]\nrecovery_bytes = 4096\n"));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  constexpr std::size_t topics = 10, per_topic = 2000;
  auto path = [](std::size_t t) { return "Resync/t" + std::to_string(t); };
  auto value = [](std::size_t t, std::size_t i) {
    std::string v = "t" + std::to_string(t) + "-" + std::to_string(i) + ":";
    v.resize(48, '.');
    return v;
  };
  auto final_value = [](std::size_t t) { return "t" + std::to_string(t) + "-final"; };

  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  for (std::size_t t = 0; t < topics; ++t)
    ASSERT_TRUE(
        await(publisher.publish_acked(path(t), bytes_of("t" + std::to_string(t) + "-initial"))));
  ASSERT_TRUE(subscriber.connect(session_options(proxy.url(), "overrun-subscriber")));
  seen.listen(subscriber);
  ASSERT_TRUE(subscribe_recorded(subscriber, "Resync//", seen));
  ASSERT_TRUE(seen.wait_for_updates(topics, short_wait)) << "current values on subscribe";

  // The subscriber stops reading: hundreds of KiB go into the sockets, far past the broker's
  // 4 KiB recovery buffer, and are lost with the cut.
  ASSERT_TRUE(proxy.stall(0));
  for (std::size_t i = 0; i < per_topic; ++i)
    for (std::size_t t = 0; t < topics; ++t) publisher.publish(path(t), value(t, i));
  for (std::size_t t = 0; t < topics; ++t)
    ASSERT_TRUE(await(publisher.publish_acked(path(t), bytes_of(final_value(t))), long_wait));
  ASSERT_TRUE(proxy.reset(0));

  auto all_current = [&](const Seen& s) {
    for (std::size_t t = 0; t < topics; ++t) {
      auto updates = s.of(path(t));
      if (updates.empty() || updates.back().value != final_value(t)) return false;
    }
    return true;
  };
  ASSERT_TRUE(seen.wait(all_current, long_wait))
      << "not every topic reached its final value; received " << seen.update_count() << "; state "
      << to_string(subscriber.state()) << "; " << seen.seen().describe() << broker.log_tail();

  Seen got = seen.seen();
  EXPECT_EQ(got.disconnects.size(), 1u);
  EXPECT_EQ(got.reconnects, std::vector<bool>{true}) << "on_reconnect(resync = true), once";
  EXPECT_FALSE(got.closed.has_value()) << *got.closed;
  const std::uint64_t last_seq = 1 + per_topic + 1;  // initial, the stream, the final value
  for (std::size_t t = 0; t < topics; ++t) {
    auto updates = got.of(path(t));
    ASSERT_FALSE(updates.empty());
    // Before the cut: a gap-free prefix (snapshot first). Then exactly one resync update, the
    // current value, and nothing after it (nothing was published after it).
    std::size_t resyncs = 0;
    for (std::size_t i = 0; i + 1 < updates.size(); ++i) {
      EXPECT_EQ(updates[i].topic_seq, i + 1) << path(t) << " update #" << i;
      if (updates[i].resync) ++resyncs;
    }
    const SeenUpdate& last = updates.back();
    EXPECT_TRUE(last.resync) << path(t) << ": the update after the gap is flagged resync";
    EXPECT_EQ(resyncs, 0u) << path(t) << ": only the current value is flagged resync";
    EXPECT_EQ(last.topic_seq, last_seq) << path(t);
    EXPECT_EQ(last.value, final_value(t)) << path(t);
    EXPECT_LT(updates.size(), last_seq) << path(t) << ": the stalled updates were not all resent";
  }

  subscriber.close();
  publisher.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("resyncs"), 1u) << broker.log();
  EXPECT_GE(broker.counter_total("sessions_resumed"), 1u) << broker.log();
}

// ---- liveness ---------------------------------------------------------------------------------

TEST(SessionLiveness, broker_pings_detect_a_blackholed_connection_within_two_intervals) {
  BrokerProcess broker(broker_config(1, "[session]\nping_interval_ms = 200\n"));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  Recorder seen;
  Client client;
  ClientOptions options = session_options(proxy.url(), "quiet-client");
  options.ping_interval = std::chrono::seconds(60);  // the client itself never pings here
  ASSERT_TRUE(client.connect(options));
  seen.listen(client);
  ASSERT_TRUE(subscribe_recorded(client, "Quiet/t", seen));

  // A quiet but healthy connection: the client answers the broker's pings, so five intervals
  // pass without a drop.
  std::this_thread::sleep_for(milliseconds(1000));
  EXPECT_TRUE(seen.seen().disconnects.empty()) << seen.seen().disconnects.front();
  EXPECT_FALSE(proxy.wait_for_upstream_end(0, milliseconds(0)))
      << "the broker dropped a healthy quiet connection";

  ASSERT_TRUE(proxy.blackhole(0));
  const auto start = Clock::now();
  // Quiet for one interval, then a ping unanswered for another: the broker ends the connection.
  EXPECT_TRUE(proxy.wait_for_upstream_end(0, short_wait))
      << "the broker did not drop a blackholed connection";
  const auto detected = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  RecordProperty("detected_after_ms", static_cast<int>(detected.count()));
  EXPECT_LT(detected, milliseconds(1500)) << "two intervals are 400 ms";
  // The client cannot tell: nothing, not even the close, came through.
  EXPECT_TRUE(seen.seen().disconnects.empty());

  ASSERT_TRUE(proxy.reset(0));
  client.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("ping_timeouts"), 1u) << broker.log();
}

TEST(SessionLiveness, client_pings_detect_a_blackholed_connection_and_resume_the_session) {
  BrokerProcess broker(broker_config(1, ample_recovery));  // broker pings every 90 s: never here
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  Recorder seen;
  Client client, publisher;
  ClientOptions options = session_options(proxy.url(), "pinging-client");
  options.ping_interval = milliseconds(200);
  ASSERT_TRUE(client.connect(options));
  seen.listen(client);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_recorded(client, "Ping/t", seen));
  ASSERT_TRUE(await(publisher.publish_acked("Ping/t", bytes_of("before"))));
  ASSERT_TRUE(seen.wait_for_value("before", short_wait));

  ASSERT_TRUE(proxy.blackhole(0));
  const auto start = Clock::now();
  ASSERT_TRUE(seen.wait([](const Seen& s) { return !s.disconnects.empty(); }, short_wait))
      << "the client did not notice the blackholed connection; state " << to_string(client.state())
      << "; " << seen.seen().describe() << broker.log_tail();
  const auto detected = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  RecordProperty("detected_after_ms", static_cast<int>(detected.count()));
  EXPECT_LT(detected, milliseconds(1500)) << "two intervals are 400 ms";

  // The broker still holds the old connection; the resume takes the session over from it.
  ASSERT_TRUE(seen.wait([](const Seen& s) { return !s.reconnects.empty(); }, short_wait))
      << "no reconnection; state " << to_string(client.state()) << "; " << seen.seen().describe()
      << broker.log_tail();
  ASSERT_TRUE(await(publisher.publish_acked("Ping/t", bytes_of("after"))));
  ASSERT_TRUE(seen.wait_for_value("after", short_wait));
  Seen got = seen.seen();
  EXPECT_EQ(got.reconnects, std::vector<bool>{false});
  EXPECT_EQ(first_difference(got.of("Ping/t"), {"before", "after"}), "");
  EXPECT_EQ(client.state(), ClientState::connected);

  client.close();
  publisher.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("sessions_resumed"), 1u) << broker.log();
  EXPECT_EQ(broker.counter_total("ping_timeouts"), 0u) << broker.log();
}

// ---- tokens -----------------------------------------------------------------------------------

TEST(SessionToken, wrong_token_is_refused_and_the_real_session_keeps_receiving) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(subscriber.connect(session_options(broker.url(), "owner")));
  seen.listen(subscriber);
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ASSERT_TRUE(subscribe_recorded(subscriber, "Tok/t", seen));
  const std::string id = subscriber.session_id();
  const std::int64_t number = session_number_of(id);
  ASSERT_NE(number, 0) << "session id '" << id << "'";

  {
    RawConnection intruder(broker.port());
    ASSERT_TRUE(intruder.connected());
    Token guess = random_token();
    ConnectAnswer answer = raw_connect(intruder, connect_message("intruder", number, guess));
    EXPECT_FALSE(answer.connected) << "a random token resumed " << answer.session_id;
    EXPECT_EQ(answer.error.code, ErrorCode::authentication_failed) << answer.error.message;
    EXPECT_TRUE(intruder.wait_for_close(short_wait));
  }

  ASSERT_TRUE(await(publisher.publish_acked("Tok/t", bytes_of("still-mine"))));
  ASSERT_TRUE(seen.wait_for_value("still-mine", short_wait));
  Seen got = seen.seen();
  EXPECT_TRUE(got.disconnects.empty()) << "the refused resume disturbed the real connection";
  EXPECT_EQ(subscriber.state(), ClientState::connected);
  EXPECT_EQ(subscriber.session_id(), id);

  // Sessions that do not exist, broker-numbered and client-named.
  for (std::int64_t missing : {number - 1000, std::int64_t{4242}}) {
    RawConnection stranger(broker.port());
    ASSERT_TRUE(stranger.connected());
    Token token = random_token();
    ConnectAnswer answer = raw_connect(stranger, connect_message("stranger", missing, token));
    EXPECT_FALSE(answer.connected) << "session " << missing << " resumed as " << answer.session_id;
    EXPECT_EQ(answer.error.code, ErrorCode::session_not_found)
        << "session " << missing << ": " << answer.error.message;
  }
  subscriber.close();
  publisher.close();
}

TEST(SessionToken, clean_close_ends_the_session_at_once_while_a_dropped_one_can_resume) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  codec::FrameEncoder encoder;

  // Closed with a Close frame: gone at once, its token opens nothing.
  ConnectAnswer closed;
  {
    RawConnection raw(broker.port());
    ASSERT_TRUE(raw.connected());
    closed = raw_connect(raw, connect_message("closing"));
    ASSERT_TRUE(closed.connected) << closed.error.message;
    ASSERT_TRUE(raw.send_bytes(encoder.close("done")));
    EXPECT_TRUE(raw.wait_for_close(short_wait)) << "the broker kept the connection after Close";
  }
  {
    RawConnection raw(broker.port());
    ASSERT_TRUE(raw.connected());
    ConnectAnswer again = raw_connect(
        raw, connect_message("closing", session_number_of(closed.session_id), closed.token));
    EXPECT_FALSE(again.connected) << "a closed session was resumed";
    EXPECT_EQ(again.error.code, ErrorCode::session_not_found) << again.error.message;
  }

  // Dropped without a Close: the same resume succeeds (the broker keeps it for 60 s).
  ConnectAnswer dropped;
  {
    RawConnection raw(broker.port());
    ASSERT_TRUE(raw.connected());
    dropped = raw_connect(raw, connect_message("dropping"));
    ASSERT_TRUE(dropped.connected) << dropped.error.message;
  }
  {
    RawConnection raw(broker.port());
    ASSERT_TRUE(raw.connected());
    ConnectAnswer again = raw_connect(
        raw, connect_message("dropping", session_number_of(dropped.session_id), dropped.token));
    EXPECT_TRUE(again.connected) << again.error.message;
    EXPECT_TRUE(again.resumed);
    EXPECT_EQ(again.session_id, dropped.session_id);
    ASSERT_TRUE(raw.send_bytes(encoder.close("done")));
    EXPECT_TRUE(raw.wait_for_close(short_wait));
  }
  broker.stop();
  EXPECT_EQ(broker.counter_total("sessions_closed"), 2u) << broker.log();
  EXPECT_EQ(broker.counter_total("sessions_resumed"), 1u) << broker.log();
}

// ---- the reconnection strategy ------------------------------------------------------------------

TEST(SessionStrategy, abort_closes_the_session_after_attempts_that_count_up) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  auto proxy = std::make_unique<FaultProxy>(broker.port());
  ASSERT_TRUE(proxy->listening());

  struct Call {
    unsigned attempt;
    std::string reason;
  };
  std::mutex calls_mutex;
  std::vector<Call> calls;
  Recorder seen;
  Client client;
  ClientOptions options = session_options(proxy->url(), "giving-up");
  options.reconnect_strategy = [&](ReconnectControl& control) {
    {
      std::lock_guard lock(calls_mutex);
      calls.push_back({control.attempt(), control.reason()});
    }
    if (control.attempt() < 3)
      control.reconnect(milliseconds(50));
    else
      control.abort();
  };
  ASSERT_TRUE(client.connect(options));
  seen.listen(client);
  ASSERT_TRUE(round_trip(client));

  proxy.reset();  // the connection ends and every attempt finds nobody listening
  ASSERT_TRUE(seen.wait([](const Seen& s) { return s.closed.has_value(); }, short_wait))
      << "abort() did not close the session; state " << to_string(client.state()) << "; "
      << seen.seen().describe() << broker.log_tail();

  Seen got = seen.seen();
  EXPECT_EQ(client.state(), ClientState::closed);
  EXPECT_EQ(got.disconnects.size(), 1u);
  EXPECT_TRUE(got.reconnects.empty());
  std::lock_guard lock(calls_mutex);
  ASSERT_EQ(calls.size(), 3u);
  for (std::size_t i = 0; i < calls.size(); ++i) {
    EXPECT_EQ(calls[i].attempt, i + 1);
    if (i > 0) {
      EXPECT_FALSE(calls[i].reason.empty()) << "why attempt " << i << " failed";
    }
  }
}

// ---- sessions across shards -------------------------------------------------------------------

TEST(SessionHandoff, resume_landing_on_the_other_shard_gets_the_missed_updates) {
  BrokerProcess broker(broker_config(2, ample_recovery));
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  // Named sessions live on the shard their name hashes to; connections are dealt to shards
  // round-robin in accept order. Padding connections steer the subscriber's first connection
  // to its session's shard and its second one to the other shard.
  const std::string name = "anonymous/5";
  const unsigned home = static_cast<unsigned>(XXH3_64bits(name.data(), name.size()) % 2);
  std::size_t accepted = 0;
  std::vector<std::unique_ptr<RawConnection>> padding;
  auto next_lands_on = [&](unsigned shard) {
    while (accepted % 2 != shard) {
      padding.push_back(std::make_unique<RawConnection>(broker.port()));
      ASSERT_TRUE(padding.back()->connected());
      ++accepted;
    }
  };

  Recorder seen;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  ++accepted;
  next_lands_on(home);
  ClientOptions options = session_options(proxy.url(), "named-subscriber");
  options.session_number = 5;
  ASSERT_TRUE(subscriber.connect(options));
  ++accepted;
  seen.listen(subscriber);
  EXPECT_EQ(subscriber.session_id(), name);
  ASSERT_TRUE(subscribe_recorded(subscriber, "Hand/t", seen));

  constexpr std::size_t before = 1000, missed = 5000;
  auto values = numbered("h", before + missed);
  for (std::size_t i = 0; i < before; ++i) publisher.publish("Hand/t", values[i]);
  ASSERT_TRUE(round_trip(publisher));
  ASSERT_TRUE(seen.wait_for_updates(before, long_wait)) << "received " << seen.update_count();

  // Published while the subscriber reads nothing, then lost with the cut.
  ASSERT_TRUE(proxy.stall(0));
  for (std::size_t i = before; i < before + missed; ++i) publisher.publish("Hand/t", values[i]);
  values.push_back("end");
  ASSERT_TRUE(await(publisher.publish_acked("Hand/t", bytes_of("end")), long_wait));
  next_lands_on(1 - home);
  ASSERT_TRUE(proxy.reset(0));

  ASSERT_TRUE(seen.wait_for_value("end", long_wait))
      << "received " << seen.update_count() << " of " << values.size() << "; state "
      << to_string(subscriber.state()) << "; " << seen.seen().describe() << broker.log_tail();
  Seen got = seen.seen();
  EXPECT_EQ(first_difference(got.of("Hand/t"), values), "");
  EXPECT_EQ(got.reconnects, std::vector<bool>{false});
  EXPECT_EQ(subscriber.session_id(), name);
  EXPECT_EQ(proxy.connections(), 2u) << "one reconnection, landing on shard " << 1 - home;

  subscriber.close();
  publisher.close();
  padding.clear();
  broker.stop();
  // Counted where they happen: the handoff on the shard that accepted the resuming
  // connection, the resume on the session's own shard. The first connection needed none.
  auto handoffs = broker.shard_counter("handoffs");
  auto resumed = broker.shard_counter("sessions_resumed");
  EXPECT_EQ(handoffs[1 - home], 1u) << broker.log();
  EXPECT_EQ(handoffs[home], 0u) << broker.log();
  EXPECT_EQ(resumed[home], 1u) << broker.log();
  EXPECT_EQ(resumed[1 - home], 0u) << broker.log();
}

// A client keeps its session frames until the broker says it has them. The broker says so
// with a Received frame at least every 256 frames, never beyond what was sent, and a resumed
// session's Connected tells the same count.
TEST(SessionRecoveryBuffer, the_broker_tells_a_publisher_which_session_frames_it_has) {
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  codec::FrameEncoder encoder;
  codec::FrameDecoder decoder;
  RawConnection raw(broker.port());
  ASSERT_TRUE(raw.connected());
  ConnectAnswer first = raw_connect(raw, connect_message("receipts"));
  ASSERT_TRUE(first.connected) << first.error.message;

  constexpr std::uint64_t publishes = 1000;
  std::vector<std::byte> stream;
  for (std::uint64_t i = 0; i < publishes; ++i) {
    const std::string value = std::to_string(i);
    std::vector<std::byte> frame(codec::publish_frame_bytes(12, value.size()));
    codec::write_publish(frame.data(), 0, "receipts/one", std::nullopt,
                         std::as_bytes(std::span(value)));
    stream.insert(stream.end(), frame.begin(), frame.end());
  }
  // In pieces, so that the broker takes them over several receives.
  for (std::size_t at = 0; at < stream.size(); at += 4000)
    ASSERT_TRUE(raw.send_bytes(std::span(stream).subspan(at, std::min<std::size_t>(4000, stream.size() - at))));

  std::vector<std::uint64_t> receipts;
  const auto deadline = Clock::now() + short_wait;
  while (Clock::now() < deadline && (receipts.empty() || receipts.back() + 256 <= publishes)) {
    auto frame = raw.read_frame(milliseconds(200));
    if (!frame) continue;
    auto decoded = decoder.decode(*frame);
    ASSERT_TRUE(decoded.ok());
    if (auto* r = std::get_if<codec::ReceivedMsg>(&decoded.message)) receipts.push_back(r->last_received);
  }
  ASSERT_FALSE(receipts.empty()) << "no Received frame after " << publishes << " publishes";
  for (std::size_t i = 0; i < receipts.size(); ++i) {
    EXPECT_LE(receipts[i], publishes) << "a receipt for frames never sent";
    EXPECT_GE(receipts[i], (i + 1) * 256) << "receipts come at most every 256 frames";
  }
  EXPECT_GT(receipts.back() + 256, publishes) << "the last frames went unreported";
  raw.close();

  RawConnection again(broker.port());
  ASSERT_TRUE(again.connected());
  ASSERT_TRUE(again.send_bytes(encoder.connect(
      connect_message("receipts", session_number_of(first.session_id), first.token))));
  std::optional<std::uint64_t> last_received;
  for (int frames = 0; frames < 16 && !last_received; ++frames) {
    auto frame = again.read_frame(short_wait);
    ASSERT_TRUE(frame.has_value()) << "no Connected on resumption";
    auto decoded = decoder.decode(*frame);
    if (auto* c = std::get_if<codec::ConnectedMsg>(&decoded.message)) {
      EXPECT_TRUE(c->resumed);
      last_received = c->last_received;
    }
  }
  EXPECT_EQ(last_received, publishes) << "the broker had taken every publish";
}

}  // namespace
}  // namespace brook::test
