// brook demo: a sports-odds feed. Creates Distribution/Football/NFL/<match>/Odds json topics
// and, at a fixed rate, changes a few fields of one match at a time, as a bookmaker's feed does.
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

#include "brook/client/client.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "commands.hpp"
#include "odds_feed.hpp"

namespace brook::cli {

namespace {

std::atomic<bool> demo_stop{false};

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
  cmd->add_option("--url", args->url, "broker URL: tcp://HOST:PORT or shm://PATH (default $BROOK_URL or tcp://127.0.0.1:9090)");
  cmd->add_option("--rate", args->rate, "updates per second (default 20)");
  cmd->add_option("--matches", args->matches, "number of matches (default 16)");
  cmd->add_option("--duration", args->duration_s, "seconds to run (default: until Ctrl-C)");
  cmd->add_option("--seed", args->seed, "random seed");

  return [args]() -> int {
    OddsFeed feed("Distribution/Football/NFL", args->matches, args->seed);

    Client client;
    if (auto s = client.connect({.url = args->url, .client_name = "brook-demo"}); !s) {
      std::fprintf(stderr, "brook demo: %s\n", s.message.c_str());
      return exit_usage;
    }
    client.on_error([](const Status& s) { std::fprintf(stderr, "brook demo: %s\n", s.message.c_str()); });
    for (std::size_t m = 0; m < feed.size(); ++m) {
      if (auto s = client.create_topic(feed.path(m), TopicType::json).get(); !s) {
        std::fprintf(stderr, "brook demo: %s\n", s.message.c_str());
        return exit_refused;
      }
      client.publish(feed.path(m), feed.value(m));
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
      std::size_t m = feed.step();
      client.publish(feed.path(m), feed.value(m));
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
