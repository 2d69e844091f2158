// nats_peer: the baseline for bench/run-e2e. Runs the scenarios of `brook bench` against a
// running nats-server through the C client (cnats) and prints one JSON line per run
// (brook/runtime/bench_report.hpp, system "nats"); diagnostics go to stderr.
//
//   nats_peer throughput --url nats://127.0.0.1:4222 --payload 64 --count 1000000
//   nats_peer rtt        --url nats://127.0.0.1:4222 --payload 64 --rate 10000 --count 50000
//   nats_peer requests   --url nats://127.0.0.1:4222 --payload 64 --rate 10000 --count 50000 --handlers 4
//
// throughput: a publisher connection sends --count messages to "bench.tp" flat out (buffered
//   Publish, then Flush); a subscriber connection receives them on its own thread and checks
//   the 8-byte sequence number at the front of each payload. Measured from the first publish
//   to the last receive.
// rtt: a responder connection echoes "bench.ping" to "bench.pong". The requester sends ping i
//   at RatePacer::intended_time(i) (i and that time in the payload) and a receiver thread
//   records (receive time - intended send time), so a stall is charged to every ping it
//   delays (no coordinated omission). --rate 0 runs closed-loop: one ping in flight, latency
//   from the actual send.
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

using brook::runtime::BenchResult;
using brook::runtime::LatencyHistogram;
using brook::runtime::RatePacer;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr const char* kThroughputSubject = "bench.tp";
constexpr const char* kPingSubject = "bench.ping";
constexpr const char* kPongSubject = "bench.pong";
constexpr std::int64_t kPollMs = 100;  // NextMsg timeout: how often receivers look at the clock

struct PeerOptions {
    std::string url = "nats://127.0.0.1:4222";
    std::size_t payload_bytes = 64;
    std::uint64_t count = 100'000;
    double rate_per_sec = 10'000.0;  // rtt only
    double max_seconds = 30.0;
    double drain_seconds = 10.0;
};

