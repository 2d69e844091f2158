#include "bench_requests.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/runtime/bench_report.hpp"
#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "bench_support.hpp"
#include "commands.hpp"

namespace brook::cli {

namespace {

using clock = std::chrono::steady_clock;

// Below the broker's default requests.max_in_flight (1024 per requesting session), so the
// flat-out phase measures answers, not too_many_requests refusals.
constexpr std::uint64_t flat_out_window = 512;
constexpr auto request_timeout = std::chrono::seconds(10);
constexpr auto max_send_time = std::chrono::seconds(60);  // per phase
constexpr auto drain_time = request_timeout + std::chrono::seconds(5);

// Request i: its index, its intended send time, then bytes that depend on both, so that an
// answer carrying another request's payload (or a damaged one) is caught.
void fill_payload(std::vector<std::byte>& p, std::uint64_t i, std::uint64_t due_ns) {
  std::memcpy(p.data(), &i, 8);
  std::memcpy(p.data() + 8, &due_ns, 8);
  for (std::size_t j = 16; j < p.size(); ++j)
    p[j] = static_cast<std::byte>((i * 31 + due_ns + j) & 0xff);
}

// The requester's side. due_ns[i] is written by the sending thread before request i is queued
// (the client's command queue orders it before the answer callback); everything else but the
// atomics belongs to the requester's client thread, and to the main thread once it is closed.
struct Requester {
  Requester(std::uint64_t requests, std::uint64_t latency_phase, std::size_t payload_bytes)
      : due_ns(requests), timed(latency_phase), expected(payload_bytes) {}

  std::vector<std::uint64_t> due_ns;
  const std::uint64_t timed;  // requests [0, timed) are the fixed-rate phase
  std::vector<std::byte> expected;
  runtime::LatencyHistogram latency;
  std::string first_failure;
  std::uint64_t failed = 0;
  std::uint64_t wrong = 0;
  std::atomic<std::uint64_t> received{0};       // relaxed: read after the client is closed or as progress
  std::atomic<std::uint64_t> last_answer_ns{0}; // relaxed: same
  // release: pairs with the acquire loads of the sending thread (window, drain).
  std::atomic<std::uint64_t> answered{0};

  void on_answer(std::uint64_t i, const Response& r) {
    const std::uint64_t now = ns_of(clock::now());
    if (!r.status) {
      if (failed++ == 0) first_failure = r.status.message;
    } else {
      fill_payload(expected, i, due_ns[i]);
      if (r.payload.size() != expected.size() ||
          std::memcmp(r.payload.data(), expected.data(), expected.size()) != 0)
        ++wrong;
      if (i < timed) latency.record(now > due_ns[i] ? now - due_ns[i] : 0);
      received.fetch_add(1, std::memory_order_relaxed);
    }
    last_answer_ns.store(now, std::memory_order_relaxed);
    answered.fetch_add(1, std::memory_order_release);
    answered.notify_one();
  }

