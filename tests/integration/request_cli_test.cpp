// Integration: `brook req` and `brook reply` against a real brookd (two shards, so requests may
// cross shards). `brook reply` runs in the background (ReplyProcess) until the test stops it
// with SIGTERM, which must end it with exit 0; `brook req` runs to completion with run_cli.
// Exit codes checked: 0 answered, 1 timed out, 3 refused (no handler, handler failed) or
// session closed. Every wait is bounded and every child is reaped, killed if need be.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "broker_process.hpp"
#include "cli_output.hpp"

#ifndef BROOK_CLI_PATH
#error "BROOK_CLI_PATH must name the brook executable (tests/CMakeLists.txt defines it)"
#endif

namespace brook::test {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto cli_deadline = std::chrono::seconds(30);
constexpr auto start_wait = std::chrono::seconds(15);
constexpr auto stop_wait = std::chrono::seconds(10);

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return left > 0 ? static_cast<int>(left) : 0;
}

// `brook reply ARGS` in the background. Owns the child and the read end of its stderr; the
// constructor returns once it says `handling PATH` (or gave up: see handling()). stop() sends
// SIGTERM and waits, bounded, killing it after the deadline; the destructor stops it if the
// test did not. Used from the test's main thread only.
class ReplyProcess {
 public:
  explicit ReplyProcess(std::vector<std::string> args) {
    int err[2];
    if (::pipe2(err, O_CLOEXEC) < 0) {
      ADD_FAILURE() << "pipe2: " << std::strerror(errno);
      return;
    }
    int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    std::vector<std::string> argv{BROOK_CLI_PATH, "reply"};
    argv.insert(argv.end(), args.begin(), args.end());
    std::vector<char*> c_args;
    for (auto& a : argv) c_args.push_back(a.data());
    c_args.push_back(nullptr);
    const pid_t parent = ::getpid();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // dies with the test process
      if (::getppid() != parent) ::_exit(126);
      struct sigaction dfl {};
      dfl.sa_handler = SIG_DFL;
      ::sigaction(SIGPIPE, &dfl, nullptr);
      sigset_t none;
      ::sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
      if (::dup2(null_fd, 0) < 0 || ::dup2(null_fd, 1) < 0 || ::dup2(err[1], 2) < 0) ::_exit(126);
      ::syscall(SYS_close_range, 3u, ~0u, 0u);
      ::execv(c_args[0], c_args.data());
      ::_exit(127);
    }
    ::close(err[1]);
    if (null_fd >= 0) ::close(null_fd);
    err_fd_ = err[0];
    if (pid_ < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return;
    }
    // Its stderr until the `handling` line, or until it exits or the deadline passes.
    auto deadline = Clock::now() + start_wait;
    while (!contains(err_, "brook reply: handling ") && err_fd_ >= 0 && Clock::now() < deadline) {
      pollfd p{err_fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, remaining_ms(deadline));
      if (rc < 0 && errno != EINTR) break;
      if (rc > 0) read_some();
    }
    handling_ = contains(err_, "brook reply: handling ");
  }
  ~ReplyProcess() {
    if (pid_ > 0) stop();
    if (err_fd_ >= 0) ::close(err_fd_);
  }
  ReplyProcess(const ReplyProcess&) = delete;
  ReplyProcess& operator=(const ReplyProcess&) = delete;

  bool handling() const noexcept { return handling_; }
  // SIGTERM, then waits until `deadline` for it to exit (SIGKILL after that).
  ExitStatus stop() { return wait(SIGTERM, stop_wait); }
  // Waits for it to exit on its own within `timeout` (SIGKILL after that).
  ExitStatus wait_exit(milliseconds timeout) { return wait(0, timeout); }
  // Its stderr so far (all of it once stopped).
  const std::string& err() const noexcept { return err_; }
  std::string describe() const { return status_.describe() + "\n--- brook reply stderr ---\n" + err_; }

 private:
  void read_some() {
    char buffer[4096];
    ssize_t n = ::read(err_fd_, buffer, sizeof buffer);
    if (n > 0) {
      err_.append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(err_fd_);
      err_fd_ = -1;
    }
  }

  ExitStatus wait(int signal, milliseconds timeout) {
    if (pid_ <= 0) return status_;
    if (signal) ::kill(pid_, signal);
    auto deadline = Clock::now() + timeout;
    int wstatus = 0;
    pid_t rc = 0;
    // Drain stderr meanwhile (it cannot block on a full pipe), in steps of at most 10 ms.
    while ((rc = ::waitpid(pid_, &wstatus, WNOHANG)) == 0 && Clock::now() < deadline) {
      if (err_fd_ >= 0) {
        pollfd p{err_fd_, POLLIN, 0};
        if (::poll(&p, 1, std::min(10, remaining_ms(deadline))) > 0) read_some();
      } else {
        std::this_thread::sleep_for(milliseconds(10));
      }
    }
    if (rc == 0) {
      status_.timed_out = true;
      ::kill(pid_, SIGKILL);
      do rc = ::waitpid(pid_, &wstatus, 0);
      while (rc < 0 && errno == EINTR);
    }
    if (rc == pid_) {
      if (WIFEXITED(wstatus)) {
        status_.exited = true;
        status_.code = WEXITSTATUS(wstatus);
      } else if (WIFSIGNALED(wstatus)) {
        status_.signal = WTERMSIG(wstatus);
      }
    }
    pid_ = -1;
    // It has exited: what is left in the pipe ends with EOF (bounded all the same).
    auto drain_deadline = Clock::now() + std::chrono::seconds(2);
    while (err_fd_ >= 0 && Clock::now() < drain_deadline) {
      pollfd p{err_fd_, POLLIN, 0};
      if (::poll(&p, 1, remaining_ms(drain_deadline)) <= 0) break;
      read_some();
    }
    return status_;
  }

  pid_t pid_ = -1;
  int err_fd_ = -1;
  std::string err_;
  bool handling_ = false;
  ExitStatus status_;
};

