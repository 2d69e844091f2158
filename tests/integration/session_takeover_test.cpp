// A named session is resumed only with a proof: its token, or the principal's credentials
// checked against a credentials file. A name alone (over the CLI or the raw wire), made-up
// credentials or a made-up token are refused, and the session's own client keeps its
// connection and its updates. A verified new login takes the session over, and the client it
// replaces is told why and ends instead of fighting back.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <mutex>
#include <string>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "credentials_file.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

constexpr auto wait = std::chrono::seconds(10);
constexpr std::int64_t victim_session = 7;

// alice/7, subscribed to Takeover/t, recording what it receives and whether it was cut off.
struct Victim {
  UpdateLog log;
  std::atomic<int> disconnects{0};
  std::mutex mutex;
  std::string close_reason;
  std::promise<std::string> closed;
  Client client;

  Status start(ClientOptions options) {
    options.session_number = victim_session;
    client.on_disconnect([this](const std::string&) { ++disconnects; });
    client.on_close([this](const std::string& reason) {
      std::lock_guard lock(mutex);
      close_reason = reason;
      closed.set_value(reason);
    });
    if (Status s = client.connect(options); !s) return s;
    return subscribe_and_wait(client, "Takeover/t", log);
  }
};

// Publishes `value` and waits until the victim has it: its session is still its own.
void expect_victim_still_receives(Victim& victim, Client& publisher, const std::string& value) {
  auto verdict = publisher.publish_acked("Takeover/t", std::as_bytes(std::span(value.data(), value.size())));
  ASSERT_EQ(verdict.wait_for(wait), std::future_status::ready);
  ASSERT_TRUE(verdict.get());
  EXPECT_TRUE(victim.log.wait_until(
      [&](const std::vector<Received>& entries) { return !entries.empty() && entries.back().value == value; },
      wait))
      << "the victim stopped receiving after " << value;
  EXPECT_EQ(victim.disconnects.load(), 0) << "the victim's connection was cut";
  EXPECT_EQ(victim.client.state(), ClientState::connected);
}

ErrorReport raw_connect_refusal(const BrokerProcess& broker, std::string_view principal,
                                std::string_view credentials, std::span<const std::byte> token = {}) {
  RawConnection raw(broker.port());
  EXPECT_TRUE(raw.connected());
  codec::FrameEncoder encoder;
  codec::ConnectMsg m;
  m.client_name = "thief";
  m.principal = principal;
  m.credentials = std::as_bytes(std::span(credentials.data(), credentials.size()));
  m.session_number = victim_session;
  m.token = token;
  EXPECT_TRUE(raw.send_bytes(encoder.connect(m)));
  auto error = raw.read_until_error(wait);
  if (!error) return {ErrorCode::none, 0, "no Error frame: the Connect was accepted"};
  EXPECT_TRUE(raw.wait_for_close(wait)) << "the refused connection stayed open";
  return *error;
}

TEST(SessionTakeover, without_a_credentials_file_a_name_alone_never_takes_a_session) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  Victim victim;
  ClientOptions options;
  options.url = broker.url();
  options.principal = "alice";
  ASSERT_TRUE(victim.start(options));
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  expect_victim_still_receives(victim, publisher, "before");

  // The CLI, naming the session: refused (exit 3), saying what would prove it.
  auto cli = run_cli({"sub", "--url", broker.url(), "--principal", "alice", "--session",
                      std::to_string(victim_session), "--count", "1", "--timeout", "5", "Takeover/t"});
  EXPECT_EQ(cli.exit_code(), 3) << cli.describe();
  EXPECT_NE(cli.err.find("resume it with its token"), std::string::npos) << cli.describe();
  EXPECT_EQ(cli.out, "") << "the thief printed the victim's stream";
  expect_victim_still_receives(victim, publisher, "after the CLI");

  // The raw wire: made-up credentials, then a made-up token.
  auto by_name = raw_connect_refusal(broker, "alice", "made-up");
  EXPECT_EQ(by_name.code, ErrorCode::authentication_failed) << by_name.message;
  EXPECT_NE(by_name.message.find("a principal's name proves nothing"), std::string::npos) << by_name.message;
  std::array<std::byte, codec::session_token_bytes> guess{};
  guess.fill(std::byte{0x5a});
  auto by_token = raw_connect_refusal(broker, "alice", "", guess);
  EXPECT_EQ(by_token.code, ErrorCode::authentication_failed) << by_token.message;
  EXPECT_NE(by_token.message.find("wrong token"), std::string::npos) << by_token.message;
  expect_victim_still_receives(victim, publisher, "after the raw attempts");
}

TEST(SessionTakeover, with_a_credentials_file_only_the_principals_password_takes_a_session_and_the_victim_is_told) {
  CredentialsFile credentials;
  BrokerProcess broker(auth_broker(credentials, /*allow_anonymous=*/true));
  BROOK_ASSERT_STARTED(broker);
  Victim victim;
  ASSERT_TRUE(victim.start(login(broker.url(), "alice", alice_password)));
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "publisher"));
  expect_victim_still_receives(victim, publisher, "before");

  // Wrong passwords, over the CLI and the raw wire; another principal's password.
  const std::string dir = make_temp_dir("takeover");
  ASSERT_FALSE(dir.empty());
  std::ofstream(dir + "/wrong") << "not alice's secret\n";
  auto cli = run_cli({"sub", "--url", broker.url(), "--principal", "alice", "--password-file",
                      dir + "/wrong", "--session", std::to_string(victim_session), "--count", "1",
                      "--timeout", "5", "Takeover/t"});
  EXPECT_EQ(cli.exit_code(), 3) << cli.describe();
  EXPECT_EQ(cli.out, "");
  auto wrong = raw_connect_refusal(broker, "alice", "guess");
  EXPECT_EQ(wrong.code, ErrorCode::authentication_failed) << wrong.message;
  auto other = raw_connect_refusal(broker, "alice", bob_password);
  EXPECT_EQ(other.code, ErrorCode::authentication_failed) << other.message;
  expect_victim_still_receives(victim, publisher, "after the wrong passwords");
  remove_temp_dir(dir);

  // alice logging in again with her password takes the session over: the old client hears
  // why and ends; the new one carries the session on.
  UpdateLog taken;
  Client successor;
  ASSERT_TRUE(successor.connect(login(broker.url(), "alice", alice_password, victim_session)));
  EXPECT_EQ(successor.session_id(), "alice/" + std::to_string(victim_session));
  auto reason = victim.closed.get_future();
  ASSERT_EQ(reason.wait_for(wait), std::future_status::ready) << "the replaced client was not told";
  EXPECT_NE(reason.get().find("taken over by a new login of alice"), std::string::npos);
  ASSERT_TRUE(subscribe_and_wait(successor, "Takeover/t", taken));
  auto verdict = publisher.publish_acked("Takeover/t", std::as_bytes(std::span("next", 4)));
  ASSERT_EQ(verdict.wait_for(wait), std::future_status::ready);
  EXPECT_TRUE(taken.wait_until(
      [](const std::vector<Received>& entries) { return !entries.empty() && entries.back().value == "next"; },
      wait));
  // The old client does not come back for it.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(victim.client.state(), ClientState::closed);
  EXPECT_EQ(successor.state(), ClientState::connected);
}

}  // namespace
}  // namespace brook::test
