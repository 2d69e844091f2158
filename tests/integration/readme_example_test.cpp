#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "broker_process.hpp"

int run_readme_example(const std::string& url);

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string between(const std::string& text, const std::string& begin, const std::string& end) {
  auto a = text.find(begin);
  auto b = text.find(end, a == std::string::npos ? 0 : a);
  if (a == std::string::npos || b == std::string::npos) return {};
  a = text.find('\n', a) + 1;
  b = text.rfind('\n', b) + 1;
  return text.substr(a, b - a);
}

}  // namespace

TEST(ReadmeExample, the_readme_shows_exactly_the_example_that_is_tested) {
  std::string source = between(read_file(BROOK_SOURCE_DIR "/tests/integration/readme_example.cpp"),
                               "// README-BEGIN", "// README-END");
  std::string readme = read_file(BROOK_SOURCE_DIR "/README.md");
  ASSERT_FALSE(source.empty());
  EXPECT_NE(readme.find("```cpp\n" + source + "```"), std::string::npos)
      << "README.md's client example differs from tests/integration/readme_example.cpp";
}

TEST(ReadmeExample, the_example_sees_the_change_it_published_as_old_and_new_value) {
  brook::test::BrokerProcess broker(2);
  BROOK_ASSERT_STARTED(broker);
  testing::internal::CaptureStdout();
  int rc = run_readme_example(broker.url());
  std::string printed = testing::internal::GetCapturedStdout();
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(printed, "+120 -> +125\n");
}
