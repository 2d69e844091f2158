// brook passwd: sets PRINCIPAL's password in a credentials file. The password is the first line
// of standard input or, on a terminal, typed twice without echo.
#include <sodium.h>
#include <termios.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <iostream>
#include <stdexcept>

#include "brook/runtime/credentials.hpp"
#include "commands.hpp"

namespace brook::cli {

namespace {

using runtime::PasswordCost;

// The terminal settings to put back if a signal ends the process while echo is off. Written
// before the handlers are installed, read only by them.
termios saved_terminal;

extern "C" void restore_terminal_and_reraise(int signal) {
  ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_terminal);
  std::signal(signal, SIG_DFL);
  std::raise(signal);
}

// Turns off echo on the terminal on stdin for its lifetime, and puts it back even when Ctrl-C
// or another terminating signal arrives meanwhile. One at a time, on the main thread.
class EchoOff {
 public:
  EchoOff() {
    if (::tcgetattr(STDIN_FILENO, &saved_terminal) != 0) return;
    for (std::size_t i = 0; i < std::size(signals_); ++i) {
      struct sigaction action {};
      action.sa_handler = restore_terminal_and_reraise;
      ::sigemptyset(&action.sa_mask);
      ::sigaction(signals_[i], &action, &previous_[i]);
    }
    handlers_installed_ = true;
    termios quiet = saved_terminal;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    quiet.c_lflag |= ECHONL;  // the user still sees Enter take effect
    echo_off_ = ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet) == 0;
  }
  ~EchoOff() {
    if (echo_off_) ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_terminal);
    if (handlers_installed_)
      for (std::size_t i = 0; i < std::size(signals_); ++i)
        ::sigaction(signals_[i], &previous_[i], nullptr);
  }
  EchoOff(const EchoOff&) = delete;
  EchoOff& operator=(const EchoOff&) = delete;

 private:
  static constexpr int signals_[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
  struct sigaction previous_[std::size(signals_)] {};
  bool handlers_installed_ = false;
  bool echo_off_ = false;
};

// The next line of stdin without its '\n'; "" at end of input.
std::string read_line() {
  std::string line;
  std::getline(std::cin, line);
  return line;
}

std::string prompt_without_echo(const char* prompt) {
  std::fputs(prompt, stderr);
  std::fflush(stderr);
  EchoOff quiet;
  return read_line();
}

// Overwrites a password before its memory is released (best effort: std::string may have
// left copies behind when it grew).
void wipe(std::string& secret) {
  sodium_memzero(secret.data(), secret.size());
  secret.clear();
}

PasswordCost cost_named(const std::string& name) {
  if (name == "minimal") return PasswordCost::minimal;
  if (name == "moderate") return PasswordCost::moderate;
  return PasswordCost::interactive;
}

}  // namespace

Action add_passwd_command(CLI::App& app) {
  struct Args {
    std::string cost = "interactive";
    std::string file;
    std::string principal;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "passwd", "add or replace PRINCIPAL's password in the credentials FILE (read from stdin)");
  cmd->add_option("--cost", args->cost,
                  "argon2id cost: minimal (tests only), interactive (default, 64 MiB) or "
                  "moderate (256 MiB)")
      ->check(CLI::IsMember({"minimal", "interactive", "moderate"}));
  cmd->add_option("file", args->file, "credentials file (created if missing)")->required();
  cmd->add_option("principal", args->principal, "1 to 128 of A-Z a-z 0-9 . _ @ -")->required();

  return [args]() -> int {
    if (!runtime::is_valid_principal(args->principal)) {
      std::fprintf(stderr,
                   "brook passwd: invalid principal '%s' (1 to 128 of A-Z a-z 0-9 . _ @ -)\n",
                   args->principal.c_str());
      return exit_usage;
    }
    std::string password;
    if (::isatty(STDIN_FILENO)) {
      password = prompt_without_echo("Password: ");
      std::string again = prompt_without_echo("Password (again): ");
      bool same = password == again;
      wipe(again);
      if (!same) {
        wipe(password);
        std::fprintf(stderr, "brook passwd: the two passwords differ; nothing written\n");
        return exit_usage;
      }
    } else {
      password = read_line();
      if (std::cin.bad()) {
        std::fprintf(stderr, "brook passwd: cannot read standard input\n");
        return exit_usage;
      }
    }
    if (password.empty()) {
      std::fprintf(stderr, "brook passwd: refusing an empty password; nothing written\n");
      return exit_usage;
    }

    std::string hash;
    try {
      hash = runtime::hash_password(password, cost_named(args->cost));
    } catch (const std::runtime_error& e) {
      wipe(password);
      std::fprintf(stderr, "brook passwd: %s\n", e.what());
      return exit_usage;
    }
    wipe(password);

    std::string error;
    bool replaced = false;
    if (!runtime::write_credential(args->file, args->principal, hash, error, &replaced)) {
      std::fprintf(stderr, "brook passwd: %s\n", error.c_str());
      return exit_usage;
    }
    std::printf("%s %s %s\n", args->principal.c_str(), replaced ? "updated in" : "added to",
                args->file.c_str());
    return exit_ok;
  };
}

}  // namespace brook::cli
