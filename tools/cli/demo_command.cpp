// brook demo: a sports-odds feed. Creates Distribution/Football/NFL/<match>/Odds json topics
// and, at a fixed rate, changes a few fields of one match at a time, as a bookmaker's feed does.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <random>
#include <thread>

#include "brook/client/client.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "commands.hpp"

namespace brook::cli {

namespace {

std::atomic<bool> demo_stop{false};

struct Match {
  std::string path;
  double spread;   // home spread, in half points
  int home_odds;   // American odds
  int away_odds;
  double total;
  int over_odds;
  int under_odds;
};

std::string signed_text(double v) {
  char b[16];
  std::snprintf(b, sizeof b, "%+.1f", v);
  return b;
}
std::string odds_text(int v) { return v > 0 ? "+" + std::to_string(v) : std::to_string(v); }

std::string to_json(const Match& m) {
  return "{\"Home_Spread\":\"" + signed_text(m.spread) + "\",\"Home_Odds\":\"" +
         odds_text(m.home_odds) + "\",\"Away_Spread\":\"" + signed_text(-m.spread) +
         "\",\"Away_Odds\":\"" + odds_text(m.away_odds) + "\",\"Total\":\"" +
         signed_text(m.total).substr(1) + "\",\"Over_Odds\":\"" + odds_text(m.over_odds) +
         "\",\"Under_Odds\":\"" + odds_text(m.under_odds) + "\"}";
}

int nudge_odds(int odds, std::mt19937& rng) {
  // American odds skip the band (-100, +100).
  int step = std::uniform_int_distribution<int>(-3, 3)(rng) * 5;
  int next = odds + step;
  if (next > -100 && next < 100) next = odds > 0 ? -100 - (100 - next) : 100 + (next + 100);
  return next;
}

}  // namespace

Action add_demo_command(CLI::App& app) {
  struct Args {
    std::string url = default_url();
    double rate = 20;
    unsigned matches = 16;
    double duration_s = 0;
    unsigned seed = 2026;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("demo", "run a sports-odds feed under Distribution/Football/NFL");
  cmd->add_option("--url", args->url, "broker URL (default $BROOK_URL or tcp://127.0.0.1:9090)");
  cmd->add_option("--rate", args->rate, "updates per second (default 20)");
  cmd->add_option("--matches", args->matches, "number of matches (default 16)");
  cmd->add_option("--duration", args->duration_s, "seconds to run (default: until Ctrl-C)");
  cmd->add_option("--seed", args->seed, "random seed");

  return [args]() -> int {
    static const char* teams[] = {"Bills",   "Dolphins", "Patriots", "Jets",    "Ravens",  "Bengals",
                                  "Browns",  "Steelers", "Texans",   "Colts",   "Jaguars", "Titans",
                                  "Broncos", "Chiefs",   "Raiders",  "Chargers", "Cowboys", "Giants",
                                  "Eagles",  "Commanders", "Bears",  "Lions",   "Packers", "Vikings",
                                  "Falcons", "Panthers", "Saints",   "Buccaneers", "Cardinals", "Rams",
                                  "49ers",   "Seahawks"};
    std::mt19937 rng(args->seed);
    std::vector<Match> matches;
    for (unsigned i = 0; i < args->matches; ++i) {
      std::string home = teams[(2 * i) % 32], away = teams[(2 * i + 1) % 32];
      if (i >= 16) home += " " + std::to_string(i / 16 + 1);
      double spread = std::uniform_int_distribution<int>(-28, 28)(rng) * 0.5;
      matches.push_back({"Distribution/Football/NFL/" + home + " vs " + away + "/Odds", spread,
                         spread > 0 ? 120 : -140, spread > 0 ? -140 : 120,
                         std::uniform_int_distribution<int>(76, 110)(rng) * 0.5, -110, -110});
    }

    Client client;
    if (auto s = client.connect({.url = args->url, .client_name = "brook-demo"}); !s) {
      std::fprintf(stderr, "brook demo: %s\n", s.message.c_str());
      return exit_usage;
    }
    client.on_error([](const Status& s) { std::fprintf(stderr, "brook demo: %s\n", s.message.c_str()); });
    for (auto& m : matches) {
      if (auto s = client.create_topic(m.path, TopicType::json).get(); !s) {
        std::fprintf(stderr, "brook demo: %s\n", s.message.c_str());
        return exit_refused;
      }
      client.publish(m.path, to_json(m));
    }
    std::fprintf(stderr, "brook demo: %u matches under Distribution/Football/NFL, %.0f updates/s\n",
                 args->matches, args->rate);

    std::signal(SIGINT, [](int) { demo_stop.store(true); });
    std::signal(SIGTERM, [](int) { demo_stop.store(true); });
    runtime::RatePacer pacer(args->rate, std::chrono::steady_clock::now());
    auto end = std::chrono::steady_clock::now() +
               std::chrono::milliseconds(static_cast<std::int64_t>(args->duration_s * 1000));
    for (std::uint64_t i = 0; !demo_stop.load(); ++i) {
      if (args->duration_s > 0 && std::chrono::steady_clock::now() >= end) break;
      pacer.wait_until_due(i);
      Match& m = matches[std::uniform_int_distribution<std::size_t>(0, matches.size() - 1)(rng)];
      // A few fields change at a time: odds most often, the line now and then.
      switch (std::uniform_int_distribution<int>(0, 5)(rng)) {
        case 0: m.spread += std::uniform_int_distribution<int>(-1, 1)(rng) * 0.5; break;
        case 1: m.total += std::uniform_int_distribution<int>(-1, 1)(rng) * 0.5; break;
        case 2: m.over_odds = nudge_odds(m.over_odds, rng); m.under_odds = nudge_odds(m.under_odds, rng); break;
        default: m.home_odds = nudge_odds(m.home_odds, rng); m.away_odds = nudge_odds(m.away_odds, rng);
      }
      client.publish(m.path, to_json(m));
      if (!client.is_connected()) {
        std::fprintf(stderr, "brook demo: lost the broker\n");
        return exit_refused;
      }
    }
    client.close();
    return exit_ok;
  };
}

}  // namespace brook::cli
