#include "broker_http.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "commands.hpp"

namespace brook::cli {

namespace {

std::string from_env(const char* name, const char* otherwise) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? value : otherwise;
}

// What a failed answer says about itself: the "error" of a JSON body, else its first line.
std::string why_failed(const HttpResponse& response) {
  std::string_view body = response.body;
  if (response.header("content-type").rfind("application/json", 0) == 0) {
    auto parsed = nlohmann::json::parse(body, nullptr, false);
    if (parsed.is_object() && parsed.contains("error") && parsed["error"].is_string())
      return parsed["error"].get<std::string>();
  }
  body = body.substr(0, body.find('\n'));
  if (body.size() > 200) body = body.substr(0, 200);
  return body.empty() ? response.reason : std::string(body);
}

}  // namespace

void add_http_options(CLI::App& cmd, HttpArgs& args) {
  args.address = from_env("BROOK_HTTP", default_http_address);
  args.user = from_env("BROOK_HTTP_USER", "");
  cmd.add_option("--http", args.address,
                 std::string("brookd's HTTP side: HOST:PORT, http://HOST:PORT or PORT (default $BROOK_HTTP or ") +
                     default_http_address + "); https is not supported by the CLI");
  cmd.add_option("--user", args.user,
                 "USER:PASSWORD for HTTP basic auth (default $BROOK_HTTP_USER, which keeps the "
                 "password out of ps)");
  cmd.add_option("--timeout", args.timeout_s, "seconds to wait for each answer (default 5)")
      ->check(CLI::Range(0.001, 3600.0));
}

std::optional<BrokerHttp> BrokerHttp::open(const HttpArgs& args, std::string& error) {
  auto address = parse_http_address(args.address, error);
  if (!address) return std::nullopt;
  if (!args.user.empty() && args.user.find(':') == std::string::npos) {
    error = "--user (or $BROOK_HTTP_USER) must be USER:PASSWORD";
    return std::nullopt;
  }
  BrokerHttp http;
  http.address_ = std::move(*address);
  http.options_.user_password = args.user;
  http.options_.timeout = std::chrono::milliseconds(static_cast<long long>(std::ceil(args.timeout_s * 1000)));
  return http;
}

std::optional<std::string> BrokerHttp::get(std::string_view path, std::string& error) const {
  auto result = http_get(address_, path, options_);
  if (!result.response) {
    error = std::move(result.error);
    // Most likely a port that speaks something else: brookd's broker port, for one.
    if (error.rfind("malformed response", 0) == 0)
      error += " (is this brookd's HTTP side? brookd serves it with --http or http.listen)";
    return std::nullopt;
  }
  if (result.response->status < 200 || result.response->status > 299) {
    error = "HTTP " + std::to_string(result.response->status) + " from " + address_.text() + std::string(path) +
            ": " + why_failed(*result.response);
    return std::nullopt;
  }
  return std::move(result.response->body);
}

std::optional<nlohmann::json> BrokerHttp::get_json(std::string_view path, std::string& error) const {
  auto body = get(path, error);
  if (!body) return std::nullopt;
  auto parsed = nlohmann::json::parse(*body, nullptr, false);
  if (parsed.is_discarded()) {
    error = "not JSON from " + address_.text() + std::string(path) + ": " + body->substr(0, 80);
    return std::nullopt;
  }
  return parsed;
}

int BrokerHttp::print_verbatim(std::string_view path, const char* command) const {
  std::string error;
  auto body = get(path, error);
  if (!body) {
    std::fprintf(stderr, "brook %s: %s\n", command, error.c_str());
    return exit_http_failure;
  }
  if (body->empty() || body->back() != '\n') *body += '\n';
  std::fwrite(body->data(), 1, body->size(), stdout);
  return exit_ok;
}

}  // namespace brook::cli
