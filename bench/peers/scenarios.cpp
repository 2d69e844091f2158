// The scenarios of scenarios.hpp. Threads: the calling thread connects, publishes, paces and
// waits; every subscriber link delivers on its own receive thread into its Subscriber record;
// connecting and closing a thousand links is spread over a few short-lived threads.
#include "scenarios.hpp"

#include <algorithm>
#include <limits>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "brook/runtime/latency_histogram.hpp"
#include "brook/runtime/rate_pacer.hpp"

namespace brook::bench {

namespace {

using Clock = std::chrono::steady_clock;
using runtime::BenchResult;
using runtime::LatencyHistogram;
using runtime::RatePacer;
using namespace std::chrono_literals;

constexpr std::uint64_t kNone = UINT64_MAX;
constexpr std::byte kFiller{0x5a};
// Connect handshakes and subscribe round trips are waits, not work: a few in flight at once
// open a thousand links in seconds instead of minutes on a loaded machine.
constexpr unsigned kLinkThreads = 8;
constexpr auto kDrainPoll = 2ms;        // how often the drain looks at the counts
constexpr auto kDropPollWaiting = 1ms;  // how often a waiting publisher asks the libraries for drops
constexpr auto kDropPollDraining = 100ms;

std::int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}
Clock::duration as_duration(double seconds) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
}
double seconds_between(std::int64_t from_ns, std::int64_t to_ns) {
  return static_cast<double>(to_ns - from_ns) / 1e9;
}
std::uint64_t read_u64(std::span<const std::byte> p, std::size_t at) {
  std::uint64_t v;
  std::memcpy(&v, p.data() + at, sizeof v);
  return v;
}

// The payload of every message, as `brook bench` lays it out: bytes 0-7 the sequence number,
// 8-15 the intended send time in ns of steady_clock (CLOCK_MONOTONIC, so a receiver in another
// process on this machine can subtract it), the rest filler. One buffer, restamped per message.
class Payload {
 public:
  explicit Payload(std::size_t bytes) : bytes_(std::max(bytes, kMinPayloadBytes), kFiller) {}

  std::span<const std::byte> stamp(std::uint64_t seq, Clock::time_point intended) {
    const auto intended_ns = static_cast<std::uint64_t>(ns_of(intended));
    std::memcpy(bytes_.data(), &seq, sizeof seq);
    std::memcpy(bytes_.data() + 8, &intended_ns, sizeof intended_ns);
    return bytes_;
  }

 private:
  std::vector<std::byte> bytes_;
};

// One subscriber link and what its receiver saw. The link's receive thread writes the tallies;
// the sending thread reads the atomics during the run (flow control, drain) and the rest once
// the link is closed, its destructor having stopped the receive thread. `link` is the last
// member so that it closes before the tallies its receiver writes go away.
struct Subscriber {
  // relaxed, all three: one writer, and nothing else is published through them; the final
  // values are read after the link's close has stopped that writer.
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> out_of_order{0};
  std::atomic<std::int64_t> last_receive_ns{0};
  // Receive thread only (read after the close).
  std::uint64_t next_seq = 0;
  std::vector<std::uint64_t> last_seq_per_topic;  // topics: kNone until the topic's first update
  LatencyHistogram latency;
  // Sending thread only: what the client library said it dropped when last asked.
  std::uint64_t dropped_seen = 0;
  std::unique_ptr<PeerLink> link;

