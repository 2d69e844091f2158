#pragma once
// What `brook stat`, `sessions` and `topics` share: where brookd's HTTP side is (--http,
// $BROOK_HTTP), who asks (--user, $BROOK_HTTP_USER), and one GET of its JSON API that turns
// every failure (no connection, a non-2xx status, a body that is not JSON) into one message.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "http_get.hpp"

namespace brook::cli {

// Where the operator commands look without --http or $BROOK_HTTP: the port the README and
// tools/demo give the HTTP side (brookd serves none unless told: http.listen has no default,
// and 9090 is broker.listen's).
inline constexpr const char* default_http_address = "127.0.0.1:9091";

struct HttpArgs {
  std::string address;  // default $BROOK_HTTP, else default_http_address
  std::string user;     // USER:PASSWORD; default $BROOK_HTTP_USER
  double timeout_s = 5;
};

// Registers --http, --user and --timeout on `cmd`.
void add_http_options(CLI::App& cmd, HttpArgs& args);

// Brook's HTTP API, as the operator commands read it. Built once per command run from its
// HttpArgs; no state between requests (each is its own connection).
class BrokerHttp {
 public:
  // nullopt with `error` set when the address is not usable.
  static std::optional<BrokerHttp> open(const HttpArgs& args, std::string& error);

  // The body of a 2xx answer to GET `path`, or nullopt with `error`: "cannot connect to
  // http://H:P: Connection refused", "HTTP 401 from http://H:P/api/topics: ...".
  std::optional<std::string> get(std::string_view path, std::string& error) const;
  // get(), then the body parsed as JSON ("not JSON from ..." when it is not).
  std::optional<nlohmann::json> get_json(std::string_view path, std::string& error) const;

  const HttpAddress& address() const noexcept { return address_; }

  // `brook CMD --json`: GET `path` and print its body on stdout as it is (a newline added if
  // missing), or the error on stderr after "brook COMMAND: ". The exit code.
  int print_verbatim(std::string_view path, const char* command) const;

 private:
  HttpAddress address_;
  HttpGetOptions options_;
};

}  // namespace brook::cli
