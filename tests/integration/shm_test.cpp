// Integration: the shared-memory transport (brookd --shm PATH, clients on shm://PATH) against a
// real brookd. The same API and guarantees as TCP: shm and TCP clients publish to and
// subscribe from each other, in order, none lost; large values stream through rings smaller
// than they are; sessions resume after a client is killed with SIGKILL (the broker learns it
// from the socket closing); requests and deltas work across transports. Peers are checked
// (SO_PEERCRED against the allow lists), and a process that scribbles over its ring indices
// loses its own session while every other client carries on. Every wait is bounded.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <future>
#include <thread>
#include <memory>
#include <string>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "brook/transport/shm_handshake.hpp"
#include "brook/transport/shm_ring.hpp"
#include "brook/transport/shm_segment.hpp"
#include "brook/transport/unix_socket.hpp"
#include "cli_output.hpp"
#include "credentials_file.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

using std::chrono::milliseconds;

constexpr auto long_wait = std::chrono::seconds(20);
constexpr auto short_wait = std::chrono::seconds(10);

BrokerConfig shm_broker(unsigned shards = 2, std::string toml = {}) {
  BrokerConfig config = with_shards(shards);
  config.shm = true;
  config.config_toml = std::move(toml);
  return config;
}

std::string value_of(const std::string& prefix, std::uint64_t seq) {
  return prefix + std::to_string(seq);
}

// Empty when `got` holds topic sequences 1..last in order, each carrying value_of(prefix, seq);
// otherwise the first difference.
std::string in_order_from_one(const std::vector<Received>& got, const std::string& prefix,
                              std::uint64_t last) {
  if (got.size() != last)
    return std::to_string(got.size()) + " updates, expected " + std::to_string(last);
  for (std::size_t i = 0; i < got.size(); ++i)
    if (got[i].topic_seq != i + 1 || got[i].value != value_of(prefix, i + 1))
      return "update #" + std::to_string(i) + " is seq " + std::to_string(got[i].topic_seq) +
             " '" + got[i].value.substr(0, 40) + "'";
  return {};
}

// A raw shm peer: does the handshake itself, then writes whatever the test wants into its
// segment, including nonsense over the ring indices.
class RawShmPeer {
 public:
  explicit RawShmPeer(const std::string& shm_url) {
    fd_ = transport::connect_unix(shm_url.substr(6));
    if (fd_ < 0) return;
    transport::ShmHello hello;
    std::vector<int> fds;
    int n = transport::receive_with_fds(fd_, std::as_writable_bytes(std::span(&hello, 1)), fds, 10000);
    if (n != static_cast<int>(sizeof hello) || hello.refused || fds.size() < 3) return;
    for (std::size_t i = 1; i < fds.size(); ++i) ::close(fds[i]);
    segment_ = transport::SharedSegment::map(fds[0], true);
    auto rings = transport::open_session_segment(segment_.bytes());
    if (!rings) return;
    rings_ = *rings;
    to_broker_ = {rings_.to_broker, rings_.to_broker_data, rings_.to_broker_bytes};
    ready_ = true;
  }
  ~RawShmPeer() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool ready() const { return ready_; }
  void send(std::span<const std::byte> frame) {
    to_broker_.write(frame);
    to_broker_.publish();
  }
  // Opens an anonymous session as `name` and subscribes to `selector`; reads nothing back.
  void subscribe_without_reading(const std::string& name, std::string_view selector,
                                 std::uint32_t reconnect_timeout_ms = 0) {
    codec::FrameEncoder encoder;
    codec::ConnectMsg connect;
    connect.client_name = name;
    connect.reconnect_timeout_ms = reconnect_timeout_ms;
    send(encoder.connect(connect));
    send(encoder.subscribe(1, selector));
  }
  transport::SessionRings& rings() { return rings_; }
  // Reads (and drops) everything the broker has written so far; returns how many bytes.
  std::size_t drain() {
    transport::ShmRingReader reader(rings_.to_client, rings_.to_client_data, rings_.to_client_bytes);
    std::size_t total = 0;
    while (true) {
      auto bytes = reader.readable();
      if (bytes.empty()) return total;
      total += bytes.size();
      reader.consume(bytes.size());
    }
  }
  // True once the broker closed the socket.
  bool closed_by_broker(milliseconds timeout) {
    std::vector<int> fds;
    std::byte buffer[64];
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int n = transport::receive_with_fds(fd_, buffer, fds, 100);
      if (n == 0 || (n < 0 && n != -ETIMEDOUT)) return true;
    }
    return false;
  }

 private:
  int fd_ = -1;
  transport::SharedSegment segment_;
  transport::SessionRings rings_{};
  transport::ShmRingWriter to_broker_;
  bool ready_ = false;
};

