// Integration: per-principal permissions (auth.permissions_file) on a brookd with a credentials
// file and two shards. alice runs the odds feed and the bet desk; bob is a customer (a group
// member); anonymous connections see public odds only. Each operation is tried allowed and
// denied: a denied call gets permission_denied naming the operation and the path and has no
// other effect, and a wildcard subscription delivers only the topics its principal may read,
// also those created after it. A reload on SIGHUP takes a permission away at once; a file
// that does not parse leaves the rules in force. Every wait is bounded.
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "credentials_file.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

constexpr auto wait_time = std::chrono::seconds(15);

constexpr const char* permissions_toml = R"(
[groups]
customers = ["bob"]

[principal.alice]
publish = ["Odds//"]
subscribe = ["//"]
handle = ["Bets/place"]

[group.customers]
subscribe = ["Odds//"]
deny_subscribe = ["Odds/internal//"]
request = ["Bets/place"]

[anonymous]
subscribe = ["Odds/public//"]
)";

// The errors a client's listener got, for waiting on them from the test thread.
class ErrorWatch {
 public:
  void listen(Client& client) {
    client.on_error([this](const Status& s) {
      std::lock_guard lock(mutex_);
      errors_.push_back(s);
    });
  }
  std::vector<Status> errors() {
    std::lock_guard lock(mutex_);
    return errors_;
  }

 private:
  std::mutex mutex_;
  std::vector<Status> errors_;
};

Status acked(Client& client, const std::string& path, const std::string& value) {
  auto f = client.publish_acked(path, std::as_bytes(std::span(std::string_view(value))));
  if (f.wait_for(wait_time) != std::future_status::ready) return Status{ErrorCode::internal, "no answer"};
  return f.get();
}

class Permissions : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = make_temp_dir("permissions");
    std::ofstream(dir_ + "/permissions.toml") << permissions_toml;
    BrokerConfig config = with_shards(2);
    config.config_toml = "[auth]\ncredentials_file = \"" + credentials_.path() + "\"\npermissions_file = \"" + dir_ +
                         "/permissions.toml\"\nallow_anonymous = true\n";
    broker_ = std::make_unique<BrokerProcess>(config);
  }
  void TearDown() override {
    broker_.reset();
    remove_temp_dir(dir_);
  }
  Status connect(Client& client, const std::string& principal, const std::string& password) {
    return client.connect(login(broker_->url(), principal, password));
  }

  CredentialsFile credentials_;
  std::string dir_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(Permissions, a_publish_is_allowed_or_refused_with_the_operation_and_the_path) {
  BROOK_ASSERT_STARTED(*broker_);
  Client alice, bob;
  ASSERT_TRUE(connect(alice, "alice", alice_password));
  ASSERT_TRUE(connect(bob, "bob", bob_password));
  ErrorWatch bob_errors;
  bob_errors.listen(bob);

  EXPECT_TRUE(acked(alice, "Odds/nfl/kc-buf", "1.91"));
  const Status denied = acked(bob, "Odds/nfl/kc-buf", "9.99");
  EXPECT_EQ(denied.code, ErrorCode::permission_denied);
  EXPECT_NE(denied.message.find("publish"), std::string::npos) << denied.message;
  EXPECT_NE(denied.message.find("Odds/nfl/kc-buf"), std::string::npos) << denied.message;
  // Fire and forget: the refusal reaches the error listener.
  ASSERT_TRUE(bob.publish("Odds/nfl/kc-buf", "9.98"));
  ASSERT_TRUE(eventually([&] { return !bob_errors.errors().empty(); }, wait_time));
  EXPECT_EQ(bob_errors.errors().front().code, ErrorCode::permission_denied);
  // Not even alice may publish outside Odds//, nor create a topic there.
  EXPECT_EQ(acked(alice, "Bets/ledger", "x").code, ErrorCode::permission_denied);
  auto created = alice.create_topic("Bets/ledger", TopicType::string);
  ASSERT_EQ(created.wait_for(wait_time), std::future_status::ready);
  EXPECT_EQ(created.get().code, ErrorCode::permission_denied);

  // The refused publishes changed nothing: the value is alice's, and bob's session goes on.
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(bob, "Odds/nfl/kc-buf", log));
  ASSERT_TRUE(log.wait_for(1, wait_time));
  EXPECT_EQ(log.entries().front().value, "1.91");
  EXPECT_TRUE(bob.is_connected());
}

