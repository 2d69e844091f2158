// brook topics: brookd's topics (/api/topics) as a table, or its JSON verbatim.
#include <cstdio>

#include "api_json.hpp"
#include "broker_http.hpp"
#include "commands.hpp"
#include "ops_tables.hpp"

namespace brook::cli {

Action add_topics_command(CLI::App& app) {
  struct Args {
    HttpArgs http;
    std::string sort = "rate";
    std::string prefix;
    unsigned limit = 100;
    bool values = false;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("topics", "list a running brookd's topics through its HTTP side (plain http)");
  add_http_options(*cmd, args->http);
  cmd->add_option("--sort", args->sort,
                  "rate: most updates per second first (default); path; subscribers: most first")
      ->check(CLI::IsMember({"rate", "path", "subscribers"}));
  cmd->add_option("--prefix", args->prefix, "only topics whose path starts with P");
  cmd->add_option("--limit", args->limit, "at most N topics (default 100)")->check(CLI::Range(1u, 1000000u));
  cmd->add_flag("--values", args->values,
                "include each topic's current value (binary: hex of the first 64 bytes; cut after 4 KiB)");
  cmd->add_flag("--json", args->json, "print the broker's JSON answer as it is");

  return [args]() -> int {
    std::string error;
    auto http = BrokerHttp::open(args->http, error);
    if (!http) {
      std::fprintf(stderr, "brook topics: %s\n", error.c_str());
      return exit_usage;
    }
    std::string path = "/api/topics?sort=" + args->sort + "&limit=" + std::to_string(args->limit);
    if (!args->prefix.empty()) path += "&prefix=" + url_encode(args->prefix);
    if (args->values) path += "&values=1";
    if (args->json) return http->print_verbatim(path, "topics");
    auto answer = http->get_json(path, error);
    if (!answer) {
      std::fprintf(stderr, "brook topics: %s\n", error.c_str());
      return exit_http_failure;
    }
    const auto& topics = api::list(*answer, "topics");
    std::string out = topics_table(topics, TableWidth::full);
    out += std::to_string(topics.size()) + " of " + api::text(*answer, "total", "?") + " topics, by " +
           api::text(*answer, "sort", args->sort) + "\n";
    if (const auto* silent = api::field(*answer, "silent_shards")) out += partial_answer_note(*silent);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return exit_ok;
  };
}

}  // namespace brook::cli
