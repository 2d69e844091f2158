#pragma once
// Reading what a CLI process printed.
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace brook::test {

inline std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

inline bool contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

}  // namespace brook::test