  std::uint64_t count_received() {
    const std::uint64_t n = received.load(std::memory_order_relaxed) + 1;
    received.store(n, std::memory_order_relaxed);
    return n;
  }
  void count_out_of_order() {
    out_of_order.store(out_of_order.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  void note_receive_time(Clock::time_point t) { last_receive_ns.store(ns_of(t), std::memory_order_relaxed); }
};
using Subscribers = std::vector<std::unique_ptr<Subscriber>>;

Subscribers make_subscribers(std::size_t n) {
  Subscribers subs;
  subs.reserve(n);
  for (std::size_t i = 0; i < n; ++i) subs.push_back(std::make_unique<Subscriber>());
  return subs;
}

// Flat out: checks that every message follows the one before. Reading the clock per message
// would cost more than the rest of this receiver, so the end time is taken every 1024 messages
// and on the last one expected (as brook bench does).
PeerLink::Receiver sequence_receiver(Subscriber& s, std::uint64_t expected) {
  return [&s, expected](std::string_view, std::span<const std::byte> p) {
    const std::uint64_t seq = p.size() >= 8 ? read_u64(p, 0) : kNone;
    if (seq != s.next_seq) s.count_out_of_order();
    s.next_seq = seq + 1;
    const std::uint64_t n = s.received.load(std::memory_order_relaxed) + 1;
    if ((n & 1023) == 0 || n == expected) s.note_receive_time(Clock::now());
    s.received.store(n, std::memory_order_relaxed);
  };
}

// Paced: latency of every message from its intended send time (carried in the payload), so a
// stall anywhere is charged to every message it delayed.
PeerLink::Receiver latency_receiver(Subscriber& s) {
  return [&s](std::string_view, std::span<const std::byte> p) {
    const Clock::time_point now = Clock::now();
    if (p.size() < kMinPayloadBytes) {
      s.count_out_of_order();  // not one of ours
    } else {
      const std::uint64_t seq = read_u64(p, 0);
      const std::int64_t late_ns = ns_of(now) - static_cast<std::int64_t>(read_u64(p, 8));
      s.latency.record(late_ns > 0 ? static_cast<std::uint64_t>(late_ns) : 0);
      if (seq != s.next_seq) s.count_out_of_order();
      s.next_seq = seq + 1;
    }
    s.note_receive_time(now);
    s.count_received();
  };
}

// The topic number after the subject's last separator; kNone when there is none.
std::uint64_t topic_of(std::string_view subject, char separator) {
  const std::size_t at = subject.rfind(separator);
  if (at == std::string_view::npos) return kNone;
  std::uint64_t topic = kNone;
  const char* end = subject.data() + subject.size();
  const auto [ptr, ec] = std::from_chars(subject.data() + at + 1, end, topic);
  return ec == std::errc{} && ptr == end ? topic : kNone;
}

// Many topics: update i goes to topic i % topics, so order holds per topic only. An update
// that arrives on another topic than its sequence number says is counted out of order too;
// a gap within a topic is loss, which the totals count.
PeerLink::Receiver per_topic_receiver(Subscriber& s, std::uint64_t topics, std::uint64_t expected, char separator) {
  s.last_seq_per_topic.assign(topics, kNone);
  return [&s, topics, expected, separator](std::string_view subject, std::span<const std::byte> p) {
    const std::uint64_t seq = p.size() >= 8 ? read_u64(p, 0) : kNone;
    const std::uint64_t topic = topic_of(subject, separator);
    if (seq == kNone || topic >= topics || seq % topics != topic) {
      s.count_out_of_order();
    } else if (std::uint64_t& last = s.last_seq_per_topic[topic]; last != kNone && seq <= last) {
      s.count_out_of_order();
    } else {
      last = seq;
    }
    const std::uint64_t n = s.received.load(std::memory_order_relaxed) + 1;
    if ((n & 1023) == 0 || n == expected) s.note_receive_time(Clock::now());
    s.received.store(n, std::memory_order_relaxed);
  };
}

// Runs fn(i) for every i in [0, n) on up to kLinkThreads threads; after the first exception the
// threads take no new work, and it is rethrown once they all stopped.
void for_each_on_few_threads(std::size_t n, const std::function<void(std::size_t)>& fn) {
  std::atomic<std::size_t> next{0};  // relaxed: only hands out indices; the joins order the rest
  std::atomic<bool> failed{false};   // relaxed: only stops the others early
  std::mutex error_mutex;
  std::exception_ptr first_error;
  const auto work = [&] {
    while (!failed.load(std::memory_order_relaxed)) {
      const std::size_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= n) return;
      try {
        fn(i);
      } catch (...) {
        const std::lock_guard lock(error_mutex);
        if (!first_error) first_error = std::current_exception();
        failed.store(true, std::memory_order_relaxed);
      }
    }
  };
  if (n <= 1) {
    work();
  } else {
    std::vector<std::jthread> threads;
    for (std::size_t t = 0; t < std::min<std::size_t>(kLinkThreads, n); ++t) threads.emplace_back(work);
  }  // the jthreads join here
  if (first_error) std::rethrow_exception(first_error);
}

// Whether a link's publishes may wait in the client library for a batch to fill (flat-out
// publishers, which flush when they must wait) or must leave at once (paced publishers, and
// links that only subscribe, for which it costs nothing and saves cnats its flusher thread).
enum class Batching { allowed, never };

std::unique_ptr<PeerLink> open_link(const PeerSystem& system, const std::string& url, const std::string& name,
                                    Batching batching) {
  const auto& connect =
      batching == Batching::never && system.connect_unbatched ? system.connect_unbatched : system.connect;
  std::unique_ptr<PeerLink> link = connect(url, name);
  if (!link) throw std::runtime_error("connecting " + name + " to " + url + " gave no link");
  return link;
}

// Opens one link per subscriber, named "<role>-<i>", each subscribed to `subject` with the
// receiver make_receiver gives it; returns once the server has every subscription.
void open_subscribers(const PeerSystem& system, const std::string& url, const std::string& role,
                      const std::string& subject, Subscribers& subs,
                      const std::function<PeerLink::Receiver(Subscriber&)>& make_receiver) {
  const Clock::time_point start = Clock::now();
  for_each_on_few_threads(subs.size(), [&](std::size_t i) {
    Subscriber& s = *subs[i];
    s.link = open_link(system, url, role + "-" + std::to_string(i), Batching::never);
    s.link->subscribe(subject, make_receiver(s));
  });
  if (subs.size() > 1)
    std::fprintf(stderr, "peer_bench: %zu %s links subscribed in %.2f s\n", subs.size(), role.c_str(),
                 std::chrono::duration<double>(Clock::now() - start).count());
}

// Closes the links (each close joins its library's threads), a few at a time.
void close_links(Subscribers& subs) {
  for_each_on_few_threads(subs.size(), [&](std::size_t i) { subs[i]->link.reset(); });
}

// Subscriber links whose connection ended under them (asked before they are closed).
std::uint64_t lost_connections(const Subscribers& subs) {
  return static_cast<std::uint64_t>(
      std::count_if(subs.begin(), subs.end(), [](const auto& s) { return s->link && s->link->connection_lost(); }));
}

// What the client libraries dropped on their own (full receive queues) explains loss: say so.
std::uint64_t report_drops(const Subscribers& subs, const char* role) {
  std::uint64_t dropped = 0;
  for (const auto& s : subs)
    if (s->link) dropped += s->link->dropped();
  if (dropped > 0)
    std::fprintf(stderr, "peer_bench: the client library dropped %llu messages for the %s links\n",
                 static_cast<unsigned long long>(dropped), role);
  return dropped;
}

void poll_drops(Subscribers& subs) {
  for (auto& s : subs) s->dropped_seen = s->link->dropped();
}

// Received, or dropped by the library (never to arrive), by the slowest subscriber.
std::uint64_t slowest_progress(const Subscribers& subs) {
  std::uint64_t slowest = kNone;
  for (const auto& s : subs)
    slowest = std::min(slowest, s->received.load(std::memory_order_relaxed) + s->dropped_seen);
  return slowest;
}

enum class Ending { complete, deadline, stalled };

// The flat-out publisher's flow control: message `seq` may go out only while fewer than
// `window` messages are outstanding at the slowest subscriber. It is the same for every
// system, so that none is measured by how much it buffers.
class Window {
 public:
  Window(Subscribers& subs, std::uint64_t window_messages, Clock::duration quiet)
      : subs_(subs), window_(window_messages), quiet_(quiet), limit_(window_messages) {}

