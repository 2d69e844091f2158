// Integration: the `brook` CLI's sessions against a real brookd. `brook sub --reconnect` and
// `brook pub` reach the broker through a FaultProxy whose link the test resets, and must lose,
// repeat and reorder nothing; `brook sub --reconnect` survives a broker restart by subscribing
// afresh; `brook bench resync` reports a full recovery; a refused login has its exit code.
// The CLI runs on a helper thread (run_cli blocks until it exits) while the test thread
// publishes and injects the faults. The test learns that a `brook sub` has subscribed from the
// proxy: its first value is large, and seeing that many bytes relayed to it means the
// subscription is in place. Every wait is bounded.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/runtime/credentials.hpp"
#include "cli_output.hpp"
#include "fault_proxy.hpp"
#include "update_log.hpp"

#ifndef BROOKD_PATH
#error "BROOKD_PATH must name the brookd executable (tests/CMakeLists.txt defines it)"
#endif

namespace brook::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto long_wait = std::chrono::seconds(15);
constexpr auto short_wait = std::chrono::seconds(10);
constexpr auto cli_deadline = std::chrono::seconds(40);

// The `brook` CLI running on its own thread; result() waits for it to exit. The thread that
// forks the CLI lives until the CLI has been reaped, so its parent-death signal cannot fire early.
class BackgroundCli {
 public:
  explicit BackgroundCli(std::vector<std::string> args, std::string input = {})
      : result_(std::async(std::launch::async, [args = std::move(args), input = std::move(input)] {
          return run_cli(args, input, cli_deadline);
        })) {}
  ~BackgroundCli() {
    if (result_.valid()) result_.wait();
  }
  BackgroundCli(const BackgroundCli&) = delete;
  BackgroundCli& operator=(const BackgroundCli&) = delete;

  CliResult result() { return result_.get(); }

 private:
  std::future<CliResult> result_;
};

// A first value large enough that seeing it relayed can only mean a subscription's snapshot.
const std::string big_first_value = "first-" + std::string(4000, 'x');

bool wait_for_bytes_to_client(const FaultProxy& proxy, std::size_t index, std::uint64_t bytes,
                              milliseconds timeout) {
  return eventually([&] { return proxy.bytes_to_client(index) >= bytes; }, timeout);
}

// ---- brook sub ----------------------------------------------------------------------------

TEST(CliSession, sub_with_reconnect_prints_every_line_in_order_across_a_connection_reset) {
  constexpr std::uint64_t count = 2000, half = count / 2;
  BrokerProcess broker(1);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "cli-session-publisher"));
  ASSERT_TRUE(await(publisher.publish_acked("CliSession/a", bytes_of(big_first_value))));

  BackgroundCli sub({"sub", "--url", proxy.url(), "--reconnect", "--reconnect-delay", "0.05",
                     "--count", std::to_string(count), "--timeout", "30", "CliSession/a"});
  ASSERT_TRUE(proxy.wait_for_connections(1, short_wait));
  ASSERT_TRUE(wait_for_bytes_to_client(proxy, 0, big_first_value.size(), short_wait))
      << "brook sub did not subscribe; " << sub.result().describe();

  auto value = [](std::uint64_t seq) { return "v" + std::to_string(seq); };
  for (std::uint64_t seq = 2; seq < half; ++seq) publisher.publish("CliSession/a", value(seq));
  ASSERT_TRUE(await(publisher.publish_acked("CliSession/a", bytes_of(value(half)))));
  // Some of the first half has reached brook sub when the link is cut.
  ASSERT_TRUE(wait_for_bytes_to_client(proxy, 0, big_first_value.size() + 1000, short_wait));
  ASSERT_TRUE(proxy.reset(0));
  for (std::uint64_t seq = half + 1; seq < count; ++seq) publisher.publish("CliSession/a", value(seq));
  ASSERT_TRUE(await(publisher.publish_acked("CliSession/a", bytes_of(value(count)))));

  CliResult result = sub.result();
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  auto lines = lines_of(result.out);
  ASSERT_EQ(lines.size(), count) << result.err;
  EXPECT_EQ(lines[0], "CliSession/a\t1\t" + big_first_value);
  for (std::uint64_t seq = 2; seq <= count; ++seq)
    ASSERT_EQ(lines[seq - 1], "CliSession/a\t" + std::to_string(seq) + "\t" + value(seq))
        << "line " << seq << "\n--- stderr ---\n" << result.err;
  EXPECT_TRUE(contains(result.err, "connection lost")) << result.err;
  EXPECT_TRUE(contains(result.err, "reconnected, nothing missed")) << result.err;
  EXPECT_FALSE(contains(result.err, "session lost")) << result.err;
  EXPECT_EQ(proxy.connections(), 2u) << "one reconnection";
}

