// brook sub: prints PATH<TAB>TOPIC_SEQ<TAB>VALUE for every delivered value, always the whole
// value whether it travelled whole or as a delta; --wire adds a fourth field, `full N` or
// `delta N` (bytes on the wire). With --reconnect it resumes its session through dropped
// connections and starts a new one if the broker lost it. --history N / --since SEQ print
// the updates the broker kept before the live ones; a gap (updates no longer kept, or missed)
// is said on stderr, never silently.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <optional>
#include <thread>

#include "brook/client/client.hpp"
#include "commands.hpp"
#include "session_args.hpp"
#include "value_text.hpp"

namespace brook::cli {

Action add_sub_command(CLI::App& app) {
  struct Args {
    SessionArgs session;
    std::uint64_t count = 0;
    double timeout_s = 0;
    bool reconnect = false;
    bool wire = false;
    std::uint32_t history = 0;
    std::optional<std::uint64_t> since;
    std::vector<std::string> selectors;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("sub", "subscribe and print PATH<TAB>TOPIC_SEQ<TAB>VALUE lines");
  add_session_options(*cmd, args->session);
  cmd->add_option("--count", args->count, "exit 0 after this many lines");
  cmd->add_option("--timeout", args->timeout_s, "give up after SECONDS (exit 1 if --count was not reached)");
  cmd->add_flag("--reconnect", args->reconnect,
                "resume the session through dropped connections (with --session, also through a "
                "restart of a broker with a data dir); if the broker lost it (a restart without "
                "one), say so on stderr and subscribe afresh");
  cmd->add_flag("--wire", args->wire,
                "add a fourth field: how the value travelled, `full N` or `delta N` (N bytes)");
  cmd->add_option("--history", args->history,
                  "first the last N updates of each matching topic the broker kept, then the live ones");
  cmd->add_option("--since", args->since,
                  "first every update after topic sequence SEQ the broker kept, then the live ones")
      ->excludes("--history");
  cmd->add_option("selectors", args->selectors, "PATH, PATH/* (children) or PATH// (PATH and descendants)")
      ->required();

  return [args]() -> int {
    std::mutex mutex;
    std::condition_variable done_cv;
    bool done = false;
    bool session_lost = false;
    int exit_code = exit_ok;
    std::uint64_t printed = 0;
    auto finish = [&](int code) {
      std::lock_guard lock(mutex);
      if (done) return;
      done = true;
      exit_code = code;
      done_cv.notify_all();
    };
    std::string error;
    ClientOptions options = client_options(args->session, "brook-sub", args->reconnect, error);
    if (!error.empty()) {
      std::fprintf(stderr, "brook sub: %s\n", error.c_str());
      return exit_usage;
    }
    const auto started = std::chrono::steady_clock::now();
    auto deadline = started + std::chrono::milliseconds(static_cast<std::int64_t>(args->timeout_s * 1000));
    auto timed_out = [&] { return args->timeout_s > 0 && std::chrono::steady_clock::now() >= deadline; };

    std::string line;
    auto print = [&](const Update& u) {
      if (args->count && printed >= args->count) return;
      if (u.resync)
        std::fprintf(stderr, "brook sub: %.*s: updates before %llu were missed (not kept, or lost)\n",
                     static_cast<int>(u.path.size()), u.path.data(), static_cast<unsigned long long>(u.topic_seq));
      line.assign(u.path);
      line += '\t';
      line += std::to_string(u.topic_seq);
      line += '\t';
      line += value_to_text(u.type, u.value);
      if (args->wire) {
        line += u.encoding == UpdateEncoding::delta ? "\tdelta " : "\tfull ";
        line += std::to_string(u.wire_bytes);
      }
      line += '\n';
      std::fwrite(line.data(), 1, line.size(), stdout);
      if (args->count && ++printed == args->count) {
        std::fflush(stdout);
        finish(exit_ok);
      }
    };

    // One session per pass; with --reconnect a lost session (broker restarted) starts another.
    SubscribeOptions history{.history = args->history, .since = args->since};
    for (bool first = true;; first = false) {
      Client client;
      // Subscribed before connecting: a session taken over from a process that died replays
      // what it kept as soon as it is attached, and those updates need their subscription in
      // place to be printed.
      for (const auto& selector : args->selectors) {
        client.subscribe(selector, print, history, [&, selector](const Status& s) {
          // A failed connect fails the subscription too: the connect's own error says why.
          if (!s && s.code != ErrorCode::not_connected) {
            std::fprintf(stderr, "brook sub: %s\n", s.message.c_str());
            finish(exit_refused);
          }
        });
      }
      Status connected = client.connect(options);
      if (!connected) {
        if (!args->reconnect || first || refused_by_broker(connected)) {
          std::fprintf(stderr, "brook sub: %s\n", connected.message.c_str());
          return connect_failure_exit_code(connected);
        }
        if (timed_out()) break;
        std::this_thread::sleep_for(options.reconnect_delay);
        continue;
      }
      std::atomic<bool> closing_ourselves{false};
      client.on_close([&](const std::string& reason) {
        if (closing_ourselves.load()) return;
        if (args->reconnect) {
          std::fprintf(stderr, "brook sub: session lost (%s): subscribing afresh\n", reason.c_str());
          std::lock_guard lock(mutex);
          session_lost = true;
          done_cv.notify_all();
          return;
        }
        std::fprintf(stderr, "brook sub: session closed: %s\n", reason.c_str());
        finish(exit_refused);
      });
      client.on_error([&](const Status& s) { std::fprintf(stderr, "brook sub: %s\n", s.message.c_str()); });
      if (args->reconnect) {
        client.on_disconnect([](const std::string& reason) {
          std::fprintf(stderr, "brook sub: connection lost (%s): reconnecting\n", reason.c_str());
        });
        client.on_reconnect([](bool resync) {
          std::fprintf(stderr, resync ? "brook sub: reconnected; updates were missed, current values follow\n"
                                      : "brook sub: reconnected, nothing missed\n");
        });
        client.on_state_change([](ClientState from, ClientState to, const std::string& reason) {
          // The broker no longer had the session (it restarted): the client subscribed again.
          if (from == ClientState::recovering && to == ClientState::connected &&
              reason.rfind("new session", 0) == 0)
            std::fprintf(stderr, "brook sub: session lost: subscribing afresh in a %s\n", reason.c_str());
        });
      }

      std::unique_lock lock(mutex);
      while (!done && !session_lost) {
        // Flush a few times a second rather than per line: one write for many updates.
        done_cv.wait_for(lock, std::chrono::milliseconds(50));
        std::fflush(stdout);
        if (!done && timed_out()) {
          done = true;
          exit_code = args->count ? exit_timeout : exit_ok;
          if (args->count)
            std::fprintf(stderr, "brook sub: timed out after %.1f s with %llu of %llu lines\n",
                         args->timeout_s, (unsigned long long)printed, (unsigned long long)args->count);
        }
      }
      session_lost = false;
      const bool finished = done;
      lock.unlock();
      closing_ourselves.store(true);
      client.close();
      std::fflush(stdout);
      if (finished) return exit_code;
      options.session_number = args->session.session_number;  // the same name, a new session
      history = {};  // what was printed stays printed: the new session starts from current values
    }
    std::fflush(stdout);
    return args->count ? exit_timeout : exit_ok;
  };
}

}  // namespace brook::cli
