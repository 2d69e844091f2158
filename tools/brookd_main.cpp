// brookd: the Brook broker. Prints "listening on tcp://HOST:PORT" once it accepts connections;
// SIGINT/SIGTERM stop it cleanly; SIGHUP reloads the permissions file and TLS certificates.
#include <sys/resource.h>
#include <CLI/CLI.hpp>
#include <csignal>
#include <cstdio>
#include <iostream>

#include "brook/protocol.hpp"
#include "brook/runtime/broker.hpp"
#include "brook/transport/tls.hpp"
#include "brook/version.hpp"
#include "systemd_notify.hpp"

// Every session is a socket: take the most descriptors the system allows us (the soft limit
// is often 1024, far below the 10,000 sessions a broker should hold).
static void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int main(int argc, char** argv) {
  raise_descriptor_limit();
  brook::runtime::BrokerOptions options;
  std::string config_path;
  std::string listen;
  unsigned shards = 0;
  bool no_pin = false;
  std::string shm_path;
  bool spin = false;
  std::string data_dir;
  std::string tls_listen;
  std::string ws_listen;
  std::string wss_listen;
  std::string http_listen;
  std::string http_console;
  CLI::App app{"brookd: the Brook pub/sub broker"};
  app.add_option("--config", config_path, "TOML configuration file ([broker] table)");
  app.add_option("--listen", listen, "HOST:PORT to accept TCP clients on (port 0 picks one)");
  app.add_option("--shards", shards, "shard threads (default: one per core)");
  app.add_flag("--no-pin", no_pin, "do not pin shard threads to cores");
  app.add_option("--shm", shm_path, "Unix socket PATH for shared-memory clients (shm://PATH)");
  app.add_flag("--spin", spin, "shards busy-poll instead of sleeping (lowest latency, a core each)");
  app.add_option("--tls-listen", tls_listen, "HOST:PORT to accept TLS clients on, beside --listen (tls.listen; needs tls.cert_file and tls.key_file)");
  app.add_option("--ws", ws_listen, "HOST:PORT to accept WebSocket clients on (ws.listen): browsers, ws://HOST:PORT");
  app.add_option("--wss", wss_listen, "HOST:PORT to accept WebSocket clients inside TLS on (ws.tls_listen): wss://HOST:PORT");
  app.add_option("--http", http_listen, "HOST:PORT (or PORT: 127.0.0.1) for metrics, health, JSON and the console (http.listen)");
  app.add_option("--http-console", http_console, "DIR of the web console's built files, served at / (http.console_dir)");
  app.add_option("--data-dir", data_dir, "journal topics to DIR: they survive a restart (storage.data_dir)");
  app.set_version_flag("--version", std::string("brookd ") + BROOK_VERSION_STRING + " (wire protocol " +
                                        std::to_string(brook::wire_version) + ")");
  CLI11_PARSE(app, argc, argv);

  if (!config_path.empty()) {
    if (auto error = brook::runtime::load_broker_options(config_path, options); !error.empty()) {
      std::cerr << "brookd: " << error << "\n";
      return 2;
    }
  }
  // The command line wins over the file.
  if (!listen.empty()) options.listen = listen;
  if (shards) options.shards = shards;
  if (no_pin) options.pin_threads = false;
  if (!shm_path.empty()) options.shm_path = shm_path;
  if (spin) options.spin = true;
  if (!data_dir.empty()) options.data_dir = data_dir;
  if (!tls_listen.empty()) options.tls_listen = tls_listen;
  if (!ws_listen.empty()) options.ws_listen = ws_listen;
  if (!wss_listen.empty()) options.ws_tls_listen = wss_listen;
  if (!http_listen.empty()) options.http_listen = http_listen;
  if (!http_console.empty()) options.http_console_dir = http_console;
  options.version = BROOK_VERSION_STRING;
  if (auto error = options.validate(); !error.empty()) {
    std::cerr << "brookd: " << error << "\n";
    return 2;
  }

  // Block the signals in every thread; the main thread waits for them with sigwait.
  // A shell starts background jobs with SIGINT ignored, and an ignored signal never reaches
  // sigwait: restore the default dispositions first.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
  std::signal(SIGHUP, SIG_DFL);
  sigset_t waited_signals;
  sigemptyset(&waited_signals);
  sigaddset(&waited_signals, SIGINT);
  sigaddset(&waited_signals, SIGTERM);
  sigaddset(&waited_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &waited_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  brook::runtime::Broker broker(options);
  if (auto error = broker.start(); !error.empty()) {
    std::cerr << "brookd: " << error << "\n";
    return 1;
  }
  // Before the listen line, which tells scripts (and tests) the broker is up.
  if (!options.data_dir.empty()) std::fprintf(stderr, "brookd: %s\n", broker.storage_report().c_str());
  std::printf("listening on tcp://%s\n", broker.listen_address().c_str());
  if (!options.shm_path.empty()) std::printf("listening on shm://%s\n", options.shm_path.c_str());
  if (!options.tls_listen.empty()) std::printf("listening on tls://%s\n", broker.tls_listen_address().c_str());
  if (!options.ws_listen.empty()) std::printf("listening on ws://%s\n", broker.ws_listen_address().c_str());
  if (!options.ws_tls_listen.empty()) std::printf("listening on wss://%s\n", broker.wss_listen_address().c_str());
  if (!options.http_listen.empty())
    std::printf("listening on %s://%s/\n", options.http_tls ? "https" : "http", broker.http_address().c_str());
  if (!options.tls_listen.empty() || !options.ws_tls_listen.empty())
    std::fprintf(stderr, "brookd: TLS (min %s) with the record layer in user space, over io_uring (kernel TLS: %s)\n",
                 options.tls_min_version.c_str(),
                 brook::transport::kernel_tls_available() ? "this kernel offers it; not used yet"
                                                         : "not offered by this kernel, no tls ULP");
  std::fflush(stdout);
  std::fprintf(stderr, "brookd: %u shard(s), memory budget %llu MiB (limits.max_memory_bytes)\n",
               broker.shard_count(), (unsigned long long)(broker.memory_budget() >> 20));
  brook::tools::notify_systemd("READY=1");

  int signal = 0;
  for (;;) {
    sigwait(&waited_signals, &signal);
    if (signal != SIGHUP) break;
    for (const std::string& line : broker.reload()) std::fprintf(stderr, "brookd: SIGHUP: %s\n", line.c_str());
  }
  std::fprintf(stderr, "brookd: %s received, stopping\n", signal == SIGINT ? "SIGINT" : "SIGTERM");
  brook::tools::notify_systemd("STOPPING=1");
  broker.stop();
  std::fprintf(stderr, "%s", broker.describe_counters().c_str());
  return 0;
}
