#pragma once
// GET from brookd's HTTP side on 127.0.0.1, for tests: the CLI's client (cli/http_get.hpp),
// with the answer's status line and headers as one text.
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

namespace brook::test {

struct HttpAnswer {
  int status = 0;  // 0: no answer (connection refused, timed out, unreadable)
  std::string head;
  std::string body;
  std::string error;
};

// `user_password`: "USER:PASSWORD" for basic auth, or none.
HttpAnswer http_get(std::uint16_t port, std::string_view target, std::string_view user_password = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(10));

// Prometheus text: "name{labels}" -> value, for every sample line.
std::map<std::string, double> parse_prometheus(std::string_view text);

}  // namespace brook::test
