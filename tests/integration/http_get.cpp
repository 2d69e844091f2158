#include "http_get.hpp"

#include <cstdlib>

#include "cli/http_get.hpp"

namespace brook::test {

HttpAnswer http_get(std::uint16_t port, std::string_view target, std::string_view user_password,
                    std::chrono::milliseconds timeout) {
  HttpAnswer answer;
  const cli::HttpAddress address{"127.0.0.1", std::to_string(port)};
  auto result = cli::http_get(address, target, {.user_password = std::string(user_password), .timeout = timeout});
  if (!result.response) {
    answer.error = std::move(result.error);
    return answer;
  }
  answer.status = result.response->status;
  answer.head = "HTTP/1.1 " + std::to_string(answer.status) + " " + result.response->reason;
  for (const auto& [name, value] : result.response->headers) answer.head += "\r\n" + name + ": " + value;
  answer.body = std::move(result.response->body);
  return answer;
}

std::map<std::string, double> parse_prometheus(std::string_view text) {
  std::map<std::string, double> samples;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    const std::string_view line = text.substr(0, eol);
    text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
    if (line.empty() || line.front() == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string_view::npos) continue;
    samples[std::string(line.substr(0, space))] = std::strtod(std::string(line.substr(space + 1)).c_str(), nullptr);
  }
  return samples;
}

}  // namespace brook::test
