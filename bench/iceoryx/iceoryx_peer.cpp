// iceoryx_peer: Brook's shared-memory scenarios over iceoryx 2.0 (Debian's iceoryx), so that
// bench/run-shm can put iceoryx beside `brook bench` over shm:// and the bare ring in one run.
// Prints one line per run (--json: brook/runtime/bench_report.hpp's JSON, system "iceoryx").
//
//   iceoryx_peer rtt        --payload 64 --count 50000 --json
//   iceoryx_peer throughput --payload 64 --count 1000000 --json
//
// rtt:        closed loop between two processes: the pinger publishes, sleeps in a WaitSet until
//             the pong arrives, records the round trip and only then sends the next; the ponger
//             sleeps in its own WaitSet and publishes every ping straight back. Neither polls.
// throughput: a publisher flat out to one subscriber in another process that sleeps in a
//             WaitSet when its queue is empty and takes everything queued per wake-up. The
//             publisher waits for the subscriber when its queue is full
//             (ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER with QueueFullPolicy::BLOCK_PRODUCER), so
//             nothing may be lost; msgs/s from the first loan to the last sample taken.
//
// Both: the program forks before it touches iceoryx, and each process registers its own
// runtime with RouDi (iox-roudi), which must be running. Sending stops at --max-seconds; the
// parent waits at most 10 s more for the child, which exits when told to or when the parent is
// gone. Exit status: 0 when every message arrived in order, 1 when the run could not be set up
// or lost messages, 2 on a usage error.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <thread>

#include "brook/runtime/bench_report.hpp"
#include "brook/runtime/latency_histogram.hpp"
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"

namespace {

using brook::runtime::BenchResult;
using brook::runtime::LatencyHistogram;
using Clock = std::chrono::steady_clock;

constexpr int kExitOk = 0;
constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;

constexpr std::size_t kMinPayloadBytes = 16;  // sequence number and send time
constexpr std::uint64_t kStop = std::numeric_limits<std::uint64_t>::max();  // the last message's sequence
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kDrainTimeout = std::chrono::seconds(10);
// How long a WaitSet sleeps before its owner looks at the clock and at the other process.
const iox::units::Duration kWakeToCheck = iox::units::Duration::fromMilliseconds(200);

struct PeerOptions {
  std::string scenario;
  std::size_t payload_bytes = 64;
  std::uint64_t count = 100'000;
  double max_seconds = 60;
  bool json = false;
};

// Nanoseconds of CLOCK_MONOTONIC, the same clock in both processes.
std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

// Every message starts with its sequence number and the time it was sent.
struct Stamp {
  std::uint64_t seq;
  std::uint64_t sent_ns;
};
static_assert(sizeof(Stamp) == kMinPayloadBytes);

// One service per role and run: the parent's pid keeps concurrent runs apart.
iox::capro::ServiceDescription service(pid_t run, const char* role) {
  const std::string instance = std::to_string(run);
  return {"BrookBench", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, instance.c_str()),
          iox::capro::IdString_t(iox::cxx::TruncateToCapacity, role)};
}

void init_runtime(const char* role, pid_t run) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn, iox::log::LogLevelOutput::kHideLogLevel);
  const std::string name = std::string("brook-iox-") + role + "-" + std::to_string(run);
  iox::runtime::PoshRuntime::initRuntime(iox::RuntimeName_t(iox::cxx::TruncateToCapacity, name.c_str()));
}

// Nothing is ever dropped: a full subscriber queue makes the publisher wait.
iox::popo::PublisherOptions blocking_publisher() {
  iox::popo::PublisherOptions o;
  o.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
  return o;
}
iox::popo::SubscriberOptions blocking_subscriber(std::uint64_t queue_capacity) {
  iox::popo::SubscriberOptions o;
  o.queueCapacity = queue_capacity;
  o.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
  return o;
}

