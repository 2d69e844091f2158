// brook stat: a live view of a running brookd through its HTTP side, refreshed every
// --interval seconds: rates, shards, the slowest sessions and the busiest topics.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <thread>

#include "api_json.hpp"
#include "broker_http.hpp"
#include "commands.hpp"
#include "stat_view.hpp"

namespace brook::cli {

namespace {

std::string local_clock() {
  std::time_t now = std::time(nullptr);
  std::tm parts{};
  ::localtime_r(&now, &parts);
  char text[16];
  std::strftime(text, sizeof text, "%H:%M:%S", &parts);
  return text;
}

// `text` drawn over the previous refresh without flicker: the screen is cleared once, then
// each refresh goes home, writes its lines clearing what is left of each, and clears below.
std::string redrawn(const std::string& text, bool first) {
  std::string out = first ? "\x1b[H\x1b[2J" : "\x1b[H";
  for (char ch : text) {
    if (ch == '\n') out += "\x1b[K";
    out += ch;
  }
  return out + "\x1b[J";
}

// The three reads of one refresh, or the first failure's message.
std::optional<StatSnapshot> sample(const BrokerHttp& http, std::string& error) {
  StatSnapshot snapshot;
  auto broker = http.get_json("/api/broker", error);
  if (!broker) return std::nullopt;
  auto sessions = http.get_json("/api/sessions?sort=queue&limit=5", error);
  if (!sessions) return std::nullopt;
  auto topics = http.get_json("/api/topics?sort=rate&limit=5", error);
  if (!topics) return std::nullopt;
  snapshot.broker = std::move(*broker);
  snapshot.sessions = api::list(*sessions, "sessions");
  snapshot.topics = api::list(*topics, "topics");
  for (const auto* answer : {&*sessions, &*topics})
    for (const auto& shard : api::list(*answer, "silent_shards"))
      if (std::find(snapshot.silent_shards.begin(), snapshot.silent_shards.end(), shard) == snapshot.silent_shards.end())
        snapshot.silent_shards.push_back(shard);
  return snapshot;
}

}  // namespace

Action add_stat_command(CLI::App& app) {
  struct Args {
    HttpArgs http;
    double interval_s = 1;
    std::uint64_t count = 0;
    bool json = false;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("stat", "live view of a running brookd through its HTTP side (plain http)");
  add_http_options(*cmd, args->http);
  cmd->add_option("--interval", args->interval_s, "seconds between refreshes (default 1)")
      ->check(CLI::Range(0.05, 3600.0));
  cmd->add_option("--count", args->count, "stop after N refreshes (default: until interrupted)");
  cmd->add_flag("--json", args->json,
                "one JSON object per refresh, one line each: {\"broker\":...,\"sessions\":[...],\"topics\":[...]}");

  return [args]() -> int {
    std::string error;
    auto http = BrokerHttp::open(args->http, error);
    if (!http) {
      std::fprintf(stderr, "brook stat: %s\n", error.c_str());
      return exit_usage;
    }
    // Redrawn in place on a terminal; a log of blocks, a blank line apart, anywhere else.
    const bool redraw = !args->json && ::isatty(STDOUT_FILENO);
    const auto interval = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
        std::chrono::duration<double>(args->interval_s));
    auto next = std::chrono::steady_clock::now();
    for (std::uint64_t refresh = 1;; ++refresh) {
      auto snapshot = sample(*http, error);
      if (!snapshot) {
        std::fprintf(stderr, "brook stat: %s\n", error.c_str());
        return exit_http_failure;
      }
      std::string text = args->json ? stat_json_line(*snapshot)
                                    : stat_view(*snapshot, http->address().text(), local_clock());
      if (redraw)
        text = redrawn(text, refresh == 1);
      else if (!args->json && refresh > 1)
        text = "\n" + text;
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
      if (args->count != 0 && refresh >= args->count) return exit_ok;
      next += interval;  // a steady cadence: the time the reads took is not added to it
      auto now = std::chrono::steady_clock::now();
      if (next < now) next = now;
      std::this_thread::sleep_until(next);
    }
  };
}

}  // namespace brook::cli