TEST_F(Permissions, a_wildcard_delivers_only_the_topics_the_principal_may_read_also_those_created_later) {
  BROOK_ASSERT_STARTED(*broker_);
  Client alice, bob, anonymous;
  ASSERT_TRUE(connect(alice, "alice", alice_password));
  ASSERT_TRUE(connect(bob, "bob", bob_password));
  ASSERT_TRUE(connect(anonymous, "", ""));
  ASSERT_TRUE(acked(alice, "Odds/nfl/kc-buf", "1.91"));
  ASSERT_TRUE(acked(alice, "Odds/internal/margin", "0.05"));
  ASSERT_TRUE(acked(alice, "Odds/public/headline", "KC 1.91"));

  UpdateLog bob_log, anonymous_log, alice_log;
  ASSERT_TRUE(subscribe_and_wait(bob, "Odds//", bob_log));
  ASSERT_TRUE(subscribe_and_wait(anonymous, "Odds//", anonymous_log));
  ASSERT_TRUE(subscribe_and_wait(alice, "Odds//", alice_log));
  // Topics made after the subscriptions, each followed by one every reader may see.
  ASSERT_TRUE(acked(alice, "Odds/internal/liability", "120000"));
  ASSERT_TRUE(acked(alice, "Odds/nba/lal-bos", "2.05"));
  ASSERT_TRUE(acked(alice, "Odds/public/last", "end"));

  auto paths = [](UpdateLog& log) {
    std::vector<std::string> seen;
    for (const auto& e : log.entries()) seen.push_back(e.path);
    std::sort(seen.begin(), seen.end());
    return seen;
  };
  auto has = [](UpdateLog& log, const std::string& path) {
    for (const auto& e : log.entries())
      if (e.path == path) return true;
    return false;
  };
  ASSERT_TRUE(eventually([&] { return has(alice_log, "Odds/public/last") && has(bob_log, "Odds/public/last") &&
                                      has(anonymous_log, "Odds/public/last"); },
                         wait_time));
  // Every delivery of the same shard's topics is in order: the last one came after the others.
  EXPECT_EQ(paths(alice_log), (std::vector<std::string>{"Odds/internal/liability", "Odds/internal/margin",
                                                         "Odds/nba/lal-bos", "Odds/nfl/kc-buf",
                                                         "Odds/public/headline", "Odds/public/last"}));
  EXPECT_EQ(paths(bob_log), (std::vector<std::string>{"Odds/nba/lal-bos", "Odds/nfl/kc-buf", "Odds/public/headline",
                                                       "Odds/public/last"}));
  EXPECT_EQ(paths(anonymous_log), (std::vector<std::string>{"Odds/public/headline", "Odds/public/last"}));
}

TEST_F(Permissions, a_subscription_outside_the_rules_is_refused) {
  BROOK_ASSERT_STARTED(*broker_);
  Client bob, anonymous;
  ASSERT_TRUE(connect(bob, "bob", bob_password));
  ASSERT_TRUE(connect(anonymous, "", ""));
  UpdateLog log;
  for (const char* selector : {"Bets//", "Odds/internal//", "Odds/internal/margin"}) {
    const Status s = subscribe_and_wait(bob, selector, log);
    EXPECT_EQ(s.code, ErrorCode::permission_denied) << selector << ": " << s.message;
    EXPECT_NE(s.message.find("subscribe"), std::string::npos) << s.message;
    EXPECT_NE(s.message.find(selector), std::string::npos) << s.message;
  }
  EXPECT_EQ(subscribe_and_wait(anonymous, "Odds/nfl//", log).code, ErrorCode::permission_denied);
  EXPECT_TRUE(subscribe_and_wait(anonymous, "//", log)) << "overlaps Odds/public//: accepted, filtered per topic";
  EXPECT_TRUE(bob.is_connected());
}

