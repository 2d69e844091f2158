// Unit tests of RateLimitedLog, the shard loop's stderr: at most its rate of lines a second,
// what it held back said once in the next line, and a long line cut rather than overrun.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "../../runtime/broker/src/rate_limited_log.hpp"

namespace brook::runtime {
namespace {

constexpr std::uint64_t second = 1'000'000'000;

// The log's lines, written to memory.
struct Captured {
  char* text = nullptr;
  std::size_t size = 0;
  std::FILE* file = open_memstream(&text, &size);
  ~Captured() {
    if (file) std::fclose(file);
    std::free(text);
  }
  std::string lines() {
    std::fflush(file);
    return std::string(text, size);
  }
};

std::size_t count_lines(const std::string& text) {
  std::size_t n = 0;
  for (char c : text) n += c == '\n';
  return n;
}

TEST(RateLimitedLog, a_flood_writes_at_most_its_rate_and_says_what_it_held_back) {
  Captured out;
  RateLimitedLog log(5, out.file);
  const std::uint64_t start = 7 * second;
  for (int i = 0; i < 100; ++i) log.line(start + static_cast<std::uint64_t>(i) * 1000, "connection %d refused", i);
  EXPECT_EQ(count_lines(out.lines()), 5u);
  EXPECT_EQ(log.held_back(), 95u);
  EXPECT_NE(out.lines().find("connection 4 refused\n"), std::string::npos);
  EXPECT_EQ(out.lines().find("connection 5 refused"), std::string::npos);

  // The next second's first line says how many were held back.
  log.line(start + second + 1, "connection %d refused", 100);
  const std::string text = out.lines();
  EXPECT_EQ(count_lines(text), 6u);
  EXPECT_NE(text.find("connection 100 refused (95 similar lines held back)\n"), std::string::npos) << text;
  log.line(start + second + 2, "connection %d refused", 101);
  EXPECT_NE(out.lines().find("connection 101 refused\n"), std::string::npos) << "the count is said once";
}

TEST(RateLimitedLog, a_long_line_is_cut_not_overrun) {
  Captured out;
  RateLimitedLog log(5, out.file);
  const std::string huge(5000, 'x');
  log.line(second, "reason: %s", huge.c_str());
  const std::string text = out.lines();
  EXPECT_EQ(count_lines(text), 1u);
  EXPECT_LT(text.size(), 1100u);
  EXPECT_EQ(text.rfind("reason: x", 0), 0u);
}

}  // namespace
}  // namespace brook::runtime
