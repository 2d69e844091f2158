// peer_bench: the scenarios of `brook bench` against a peer messaging system, so that
// bench/compare can put Brook beside nats-server, redis-server and mosquitto. One line per run
// on stdout (--json: brook/runtime/bench_report.hpp's JSON, the system's name in "system");
// diagnostics on stderr.
//
//   peer_bench nats  throughput --url nats://127.0.0.1:4222 --payload 64 --count 1000000
//   peer_bench redis rtt        --url redis://127.0.0.1:6379 --rate 10000 --count 100000
//   peer_bench mqtt  fanout     --url mqtt://127.0.0.1:1883 --subscribers 1000 --rate 1000
//   peer_bench nats  topics     --topics 100000 --subscribers 4 --count 1000000 --json
//   peer_bench nats  acked      --url nats://127.0.0.1:4222 --payload 64 --rate 10000 --window 1024
//                               (JetStream: the server must run with it, -js)
//
// Exit status: 0 when the run happened (loss is in the result), 1 when it could not be set up
// (no server, subscription refused), 2 on a usage error.
#include <sys/resource.h>

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "brook/runtime/bench_report.hpp"
#ifdef BROOK_PEER_NATS
#include "jetstream_acked.hpp"
#endif
#include "peer_link.hpp"
#include "scenarios.hpp"

namespace {

using brook::bench::PeerSystem;
using brook::bench::ScenarioOptions;
using brook::runtime::BenchResult;

constexpr int kExitRan = 0;
constexpr int kExitSetupFailed = 1;
constexpr int kExitUsage = 2;

struct CompiledSystem {
  std::function<PeerSystem()> make;
  std::string default_url;
};

// The backends whose client library CMake found (bench/CMakeLists.txt).
std::map<std::string, CompiledSystem> compiled_systems() {
  std::map<std::string, CompiledSystem> systems;
#ifdef BROOK_PEER_NATS
  systems["nats"] = {brook::bench::nats_system, "nats://127.0.0.1:4222"};
#endif
#ifdef BROOK_PEER_REDIS
  systems["redis"] = {brook::bench::redis_system, "redis://127.0.0.1:6379"};
#endif
#ifdef BROOK_PEER_MQTT
  systems["mqtt"] = {brook::bench::mqtt_system, "mqtt://127.0.0.1:1883"};
#endif
  return systems;
}

// What a scenario uses when the command line does not say.
struct ScenarioDefaults {
  std::uint64_t count;
  double rate_per_sec;      // 0: flat out, --rate does not apply
  std::uint32_t subscribers;  // 0: one fixed subscriber, --subscribers does not apply
  std::uint64_t topics;     // 0: --topics does not apply
  bool windowed;            // --window-bytes applies
  bool acknowledged = false;  // --window applies; the system must offer acknowledged publishes
};
const std::map<std::string, ScenarioDefaults>& scenario_defaults() {
  static const std::map<std::string, ScenarioDefaults> defaults = {
      {"throughput", {.count = 1'000'000, .rate_per_sec = 0, .subscribers = 0, .topics = 0, .windowed = true}},
      {"rtt", {.count = 100'000, .rate_per_sec = 10'000, .subscribers = 0, .topics = 0, .windowed = false}},
      {"fanout", {.count = 10'000, .rate_per_sec = 1'000, .subscribers = 1'000, .topics = 0, .windowed = false}},
      {"topics", {.count = 1'000'000, .rate_per_sec = 0, .subscribers = 4, .topics = 100'000, .windowed = true}},
      {"acked", {.count = 200'000, .rate_per_sec = 10'000, .subscribers = 0, .topics = 0, .windowed = false,
                 .acknowledged = true}},
  };
  return defaults;
}

// A thousand subscriber links are a thousand sockets: take the whole hard limit. Returns the
// descriptors now allowed.
rlim_t raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return 0;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  return limit.rlim_cur;
}

void print_line(const BenchResult& r) {
  const auto u = [](std::uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("%s %s %zu B", r.system.c_str(), r.scenario.c_str(), r.payload_bytes);
  if (r.topics > 0) std::printf(" over %llu topics", u(r.topics));
  if (r.subscribers > 0) std::printf(" to %u subscribers", r.subscribers);
  if (r.scenario == "acked") {
    std::printf(": %.0f acknowledged msgs/s flat out; acknowledgement at %.0f/s: p50 %.1f us, p99 %.1f us, "
                "p99.9 %.1f us, max %.1f us",
                r.msgs_per_sec, r.rate_target, r.p50_us, r.p99_us, r.p999_us, r.max_us);
  } else if (r.rate_target > 0) {
    std::printf(" at %.0f/s: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us (min %.1f, mean %.1f)",
                r.rate_target, r.p50_us, r.p99_us, r.p999_us, r.max_us, r.min_us, r.mean_us);
    if (r.subscribers > 0) std::printf(", %.0f deliveries/s", r.msgs_per_sec);
  } else {
    std::printf(": %.0f msgs/s (%.1f MB/s)", r.msgs_per_sec, r.mb_per_sec);
  }
  std::printf(", %llu sent, %llu received, %llu lost, %llu out of order", u(r.sent), u(r.received), u(r.lost),
              u(r.out_of_order));
  if (r.sessions_closed) std::printf(", %llu subscriber connections lost", u(*r.sessions_closed));
  std::printf(", %.3f s\n", r.seconds);
}

}  // namespace

int main(int argc, char** argv) {
  // A server that closes a connection must give the client library an error, not kill the
  // process: hiredis writes with plain write().
  std::signal(SIGPIPE, SIG_IGN);
  const std::map<std::string, CompiledSystem> systems = compiled_systems();
  std::vector<std::string> system_names;
  for (const auto& [name, _] : systems) system_names.push_back(name);

  CLI::App app{"The scenarios of `brook bench` against a peer system; one line per run"};
  std::string system_name, scenario;
  ScenarioOptions o;
  bool json = false;
  app.add_option("system", system_name, "peer system (those whose client library was found at build time)")
      ->required()
      ->check(CLI::IsMember(system_names));
  app.add_option("scenario", scenario,
                 "throughput: 1 publisher -> 1 subscriber, flat out within --window-bytes | "
                 "rtt: ping-pong at --rate, latency from the intended send time | "
                 "fanout: 1 publisher at --rate -> --subscribers links, one-way latency | "
                 "topics: 1 publisher flat out over --topics subjects -> --subscribers wildcard links | "
                 "acked (nats: JetStream, a file stream with one replica): --count/4 acknowledged publishes "
                 "at --rate, latency to each acknowledgement, then --count flat out with --window "
                 "unacknowledged at most, acknowledged msgs/s")
      ->required()
      ->check(CLI::IsMember({"throughput", "rtt", "fanout", "topics", "acked"}));
  app.add_option("--url", o.url, "server URL (default: the system's port on 127.0.0.1)");
  app.add_option("--payload", o.payload_bytes, "payload bytes per message")
      ->capture_default_str()
      ->check(CLI::Range(brook::bench::kMinPayloadBytes, std::size_t{64} << 20));
  CLI::Option* count = app.add_option("--count", o.count,
                                      "messages published (default: throughput and topics 1000000, rtt 100000, "
                                      "fanout 10000)")
                           ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  CLI::Option* rate = app.add_option("--rate", o.rate_per_sec,
                                     "rtt, fanout, acked: publishes per second (default 10000, 1000, 10000)")
                          ->check(CLI::PositiveNumber);
  CLI::Option* subscribers = app.add_option("--subscribers", o.subscribers,
                                            "fanout, topics: subscriber links (default 1000, 4)")
                                 ->check(CLI::Range(1u, 10'000u));
  CLI::Option* topics = app.add_option("--topics", o.topics, "topics: distinct subjects (default 100000)")
                            ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000'000}));
  CLI::Option* window = app.add_option("--window-bytes", o.window_bytes,
                                       "throughput, topics: payload bytes the publisher may be ahead of the "
                                       "slowest subscriber; 0: no window, as fast as the API accepts")
                            ->capture_default_str()
                            ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 30));
  CLI::Option* ack_window = app.add_option("--window", o.ack_window,
                                           "acked: publishes awaiting their acknowledgement at most, flat out")
                                ->capture_default_str()
                                ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 20));
  app.add_option("--max-seconds", o.max_seconds, "sending stops after this long (acked: each phase)")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--drain-seconds", o.drain_seconds,
                 "after sending, wait for stragglers until none arrived for this long")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--json", json, "print the result as one JSON line");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitRan : kExitUsage;  // --help exits 0
  }

