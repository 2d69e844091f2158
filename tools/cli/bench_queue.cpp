#include "bench_queue.hpp"

#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/runtime/bench_report.hpp"
#include "brook/transport/tcp.hpp"
#include "bench_support.hpp"
#include "commands.hpp"
#include "cut_relay.hpp"

namespace brook::cli {

namespace {

using clock = std::chrono::steady_clock;

struct Mode {
  const char* name;
  bool persistent;
  QueueFsync fsync;
};

struct ModeResult {
  std::uint64_t queued = 0, received = 0, out_of_order = 0;
  double enqueue_per_sec = 0, flush_seconds = 0;
  bool ok = false;
};

double seconds_since(clock::time_point t) {
  return std::chrono::duration<double>(clock::now() - t).count();
}

ModeResult run_mode(const std::string& url, std::uint16_t broker_port, const Mode& mode,
                    std::uint64_t count, std::size_t payload, const std::string& dir) {
  ModeResult r;
  const std::string topic = std::string("bench/q/") + mode.name + "/" + unique_suffix();

  Client subscriber;
  std::atomic<std::uint64_t> received{0}, out_of_order{0};
  if (auto s = subscriber.connect({.url = url, .client_name = "brook-bench-queue-sub"}); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return r;
  }
  std::promise<Status> subscribed;
  subscriber.subscribe(topic, [&](const Update& u) {
    std::uint64_t seq = 0;
    std::memcpy(&seq, u.value.data(), sizeof seq);
    const std::uint64_t n = received.load(std::memory_order_relaxed);
    if (seq != n) out_of_order.fetch_add(1, std::memory_order_relaxed);
    received.store(n + 1, std::memory_order_release);
  }, [&](const Status& s) { subscribed.set_value(s); });
  if (auto s = subscribed.get_future().get(); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return r;
  }

  CutRelay relay(broker_port);
  relay.cut();  // the publisher finds no broker: every call goes into its queue
  ClientOptions o;
  o.url = "tcp://127.0.0.1:" + std::to_string(relay.port());
  o.client_name = "brook-bench-queue-pub";
  o.retries = -1;
  o.reconnect_delay = std::chrono::milliseconds(1);
  o.queue_entries = -1;
  o.queue_bytes = -1;
  const std::string path = dir + "/" + mode.name + ".queue";
  if (mode.persistent) {
    o.queue_path = path;
    o.queue_fsync = mode.fsync;
  }
  Client publisher;
  if (auto s = publisher.connect(o); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return r;
  }
  std::vector<std::byte> value(std::max<std::size_t>(payload, 8), std::byte{0x5a});
  const auto start = clock::now();
  for (std::uint64_t i = 0; i < count; ++i) {
    std::memcpy(value.data(), &i, sizeof i);
    if (auto s = publisher.publish(topic, value, TopicType::binary); !s) {
      std::fprintf(stderr, "brook bench: publish %llu: %s\n", (unsigned long long)i, s.message.c_str());
      return r;
    }
  }
  r.enqueue_per_sec = static_cast<double>(count) / seconds_since(start);
  r.queued = count;

  const auto opened = clock::now();
  relay.reopen();
  const auto give_up = opened + std::chrono::seconds(60);
  while (received.load(std::memory_order_acquire) < count && clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  r.flush_seconds = seconds_since(opened);
  r.received = received.load();
  r.out_of_order = out_of_order.load();
  r.ok = r.received == count && r.out_of_order == 0;
  publisher.close();
  subscriber.close();
  ::unlink(path.c_str());
  return r;
}

}  // namespace

int run_queue(const std::string& url, std::uint64_t count, std::size_t payload, bool json) {
  constexpr std::string_view scheme = "tcp://";
  auto endpoint = url.rfind(scheme, 0) == 0 ? transport::parse_endpoint(std::string_view(url).substr(scheme.size()))
                                            : std::nullopt;
  if (!endpoint) {
    std::fprintf(stderr, "brook bench queue: needs a tcp:// URL (it cuts the publisher's connection)\n");
    return exit_usage;
  }
  char pattern[] = "/tmp/brook-bench-queue-XXXXXX";
  const char* dir = ::mkdtemp(pattern);
  if (!dir) {
    std::perror("brook bench queue: mkdtemp");
    return exit_refused;
  }
  // fdatasync per call runs at the disk's pace: a smaller count keeps that pass bounded.
  const Mode modes[] = {{"memory", false, QueueFsync::never},
                        {"never", true, QueueFsync::never},
                        {"batch", true, QueueFsync::batch},
                        {"always", true, QueueFsync::always}};
  bool all_ok = true;
  for (const Mode& mode : modes) {
    const std::uint64_t n = mode.persistent && mode.fsync == QueueFsync::always ? std::min<std::uint64_t>(count, 2000) : count;
    ModeResult r = run_mode(url, endpoint->port, mode, n, payload, dir);
    all_ok &= r.ok;
    if (json) {
      std::string out = "{";
      runtime::detail::json_field(out, "system", "brook");
      runtime::detail::json_field(out, "scenario", "queue");
      runtime::detail::json_field(out, "mode", mode.name);
      runtime::detail::json_field(out, "payload_bytes", payload);
      runtime::detail::json_field(out, "sent", r.queued);
      runtime::detail::json_field(out, "received", r.received);
      runtime::detail::json_field(out, "lost", r.queued - std::min(r.queued, r.received));
      runtime::detail::json_field(out, "out_of_order", r.out_of_order);
      runtime::detail::json_field(out, "enqueue_per_sec", r.enqueue_per_sec);
      runtime::detail::json_field(out, "flush_seconds", r.flush_seconds);
      runtime::detail::json_field(out, "flush_per_sec", r.flush_seconds > 0 ? r.received / r.flush_seconds : 0.0);
      out += '}';
      std::printf("%s\n", out.c_str());
    } else {
      std::printf("queue %-6s %llu x %zu B: %.0f calls/s into the queue; flushed in %.3f s (%.0f/s); %llu lost, %llu out of order\n",
                  mode.name, (unsigned long long)r.queued, payload, r.enqueue_per_sec, r.flush_seconds,
                  r.flush_seconds > 0 ? r.received / r.flush_seconds : 0.0,
                  (unsigned long long)(r.queued - std::min(r.queued, r.received)),
                  (unsigned long long)r.out_of_order);
    }
    std::fflush(stdout);
  }
  ::rmdir(dir);
  return all_ok ? exit_ok : exit_refused;
}

}  // namespace brook::cli
