// Threads: the calling thread creates the stream, publishes, paces and waits; the library's
// delivery thread for each JetStream context's reply subscription runs on_ack (one thread per
// context, so each phase's tally has one writer besides the publisher's refusals).
#include "jetstream_acked.hpp"

#include <nats/nats.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"
#include "nats_connect.hpp"

namespace brook::bench {

namespace {

using Clock = std::chrono::steady_clock;
using nats::check;
using runtime::BenchResult;
using runtime::LatencyHistogram;
using runtime::RatePacer;
using namespace std::chrono_literals;

constexpr std::int64_t kAckTimeoutMs = 30'000;  // as brook bench acked's
// By then every publish has its acknowledgement or has failed by kAckTimeoutMs.
constexpr std::int64_t kAllAckedTimeoutMs = kAckTimeoutMs + 10'000;
constexpr std::int64_t kApiTimeoutMs = 10'000;  // creating and deleting the stream
constexpr auto kPacedStartDelay = 10ms;          // the first intended send is not already past
constexpr std::byte kFiller{0x5a};

std::int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

// One phase's acknowledgements. on_ack writes them on the library's delivery thread; the
// publishing thread adds the publishes the library refused, and reads the rest once
// wait_for_all() has returned (the library's lock, taken by the handler's caller after each
// call and by the waiter, orders those reads after the last handler).
struct AckTally {
  LatencyHistogram* latency = nullptr;  // the latency phase's; the delivery thread records
  // relaxed, all three: counters, published to the reader by the wait described above.
  std::atomic<std::uint64_t> acked{0};
  std::atomic<std::uint64_t> failed{0};
  std::atomic<std::int64_t> last_ack_ns{0};
  std::mutex first_failure_mutex;
  std::string first_failure;

  void count_failure(const std::string& reason) {
    if (failed.fetch_add(1, std::memory_order_relaxed) > 0) return;
    const std::lock_guard lock(first_failure_mutex);
    first_failure = reason;
  }
};

void on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
  auto* tally = static_cast<AckTally*>(closure);
  const std::int64_t now_ns = ns_of(Clock::now());
  if (ack != nullptr) {
    if (tally->latency != nullptr && natsMsg_GetDataLength(msg) >= static_cast<int>(kMinPayloadBytes)) {
      std::int64_t intended_ns = 0;
      std::memcpy(&intended_ns, natsMsg_GetData(msg) + 8, sizeof intended_ns);
      tally->latency->record(static_cast<std::uint64_t>(std::max<std::int64_t>(0, now_ns - intended_ns)));
    }
    tally->acked.fetch_add(1, std::memory_order_relaxed);
  } else if (error != nullptr && error->ErrText != nullptr && *error->ErrText != '\0') {
    tally->count_failure(error->ErrText);
  } else {
    tally->count_failure(error != nullptr ? natsStatus_GetText(error->Err) : "no acknowledgement");
  }
  tally->last_ack_ns.store(now_ns, std::memory_order_relaxed);
  natsMsg_Destroy(msg);  // the handler owns the published message
}

// Asynchronous trouble (a slow consumer, a lost connection) explains failures: reported.
void on_async_error(natsConnection*, natsSubscription*, natsStatus err, void*) {
  std::fprintf(stderr, "peer_bench: nats acked: %s\n", natsStatus_GetText(err));
}

struct ConnectionDeleter {
  void operator()(natsConnection* c) const { natsConnection_Destroy(c); }  // closes it first
};
struct ContextDeleter {
  void operator()(jsCtx* js) const { jsCtx_Destroy(js); }
};

// One connection and its JetStream context, publishing asynchronously with at most `window`
// publishes unacknowledged; the acknowledgements go to `tally`, which outlives it. Connected
// by the constructor (which throws on failure), closed by the destructor, used by one thread.
class JetStreamPublisher {
 public:
  JetStreamPublisher(const std::string& url, const std::string& name, nats::Writes writes, std::uint64_t window,
                     AckTally& tally)
      : tally_(tally) {
    const nats::OptionsPtr options = nats::connection_options(url, name, writes);
    check(natsOptions_SetErrorHandler(options.get(), on_async_error, nullptr), "natsOptions_SetErrorHandler");
    natsConnection* connection = nullptr;
    check(natsConnection_Connect(&connection, options.get()), "connect " + name + " to " + url);
    connection_.reset(connection);

    jsOptions js_options;
    check(jsOptions_Init(&js_options), "jsOptions_Init");
    js_options.Wait = kApiTimeoutMs;
    js_options.PublishAsync.MaxPending = static_cast<std::int64_t>(window);
    js_options.PublishAsync.AckHandler = on_ack;
    js_options.PublishAsync.AckHandlerClosure = &tally;
    // A full window waits for room as long as an acknowledgement may take (the default gives
    // up after 200 ms, which would measure the timeout instead of the server).
    js_options.PublishAsync.StallWait = kAckTimeoutMs;
    jsCtx* context = nullptr;
    check(natsConnection_JetStream(&context, connection, &js_options), "natsConnection_JetStream");
    context_.reset(context);

    check(jsPubOptions_Init(&publish_options_), "jsPubOptions_Init");
    publish_options_.MaxWait = kAckTimeoutMs;  // then the handler gets a timeout
  }

  jsCtx* context() const { return context_.get(); }

  // False when the library refused the publish (no room within the stall wait, the connection
  // gone); it is counted as a failed acknowledgement and the caller stops.
  bool publish(const std::string& subject, std::span<const std::byte> payload) {
    const natsStatus s = js_PublishAsync(context_.get(), subject.c_str(), payload.data(),
                                         static_cast<int>(payload.size()), &publish_options_);
    if (s == NATS_OK) return true;
    tally_.count_failure(nats::failure("js_PublishAsync", s));
    return false;
  }