  const ScenarioDefaults& d = scenario_defaults().at(scenario);
  const auto not_used = [&](const CLI::Option* option) {
    if (option->count() > 0)
      std::fprintf(stderr, "peer_bench: %s is not used by %s\n", option->get_name().c_str(), scenario.c_str());
  };
  if (count->count() == 0) o.count = d.count;
  if (d.rate_per_sec > 0) {
    if (rate->count() == 0) o.rate_per_sec = d.rate_per_sec;
  } else {
    not_used(rate);
  }
  if (d.subscribers > 0) {
    if (subscribers->count() == 0) o.subscribers = d.subscribers;
  } else {
    not_used(subscribers);
    o.subscribers = 1;
  }
  if (d.topics > 0) {
    if (topics->count() == 0) o.topics = d.topics;
  } else {
    not_used(topics);
  }
  if (!d.windowed) not_used(window);
  if (!d.acknowledged) not_used(ack_window);
  if (d.acknowledged && system_name != "nats") {
    std::fprintf(stderr, "peer_bench: %s has no acknowledged publish here (acked: nats only, through JetStream)\n",
                 system_name.c_str());
    return kExitUsage;
  }
  const CompiledSystem& compiled = systems.at(system_name);
  if (o.url.empty()) o.url = compiled.default_url;

  const rlim_t open_files = raise_open_file_limit();
  if (open_files > 0 && o.subscribers + 64 > open_files) {
    std::fprintf(stderr, "peer_bench: %u subscribers need more than the %llu open files allowed (ulimit -n)\n",
                 o.subscribers, static_cast<unsigned long long>(open_files));
    return kExitUsage;
  }

  BenchResult r;
  try {
    const PeerSystem system = compiled.make();
    if (scenario == "throughput") r = brook::bench::run_throughput(system, o);
    else if (scenario == "rtt") r = brook::bench::run_rtt(system, o);
    else if (scenario == "fanout") r = brook::bench::run_fanout(system, o);
    else if (scenario == "topics") r = brook::bench::run_topics(system, o);
#ifdef BROOK_PEER_NATS
    else r = brook::bench::run_jetstream_acked(o);
#endif
  } catch (const std::exception& e) {
    std::fprintf(stderr, "peer_bench: %s %s: %s\n", system_name.c_str(), scenario.c_str(), e.what());
    return kExitSetupFailed;
  }
  if (json) std::printf("%s\n", brook::runtime::to_json(r).c_str());
  else print_line(r);
  std::fflush(stdout);
  return kExitRan;
}
