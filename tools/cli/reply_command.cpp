// brook reply: handles the requests sent to PATH until SIGINT or SIGTERM (exit 0) or until the
// session closes (exit 3). It echoes each payload back, or with --exec answers with what a
// shell command prints for it. The session resumes through dropped connections and the client
// library registers the handler again on the resumed connection.
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <list>
#include <mutex>
#include <set>
#include <thread>

#include "brook/client/client.hpp"
#include "brook/codec/frame.hpp"
#include "commands.hpp"
#include "session_args.hpp"

extern char** environ;

namespace brook::cli {

namespace {

// Beyond this many commands at once a request fails at once ("busy") instead of queueing.
constexpr std::size_t max_running_commands = 64;
// An answer must fit in a frame; a command that prints more is killed and its request fails.
constexpr std::size_t max_output_bytes = codec::default_max_frame_bytes - (64u << 10);
// The start of the command's stderr that becomes the failure message.
constexpr std::size_t max_message_bytes = 4096;
// On stopping, commands get SIGTERM, and SIGKILL if they are still running after this.
constexpr auto stop_grace = std::chrono::seconds(2);

std::string_view trimmed(std::string_view text) {
  constexpr std::string_view blanks = " \t\r\n";
  auto first = text.find_first_not_of(blanks);
  if (first == std::string_view::npos) return {};
  return text.substr(first, text.find_last_not_of(blanks) - first + 1);
}

// What one run of the command produced.
struct CommandOutput {
  std::string out;
  std::string err;          // its first max_message_bytes
  int wait_status = 0;      // from waitpid, when `problem` is empty
  std::string problem;      // why it did not run to completion
};

// Runs --exec commands, each on its own thread, so that the client thread never waits for one.
// Owns those threads and the process groups of the commands not yet reaped. start() runs on
// the client thread (in the request handler); stop() on the main thread, before the client
// closes; both may overlap with the workers, which take the mutex to register their commands.
class CommandRunner {
 public:
  // time_limit zero: none.
  CommandRunner(std::string command, std::chrono::milliseconds time_limit)
      : command_(std::move(command)), time_limit_(time_limit) {}
  ~CommandRunner() { stop(); }
  CommandRunner(const CommandRunner&) = delete;
  CommandRunner& operator=(const CommandRunner&) = delete;

  void start(std::string input, TopicType type, Responder responder) {
    std::list<Worker> done;
    std::lock_guard lock(mutex_);
    if (stopping_) return responder.fail("brook reply is stopping");
    // Finished workers are joined here, at the next request, and by stop().
    for (auto it = workers_.begin(); it != workers_.end();) {
      auto next = std::next(it);
      if (it->finished) done.splice(done.end(), workers_, it);
      it = next;
    }
    for (auto& worker : done) worker.thread.join();  // each has returned or is returning
    if (workers_.size() >= max_running_commands)
      return responder.fail("busy: " + std::to_string(max_running_commands) + " commands running");
    auto self = workers_.emplace(workers_.end());
    self->thread = std::thread([this, self, input = std::move(input), type,
                                responder = std::move(responder)]() mutable {
      answer(run(input), type, responder);
      std::lock_guard lock(mutex_);
      self->finished = true;
    });
  }

  // Ends the commands still running (SIGTERM, then SIGKILL after stop_grace) and joins every
  // worker; their requests fail. Later requests fail at once.
  void stop() {
    std::list<Worker> all;
    {
      std::unique_lock lock(mutex_);
      stopping_ = true;
      for (pid_t group : running_) ::kill(-group, SIGTERM);
      if (!reaped_.wait_for(lock, stop_grace, [&] { return running_.empty(); }))
        for (pid_t group : running_) ::kill(-group, SIGKILL);
      all.splice(all.end(), workers_);
    }
    for (auto& worker : all) worker.thread.join();
  }

 private:
  struct Worker {
    std::thread thread;
    bool finished = false;  // guarded by mutex_
  };

  // The command through /bin/sh -c, `input` on its stdin, in a process group of its own so
  // that stop() reaches whatever it starts. Its stdin is written while stdout and stderr are
  // read, so a command that prints before it has read everything cannot deadlock with us.
  CommandOutput run(const std::string& input) {
    CommandOutput result;
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    auto close_all = [&] {
      for (int* fd : {&in[0], &in[1], &out[0], &out[1], &err[0], &err[1]})
        if (*fd >= 0) ::close(std::exchange(*fd, -1));
    };
    if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) {
      result.problem = std::string("cannot run the command: pipe: ") + std::strerror(errno);
      close_all();
      return result;
    }
    pid_t pid = spawn(in[0], out[1], err[1], result.problem);
    ::close(std::exchange(in[0], -1));
    ::close(std::exchange(out[1], -1));
    ::close(std::exchange(err[1], -1));
    if (pid < 0) {
      close_all();
      return result;
    }
    {
      std::lock_guard lock(mutex_);
      running_.insert(pid);
      // stop() has already swept the running commands: this one goes at once.
      if (stopping_) ::kill(-pid, SIGKILL);
    }
    ::fcntl(in[1], F_SETFL, ::fcntl(in[1], F_GETFL) | O_NONBLOCK);
    if (input.empty()) ::close(std::exchange(in[1], -1));

