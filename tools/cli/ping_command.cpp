// brook ping: round trips to the broker, with times, like ping(8).
#include <algorithm>
#include <cstdio>
#include <thread>

#include "brook/client/client.hpp"
#include "commands.hpp"

namespace brook::cli {

Action add_ping_command(CLI::App& app) {
  struct Args {
    std::string url = default_url();
    unsigned count = 5;
    unsigned interval_ms = 200;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("ping", "measure round trips to the broker");
  cmd->add_option("--url", args->url, "broker URL: tcp://HOST:PORT or shm://PATH (default $BROOK_URL or tcp://127.0.0.1:9090)");
  cmd->add_option("--count", args->count, "round trips (default 5)");
  cmd->add_option("--interval-ms", args->interval_ms, "pause between round trips (default 200)");

  return [args]() -> int {
    Client client;
    if (auto s = client.connect({.url = args->url}); !s) {
      std::fprintf(stderr, "brook ping: %s\n", s.message.c_str());
      return exit_usage;
    }
    std::vector<double> times_us;
    for (unsigned i = 1; i <= args->count; ++i) {
      auto answer = client.ping();
      if (answer.wait_for(std::chrono::seconds(5)) != std::future_status::ready) {
        std::printf("no answer for round trip %u within 5 s\n", i);
        return exit_timeout;
      }
      double us;
      try {
        us = std::chrono::duration<double, std::micro>(answer.get()).count();
      } catch (const std::exception& e) {
        std::fprintf(stderr, "brook ping: %s\n", e.what());
        return exit_refused;
      }
      times_us.push_back(us);
      std::printf("pong from %s: seq=%u time=%.1f us\n", args->url.c_str(), i, us);
      std::fflush(stdout);
      if (i < args->count) std::this_thread::sleep_for(std::chrono::milliseconds(args->interval_ms));
    }
    std::sort(times_us.begin(), times_us.end());
    double sum = 0;
    for (double t : times_us) sum += t;
    std::printf("%zu round trips: min/median/max = %.1f/%.1f/%.1f us, mean %.1f us\n",
                times_us.size(), times_us.front(), times_us[times_us.size() / 2], times_us.back(),
                sum / static_cast<double>(times_us.size()));
    client.close();
    return exit_ok;
  };
}

}  // namespace brook::cli