  // Waits (bounded) until every request sent so far has an answer or failed.
  void drain(std::uint64_t sent) {
    const auto give_up = clock::now() + drain_time;
    while (answered.load(std::memory_order_acquire) < sent && clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
};

bool connect_client(Client& c, const std::string& url, const char* name) {
  if (auto s = c.connect({.url = url, .client_name = name}); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return false;
  }
  return true;
}

}  // namespace

int run_requests(const RequestsBenchArgs& a) {
  if (a.payload < 16 || a.handlers == 0 || a.count == 0) {
    std::fprintf(stderr, "brook bench requests: needs --payload >= 16, --handlers >= 1, --count >= 1\n");
    return exit_usage;
  }
  const std::string endpoint = "Bench/" + unique_suffix() + "/echo";

  // Handlers: each its own session, echoing the request and counting what it served.
  std::vector<std::unique_ptr<Client>> handlers;
  auto served = std::make_unique<std::atomic<std::uint64_t>[]>(a.handlers);  // relaxed: read after close
  for (unsigned h = 0; h < a.handlers; ++h) {
    served[h].store(0, std::memory_order_relaxed);
    auto& c = handlers.emplace_back(std::make_unique<Client>());
    if (!connect_client(*c, a.url, "brook-bench-handler")) return exit_usage;
    std::atomic<std::uint64_t>* count = &served[h];
    Status added = c->add_request_handler(endpoint, [count](const Request& r, Responder responder) {
                      count->fetch_add(1, std::memory_order_relaxed);
                      responder.respond(r.payload, r.type);
                    }, HandlerOptions{.sticky = a.sticky}).get();
    if (!added) {
      std::fprintf(stderr, "brook bench: handler on %s: %s\n", endpoint.c_str(), added.message.c_str());
      return exit_refused;
    }
  }

  Client client;
  if (!connect_client(client, a.url, "brook-bench")) return exit_usage;
  Requester req(2 * a.count, a.count, a.payload);
  std::vector<std::byte> payload(a.payload);
  auto send = [&](std::uint64_t i, clock::time_point due) {
    req.due_ns[i] = ns_of(due);
    fill_payload(payload, i, req.due_ns[i]);
    Requester* r = &req;
    client.send_request(endpoint, payload, request_timeout,
                        [r, i](Response answer) { r->on_answer(i, answer); }, TopicType::binary);
  };

  // (a) Latency at a fixed rate.
  const auto start = clock::now() + std::chrono::milliseconds(10);
  runtime::RatePacer pacer(a.rate, start);
  std::uint64_t sent = 0;
  for (; sent < a.count && clock::now() < start + max_send_time; ++sent)
    send(sent, pacer.wait_until_due(sent));
  const std::uint64_t sent_paced = sent;
  req.drain(sent);

  // (b) Flat out, at most flat_out_window requests unanswered.
  const std::uint64_t answered_before = req.answered.load(std::memory_order_acquire);
  const std::uint64_t received_before = req.received.load(std::memory_order_relaxed);
  const auto flat_start = clock::now();
  for (std::uint64_t k = 0; k < a.count && clock::now() < flat_start + max_send_time; ++k, ++sent) {
    for (std::uint64_t done = req.answered.load(std::memory_order_acquire);
         sent - done >= flat_out_window + (sent_paced - answered_before);
         done = req.answered.load(std::memory_order_acquire))
      req.answered.wait(done, std::memory_order_acquire);
    send(sent, clock::now());
  }
  req.drain(sent);
  client.close();  // joins the client thread: the requester's state is ours from here
  for (auto& h : handlers) h->close();

  const std::uint64_t received = req.received.load();
  const std::uint64_t received_flat = received - received_before;
  const std::uint64_t last_answer = req.last_answer_ns.load(), flat_start_ns = ns_of(flat_start);
  const double flat_seconds =
      last_answer > flat_start_ns ? static_cast<double>(last_answer - flat_start_ns) / 1e9 : 0.0;
  const double per_sec = flat_seconds > 0 ? static_cast<double>(received_flat) / flat_seconds : 0.0;
  std::uint64_t total_served = 0, min_served = ~0ull, max_served = 0;
  for (unsigned h = 0; h < a.handlers; ++h) {
    const std::uint64_t n = served[h].load();
    total_served += n;
    min_served = std::min(min_served, n);
    max_served = std::max(max_served, n);
  }
  const double share_min = total_served ? static_cast<double>(min_served) / total_served : 0.0;
  const double share_max = total_served ? static_cast<double>(max_served) / total_served : 0.0;
  const std::uint64_t lost = sent - received;
  auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
  if (req.failed > 0)
    std::fprintf(stderr, "brook bench: %llu requests failed, the first: %s\n",
                 (unsigned long long)req.failed, req.first_failure.c_str());

  if (a.json) {
    std::string out = "{";
    runtime::detail::json_field(out, "system", "brook");
    runtime::detail::json_field(out, "scenario", "requests");
    runtime::detail::json_field(out, "transport", "tcp");
    runtime::detail::json_field(out, "payload_bytes", a.payload);
    runtime::detail::json_field(out, "handlers", a.handlers);
    runtime::detail::json_field(out, "sticky", a.sticky ? "true" : "false");
    runtime::detail::json_field(out, "sent", sent);
    runtime::detail::json_field(out, "received", received);
    runtime::detail::json_field(out, "lost", lost);
    runtime::detail::json_field(out, "wrong", req.wrong);
    runtime::detail::json_field(out, "p50_us", us(req.latency.percentile(50.0)));
    runtime::detail::json_field(out, "p99_us", us(req.latency.percentile(99.0)));
    runtime::detail::json_field(out, "p999_us", us(req.latency.percentile(99.9)));
    runtime::detail::json_field(out, "max_us", us(req.latency.max()));
    runtime::detail::json_field(out, "rate_target", a.rate);
    runtime::detail::json_field(out, "requests_per_sec", per_sec);
    runtime::detail::json_field(out, "handler_share_min", share_min);
    runtime::detail::json_field(out, "handler_share_max", share_max);
    out += '}';
    std::printf("%s\n", out.c_str());
  } else {
    std::printf("requests %zu B, %u handler(s), %s: at %.0f/s p50 %.1f us, p99 %.1f us, p99.9 %.1f us, "
                "max %.1f us; flat out (%llu in flight) %.0f requests/s; %llu sent, %llu lost, "
                "%llu wrong; handler share %.2f..%.2f\n",
                a.payload, a.handlers, a.sticky ? "sticky" : "round-robin", a.rate,
                us(req.latency.percentile(50.0)), us(req.latency.percentile(99.0)),
                us(req.latency.percentile(99.9)), us(req.latency.max()),
                (unsigned long long)flat_out_window, per_sec, (unsigned long long)sent,
                (unsigned long long)lost, (unsigned long long)req.wrong, share_min, share_max);
  }
  std::fflush(stdout);
  return lost == 0 && req.wrong == 0 ? exit_ok : exit_refused;
}

}  // namespace brook::cli