    // The command's end is watched too (a pidfd): one that closes its output and keeps
    // running still meets the time limit.
    int ended = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
    const auto deadline = std::chrono::steady_clock::now() + time_limit_;
    std::size_t written = 0;
    char buffer[65536];
    while (in[1] >= 0 || out[0] >= 0 || err[0] >= 0 || ended >= 0) {
      pollfd fds[4] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}, {in[1], POLLOUT, 0}, {ended, POLLIN, 0}};
      int wait_ms = -1;
      if (time_limit_.count() > 0) {
        auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
          char limit[32];
          std::snprintf(limit, sizeof limit, "%g", static_cast<double>(time_limit_.count()) / 1000);
          result.problem = std::string("the command ran longer than --exec-timeout (") + limit + " s): killed";
          ::kill(-pid, SIGKILL);
          ::kill(pid, SIGKILL);  // should the shell have left its group, waitid below still ends
          break;
        }
        wait_ms = static_cast<int>(std::min<std::int64_t>(left.count(), 60'000));
      }
      if (::poll(fds, 4, wait_ms) < 0) {
        if (errno == EINTR) continue;
        result.problem = std::string("poll: ") + std::strerror(errno);
        ::kill(-pid, SIGKILL);
        break;
      }
      // It ended: what it printed is still read to the end (its pipes may outlive it, held by
      // a child it left running).
      if (ended >= 0 && (fds[3].revents & (POLLIN | POLLHUP | POLLERR))) ::close(std::exchange(ended, -1));
      for (int i = 0; i < 2; ++i) {
        int& fd = i == 0 ? out[0] : err[0];
        if (fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
          ::close(std::exchange(fd, -1));
          continue;
        }
        std::string& sink = i == 0 ? result.out : result.err;
        std::size_t keep = i == 0 ? static_cast<std::size_t>(n)
                                  : std::min<std::size_t>(n, max_message_bytes - std::min(max_message_bytes, sink.size()));
        sink.append(buffer, keep);
      }
      if (result.out.size() > max_output_bytes && result.problem.empty()) {
        result.problem = "the command printed more than " + std::to_string(max_output_bytes) + " bytes";
        ::kill(-pid, SIGKILL);
        break;
      }
      if (in[1] >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
        ssize_t n = ::write(in[1], input.data() + written, input.size() - written);
        if (n > 0) written += static_cast<std::size_t>(n);
        // EPIPE: the command does not read (all of) its input, which is its business.
        if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input.size())
          ::close(std::exchange(in[1], -1));
      }
    }
    close_all();
    if (ended >= 0) ::close(ended);

    // Wait without reaping, forget the group, then reap: until then the group id cannot be
    // reused, so stop() never signals a stranger.
    siginfo_t info{};
    while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {
    }
    {
      std::lock_guard lock(mutex_);
      running_.erase(pid);
      reaped_.notify_all();
    }
    while (::waitpid(pid, &result.wait_status, 0) < 0 && errno == EINTR) {
    }
    return result;
  }

  // posix_spawn of /bin/sh -c COMMAND with the given stdio, default signal handling (brook
  // blocks and ignores some) and its own process group. -1 and `problem` on failure.
  pid_t spawn(int in, int out, int err, std::string& problem) {
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attributes;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attributes);
    posix_spawn_file_actions_adddup2(&actions, in, 0);
    posix_spawn_file_actions_adddup2(&actions, out, 1);
    posix_spawn_file_actions_adddup2(&actions, err, 2);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGPIPE, SIGINT, SIGTERM, SIGUSR1}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setpgroup(&attributes, 0);
    posix_spawnattr_setflags(&attributes,
                             POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
    char sh[] = "/bin/sh", dash_c[] = "-c";
    char* argv[] = {sh, dash_c, const_cast<char*>(command_.c_str()), nullptr};
    pid_t pid = -1;
    int rc = ::posix_spawn(&pid, sh, &actions, &attributes, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attributes);
    if (rc != 0) {
      problem = std::string("cannot run /bin/sh: ") + std::strerror(rc);
      return -1;
    }
    return pid;
  }

  // The command's stdout (less one trailing newline) as the answer, or the failure: its
  // stderr, else how it ended.
  void answer(CommandOutput&& result, TopicType type, Responder& responder) {
    bool stopping;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
    }
    if (!result.problem.empty()) return responder.fail(result.problem);
    const int status = result.wait_status;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      if (result.out.ends_with('\n')) result.out.pop_back();
      return responder.respond(std::as_bytes(std::span(result.out)), type);
    }
    if (stopping) return responder.fail("brook reply is stopping");
    std::string message(trimmed(result.err));
    if (message.empty())
      message = WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                  : "killed by signal " + std::to_string(WTERMSIG(status));
    responder.fail(message);
  }

  const std::string command_;
  const std::chrono::milliseconds time_limit_;
  std::mutex mutex_;
  std::condition_variable reaped_;  // a command left running_
  std::list<Worker> workers_;
  std::set<pid_t> running_;  // process groups (= the shells' pids) not yet reaped
  bool stopping_ = false;
};

}  // namespace

