// brook: the command-line client (sub, pub, req, reply, ping, demo, bench, passwd) and the
// operator commands that read brookd's HTTP side (stat, sessions, topics).
#include <csignal>
#include <iostream>
#include <vector>

#include "brook/protocol.hpp"
#include "brook/version.hpp"
#include "commands.hpp"

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"brook: publish, subscribe and measure against a Brook broker"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("brook ") + BROOK_VERSION_STRING + " (wire protocol " +
                                        std::to_string(brook::wire_version) + ", libbrook-client " +
                                        brook::library_version() + ")");
  std::vector<std::pair<CLI::App*, brook::cli::Action>> commands;
  auto add = [&](brook::cli::Action (*registrar)(CLI::App&)) {
    std::size_t before = app.get_subcommands({}).size();
    auto action = registrar(app);
    commands.emplace_back(app.get_subcommands({})[before], std::move(action));
  };
  add(brook::cli::add_sub_command);
  add(brook::cli::add_pub_command);
  add(brook::cli::add_req_command);
  add(brook::cli::add_reply_command);
  add(brook::cli::add_ping_command);
  add(brook::cli::add_demo_command);
  add(brook::cli::add_bench_command);
  add(brook::cli::add_passwd_command);
  add(brook::cli::add_stat_command);
  add(brook::cli::add_sessions_command);
  add(brook::cli::add_topics_command);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = app.exit(e);
    return code == 0 ? 0 : brook::cli::exit_usage;
  }
  for (auto& [sub, action] : commands)
    if (sub->parsed()) return action();
  return brook::cli::exit_usage;
}