std::int64_t to_ns(Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
Clock::time_point from_ns(std::int64_t ns) { return Clock::time_point{std::chrono::nanoseconds{ns}}; }
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

// Shared between the sending (main) thread and a receiving thread. The receiver stops once it
// has `target` messages or the clock passes `deadline_ns`; the sender lowers `target` to what it
// really sent and sets `deadline_ns` when it is done.
struct ReceiveControl {
    std::atomic<std::uint64_t> target;           // relaxed: a hint, re-read every message
    std::atomic<std::int64_t> deadline_ns;       // relaxed: same
    std::atomic<std::uint64_t> received_live{0}; // relaxed: progress for closed-loop rtt only
    ReceiveControl(std::uint64_t n, Clock::time_point hard_deadline)
        : target(n), deadline_ns(to_ns(hard_deadline)) {}
    bool done(std::uint64_t received) const {
        return received >= target.load(std::memory_order_relaxed) ||
               to_ns(Clock::now()) >= deadline_ns.load(std::memory_order_relaxed);
    }
    void finish_sending(std::uint64_t sent, Clock::time_point wait_until) {
        target.store(sent, std::memory_order_relaxed);
        deadline_ns.store(std::min(deadline_ns.load(std::memory_order_relaxed), to_ns(wait_until)),
                          std::memory_order_relaxed);
    }
};

// Filled by the receiving thread, read by main after join() (join orders it).
struct ReceiveStats {
    std::uint64_t received = 0;
    std::uint64_t out_of_order = 0;
    std::uint64_t slow_consumer_events = 0;
    Clock::time_point last_receive{};
    LatencyHistogram latency;  // rtt only
};

void note_status(natsStatus s, ReceiveStats& st, const char* who) {
    if (s == NATS_SLOW_CONSUMER) {
        ++st.slow_consumer_events;  // the client dropped messages: they show up as lost
    } else {
        std::fprintf(stderr, "nats_peer: %s: NextMsg: %s\n", who, natsStatus_GetText(s));
        std::this_thread::sleep_for(10ms);  // closed or reconnecting: do not spin on the error
    }
}

void receive_throughput(natsSubscription* sub, const ReceiveControl& ctl, ReceiveStats& st) {
    std::uint64_t next_seq = 0;
    while (!ctl.done(st.received)) {
        natsMsg* msg = nullptr;
        const natsStatus s = natsSubscription_NextMsg(&msg, sub, kPollMs);
        if (s == NATS_TIMEOUT) continue;
        if (s != NATS_OK) {
            note_status(s, st, "subscriber");
            continue;
        }
        st.last_receive = Clock::now();
        if (natsMsg_GetDataLength(msg) >= 8) {
            const std::uint64_t seq = read_u64(natsMsg_GetData(msg));
            if (seq < next_seq) ++st.out_of_order;
            else next_seq = seq + 1;
        }
        ++st.received;
        natsMsg_Destroy(msg);
    }
}

BenchResult run_throughput(const PeerOptions& o, Clock::time_point run_deadline) {
    const Connection sub_conn = connect(o, "subscriber", false);
    const Connection pub_conn = connect(o, "publisher", false);
    const Subscription sub = subscribe_sync(sub_conn.get(), kThroughputSubject, o);

    ReceiveControl ctl(o.count, run_deadline + 1s);
    ReceiveStats st;
    std::thread receiver([&] { receive_throughput(sub.get(), ctl, st); });

    std::vector<char> payload(o.payload_bytes, 0);
    std::uint64_t sent = 0;
    bool cut_short = false;
    const Clock::time_point first_publish = Clock::now();
    for (std::uint64_t i = 0; i < o.count; ++i) {
        if ((i & 1023) == 0 && Clock::now() >= run_deadline) {
            cut_short = true;
            break;
        }
        write_u64(payload.data(), i);
        const natsStatus s = natsConnection_Publish(pub_conn.get(), kThroughputSubject, payload.data(),
                                                    static_cast<int>(payload.size()));
        if (s != NATS_OK) {
            std::fprintf(stderr, "nats_peer: publish %llu: %s\n", static_cast<unsigned long long>(i),
                         natsStatus_GetText(s));
            break;
        }
        ++sent;
    }
    const auto flush_ms = std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(run_deadline + 1s - Clock::now()).count());
    const natsStatus fs = natsConnection_FlushTimeout(pub_conn.get(), flush_ms);
    if (fs != NATS_OK) std::fprintf(stderr, "nats_peer: publisher flush: %s\n", natsStatus_GetText(fs));
    const auto drain = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.drain_seconds));
    ctl.finish_sending(sent, Clock::now() + drain);
    receiver.join();
    g_tearing_down.store(true, std::memory_order_relaxed);

    BenchResult r;
    r.system = "nats";
    r.scenario = "throughput";
    r.transport = "tcp";
    r.payload_bytes = o.payload_bytes;
    r.sent = sent;
    r.received = st.received;
    r.lost = sent > st.received ? sent - st.received : 0;
    r.out_of_order = st.out_of_order;
    r.seconds = st.received > 0 ? seconds_between(first_publish, st.last_receive) : 0.0;
    if (r.seconds > 0) {
        r.msgs_per_sec = static_cast<double>(st.received) / r.seconds;
        r.mb_per_sec = static_cast<double>(st.received * o.payload_bytes) / r.seconds / 1e6;
    }
    if (cut_short) std::fprintf(stderr, "nats_peer: stopped by --max-seconds after %llu messages\n",
                                static_cast<unsigned long long>(sent));
    if (st.slow_consumer_events > 0 || dropped(sub.get()) > 0)
        std::fprintf(stderr, "nats_peer: subscriber was a slow consumer: %llu events, %lld dropped by the client\n",
                     static_cast<unsigned long long>(st.slow_consumer_events),
                     static_cast<long long>(dropped(sub.get())));
    return r;
}

