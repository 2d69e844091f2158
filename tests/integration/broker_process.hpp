#pragma once
// Child processes for integration tests: a real `brookd` (BrokerProcess) and one-shot runs of
// the `brook` CLI (run_cli). Both are started with fork/exec from the test's main thread, die
// with the test process (PR_SET_PDEATHSIG) and are waited for with bounded deadlines: a test
// never hangs on a child, and a broker that crashes, hangs on SIGTERM or exits non-zero (an
// ASan report, for example) fails the test that owns it.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace brook::test {

using namespace std::chrono_literals;

// How a child ended.
struct ExitStatus {
  bool exited = false;     // exited normally: see `code`
  int code = -1;           // exit code when `exited`
  int signal = 0;          // terminating signal otherwise (0: still running or never ran)
  bool timed_out = false;  // had to be killed after its deadline
  bool clean() const noexcept { return exited && code == 0 && !timed_out; }
  std::string describe() const;
};

struct BrokerConfig {
  unsigned shards = 1;
  std::string listen = "127.0.0.1:0";  // a fixed port to restart a broker where it was
  // Written to brookd.toml in the broker's temporary directory and passed with --config.
  std::string config_toml;
  std::vector<std::string> extra_args;
  // Also listen for shared-memory clients on a Unix socket in the broker's directory.
  bool shm = false;
  // Also listen for TLS clients on a port the kernel picks (--tls-listen; the certificates
  // come from config_toml's [tls] table).
  bool tls = false;
  // Also listen for WebSocket clients (--ws), and inside TLS (--wss: [tls] as for tls).
  bool ws = false;
  bool wss = false;
  // Also serve the HTTP side (--http: metrics, health, JSON) on a port the kernel picks.
  bool http = false;
  std::chrono::milliseconds start_timeout = 10s;
  std::chrono::milliseconds stop_timeout = 10s;
};
inline BrokerConfig with_shards(unsigned shards) {
  BrokerConfig config;
  config.shards = shards;
  return config;
}

// A brookd child listening on 127.0.0.1 at a port the kernel picks. Owns the process, its
// stdout pipe and a temporary directory (stderr log, config file). Not thread-safe: construct,
// query and destroy it on the test's main thread.
class BrokerProcess {
 public:
  explicit BrokerProcess(BrokerConfig config);
  explicit BrokerProcess(unsigned shards = 1) : BrokerProcess(with_shards(shards)) {}
  // Stops the broker (if stop() was not called) and records a test failure unless it exited
  // with status 0.
  ~BrokerProcess();
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  // True once the listen line was read. Check with BROOK_ASSERT_STARTED(broker).
  bool started() const noexcept { return !url_.empty(); }
  // Why brookd cannot run on this machine at all (io_uring missing or forbidden), or "".
  const std::string& unavailable() const noexcept { return unavailable_; }
  const std::string& url() const noexcept { return url_; }  // tcp://127.0.0.1:PORT
  const std::string& shm_url() const noexcept { return shm_url_; }  // shm://PATH (config.shm)
  std::uint16_t tls_port() const noexcept { return tls_port_; }    // config.tls
  std::uint16_t ws_port() const noexcept { return ws_port_; }      // config.ws
  std::uint16_t wss_port() const noexcept { return wss_port_; }    // config.wss
  std::uint16_t http_port() const noexcept { return http_port_; }  // config.http
  std::uint16_t port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  const std::string& directory() const noexcept { return dir_; }

  // False once the process has ended (crashed or exited).
  bool running();
  // SIGTERM, then waits up to stop_timeout (SIGKILL after that). Idempotent. Records a test
  // failure unless the exit was clean.
  ExitStatus stop();
  // SIGKILL, as a crash: waits for the exit; not a test failure. Idempotent with stop().
  ExitStatus crash();
  // What brookd wrote on stderr so far (counters are printed there when it stops).
  std::string log() const;
  // Per-shard counter `name` from the lines brookd prints on stopping ("shard N: name=V ...").
  // Call after stop(). Missing counters are absent from the map.
  std::map<unsigned, std::uint64_t> shard_counter(std::string_view name) const;
  // The sum of shard_counter(name) over the shards.
  std::uint64_t counter_total(std::string_view name) const;
  // The end of log(), headed for a failure message.
  std::string log_tail(std::size_t bytes = 4000) const;

 private:
  void end_with(int signal);  // sends it, waits for the exit (bounded)

  BrokerConfig config_;
  std::string dir_;
  std::string log_path_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int stdout_fd_ = -1;
  std::string url_;
  std::uint16_t tls_port_ = 0;
  std::uint16_t ws_port_ = 0;
  std::uint16_t wss_port_ = 0;
  std::uint16_t http_port_ = 0;
  std::string shm_url_;
  std::uint16_t port_ = 0;
  bool stopped_ = false;
  ExitStatus status_;
  std::string unavailable_;
};

// In a test body or SetUp(): skips the test (with the reason) when the machine cannot run
// brookd at all, fails it when brookd did not start for any other reason.
#define BROOK_ASSERT_STARTED(broker)                                                   \
  do {                                                                                 \
    if (!(broker).unavailable().empty()) GTEST_SKIP() << (broker).unavailable();       \
    ASSERT_TRUE((broker).started()) << "brookd did not start\n--- brookd stderr ---\n" \
                                    << (broker).log();                                 \
  } while (0)

struct CliResult {
  ExitStatus status;
  std::string out;
  std::string err;
  int exit_code() const noexcept { return status.exited ? status.code : -1; }
  std::string describe() const;  // for failure messages
};

// Runs the built `brook` CLI with `args` (without the program name), feeding it `stdin_text`
// and collecting stdout and stderr. Killed (status.timed_out) after `timeout`.
CliResult run_cli(const std::vector<std::string>& args, std::string_view stdin_text = {},
                  std::chrono::milliseconds timeout = 20s);

// `brook ARGS` in the background, for tests that must signal a client (kill -9) or watch it
// while it runs. Its stdout and stderr are collected as they come; it is reaped, bounded, by
// wait_exit() or the destructor (SIGTERM, SIGKILL after a deadline). Main test thread only.
class CliProcess {
 public:
  explicit CliProcess(const std::vector<std::string>& args);
  ~CliProcess();
  CliProcess(const CliProcess&) = delete;
  CliProcess& operator=(const CliProcess&) = delete;

  pid_t pid() const noexcept { return pid_; }
  // Reads its output until done(stdout, stderr) holds or the timeout passes; returns done's.
  bool wait_for(const std::function<bool(const std::string&, const std::string&)>& done,
                std::chrono::milliseconds timeout);
  void kill(int signal);
  // Sends `signal` (0: none), then waits up to `timeout` for the exit (SIGKILL after it).
  ExitStatus wait_exit(std::chrono::milliseconds timeout, int signal = 0);
  const std::string& out() const noexcept { return out_; }
  const std::string& err() const noexcept { return err_; }
  std::string describe() const;

 private:
  bool read_some(int timeout_ms);
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  ExitStatus status_;
};

// A port nobody listens on now (bound, read, closed): a broker started later takes it.
std::uint16_t free_port();

// A fresh directory under $TMPDIR (or /tmp), removed with its files by remove_temp_dir().
std::string make_temp_dir(std::string_view prefix);
void remove_temp_dir(const std::string& dir);

}  // namespace brook::test
