#pragma once
// The `brook` subcommands. Each registers its options on the CLI11 app and returns the code
// the process exits with: 0 done, 1 timed out (before --count was reached, or waiting for an
// answer), 2 usage or connection failure, 3 refused by the broker (or, for a request, by its
// handler) or session closed. The operator commands that read brookd's HTTP side (stat,
// sessions, topics) exit 1 when it cannot be reached or answers with an error.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace brook::cli {

inline constexpr int exit_ok = 0;
inline constexpr int exit_timeout = 1;
inline constexpr int exit_usage = 2;
inline constexpr int exit_refused = 3;
inline constexpr int exit_http_failure = 1;  // stat, sessions, topics: no connection, a non-2xx answer

using Action = std::function<int()>;

Action add_sub_command(CLI::App& app);
Action add_pub_command(CLI::App& app);
Action add_req_command(CLI::App& app);
Action add_reply_command(CLI::App& app);
Action add_ping_command(CLI::App& app);
Action add_demo_command(CLI::App& app);
Action add_bench_command(CLI::App& app);
Action add_passwd_command(CLI::App& app);
Action add_stat_command(CLI::App& app);
Action add_sessions_command(CLI::App& app);
Action add_topics_command(CLI::App& app);

// "shm" for an shm:// URL, else "tcp": the transport a benchmark result names.
inline std::string transport_of(const std::string& url) {
  if (url.rfind("shm://", 0) == 0) return "shm";
  return url.rfind("tls://", 0) == 0 ? "tls" : "tcp";
}

}  // namespace brook::cli
