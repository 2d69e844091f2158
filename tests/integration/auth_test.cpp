// Integration: authentication against a brookd with a credentials file. Principals are checked
// (argon2id, at the minimal cost here so that a verification takes milliseconds) before a
// session opens; a refusal is an Error `authentication_failed` and a closed connection, and
// touches no other session. A session the client names (`principal/N`) is resumed from another
// Client with the same principal's credentials and keeps its subscriptions and the updates
// published while it was away; a wrong password cannot take it over.
// Every wait is bounded.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "credentials_file.hpp"
#include "fault_proxy.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using std::chrono::milliseconds;

// Large enough for a sanitizer build on a busy two-core machine; only reached on failure.
constexpr auto long_wait = std::chrono::seconds(15);
constexpr auto short_wait = std::chrono::seconds(10);

// The first close reason a client reports, for waiting on it from the test thread.
class CloseWatch {
 public:
  void listen(Client& client) {
    client.on_close([state = state_](const std::string& reason) {
      if (!state->given.exchange(true)) state->reason.set_value(reason);
    });
  }
  bool wait(milliseconds timeout) {
    return future_.wait_for(timeout) == std::future_status::ready;
  }

 private:
  struct State {
    std::promise<std::string> reason;
    std::atomic<bool> given{false};
  };
  std::shared_ptr<State> state_ = std::make_shared<State>();
  std::future<std::string> future_ = state_->reason.get_future();
};

// Values "PREFIX<topic_seq>": the value of update `seq` of a topic published only by the test.
std::string value_of(const std::string& prefix, std::uint64_t seq) {
  return prefix + std::to_string(seq);
}

// Empty when `got` is a gap-free run of topic sequence numbers ending at `last`, each carrying
// value_of(prefix, seq); otherwise the first difference.
std::string gap_free_run_to(const std::vector<Received>& got, const std::string& prefix,
                            std::uint64_t last) {
  if (got.empty()) return "no updates";
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (i > 0 && got[i].topic_seq != got[i - 1].topic_seq + 1)
      return "update #" + std::to_string(i) + " has seq " + std::to_string(got[i].topic_seq) +
             " after " + std::to_string(got[i - 1].topic_seq);
    if (got[i].value != value_of(prefix, got[i].topic_seq))
      return "update #" + std::to_string(i) + " (seq " + std::to_string(got[i].topic_seq) +
             ") has value '" + got[i].value + "'";
  }
  if (got.back().topic_seq != last)
    return "the last update has seq " + std::to_string(got.back().topic_seq) + ", expected " +
           std::to_string(last);
  return {};
}

// `log`'s handler, also counting the updates flagged Update::resync (UpdateLog drops the flag).
UpdateHandler counting_resyncs(UpdateLog& log, std::atomic<int>& resyncs) {
  return [handler = log.handler(), &resyncs](const Update& u) {
    if (u.resync) ++resyncs;
    handler(u);
  };
}

// Expects `options` to be refused with authentication_failed and the client to end closed.
void expect_refused(const ClientOptions& options, const std::string& who) {
  Client client;
  Status status = client.connect(options);
  EXPECT_FALSE(status) << who << " was let in as " << client.session_id();
  EXPECT_EQ(brook::to_string(status.code), brook::to_string(ErrorCode::authentication_failed))
      << who << ": '" << status.message << "'";
  EXPECT_EQ(client.state(), ClientState::closed) << who;
}

// ---- who may connect -----------------------------------------------------------------------

TEST(Auth, right_password_connects_while_wrong_unknown_and_anonymous_are_refused) {
  CredentialsFile credentials;
  BrokerProcess broker(auth_broker(credentials, /*allow_anonymous=*/false));
  BROOK_ASSERT_STARTED(broker);

  UpdateLog log;
  Client alice, bob;
  ASSERT_TRUE(alice.connect(login(broker.url(), "alice", alice_password)));
  EXPECT_EQ(alice.session_id().rfind("alice/", 0), 0u) << alice.session_id();
  ASSERT_TRUE(bob.connect(login(broker.url(), "bob", bob_password)));
  EXPECT_EQ(bob.session_id().rfind("bob/", 0), 0u) << bob.session_id();
  ASSERT_TRUE(subscribe_and_wait(alice, "Auth/a", log));
  ASSERT_TRUE(await(bob.publish_acked("Auth/a", bytes_of("a1"))));
  ASSERT_TRUE(log.wait_for(1, short_wait));
  const std::string alice_session = alice.session_id();

  expect_refused(login(broker.url(), "alice", "not alice's secret"), "alice, wrong password");
  expect_refused(login(broker.url(), "alice", bob_password), "alice with bob's password");
  expect_refused(login(broker.url(), "alice", ""), "alice, no password");
  expect_refused(login(broker.url(), "mallory", alice_password), "unknown principal");
  expect_refused(login(broker.url(), "", ""), "anonymous");
  expect_refused(login(broker.url(), "", alice_password), "anonymous with a password");

  // The sessions that were let in never noticed.
  ASSERT_TRUE(await(bob.publish_acked("Auth/a", bytes_of("a2"))));
  ASSERT_TRUE(log.wait_for(2, short_wait)) << broker.log_tail();
  auto got = log.entries();
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].value, "a1");
  EXPECT_EQ(got[1].value, "a2");
  EXPECT_EQ(got[1].topic_seq, 2u);
  EXPECT_EQ(alice.state(), ClientState::connected);
  EXPECT_EQ(alice.session_id(), alice_session);
  EXPECT_TRUE(round_trip(bob));

  alice.close();
  bob.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("sessions_closed"), 2u) << broker.log();
}

