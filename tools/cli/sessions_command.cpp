// brook sessions: brookd's sessions (/api/sessions) as a table, or its JSON verbatim.
#include <cstdio>

#include "api_json.hpp"
#include "broker_http.hpp"
#include "commands.hpp"
#include "ops_tables.hpp"

namespace brook::cli {

Action add_sessions_command(CLI::App& app) {
  struct Args {
    HttpArgs http;
    std::string sort = "queue";
    unsigned limit = 50;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("sessions", "list a running brookd's sessions through its HTTP side (plain http)");
  add_http_options(*cmd, args->http);
  cmd->add_option("--sort", args->sort,
                  "queue: most queued bytes first (default); recovery: largest recovery window first; "
                  "age: oldest first; activity: longest idle first")
      ->check(CLI::IsMember({"queue", "recovery", "age", "activity"}));
  cmd->add_option("--limit", args->limit, "at most N sessions (default 50)")->check(CLI::Range(1u, 1000000u));
  cmd->add_flag("--json", args->json, "print the broker's JSON answer as it is");

  return [args]() -> int {
    std::string error;
    auto http = BrokerHttp::open(args->http, error);
    if (!http) {
      std::fprintf(stderr, "brook sessions: %s\n", error.c_str());
      return exit_usage;
    }
    const std::string path = "/api/sessions?sort=" + args->sort + "&limit=" + std::to_string(args->limit);
    if (args->json) return http->print_verbatim(path, "sessions");
    auto answer = http->get_json(path, error);
    if (!answer) {
      std::fprintf(stderr, "brook sessions: %s\n", error.c_str());
      return exit_http_failure;
    }
    const auto& sessions = api::list(*answer, "sessions");
    std::string out = sessions_table(sessions, TableWidth::full);
    out += std::to_string(sessions.size()) + " of " + api::text(*answer, "total", "?") + " sessions, by " +
           api::text(*answer, "sort", args->sort) + "\n";
    if (const auto* silent = api::field(*answer, "silent_shards")) out += partial_answer_note(*silent);
    // The broker sends at most `limit` of them, newest first.
    if (const auto& closed = api::list(*answer, "closed"); !closed.empty())
      out += "\nrecently closed, newest first\n" + closed_sessions_table(closed);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return exit_ok;
  };
}

}  // namespace brook::cli