// ---- data path ---------------------------------------------------------------------------

TEST(ShmPubSub, twenty_shm_subscribers_get_every_update_of_a_tcp_publisher_in_order) {
  constexpr std::uint64_t per_topic = 1000;
  constexpr int subscriber_count = 20;
  BrokerProcess broker(shm_broker(2));
  BROOK_ASSERT_STARTED(broker);
  std::vector<std::unique_ptr<UpdateLog>> logs;
  std::vector<std::unique_ptr<Client>> subscribers;
  for (int i = 0; i < subscriber_count; ++i) {
    logs.push_back(std::make_unique<UpdateLog>());
    subscribers.push_back(std::make_unique<Client>());
    ASSERT_TRUE(connect_client(*subscribers.back(), broker.shm_url(), "shm-sub"));
    ASSERT_TRUE(subscribe_and_wait(*subscribers.back(), "Shm/fan//", *logs.back()));
  }
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "tcp-pub"));
  // 64-byte values, deltas off: bodies of 16 bytes or less (a delta between these values)
  // go inline, a reference being no smaller.
  const std::string a = "a" + std::string(60, '.'), b = "b" + std::string(60, ',');
  TopicProperties whole_values;
  whole_values.deltas = false;
  ASSERT_TRUE(await(publisher.create_topic("Shm/fan/a", whole_values)));
  ASSERT_TRUE(await(publisher.create_topic("Shm/fan/b", whole_values)));
  for (std::uint64_t seq = 1; seq <= per_topic; ++seq) {
    publisher.publish("Shm/fan/a", value_of(a, seq));
    publisher.publish("Shm/fan/b", value_of(b, seq));
  }
  ASSERT_TRUE(round_trip(publisher));
  for (int i = 0; i < subscriber_count; ++i) {
    ASSERT_TRUE(logs[i]->wait_for(2 * per_topic, long_wait))
        << "subscriber " << i << " got " << logs[i]->size() << broker.log_tail();
    auto groups = logs[i]->by_path();
    EXPECT_EQ(in_order_from_one(groups["Shm/fan/a"], a, per_topic), "") << "subscriber " << i;
    EXPECT_EQ(in_order_from_one(groups["Shm/fan/b"], b, per_topic), "") << "subscriber " << i;
  }
  for (auto& s : subscribers) s->close();
  publisher.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("protocol_errors"), 0u) << broker.log();
  // Each update's value was written once per shard into its broadcast log, whatever the number
  // of subscribers there, and every subscriber got a reference to it.
  const std::uint64_t shared_updates = 2 * per_topic;
  EXPECT_EQ(broker.counter_total("shared_deliveries"), shared_updates * subscriber_count) << broker.log();
  for (auto [shard, bodies] : broker.shard_counter("shared_bodies"))
    EXPECT_EQ(bodies, shared_updates) << "shard " << shard << "\n" << broker.log();
}

TEST(ShmPubSub, shm_publisher_reaches_tcp_and_shm_subscribers_with_values_larger_than_its_rings) {
  constexpr std::uint64_t count = 20000;
  // Rings of 64 KiB: a 1 MiB value crosses each one in many pieces, both ways.
  BrokerProcess broker(shm_broker(2, "[shm]\nring_bytes = 65536\n"));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog tcp_log, shm_log;
  Client tcp_sub, shm_sub, publisher;
  ASSERT_TRUE(connect_client(tcp_sub, broker.url(), "tcp-sub"));
  ASSERT_TRUE(connect_client(shm_sub, broker.shm_url(), "shm-sub"));
  ASSERT_TRUE(subscribe_and_wait(tcp_sub, "Shm/up//", tcp_log));
  ASSERT_TRUE(subscribe_and_wait(shm_sub, "Shm/up//", shm_log));
  ASSERT_TRUE(connect_client(publisher, broker.shm_url(), "shm-pub"));
  for (std::uint64_t seq = 1; seq <= count; ++seq) publisher.publish("Shm/up/small", value_of("s", seq));
  std::string big(1 << 20, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 23);
  ASSERT_TRUE(await(publisher.publish_acked("Shm/up/big", bytes_of(big)), long_wait));
  for (UpdateLog* log : {&tcp_log, &shm_log}) {
    ASSERT_TRUE(log->wait_for(count + 1, long_wait)) << log->size() << broker.log_tail();
    auto groups = log->by_path();
    EXPECT_EQ(in_order_from_one(groups["Shm/up/small"], "s", count), "");
    ASSERT_EQ(groups["Shm/up/big"].size(), 1u);
    EXPECT_TRUE(groups["Shm/up/big"][0].value == big) << "the 1 MiB value arrived changed";
  }
  publisher.close();
  tcp_sub.close();
  shm_sub.close();
}