// Set-up only: RouDi connects ports asynchronously and offers no event for it, so the state is
// polled every millisecond for at most kConnectTimeout.
template <class Connected>
bool wait_connected(Connected connected, const char* who) {
  const auto give_up = Clock::now() + kConnectTimeout;
  while (!connected()) {
    if (Clock::now() > give_up) {
      std::fprintf(stderr, "iceoryx_peer: %s: no connection within %lld s (is iox-roudi running?)\n", who,
                   static_cast<long long>(kConnectTimeout.count()));
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// Publishes a message of `bytes` whose first bytes are `stamp`; the rest is left as loaned.
// Returns false when no chunk could be loaned (RouDi's memory pools are exhausted).
bool publish(iox::popo::UntypedPublisher& publisher, std::size_t bytes, Stamp stamp) {
  auto loaned = publisher.loan(static_cast<std::uint32_t>(bytes), alignof(Stamp));
  if (loaned.has_error()) return false;
  std::memcpy(loaned.value(), &stamp, sizeof stamp);
  publisher.publish(loaned.value());
  return true;
}

bool parent_gone(pid_t parent) { return ::getppid() != parent; }

// --- rtt ------------------------------------------------------------------------------------

// The child: every ping goes straight back as a pong of the same size and content.
int pong(const PeerOptions& o, pid_t run) {
  init_runtime("pong", run);
  iox::popo::UntypedSubscriber pings(service(run, "Ping"), blocking_subscriber(16));
  iox::popo::UntypedPublisher pongs(service(run, "Pong"), blocking_publisher());
  iox::popo::WaitSet<> waitset;
  if (waitset.attachState(pings, iox::popo::SubscriberState::HAS_DATA).has_error()) {
    std::fprintf(stderr, "iceoryx_peer: pong: cannot attach to the WaitSet\n");
    return kExitFailed;
  }
  while (!parent_gone(run)) {
    waitset.timedWait(kWakeToCheck);
    for (auto ping = pings.take(); !ping.has_error(); ping = pings.take()) {
      Stamp stamp;
      std::memcpy(&stamp, ping.value(), sizeof stamp);
      if (stamp.seq == kStop) {
        pings.release(ping.value());
        return kExitOk;
      }
      auto loaned = pongs.loan(static_cast<std::uint32_t>(o.payload_bytes), alignof(Stamp));
      if (!loaned.has_error()) {  // else the pinger times out and counts it lost
        std::memcpy(loaned.value(), ping.value(), o.payload_bytes);
        pongs.publish(loaned.value());
      }
      pings.release(ping.value());
    }
  }
  return kExitFailed;
}

// The parent: one ping at a time; the next leaves when the previous pong is back.
BenchResult ping(const PeerOptions& o, pid_t run, bool& set_up) {
  BenchResult r;
  init_runtime("ping", run);
  iox::popo::UntypedPublisher pings(service(run, "Ping"), blocking_publisher());
  iox::popo::UntypedSubscriber pongs(service(run, "Pong"), blocking_subscriber(16));
  iox::popo::WaitSet<> waitset;
  set_up = !waitset.attachState(pongs, iox::popo::SubscriberState::HAS_DATA).has_error() &&
           wait_connected([&] {
             return pings.hasSubscribers() && pongs.getSubscriptionState() == iox::SubscribeState::SUBSCRIBED;
           }, "ping");
  if (!set_up) return r;

  LatencyHistogram histogram;
  const auto start = Clock::now();
  const auto give_up = start + std::chrono::milliseconds(static_cast<std::int64_t>(o.max_seconds * 1000));
  std::uint64_t sent = 0, received = 0, out_of_order = 0;
  for (; sent < o.count && Clock::now() < give_up; ++sent) {
    if (!publish(pings, o.payload_bytes, {sent, now_ns()})) {
      std::fprintf(stderr, "iceoryx_peer: ping: no chunk to loan\n");
      break;
    }
    // A pong not back by the drain timeout is lost, and ends the run: the loop is closed.
    const auto pong_due = Clock::now() + kDrainTimeout;
    bool answered = false;
    while (!answered && Clock::now() < pong_due) {
      waitset.timedWait(kWakeToCheck);
      for (auto reply = pongs.take(); !reply.has_error(); reply = pongs.take()) {
        Stamp stamp;
        std::memcpy(&stamp, reply.value(), sizeof stamp);
        pongs.release(reply.value());
        histogram.record(now_ns() - stamp.sent_ns);
        if (stamp.seq != received) ++out_of_order;
        ++received;
        answered = stamp.seq == sent;
      }
    }
    if (!answered) {
      ++sent;
      std::fprintf(stderr, "iceoryx_peer: ping: pong %llu not back within %lld s\n",
                   static_cast<unsigned long long>(sent - 1), static_cast<long long>(kDrainTimeout.count()));
      break;
    }
  }
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  publish(pings, kMinPayloadBytes, {kStop, 0});
  r.scenario = "rtt";
  r.sent = sent;
  r.received = received;
  r.out_of_order = out_of_order;
  r.msgs_per_sec = r.seconds > 0 ? static_cast<double>(received) / r.seconds : 0;
  brook::runtime::fill_latency(r, histogram);
  return r;
}

// --- throughput ---------------------------------------------------------------------------

// What the subscribing child sends back through its pipe.
struct Summary {
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t last_ns = 0;
};

// The child: takes everything until the stop message, sleeping when the queue is empty.
// Reading the clock per message would cost a good part of what is measured: it is read every
// 1024 messages and at the end.
int subscribe(pid_t run, int results) {
  init_runtime("sub", run);
  // iceoryx's largest queue: the publisher runs at most this far ahead.
  iox::popo::UntypedSubscriber samples(service(run, "Data"),
                                       blocking_subscriber(iox::popo::SubscriberChunkQueueData_t::MAX_CAPACITY));
  iox::popo::WaitSet<> waitset;
  if (waitset.attachState(samples, iox::popo::SubscriberState::HAS_DATA).has_error()) return kExitFailed;
  Summary s;
  std::uint64_t expected = 0;
  bool stopped = false;
  while (!stopped && !parent_gone(run)) {
    waitset.timedWait(kWakeToCheck);
    for (auto sample = samples.take(); !sample.has_error(); sample = samples.take()) {
      std::uint64_t seq;
      std::memcpy(&seq, sample.value(), sizeof seq);
      samples.release(sample.value());
      if (seq == kStop) {
        stopped = true;
        break;
      }
      if (seq != expected) ++s.out_of_order;
      expected = seq + 1;
      if ((++s.received & 1023) == 0) s.last_ns = now_ns();
    }
  }
  s.last_ns = std::max(s.last_ns, now_ns());
  if (::write(results, &s, sizeof s) != sizeof s) return kExitFailed;
  return stopped ? kExitOk : kExitFailed;
}

BenchResult publish_flat_out(const PeerOptions& o, pid_t run, int results, bool& set_up) {
  BenchResult r;
  init_runtime("pub", run);
  iox::popo::UntypedPublisher samples(service(run, "Data"), blocking_publisher());
  set_up = wait_connected([&] { return samples.hasSubscribers(); }, "publisher");
  if (!set_up) return r;

  const std::uint64_t start = now_ns();
  const std::uint64_t give_up = start + static_cast<std::uint64_t>(o.max_seconds * 1e9);
  std::uint64_t sent = 0;
  for (; sent < o.count; ++sent) {
    if ((sent & 1023) == 0 && now_ns() >= give_up) break;
    // publish() itself waits while the subscriber's queue is full; a loan fails only when
    // RouDi's pool for this size is exhausted, which the queue bound should make impossible.
    if (!publish(samples, o.payload_bytes, {sent, 0})) {
      std::fprintf(stderr, "iceoryx_peer: publisher: no chunk to loan after %llu messages\n",
                   static_cast<unsigned long long>(sent));
      break;
    }
  }
  publish(samples, kMinPayloadBytes, {kStop, 0});
  Summary s;
  pollfd p{results, POLLIN, 0};
  const int wait_ms = static_cast<int>(std::chrono::milliseconds(kDrainTimeout).count());
  if (::poll(&p, 1, wait_ms) <= 0 || ::read(results, &s, sizeof s) != sizeof s)
    std::fprintf(stderr, "iceoryx_peer: the subscriber did not report\n");
  r.scenario = "throughput";
  r.sent = sent;
  r.received = s.received;
  r.out_of_order = s.out_of_order;
  r.seconds = s.last_ns > start ? static_cast<double>(s.last_ns - start) / 1e9 : 0;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(r.received) / r.seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(o.payload_bytes) / 1e6;
  }
  return r;
}

// --- main -----------------------------------------------------------------------------------

void print(const BenchResult& r, bool json) {
  if (json) {
    std::printf("%s\n", brook::runtime::to_json(r).c_str());
  } else if (r.scenario == "rtt") {
    std::printf("iceoryx rtt %zu B, closed loop: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us "
                "(min %.1f, mean %.1f), %llu sent, %llu lost\n",
                r.payload_bytes, r.p50_us, r.p99_us, r.p999_us, r.max_us, r.min_us, r.mean_us,
                static_cast<unsigned long long>(r.sent), static_cast<unsigned long long>(r.lost));
  } else {
    std::printf("iceoryx throughput %zu B: %.0f msgs/s (%.1f MB/s), %llu sent, %llu received, %llu lost, "
                "%llu out of order, %.3f s\n",
                r.payload_bytes, r.msgs_per_sec, r.mb_per_sec, static_cast<unsigned long long>(r.sent),
                static_cast<unsigned long long>(r.received), static_cast<unsigned long long>(r.lost),
                static_cast<unsigned long long>(r.out_of_order), r.seconds);
  }
  std::fflush(stdout);
}

// Waits for the child for at most kDrainTimeout, then kills it.
void reap(pid_t child) {
  const auto give_up = Clock::now() + kDrainTimeout;
  while (::waitpid(child, nullptr, WNOHANG) == 0) {
    if (Clock::now() > give_up) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Brook's shared-memory scenarios over iceoryx (RouDi must be running); one line per run"};
  PeerOptions o;
  app.add_option("scenario", o.scenario,
                 "rtt: closed-loop ping-pong, both sides sleeping in a WaitSet | "
                 "throughput: 1 publisher -> 1 subscriber flat out, the publisher blocked when the queue is full")
      ->required()
      ->check(CLI::IsMember({"rtt", "throughput"}));
  app.add_option("--payload", o.payload_bytes, "payload bytes per message")
      ->capture_default_str()
      ->check(CLI::Range(kMinPayloadBytes, std::size_t{1} << 20));
  app.add_option("--count", o.count, "round trips (rtt) or messages (throughput)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{1} << 40));
  app.add_option("--max-seconds", o.max_seconds, "stop sending after this long")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", o.json, "print one JSON line");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kExitOk : kExitUsage;
  }

  // Before any iceoryx call: each process gets a runtime of its own.
  const pid_t run = ::getpid();
  int results[2];
  if (::pipe2(results, O_CLOEXEC) != 0) {
    std::perror("iceoryx_peer: pipe");
    return kExitFailed;
  }
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child < 0) {
    std::perror("iceoryx_peer: fork");
    return kExitFailed;
  }
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the parent
    if (parent_gone(run)) return kExitFailed;
    ::close(results[0]);
    // Returns from main, so that the runtime's destructor deregisters from RouDi.
    return o.scenario == "rtt" ? pong(o, run) : subscribe(run, results[1]);
  }
  ::close(results[1]);

  bool set_up = false;
  BenchResult r = o.scenario == "rtt" ? ping(o, run, set_up) : publish_flat_out(o, run, results[0], set_up);
  reap(child);
  ::close(results[0]);
  if (!set_up) return kExitFailed;
  r.system = "iceoryx";
  r.transport = "shm";
  r.payload_bytes = o.payload_bytes;
  r.subscribers = 1;
  r.lost = r.sent > r.received ? r.sent - r.received : 0;
  print(r, o.json);
  return r.lost == 0 && r.out_of_order == 0 ? kExitOk : kExitFailed;
}
