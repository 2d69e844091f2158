// brook bench: the end-to-end load generator. Scenarios, each with its own fresh topics (resync
// and sessions are in bench_sessions.cpp, deltas in bench_deltas.cpp, requests in
// bench_requests.cpp, queue in bench_queue.cpp, oneway, fanout and raw-ring in bench_shm.cpp,
// topics in bench_topics.cpp):
//   throughput: one publisher -> one subscriber, flat out within --window-bytes of what the
//               subscriber has received; messages/s delivered, losses, order
//   rtt:        ping-pong through the broker at a fixed rate; latency measured from each
//               message's intended send time, so a stall shows in every message it delays.
//               --rate 0: closed loop, each ping sent when the previous pong arrives (from
//               the requester's callback), latency from its send: what one round trip costs
// Each run prints one JSON line (--json) in the format bench/compare collects for every system.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <thread>

#include "brook/client/client.hpp"
#include "brook/runtime/bench_report.hpp"
#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "bench_acked.hpp"
#include "bench_replay.hpp"
#include "bench_deltas.hpp"
#include "bench_requests.hpp"
#include "bench_queue.hpp"
#include "bench_sessions.hpp"
#include "bench_shm.hpp"
#include "bench_topics.hpp"
#include "bench_support.hpp"
#include "commands.hpp"