// Busy-polling everywhere (brookd --spin, ClientOptions::spin): on a two-core machine three
// spinning threads share the cores, so each yields when it finds nothing to do; every update
// still arrives, in order, paced and in bursts.
TEST(ShmPubSub, busy_polling_broker_and_clients_deliver_every_update_in_order) {
  constexpr std::uint64_t count = 5000;
  BrokerConfig config = shm_broker(1);
  config.extra_args = {"--spin"};
  BrokerProcess broker(config);
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client subscriber, publisher;
  ClientOptions options;
  options.url = broker.shm_url();
  options.spin = true;
  options.client_name = "spinning-sub";
  ASSERT_TRUE(subscriber.connect(options));
  ASSERT_TRUE(subscribe_and_wait(subscriber, "Spin/price", log));
  options.client_name = "spinning-pub";
  ASSERT_TRUE(publisher.connect(options));
  for (std::uint64_t seq = 1; seq <= count; ++seq) {
    if (seq % 100 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
    publisher.publish("Spin/price", value_of("p", seq));
  }
  ASSERT_TRUE(log.wait_for(count, long_wait)) << log.size() << broker.log_tail();
  EXPECT_EQ(in_order_from_one(log.entries(), "p", count), "");
  publisher.close();
  subscriber.close();
}

TEST(ShmPubSub, shm_subscriber_gets_deltas_and_rebuilds_every_value) {
  constexpr int count = 500;
  BrokerProcess broker(shm_broker(1));
  BROOK_ASSERT_STARTED(broker);
  std::atomic<int> deltas{0};
  UpdateLog log;
  Client subscriber, publisher;
  ASSERT_TRUE(connect_client(subscriber, broker.shm_url(), "shm-delta-sub"));
  auto verdict = std::make_shared<std::promise<Status>>();
  auto handler = log.handler();
  subscriber.subscribe(
      "Shm/odds",
      [&, handler](const Update& u) {
        if (u.encoding == UpdateEncoding::delta) ++deltas;
        handler(u);
      },
      [verdict](const Status& s) { verdict->set_value(s); });
  ASSERT_TRUE(await(verdict->get_future()));
  ASSERT_TRUE(connect_client(publisher, broker.shm_url(), "shm-delta-pub"));
  ASSERT_TRUE(await(publisher.create_topic("Shm/odds", TopicProperties{TopicType::json})));
  auto odds = [](int i) {
    return R"({"Home_Spread":"+11.5","Home_Odds":"+)" + std::to_string(100 + i) +
           R"(","Away_Spread":"-11.5","Away_Odds":"-140","Total":"48.5","Over":"-110","Under":"-110"})";
  };
  for (int i = 1; i <= count; ++i) publisher.publish("Shm/odds", odds(i));
  ASSERT_TRUE(log.wait_for(count, long_wait)) << log.size() << broker.log_tail();
  auto got = log.entries();
  for (int i = 0; i < count; ++i) ASSERT_EQ(got[i].value, odds(i + 1)) << "update " << i;
  EXPECT_GT(deltas.load(), count / 2) << "the odds should travel as deltas";
}