  // Returns once every publish has its acknowledgement or its failure. Throws if the library
  // has not reported them all by kAllAckedTimeoutMs, after leaving the tally to the handler
  // that may still run (it is not read then).
  void wait_for_all(std::unique_ptr<AckTally>& owner) {
    jsPubOptions wait;
    check(jsPubOptions_Init(&wait), "jsPubOptions_Init");
    wait.MaxWait = kAllAckedTimeoutMs;
    const natsStatus s = js_PublishAsyncComplete(context_.get(), &wait);
    if (s == NATS_OK) return;
    static_cast<void>(owner.release());
    throw std::runtime_error(nats::failure("js_PublishAsyncComplete", s));
  }

 private:
  AckTally& tally_;
  std::unique_ptr<natsConnection, ConnectionDeleter> connection_;
  std::unique_ptr<jsCtx, ContextDeleter> context_;  // destroyed before the connection
  jsPubOptions publish_options_{};
};

void create_stream(jsCtx* context, const std::string& stream, const std::string& subject) {
  jsStreamConfig config;
  check(jsStreamConfig_Init(&config), "jsStreamConfig_Init");
  const char* subjects[] = {subject.c_str()};
  config.Name = stream.c_str();
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  config.Replicas = 1;
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  const natsStatus s = js_AddStream(&info, context, &config, nullptr, &code);
  if (s != NATS_OK)
    throw std::runtime_error(nats::failure("create stream " + stream + " (file storage, 1 replica; JetStream error " +
                                               std::to_string(static_cast<int>(code)) + ")",
                                           s));
  jsStreamInfo_Destroy(info);
}

// The run's messages go with it; a failure is only reported (the results stand).
void delete_stream(jsCtx* context, const std::string& stream) {
  jsErrCode code = static_cast<jsErrCode>(0);
  if (const natsStatus s = js_DeleteStream(context, stream.c_str(), nullptr, &code); s != NATS_OK)
    std::fprintf(stderr, "peer_bench: %s\n", nats::failure("delete stream " + stream, s).c_str());
}

void report_failures(const AckTally& tally, const char* phase) {
  const std::uint64_t failed = tally.failed.load(std::memory_order_relaxed);
  if (failed > 0)
    std::fprintf(stderr, "peer_bench: nats acked, %s: %llu acknowledgement(s) failed, the first: %s\n", phase,
                 static_cast<unsigned long long>(failed), tally.first_failure.c_str());
}

}  // namespace

BenchResult run_jetstream_acked(const ScenarioOptions& o) {
  const std::string run_id = std::to_string(getpid()) + "_" + std::to_string(ns_of(Clock::now()));
  const std::string stream = "BENCH_ACKED_" + run_id;
  const std::string subject = "bench.acked." + run_id;
  // Bytes 0-7: sequence number; 8-15: intended send time (the latency phase); then filler.
  std::vector<std::byte> payload(std::max(o.payload_bytes, kMinPayloadBytes), kFiller);
  const auto stamp = [&](std::uint64_t seq, std::int64_t intended_ns) {
    std::memcpy(payload.data(), &seq, sizeof seq);
    std::memcpy(payload.data() + 8, &intended_ns, sizeof intended_ns);
  };
  const auto phase_limit = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.max_seconds));

  LatencyHistogram latency;
  auto paced = std::make_unique<AckTally>();
  paced->latency = &latency;
  {
    JetStreamPublisher publisher(o.url, "acked-paced", nats::Writes::at_once, o.ack_window, *paced);
    create_stream(publisher.context(), stream, subject);
    const std::uint64_t timed = std::max<std::uint64_t>(1, o.count / 4);
    const RatePacer pacer(o.rate_per_sec, Clock::now() + kPacedStartDelay);
    const Clock::time_point stop_at = pacer.start() + phase_limit;
    for (std::uint64_t i = 0; i < timed && Clock::now() < stop_at; ++i) {
      stamp(i, ns_of(pacer.wait_until_due(i)));
      if (!publisher.publish(subject, payload)) break;
    }
    publisher.wait_for_all(paced);
  }
  report_failures(*paced, "latency phase");

  auto flat = std::make_unique<AckTally>();
  std::uint64_t sent = 0;
  Clock::time_point start;
  {
    JetStreamPublisher publisher(o.url, "acked-flat-out", nats::Writes::batched, o.ack_window, *flat);
    start = Clock::now();
    const Clock::time_point stop_at = start + phase_limit;
    while (sent < o.count && Clock::now() < stop_at) {
      stamp(sent, 0);
      ++sent;
      if (!publisher.publish(subject, payload)) break;
    }
    publisher.wait_for_all(flat);
    delete_stream(publisher.context(), stream);
  }
  report_failures(*flat, "flat out");

  BenchResult r;
  r.system = "nats";
  r.scenario = "acked";
  r.transport = "tcp";
  r.payload_bytes = o.payload_bytes;
  r.sent = sent;
  r.received = flat->acked.load(std::memory_order_relaxed);
  r.lost = (r.sent - std::min(r.sent, r.received)) + paced->failed.load(std::memory_order_relaxed);
  r.rate_target = o.rate_per_sec;
  r.seconds = static_cast<double>(flat->last_ack_ns.load(std::memory_order_relaxed) - ns_of(start)) / 1e9;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(r.received) / r.seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(o.payload_bytes) / 1e6;
  }
  runtime::fill_latency(r, latency);
  return r;
}

}  // namespace brook::bench
