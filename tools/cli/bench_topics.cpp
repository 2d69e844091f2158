// brook bench topics: what a broker pays per topic rather than per message. One publisher sends
// update i to topic i % --topics (Bench/Topics-<suffix>/<t>) flat out, never more than
// --window-bytes of payload ahead of the slowest of --subscribers clients. Each subscriber holds
// one selector for every topic (Bench/Topics-<suffix>//) and checks order per topic: every
// update finds its topic in a large table, with a binding per subscriber, and few of them find
// it in the cache.
//
// The topics are created before the run with deltas off: a topic that a publish creates gets
// deltas, and from its second update on the broker would measure the delta codec instead of
// delivery. The creations are pipelined, so they cost one round trip in all, not one each.
#include "bench_topics.hpp"

#include <algorithm>
#include <limits>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/runtime/bench_report.hpp"
#include "bench_support.hpp"
#include "commands.hpp"

namespace brook::cli {

namespace {

using clock = std::chrono::steady_clock;

// One subscriber's view. Its client's thread alone writes it until that client is closed; the
// publisher reads `received` meanwhile, for the window and the tail.
struct TopicReceiver {
  explicit TopicReceiver(std::uint64_t topics) : next_seq(topics, 0) {}
  std::atomic<std::uint64_t> received{0};
  std::vector<std::uint64_t> next_seq;  // per topic: the last sequence received + 1
  std::uint64_t out_of_order = 0;
  std::uint64_t last_ns = 0;  // when the latest update arrived: the end of the measurement
};

// The topic number after the path's last '/', or `topics` when there is none below that.
std::uint64_t topic_number(std::string_view path, std::uint64_t topics) {
  const auto slash = path.rfind('/');
  std::uint64_t t = topics;
  if (slash != std::string_view::npos)
    std::from_chars(path.data() + slash + 1, path.data() + path.size(), t);
  return std::min(t, topics);
}

void report(const runtime::BenchResult& r, bool json, double subscribe_seconds,
            double create_seconds) {
  if (json) {
    std::printf("%s\n", runtime::to_json(r).c_str());
  } else {
    std::printf("topics %zu B over %llu topics to %u subscriber(s): %.0f msgs/s delivered "
                "(%.1f MB/s), %llu/%llu received, %llu lost, %llu out of order, %.3f s\n",
                r.payload_bytes, (unsigned long long)r.topics, r.subscribers, r.msgs_per_sec,
                r.mb_per_sec, (unsigned long long)r.received, (unsigned long long)r.sent,
                (unsigned long long)r.lost, (unsigned long long)r.out_of_order, r.seconds);
    std::printf("  subscribed in %.3f s, topics created in %.3f s\n", subscribe_seconds,
                create_seconds);
  }
  std::fflush(stdout);
}

}  // namespace

int run_topics(const TopicsArgs& a) {
  if (a.topics == 0 || a.subscribers == 0) {
    std::fprintf(stderr, "brook bench: topics needs at least one topic and one subscriber\n");
    return exit_usage;
  }
  const std::string root = "Bench/Topics-" + unique_suffix();
  auto bench_options = bench_client_options(a.url);
  if (!bench_options) return exit_usage;
  ClientOptions options = *bench_options;
  // The publisher sleeps even with --spin, as in oneway: spinning clients and a broker would
  // take turns on a small machine's cores.
  Client publisher;
  if (!connect_or_report(publisher, options)) return exit_usage;

  options.spin = a.spin;
  const auto subscribe_start = clock::now();
  SessionWatch watch;  // outlives the subscribers, whose threads report to it
  std::vector<std::unique_ptr<TopicReceiver>> receivers;
  std::vector<std::unique_ptr<Client>> subscribers;
  std::vector<std::future<Status>> confirmations;
  for (unsigned i = 0; i < a.subscribers; ++i) {
    receivers.push_back(std::make_unique<TopicReceiver>(a.topics));
    subscribers.push_back(std::make_unique<Client>());
    watch.watch(*subscribers.back(), "subscriber " + std::to_string(i));
    if (auto s = subscribers.back()->connect(options); !s) {
      std::fprintf(stderr, "brook bench: subscriber %u: %s\n", i, s.message.c_str());
      return exit_usage;
    }
    TopicReceiver* r = receivers.back().get();
    auto verdict = std::make_shared<std::promise<Status>>();
    confirmations.push_back(verdict->get_future());
    subscribers.back()->subscribe(
        root + "//",
        [r, topics = a.topics](const Update& u) {
          const std::uint64_t t = topic_number(u.path, topics);
          if (t == topics || u.value.size() < 16) return;  // not one of ours: counts as lost
          std::uint64_t seq;
          std::memcpy(&seq, u.value.data(), 8);
          if (seq < r->next_seq[t]) ++r->out_of_order;
          else r->next_seq[t] = seq + 1;
          r->last_ns = ns_of(clock::now());
          // release: pairs with the acquires in slowest() and delivered()
          r->received.fetch_add(1, std::memory_order_release);
        },
        [verdict](const Status& s) { verdict->set_value(s); });
  }
  for (unsigned i = 0; i < a.subscribers; ++i) {
    if (confirmations[i].wait_for(std::chrono::seconds(10)) != std::future_status::ready ||
        !confirmations[i].get()) {
      std::fprintf(stderr, "brook bench: subscriber %u was not confirmed\n", i);
      return exit_refused;
    }
  }
  const double subscribe_seconds =
      std::chrono::duration<double>(clock::now() - subscribe_start).count();

  // The path is the root, '/', and the topic's number written in place.
  char path[64];
  const std::size_t prefix = root.size() + 1;
  std::memcpy(path, root.data(), root.size());
  path[root.size()] = '/';
  auto path_of = [&](std::uint64_t t) {
    const auto end = std::to_chars(path + prefix, path + sizeof path, t).ptr;
    return std::string_view(path, static_cast<std::size_t>(end - path));
  };

  // Created after the subscriptions: the subscribers learn each topic, but with no value yet
  // there is nothing to deliver until its first update.
  const auto create_start = clock::now();
  TopicProperties properties;
  properties.type = TopicType::binary;
  properties.deltas = false;
  std::vector<std::future<Status>> created;
  created.reserve(a.topics);
  for (std::uint64_t t = 0; t < a.topics; ++t)
    created.push_back(publisher.create_topic(path_of(t), properties));
  const auto create_by = clock::now() + std::chrono::seconds(60);
  for (auto& c : created) {
    if (c.wait_until(create_by) != std::future_status::ready) {
      std::fprintf(stderr, "brook bench: the broker did not confirm the topics within 60 s\n");
      return exit_refused;
    }
    if (Status s = c.get(); !s) {
      std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
      return exit_refused;
    }
  }
  created.clear();
  const double create_seconds = std::chrono::duration<double>(clock::now() - create_start).count();

  auto slowest = [&] {
    std::uint64_t n = UINT64_MAX;
    for (auto& r : receivers) n = std::min(n, r->received.load(std::memory_order_acquire));
    return n;
  };
  auto delivered = [&] {
    std::uint64_t n = 0;
    for (auto& r : receivers) n += r->received.load(std::memory_order_acquire);
    return n;
  };
  std::vector<std::byte> value(std::max<std::size_t>(a.payload, 16), std::byte{0x5a});
  // Brook closes a subscriber whose queue overflows rather than stall the publisher: the
  // window keeps the run to the rate the slowest subscriber sustains.
  const std::uint64_t window = a.window_bytes == 0 ? std::numeric_limits<std::uint64_t>::max()
                                                  : std::max<std::uint64_t>(1, a.window_bytes / value.size());
  const auto start = clock::now();
  const auto give_up = start + std::chrono::milliseconds(static_cast<std::int64_t>(a.max_seconds * 1000));
  std::uint64_t sent = 0;
  std::uint64_t slowest_seen = 0;
  while (sent < a.count) {
    if (sent - slowest_seen >= window) {
      slowest_seen = slowest();
      if (sent - slowest_seen >= window) {
        if (clock::now() >= give_up) break;
        std::this_thread::sleep_for(std::chrono::microseconds(50));
        continue;
      }
    }
    if ((sent & 1023) == 0 && clock::now() >= give_up) break;
    const std::uint64_t intended = ns_of(clock::now());
    std::memcpy(value.data(), &sent, 8);
    std::memcpy(value.data() + 8, &intended, 8);
    publisher.publish(path_of(sent % a.topics), value, TopicType::binary);
    ++sent;
  }
  const std::uint64_t expected = sent * a.subscribers;
  await_tail(delivered, expected);
  watch.stop();
  publisher.close();
  for (auto& s : subscribers) s->close();  // joins their threads: the receivers are ours now

  runtime::BenchResult r;
  r.system = "brook";
  r.scenario = "topics";
  r.transport = transport_of(a.url);
  r.payload_bytes = value.size();
  r.topics = a.topics;
  r.subscribers = a.subscribers;
  r.sent = expected;
  r.sessions_closed = watch.closed();
  std::uint64_t last_ns = 0;
  for (auto& receiver : receivers) {
    r.received += receiver->received.load();
    r.out_of_order += receiver->out_of_order;
    last_ns = std::max(last_ns, receiver->last_ns);
  }
  r.lost = r.sent > r.received ? r.sent - r.received : 0;
  r.seconds = last_ns > ns_of(start) ? static_cast<double>(last_ns - ns_of(start)) / 1e9 : 0;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(r.received) / r.seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(value.size()) / 1e6;
  }
  report(r, a.json, subscribe_seconds, create_seconds);
  return r.lost == 0 && r.out_of_order == 0 ? exit_ok : exit_refused;
}

}  // namespace brook::cli
