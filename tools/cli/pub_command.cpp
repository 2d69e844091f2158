// brook pub: publishes VALUE, or each line of standard input as one update, in order. Exits
// non-zero if the broker refused any of them.
#include <cstdio>
#include <deque>
#include <iostream>
#include <optional>

#include "brook/client/client.hpp"
#include "commands.hpp"
#include "session_args.hpp"
#include "value_text.hpp"

namespace brook::cli {

Action add_pub_command(CLI::App& app) {
  struct Args {
    SessionArgs session;
    std::string type;
    bool conflate = false;
    bool no_deltas = false;
    bool dont_retain = false;
    bool transient = false;
    std::optional<std::int32_t> history;
    std::string path;
    std::optional<std::string> value;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("pub", "publish VALUE, or each line of standard input, to PATH");
  add_session_options(*cmd, args->session);
  cmd->add_option("--type", args->type, "topic type when this creates it: json, string, binary (base64), int64, double");
  cmd->add_flag("--conflate", args->conflate,
                "create the topic as conflated: a subscriber that falls behind gets the latest value");
  cmd->add_flag("--no-deltas", args->no_deltas,
                "create the topic without deltas: subscribers always get whole values");
  cmd->add_flag("--dont-retain", args->dont_retain,
                "create the topic as an event stream: no current value is kept for new subscribers");
  cmd->add_flag("--transient", args->transient,
                "create the topic as transient: never journalled, gone after a broker restart");
  cmd->add_option("--history", args->history,
                  "create the topic keeping its last N updates for subscribers that ask (default: "
                  "the broker's history.depth)")
      ->check(CLI::Range(0, 16777216));
  cmd->add_option("path", args->path, "topic path, e.g. Distribution/Football/NFL/Odds")->required();
  cmd->add_option("value", args->value, "the value (default: one update per line of stdin)");

  return [args]() -> int {
    std::optional<TopicType> type;
    if (!args->type.empty()) {
      type = brook::parse_topic_type(args->type);
      if (!type) {
        std::fprintf(stderr, "brook pub: unknown type '%s'\n", args->type.c_str());
        return exit_usage;
      }
    }
    // Publishes resume through dropped connections: the session resends what the broker
    // did not get, so each line is published once.
    std::string error;
    ClientOptions options = client_options(args->session, "brook-pub", true, error);
    if (!error.empty()) {
      std::fprintf(stderr, "brook pub: %s\n", error.c_str());
      return exit_usage;
    }
    Client client;
    if (auto s = client.connect(options); !s) {
      std::fprintf(stderr, "brook pub: %s\n", s.message.c_str());
      return connect_failure_exit_code(s);
    }
    client.on_disconnect([](const std::string& reason) {
      std::fprintf(stderr, "brook pub: connection lost (%s): reconnecting\n", reason.c_str());
    });
    if (args->conflate || args->no_deltas || args->dont_retain || args->transient || args->history) {
      Status created = client.create_topic(args->path, {.type = type.value_or(TopicType::string),
                                                        .conflate = args->conflate,
                                                        .deltas = !args->no_deltas,
                                                        .retain = !args->dont_retain,
                                                        .history = args->history.value_or(-1),
                                                        .durable = !args->transient})
                           .get();
      if (!created) {
        std::fprintf(stderr, "brook pub: cannot create %s: %s\n", args->path.c_str(), created.message.c_str());
        client.close();
        return exit_refused;
      }
    }
    // Acknowledged publishes, pipelined: the window bounds memory, not throughput.
    constexpr std::size_t window = 4096;
    std::deque<std::future<Status>> in_flight;
    int exit_code = exit_ok;
    auto settle = [&](std::size_t keep) {
      while (in_flight.size() > keep) {
        Status s = in_flight.front().get();
        in_flight.pop_front();
        if (!s) {
          std::fprintf(stderr, "brook pub: refused: %s\n", s.message.c_str());
          exit_code = exit_refused;
        }
      }
    };
    auto publish = [&](std::string_view text) {
      auto value = value_from_text(type, text);
      if (!value) {
        std::fprintf(stderr, "brook pub: '%.*s' is not a valid %s value\n", int(text.size()),
                     text.data(), args->type.c_str());
        exit_code = exit_usage;
        return;
      }
      in_flight.push_back(client.publish_acked(args->path, *value, type));
      settle(window);
    };
    if (args->value) {
      publish(*args->value);
    } else {
      std::string line;
      while (std::getline(std::cin, line)) publish(line);
    }
    settle(0);
    client.close();
    return exit_code;
  };
}

}  // namespace brook::cli