  // complete: `seq` may be sent. Otherwise the publisher stops: the deadline passed while it
  // waited, or the subscribers made no progress for `quiet`.
  Ending admit(std::uint64_t seq, PeerLink& publisher, Clock::time_point stop_at) {
    if (seq < limit_) return Ending::complete;
    std::uint64_t done = slowest_progress(subs_);
    limit_ = done + window_;
    if (seq < limit_) return Ending::complete;
    publisher.flush();  // what the subscribers wait for may still sit in the publisher's buffer
    Clock::time_point last_progress = Clock::now(), last_drop_poll = last_progress;
    for (;;) {
      std::this_thread::yield();
      const Clock::time_point now = Clock::now();
      if (now - last_drop_poll >= kDropPollWaiting) {
        poll_drops(subs_);
        last_drop_poll = now;
      }
      const std::uint64_t progress = slowest_progress(subs_);
      limit_ = progress + window_;
      if (seq < limit_) return Ending::complete;
      if (progress != done) {
        done = progress;
        last_progress = now;
      }
      if (now >= stop_at) return Ending::deadline;
      if (now - last_progress >= quiet_) return Ending::stalled;
    }
  }

 private:
  Subscribers& subs_;
  const std::uint64_t window_;
  const Clock::duration quiet_;
  std::uint64_t limit_;  // seq below this may go without looking at the subscribers
};

std::uint64_t window_messages(const ScenarioOptions& o) {
  // 0: no window, the publisher goes as fast as the system's API accepts (half the range, so
  // that progress + window cannot wrap).
  if (o.window_bytes == 0) return std::numeric_limits<std::uint64_t>::max() / 2;
  return std::max<std::uint64_t>(1, o.window_bytes / o.payload_bytes);
}

// After sending: waits until every subscriber has all `sent` messages (or its library dropped
// the rest, which will never come) or nothing new arrived for `quiet`.
void await_stragglers(Subscribers& subs, std::uint64_t sent, Clock::duration quiet) {
  const std::uint64_t expected = sent * subs.size();
  const auto arrived = [&] {
    std::uint64_t n = 0;
    for (const auto& s : subs) n += s->received.load(std::memory_order_relaxed) + s->dropped_seen;
    return n;
  };
  std::uint64_t seen = arrived();
  Clock::time_point last_progress = Clock::now(), last_drop_poll = last_progress;
  while (seen < expected) {
    std::this_thread::sleep_for(kDrainPoll);
    const Clock::time_point now = Clock::now();
    if (now - last_drop_poll >= kDropPollDraining) {
      poll_drops(subs);
      last_drop_poll = now;
    }
    const std::uint64_t n = arrived();
    if (n != seen) last_progress = now;
    seen = n;
    if (now - last_progress >= quiet) {
      std::fprintf(stderr, "peer_bench: nothing arrived for %.1f s: %llu of %llu deliveries missing\n",
                   std::chrono::duration<double>(quiet).count(),
                   static_cast<unsigned long long>(expected - std::min(seen, expected)),
                   static_cast<unsigned long long>(expected));
      return;
    }
  }
}

void report_ending(Ending ending, std::uint64_t sent, const ScenarioOptions& o) {
  if (ending == Ending::deadline)
    std::fprintf(stderr, "peer_bench: sending stopped by --max-seconds %.1f after %llu messages\n", o.max_seconds,
                 static_cast<unsigned long long>(sent));
  else if (ending == Ending::stalled)
    std::fprintf(stderr, "peer_bench: subscribers made no progress for --drain-seconds %.1f: sending stopped after %llu messages\n",
                 o.drain_seconds, static_cast<unsigned long long>(sent));
}

BenchResult new_result(const PeerSystem& system, const char* scenario, const ScenarioOptions& o) {
  BenchResult r;
  r.system = system.name;
  r.scenario = scenario;
  r.transport = o.url.rfind("tls://", 0) == 0 ? "tls" : "tcp";
  r.payload_bytes = o.payload_bytes;
  return r;
}

// Totals over the subscribers (read after their links closed): deliveries expected are
// `sent` per subscriber; the rate runs from `start_ns` to the last delivery.
void fill_totals(BenchResult& r, const Subscribers& subs, std::uint64_t sent, std::int64_t start_ns) {
  std::int64_t last_ns = start_ns;
  r.sent = sent * subs.size();
  r.received = 0;
  r.out_of_order = 0;
  for (const auto& s : subs) {
    r.received += s->received.load(std::memory_order_relaxed);
    r.out_of_order += s->out_of_order.load(std::memory_order_relaxed);
    last_ns = std::max(last_ns, s->last_receive_ns.load(std::memory_order_relaxed));
  }
  r.lost = r.sent > r.received ? r.sent - r.received : 0;
  r.seconds = r.received > 0 ? seconds_between(start_ns, last_ns) : 0.0;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(r.received) / r.seconds;
    r.mb_per_sec = static_cast<double>(r.received) * static_cast<double>(r.payload_bytes) / r.seconds / 1e6;
  }
}