TEST(Auth, anonymous_sessions_are_let_in_by_default_beside_checked_principals) {
  CredentialsFile credentials;
  BrokerProcess broker(auth_broker(credentials, /*allow_anonymous=*/true));
  BROOK_ASSERT_STARTED(broker);

  Client anonymous, alice;
  ASSERT_TRUE(anonymous.connect(login(broker.url(), "", "")));
  EXPECT_EQ(anonymous.session_id().rfind("anonymous/", 0), 0u) << anonymous.session_id();
  ASSERT_TRUE(alice.connect(login(broker.url(), "alice", alice_password)));
  // A principal that is named is still checked.
  expect_refused(login(broker.url(), "alice", "guess"), "alice, wrong password");
  expect_refused(login(broker.url(), "mallory", "guess"), "unknown principal");
  EXPECT_TRUE(round_trip(anonymous));
  EXPECT_TRUE(round_trip(alice));
}

// ---- named sessions resumed with credentials --------------------------------------------------

// A named session alice/5 whose first client reaches the broker through a proxy and gives up
// at the first drop (its strategy aborts, so it never resumes the session itself), while the
// broker keeps the session for the 30 s the client asked for.
class AuthNamedSession : public ::testing::Test {
 protected:
  void SetUp() override {
    BROOK_ASSERT_STARTED(broker_);
    proxy_ = std::make_unique<FaultProxy>(broker_.port());
    ASSERT_TRUE(proxy_->listening());
    ASSERT_TRUE(bob_.connect(login(broker_.url(), "bob", bob_password)));
  }

  // Connects `client` as alice/5 through the proxy, subscribed to `selector` into `log`.
  void connect_first(Client& client, UpdateLog& log, CloseWatch& closed,
                     const std::string& selector) {
    ClientOptions options = login(proxy_->url(), "alice", alice_password, 5);
    options.reconnect_strategy = [](ReconnectControl& control) { control.abort(); };
    ASSERT_TRUE(client.connect(options));
    closed.listen(client);
    EXPECT_EQ(client.session_id(), "alice/5");
    ASSERT_TRUE(subscribe_and_wait(client, selector, log));
  }

  // Publishes value_of(prefix, seq) for seq in [first, last], the last one acknowledged.
  void publish_range(const std::string& path, const std::string& prefix, std::uint64_t first,
                     std::uint64_t last) {
    for (std::uint64_t seq = first; seq < last; ++seq) bob_.publish(path, value_of(prefix, seq));
    ASSERT_TRUE(await(bob_.publish_acked(path, bytes_of(value_of(prefix, last))), long_wait));
  }

  CredentialsFile credentials_;
  BrokerProcess broker_{auth_broker(credentials_, /*allow_anonymous=*/false)};
  std::unique_ptr<FaultProxy> proxy_;
  Client bob_;  // publishes
};

TEST_F(AuthNamedSession, second_client_with_the_credentials_resumes_it_with_the_missed_updates) {
  constexpr std::uint64_t before = 50, total = 550;
  UpdateLog first_log;
  CloseWatch first_closed;
  Client first;
  ASSERT_TRUE(await(bob_.publish_acked("Auth/n", bytes_of(value_of("n", 1)))));
  ASSERT_NO_FATAL_FAILURE(connect_first(first, first_log, first_closed, "Auth/n"));
  ASSERT_NO_FATAL_FAILURE(publish_range("Auth/n", "n", 2, before));
  ASSERT_TRUE(first_log.wait_until(
      [&](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq == before; },
      long_wait))
      << "the first client got " << first_log.size() << " updates" << broker_.log_tail();
  EXPECT_EQ(gap_free_run_to(first_log.entries(), "n", before), "");

  // The first client is gone for good; the session stays on the broker.
  ASSERT_TRUE(proxy_->reset(0));
  ASSERT_TRUE(first_closed.wait(short_wait)) << "state " << to_string(first.state());
  ASSERT_NO_FATAL_FAILURE(publish_range("Auth/n", "n", before + 1, total));

  // The handler is in place before the broker replays anything: subscribe() before connect()
  // queues the subscription ahead of every frame the client reads. The broker already has the
  // selector; subscribing again binds nothing twice.
  UpdateLog second_log;
  std::atomic<int> resyncs{0};
  Client second;
  second.subscribe("Auth/n", counting_resyncs(second_log, resyncs));
  ASSERT_TRUE(second.connect(login(broker_.url(), "alice", alice_password, 5)));
  EXPECT_EQ(second.session_id(), "alice/5");
  ASSERT_TRUE(second_log.wait_until(
      [&](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq >= total; },
      long_wait))
      << "the resumed session got " << second_log.size() << " updates, last seq "
      << (second_log.size() ? second_log.entries().back().topic_seq : 0) << broker_.log_tail();

  auto got = second_log.entries();
  EXPECT_EQ(gap_free_run_to(got, "n", total), "");
  EXPECT_LE(got.front().topic_seq, before + 1) << "the updates published while away were not all kept";
  EXPECT_EQ(resyncs.load(), 0) << "the missed updates were replaced by a resync";
  RecordProperty("replayed_from_seq", static_cast<int>(got.front().topic_seq));

  // The subscription carries on live.
  ASSERT_TRUE(await(bob_.publish_acked("Auth/n", bytes_of(value_of("n", total + 1)))));
  ASSERT_TRUE(second_log.wait_until(
      [&](const std::vector<Received>& e) { return e.back().topic_seq == total + 1; }, short_wait));
  EXPECT_EQ(gap_free_run_to(second_log.entries(), "n", total + 1), "");
  EXPECT_EQ(first_log.entries().back().topic_seq, before) << "the first client got updates after it left";

  second.close();
  bob_.close();
  broker_.stop();
  EXPECT_EQ(broker_.counter_total("sessions_resumed"), 1u) << broker_.log();
}