namespace brook::cli {

namespace {

using clock = std::chrono::steady_clock;

struct BenchArgs {
  std::string url = default_url();
  std::size_t payload = 64;
  std::uint64_t count = 100000;
  double rate = 10000;
  double max_seconds = 60;
  bool json = false;
  bool spin = false;
  std::uint64_t window_bytes = 1u << 20;
  std::size_t acked_window = default_acked_window;
};

bool connect_bench_client(Client& c, const std::string& url, bool spin) {
  auto options = bench_client_options(url);
  if (!options) return false;
  options->spin = spin;
  return connect_or_report(c, *options);
}

// Subscribes and waits until the broker has registered the selector on every shard.
bool subscribe_and_wait(Client& c, const std::string& selector, UpdateHandler handler) {
  auto ready = std::make_shared<std::promise<Status>>();
  auto answer = ready->get_future();
  c.subscribe(selector, std::move(handler), [ready](const Status& s) { ready->set_value(s); });
  if (answer.wait_for(std::chrono::seconds(10)) != std::future_status::ready || !answer.get()) {
    std::fprintf(stderr, "brook bench: subscription to %s was not confirmed\n", selector.c_str());
    return false;
  }
  return true;
}

void report(const runtime::BenchResult& r, bool json) {
  if (json) {
    std::printf("%s\n", runtime::to_json(r).c_str());
  } else if (r.scenario == "throughput") {
    std::printf("throughput %zu B: %.0f msgs/s (%.1f MB/s), %llu sent, %llu received, %llu lost, "
                "%llu out of order, %.3f s\n",
                r.payload_bytes, r.msgs_per_sec, r.mb_per_sec, (unsigned long long)r.sent,
                (unsigned long long)r.received, (unsigned long long)r.lost,
                (unsigned long long)r.out_of_order, r.seconds);
    if (r.sessions_closed.value_or(0) > 0)
      std::printf("  the subscriber's session was closed during the run\n");
  } else {
    const std::string pace = r.rate_target > 0 ? "at " + std::to_string(std::llround(r.rate_target)) + "/s"
                                               : std::string("closed loop");
    std::printf("rtt %zu B %s: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us "
                "(min %.1f, mean %.1f), %llu sent, %llu lost\n",
                r.payload_bytes, pace.c_str(), r.p50_us, r.p99_us, r.p999_us, r.max_us, r.min_us,
                r.mean_us, (unsigned long long)r.sent, (unsigned long long)r.lost);
  }
  std::fflush(stdout);
}

int run_throughput(const BenchArgs& a) {
  std::string topic = "Bench/" + unique_suffix();
  SessionWatch watch;  // outlives the clients, whose threads report to it
  Client subscriber, publisher;
  watch.watch(subscriber, "the subscriber");
  if (!connect_bench_client(subscriber, a.url, a.spin) || !connect_bench_client(publisher, a.url, a.spin)) return exit_usage;

  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> out_of_order{0};
  std::atomic<std::int64_t> last_receive_ns{0};
  std::uint64_t expected_next = 0;  // subscriber thread only
  bool ok = subscribe_and_wait(subscriber, topic, [&](const Update& u) {
    std::uint64_t seq = 0;
    if (u.value.size() >= 8) std::memcpy(&seq, u.value.data(), 8);
    if (seq != expected_next) out_of_order.fetch_add(1, std::memory_order_relaxed);
    expected_next = seq + 1;
    std::uint64_t n = received.load(std::memory_order_relaxed) + 1;
    // Reading the clock per message would cost more than the rest of this handler: read it
    // every 1024 messages and on the last one, which ends the measurement.
    if ((n & 1023) == 0 || n == a.count)
      last_receive_ns.store(static_cast<std::int64_t>(ns_of(clock::now())),
                            std::memory_order_relaxed);
    received.store(n, std::memory_order_release);
  });
  if (!ok) return exit_refused;

  std::vector<std::byte> payload(std::max<std::size_t>(a.payload, 8), std::byte{0x5a});
  auto start = clock::now();
  auto give_up = start + std::chrono::milliseconds(static_cast<std::int64_t>(a.max_seconds * 1000));
  std::uint64_t sent = 0;
  // Brook closes a subscriber whose queue overflows instead of stalling the publisher (NATS
  // stalls fast producers inside the server). To measure the sustained rate rather than the
  // overflow, the publisher stays at most `window` messages (--window-bytes) ahead of its
  // subscriber. A deeper backlog is slower per message: the queued bodies leave the cache.
  const std::uint64_t window = a.window_bytes == 0
                                   ? std::numeric_limits<std::uint64_t>::max()
                                   : std::max<std::uint64_t>(1024, a.window_bytes / (a.payload + 48));
  for (; sent < a.count; ++sent) {
    if ((sent & 1023) == 0 && clock::now() >= give_up) break;
    while (sent - received.load(std::memory_order_acquire) > window && clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    std::memcpy(payload.data(), &sent, 8);
    publisher.publish(topic, payload, TopicType::binary);
  }
  await_tail([&] { return received.load(std::memory_order_acquire); }, sent,
             give_up + std::chrono::seconds(5));
  runtime::BenchResult r;
  r.system = "brook";
  r.scenario = "throughput";
  r.transport = transport_of(a.url);
  r.payload_bytes = a.payload;
  r.sent = sent;
  r.received = received.load();
  r.lost = r.sent > r.received ? r.sent - r.received : 0;
  r.out_of_order = out_of_order.load();
  std::int64_t end_ns = last_receive_ns.load();
  r.seconds = static_cast<double>(end_ns - static_cast<std::int64_t>(ns_of(start))) / 1e9;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(r.received) / r.seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(a.payload) / 1e6;
  }
  watch.stop();
  publisher.close();
  subscriber.close();
  r.sessions_closed = watch.closed();
  report(r, a.json);
  return r.lost == 0 && r.out_of_order == 0 ? exit_ok : exit_refused;
}

int run_rtt(const BenchArgs& a) {
  std::string base = "Bench/" + unique_suffix();
  std::string ping_topic = base + "/Ping", pong_topic = base + "/Pong";
  Client requester, responder;
  if (!connect_bench_client(requester, a.url, a.spin) || !connect_bench_client(responder, a.url, a.spin)) return exit_usage;

  // The responder publishes every ping straight back from its client thread.
  Client* echo = &responder;
  if (!subscribe_and_wait(responder, ping_topic, [echo, pong_topic](const Update& u) {
        echo->publish(pong_topic, u.value, TopicType::binary);
      }))
    return exit_refused;

  const bool closed_loop = !(a.rate > 0);
  std::vector<std::byte> payload(std::max<std::size_t>(a.payload, 16), std::byte{0x5a});
  auto start = clock::now() + std::chrono::milliseconds(10);
  auto give_up = start + std::chrono::milliseconds(static_cast<std::int64_t>(a.max_seconds * 1000));
  // Closed loop: after the first ping the requester's client thread sends, from its own copy.
  std::vector<std::byte> next_payload = payload;
  std::atomic<std::uint64_t> sent{0};
  auto send_ping = [&](std::vector<std::byte>& bytes, std::uint64_t seq, std::uint64_t intended_ns) {
    std::memcpy(bytes.data(), &seq, 8);
    std::memcpy(bytes.data() + 8, &intended_ns, 8);
    requester.publish(ping_topic, bytes, TopicType::binary);
  };

  runtime::LatencyHistogram histogram;
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> out_of_order{0};
  std::uint64_t expected_next = 0;
  if (!subscribe_and_wait(requester, pong_topic, [&](const Update& u) {
        if (u.value.size() < 16) return;
        std::uint64_t seq, intended_ns;
        std::memcpy(&seq, u.value.data(), 8);
        std::memcpy(&intended_ns, u.value.data() + 8, 8);
        const auto now = clock::now();
        histogram.record(ns_of(now) - intended_ns);
        if (seq != expected_next) out_of_order.fetch_add(1, std::memory_order_relaxed);
        expected_next = seq + 1;
        received.fetch_add(1, std::memory_order_release);
        if (closed_loop && seq + 1 < a.count && now < give_up) {
          sent.store(seq + 2, std::memory_order_release);
          send_ping(next_payload, seq + 1, ns_of(clock::now()));
        }
      }))
    return exit_refused;

  if (closed_loop) {
    sent.store(1, std::memory_order_release);
    send_ping(payload, 0, ns_of(clock::now()));
    // The loop ends itself at --count or --max-seconds; a lost pong would stop it early.
    std::uint64_t seen = 0;
    auto quiet_since = clock::now();
    while (received.load(std::memory_order_acquire) < sent.load(std::memory_order_acquire) ||
           (sent.load(std::memory_order_acquire) < a.count && clock::now() < give_up)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const std::uint64_t now_received = received.load(std::memory_order_acquire);
      if (now_received != seen) {
        seen = now_received;
        quiet_since = clock::now();
      } else if (clock::now() - quiet_since > std::chrono::seconds(5)) {
        break;
      }
    }
  } else {
    runtime::RatePacer pacer(a.rate, start);
    std::uint64_t n = 0;
    for (; n < a.count && clock::now() < give_up; ++n) {
      auto intended = pacer.wait_until_due(n);
      send_ping(payload, n, ns_of(intended));
    }
    sent.store(n, std::memory_order_release);
  }
  auto wait_end = clock::now() + std::chrono::seconds(5);
  while (received.load(std::memory_order_acquire) < sent.load(std::memory_order_acquire) &&
         clock::now() < wait_end)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  requester.close();  // joins the client thread: the histogram is ours from here
  responder.close();

  runtime::BenchResult r;
  r.system = "brook";
  r.scenario = "rtt";
  r.transport = transport_of(a.url);
  r.payload_bytes = a.payload;
  r.sent = sent.load();
  r.received = received.load();
  r.lost = r.sent > r.received ? r.sent - r.received : 0;
  r.out_of_order = out_of_order.load();
  r.rate_target = a.rate;
  r.seconds = std::chrono::duration<double>(clock::now() - start).count();
  runtime::fill_latency(r, histogram);
  report(r, a.json);
  return r.lost == 0 && r.out_of_order == 0 ? exit_ok : exit_refused;
}

}  // namespace

Action add_bench_command(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto scenario = std::make_shared<std::string>();
  auto broker_pid = std::make_shared<long>(0);
  auto handlers = std::make_shared<unsigned>(1);
  auto non_sticky = std::make_shared<bool>(false);
  auto subscribers = std::make_shared<unsigned>(1);
  auto topics = std::make_shared<std::uint64_t>(100000);
  auto round_trip = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("bench", "end-to-end load: throughput, rtt, oneway, fanout, topics, "
                                          "resync, sessions, deltas, requests, queue, acked, replay or raw-ring");
  cmd->add_option("scenario", *scenario,
                  "throughput | rtt | resync (a subscriber away while --count updates are "
                  "published) | sessions (broker memory per idle session, --count sessions) | "
                  "deltas (the odds feed at --rate, without and with deltas: bytes and latency) | "
                  "requests (--handlers echo handlers: latency at --rate, then requests/s flat out) | "
                  "oneway (one-way latency at --rate to --subscribers clients; with the broker's "
                  "CPU per update) | fanout (the same, to 1000 subscribers by default) | topics "
                  "(--count updates round --topics topics flat out, to --subscribers clients that "
                  "each subscribe to all of them with one selector; order per topic) | raw-ring "
                  "(oneway between two processes over a shared-memory ring, no broker: the "
                  "hardware baseline; --rate 0 for throughput) | queue (--count "
                  "updates published into the fail-safe client's queue while its broker is cut off, in "
                  "memory and persistent with each fsync policy; then the time to flush them) | acked "
                  "(publish_acked: the acknowledgement's latency for --count/4 publishes at --rate, "
                  "then acknowledged msgs/s for --count flat out, --window unacknowledged at most) | "
                  "replay (--count updates round --topics topics, then one subscriber asks for all "
                  "of their history: replayed updates/s)")
      ->required()
      ->check(CLI::IsMember({"throughput", "rtt", "resync", "sessions", "deltas", "requests", "queue",
                             "oneway", "fanout", "topics", "raw-ring", "acked", "replay"}));
  cmd->add_option("--broker-pid", *broker_pid,
                  "sessions, oneway, fanout: the brookd to measure (default: the only one)");
  cmd->add_option("--url", args->url, "broker URL: tcp://HOST:PORT or shm://PATH (default $BROOK_URL or tcp://127.0.0.1:9090)");
  cmd->add_option("--payload", args->payload, "value bytes (default 64; at least 16 for rtt, oneway, "
                  "fanout and topics)");
  cmd->add_option("--count", args->count, "messages (default 100000)");
  cmd->add_option("--rate", args->rate, "rtt: round trips started per second (0: closed loop, one at a time); oneway, fanout, deltas, acked: "
                  "updates per second; requests: requests per second in the latency phase "
                  "(default 10000)");
  cmd->add_option("--handlers", *handlers, "requests: handler sessions on the endpoint (default 1)")
      ->check(CLI::PositiveNumber);
  cmd->add_flag("--non-sticky", *non_sticky, "requests: register the handlers round-robin, not sticky");
  auto* subscribers_option =
      cmd->add_option("--subscribers", *subscribers,
                      "oneway, fanout, topics: subscribing clients (default 1, fanout 1000, topics 4)")
          ->check(CLI::Range(1, 1000));
  cmd->add_option("--topics", *topics, "topics: how many topics the updates go round (default 100000)")
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{10'000'000}));
  cmd->add_option("--window-bytes", args->window_bytes,
                  "throughput, topics: the bytes the publisher may run ahead of its slowest "
                  "subscriber (default 1 MiB); 0: no window, the publisher goes as fast as "
                  "publish() accepts (flow control alone keeps the subscriber whole)")
      ->check(CLI::Range(std::uint64_t{0}, std::uint64_t{1} << 30));
  cmd->add_option("--window", args->acked_window,
                  "acked: publishes awaiting their acknowledgement at most, flat out (default 1024)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  cmd->add_flag("--round-trip", *round_trip,
                "raw-ring: closed-loop round trips over two rings instead (the next record leaves when "
                "the previous one is back; --rate does not apply)");
  cmd->add_flag("--spin", args->spin, "clients (and raw-ring's reader) busy-poll instead of sleeping");
  auto context = std::make_shared<std::string>("explicit");
  cmd->add_option("--context", *context,
                  "oneway, fanout: where several subscribers run: explicit (a ClientContext of their "
                  "own, the default) or default (the process's default context, with the publisher)")
      ->check(CLI::IsMember({"explicit", "default"}));
  cmd->add_option("--max-seconds", args->max_seconds, "stop sending after this long (default 60)");
  cmd->add_flag("--json", args->json, "print one JSON line");
  return [args, scenario, broker_pid, handlers, non_sticky, subscribers, subscribers_option,
          topics, round_trip, context]() -> int {
    // Each scenario's own default when --subscribers is not given.
    const unsigned subscriber_count = subscribers_option->count() > 0 ? *subscribers
                                      : *scenario == "fanout"         ? 1000
                                      : *scenario == "topics"         ? 4
                                                                      : 1;
    if (*scenario == "oneway" || *scenario == "fanout")
      return run_oneway({.scenario = *scenario, .url = args->url, .payload = args->payload,
                         .count = args->count, .rate = args->rate, .subscribers = subscriber_count,
                         .spin = args->spin, .default_context = *context == "default",
                         .broker_pid = *broker_pid,
                         .max_seconds = args->max_seconds, .json = args->json});
    if (*scenario == "topics")
      return run_topics({.url = args->url, .topics = *topics, .subscribers = subscriber_count,
                         .count = args->count, .payload = args->payload,
                         .window_bytes = args->window_bytes, .spin = args->spin,
                         .max_seconds = args->max_seconds, .json = args->json});
    if (*scenario == "raw-ring")
      return run_raw_ring({.payload = args->payload, .count = args->count, .rate = args->rate,
                           .round_trip = *round_trip, .spin = args->spin,
                           .max_seconds = args->max_seconds, .json = args->json});
    if (*scenario == "resync") return run_resync(args->url, args->count, args->payload, args->json);
    if (*scenario == "queue") return run_queue(args->url, args->count, args->payload, args->json);
    if (*scenario == "sessions") return run_sessions(args->url, args->count, *broker_pid, args->json);
    if (*scenario == "deltas") return run_deltas(args->url, args->count, args->rate, args->json);
    if (*scenario == "replay")
      return run_replay_bench(args->url, args->payload, args->count, *topics, args->max_seconds, args->json);
    if (*scenario == "acked")
      return run_acked(args->url, args->payload, args->count, args->rate, args->acked_window,
                       args->max_seconds, args->json);
    if (*scenario == "requests")
      return run_requests({.url = args->url, .count = args->count, .rate = args->rate, .payload = args->payload,
                           .handlers = *handlers, .sticky = !*non_sticky, .json = args->json});
    return *scenario == "throughput" ? run_throughput(*args) : run_rtt(*args);
  };
}

}  // namespace brook::cli