// Responder side of rtt: runs on the client library's delivery thread for the subscription.
void echo_ping(natsConnection* nc, natsSubscription*, natsMsg* msg, void*) {
    const natsStatus s = natsConnection_Publish(nc, kPongSubject, natsMsg_GetData(msg), natsMsg_GetDataLength(msg));
    if (s != NATS_OK) std::fprintf(stderr, "nats_peer: responder publish: %s\n", natsStatus_GetText(s));
    natsMsg_Destroy(msg);
}

void receive_pongs(natsSubscription* sub, ReceiveControl& ctl, ReceiveStats& st) {
    std::uint64_t next_seq = 0;
    while (!ctl.done(st.received)) {
        natsMsg* msg = nullptr;
        const natsStatus s = natsSubscription_NextMsg(&msg, sub, kPollMs);
        if (s == NATS_TIMEOUT) continue;
        if (s != NATS_OK) {
            note_status(s, st, "requester");
            continue;
        }
        const Clock::time_point now = Clock::now();
        st.last_receive = now;
        if (natsMsg_GetDataLength(msg) >= 16) {
            const char* data = natsMsg_GetData(msg);
            const std::uint64_t seq = read_u64(data);
            const auto intended = from_ns(static_cast<std::int64_t>(read_u64(data + 8)));
            const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - intended).count();
            st.latency.record(ns > 0 ? static_cast<std::uint64_t>(ns) : 0);
            if (seq < next_seq) ++st.out_of_order;
            else next_seq = seq + 1;
        }
        ++st.received;
        ctl.received_live.store(st.received, std::memory_order_relaxed);
        natsMsg_Destroy(msg);
    }
}

