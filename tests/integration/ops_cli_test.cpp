// Integration: the operator commands (`brook sessions`, `brook topics`, `brook stat`) against a
// real brookd's HTTP side: their JSON is the broker's and names what a client created, their
// tables name it too, and they exit 1 (HTTP or connection failure) or 2 (usage) as documented.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "cli_output.hpp"
#include "credentials_file.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using nlohmann::json;

constexpr auto long_wait = std::chrono::seconds(60);
constexpr std::int64_t watched_session = 4242;
constexpr const char* watched_topic = "Ops/odds/1";

BrokerConfig with_http(std::string config_toml = "") {
  BrokerConfig config;
  config.shards = 2;
  config.http = true;
  config.config_toml = std::move(config_toml);
  return config;
}

// A session an operator would look for: named (principal/4242), subscribed to Ops//, and
// the publisher of Ops/odds/1.
class OpsCli : public ::testing::Test {
 protected:
  void SetUp() override {
    BROOK_ASSERT_STARTED(broker_);
    ASSERT_NE(broker_.http_port(), 0) << broker_.log();
    ClientOptions options;
    options.url = broker_.url();
    options.client_name = "ops-cli-test";
    options.session_number = watched_session;
    options.connect_timeout = std::chrono::seconds(10);
    ASSERT_TRUE(client_.connect(options));
    ASSERT_TRUE(subscribe_and_wait(client_, "Ops//", log_));
    ASSERT_TRUE(await(client_.publish_acked(watched_topic, bytes_of(R"({"home":1.95})"), TopicType::json)));
  }

  std::string http() const { return "127.0.0.1:" + std::to_string(broker_.http_port()); }

  CliResult brook(std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"--http", http()});
    return run_cli(args, {}, long_wait);
  }

  BrokerProcess broker_{with_http()};
  UpdateLog log_;
  Client client_;
};

bool names_watched_session(const json& sessions) {
  for (const auto& s : sessions) {
    const std::string id = s.value("id", "");
    if (id.size() > 5 && id.ends_with("/" + std::to_string(watched_session))) return true;
  }
  return false;
}

const json* find_topic(const json& topics, const std::string& path) {
  for (const auto& t : topics)
    if (t.value("path", "") == path) return &t;
  return nullptr;
}

TEST_F(OpsCli, sessions_json_is_the_brokers_answer_and_names_the_attached_session) {
  auto result = brook({"sessions", "--json", "--sort", "queue", "--limit", "50"});
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  auto answer = json::parse(result.out, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << result.out;
  EXPECT_EQ(answer.value("sort", ""), "queue");
  ASSERT_TRUE(answer["sessions"].is_array()) << result.out;
  EXPECT_TRUE(names_watched_session(answer["sessions"])) << result.out;
  for (const auto& s : answer["sessions"])
    if (s.value("id", "").ends_with("/4242")) {
      EXPECT_EQ(s.value("state", ""), "attached") << s.dump();
      EXPECT_GE(s.value("subscriptions", 0), 1) << s.dump();
    }
}

TEST_F(OpsCli, topics_json_with_a_prefix_and_values_names_the_topic_and_its_value) {
  auto result = brook({"topics", "--json", "--prefix", "Ops/", "--values", "--sort", "path"});
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  auto answer = json::parse(result.out, nullptr, false);
  ASSERT_TRUE(answer.is_object()) << result.out;
  const json* topic = find_topic(answer["topics"], watched_topic);
  ASSERT_NE(topic, nullptr) << result.out;
  EXPECT_EQ(topic->value("type", ""), "json");
  EXPECT_EQ(topic->value("value", ""), R"({"home":1.95})");
  EXPECT_GE(topic->value("subscribers", 0), 1);
  for (const auto& t : answer["topics"]) EXPECT_TRUE(t.value("path", "").starts_with("Ops/")) << t.dump();
}

TEST_F(OpsCli, stat_with_count_2_and_json_prints_two_lines_naming_the_session_and_topic) {
  auto result = brook({"stat", "--count", "2", "--interval", "0.2", "--json"});
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  auto lines = lines_of(result.out);
  ASSERT_EQ(lines.size(), 2u) << result.out;
  for (const auto& line : lines) {
    auto refresh = json::parse(line, nullptr, false);
    ASSERT_TRUE(refresh.is_object()) << line;
    EXPECT_EQ(refresh["broker"].value("shard_count", 0), 2) << line;
    EXPECT_EQ(refresh["broker"]["shards"].size(), 2u) << line;
    EXPECT_TRUE(names_watched_session(refresh["sessions"])) << line;
    EXPECT_NE(find_topic(refresh["topics"], watched_topic), nullptr) << line;
  }
}

TEST_F(OpsCli, tables_name_the_session_and_the_topic) {
  auto sessions = brook({"sessions"});
  ASSERT_EQ(sessions.exit_code(), 0) << sessions.describe();
  EXPECT_TRUE(contains(sessions.out, "SESSION")) << sessions.out;
  EXPECT_TRUE(contains(sessions.out, "/4242 ")) << sessions.out;
  EXPECT_TRUE(contains(sessions.out, "attached")) << sessions.out;

  auto topics = brook({"topics", "--values"});
  ASSERT_EQ(topics.exit_code(), 0) << topics.describe();
  EXPECT_TRUE(contains(topics.out, watched_topic)) << topics.out;
  EXPECT_TRUE(contains(topics.out, R"({"home":1.95})")) << topics.out;
}

TEST_F(OpsCli, stat_without_a_terminal_prints_one_block_per_refresh_a_blank_line_apart) {
  auto result = brook({"stat", "--count", "2", "--interval", "0.2"});
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  EXPECT_FALSE(contains(result.out, "\x1b[")) << "no terminal, no escape codes:\n" << result.out;
  auto first = result.out.find("slowest sessions");
  ASSERT_NE(first, std::string::npos) << result.out;
  EXPECT_NE(result.out.find("slowest sessions", first + 1), std::string::npos) << result.out;
  EXPECT_TRUE(contains(result.out, "\n\nbrookd ")) << result.out;
  EXPECT_TRUE(contains(result.out, watched_topic)) << result.out;
}

// A broker whose HTTP side asks for basic auth: the right password reads, a wrong one is exit 1
// with the status on stderr.
class OpsCliWithAuth : public ::testing::Test {
 protected:
  void SetUp() override { BROOK_ASSERT_STARTED(broker_); }
  CliResult brook(std::vector<std::string> args) {
    args.insert(args.begin() + 1, {"--http", "127.0.0.1:" + std::to_string(broker_.http_port())});
    return run_cli(args, {}, long_wait);
  }
  CredentialsFile credentials_;
  BrokerProcess broker_{with_http("[http]\ncredentials_file = \"" + credentials_.path() + "\"\n")};
};

TEST_F(OpsCliWithAuth, a_wrong_password_is_exit_1_with_http_401_and_the_right_one_reads) {
  auto wrong = brook({"topics", "--user", "alice:not her password"});
  EXPECT_EQ(wrong.exit_code(), 1) << wrong.describe();
  EXPECT_TRUE(contains(wrong.err, "HTTP 401 from http://")) << wrong.describe();

  auto right = brook({"topics", "--json", "--user", std::string("alice:") + alice_password});
  EXPECT_EQ(right.exit_code(), 0) << right.describe();
  EXPECT_TRUE(json::parse(right.out, nullptr, false).is_object()) << right.describe();
}

}  // namespace
}  // namespace brook::test