// Readers of 1 KiB values (deltas off) through a 64 KiB broadcast log, which must reclaim space
// again and again; with `stopped_reader`, a peer that subscribes and never reads pins what it
// was given, so that the log runs out of room and the bodies go inline instead.
void run_broadcast_log_readers(bool stopped_reader) {
  constexpr std::uint64_t count = 3000;
  constexpr int reader_count = 3;
  BrokerProcess broker(shm_broker(1, "[shm]\nring_bytes = 65536\nbroadcast_bytes = 65536\n"));
  BROOK_ASSERT_STARTED(broker);
  auto value = [](std::uint64_t seq) {
    std::string v = value_of("v", seq) + ":";
    while (v.size() < 1000) v += static_cast<char>('a' + (seq * 7 + v.size()) % 26);
    return v;
  };
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "tcp-pub"));
  TopicProperties properties;
  properties.deltas = false;
  ASSERT_TRUE(await(publisher.create_topic("Shm/pin", properties)));
  std::unique_ptr<RawShmPeer> stopped;
  if (stopped_reader) {
    stopped = std::make_unique<RawShmPeer>(broker.shm_url());
    ASSERT_TRUE(stopped->ready());
    stopped->subscribe_without_reading("stopped-reader", "Shm/pin");
  }
  std::vector<std::unique_ptr<UpdateLog>> logs;
  std::vector<std::unique_ptr<Client>> readers;
  for (int i = 0; i < reader_count; ++i) {
    logs.push_back(std::make_unique<UpdateLog>());
    readers.push_back(std::make_unique<Client>());
    ASSERT_TRUE(connect_client(*readers.back(), broker.shm_url(), "reader"));
    ASSERT_TRUE(subscribe_and_wait(*readers.back(), "Shm/pin", *logs.back()));
  }
  for (std::uint64_t seq = 1; seq <= count; ++seq) {
    publisher.publish("Shm/pin", value(seq));
    if (seq % 20 == 0) {
      ASSERT_TRUE(round_trip(publisher));  // paced: the readers keep up
    }
  }
  for (auto& log : logs) {
    ASSERT_TRUE(log->wait_for(count, long_wait)) << log->size() << broker.log_tail();
    auto got = log->entries();
    for (std::uint64_t i = 0; i < count; ++i) {
      ASSERT_TRUE(got[i].topic_seq == i + 1 && got[i].value == value(i + 1))
          << "update #" << i << " seq " << got[i].topic_seq << ": " << got[i].value.substr(0, 20);
    }
  }
  for (auto& r : readers) r->close();
  publisher.close();
  broker.stop();
  const std::uint64_t bodies = broker.counter_total("shared_bodies");
  const std::uint64_t references = broker.counter_total("shared_deliveries");
  if (stopped_reader) {
    // At most a log's worth (64 bodies) past the stopped reader's oldest pin.
    EXPECT_LT(bodies, 200u) << broker.log();
    EXPECT_LT(references, count * reader_count / 2) << broker.log();
  } else {
    // Over a thousand 1 KiB bodies through 64 KiB: the log went round at least fifteen times.
    // (How many go shared depends on how far behind the readers are on a busy machine: a body
    // pinned or reclaimed out of reach goes inline.)
    EXPECT_GT(bodies, 1000u) << "the log was not reused" << broker.log();
    EXPECT_GT(references, 1000u) << broker.log();
  }
}

TEST(ShmPubSub, broadcast_log_reclaims_its_space_again_and_again_and_every_value_is_exact) {
  run_broadcast_log_readers(/*stopped_reader=*/false);
}

TEST(ShmPubSub, a_reader_that_stops_pins_the_broadcast_log_and_the_others_get_inline_copies) {
  run_broadcast_log_readers(/*stopped_reader=*/true);
}

TEST(ShmPubSub, a_reader_closed_as_a_slow_consumer_gets_its_reason_once_it_reads_again) {
  // A 64 KiB ring, and a queue limit of 128 KiB: a reader that stops is closed as a slow
  // consumer with its ring full, so the reason waits for room; it reads, gets it, and the
  // broker lets the connection go.
  BrokerProcess broker(shm_broker(1, "[shm]\nring_bytes = 65536\n[limits]\nmax_frame_bytes = 65536\n"
                                     "[session]\nqueue_max_bytes = 131072\n"));
  BROOK_ASSERT_STARTED(broker);
  RawShmPeer stopped(broker.shm_url());
  ASSERT_TRUE(stopped.ready());
  stopped.subscribe_without_reading("stops-reading", "Shm/slow");
  UpdateLog log;
  Client reader, publisher;
  ASSERT_TRUE(connect_client(reader, broker.shm_url(), "keeps-reading"));
  ASSERT_TRUE(subscribe_and_wait(reader, "Shm/slow", log));
  ASSERT_TRUE(connect_client(publisher, broker.url(), "tcp-pub"));
  TopicProperties whole_values;
  whole_values.deltas = false;
  ASSERT_TRUE(await(publisher.create_topic("Shm/slow", whole_values)));
  const std::string filler(500, 'x');
  // 1.5 MB of updates, 144 KB of references: past the ring and the queue limit.
  constexpr std::uint64_t count = 3000;
  for (std::uint64_t seq = 1; seq <= count; ++seq) {
    publisher.publish("Shm/slow", value_of(filler, seq));
    // Paced by the reader that keeps reading, not only by the broker: on a busy machine its
    // thread can sleep through many of the publisher's round trips, and a reader 190 KB
    // behind (ring and queue) is a slow consumer by this broker's limits, rightly closed.
    if (seq % 50 == 0) {
      ASSERT_TRUE(round_trip(publisher));
      ASSERT_TRUE(log.wait_for(seq - 50, long_wait))
          << "the reader that keeps reading has " << log.size() << " of " << seq;
    }
  }
  ASSERT_TRUE(log.wait_for(count, long_wait)) << log.size() << broker.log_tail();
  std::this_thread::sleep_for(milliseconds(200));
  EXPECT_GT(stopped.drain(), 60000u) << "the stopped reader's ring was not full";
  EXPECT_TRUE(stopped.closed_by_broker(short_wait)) << broker.log_tail();
  EXPECT_TRUE(round_trip(reader));
  reader.close();
  publisher.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("slow_consumer_closes"), 1u) << broker.log();
}