class RequestCli : public ::testing::Test {
 protected:
  void SetUp() override { BROOK_ASSERT_STARTED(broker_); }

  // `brook req --url URL ARGS...`, run to completion.
  CliResult req(std::vector<std::string> args, std::string_view input = {}) {
    args.insert(args.begin(), {"req", "--url", broker_.url()});
    return run_cli(args, input, cli_deadline);
  }
  // `brook reply --url URL ARGS...` in the background, handling once constructed.
  std::unique_ptr<ReplyProcess> reply(std::vector<std::string> args) {
    args.insert(args.begin(), {"--url", broker_.url()});
    return std::make_unique<ReplyProcess>(std::move(args));
  }

  BrokerProcess broker_{2};
};

// Stops `brook reply` and expects the clean exit SIGTERM promises.
#define EXPECT_STOPS_CLEANLY(replier)                                  \
  do {                                                                 \
    ExitStatus stopped = (replier)->stop();                            \
    EXPECT_TRUE(stopped.clean()) << (replier)->describe();             \
  } while (0)

TEST_F(RequestCli, reply_echoes_and_req_prints_the_answer) {
  auto replier = reply({"RequestCli/echo"});
  ASSERT_TRUE(replier->handling()) << replier->describe();
  EXPECT_TRUE(contains(replier->err(), "brook reply: handling RequestCli/echo")) << replier->err();

  auto result = req({"RequestCli/echo", "hello"});
  EXPECT_EQ(result.exit_code(), 0) << result.describe();
  EXPECT_EQ(result.out, "hello\n") << result.describe();
  EXPECT_STOPS_CLEANLY(replier);
}

TEST_F(RequestCli, req_sends_each_stdin_line_and_prints_the_answers_in_input_order) {
  auto replier = reply({"RequestCli/lines"});
  ASSERT_TRUE(replier->handling()) << replier->describe();

  auto result = req({"RequestCli/lines"}, "one\ntwo\nthree\nfour\nfive\n");
  EXPECT_EQ(result.exit_code(), 0) << result.describe();
  EXPECT_EQ(lines_of(result.out), (std::vector<std::string>{"one", "two", "three", "four", "five"}))
      << result.describe();
  EXPECT_STOPS_CLEANLY(replier);
}

TEST_F(RequestCli, reply_exec_answers_with_the_commands_output_less_one_newline) {
  auto replier = reply({"RequestCli/upper", "--exec", "tr a-z A-Z"});
  ASSERT_TRUE(replier->handling()) << replier->describe();

  auto result = req({"RequestCli/upper", "hello"});
  EXPECT_EQ(result.exit_code(), 0) << result.describe();
  EXPECT_EQ(result.out, "HELLO\n") << result.describe();

  // Several at once, each through its own command, answered in input order.
  auto lines = req({"RequestCli/upper"}, "a\nb\nc\nd\n");
  EXPECT_EQ(lines.exit_code(), 0) << lines.describe();
  EXPECT_EQ(lines_of(lines.out), (std::vector<std::string>{"A", "B", "C", "D"})) << lines.describe();
  EXPECT_STOPS_CLEANLY(replier);
}

TEST_F(RequestCli, reply_exec_passes_a_megabyte_through_the_command_without_deadlock) {
  // `cat` writes while it reads: a parent that wrote all of stdin before reading stdout
  // would wait for ever once both pipes are full.
  auto replier = reply({"RequestCli/cat", "--exec", "cat"});
  ASSERT_TRUE(replier->handling()) << replier->describe();

  std::string big(1u << 20, 'x');
  for (std::size_t i = 0; i < big.size(); i += 997) big[i] = static_cast<char>('a' + i % 26);
  auto result = req({"RequestCli/cat"}, big + "\n");
  EXPECT_EQ(result.exit_code(), 0) << result.status.describe() << "\n" << result.err;
  EXPECT_TRUE(result.out == big + "\n") << "got " << result.out.size() << " bytes, expected "
                                        << big.size() + 1 << "\n" << result.err;
  EXPECT_STOPS_CLEANLY(replier);
}