// Sends `count` messages flat out within the window, each to subject_of(seq). Flat out there
// is no schedule: the time stamped into a payload is when its batch of 1024 began (the clock
// is read then anyway, for the deadline).
template <typename SubjectOf>
std::uint64_t publish_flat_out(PeerLink& publisher, Subscribers& subs, const ScenarioOptions& o,
                               SubjectOf subject_of, std::int64_t& first_publish_ns) {
  Payload payload(o.payload_bytes);
  Window window(subs, window_messages(o), as_duration(o.drain_seconds));
  const Clock::time_point first_publish = Clock::now();
  const Clock::time_point stop_at = first_publish + as_duration(o.max_seconds);
  first_publish_ns = ns_of(first_publish);
  Clock::time_point batch_start = first_publish;
  Ending ending = Ending::complete;
  std::uint64_t sent = 0;
  for (; sent < o.count; ++sent) {
    if ((sent & 1023) == 0) {
      batch_start = Clock::now();
      if (batch_start >= stop_at) {
        ending = Ending::deadline;
        break;
      }
    }
    ending = window.admit(sent, publisher, stop_at);
    if (ending != Ending::complete) break;
    publisher.publish(subject_of(sent), payload.stamp(sent, batch_start));
  }
  publisher.flush();
  report_ending(ending, sent, o);
  return sent;
}

