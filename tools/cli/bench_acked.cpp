// `brook bench acked`: what an acknowledged publish costs (publish_acked), run against a
// broker with or without a journal (--data-dir) and under each storage.sync. Two phases on a
// fresh topic:
//   latency   --count/4 publishes at --rate, each acknowledgement timed from the publish's
//             intended send time, so a stall (a slow fdatasync) shows in every one it delays;
//   flat out  --count publishes with at most --window (1,024) unacknowledged: acknowledged
//             msgs/s.
// A collector thread waits for the acknowledgements in order (a publisher's answers come in
// the order of its publishes) and times each as it arrives.
#include "bench_acked.hpp"

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <future>
#include <mutex>
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

constexpr auto ack_timeout = std::chrono::seconds(30);

// Acknowledgements in publish order, waited for on a thread of their own.
class AckCollector {
 public:
  explicit AckCollector(runtime::LatencyHistogram* latency) : latency_(latency) {
    thread_ = std::thread([this] { run(); });
  }
  ~AckCollector() { finish(); }

  void add(std::future<Status> ack, std::uint64_t intended_ns) {
    std::lock_guard lock(mutex_);
    pending_.push_back({std::move(ack), intended_ns});
    changed_.notify_all();
  }
  // Blocks while more than `most` acknowledgements are outstanding.
  void wait_until_at_most(std::size_t most) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return pending_.size() <= most; });
  }
  // Waits for every acknowledgement, then stops the thread.
  void finish() {
    {
      std::lock_guard lock(mutex_);
      if (done_) return;
      done_ = true;
      changed_.notify_all();
    }
    thread_.join();
  }
  std::uint64_t acked() const { return acked_; }        // after finish()
  std::uint64_t failed() const { return failed_; }      // after finish()
  const std::string& first_failure() const { return first_failure_; }
  std::uint64_t last_ack_ns() const { return last_ack_ns_; }

 private:
  struct Pending {
    std::future<Status> ack;
    std::uint64_t intended_ns;
  };
  void run() {
    for (;;) {
      Pending next;
      {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return !pending_.empty() || done_; });
        if (pending_.empty()) return;
        next = std::move(pending_.front());
      }
      Status s = next.ack.wait_for(ack_timeout) == std::future_status::ready
                     ? next.ack.get()
                     : Status{ErrorCode::request_timeout, "no acknowledgement within 30 s"};
      const std::uint64_t now = now_ns();
      if (s) {
        ++acked_;
        if (latency_ && next.intended_ns != 0) latency_->record(now - std::min(now, next.intended_ns));
      } else {
        if (failed_++ == 0) first_failure_ = s.message;
      }
      last_ack_ns_ = now;
      std::lock_guard lock(mutex_);
      pending_.pop_front();
      changed_.notify_all();
    }
  }

  runtime::LatencyHistogram* latency_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Pending> pending_;
  bool done_ = false;
  // The collector thread's until finish() has joined it.
  std::uint64_t acked_ = 0;
  std::uint64_t failed_ = 0;
  std::uint64_t last_ack_ns_ = 0;
  std::string first_failure_;
  std::thread thread_;
};

}  // namespace

int run_acked(const std::string& url, std::size_t payload_bytes, std::uint64_t count, double rate,
              std::size_t window, double max_seconds, bool json) {
  window = std::max<std::size_t>(window, 1);
  auto options = bench_client_options(url);
  if (!options) return exit_usage;
  Client publisher;
  if (!connect_or_report(publisher, *options)) return exit_usage;
  const std::string topic = "Bench/" + unique_suffix() + "/Acked";
  std::vector<std::byte> payload(std::max<std::size_t>(payload_bytes, 8), std::byte{0x5a});
  const auto max_phase = std::chrono::milliseconds(static_cast<std::int64_t>(max_seconds * 1000));

  // Latency at a fixed rate.
  runtime::LatencyHistogram latency;
  const std::uint64_t timed = std::max<std::uint64_t>(1, count / 4);
  std::uint64_t sent = 0;
  {
    AckCollector acks(&latency);
    runtime::RatePacer pacer(rate, bench_clock::now() + std::chrono::milliseconds(10));
    const auto give_up = pacer.start() + max_phase;
    for (std::uint64_t i = 0; i < timed && bench_clock::now() < give_up; ++i, ++sent) {
      const auto intended = pacer.wait_until_due(i);
      std::memcpy(payload.data(), &i, 8);
      acks.add(publisher.publish_acked(topic, payload, TopicType::binary), ns_of(intended));
    }
    acks.finish();
    if (acks.failed() > 0) {
      std::fprintf(stderr, "brook bench: %llu acknowledgement(s) failed: %s\n",
                   (unsigned long long)acks.failed(), acks.first_failure().c_str());
      return exit_refused;
    }
  }

  // Flat out, a window of unacknowledged publishes.
  AckCollector acks(nullptr);
  const auto start = bench_clock::now();
  const auto give_up = start + max_phase;
  std::uint64_t flat_sent = 0;
  for (; flat_sent < count && bench_clock::now() < give_up; ++flat_sent) {
    acks.wait_until_at_most(window - 1);  // this publish makes `window`
    std::memcpy(payload.data(), &flat_sent, 8);
    acks.add(publisher.publish_acked(topic, payload, TopicType::binary), 0);
  }
  acks.finish();
  publisher.close();

  runtime::BenchResult r;
  r.system = "brook";
  r.scenario = "acked";
  r.transport = url.rfind("shm://", 0) == 0 ? "shm" : "tcp";
  r.payload_bytes = payload_bytes;
  r.sent = flat_sent;
  r.received = acks.acked();
  r.lost = acks.failed();
  r.rate_target = rate;
  r.seconds = static_cast<double>(acks.last_ack_ns() - ns_of(start)) / 1e9;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(r.received) / r.seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(payload_bytes) / 1e6;
  }
  runtime::fill_latency(r, latency);
  if (json) {
    std::printf("%s\n", runtime::to_json(r).c_str());
  } else {
    std::printf("acked %zu B: %.0f acknowledged msgs/s flat out (window %zu), %llu sent, %llu failed; "
                "acknowledgement at %.0f/s: p50 %.1f us, p99 %.1f us, p99.9 %.1f us, max %.1f us (%llu timed)\n",
                payload_bytes, r.msgs_per_sec, window, (unsigned long long)r.sent,
                (unsigned long long)r.lost, rate, r.p50_us, r.p99_us, r.p999_us, r.max_us,
                (unsigned long long)sent);
  }
  return r.lost == 0 ? exit_ok : exit_refused;
}

}  // namespace brook::cli
