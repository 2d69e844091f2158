// Integration: the `brook` command line against a real brookd: output formats and the exit
// codes scripts rely on (0 done, 1 timed out before --count, 2 usage or connection failure,
// 3 refused by the broker).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <sstream>
#include <string>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "cli_output.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

constexpr auto long_wait = std::chrono::seconds(60);

class Cli : public ::testing::Test {
 protected:
  void SetUp() override { BROOK_ASSERT_STARTED(broker_); }

  CliResult brook(std::vector<std::string> args, std::string_view input = {}) {
    // --url goes right after the subcommand.
    args.insert(args.begin() + 1, {"--url", broker_.url()});
    return run_cli(args, input, long_wait);
  }

  BrokerProcess broker_{2};
};

TEST_F(Cli, pub_of_a_non_number_to_an_int64_topic_prints_an_error_and_exits_2) {
  auto created = brook({"pub", "--type", "int64", "Cli/n", "42"});
  ASSERT_EQ(created.exit_code(), 0) << created.describe();

  auto bad = brook({"pub", "--type", "int64", "Cli/n", "forty-two"});
  EXPECT_EQ(bad.exit_code(), 2) << bad.describe();
  EXPECT_NE(bad.err.find("forty-two"), std::string::npos) << bad.describe();

  // Nothing was published: the current value is still the first one.
  auto current = brook({"sub", "--count", "1", "--timeout", "30", "Cli/n"});
  ASSERT_EQ(current.exit_code(), 0) << current.describe();
  EXPECT_EQ(current.out, "Cli/n\t1\t42\n");
}

TEST_F(Cli, pub_of_a_value_the_broker_refuses_exits_3) {
  auto created = brook({"pub", "--type", "int64", "Cli/n", "7"});
  ASSERT_EQ(created.exit_code(), 0) << created.describe();

  // A string value for an int64 topic: the wrong size (invalid_value).
  auto wrong_value = brook({"pub", "Cli/n", "hello"});
  EXPECT_EQ(wrong_value.exit_code(), 3) << wrong_value.describe();
  EXPECT_NE(wrong_value.err.find("refused"), std::string::npos) << wrong_value.describe();

  // An explicit type that is not the topic's (type_mismatch), among accepted lines on stdin.
  auto wrong_type = brook({"pub", "--type", "string", "Cli/n"}, "a\nb\n");
  EXPECT_EQ(wrong_type.exit_code(), 3) << wrong_type.describe();

  auto fine = brook({"pub", "--type", "int64", "Cli/n"}, "8\n9\n");
  EXPECT_EQ(fine.exit_code(), 0) << fine.describe();
}

TEST_F(Cli, sub_with_a_count_on_a_silent_topic_times_out_with_exit_1) {
  auto result = brook({"sub", "--timeout", "1", "--count", "5", "Cli/silent"});
  EXPECT_EQ(result.exit_code(), 1) << result.describe();
  EXPECT_EQ(result.out, "");
  EXPECT_NE(result.err.find("timed out"), std::string::npos) << result.describe();
}

TEST_F(Cli, binary_values_print_as_base64_and_are_read_as_base64) {
  const unsigned char raw[] = {0x00, 0x01, 0x02, 0xfe, 0xff, 'a'};
  const std::string base64 = "AAEC/v9h";
  Client client;
  ASSERT_TRUE(connect_client(client, broker_.url(), "binary-publisher"));
  ASSERT_TRUE(
      await(client.publish_acked("Cli/bin", std::as_bytes(std::span(raw)), TopicType::binary)));

  auto sub = brook({"sub", "--count", "1", "--timeout", "30", "Cli/bin"});
  ASSERT_EQ(sub.exit_code(), 0) << sub.describe();
  EXPECT_EQ(sub.out, "Cli/bin\t1\t" + base64 + "\n");

  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(client, "Cli/bin2", log));
  auto pub = brook({"pub", "--type", "binary", "Cli/bin2", base64});
  ASSERT_EQ(pub.exit_code(), 0) << pub.describe();
  ASSERT_TRUE(log.wait_for(1, long_wait));
  auto got = log.entries();
  EXPECT_EQ(got[0].type, TopicType::binary);
  EXPECT_EQ(got[0].value, std::string(reinterpret_cast<const char*>(raw), sizeof raw));

  auto not_base64 = brook({"pub", "--type", "binary", "Cli/bin2", "**not base64**"});
  EXPECT_EQ(not_base64.exit_code(), 2) << not_base64.describe();
}

TEST_F(Cli, pub_sends_each_stdin_line_in_order_and_sub_escapes_what_would_break_a_line) {
  UpdateLog log;
  Client client;
  ASSERT_TRUE(connect_client(client, broker_.url(), "line-subscriber"));
  ASSERT_TRUE(subscribe_and_wait(client, "Cli/lines", log));
  auto pub = brook({"pub", "Cli/lines"}, "one\ntwo\nthree\n");
  ASSERT_EQ(pub.exit_code(), 0) << pub.describe();
  ASSERT_TRUE(log.wait_for(3, long_wait));
  auto got = log.entries();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].value, "one");
  EXPECT_EQ(got[1].value, "two");
  EXPECT_EQ(got[2].value, "three");
  EXPECT_EQ(got[2].topic_seq, 3u);

  ASSERT_TRUE(await(client.publish_acked("Cli/lines", bytes_of("tab\there\nnew line\\"))));
  auto sub = brook({"sub", "--count", "1", "--timeout", "30", "Cli/lines"});
  ASSERT_EQ(sub.exit_code(), 0) << sub.describe();
  EXPECT_EQ(sub.out, "Cli/lines\t4\ttab\\there\\nnew line\\\\\n");
}

TEST_F(Cli, ping_with_count_3_prints_three_pongs_and_exits_0) {
  auto result = brook({"ping", "--count", "3", "--interval-ms", "10"});
  ASSERT_EQ(result.exit_code(), 0) << result.describe();
  int pongs = 0;
  for (const auto& line : lines_of(result.out)) pongs += line.rfind("pong", 0) == 0;
  EXPECT_EQ(pongs, 3) << result.out;
}

TEST_F(Cli, sub_against_a_port_with_no_broker_exits_2) {
  // A bound socket that does not listen keeps the port ours and refuses connections.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  std::string url = "tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  auto result =
      run_cli({"sub", "--url", url, "--count", "1", "--timeout", "5", "Cli/x"}, {}, long_wait);
  ::close(fd);
  EXPECT_EQ(result.exit_code(), 2) << result.describe();
  EXPECT_NE(result.err.find("cannot connect"), std::string::npos) << result.describe();
}

TEST_F(Cli, usage_errors_exit_2) {
  auto no_selector = brook({"sub", "--count", "1"});
  EXPECT_EQ(no_selector.exit_code(), 2) << no_selector.describe();
  auto unknown_type = brook({"pub", "--type", "float", "Cli/x", "1.5"});
  EXPECT_EQ(unknown_type.exit_code(), 2) << unknown_type.describe();
  auto bad_url = run_cli({"ping", "--url", "http://127.0.0.1:1"}, {}, long_wait);
  EXPECT_EQ(bad_url.exit_code(), 2) << bad_url.describe();
}

}  // namespace
}  // namespace brook::test