TEST_F(Permissions, requests_and_handlers_are_checked_per_endpoint) {
  BROOK_ASSERT_STARTED(*broker_);
  Client alice, bob, anonymous;
  ASSERT_TRUE(connect(alice, "alice", alice_password));
  ASSERT_TRUE(connect(bob, "bob", bob_password));
  ASSERT_TRUE(connect(anonymous, "", ""));
  auto handler = [](const Request&, Responder responder) { responder.respond("accepted"); };
  auto added = alice.add_request_handler("Bets/place", handler);
  ASSERT_EQ(added.wait_for(wait_time), std::future_status::ready);
  ASSERT_TRUE(added.get());
  auto stolen = bob.add_request_handler("Bets/place", handler);
  ASSERT_EQ(stolen.wait_for(wait_time), std::future_status::ready);
  const Status refused = stolen.get();
  EXPECT_EQ(refused.code, ErrorCode::permission_denied);
  EXPECT_NE(refused.message.find("handle"), std::string::npos) << refused.message;

  auto placed = bob.send_request("Bets/place", "KC 10.00 @ 1.91");
  ASSERT_EQ(placed.wait_for(wait_time), std::future_status::ready);
  const Response answer = placed.get();
  ASSERT_TRUE(answer.status) << answer.status.message;
  EXPECT_EQ(answer.text(), "accepted");

  auto anonymous_bet = anonymous.send_request("Bets/place", "KC 10.00 @ 1.91");
  ASSERT_EQ(anonymous_bet.wait_for(wait_time), std::future_status::ready);
  const Response no = anonymous_bet.get();
  EXPECT_EQ(no.status.code, ErrorCode::permission_denied);
  EXPECT_NE(no.status.message.find("request"), std::string::npos) << no.status.message;
  EXPECT_NE(no.status.message.find("Bets/place"), std::string::npos) << no.status.message;
}

TEST_F(Permissions, a_reload_on_sighup_takes_a_permission_away_at_once_and_a_bad_file_changes_nothing) {
  BROOK_ASSERT_STARTED(*broker_);
  Client alice, bob;
  ASSERT_TRUE(connect(alice, "alice", alice_password));
  ASSERT_TRUE(connect(bob, "bob", bob_password));
  auto added = alice.add_request_handler("Bets/place", [](const Request&, Responder r) { r.respond("accepted"); });
  ASSERT_EQ(added.wait_for(wait_time), std::future_status::ready);
  ASSERT_TRUE(added.get());
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(bob, "Odds//", log));
  ASSERT_TRUE(acked(alice, "Odds/nba/lal-bos", "2.05"));
  ASSERT_TRUE(acked(alice, "Odds/public/last", "before"));
  ASSERT_TRUE(log.wait_for(2, wait_time));
  auto request_code = [&] {
    auto f = bob.send_request("Bets/place", "LAL 5.00 @ 2.05");
    return f.wait_for(wait_time) == std::future_status::ready ? f.get().status.code : ErrorCode::internal;
  };
  ASSERT_EQ(request_code(), ErrorCode::none);

  // A file that does not parse: brookd says so and keeps the rules it has.
  std::ofstream(dir_ + "/permissions.toml") << "[group.customers\n";
  ASSERT_EQ(::kill(broker_->pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return broker_->log_tail().find("the rules in force stay") != std::string::npos; },
                         wait_time))
      << broker_->log_tail();
  EXPECT_EQ(request_code(), ErrorCode::none);

  // Customers lose the NBA odds and the bet desk.
  std::string narrower = permissions_toml;
  narrower.replace(narrower.find("deny_subscribe = [\"Odds/internal//\"]"),
                   std::string_view("deny_subscribe = [\"Odds/internal//\"]").size(),
                   "deny_subscribe = [\"Odds/internal//\", \"Odds/nba//\"]");
  narrower.replace(narrower.find("request = [\"Bets/place\"]"), std::string_view("request = [\"Bets/place\"]").size(),
                   "request = []");
  std::ofstream(dir_ + "/permissions.toml") << narrower;
  ASSERT_EQ(::kill(broker_->pid(), SIGHUP), 0);
  ASSERT_TRUE(eventually([&] { return request_code() == ErrorCode::permission_denied; }, wait_time))
      << broker_->log_tail();
  // Every shard took the new rules by now (a request is refused on bob's, the topic is bound
  // on bob's): the NBA price published next never reaches him, the public one does.
  ASSERT_TRUE(acked(alice, "Odds/nba/lal-bos", "2.10"));
  ASSERT_TRUE(acked(alice, "Odds/public/last", "after"));
  ASSERT_TRUE(log.wait_until(
      [](const std::vector<Received>& got) {
        return std::any_of(got.begin(), got.end(), [](const Received& r) { return r.value == "after"; });
      },
      wait_time));
  for (const auto& r : log.entries()) EXPECT_NE(r.value, "2.10") << "a revoked topic was still delivered";
  EXPECT_TRUE(bob.is_connected());
}

}  // namespace
}  // namespace brook::test
