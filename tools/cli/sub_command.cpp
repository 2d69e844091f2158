// brook sub: prints PATH<TAB>TOPIC_SEQ<TAB>VALUE for every delivered value.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <thread>

#include "brook/client/client.hpp"
#include "commands.hpp"
#include "value_text.hpp"

namespace brook::cli {

Action add_sub_command(CLI::App& app) {
  struct Args {
    std::string url = default_url();
    std::uint64_t count = 0;
    double timeout_s = 0;
    std::vector<std::string> selectors;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("sub", "subscribe and print PATH<TAB>TOPIC_SEQ<TAB>VALUE lines");
  cmd->add_option("--url", args->url, "broker URL (default $BROOK_URL or tcp://127.0.0.1:9090)");
  cmd->add_option("--count", args->count, "exit 0 after this many lines");
  cmd->add_option("--timeout", args->timeout_s, "give up after SECONDS (exit 1 if --count was not reached)");
  cmd->add_option("selectors", args->selectors, "PATH, PATH/* (children) or PATH// (PATH and descendants)")
      ->required();

  return [args]() -> int {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    int exit_code = exit_ok;
    std::uint64_t printed = 0;
    auto finish = [&](int code) {
      std::lock_guard lock(mutex);
      if (done) return;
      done = true;
      exit_code = code;
      done_cv.notify_all();
    };

    Client client;
    if (auto s = client.connect({.url = args->url}); !s) {
      std::fprintf(stderr, "brook sub: %s\n", s.message.c_str());
      return exit_usage;
    }
    std::atomic<bool> closing_ourselves{false};
    client.on_close([&](const std::string& reason) {
      if (closing_ourselves.load()) return;
      std::fprintf(stderr, "brook sub: session closed: %s\n", reason.c_str());
      finish(exit_refused);
    });
    client.on_error([&](const Status& s) { std::fprintf(stderr, "brook sub: %s\n", s.message.c_str()); });

    std::string line;
    for (const auto& selector : args->selectors) {
      client.subscribe(
          selector,
          [&](const Update& u) {
            if (args->count && printed >= args->count) return;
            line.assign(u.path);
            line += '\t';
            line += std::to_string(u.topic_seq);
            line += '\t';
            line += value_to_text(u.type, u.value);
            line += '\n';
            std::fwrite(line.data(), 1, line.size(), stdout);
            if (args->count && ++printed == args->count) {
              std::fflush(stdout);
              finish(exit_ok);
            }
          },
          [&, selector](const Status& s) {
            if (!s) {
              std::fprintf(stderr, "brook sub: %s\n", s.message.c_str());
              finish(exit_refused);
            }
          });
    }

    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<std::int64_t>(args->timeout_s * 1000));
    std::unique_lock lock(mutex);
    while (!done) {
      // Flush a few times a second rather than per line: one write for many updates.
      done_cv.wait_for(lock, std::chrono::milliseconds(50));
      std::fflush(stdout);
      if (!done && args->timeout_s > 0 && std::chrono::steady_clock::now() >= deadline) {
        done = true;
        exit_code = args->count ? exit_timeout : exit_ok;
        if (args->count)
          std::fprintf(stderr, "brook sub: timed out after %.1f s with %llu of %llu lines\n",
                       args->timeout_s, (unsigned long long)printed, (unsigned long long)args->count);
      }
    }
    lock.unlock();
    closing_ourselves.store(true);
    client.close();
    std::fflush(stdout);
    return exit_code;
  };
}

}  // namespace brook::cli