// ---- sessions ----------------------------------------------------------------------------

// Two shards, shared memory, alice and bob known, anonymous sessions let in too.
BrokerConfig shm_auth_broker(const CredentialsFile& credentials) {
  BrokerConfig config = auth_broker(credentials, /*allow_anonymous=*/true, 2);
  config.shm = true;
  return config;
}

TEST(ShmSession, subscriber_killed_with_sigkill_is_detected_and_its_session_resumed_with_the_missed_updates) {
  constexpr std::uint64_t before = 50, total = 300;
  CredentialsFile credentials;
  BrokerProcess broker(shm_auth_broker(credentials));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "tcp-pub"));
  ASSERT_TRUE(await(publisher.publish_acked("Shm/kill", bytes_of(value_of("k", 1)))));

  std::string password_file = broker.directory() + "/alice.password";
  { std::ofstream(password_file) << alice_password << "\n"; }
  const std::vector<std::string> sub_args{
      "sub", "--url", broker.shm_url(), "--principal", "alice", "--password-file", password_file,
      "--session", "7", "--reconnect-timeout", "30", "--timeout", "60", "--count", "100000",
      "Shm/kill"};
  CliProcess first(sub_args);
  ASSERT_TRUE(first.wait_for([&](const std::string& out, const std::string&) {
    return contains(out, "Shm/kill\t1\t");
  }, long_wait)) << first.describe();
  for (std::uint64_t seq = 2; seq <= before; ++seq) publisher.publish("Shm/kill", value_of("k", seq));
  ASSERT_TRUE(first.wait_for([&](const std::string& out, const std::string&) {
    return contains(out, "Shm/kill\t" + std::to_string(before) + "\t");
  }, long_wait)) << first.describe();

  first.kill(SIGKILL);
  ExitStatus killed = first.wait_exit(short_wait);
  EXPECT_EQ(killed.signal, SIGKILL) << first.describe();
  for (std::uint64_t seq = before + 1; seq <= total; ++seq) publisher.publish("Shm/kill", value_of("k", seq));
  ASSERT_TRUE(round_trip(publisher));

  // A new client with the same session name and credentials takes the session over: the
  // updates published while the first was dead wait in the session's queue. Its handler is in
  // place before the broker replays anything (subscribe() before connect()).
  UpdateLog second_log;
  Client second;
  second.subscribe("Shm/kill", second_log.handler());
  ASSERT_TRUE(second.connect(login(broker.shm_url(), "alice", alice_password, 7)));
  EXPECT_EQ(second.session_id(), "alice/7");
  ASSERT_TRUE(second_log.wait_until(
      [&](const std::vector<Received>& e) { return !e.empty() && e.back().topic_seq >= total; },
      long_wait))
      << "the resumed session got " << second_log.size() << " updates" << broker.log_tail();
  auto got = second_log.entries();
  EXPECT_LE(got.front().topic_seq, before + 1) << "updates published while it was dead were lost";
  for (std::size_t i = 1; i < got.size(); ++i) {
    ASSERT_EQ(got[i].topic_seq, got[i - 1].topic_seq + 1) << "update #" << i;
    ASSERT_EQ(got[i].value, value_of("k", got[i].topic_seq));
  }
  second.close();
  publisher.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("sessions_resumed"), 1u) << broker.log();
}