TEST_F(AuthNamedSession, wrong_password_cannot_take_it_over_present_or_away) {
  constexpr std::uint64_t before = 20, total = 220;
  UpdateLog first_log;
  CloseWatch first_closed;
  Client first;
  std::atomic<int> first_disconnects{0};
  ASSERT_TRUE(await(bob_.publish_acked("Auth/c", bytes_of(value_of("c", 1)))));
  ASSERT_NO_FATAL_FAILURE(connect_first(first, first_log, first_closed, "Auth/c"));
  first.on_disconnect([&](const std::string&) { ++first_disconnects; });

  // While its client is connected: refused, and the client is not disturbed.
  expect_refused(login(broker_.url(), "alice", "not alice's secret", 5), "alice/5, wrong password");
  expect_refused(login(broker_.url(), "alice", bob_password, 5), "alice/5, bob's password");
  ASSERT_NO_FATAL_FAILURE(publish_range("Auth/c", "c", 2, before));
  ASSERT_TRUE(first_log.wait_until(
      [&](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq == before; },
      long_wait))
      << "the first client got " << first_log.size() << " updates" << broker_.log_tail();
  EXPECT_EQ(gap_free_run_to(first_log.entries(), "c", before), "");
  EXPECT_EQ(first.state(), ClientState::connected);
  EXPECT_EQ(first.session_id(), "alice/5");
  EXPECT_EQ(first_disconnects.load(), 0);

  // While it is away: refused, and the session keeps everything for the rightful owner.
  ASSERT_TRUE(proxy_->reset(0));
  ASSERT_TRUE(first_closed.wait(short_wait)) << "state " << to_string(first.state());
  ASSERT_NO_FATAL_FAILURE(publish_range("Auth/c", "c", before + 1, total));
  {
    UpdateLog intruder_log;
    Client intruder;
    intruder.subscribe("Auth/c", intruder_log.handler());
    Status status = intruder.connect(login(broker_.url(), "alice", "guess", 5));
    EXPECT_FALSE(status) << "a wrong password resumed " << intruder.session_id();
    EXPECT_EQ(brook::to_string(status.code), brook::to_string(ErrorCode::authentication_failed))
        << "'" << status.message << "'";
    EXPECT_EQ(intruder_log.size(), 0u) << "the intruder was sent the session's updates";
  }
  // bob may open his own bob/5, which is another session.
  {
    UpdateLog bob5_log;
    Client bob5;
    bob5.subscribe("Auth/c", bob5_log.handler());
    ASSERT_TRUE(bob5.connect(login(broker_.url(), "bob", bob_password, 5)));
    EXPECT_EQ(bob5.session_id(), "bob/5");
    ASSERT_TRUE(bob5_log.wait_for(1, short_wait));
    auto got = bob5_log.entries();
    EXPECT_EQ(got.size(), 1u) << "a new session gets the current value only";
    EXPECT_EQ(got.front().topic_seq, total);
  }

  UpdateLog owner_log;
  Client owner;
  owner.subscribe("Auth/c", owner_log.handler());
  ASSERT_TRUE(owner.connect(login(broker_.url(), "alice", alice_password, 5)));
  EXPECT_EQ(owner.session_id(), "alice/5");
  ASSERT_TRUE(owner_log.wait_until(
      [&](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq >= total; },
      long_wait))
      << "the resumed session got " << owner_log.size() << " updates" << broker_.log_tail();
  auto got = owner_log.entries();
  EXPECT_EQ(gap_free_run_to(got, "c", total), "");
  EXPECT_LE(got.front().topic_seq, before + 1);

  owner.close();
  bob_.close();
  broker_.stop();
  EXPECT_EQ(broker_.counter_total("sessions_resumed"), 1u) << broker_.log();
}

}  // namespace
}  // namespace brook::test