TEST(CliSession, sub_with_reconnect_subscribes_afresh_after_a_broker_restart) {
  auto first_broker = std::make_unique<BrokerProcess>(1);
  BROOK_ASSERT_STARTED(*first_broker);
  const std::uint16_t port = first_broker->port();
  const std::string direct_url = first_broker->url();
  // The proxy only lets the test see when brook sub has subscribed; it relays every new
  // connection to the port, whichever broker listens there.
  FaultProxy proxy(port);
  ASSERT_TRUE(proxy.listening());
  {
    Client publisher;
    ASSERT_TRUE(connect_client(publisher, direct_url, "cli-session-publisher"));
    ASSERT_TRUE(await(publisher.publish_acked("CliSession/r", bytes_of(big_first_value))));
  }

  BackgroundCli sub({"sub", "--url", proxy.url(), "--reconnect", "--reconnect-delay", "0.05",
                     "--count", "2", "--timeout", "30", "CliSession/r"});
  ASSERT_TRUE(proxy.wait_for_connections(1, short_wait));
  ASSERT_TRUE(wait_for_bytes_to_client(proxy, 0, big_first_value.size(), short_wait))
      << "brook sub did not subscribe; " << sub.result().describe();

  first_broker->stop();  // records a failure unless the exit is clean
  first_broker.reset();
  BrokerConfig same_port;
  same_port.listen = "127.0.0.1:" + std::to_string(port);
  BrokerProcess second_broker(same_port);
  BROOK_ASSERT_STARTED(second_broker);
  // A fresh broker: the topic starts again at sequence 1.
  {
    Client publisher;
    ASSERT_TRUE(connect_client(publisher, direct_url, "cli-session-publisher"));
    ASSERT_TRUE(await(publisher.publish_acked("CliSession/r", bytes_of("second"))));
  }

  CliResult result = sub.result();
  EXPECT_EQ(result.exit_code(), 0) << result.describe();
  EXPECT_EQ(result.out, "CliSession/r\t1\t" + big_first_value + "\nCliSession/r\t1\tsecond\n")
      << result.err;
  EXPECT_TRUE(contains(result.err, "session lost")) << result.err;
  EXPECT_TRUE(contains(result.err, "subscribing afresh")) << result.err;
  second_broker.stop();  // records a failure unless the exit is clean
}

// With a data dir and a named session, a kill -9 of the broker loses nothing: the restarted
// broker brings the session back, brook sub resumes it (no "session lost") and prints every
// update once, in order, also those published while it was away.
TEST(CliSession, sub_with_reconnect_resumes_its_named_session_after_a_kill_9_and_misses_nothing) {
  const std::string data_dir = make_temp_dir("brook-cli-durable");
  const std::uint16_t port = free_port();
  BrokerConfig config;
  config.listen = "127.0.0.1:" + std::to_string(port);
  config.extra_args = {"--data-dir", data_dir};
  auto first_broker = std::make_unique<BrokerProcess>(config);
  BROOK_ASSERT_STARTED(*first_broker);
  const std::string direct_url = first_broker->url();
  FaultProxy proxy(port);  // lets the test see when brook sub has subscribed
  ASSERT_TRUE(proxy.listening());
  auto publish = [&](const std::string& value) {
    Client publisher;
    ASSERT_TRUE(connect_client_once(publisher, direct_url, "cli-durable-publisher"));
    ASSERT_TRUE(await(publisher.publish_acked("CliSession/d", bytes_of(value))));
  };
  publish(big_first_value);
  BackgroundCli sub({"sub", "--url", proxy.url(), "--reconnect", "--reconnect-delay", "0.05", "--session",
                     "5", "--count", "4", "--timeout", "30", "CliSession/d"});
  ASSERT_TRUE(proxy.wait_for_connections(1, short_wait));
  ASSERT_TRUE(wait_for_bytes_to_client(proxy, 0, big_first_value.size(), short_wait))
      << "brook sub did not subscribe; " << sub.result().describe();
  publish("v2");
  first_broker->crash();
  first_broker.reset();
  BrokerProcess second_broker(config);
  BROOK_ASSERT_STARTED(second_broker);
  publish("v3");
  publish("v4");

  CliResult result = sub.result();
  EXPECT_EQ(result.exit_code(), 0) << result.describe();
  EXPECT_EQ(result.out, "CliSession/d\t1\t" + big_first_value + "\nCliSession/d\t2\tv2\nCliSession/d\t3\tv3\n"
                        "CliSession/d\t4\tv4\n")
      << result.err;
  EXPECT_FALSE(contains(result.err, "session lost")) << result.err;
  EXPECT_TRUE(contains(result.err, "reconnected, nothing missed")) << result.err;
  second_broker.stop();
  std::filesystem::remove_all(data_dir);
}