TEST(ShmSession, a_brook_sub_taking_over_a_dead_ones_session_prints_what_the_session_kept) {
  constexpr std::uint64_t before = 20, total = 60;
  CredentialsFile credentials;
  BrokerProcess broker(shm_auth_broker(credentials));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "tcp-pub"));
  ASSERT_TRUE(await(publisher.publish_acked("Shm/cli-kill", bytes_of(value_of("c", 1)))));
  const std::string password_file = broker.directory() + "/alice.password";
  { std::ofstream(password_file) << alice_password << "\n"; }
  auto sub = [&](std::uint64_t count) {
    return std::vector<std::string>{"sub", "--url", broker.shm_url(), "--principal", "alice",
                                    "--password-file", password_file, "--session", "11",
                                    "--timeout", "20", "--count", std::to_string(count),
                                    "Shm/cli-kill"};
  };
  CliProcess first(sub(100000));
  ASSERT_TRUE(first.wait_for([](const std::string& out, const std::string&) {
    return contains(out, "Shm/cli-kill\t1\t");
  }, long_wait)) << first.describe();
  for (std::uint64_t seq = 2; seq <= before; ++seq) publisher.publish("Shm/cli-kill", value_of("c", seq));
  ASSERT_TRUE(first.wait_for([&](const std::string& out, const std::string&) {
    return contains(out, "Shm/cli-kill\t" + std::to_string(before) + "\t");
  }, long_wait)) << first.describe();
  first.kill(SIGKILL);
  first.wait_exit(short_wait);
  for (std::uint64_t seq = before + 1; seq <= total; ++seq) publisher.publish("Shm/cli-kill", value_of("c", seq));
  ASSERT_TRUE(round_trip(publisher));

  // A new process cannot know what the dead one printed: it gets everything the session
  // still keeps, from the first update on here, then carries on live.
  CliResult second = run_cli(sub(total));
  ASSERT_EQ(second.exit_code(), 0) << second.describe() << broker.log_tail();
  auto lines = lines_of(second.out);
  ASSERT_EQ(lines.size(), total);
  for (std::uint64_t seq = 1; seq <= total; ++seq)
    ASSERT_EQ(lines[seq - 1], "Shm/cli-kill\t" + std::to_string(seq) + "\t" + value_of("c", seq));
  publisher.close();
}

TEST(ShmSession, a_client_with_the_credentials_takes_over_a_session_whose_client_still_lives) {
  CredentialsFile credentials;
  BrokerProcess broker(shm_auth_broker(credentials));
  BROOK_ASSERT_STARTED(broker);
  Client publisher;
  ASSERT_TRUE(connect_client(publisher, broker.url(), "tcp-pub"));
  UpdateLog first_log, second_log;
  Client first, second;
  ClientOptions options = login(broker.shm_url(), "alice", alice_password, 9);
  options.reconnect_timeout = std::chrono::seconds(0);  // the first one does not fight back
  ASSERT_TRUE(first.connect(options));
  ASSERT_TRUE(subscribe_and_wait(first, "Shm/takeover", first_log));
  ASSERT_TRUE(await(publisher.publish_acked("Shm/takeover", bytes_of("one"))));
  ASSERT_TRUE(first_log.wait_for(1, short_wait));

  second.subscribe("Shm/takeover", second_log.handler());
  ASSERT_TRUE(second.connect(login(broker.shm_url(), "alice", alice_password, 9)));
  EXPECT_EQ(second.session_id(), "alice/9");
  ASSERT_TRUE(await(publisher.publish_acked("Shm/takeover", bytes_of("two"))));
  ASSERT_TRUE(second_log.wait_until(
      [](const std::vector<Received>& e) { return !e.empty() && e.back().value == "two"; }, long_wait))
      << second_log.size() << broker.log_tail();
  EXPECT_TRUE(eventually([&] { return first.state() == ClientState::closed; }, short_wait))
      << "the first client still holds the session";
  second.close();
  publisher.close();
}

TEST(ShmRequests, requests_cross_between_shm_and_tcp_both_ways) {
  constexpr int count = 300;
  BrokerProcess broker(shm_broker(2));
  BROOK_ASSERT_STARTED(broker);
  Client shm_side, tcp_side;
  ASSERT_TRUE(connect_client(shm_side, broker.shm_url(), "shm-side"));
  ASSERT_TRUE(connect_client(tcp_side, broker.url(), "tcp-side"));
  auto echo = [](const char* tag) {
    return [tag](const Request& r, Responder responder) {
      responder.respond(std::string(tag) + ":" + std::string(r.text()));
    };
  };
  ASSERT_TRUE(await(shm_side.add_request_handler("Shm/svc/on-shm", echo("shm"))));
  ASSERT_TRUE(await(tcp_side.add_request_handler("Shm/svc/on-tcp", echo("tcp"))));
  std::vector<std::future<Response>> from_tcp, from_shm;
  for (int i = 0; i < count; ++i) {
    from_tcp.push_back(tcp_side.send_request("Shm/svc/on-shm", std::to_string(i)));
    from_shm.push_back(shm_side.send_request("Shm/svc/on-tcp", std::to_string(i)));
  }
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(from_tcp[i].wait_for(short_wait), std::future_status::ready);
    ASSERT_EQ(from_shm[i].wait_for(short_wait), std::future_status::ready);
    Response a = from_tcp[i].get(), b = from_shm[i].get();
    ASSERT_TRUE(a.status) << a.status.message;
    ASSERT_TRUE(b.status) << b.status.message;
    EXPECT_EQ(a.text(), "shm:" + std::to_string(i));
    EXPECT_EQ(b.text(), "tcp:" + std::to_string(i));
  }
}

