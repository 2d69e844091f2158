// nats_peer: `brook bench requests` against a running nats-server through the C client (cnats),
// for bench/compare: request/reply is NATS-specific (reply subjects, queue groups), so it stays
// out of peer_bench (bench/peers/), which runs the scenarios every peer system shares
// (throughput, rtt, fanout, topics). Prints one JSON line per run, system "nats"; diagnostics
// go to stderr.
//
//   nats_peer requests --url nats://127.0.0.1:4222 --payload 64 --rate 10000 --count 50000 --handlers 4
//
// requests: see run_requests below; its JSON line has the fields of `brook bench requests`.
// Every wait is bounded: sending stops at --max-seconds, stragglers are awaited for at most
// --drain-seconds more (and never more than 1 s past --max-seconds).
#include "brook/runtime/bench_report.hpp"
#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"

#include <CLI/CLI.hpp>
#include <nats/nats.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using brook::runtime::LatencyHistogram;
using brook::runtime::RatePacer;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::int64_t kPollMs = 100;  // NextMsg timeout: how often receivers look at the clock

struct PeerOptions {
    std::string url = "nats://127.0.0.1:4222";
    std::size_t payload_bytes = 64;
    std::uint64_t count = 100'000;
    double rate_per_sec = 10'000.0;  // the latency phase
    double max_seconds = 30.0;
    double drain_seconds = 10.0;
};

