// brook bench oneway, fanout and raw-ring: one-way latency and fan-out through the broker (any
// URL, shm:// above all), and the hardware baseline they are measured against: the same byte
// ring between two processes with no broker in between.
//
// oneway:   one publisher, --subscribers clients, at --rate updates/s. Each value carries its
//           intended send time (so a stall delays every later measurement instead of hiding),
//           and every subscriber checks order and counts. With the broker's pid, its CPU time
//           per update is reported: the cost of one more subscriber; and this process's own
//           CPU time per delivery and resident memory per subscriber: the client library's.
// fanout:   the same measurement under its own name, with a thousand subscribers by default.
// raw-ring: a child process reads fixed-size records that the parent writes into an SPSC ring
//           in a memfd, paced (latency) or flat out (--rate 0: throughput); it sleeps on an
//           eventfd when the ring is empty, or busy-polls with --spin. With --round-trip, a
//           closed loop over two rings: the child writes every record straight back, and the
//           parent sends the next one only when the previous is back; both sides sleep the same
//           way (or spin).
#include "bench_shm.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/runtime/bench_report.hpp"
#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "brook/transport/shm_ring.hpp"
#include "brook/transport/shm_segment.hpp"
#include "bench_support.hpp"
#include "commands.hpp"
#include "process_stats.hpp"