TEST(ShmRequests, handler_process_killed_with_sigkill_fails_its_request_at_once) {
  BrokerProcess broker(shm_broker(2));
  BROOK_ASSERT_STARTED(broker);
  // `brook reply --exec` holds the request while its command sleeps; the kill comes meanwhile.
  // Reconnection off: its session ends with its connection, which the kill closes.
  CliProcess handler({"reply", "--url", broker.shm_url(), "--reconnect-timeout", "0", "Shm/slow",
                      "--exec", "sleep 30"});
  ASSERT_TRUE(handler.wait_for([](const std::string&, const std::string& err) {
    return contains(err, "brook reply: handling ");
  }, long_wait)) << handler.describe();
  Client requester;
  ASSERT_TRUE(connect_client(requester, broker.url(), "tcp-requester"));
  auto answer = requester.send_request("Shm/slow", std::string_view("x"), std::chrono::seconds(30));
  std::this_thread::sleep_for(milliseconds(300));  // the request reaches the handler
  auto killed_at = std::chrono::steady_clock::now();
  handler.kill(SIGKILL);
  ASSERT_EQ(answer.wait_for(short_wait), std::future_status::ready)
      << "the broker did not notice the handler's death" << broker.log_tail();
  Response r = answer.get();
  EXPECT_EQ(r.status.code, ErrorCode::handler_gone) << r.status.message;
  EXPECT_LT(std::chrono::steady_clock::now() - killed_at, std::chrono::seconds(5))
      << "detected by a timeout, not by the socket closing";
  handler.wait_exit(short_wait);
}

// ---- access and isolation ---------------------------------------------------------------

TEST(ShmAccess, peer_whose_uid_is_not_allowed_is_refused_with_the_reason) {
  const std::string other_uid = std::to_string(::geteuid() + 4242);
  BrokerProcess broker(shm_broker(1, "[shm]\nallow_uids = [" + other_uid + "]\n"));
  BROOK_ASSERT_STARTED(broker);
  Client refused;
  Status status = connect_client_once(refused, broker.shm_url(), "not-allowed");
  EXPECT_FALSE(status);
  EXPECT_TRUE(contains(status.message, "not allowed")) << status.message;
  EXPECT_TRUE(contains(status.message, "uid " + std::to_string(::geteuid()))) << status.message;

  CliResult cli = run_cli({"sub", "--url", broker.shm_url(), "--timeout", "5", "Shm/x"});
  EXPECT_NE(cli.exit_code(), 0) << cli.describe();
  EXPECT_TRUE(contains(cli.err, "not allowed")) << cli.describe();

  // TCP clients are not concerned.
  UpdateLog log;
  Client sub, pub;
  ASSERT_TRUE(connect_client(sub, broker.url()));
  ASSERT_TRUE(subscribe_and_wait(sub, "Shm/x", log));
  ASSERT_TRUE(connect_client(pub, broker.url()));
  pub.publish("Shm/x", "still here");
  ASSERT_TRUE(log.wait_for(1, short_wait));
  sub.close();
  pub.close();
  broker.stop();
  EXPECT_EQ(broker.counter_total("connections_refused"), 2u) << broker.log();
}

TEST(ShmAccess, gid_in_the_allow_list_lets_a_peer_in) {
  BrokerProcess broker(
      shm_broker(1, "[shm]\nallow_uids = [" + std::to_string(::geteuid() + 4242) +
                        "]\nallow_gids = [" + std::to_string(::getegid()) + "]\n"));
  BROOK_ASSERT_STARTED(broker);
  Client client;
  ASSERT_TRUE(connect_client(client, broker.shm_url()));
  EXPECT_TRUE(round_trip(client));
}

