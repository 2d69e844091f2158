#include "bench_deltas.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <future>
#include <memory>
#include <thread>
#include <unordered_map>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/codec/delta.hpp"
#include "brook/codec/frame.hpp"
#include "brook/runtime/bench_report.hpp"
#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "bench_support.hpp"
#include "commands.hpp"
#include "odds_feed.hpp"

namespace brook::cli {

namespace {

using clock = std::chrono::steady_clock;
constexpr unsigned matches = 16;
constexpr unsigned feed_seed = 2026;

struct PassResult {
  std::uint64_t sent = 0;
  std::uint64_t received = 0;
  std::uint64_t wrong_values = 0;  // reconstructed value differs from the published one
  std::uint64_t as_delta = 0;
  std::uint64_t wire_bytes = 0;    // update heads + values or deltas
  std::uint64_t value_bytes = 0;   // the whole values those stood for
  runtime::LatencyHistogram latency;
  bool ok = false;
};

// What the publisher leaves for the subscriber, per topic and topic sequence: when the
// update was due and the checksum of its value.
struct Published {
  explicit Published(std::size_t per_topic)
      : due_ns(per_topic), checksum(per_topic) {}
  std::vector<std::atomic<std::uint64_t>> due_ns;
  std::vector<std::atomic<std::uint64_t>> checksum;
};

PassResult run_pass(const std::string& url, const std::string& root, bool deltas,
                    std::uint64_t count, double rate) {
  PassResult result;
  OddsFeed feed(root, matches, feed_seed);
  Client publisher, subscriber;
  for (Client* c : {&publisher, &subscriber})
    if (auto s = c->connect({.url = url, .client_name = "brook-bench"}); !s) {
      std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
      return result;
    }
  std::vector<std::unique_ptr<Published>> published;
  std::unordered_map<std::string, std::size_t> topic_index;
  for (std::size_t m = 0; m < feed.size(); ++m) {
    // Topic sequences: 1 is the first value, 2.. the paced updates.
    published.push_back(std::make_unique<Published>(count + 2));
    topic_index.emplace(feed.path(m), m);
    Status created = publisher.create_topic(feed.path(m), {.type = TopicType::json, .deltas = deltas}).get();
    if (!created) {
      std::fprintf(stderr, "brook bench: %s\n", created.message.c_str());
      return result;
    }
    const std::string value = feed.value(m);
    Status first = publisher.publish_acked(feed.path(m), std::as_bytes(std::span(value))).get();
    if (!first) {
      std::fprintf(stderr, "brook bench: %s\n", first.message.c_str());
      return result;
    }
  }

  std::atomic<std::uint64_t> received{0};
  auto ready = std::make_shared<std::promise<Status>>();
  subscriber.subscribe(root + "//", [&](const Update& u) {
    if (u.topic_seq < 2) return;  // the current values on subscribing: not part of the feed
    const std::uint64_t now = ns_of(clock::now());
    auto it = topic_index.find(std::string(u.path));
    if (it == topic_index.end() || u.topic_seq >= count + 2) return;
    Published& p = *published[it->second];
    result.latency.record(now - p.due_ns[u.topic_seq].load(std::memory_order_acquire));
    if (codec::value_checksum(u.value) != p.checksum[u.topic_seq].load(std::memory_order_acquire))
      ++result.wrong_values;
    result.wire_bytes += codec::update_head_bytes + u.wire_bytes;
    result.value_bytes += u.value.size();
    if (u.encoding == UpdateEncoding::delta) ++result.as_delta;
    received.fetch_add(1, std::memory_order_release);
  }, [ready](const Status& s) { ready->set_value(s); });
  auto answer = ready->get_future();
  if (answer.wait_for(std::chrono::seconds(10)) != std::future_status::ready || !answer.get()) {
    std::fprintf(stderr, "brook bench: subscription to %s// not confirmed\n", root.c_str());
    return result;
  }

  std::vector<std::uint64_t> next_seq(feed.size(), 2);
  runtime::RatePacer pacer(rate, clock::now() + std::chrono::milliseconds(10));
  for (; result.sent < count; ++result.sent) {
    auto due = pacer.wait_until_due(result.sent);
    std::size_t m = feed.step();
    std::string value = feed.value(m);
    std::uint64_t seq = next_seq[m]++;
    published[m]->due_ns[seq].store(ns_of(due), std::memory_order_relaxed);
    published[m]->checksum[seq].store(codec::value_checksum(std::as_bytes(std::span(value))),
                                      std::memory_order_release);
    publisher.publish(feed.path(m), value);
  }
  auto give_up = clock::now() + std::chrono::seconds(10);
  while (received.load(std::memory_order_acquire) < result.sent && clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  subscriber.close();  // joins the client thread: the counters are ours from here
  publisher.close();
  result.received = received.load();
  result.ok = true;
  return result;
}

double per_update(std::uint64_t total, std::uint64_t n) {
  return n ? static_cast<double>(total) / static_cast<double>(n) : 0.0;
}

void latency_fields(std::string& out, const char* suffix, const runtime::LatencyHistogram& h) {
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  std::string s(suffix);
  runtime::detail::json_field(out, "p50_us_" + s, us(h.percentile(50.0)));
  runtime::detail::json_field(out, "p99_us_" + s, us(h.percentile(99.0)));
  runtime::detail::json_field(out, "p999_us_" + s, us(h.percentile(99.9)));
  runtime::detail::json_field(out, "max_us_" + s, us(h.max()));
}

}  // namespace

int run_deltas(const std::string& url, std::uint64_t count, double rate, bool json) {
  const std::string root = "Bench/" + unique_suffix();
  PassResult full = run_pass(url, root + "/full", false, count, rate);
  PassResult delta = run_pass(url, root + "/delta", true, count, rate);
  if (!full.ok || !delta.ok) return exit_refused;

  const double full_bytes = per_update(full.wire_bytes, full.received);
  const double delta_bytes = per_update(delta.wire_bytes, delta.received);
  const std::uint64_t lost = (full.sent - full.received) + (delta.sent - delta.received);
  const std::uint64_t wrong = full.wrong_values + delta.wrong_values;
  if (json) {
    std::string out = "{";
    runtime::detail::json_field(out, "system", "brook");
    runtime::detail::json_field(out, "scenario", "deltas");
    runtime::detail::json_field(out, "transport", "tcp");
    runtime::detail::json_field(out, "payload_bytes", per_update(delta.value_bytes, delta.received));
    runtime::detail::json_field(out, "rate_target", rate);
    runtime::detail::json_field(out, "sent", full.sent + delta.sent);
    runtime::detail::json_field(out, "received", full.received + delta.received);
    runtime::detail::json_field(out, "lost", lost);
    runtime::detail::json_field(out, "wrong_values", wrong);
    runtime::detail::json_field(out, "bytes_per_update_full", full_bytes);
    runtime::detail::json_field(out, "bytes_per_update_delta", delta_bytes);
    runtime::detail::json_field(out, "bytes_ratio", delta_bytes > 0 ? full_bytes / delta_bytes : 0.0);
    runtime::detail::json_field(out, "sent_as_delta", per_update(delta.as_delta, delta.received));
    latency_fields(out, "full", full.latency);
    latency_fields(out, "delta", delta.latency);
    out += '}';
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("deltas on the odds feed, %llu updates at %.0f/s per pass:\n"
                "  without deltas: %.1f B/update, p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us\n"
                "  with deltas:    %.1f B/update (%.0f%% sent as deltas), p50 %.1f us, p99 %.1f us, "
                "p99.9 %.1f us, max %.1f us\n"
                "  %.2fx fewer bytes; %llu lost, %llu wrong values\n",
                (unsigned long long)count, rate, full_bytes, full.latency.percentile(50.0) / 1e3,
                full.latency.percentile(99.0) / 1e3, full.latency.percentile(99.9) / 1e3,
                full.latency.max() / 1e3, delta_bytes,
                100.0 * per_update(delta.as_delta, delta.received),
                delta.latency.percentile(50.0) / 1e3, delta.latency.percentile(99.0) / 1e3,
                delta.latency.percentile(99.9) / 1e3, delta.latency.max() / 1e3,
                delta_bytes > 0 ? full_bytes / delta_bytes : 0.0, (unsigned long long)lost,
                (unsigned long long)wrong);
  }
  std::fflush(stdout);
  return lost == 0 && wrong == 0 ? exit_ok : exit_refused;
}

}  // namespace brook::cli