TEST_F(RequestCli, a_failing_exec_command_makes_req_exit_3_with_its_stderr) {
  auto replier = reply({"RequestCli/fail", "--exec", "echo oops >&2; exit 4"});
  ASSERT_TRUE(replier->handling()) << replier->describe();

  auto result = req({"RequestCli/fail", "anything"});
  EXPECT_EQ(result.exit_code(), 3) << result.describe();
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(contains(result.err, "brook req: handler failed")) << result.describe();
  EXPECT_TRUE(contains(result.err, "oops")) << result.describe();

  // Without stderr, the exit status is the message.
  auto silent = reply({"RequestCli/silent", "--exec", "exit 5"});
  ASSERT_TRUE(silent->handling()) << silent->describe();
  auto quiet = req({"RequestCli/silent", "anything"});
  EXPECT_EQ(quiet.exit_code(), 3) << quiet.describe();
  EXPECT_TRUE(contains(quiet.err, "exit status 5")) << quiet.describe();
  EXPECT_STOPS_CLEANLY(silent);
  EXPECT_STOPS_CLEANLY(replier);
}

TEST_F(RequestCli, req_to_a_path_without_a_handler_exits_3_with_no_handler) {
  auto result = req({"RequestCli/nobody", "hello"});
  EXPECT_EQ(result.exit_code(), 3) << result.describe();
  EXPECT_EQ(result.out, "");
  EXPECT_TRUE(contains(result.err, "brook req: no handler")) << result.describe();
}

TEST_F(RequestCli, req_of_stdin_lines_carries_on_after_a_refusal_and_exits_3) {
  auto result = req({"RequestCli/nobody"}, "a\nb\nc\n");
  EXPECT_EQ(result.exit_code(), 3) << result.describe();
  EXPECT_EQ(result.out, "");
  std::size_t refusals = 0;
  for (const auto& line : lines_of(result.err)) refusals += contains(line, "no handler");
  EXPECT_EQ(refusals, 3u) << result.describe();
}

TEST_F(RequestCli, req_with_timeout_1_against_a_slow_command_exits_1) {
  auto replier = reply({"RequestCli/slow", "--exec", "sleep 5"});
  ASSERT_TRUE(replier->handling()) << replier->describe();

  auto started = Clock::now();
  auto result = req({"--timeout", "1", "RequestCli/slow", "hello"});
  auto took = Clock::now() - started;
  EXPECT_EQ(result.exit_code(), 1) << result.describe();
  EXPECT_TRUE(contains(result.err, "brook req: timeout after 1 s")) << result.describe();
  EXPECT_LT(took, std::chrono::milliseconds(4500)) << "it waited for the answer";
  // The sleep is still running: SIGTERM must end it too, and promptly.
  started = Clock::now();
  EXPECT_STOPS_CLEANLY(replier);
  EXPECT_LT(Clock::now() - started, std::chrono::milliseconds(4000));
}

TEST_F(RequestCli, a_command_past_exec_timeout_is_killed_and_its_request_fails) {
  auto replier = reply({"RequestCli/hung", "--exec", "sleep 30", "--exec-timeout", "0.5"});
  ASSERT_TRUE(replier->handling()) << replier->describe();
  auto started = Clock::now();
  auto result = req({"RequestCli/hung", "hello"});
  EXPECT_EQ(result.exit_code(), 3) << result.describe();
  EXPECT_TRUE(contains(result.err, "ran longer than --exec-timeout (0.5 s)")) << result.describe();
  EXPECT_LT(Clock::now() - started, std::chrono::seconds(5)) << "the request waited for the command";

  // A command that closes its output and keeps running is caught by the same limit.
  auto quiet = reply({"RequestCli/quiet", "--exec", "exec >&- 2>&-; sleep 30", "--exec-timeout", "0.5"});
  ASSERT_TRUE(quiet->handling()) << quiet->describe();
  auto silent = req({"RequestCli/quiet", "hello"});
  EXPECT_EQ(silent.exit_code(), 3) << silent.describe();
  EXPECT_TRUE(contains(silent.err, "--exec-timeout")) << silent.describe();

  // Within the limit, answers are as usual.
  auto fast = reply({"RequestCli/fast", "--exec", "cat", "--exec-timeout", "5"});
  ASSERT_TRUE(fast->handling()) << fast->describe();
  auto answered = req({"RequestCli/fast", "quick"});
  EXPECT_EQ(answered.exit_code(), 0) << answered.describe();
  EXPECT_EQ(answered.out, "quick\n") << answered.describe();
  EXPECT_STOPS_CLEANLY(fast);
  EXPECT_STOPS_CLEANLY(quiet);
  EXPECT_STOPS_CLEANLY(replier);
}

TEST_F(RequestCli, reply_exits_3_when_its_session_closes) {
  // No reconnection: the broker going away closes the session.
  auto replier = reply({"--reconnect-timeout", "0", "RequestCli/gone"});
  ASSERT_TRUE(replier->handling()) << replier->describe();
  broker_.stop();
  ExitStatus status = replier->wait_exit(stop_wait);
  EXPECT_TRUE(status.exited && status.code == 3 && !status.timed_out) << replier->describe();
  EXPECT_TRUE(contains(replier->err(), "session closed")) << replier->describe();
}

}  // namespace
}  // namespace brook::test