Action add_reply_command(CLI::App& app) {
  struct Args {
    SessionArgs session;
    bool non_sticky = false;
    std::string path;
    std::optional<std::string> exec;
    double exec_timeout_s = 60;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("reply", "answer the requests sent to PATH until SIGINT or SIGTERM");
  add_session_options(*cmd, args->session);
  cmd->add_flag("--non-sticky", args->non_sticky,
                "share requests round-robin with PATH's other handlers instead of keeping each "
                "requester on the handler it reached first");
  cmd->add_option("--exec", args->exec,
                  "answer with COMMAND's output: run by /bin/sh -c with the payload on stdin; a "
                  "non-zero exit fails the request with its stderr");
  cmd->add_option("--exec-timeout", args->exec_timeout_s,
                  "seconds a COMMAND may run (default 60, 0: no limit); past it, its process group "
                  "is killed and the request fails")
      ->check(CLI::Range(0.0, 1e7));  // up to ~115 days: the deadline stays far from overflow
  cmd->add_option("path", args->path, "the endpoint, e.g. Pricing/Quote")->required();

  return [args]() -> int {
    // SIGINT and SIGTERM stop it; SIGUSR1 is how the client thread says that the session
    // closed. Blocked before the client starts its thread, so that every thread inherits the
    // mask and the main thread takes them all with sigwait. A shell starts background jobs
    // with SIGINT ignored, and an ignored signal never reaches sigwait: defaults first.
    std::signal(SIGINT, SIG_DFL);
    std::signal(SIGTERM, SIG_DFL);
    sigset_t wake;
    sigemptyset(&wake);
    for (int s : {SIGINT, SIGTERM, SIGUSR1}) sigaddset(&wake, s);
    pthread_sigmask(SIG_BLOCK, &wake, nullptr);

    std::string error;
    ClientOptions options = client_options(args->session, "brook-reply", true, error);
    if (!error.empty()) {
      std::fprintf(stderr, "brook reply: %s\n", error.c_str());
      return exit_usage;
    }
    // Declared before the client, so that the client (and its handler calls) goes first.
    std::optional<CommandRunner> runner;
    if (args->exec)
      runner.emplace(*args->exec,  // a limit under a millisecond rounds up, not down to "none"
                     std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(args->exec_timeout_s * 1000))));
    Client client;
    if (auto s = client.connect(options); !s) {
      std::fprintf(stderr, "brook reply: %s\n", s.message.c_str());
      return connect_failure_exit_code(s);
    }
    const pthread_t main_thread = pthread_self();
    std::atomic<bool> closing_ourselves{false};
    std::atomic<bool> session_closed{false};
    std::mutex reason_mutex;
    std::string close_reason;
    client.on_close([&](const std::string& reason) {
      if (closing_ourselves.load(std::memory_order_relaxed)) return;
      {
        std::lock_guard lock(reason_mutex);
        close_reason = reason;
      }
      // release: pairs with the acquire after sigwait in the main thread.
      session_closed.store(true, std::memory_order_release);
      pthread_kill(main_thread, SIGUSR1);
    });
    client.on_error([](const Status& s) { std::fprintf(stderr, "brook reply: %s\n", s.message.c_str()); });
    if (options.reconnect_timeout.count() > 0) {
      client.on_disconnect([](const std::string& reason) {
        std::fprintf(stderr, "brook reply: connection lost (%s): reconnecting\n", reason.c_str());
      });
      client.on_reconnect([](bool) { std::fprintf(stderr, "brook reply: reconnected\n"); });
    }

    RequestHandler handler;
    if (runner)
      handler = [&runner](const Request& request, Responder responder) {
        runner->start(std::string(request.text()), request.type, std::move(responder));
      };
    else
      handler = [](const Request& request, Responder responder) {
        responder.respond(request.payload, request.type);
      };
    HandlerOptions handler_options;
    if (args->non_sticky) handler_options.sticky = false;
    Status added = client.add_request_handler(args->path, std::move(handler), handler_options).get();
    if (!added) {
      std::fprintf(stderr, "brook reply: %s\n", added.message.c_str());
      closing_ourselves.store(true, std::memory_order_relaxed);
      client.close();
      return exit_refused;
    }
    std::fprintf(stderr, "brook reply: handling %s\n", args->path.c_str());

    int signal = 0;
    do sigwait(&wake, &signal);
    while (signal == SIGUSR1 && !session_closed.load(std::memory_order_acquire));

    if (signal == SIGUSR1) {
      {
        std::lock_guard lock(reason_mutex);
        std::fprintf(stderr, "brook reply: session closed: %s\n", close_reason.c_str());
      }
      if (runner) runner->stop();
      return exit_refused;
    }
    // Stop the commands first: their requesters hear "stopping" rather than "handler gone".
    if (runner) runner->stop();
    closing_ourselves.store(true, std::memory_order_relaxed);
    client.close();
    return exit_ok;
  };
}

}  // namespace brook::cli