// ---- brook pub ----------------------------------------------------------------------------

TEST(CliSession, pub_of_stdin_lines_publishes_each_once_across_a_connection_reset) {
  constexpr std::size_t count = 20000;
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  FaultProxy proxy(broker.port());
  ASSERT_TRUE(proxy.listening());

  UpdateLog log;
  Client subscriber, checker;
  ASSERT_TRUE(connect_client(subscriber, broker.url(), "cli-session-subscriber"));
  ASSERT_TRUE(connect_client(checker, broker.url(), "cli-session-checker"));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "CliSession/p", log));

  std::string input;
  std::uint64_t input_bytes = 0;
  for (std::size_t i = 0; i < count; ++i) input += "line-" + std::to_string(i) + "\n";
  input_bytes = input.size();
  BackgroundCli pub({"pub", "--url", proxy.url(), "--reconnect-delay", "0.05", "CliSession/p"},
                    input);
  ASSERT_TRUE(proxy.wait_for_connections(1, short_wait));
  // Cut early: a publish frame is several times the size of its line, so a fifth of the
  // input's bytes is a few percent of the publishes, and brook pub cannot run far ahead of
  // the acknowledgements it waits for.
  ASSERT_TRUE(proxy.wait_for_bytes_to_upstream(0, input_bytes / 5, long_wait))
      << "brook pub sent " << proxy.bytes_to_upstream(0) << " bytes; " << pub.result().describe();
  ASSERT_TRUE(proxy.reset(0));
  const std::size_t delivered_at_cut = log.size();
  RecordProperty("delivered_at_cut", static_cast<int>(delivered_at_cut));

  CliResult result = pub.result();
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  EXPECT_TRUE(contains(result.err, "connection lost")) << result.err;
  EXPECT_EQ(proxy.connections(), 2u) << "one reconnection";
  EXPECT_LT(delivered_at_cut, count) << "the cut came after the last publish";

  // A last value from another session: once it arrives, every publish of brook pub has been
  // delivered (they were all acknowledged), duplicates included.
  ASSERT_TRUE(await(checker.publish_acked("CliSession/p", bytes_of("end"))));
  ASSERT_TRUE(log.wait_until(
      [](const std::vector<Received>& e) { return !e.empty() && e.back().value == "end"; },
      long_wait))
      << "received " << log.size() << " of " << count + 1;
  auto got = log.entries();
  ASSERT_EQ(got.size(), count + 1);
  for (std::size_t i = 0; i < count; ++i) {
    ASSERT_EQ(got[i].value, "line-" + std::to_string(i)) << "update #" << i;
    ASSERT_EQ(got[i].topic_seq, i + 1) << "update #" << i;
  }
  EXPECT_EQ(got.back().topic_seq, count + 1);
}

// ---- brook bench resync -------------------------------------------------------------------