namespace brook::cli {

namespace {

using clock = std::chrono::steady_clock;

void report(const runtime::BenchResult& r, bool json) {
  if (json) {
    std::printf("%s\n", runtime::to_json(r).c_str());
    return;
  }
  std::printf("%s %s over %s, %zu B, %u subscriber(s): %llu/%llu received, %llu lost, %llu out of order\n",
              r.system.c_str(), r.scenario.c_str(), r.transport.c_str(), r.payload_bytes,
              r.subscribers, (unsigned long long)r.received, (unsigned long long)r.sent,
              (unsigned long long)r.lost, (unsigned long long)r.out_of_order);
  if (r.p50_us > 0)
    std::printf("  %s latency us: p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
                r.scenario == "rtt" ? "round-trip" : "one-way", r.p50_us, r.p99_us, r.p999_us, r.max_us);
  std::printf("  %.0f msgs/s delivered (%.1f MB/s)\n", r.msgs_per_sec, r.mb_per_sec);
  if (r.broker_cpu_us_per_update > 0)
    std::printf("  broker CPU %.2f us per update\n", r.broker_cpu_us_per_update);
}

// One subscriber's view: its own histogram and order check, touched only by its client's thread
// until that client is closed.
struct Receiver {
  runtime::LatencyHistogram histogram;
  std::atomic<std::uint64_t> received{0};
  std::uint64_t expected = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t last_ns = 0;  // when the latest update arrived: the end of the measurement
};

// Each subscriber holds a socket, an io_uring and an eventfd: a thousand of them pass the soft
// limit of 1024 descriptors many systems start with.
void raise_descriptor_limit() {
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// Runs `task(i)` for every client index on a few threads: connecting and closing wait for the
// broker and start or join the client's thread, which one client after the other takes
// seconds for a thousand.
template <typename Task>
void for_each_in_parallel(std::size_t count, Task task) {
  constexpr std::size_t workers = 16;
  std::vector<std::thread> threads;
  for (std::size_t w = 0; w < workers && w < count; ++w)
    threads.emplace_back([&task, count, w] {
      for (std::size_t i = w; i < count; i += workers) task(i);
    });
  for (auto& thread : threads) thread.join();
}

}  // namespace

int run_oneway(const OnewayArgs& a) {
  raise_descriptor_limit();
  const std::string topic = "Bench/" + unique_suffix() + "/" + a.scenario;
  auto bench_options = bench_client_options(a.url);
  if (!bench_options) return exit_usage;
  ClientOptions options = *bench_options;
  // The publisher's thread sleeps even with --spin: on two cores a spinning publisher, broker
  // and subscriber would take turns on the cores and measure the scheduler.
  Client publisher;
  if (!connect_or_report(publisher, options)) return exit_usage;
  // Whole values: the transport is measured, not the delta codec.
  TopicProperties properties;
  properties.type = TopicType::binary;
  properties.deltas = false;
  if (auto s = publisher.create_topic(topic, properties).get(); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return exit_refused;
  }

  // The subscribers connect (a round trip each, a few at a time), then all subscribe at once
  // and the confirmations are awaited together.
  const auto setup_start = clock::now();
  options.spin = a.spin;
  // Several subscribers share one I/O thread (a ClientContext, or the default context), as an
  // application holding many sessions runs them: one thread to wake per update, not one per
  // session.
  const std::uint64_t rss_before_kib = rss_kib(::getpid());
  ClientContext context;
  SessionWatch watch;  // outlives the subscribers, whose thread reports to it
  std::vector<std::unique_ptr<Receiver>> receivers;
  std::vector<std::unique_ptr<Client>> subscribers;
  std::vector<Status> connected(a.subscribers);
  for (unsigned i = 0; i < a.subscribers; ++i) {
    receivers.push_back(std::make_unique<Receiver>());
    subscribers.push_back(a.subscribers > 1 && !a.default_context ? std::make_unique<Client>(context)
                                                                  : std::make_unique<Client>());
    watch.watch(*subscribers.back(), "subscriber " + std::to_string(i));
  }
  for_each_in_parallel(a.subscribers,
                       [&](std::size_t i) { connected[i] = subscribers[i]->connect(options); });
  for (unsigned i = 0; i < a.subscribers; ++i) {
    if (!connected[i]) {
      std::fprintf(stderr, "brook bench: subscriber %u: %s\n", i, connected[i].message.c_str());
      return exit_usage;
    }
  }
  std::vector<std::future<Status>> confirmations;
  for (unsigned i = 0; i < a.subscribers; ++i) {
    Receiver* r = receivers[i].get();
    auto verdict = std::make_shared<std::promise<Status>>();
    confirmations.push_back(verdict->get_future());
    subscribers[i]->subscribe(
        topic,
        [r](const Update& u) {
          if (u.value.size() < 16) return;  // the topic's empty first value
          std::uint64_t seq, intended;
          std::memcpy(&seq, u.value.data(), 8);
          std::memcpy(&intended, u.value.data() + 8, 8);
          const std::uint64_t now = now_ns();
          r->histogram.record(now - intended);
          if (seq != r->expected) ++r->out_of_order;
          r->expected = seq + 1;
          r->last_ns = now;
          r->received.fetch_add(1, std::memory_order_release);  // pairs with the acquire in total()
        },
        [verdict](const Status& s) { verdict->set_value(s); });
  }
  const auto confirm_by = clock::now() + std::chrono::seconds(10);
  for (unsigned i = 0; i < a.subscribers; ++i) {
    if (confirmations[i].wait_until(confirm_by) != std::future_status::ready ||
        !confirmations[i].get()) {
      std::fprintf(stderr, "brook bench: subscriber %u was not confirmed\n", i);
      return exit_refused;
    }
  }
  const double setup_seconds = std::chrono::duration<double>(clock::now() - setup_start).count();

  const long broker = a.broker_pid > 0 ? a.broker_pid : find_brookd();
  const double cpu_before = broker > 0 ? cpu_seconds(broker) : -1;
  const double own_cpu_before = cpu_seconds(::getpid());
  const double io_cpu_before = cpu_seconds(::getpid(), "brook-client");
  std::vector<std::byte> value(std::max<std::size_t>(a.payload, 16), std::byte{0x5a});
  auto start = clock::now() + std::chrono::milliseconds(10);
  runtime::RatePacer pacer(a.rate, start);
  auto give_up = start + std::chrono::milliseconds(static_cast<std::int64_t>(a.max_seconds * 1000));
  std::uint64_t sent = 0;
  for (; sent < a.count && clock::now() < give_up; ++sent) {
    const std::uint64_t intended = ns_of(pacer.wait_until_due(sent));
    std::memcpy(value.data(), &sent, 8);
    std::memcpy(value.data() + 8, &intended, 8);
    publisher.publish(topic, value, TopicType::binary);
  }
  auto total = [&] {
    std::uint64_t n = 0;
    for (auto& r : receivers) n += r->received.load(std::memory_order_acquire);
    return n;
  };
  const std::uint64_t expected = sent * a.subscribers;
  await_tail(total, expected);
  const double cpu_after = broker > 0 ? cpu_seconds(broker) : -1;
  const double own_cpu_after = cpu_seconds(::getpid());
  const double io_cpu_after = cpu_seconds(::getpid(), "brook-client");
  const std::uint64_t rss_after_kib = rss_kib(::getpid());
  watch.stop();
  publisher.close();
  // Joins their threads: the receivers are ours now.
  for_each_in_parallel(a.subscribers, [&](std::size_t i) { subscribers[i]->close(); });

  runtime::BenchResult r;
  r.system = "brook";
  r.scenario = a.scenario;
  r.transport = transport_of(a.url);
  r.payload_bytes = value.size();
  r.subscribers = a.subscribers;
  r.rate_target = a.rate;
  r.sent = expected;
  r.sessions_closed = watch.closed();
  runtime::LatencyHistogram merged;
  std::uint64_t last_ns = 0;
  for (auto& receiver : receivers) {
    r.received += receiver->received.load();
    r.out_of_order += receiver->out_of_order;
    last_ns = std::max(last_ns, receiver->last_ns);
    merged.merge(receiver->histogram);
  }
  r.lost = r.sent > r.received ? r.sent - r.received : 0;
  // From the first intended send to the last delivery: the idle wait for a lost tail is not
  // part of it.
  r.seconds = last_ns > ns_of(start) ? static_cast<double>(last_ns - ns_of(start)) / 1e9 : 0;
  r.msgs_per_sec = r.seconds > 0 ? static_cast<double>(r.received) / r.seconds : 0;
  r.mb_per_sec = r.msgs_per_sec * static_cast<double>(value.size()) / 1e6;
  if (cpu_before >= 0 && cpu_after >= 0 && sent > 0)
    r.broker_cpu_us_per_update = (cpu_after - cpu_before) * 1e6 / static_cast<double>(sent);
  runtime::fill_latency(r, merged);
  report(r, a.json);
  if (!a.json) {
    std::printf("  %u subscriber(s) connected and subscribed in %.2f s\n", a.subscribers, setup_seconds);
    // The client I/O threads' CPU is the client library's cost of a delivery; the whole
    // process's adds the publisher and its pacing.
    const double per_delivery = r.received > 0 ? 1e6 / static_cast<double>(r.received) : 0.0;
    std::printf("  this process (subscribers %s): RSS %llu KiB, %.1f KiB a subscriber more than before they "
                "were made; CPU per delivery %.2f us in the client I/O threads, %.2f us in all\n",
                a.subscribers > 1 && !a.default_context ? "on a ClientContext" : "made without a ClientContext",
                (unsigned long long)rss_after_kib,
                static_cast<double>(rss_after_kib - std::min(rss_after_kib, rss_before_kib)) / a.subscribers,
                (io_cpu_after - io_cpu_before) * per_delivery, (own_cpu_after - own_cpu_before) * per_delivery);
  }
  return r.lost == 0 && r.out_of_order == 0 ? exit_ok : exit_refused;
}

namespace {

// What the reading child sends back through its pipe.
struct RingSummary {
  std::uint64_t received = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t first_ns = 0;
  std::uint64_t last_ns = 0;
  std::uint64_t p50 = 0, p99 = 0, p999 = 0, max = 0, min = 0;
  double mean = 0;
};

// The child: reads `count` records of `record` bytes, sleeping on `doorbell` when the ring is
// empty unless `spin`.
RingSummary read_records(transport::ShmRingReader& reader, std::size_t record, std::uint64_t count,
                         bool spin, int doorbell) {
  RingSummary s;
  auto histogram = std::make_unique<runtime::LatencyHistogram>();
  std::vector<std::byte> buffer(record);
  std::size_t filled = 0;
  std::uint64_t expected = 0;
  while (s.received < count) {
    auto bytes = reader.readable();
    if (bytes.empty()) {
      if (spin) continue;
      if (!reader.prepare_to_sleep()) {
        pollfd p{doorbell, POLLIN, 0};
        if (::poll(&p, 1, 1000) == 0 && ::getppid() == 1) break;  // the writer is gone
        std::uint64_t ignored;
        [[maybe_unused]] auto n = ::read(doorbell, &ignored, sizeof ignored);
      }
      reader.awake();
      continue;
    }
    std::size_t used = 0;
    while (used < bytes.size()) {
      const std::size_t take = std::min(record - filled, bytes.size() - used);
      std::memcpy(buffer.data() + filled, bytes.data() + used, take);
      filled += take;
      used += take;
      if (filled < record) break;
      filled = 0;
      std::uint64_t seq, intended;
      std::memcpy(&seq, buffer.data(), 8);
      std::memcpy(&intended, buffer.data() + 8, 8);
      const std::uint64_t now = now_ns();
      histogram->record(now - intended);
      if (seq != expected) ++s.out_of_order;
      expected = seq + 1;
      if (s.received++ == 0) s.first_ns = now;
      s.last_ns = now;
    }
    reader.consume(used);
  }
  s.p50 = histogram->percentile(50.0);
  s.p99 = histogram->percentile(99.0);
  s.p999 = histogram->percentile(99.9);
  s.max = histogram->max();
  s.min = histogram->min();
  s.mean = histogram->mean();
  return s;
}

// Forks a child that runs `body` (its result is the child's exit status, without running this
// process's exit handlers) and dies with this process. Returns its pid, or -1 after saying why.
template <class Body>
pid_t fork_child(Body body) {
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child < 0) std::perror("brook bench: fork");
  if (child == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives the writer, spinning or not
    ::_exit(body());
  }
  return child;
}

// Writes one whole record, yielding while the ring is full, and wakes the reader if it sleeps.
void write_record(transport::ShmRingWriter& writer, std::span<const std::byte> record, int doorbell) {
  std::size_t written = 0;
  while (written < record.size()) {
    written += writer.write(record.subspan(written));
    if (written < record.size()) std::this_thread::yield();  // full: the reader catches up
  }
  const std::uint64_t one = 1;
  if (writer.publish()) [[maybe_unused]] auto n = ::write(doorbell, &one, sizeof one);
}

// Reads one whole record into `out`, sleeping on `doorbell` when the ring is empty (as
// read_records does) unless `spin`. Asks `give_up()` after every 200 ms asleep, or every 2^20
// empty looks when spinning; returns false when it says so or the ring is corrupt.
template <class GiveUp>
bool read_record(transport::ShmRingReader& reader, std::span<std::byte> out, bool spin, int doorbell,
                 GiveUp give_up) {
  std::size_t filled = 0;
  std::uint32_t empty_looks = 0;
  while (filled < out.size()) {
    auto bytes = reader.readable();
    if (reader.corrupt()) return false;
    if (bytes.empty()) {
      if (spin) {
        if ((++empty_looks & 0xfffff) == 0 && give_up()) return false;
        continue;
      }
      if (!reader.prepare_to_sleep()) {
        pollfd p{doorbell, POLLIN, 0};
        if (::poll(&p, 1, 200) > 0) {
          std::uint64_t ignored;
          [[maybe_unused]] auto n = ::read(doorbell, &ignored, sizeof ignored);
        } else if (give_up()) {
          reader.awake();
          return false;
        }
      }
      reader.awake();
      continue;
    }
    const std::size_t take = std::min(out.size() - filled, bytes.size());
    std::memcpy(out.data() + filled, bytes.data(), take);
    filled += take;
    reader.consume(take);  // the writer never sleeps for space here: it yields
  }
  return true;
}

// The last record of a round-trip run: the child exits when it reads it.
constexpr std::uint64_t kStopSequence = ~std::uint64_t{0};

// --round-trip: the parent writes a record into one ring, the child writes it back through
// the other, and the parent records the round trip before it writes the next.
int run_raw_ring_round_trip(const RawRingArgs& a) {
  const std::size_t record = std::max<std::size_t>(a.payload, 16);
  transport::SharedSegment segment = transport::SharedSegment::create(
      "brook-bench-ring", transport::session_segment_bytes(a.ring_bytes, a.ring_bytes));
  auto rings = transport::init_session_segment(segment.bytes(), a.ring_bytes, a.ring_bytes);
  const int ping_bell = ::eventfd(0, EFD_CLOEXEC);  // the child sleeps on it
  const int pong_bell = ::eventfd(0, EFD_CLOEXEC);  // the parent sleeps on it
  if (ping_bell < 0 || pong_bell < 0) {
    std::perror("brook bench");
    return exit_usage;
  }
  const pid_t parent = ::getpid();
  const pid_t child = fork_child([&] {
    transport::ShmRingReader pings(rings.to_broker, rings.to_broker_data, rings.to_broker_bytes);
    transport::ShmRingWriter pongs(rings.to_client, rings.to_client_data, rings.to_client_bytes);
    std::vector<std::byte> buffer(record);
    const auto parent_gone = [parent] { return ::getppid() != parent; };
    while (read_record(pings, buffer, a.spin, ping_bell, parent_gone)) {
      std::uint64_t seq;
      std::memcpy(&seq, buffer.data(), 8);
      if (seq == kStopSequence) return 0;
      write_record(pongs, buffer, pong_bell);
    }
    return 1;
  });
  if (child < 0) return exit_usage;

  transport::ShmRingWriter pings(rings.to_broker, rings.to_broker_data, rings.to_broker_bytes);
  transport::ShmRingReader pongs(rings.to_client, rings.to_client_data, rings.to_client_bytes);
  std::vector<std::byte> value(record, std::byte{0x5a});
  std::vector<std::byte> reply(record);
  runtime::LatencyHistogram histogram;
  const auto start = clock::now();
  const auto give_up = start + std::chrono::milliseconds(static_cast<std::int64_t>(a.max_seconds * 1000));
  std::uint64_t sent = 0, received = 0, out_of_order = 0;
  for (; sent < a.count && clock::now() < give_up; ++sent) {
    const std::uint64_t sent_ns = now_ns();
    std::memcpy(value.data(), &sent, 8);
    std::memcpy(value.data() + 8, &sent_ns, 8);
    write_record(pings, value, ping_bell);
    // A reply not back within 10 s is lost, and ends the run: the loop is closed.
    const auto reply_due = clock::now() + std::chrono::seconds(10);
    if (!read_record(pongs, reply, a.spin, pong_bell, [&] { return clock::now() > reply_due; })) {
      std::fprintf(stderr, "brook bench: raw-ring: record %llu did not come back\n", (unsigned long long)sent);
      ++sent;
      break;
    }
    histogram.record(now_ns() - sent_ns);
    std::uint64_t seq;
    std::memcpy(&seq, reply.data(), 8);
    if (seq != sent) ++out_of_order;
    ++received;
  }
  const double seconds = std::chrono::duration<double>(clock::now() - start).count();
  std::memcpy(value.data(), &kStopSequence, 8);
  write_record(pings, value, ping_bell);
  const auto reap_by = clock::now() + std::chrono::seconds(5);
  while (::waitpid(child, nullptr, WNOHANG) == 0) {
    if (clock::now() > reap_by) {
      ::kill(child, SIGKILL);
      ::waitpid(child, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::close(ping_bell);
  ::close(pong_bell);

  runtime::BenchResult r;
  r.system = "raw-ring";
  r.scenario = "rtt";
  r.transport = "shm";
  r.payload_bytes = record;
  r.subscribers = 1;
  r.sent = sent;
  r.received = received;
  r.lost = sent - received;
  r.out_of_order = out_of_order;
  r.seconds = seconds;
  if (seconds > 0) {
    r.msgs_per_sec = static_cast<double>(received) / seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(record) / 1e6;
  }
  runtime::fill_latency(r, histogram);
  report(r, a.json);
  return r.lost == 0 && r.out_of_order == 0 ? exit_ok : exit_refused;
}

}  // namespace

int run_raw_ring(const RawRingArgs& a) {
  if (a.round_trip) return run_raw_ring_round_trip(a);
  const std::size_t record = std::max<std::size_t>(a.payload, 16);
  transport::SharedSegment segment = transport::SharedSegment::create(
      "brook-bench-ring", transport::session_segment_bytes(a.ring_bytes, 4096));
  auto rings = transport::init_session_segment(segment.bytes(), a.ring_bytes, 4096);
  int doorbell = ::eventfd(0, EFD_CLOEXEC);
  int results[2];
  if (doorbell < 0 || ::pipe2(results, O_CLOEXEC) != 0) {
    std::perror("brook bench");
    return exit_usage;
  }
  const pid_t child = fork_child([&] {
    transport::ShmRingReader reader(rings.to_broker, rings.to_broker_data, rings.to_broker_bytes);
    RingSummary s = read_records(reader, record, a.count, a.spin, doorbell);
    [[maybe_unused]] auto n = ::write(results[1], &s, sizeof s);
    return 0;
  });
  if (child < 0) return exit_usage;
  ::close(results[1]);

  transport::ShmRingWriter writer(rings.to_broker, rings.to_broker_data, rings.to_broker_bytes);
  std::vector<std::byte> value(record, std::byte{0x5a});
  // Paced runs start a little ahead, on the pacer's schedule; flat out starts now.
  auto start = clock::now() + std::chrono::milliseconds(a.rate > 0 ? 10 : 0);
  runtime::RatePacer pacer(a.rate, start);
  auto give_up = start + std::chrono::milliseconds(static_cast<std::int64_t>(a.max_seconds * 1000));
  std::uint64_t sent = 0;
  for (; sent < a.count && clock::now() < give_up; ++sent) {
    const std::uint64_t intended = pacer.flat_out() ? now_ns() : ns_of(pacer.wait_until_due(sent));
    std::memcpy(value.data(), &sent, 8);
    std::memcpy(value.data() + 8, &intended, 8);
    write_record(writer, value, doorbell);
  }
  RingSummary s;
  pollfd p{results[0], POLLIN, 0};
  const bool answered = ::poll(&p, 1, 10000) > 0 && ::read(results[0], &s, sizeof s) == sizeof s;
  if (!answered) ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ::close(results[0]);
  ::close(doorbell);

  runtime::BenchResult r;
  r.system = "raw-ring";
  r.scenario = pacer.flat_out() ? "throughput" : "oneway";
  r.transport = "shm";
  r.payload_bytes = record;
  r.subscribers = 1;
  r.rate_target = a.rate;
  r.sent = sent;
  r.received = s.received;
  r.lost = sent > s.received ? sent - s.received : 0;
  r.out_of_order = s.out_of_order;
  r.seconds = s.received ? static_cast<double>(s.last_ns - std::min(s.last_ns, ns_of(start))) / 1e9 : 0;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(s.received) / r.seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(record) / 1e6;
  }
  r.p50_us = static_cast<double>(s.p50) / 1000;
  r.p99_us = static_cast<double>(s.p99) / 1000;
  r.p999_us = static_cast<double>(s.p999) / 1000;
  r.max_us = static_cast<double>(s.max) / 1000;
  r.min_us = static_cast<double>(s.min) / 1000;
  r.mean_us = s.mean / 1000;
  report(r, a.json);
  return r.lost == 0 && r.out_of_order == 0 ? exit_ok : exit_refused;
}

}  // namespace brook::cli
