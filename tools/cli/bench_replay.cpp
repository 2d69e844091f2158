#include "bench_replay.hpp"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <future>
#include <thread>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/runtime/bench_report.hpp"
#include "bench_support.hpp"
#include "commands.hpp"

namespace brook::cli {

int run_replay_bench(const std::string& url, std::size_t payload_bytes, std::uint64_t count,
                     std::uint64_t topics, double max_seconds, bool json) {
  auto options = bench_client_options(url);
  if (!options) return exit_usage;
  topics = std::clamp<std::uint64_t>(topics, 1, count);
  const std::uint64_t per_topic = count / topics;
  count = per_topic * topics;
  const std::string prefix = "Bench/" + unique_suffix() + "/Replay";
  const auto path_of = [&](std::uint64_t t) { return prefix + "/t" + std::to_string(t); };
  std::vector<std::byte> payload(std::max<std::size_t>(payload_bytes, 8), std::byte{0x5a});

  Client publisher;
  if (!connect_or_report(publisher, *options)) return exit_usage;
  for (std::uint64_t t = 0; t < topics; ++t) {
    const TopicProperties properties{.type = TopicType::binary,
                                     .history = static_cast<std::int32_t>(per_topic),
                                     .history_bytes = per_topic * (payload.size() + 256)};
    Status created = publisher.create_topic(path_of(t), properties).get();
    if (!created) {
      std::fprintf(stderr, "brook bench: cannot create %s: %s\n", path_of(t).c_str(), created.message.c_str());
      return exit_refused;
    }
  }
  // Flat out, then one acknowledged publish per topic: once those are answered the owners
  // have taken every update before them.
  for (std::uint64_t i = 0; i + topics < count; ++i) {
    std::memcpy(payload.data(), &i, 8);
    if (Status s = publisher.publish(path_of(i % topics), payload, TopicType::binary); !s) {
      std::fprintf(stderr, "brook bench: publish refused: %s\n", s.message.c_str());
      return exit_refused;
    }
  }
  std::vector<std::future<Status>> last;
  for (std::uint64_t t = 0; t < topics; ++t) last.push_back(publisher.publish_acked(path_of(t), payload, TopicType::binary));
  for (auto& ack : last)
    if (Status s = ack.get(); !s) {
      std::fprintf(stderr, "brook bench: publish refused: %s\n", s.message.c_str());
      return exit_refused;
    }
  publisher.close();

  Client subscriber;
  if (!connect_or_report(subscriber, *options)) return exit_usage;
  std::atomic<std::uint64_t> received{0}, gaps{0}, out_of_order{0};
  std::atomic<std::uint64_t> last_ns{0};
  std::vector<std::uint64_t> last_seq(topics, 0);  // the client thread's
  std::promise<void> all;
  auto all_received = all.get_future();
  const auto start = bench_clock::now();
  subscriber.subscribe(prefix + "//", [&](const Update& u) {
    const std::string_view name = u.path.substr(prefix.size() + 2);
    const std::uint64_t t = std::strtoull(std::string(name).c_str(), nullptr, 10);
    if (t < topics) {
      if (last_seq[t] != 0 && u.topic_seq != last_seq[t] + 1) ++out_of_order;
      last_seq[t] = u.topic_seq;
    }
    if (u.resync) ++gaps;
    if (received.fetch_add(1, std::memory_order_relaxed) + 1 == count) {
      last_ns.store(now_ns());
      all.set_value();
    }
  }, SubscribeOptions{.history = static_cast<std::uint32_t>(per_topic)});
  const bool complete = all_received.wait_for(std::chrono::milliseconds(static_cast<std::int64_t>(max_seconds * 1000))) ==
                        std::future_status::ready;
  subscriber.close();

  runtime::BenchResult r;
  r.system = "brook";
  r.scenario = "replay";
  r.transport = url.rfind("shm://", 0) == 0 ? "shm" : "tcp";
  r.payload_bytes = payload_bytes;
  r.sent = count;
  r.received = received.load();
  r.lost = count - std::min(count, r.received) + out_of_order.load();
  r.seconds = complete ? static_cast<double>(last_ns.load() - ns_of(start)) / 1e9 : max_seconds;
  if (r.seconds > 0) {
    r.msgs_per_sec = static_cast<double>(r.received) / r.seconds;
    r.mb_per_sec = r.msgs_per_sec * static_cast<double>(payload_bytes) / 1e6;
  }
  if (json) {
    std::printf("%s\n", runtime::to_json(r).c_str());
  } else {
    std::printf("replay %zu B: %llu history updates over %llu topics to one subscriber in %.3f s: %.0f updates/s; "
                "%llu missing or out of order, %llu flagged gaps\n",
                payload_bytes, (unsigned long long)r.received, (unsigned long long)topics, r.seconds, r.msgs_per_sec,
                (unsigned long long)r.lost, (unsigned long long)gaps.load());
  }
  return complete && r.lost == 0 && gaps.load() == 0 ? exit_ok : exit_refused;
}

}  // namespace brook::cli