BenchResult run_rtt(const PeerOptions& o, Clock::time_point run_deadline) {
    const Connection responder = connect(o, "responder", true);
    const Connection requester = connect(o, "requester", true);

    natsSubscription* ping_raw = nullptr;
    check(natsConnection_Subscribe(&ping_raw, responder.get(), kPingSubject, echo_ping, nullptr),
          "natsConnection_Subscribe (responder)");
    const Subscription ping_sub(ping_raw);
    check(natsSubscription_SetPendingLimits(ping_raw, static_cast<int>(std::clamp<std::uint64_t>(o.count, 65'536, INT_MAX)),
                                            1 << 30),
          "natsSubscription_SetPendingLimits (responder)");
    check(natsConnection_Flush(responder.get()), "natsConnection_Flush (responder)");
    const Subscription pong_sub = subscribe_sync(requester.get(), kPongSubject, o);

    ReceiveControl ctl(o.count, run_deadline + 1s);
    ReceiveStats st;
    std::thread receiver([&] { receive_pongs(pong_sub.get(), ctl, st); });

    const bool closed_loop = !(o.rate_per_sec > 0.0);
    const RatePacer pacer(o.rate_per_sec, Clock::now());
    std::vector<char> payload(o.payload_bytes, 0);
    std::uint64_t sent = 0;
    bool cut_short = false;
    for (std::uint64_t i = 0; i < o.count && !cut_short; ++i) {
        if (Clock::now() >= run_deadline) {
            cut_short = true;
            break;
        }
        const Clock::time_point due = pacer.wait_until_due(i);
        write_u64(payload.data(), i);
        write_u64(payload.data() + 8, static_cast<std::uint64_t>(to_ns(due)));
        const natsStatus s = natsConnection_Publish(requester.get(), kPingSubject, payload.data(),
                                                    static_cast<int>(payload.size()));
        if (s != NATS_OK) {
            std::fprintf(stderr, "nats_peer: ping %llu: %s\n", static_cast<unsigned long long>(i),
                         natsStatus_GetText(s));
            break;
        }
        ++sent;
        // Closed loop: wait for this pong (bounded by the run deadline) before the next ping.
        while (closed_loop && ctl.received_live.load(std::memory_order_relaxed) < sent) {
            if (Clock::now() >= run_deadline) {
                cut_short = true;
                break;
            }
            std::this_thread::yield();
        }
    }
    const auto drain = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.drain_seconds));
    ctl.finish_sending(sent, Clock::now() + drain);
    receiver.join();
    g_tearing_down.store(true, std::memory_order_relaxed);

    BenchResult r;
    r.system = "nats";
    r.scenario = "rtt";
    r.transport = "tcp";
    r.payload_bytes = o.payload_bytes;
    r.sent = sent;
    r.received = st.received;
    r.lost = sent > st.received ? sent - st.received : 0;
    r.out_of_order = st.out_of_order;
    r.rate_target = closed_loop ? 0.0 : o.rate_per_sec;
    r.seconds = st.received > 0 ? seconds_between(pacer.start(), st.last_receive) : 0.0;
    if (r.seconds > 0) {
        r.msgs_per_sec = static_cast<double>(st.received) / r.seconds;
        r.mb_per_sec = static_cast<double>(st.received * o.payload_bytes) / r.seconds / 1e6;
    }
    brook::runtime::fill_latency(r, st.latency);
    if (cut_short) std::fprintf(stderr, "nats_peer: stopped by --max-seconds after %llu pings\n",
                                static_cast<unsigned long long>(sent));
    if (st.slow_consumer_events > 0)
        std::fprintf(stderr, "nats_peer: requester was a slow consumer %llu times\n",
                     static_cast<unsigned long long>(st.slow_consumer_events));
    return r;
}


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
    CLI::App app{"NATS baseline for bench/run-e2e: prints one JSON line per run (system \"nats\")"};
    app.require_subcommand(1);
    PeerOptions o;
    bool json = true;  // accepted for symmetry with `brook bench ... --json`; output is always JSON
    const auto add_common = [&](CLI::App* cmd) {
        cmd->add_option("--url", o.url, "nats-server URL")->capture_default_str();
        cmd->add_option("--payload", o.payload_bytes, "payload bytes per message")->capture_default_str();
        cmd->add_option("--count", o.count, "messages (throughput) or round trips (rtt)")->capture_default_str();
        cmd->add_option("--max-seconds", o.max_seconds, "stop sending after this long and report")
            ->capture_default_str()
            ->check(CLI::PositiveNumber);
        cmd->add_option("--drain-seconds", o.drain_seconds, "wait at most this long for stragglers")
            ->capture_default_str()
            ->check(CLI::NonNegativeNumber);
        cmd->add_flag("--json", json, "no-op: output is always one JSON line");
    };
    CLI::App* tp = app.add_subcommand("throughput", "1 publisher -> 1 subscriber, flat out");
    add_common(tp);
    CLI::App* rtt = app.add_subcommand("rtt", "ping-pong round trips at a fixed rate");
    add_common(rtt);
    rtt->add_option("--rate", o.rate_per_sec, "pings per second (0: closed loop, one in flight)")
        ->capture_default_str()
        ->check(CLI::NonNegativeNumber);
    CLI::App* req = app.add_subcommand("requests", "request/reply to a queue group: latency at --rate, then flat out");
    add_common(req);
    unsigned handlers = 1;
    bool non_sticky = false;
    req->add_option("--rate", o.rate_per_sec, "requests per second in the latency phase")
        ->capture_default_str()
        ->check(CLI::PositiveNumber);
    req->add_option("--handlers", handlers, "responders in the queue group, each on its own connection")
        ->capture_default_str()
        ->check(CLI::Range(1u, 1024u));
    req->add_flag("--non-sticky", non_sticky, "no-op: a queue group is never sticky");
    CLI11_PARSE(app, argc, argv);

    const std::size_t min_payload = rtt->parsed() || req->parsed() ? 16 : 8;  // sequence (+ intended send time)
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

    if (req->parsed()) {
        const int rc = run_requests(o, handlers, run_deadline);
        nats_Close();
        return rc;
    }
    const BenchResult r = tp->parsed() ? run_throughput(o, run_deadline) : run_rtt(o, run_deadline);
    std::printf("%s\n", brook::runtime::to_json(r).c_str());
    std::fflush(stdout);
    nats_Close();
    return 0;
}