// Sends `count` messages at o.rate_per_sec, flushing each, until the count or the deadline.
std::uint64_t publish_paced(PeerLink& publisher, const std::string& subject, const RatePacer& pacer,
                            const ScenarioOptions& o) {
  Payload payload(o.payload_bytes);
  const Clock::time_point stop_at = pacer.start() + as_duration(o.max_seconds);
  Ending ending = Ending::complete;
  std::uint64_t sent = 0;
  for (; sent < o.count; ++sent) {
    if (pacer.intended_time(sent) >= stop_at || Clock::now() >= stop_at) {
      ending = Ending::deadline;
      break;
    }
    publisher.publish(subject, payload.stamp(sent, pacer.wait_until_due(sent)));
    publisher.flush();
  }
  report_ending(ending, sent, o);
  return sent;
}

// A paced run starts a little after its links are ready, so the first intended send time is
// not already past when the loop begins.
constexpr auto kPacedStartDelay = 10ms;

}  // namespace

BenchResult run_throughput(const PeerSystem& system, const ScenarioOptions& o) {
  const std::string subject = system.syntax.subject("bench", "tp");
  Subscribers subs = make_subscribers(1);
  open_subscribers(system, o.url, "subscriber", subject, subs,
                   [&](Subscriber& s) { return sequence_receiver(s, o.count); });
  std::unique_ptr<PeerLink> publisher = open_link(system, o.url, "publisher", Batching::allowed);

  std::int64_t first_publish_ns = 0;
  const std::uint64_t sent =
      publish_flat_out(*publisher, subs, o, [&](std::uint64_t) -> const std::string& { return subject; },
                       first_publish_ns);
  await_stragglers(subs, sent, as_duration(o.drain_seconds));
  report_drops(subs, "subscriber");
  const std::uint64_t closed = lost_connections(subs);
  publisher.reset();
  close_links(subs);

  BenchResult r = new_result(system, "throughput", o);
  fill_totals(r, subs, sent, first_publish_ns);
  r.sessions_closed = closed;
  return r;
}

