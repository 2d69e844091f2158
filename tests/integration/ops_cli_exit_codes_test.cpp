// Integration: the exit codes of the operator commands (`brook sessions`, `topics`, `stat`)
// that scripts rely on, without a broker: 1 when brookd's HTTP side cannot be reached, 2 for
// usage errors (CLI11's, and an address the CLI cannot use).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "broker_process.hpp"
#include "cli_output.hpp"

namespace brook::test {
namespace {

constexpr auto long_wait = std::chrono::seconds(60);

TEST(OpsCliExitCodes, nobody_listening_is_exit_1_naming_the_address) {
  const std::string address = "127.0.0.1:" + std::to_string(free_port());
  for (std::vector<std::string> args : {std::vector<std::string>{"sessions"}, {"topics", "--values"},
                                        {"stat", "--count", "1"}, {"stat", "--json"}}) {
    const std::string command = args[0];
    args.insert(args.end(), {"--http", address});
    auto result = run_cli(args, {}, long_wait);
    EXPECT_EQ(result.exit_code(), 1) << command << ": " << result.describe();
    EXPECT_TRUE(contains(result.err, "cannot connect to http://" + address + ": Connection refused"))
        << command << ": " << result.describe();
  }
}

TEST(OpsCliExitCodes, an_unknown_sort_an_https_address_or_a_bad_address_is_exit_2) {
  auto sort = run_cli({"sessions", "--http", "127.0.0.1:1", "--sort", "speed"}, {}, long_wait);
  EXPECT_EQ(sort.exit_code(), 2) << sort.describe();
  auto https = run_cli({"topics", "--http", "https://127.0.0.1:9443"}, {}, long_wait);
  EXPECT_EQ(https.exit_code(), 2) << https.describe();
  EXPECT_TRUE(contains(https.err, "https is not supported")) << https.describe();
  auto no_port = run_cli({"stat", "--http", "localhost", "--count", "1"}, {}, long_wait);
  EXPECT_EQ(no_port.exit_code(), 2) << no_port.describe();
}

}  // namespace
}  // namespace brook::test