TEST(ShmAccess, peers_that_scribble_over_their_ring_indices_are_cut_off_while_others_carry_on) {
  constexpr std::uint64_t count = 2000;
  BrokerProcess broker(shm_broker(2, "[shm]\nring_bytes = 65536\n"));
  BROOK_ASSERT_STARTED(broker);
  UpdateLog log;
  Client good_sub, publisher;
  ASSERT_TRUE(connect_client(good_sub, broker.shm_url(), "good-shm-sub"));
  ASSERT_TRUE(subscribe_and_wait(good_sub, "Shm/ok", log));
  ASSERT_TRUE(connect_client(publisher, broker.shm_url(), "good-shm-pub"));

  // One writes a tail far beyond anything the ring can hold.
  RawShmPeer runaway_tail(broker.shm_url());
  ASSERT_TRUE(runaway_tail.ready());
  runaway_tail.rings().to_broker->tail.store(1ull << 40, std::memory_order_release);

  // One connects properly, then moves its read position past what the broker wrote.
  RawShmPeer runaway_head(broker.shm_url());
  ASSERT_TRUE(runaway_head.ready());
  TopicProperties whole_values;
  whole_values.deltas = false;
  ASSERT_TRUE(await(publisher.create_topic("Shm/flood", whole_values)));
  runaway_head.subscribe_without_reading("scribbler", "Shm/flood", 1000);
  std::this_thread::sleep_for(milliseconds(200));
  runaway_head.rings().to_client->head.store(1ull << 50, std::memory_order_release);
  // The broker consults the read position once its own view of the ring says full: 3,000
  // references of 48 bytes fill the 64 KiB ring.
  const std::string flood(200, 'f');
  for (int i = 0; i < 3000; ++i) publisher.publish("Shm/flood", flood);

  for (std::uint64_t seq = 1; seq <= count; ++seq) {
    publisher.publish("Shm/ok", value_of("ok", seq));
    // A third one scribbles mid-stream, over its ring's data and indices at once.
    if (seq == count / 2) {
      RawShmPeer vandal(broker.shm_url());
      ASSERT_TRUE(vandal.ready());
      std::memset(vandal.rings().to_broker_data, 0xff, vandal.rings().to_broker_bytes);
      vandal.rings().to_broker->tail.store(64, std::memory_order_release);
      vandal.rings().to_broker->head.store(~0ull, std::memory_order_release);
      EXPECT_TRUE(vandal.closed_by_broker(short_wait)) << "the vandal was not cut off";
    }
  }
  EXPECT_TRUE(runaway_tail.closed_by_broker(short_wait)) << broker.log_tail();
  EXPECT_TRUE(runaway_head.closed_by_broker(short_wait)) << broker.log_tail();
  ASSERT_TRUE(log.wait_for(count, long_wait)) << log.size() << broker.log_tail();
  EXPECT_EQ(in_order_from_one(log.entries(), "ok", count), "");
  EXPECT_TRUE(round_trip(good_sub));
  good_sub.close();
  publisher.close();
  broker.stop();
  EXPECT_GE(broker.counter_total("protocol_errors"), 3u) << broker.log();
}

// ---- the CLI -------------------------------------------------------------------------------

TEST(ShmCli, ping_pub_sub_and_req_accept_shm_urls) {
  BrokerProcess broker(shm_broker(2));
  BROOK_ASSERT_STARTED(broker);
  CliResult ping = run_cli({"ping", "--url", broker.shm_url(), "--count", "3"});
  ASSERT_EQ(ping.exit_code(), 0) << ping.describe();
  EXPECT_TRUE(contains(ping.out, "3 round trips")) << ping.out;

  CliProcess sub({"sub", "--url", broker.shm_url(), "--count", "3", "--timeout", "20", "ShmCli/t"});
  std::this_thread::sleep_for(milliseconds(300));  // subscribed before the first publish
  CliResult pub = run_cli({"pub", "--url", broker.shm_url(), "ShmCli/t"}, "one\ntwo\nthree\n");
  ASSERT_EQ(pub.exit_code(), 0) << pub.describe();
  ExitStatus sub_status = sub.wait_exit(short_wait);
  ASSERT_TRUE(sub_status.clean()) << sub.describe();
  EXPECT_EQ(lines_of(sub.out()),
            (std::vector<std::string>{"ShmCli/t\t1\tone", "ShmCli/t\t2\ttwo", "ShmCli/t\t3\tthree"}));

  Client handler;
  ASSERT_TRUE(connect_client(handler, broker.url(), "tcp-handler"));
  ASSERT_TRUE(await(handler.add_request_handler(
      "ShmCli/svc", [](const Request& r, Responder responder) {
        responder.respond("got " + std::string(r.text()));
      })));
  CliResult req = run_cli({"req", "--url", broker.shm_url(), "ShmCli/svc", "hello"});
  ASSERT_EQ(req.exit_code(), 0) << req.describe();
  EXPECT_EQ(req.out, "got hello\n");

  CliResult refused = run_cli({"sub", "--url", "shm://" + broker.directory() + "/nothing.sock",
                               "--timeout", "2", "ShmCli/t"});
  EXPECT_NE(refused.exit_code(), 0);
  EXPECT_TRUE(contains(refused.err, "nothing.sock")) << refused.describe();
}

}  // namespace
}  // namespace brook::test