TEST(CliSession, bench_resync_recovers_every_update_and_exits_0) {
  BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  CliResult result = run_cli(
      {"bench", "resync", "--url", broker.url(), "--count", "20000", "--json"}, {}, cli_deadline);
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  auto lines = lines_of(result.out);
  ASSERT_EQ(lines.size(), 1u) << result.describe();
  const std::string& json = lines[0];
  EXPECT_EQ(json.front(), '{') << json;
  EXPECT_EQ(json.back(), '}') << json;
  EXPECT_TRUE(contains(json, "\"scenario\":\"resync\"")) << json;
  EXPECT_TRUE(contains(json, "\"updates\":20000,")) << json;
  EXPECT_TRUE(contains(json, "\"recovered\":20000,")) << json;
  EXPECT_TRUE(contains(json, "\"missed\":0,")) << json;
  EXPECT_TRUE(contains(json, "\"out_of_order\":0,")) << json;
  EXPECT_TRUE(contains(json, "\"resync\":false")) << json;
  EXPECT_TRUE(contains(json, "\"catchup_ms\":")) << json;
  EXPECT_FALSE(contains(json, "\"catchup_ms\":-")) << json;
}

// ---- logins -------------------------------------------------------------------------------

// Sets an environment variable for the scope (the CLI children inherit it). Only while the
// test runs no thread of its own: the environment is not thread-safe.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    ::setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) ::setenv(name_, old_->c_str(), 1);
    else ::unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

TEST(CliSession, sub_refused_for_a_wrong_password_exits_3) {
  const std::string dir = make_temp_dir("cli-auth");
  ASSERT_FALSE(dir.empty());
  const std::string credentials = dir + "/credentials";
  const std::string password_file = dir + "/alice.password";
  std::string error;
  ASSERT_TRUE(runtime::write_credential(
      credentials, "alice",
      runtime::hash_password("alice's secret", runtime::PasswordCost::minimal), error))
      << error;
  std::ofstream(password_file) << "alice's secret\n";
  {
    BrokerConfig config = with_shards(1);
    config.config_toml =
        "[auth]\ncredentials_file = \"" + credentials + "\"\nallow_anonymous = false\n";
    BrokerProcess broker(config);
    BROOK_ASSERT_STARTED(broker);
    const std::vector<std::string> sub{"sub",     "--url",   broker.url(), "--principal",
                                       "alice",   "--count", "1",          "--timeout",
                                       "10",      "CliSession/auth"};

    // The right password (from a file) lets the same command in: the topic's value arrives.
    auto pub = run_cli({"pub", "--url", broker.url(), "--principal", "alice", "--password-file",
                        password_file, "CliSession/auth", "hello"},
                       {}, cli_deadline);
    ASSERT_EQ(pub.exit_code(), 0) << pub.describe();
    auto with_file = sub;
    with_file.insert(with_file.end() - 1, {"--password-file", password_file});
    auto allowed = run_cli(with_file, {}, cli_deadline);
    EXPECT_EQ(allowed.exit_code(), 0) << allowed.describe();
    EXPECT_EQ(allowed.out, "CliSession/auth\t1\thello\n");

    // README and commands.hpp: 2 is a usage error or a broker that cannot be reached, 3 a
    // broker that refused. A wrong password is refused by a broker that was reached.
    {
      ScopedEnv password("BROOK_PASSWORD", "not alice's secret");
      auto refused = run_cli(sub, {}, cli_deadline);
      EXPECT_EQ(refused.exit_code(), 3) << refused.describe();
      EXPECT_TRUE(contains(refused.err, "authentication failed")) << refused.describe();
      EXPECT_EQ(refused.out, "");
    }
    {
      ScopedEnv password("BROOK_PASSWORD", "alice's secret");
      auto right = run_cli(sub, {}, cli_deadline);
      EXPECT_EQ(right.exit_code(), 0) << right.describe();
      EXPECT_EQ(right.out, "CliSession/auth\t1\thello\n");
    }
    // Anonymous, with anonymous sessions off: refused as well.
    auto anonymous = run_cli({"sub", "--url", broker.url(), "--count", "1", "--timeout", "10",
                              "CliSession/auth"},
                             {}, cli_deadline);
    EXPECT_EQ(anonymous.exit_code(), 3) << anonymous.describe();
  }
  remove_temp_dir(dir);
}

}  // namespace
}  // namespace brook::test
