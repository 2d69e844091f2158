#include "broker_process.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#ifndef BROOKD_PATH
#error "BROOKD_PATH must name the brookd executable (tests/CMakeLists.txt defines it)"
#endif
#ifndef BROOK_CLI_PATH
#error "BROOK_CLI_PATH must name the brook executable (tests/CMakeLists.txt defines it)"
#endif

namespace brook::test {

namespace {

using Clock = std::chrono::steady_clock;

// Writes to a pipe or socket whose reader is gone must fail with EPIPE, not kill the test.
const bool sigpipe_ignored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

struct Child {
  pid_t pid = -1;
  int pidfd = -1;  // -1 when the kernel has no pidfd_open: waits fall back to polling
};

// fork/exec with `in`, `out` and `err` as the child's fds 0, 1 and 2. Everything the child
// needs is prepared before fork(): between fork and exec only async-signal-safe calls.
Child spawn(const std::vector<std::string>& argv, int in, int out, int err) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid == 0) {
    // If the test process dies (a ctest timeout), its children die with it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(126);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigaction(SIGPIPE, &dfl, nullptr);
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    if (::dup2(in, 0) < 0 || ::dup2(out, 1) < 0 || ::dup2(err, 2) < 0) ::_exit(126);
    ::syscall(SYS_close_range, 3u, ~0u, 0u);  // sockets of other clients stay in the test
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  Child child;
  child.pid = pid;
  if (pid > 0) child.pidfd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  return child;
}

ExitStatus decode(int wstatus) {
  ExitStatus s;
  if (WIFEXITED(wstatus)) {
    s.exited = true;
    s.code = WEXITSTATUS(wstatus);
  } else if (WIFSIGNALED(wstatus)) {
    s.signal = WTERMSIG(wstatus);
  }
  return s;
}

// Waits for the child until `deadline`; kills it (SIGKILL) if it is still running then.
ExitStatus wait_exit(Child& child, Clock::time_point deadline) {
  ExitStatus status;
  if (child.pid <= 0) return status;
  bool timed_out = false;
  if (child.pidfd >= 0) {
    pollfd p{child.pidfd, POLLIN, 0};
    while (true) {
      int rc = ::poll(&p, 1, remaining_ms(deadline));
      if (rc > 0) break;
      if (rc == 0) {
        timed_out = true;
        break;
      }
      if (errno != EINTR) break;
    }
  } else {
    // Bounded polling when pidfds are missing (kernels before 5.3).
    while (true) {
      siginfo_t info{};
      if (::waitid(P_PID, static_cast<id_t>(child.pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
          info.si_pid != 0)
        break;
      if (Clock::now() >= deadline) {
        timed_out = true;
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
  }
  if (timed_out) ::kill(child.pid, SIGKILL);
  int wstatus = 0;
  pid_t rc;
  do rc = ::waitpid(child.pid, &wstatus, 0);
  while (rc < 0 && errno == EINTR);
  if (rc == child.pid) status = decode(wstatus);
  status.timed_out = timed_out;
  if (child.pidfd >= 0) ::close(child.pidfd);
  child = {};
  return status;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

std::string ExitStatus::describe() const {
  std::string s;
  if (exited)
    s = "exit status " + std::to_string(code);
  else if (signal)
    s = std::string("killed by signal ") + ::strsignal(signal);
  else
    s = "no exit status";
  if (timed_out) s += " (killed after its deadline)";
  return s;
}

std::string make_temp_dir(std::string_view prefix) {
  const char* base = std::getenv("TMPDIR");
  std::string path =
      std::string(base && *base ? base : "/tmp") + "/brook-" + std::string(prefix) + "-XXXXXX";
  if (!::mkdtemp(path.data())) {
    ADD_FAILURE() << "mkdtemp(" << path << "): " << std::strerror(errno);
    return {};
  }
  return path;
}

void remove_temp_dir(const std::string& dir) {
  if (dir.empty() || std::getenv("BROOK_KEEP_TEST_DIRS")) return;
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

// ---- BrokerProcess ---------------------------------------------------------------------

BrokerProcess::BrokerProcess(BrokerConfig config) : config_(std::move(config)) {
  dir_ = make_temp_dir("brookd");
  if (dir_.empty()) return;
  std::vector<std::string> argv{
      BROOKD_PATH, "--listen", config_.listen, "--shards", std::to_string(config_.shards),
      "--no-pin"};
  if (!config_.config_toml.empty()) {
    std::string path = dir_ + "/brookd.toml";
    std::ofstream(path) << config_.config_toml;
    argv.insert(argv.end(), {"--config", path});
  }
  argv.insert(argv.end(), config_.extra_args.begin(), config_.extra_args.end());
  if (config_.shm) argv.insert(argv.end(), {"--shm", dir_ + "/brook.sock"});
  if (config_.tls) argv.insert(argv.end(), {"--tls-listen", "127.0.0.1:0"});
  if (config_.ws) argv.insert(argv.end(), {"--ws", "127.0.0.1:0"});
  if (config_.wss) argv.insert(argv.end(), {"--wss", "127.0.0.1:0"});
  if (config_.http) argv.insert(argv.end(), {"--http", "127.0.0.1:0"});

  log_path_ = dir_ + "/brookd.stderr";
  int err = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out[2] = {-1, -1};
  if (err < 0 || in < 0 || ::pipe2(out, O_CLOEXEC) < 0) {
    ADD_FAILURE() << "cannot set up brookd's stdio: " << std::strerror(errno);
    for (int fd : {err, in, out[0], out[1]})
      if (fd >= 0) ::close(fd);
    return;
  }
  Child child = spawn(argv, in, out[1], err);
  ::close(in);
  ::close(err);
  ::close(out[1]);
  stdout_fd_ = out[0];
  if (child.pid < 0) {
    ADD_FAILURE() << "fork: " << std::strerror(errno);
    return;
  }
  pid_ = child.pid;
  pidfd_ = child.pidfd;

  // The listen line, within the start timeout.
  constexpr std::string_view marker = "listening on tcp://";
  std::string text;
  std::string problem;
  auto deadline = Clock::now() + config_.start_timeout;
  while (problem.empty()) {
    auto at = text.find(marker);
    auto eol = at == std::string::npos ? std::string::npos : text.find('\n', at);
    if (eol != std::string::npos) {
      std::string address = text.substr(at + marker.size(), eol - at - marker.size());
      auto colon = address.rfind(':');
      unsigned port = 0;
      if (colon != std::string::npos)
        std::from_chars(address.data() + colon + 1, address.data() + address.size(), port);
      if (port == 0 || port > 65535) {
        problem = "brookd printed an unreadable listen line: " + text;
        break;
      }
      // brookd binds every socket before it prints its first listen line; the other
      // listeners' lines follow the TCP one.
      auto port_of = [&](std::string_view scheme_marker, bool wanted, std::uint16_t& into) {
        if (!wanted) return true;
        const auto line_at = text.find(scheme_marker);
        const auto line_eol = line_at == std::string::npos ? std::string::npos : text.find('\n', line_at);
        if (line_eol == std::string::npos) return false;
        const std::string bound = text.substr(line_at + scheme_marker.size(), line_eol - line_at - scheme_marker.size());
        unsigned p = 0;
        std::from_chars(bound.data() + bound.rfind(':') + 1, bound.data() + bound.size(), p);
        into = static_cast<std::uint16_t>(p);
        return true;
      };
      if (port_of("listening on tls://", config_.tls, tls_port_) && port_of("listening on ws://", config_.ws, ws_port_) &&
          port_of("listening on wss://", config_.wss, wss_port_) &&
          port_of("listening on http", config_.http, http_port_)) {  // http:// or https://
        port_ = static_cast<std::uint16_t>(port);
        url_ = "tcp://" + address;
        if (config_.shm) shm_url_ = "shm://" + dir_ + "/brook.sock";
        return;
      }
    }
    pollfd p{stdout_fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, remaining_ms(deadline));
    if (rc == 0) {
      problem = "brookd printed no listen line within " +
                std::to_string(config_.start_timeout.count()) + " ms; stdout so far: " + text;
    } else if (rc < 0 && errno != EINTR) {
      problem = std::string("poll: ") + std::strerror(errno);
    } else if (rc > 0) {
      char buffer[512];
      ssize_t n = ::read(stdout_fd_, buffer, sizeof buffer);
      if (n <= 0)
        problem = "brookd closed stdout before printing a listen line; stdout: " + text;
      else
        text.append(buffer, static_cast<std::size_t>(n));
    }
  }

  ::kill(pid_, SIGKILL);  // whatever state it is in, this broker is of no use
  Child failed{pid_, pidfd_};
  pidfd_ = -1;
  status_ = wait_exit(failed, Clock::now() + config_.stop_timeout);
  stopped_ = true;
  // A kernel without io_uring (or a sandbox that forbids it) is a missing feature, not a
  // failure: the test is skipped.
  std::string stderr_text = log();
  auto says = [&](std::string_view what) { return stderr_text.find(what) != std::string::npos; };
  if (says("io_uring") &&
      (says("not permitted") || says("not implemented") || says("not supported"))) {
    unavailable_ =
        "this machine cannot run brookd: " + stderr_text.substr(0, stderr_text.find('\n'));
    return;
  }
  ADD_FAILURE() << problem << "\n"
                << status_.describe() << "\n--- brookd stderr ---\n"
                << stderr_text;
}

BrokerProcess::~BrokerProcess() {
  stop();
  remove_temp_dir(dir_);
}

bool BrokerProcess::running() {
  if (pid_ <= 0 || stopped_) return false;
  siginfo_t info{};
  if (::waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) != 0)
    return false;
  return info.si_pid == 0;
}

ExitStatus BrokerProcess::stop() {
  if (stopped_ || pid_ <= 0) return status_;
  end_with(SIGTERM);
  if (!status_.clean())
    ADD_FAILURE() << "brookd did not stop cleanly on SIGTERM: " << status_.describe()
                  << "\n--- brookd stderr ---\n"
                  << log();
  return status_;
}

ExitStatus BrokerProcess::crash() {
  if (stopped_ || pid_ <= 0) return status_;
  end_with(SIGKILL);
  return status_;
}

void BrokerProcess::end_with(int signal) {
  stopped_ = true;
  ::kill(pid_, signal);
  Child child{pid_, pidfd_};
  pidfd_ = -1;
  status_ = wait_exit(child, Clock::now() + config_.stop_timeout);
  if (stdout_fd_ >= 0) ::close(stdout_fd_);
  stdout_fd_ = -1;
}

std::string BrokerProcess::log() const { return log_path_.empty() ? "" : read_file(log_path_); }

std::uint64_t BrokerProcess::counter_total(std::string_view name) const {
  std::uint64_t sum = 0;
  for (auto [shard, value] : shard_counter(name)) sum += value;
  return sum;
}

std::string BrokerProcess::log_tail(std::size_t bytes) const {
  std::string text = log();
  return "\n--- brookd stderr (tail) ---\n" +
         (text.size() > bytes ? text.substr(text.size() - bytes) : text);
}

std::map<unsigned, std::uint64_t> BrokerProcess::shard_counter(std::string_view name) const {
  std::map<unsigned, std::uint64_t> values;
  std::istringstream lines(log());
  std::string line;
  std::string key = " " + std::string(name) + "=";
  while (std::getline(lines, line)) {
    unsigned shard = 0;
    if (std::sscanf(line.c_str(), "shard %u:", &shard) != 1) continue;
    auto at = line.find(key);
    if (at == std::string::npos) continue;
    std::uint64_t value = 0;
    const char* begin = line.c_str() + at + key.size();
    std::from_chars(begin, line.c_str() + line.size(), value);
    values[shard] = value;
  }
  return values;
}

// ---- run_cli ---------------------------------------------------------------------------

std::string CliResult::describe() const {
  return "brook: " + status.describe() + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err;
}

CliResult run_cli(const std::vector<std::string>& args, std::string_view stdin_text,
                  std::chrono::milliseconds timeout) {
  CliResult result;
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) < 0 || ::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return result;
  }
  std::vector<std::string> argv{BROOK_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child = spawn(argv, in[0], out[1], err[1]);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  int to_child = in[1];
  ::fcntl(to_child, F_SETFL, ::fcntl(to_child, F_GETFL) | O_NONBLOCK);
  if (stdin_text.empty()) {
    ::close(to_child);
    to_child = -1;
  }

  auto deadline = Clock::now() + timeout;
  int from_out = out[0], from_err = err[0];
  std::size_t written = 0;
  while ((from_out >= 0 || from_err >= 0) && Clock::now() < deadline) {
    pollfd fds[3] = {{from_out, POLLIN, 0}, {from_err, POLLIN, 0}, {to_child, POLLOUT, 0}};
    int rc = ::poll(fds, 3, remaining_ms(deadline));
    if (rc < 0 && errno != EINTR) break;
    if (rc <= 0) continue;
    char buffer[65536];
    for (int i = 0; i < 2; ++i) {
      int& fd = i == 0 ? from_out : from_err;
      if (fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      ssize_t n = ::read(fd, buffer, sizeof buffer);
      if (n > 0) {
        (i == 0 ? result.out : result.err).append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fd);
        fd = -1;
      }
    }
    if (to_child >= 0 && (fds[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
      ssize_t n = ::write(to_child, stdin_text.data() + written, stdin_text.size() - written);
      if (n > 0) written += static_cast<std::size_t>(n);
      if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == stdin_text.size()) {
        ::close(to_child);
        to_child = -1;
      }
    }
  }
  // Output still open at the deadline: the child is overdue and is killed at once. Otherwise
  // it has closed its output and is exiting.
  bool overdue = from_out >= 0 || from_err >= 0;
  for (int fd : {from_out, from_err, to_child})
    if (fd >= 0) ::close(fd);
  result.status = wait_exit(child, overdue ? Clock::now() : std::max(deadline, Clock::now() + 1s));
  return result;
}

}  // namespace brook::test

// ---- CliProcess --------------------------------------------------------------------------

namespace brook::test {

CliProcess::CliProcess(const std::vector<std::string>& args) {
  int in = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  int out[2] = {-1, -1}, err[2] = {-1, -1};
  if (in < 0 || ::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0) {
    ADD_FAILURE() << "cannot set up brook's stdio: " << std::strerror(errno);
    for (int fd : {in, out[0], out[1], err[0], err[1]})
      if (fd >= 0) ::close(fd);
    return;
  }
  std::vector<std::string> argv{BROOK_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  Child child = spawn(argv, in, out[1], err[1]);
  ::close(in);
  ::close(out[1]);
  ::close(err[1]);
  out_fd_ = out[0];
  err_fd_ = err[0];
  pid_ = child.pid;
  pidfd_ = child.pidfd;
  if (pid_ < 0) ADD_FAILURE() << "fork: " << std::strerror(errno);
}

CliProcess::~CliProcess() {
  if (pid_ > 0) wait_exit(0ms, SIGTERM);
  for (int fd : {out_fd_, err_fd_, pidfd_})
    if (fd >= 0) ::close(fd);
}

bool CliProcess::read_some(int timeout_ms) {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  int rc = ::poll(fds, 2, timeout_ms);
  if (rc <= 0) return false;
  char buffer[65536];
  for (int i = 0; i < 2; ++i) {
    if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
    if (n > 0) {
      (i == 0 ? out_ : err_).append(buffer, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      ::close(fds[i].fd);
      (i == 0 ? out_fd_ : err_fd_) = -1;
    }
  }
  return true;
}

bool CliProcess::wait_for(const std::function<bool(const std::string&, const std::string&)>& done,
                          std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!done(out_, err_)) {
    if (Clock::now() >= deadline || (out_fd_ < 0 && err_fd_ < 0)) return done(out_, err_);
    read_some(std::min(50, remaining_ms(deadline)));
  }
  return true;
}

void CliProcess::kill(int signal) {
  if (pid_ > 0) ::kill(pid_, signal);
}

ExitStatus CliProcess::wait_exit(std::chrono::milliseconds timeout, int signal) {
  if (pid_ <= 0) return status_;
  if (signal) ::kill(pid_, signal);
  // Its output meanwhile, so that it never blocks on a full pipe.
  auto deadline = Clock::now() + (signal ? std::max(timeout, std::chrono::milliseconds(10s)) : timeout);
  while ((out_fd_ >= 0 || err_fd_ >= 0) && Clock::now() < deadline) read_some(std::min(50, remaining_ms(deadline)));
  Child child{pid_, pidfd_};
  status_ = brook::test::wait_exit(child, deadline);  // closes the pidfd
  pid_ = -1;
  pidfd_ = -1;
  while ((out_fd_ >= 0 || err_fd_ >= 0) && read_some(100)) {
  }
  return status_;
}

std::string CliProcess::describe() const {
  return status_.describe() + "\n--- brook stdout ---\n" + out_ + "\n--- brook stderr ---\n" + err_;
}

// Below the kernel's ephemeral range: no client socket on this machine (another test's, run
// in parallel) is ever given such a port for an outgoing connection, so none can hold it when
// the broker restarts there. A port from the ephemeral range could be, and then kept for a
// minute in TIME_WAIT: the restarted broker failed with "Address already in use".
std::uint16_t free_port() {
  unsigned low = 32768;
  if (std::FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r")) {
    unsigned first = 0, last = 0;
    if (std::fscanf(f, "%u %u", &first, &last) == 2 && first > 2048) low = first;
    std::fclose(f);
  }
  static std::atomic<unsigned> next{static_cast<unsigned>(::getpid())};
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const auto port = static_cast<std::uint16_t>(1024 + (next.fetch_add(7919) % (low - 1024)));
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (bound) return port;
  }
  return 0;
}

}  // namespace brook::test