std::int64_t to_ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
double seconds_between(Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

[[noreturn]] void fail(const char* what, natsStatus s) {
    std::fprintf(stderr, "nats_peer: %s: %s\n", what, natsStatus_GetText(s));
    nats_PrintLastErrorStack(stderr);
    std::exit(2);
}
void check(natsStatus s, const char* what) {
    if (s != NATS_OK) fail(what, s);
}

struct OptionsDeleter {
    void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
struct ConnectionDeleter {
    void operator()(natsConnection* c) const { natsConnection_Destroy(c); }
};
struct SubscriptionDeleter {
    void operator()(natsSubscription* s) const {
        natsSubscription_Unsubscribe(s);  // result ignored: the connection may already be gone
        natsSubscription_Destroy(s);
    }
};
using Connection = std::unique_ptr<natsConnection, ConnectionDeleter>;
using Subscription = std::unique_ptr<natsSubscription, SubscriptionDeleter>;

// Set once the measurement is over, so that closing the connections is not reported as trouble.
std::atomic<bool> g_tearing_down{false};  // relaxed: only silences diagnostics

// Asynchronous trouble (slow consumer, disconnects) is reported, never hidden: it explains loss.
void on_async_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
    std::fprintf(stderr, "nats_peer: %s connection: async error: %s\n", static_cast<const char*>(closure),
                 natsStatus_GetText(err));
}
void on_disconnected(natsConnection*, void* closure) {
    if (g_tearing_down.load(std::memory_order_relaxed)) return;
    std::fprintf(stderr, "nats_peer: %s connection: disconnected\n", static_cast<const char*>(closure));
}
void on_reconnected(natsConnection*, void* closure) {
    std::fprintf(stderr, "nats_peer: %s connection: reconnected\n", static_cast<const char*>(closure));
}

// send_asap: write each Publish to the socket at once (latency) instead of buffering
// (throughput, the client's default).
Connection connect(const PeerOptions& o, const char* role, bool send_asap) {
    natsOptions* raw = nullptr;
    check(natsOptions_Create(&raw), "natsOptions_Create");
    const std::unique_ptr<natsOptions, OptionsDeleter> opts(raw);
    check(natsOptions_SetURL(raw, o.url.c_str()), "natsOptions_SetURL");
    check(natsOptions_SetNoRandomize(raw, true), "natsOptions_SetNoRandomize");
    check(natsOptions_SetTimeout(raw, 2000), "natsOptions_SetTimeout");
    check(natsOptions_SetSendAsap(raw, send_asap), "natsOptions_SetSendAsap");
    auto* tag = const_cast<char*>(role);  // callbacks only read it
    check(natsOptions_SetErrorHandler(raw, on_async_error, tag), "natsOptions_SetErrorHandler");
    check(natsOptions_SetDisconnectedCB(raw, on_disconnected, tag), "natsOptions_SetDisconnectedCB");
    check(natsOptions_SetReconnectedCB(raw, on_reconnected, tag), "natsOptions_SetReconnectedCB");
    natsConnection* nc = nullptr;
    const natsStatus s = natsConnection_Connect(&nc, raw);
    if (s != NATS_OK) fail((std::string("connect ") + role + " to " + o.url).c_str(), s);
    return Connection(nc);
}

// The client's defaults (65536 messages / 64 MiB pending) would drop a flat-out burst while
// the receiving thread is descheduled; a NATS user tuning for throughput raises them. Still
// bounded: at most `count` messages and 1 GiB.
Subscription subscribe_sync(natsConnection* nc, const char* subject, const PeerOptions& o) {
    natsSubscription* sub = nullptr;
    check(natsConnection_SubscribeSync(&sub, nc, subject), "natsConnection_SubscribeSync");
    Subscription owned(sub);
    const auto msgs = static_cast<int>(std::clamp<std::uint64_t>(o.count, 65'536, INT_MAX));
    const double want_bytes = static_cast<double>(o.count) * static_cast<double>(o.payload_bytes + 128);
    const auto bytes = static_cast<int>(std::clamp(want_bytes, double(64 << 20), double(1 << 30)));
    check(natsSubscription_SetPendingLimits(sub, msgs, bytes), "natsSubscription_SetPendingLimits");
    // A PING/PONG round trip: when it returns the server has registered the subscription.
    check(natsConnection_Flush(nc), "natsConnection_Flush (subscribe)");
    return owned;
}

std::int64_t dropped(natsSubscription* sub) {
    std::int64_t n = 0;
    return natsSubscription_GetDropped(sub, &n) == NATS_OK ? n : -1;
}

std::uint64_t read_u64(const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
void write_u64(char* p, std::uint64_t v) { std::memcpy(p, &v, sizeof v); }

// --- requests ------------------------------------------------------------------------------
// H responders in one queue group (each on its own connection) echo every request to its
// reply subject. The requester publishes request i with a reply subject under its own inbox
// and does not wait: a receiver thread takes every answer from one subscription on the
// inbox's wildcard and matches it to its request by the index at the front of the payload.
// Phase (a) paces the requests (latency from each one's intended send time); phase (b) sends
// flat out with at most kRequestWindow unanswered (requests/s). The payload is that of
// `brook bench requests`: index, intended send time, then bytes derived from both.

constexpr const char* kRequestSubject = "bench.req";
constexpr const char* kRequestQueue = "bench.responders";
constexpr std::uint64_t kRequestWindow = 512;  // the same window as brook bench requests

void fill_request(char* p, std::size_t n, std::uint64_t i, std::uint64_t due_ns) {
    write_u64(p, i);
    write_u64(p + 8, due_ns);
    for (std::size_t j = 16; j < n; ++j) p[j] = static_cast<char>((i * 31 + due_ns + j) & 0xff);
}

// Runs on the client library's delivery thread of one responder's subscription.
void echo_request(natsConnection* nc, natsSubscription*, natsMsg* msg, void* closure) {
    static_cast<std::atomic<std::uint64_t>*>(closure)->fetch_add(1, std::memory_order_relaxed);  // relaxed: read after teardown
    const char* reply = natsMsg_GetReply(msg);
    if (reply != nullptr) {
        const natsStatus s = natsConnection_Publish(nc, reply, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
        if (s != NATS_OK) std::fprintf(stderr, "nats_peer: responder reply: %s\n", natsStatus_GetText(s));
    }
    natsMsg_Destroy(msg);
}

// Shared by the sender (main thread) and the receiver thread. due_ns[i] is stored (release)
// before request i is published and loaded (acquire) by the receiver to check the answer.
struct RequestLedger {
    RequestLedger(std::uint64_t n, std::uint64_t timed_requests) : due_ns(n), timed(timed_requests) {}
    std::vector<std::atomic<std::uint64_t>> due_ns;
    const std::uint64_t timed;                    // [0, timed): the paced phase
    std::atomic<std::uint64_t> answered{0};       // release: pairs with the sender's acquire (window, drain)
    std::atomic<bool> stop{false};                // relaxed: polled every kPollMs at most
    // Receiver thread only; main reads them after join().
    std::uint64_t received = 0, wrong = 0, unknown = 0, slow_consumer_events = 0;
    Clock::time_point last_answer{};
    LatencyHistogram latency;
};

void receive_answers(natsSubscription* sub, std::size_t payload_bytes, RequestLedger& led) {
    std::vector<char> expected(payload_bytes);
    while (!led.stop.load(std::memory_order_relaxed)) {
        natsMsg* msg = nullptr;
        const natsStatus s = natsSubscription_NextMsg(&msg, sub, kPollMs);
        if (s == NATS_TIMEOUT) continue;
        if (s != NATS_OK) {
            if (s == NATS_SLOW_CONSUMER) ++led.slow_consumer_events;
            else {
                std::fprintf(stderr, "nats_peer: requester: NextMsg: %s\n", natsStatus_GetText(s));
                std::this_thread::sleep_for(10ms);
            }
            continue;
        }
        const Clock::time_point now = Clock::now();
        const char* data = natsMsg_GetData(msg);
        const auto len = static_cast<std::size_t>(natsMsg_GetDataLength(msg));
        const std::uint64_t i = len >= 8 ? read_u64(data) : UINT64_MAX;
        if (i >= led.due_ns.size()) {
            ++led.unknown;  // not one of ours: cannot be matched, so it counts as wrong
            ++led.wrong;
        } else {
            const std::uint64_t due = led.due_ns[i].load(std::memory_order_acquire);
            fill_request(expected.data(), expected.size(), i, due);
            if (len != expected.size() || std::memcmp(data, expected.data(), len) != 0) ++led.wrong;
            if (i < led.timed) {
                const auto ns = to_ns(now) - static_cast<std::int64_t>(due);
                led.latency.record(ns > 0 ? static_cast<std::uint64_t>(ns) : 0);
            }
            ++led.received;
        }
        led.last_answer = now;
        natsMsg_Destroy(msg);
        led.answered.fetch_add(1, std::memory_order_release);
        led.answered.notify_one();
    }
}

int run_requests(const PeerOptions& o, unsigned handlers, Clock::time_point run_deadline) {
    std::vector<Connection> responders;
    std::vector<Subscription> responder_subs;
    const auto served = std::make_unique<std::atomic<std::uint64_t>[]>(handlers);
    for (unsigned h = 0; h < handlers; ++h) {
        served[h].store(0, std::memory_order_relaxed);
        responders.push_back(connect(o, "responder", true));
        natsSubscription* raw = nullptr;
        check(natsConnection_QueueSubscribe(&raw, responders.back().get(), kRequestSubject, kRequestQueue,
                                            echo_request, &served[h]),
              "natsConnection_QueueSubscribe (responder)");
        responder_subs.emplace_back(raw);
        check(natsSubscription_SetPendingLimits(raw, static_cast<int>(std::clamp<std::uint64_t>(o.count, 65'536, INT_MAX)),
                                                1 << 30),
              "natsSubscription_SetPendingLimits (responder)");
        check(natsConnection_Flush(responders.back().get()), "natsConnection_Flush (responder)");
    }
    const Connection requester = connect(o, "requester", true);
    natsInbox* inbox = nullptr;
    check(natsInbox_Create(&inbox), "natsInbox_Create");
    const std::string reply_subject = std::string(inbox) + ".r";
    const Subscription answers = subscribe_sync(requester.get(), (std::string(inbox) + ".*").c_str(), o);
    natsInbox_Destroy(inbox);

    RequestLedger led(2 * o.count, o.count);
    std::thread receiver([&] { receive_answers(answers.get(), o.payload_bytes, led); });
    std::vector<char> payload(o.payload_bytes);
    bool send_failed = false;
    const auto send = [&](std::uint64_t i, Clock::time_point due) {
        const auto due_ns = static_cast<std::uint64_t>(to_ns(due));
        led.due_ns[i].store(due_ns, std::memory_order_release);
        fill_request(payload.data(), payload.size(), i, due_ns);
        const natsStatus s = natsConnection_PublishRequest(requester.get(), kRequestSubject, reply_subject.c_str(),
                                                           payload.data(), static_cast<int>(payload.size()));
        if (s != NATS_OK) {
            std::fprintf(stderr, "nats_peer: request %llu: %s\n", static_cast<unsigned long long>(i),
                         natsStatus_GetText(s));
            send_failed = true;
        }
        return s == NATS_OK;
    };
    const auto drain = [&](std::uint64_t sent) {
        const auto give_up = std::min(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                         std::chrono::duration<double>(o.drain_seconds)),
                                      run_deadline + 1s);
        while (led.answered.load(std::memory_order_acquire) < sent && Clock::now() < give_up)
            std::this_thread::sleep_for(1ms);
    };

    // (a) Latency at a fixed rate.
    const RatePacer pacer(o.rate_per_sec, Clock::now() + 10ms);
    std::uint64_t sent = 0;
    while (sent < o.count && !send_failed && Clock::now() < run_deadline)
        if (send(sent, pacer.wait_until_due(sent))) ++sent;
    const std::uint64_t sent_paced = sent;
    drain(sent);

    // (b) Flat out within the window.
    const std::uint64_t answered_before = led.answered.load(std::memory_order_acquire);
    const std::uint64_t backlog = sent_paced - answered_before;  // paced requests never answered
    const Clock::time_point flat_start = Clock::now();
    for (std::uint64_t k = 0; k < o.count && !send_failed; ++k) {
        if ((k & 255) == 0 && Clock::now() >= run_deadline) break;
        for (std::uint64_t done = led.answered.load(std::memory_order_acquire); sent - done >= kRequestWindow + backlog;
             done = led.answered.load(std::memory_order_acquire))
            led.answered.wait(done, std::memory_order_acquire);
        if (send(sent, Clock::now())) ++sent;
    }
    drain(sent);
    led.stop.store(true, std::memory_order_relaxed);
    receiver.join();
    g_tearing_down.store(true, std::memory_order_relaxed);

    std::uint64_t total_served = 0, min_served = UINT64_MAX, max_served = 0;
    for (unsigned h = 0; h < handlers; ++h) {
        const std::uint64_t n = served[h].load(std::memory_order_relaxed);
        total_served += n;
        min_served = std::min(min_served, n);
        max_served = std::max(max_served, n);
    }
    const std::uint64_t answered_flat = led.answered.load() - answered_before;
    const double flat_seconds = answered_flat > 0 ? seconds_between(flat_start, led.last_answer) : 0.0;
    const std::uint64_t lost = sent > led.received ? sent - led.received : 0;
    const auto us = [](std::uint64_t ns) { return static_cast<double>(ns) / 1000.0; };
    if (led.slow_consumer_events > 0 || dropped(answers.get()) > 0)
        std::fprintf(stderr, "nats_peer: requester was a slow consumer: %llu events, %lld dropped\n",
                     static_cast<unsigned long long>(led.slow_consumer_events),
                     static_cast<long long>(dropped(answers.get())));
    if (led.unknown > 0)
        std::fprintf(stderr, "nats_peer: %llu answers matched no request\n", static_cast<unsigned long long>(led.unknown));

    namespace detail = brook::runtime::detail;
    std::string out = "{";
    detail::json_field(out, "system", "nats");
    detail::json_field(out, "scenario", "requests");
    detail::json_field(out, "transport", "tcp");
    detail::json_field(out, "payload_bytes", o.payload_bytes);
    detail::json_field(out, "handlers", handlers);
    detail::json_field(out, "sticky", "n/a");  // queue groups pick a member at random
    detail::json_field(out, "sent", sent);
    detail::json_field(out, "received", led.received);
    detail::json_field(out, "lost", lost);
    detail::json_field(out, "wrong", led.wrong);
    detail::json_field(out, "p50_us", us(led.latency.percentile(50.0)));
    detail::json_field(out, "p99_us", us(led.latency.percentile(99.0)));
    detail::json_field(out, "p999_us", us(led.latency.percentile(99.9)));
    detail::json_field(out, "max_us", us(led.latency.max()));
    detail::json_field(out, "rate_target", o.rate_per_sec);
    detail::json_field(out, "requests_per_sec", flat_seconds > 0 ? static_cast<double>(answered_flat) / flat_seconds : 0.0);
    detail::json_field(out, "handler_share_min", total_served ? static_cast<double>(min_served) / total_served : 0.0);
    detail::json_field(out, "handler_share_max", total_served ? static_cast<double>(max_served) / total_served : 0.0);
    out += '}';
    std::printf("%s\n", out.c_str());
    std::fflush(stdout);
    return lost == 0 && led.wrong == 0 && !send_failed ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    const Clock::time_point program_start = Clock::now();
    CLI::App app{"NATS request/reply baseline for bench/compare: prints one JSON line per run (system \"nats\")"};
    app.require_subcommand(1);
    PeerOptions o;
    bool json = true;  // accepted for symmetry with `brook bench ... --json`; output is always JSON
    unsigned handlers = 1;
    bool non_sticky = false;
    CLI::App* req = app.add_subcommand("requests", "request/reply to a queue group: latency at --rate, then flat out");
    req->add_option("--url", o.url, "nats-server URL")->capture_default_str();
    req->add_option("--payload", o.payload_bytes, "payload bytes per request")->capture_default_str();
    req->add_option("--count", o.count, "requests in each phase")->capture_default_str();
    req->add_option("--max-seconds", o.max_seconds, "stop sending after this long and report")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    req->add_option("--drain-seconds", o.drain_seconds, "wait at most this long for stragglers")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    req->add_flag("--json", json, "no-op: output is always one JSON line");
    req->add_option("--rate", o.rate_per_sec, "requests per second in the latency phase")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    req->add_option("--handlers", handlers, "responders in the queue group, each on its own connection")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1024u));
    req->add_flag("--non-sticky", non_sticky, "no-op: a queue group is never sticky");
    CLI11_PARSE(app, argc, argv);

    constexpr std::size_t min_payload = 16;  // index + intended send time
    if (o.payload_bytes < min_payload || o.payload_bytes > (64u << 20)) {
        std::fprintf(stderr, "nats_peer: --payload must be in [%zu, 64 MiB]\n", min_payload);
        return 1;
    }
    if (o.count == 0 || o.count > (1ULL << 40)) {
        std::fprintf(stderr, "nats_peer: --count must be in [1, 2^40]\n");
        return 1;
    }
    const auto run_deadline =
        program_start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.max_seconds));
    const int rc = run_requests(o, handlers, run_deadline);
    nats_Close();
    return rc;
}