BenchResult run_rtt(const PeerSystem& system, const ScenarioOptions& o) {
  const std::string ping = system.syntax.subject("bench", "ping");
  const std::string pong = system.syntax.subject("bench", "pong");

  // The responder receives pings on one link and echoes them, unchanged, through another
  // (peer_link.hpp: no link both subscribes and publishes). `echo` outlives `responder`.
  std::unique_ptr<PeerLink> echo = open_link(system, o.url, "responder-out", Batching::never);
  Subscribers responder = make_subscribers(1);
  open_subscribers(system, o.url, "responder", ping, responder, [&](Subscriber& s) -> PeerLink::Receiver {
    return [&s, out = echo.get(), pong](std::string_view, std::span<const std::byte> p) {
      out->publish(pong, p);
      out->flush();
      s.count_received();
    };
  });
  Subscribers requester = make_subscribers(1);
  open_subscribers(system, o.url, "requester", pong, requester, latency_receiver);
  std::unique_ptr<PeerLink> pinger = open_link(system, o.url, "requester-out", Batching::never);

  const RatePacer pacer(o.rate_per_sec, Clock::now() + kPacedStartDelay);
  const std::uint64_t sent = publish_paced(*pinger, ping, pacer, o);
  await_stragglers(requester, sent, as_duration(o.drain_seconds));
  report_drops(responder, "responder");
  report_drops(requester, "requester");
  pinger.reset();
  close_links(requester);
  close_links(responder);
  echo.reset();

  BenchResult r = new_result(system, "rtt", o);
  fill_totals(r, requester, sent, ns_of(pacer.start()));
  r.rate_target = o.rate_per_sec;
  runtime::fill_latency(r, requester.front()->latency);
  return r;
}

BenchResult run_fanout(const PeerSystem& system, const ScenarioOptions& o) {
  const std::string subject = system.syntax.subject("bench", "fan");
  Subscribers subs = make_subscribers(o.subscribers);
  open_subscribers(system, o.url, "subscriber", subject, subs, latency_receiver);
  std::unique_ptr<PeerLink> publisher = open_link(system, o.url, "publisher", Batching::never);

  const RatePacer pacer(o.rate_per_sec, Clock::now() + kPacedStartDelay);
  const std::uint64_t sent = publish_paced(*publisher, subject, pacer, o);
  await_stragglers(subs, sent, as_duration(o.drain_seconds));
  report_drops(subs, "subscriber");
  const std::uint64_t closed = lost_connections(subs);
  publisher.reset();
  close_links(subs);

  BenchResult r = new_result(system, "fanout", o);
  fill_totals(r, subs, sent, ns_of(pacer.start()));
  r.sessions_closed = closed;
  r.rate_target = o.rate_per_sec;
  r.subscribers = o.subscribers;
  LatencyHistogram all;
  for (const auto& s : subs) all.merge(s->latency);
  runtime::fill_latency(r, all);
  return r;
}

BenchResult run_topics(const PeerSystem& system, const ScenarioOptions& o) {
  const std::string prefix = system.syntax.subject("bench", "topics");
  std::vector<std::string> topic_subjects;
  topic_subjects.reserve(o.topics);
  for (std::uint64_t t = 0; t < o.topics; ++t) topic_subjects.push_back(system.syntax.subject(prefix, std::to_string(t)));

  Subscribers subs = make_subscribers(o.subscribers);
  open_subscribers(system, o.url, "subscriber", system.syntax.all_below(prefix), subs, [&](Subscriber& s) {
    return per_topic_receiver(s, o.topics, o.count, system.syntax.separator);
  });
  std::unique_ptr<PeerLink> publisher = open_link(system, o.url, "publisher", Batching::allowed);

  std::int64_t first_publish_ns = 0;
  const std::uint64_t sent = publish_flat_out(
      *publisher, subs, o, [&](std::uint64_t seq) -> const std::string& { return topic_subjects[seq % o.topics]; },
      first_publish_ns);
  await_stragglers(subs, sent, as_duration(o.drain_seconds));
  report_drops(subs, "subscriber");
  const std::uint64_t closed = lost_connections(subs);
  publisher.reset();
  close_links(subs);

  BenchResult r = new_result(system, "topics", o);
  fill_totals(r, subs, sent, first_publish_ns);
  r.sessions_closed = closed;
  r.subscribers = o.subscribers;
  r.topics = o.topics;
  return r;
}

}  // namespace brook::bench
