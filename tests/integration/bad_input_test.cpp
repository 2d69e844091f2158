// Fault tests: hostile or broken bytes on one connection. Each time, the offending connection
// gets an Error frame (where it can still be read) and is closed, while a subscriber on the
// same broker keeps receiving every update of a concurrent publisher, and the broker exits
// cleanly at the end. The bad connections speak raw TCP (RawConnection); the steady pair
// uses brook::Client. Run these alone with `ctest -R Fault`.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <initializer_list>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "raw_connection.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

constexpr auto long_wait = std::chrono::seconds(90);
constexpr auto short_wait = std::chrono::seconds(10);

std::vector<std::byte> bytes(std::string_view text) {
  auto b = std::as_bytes(std::span(text.data(), text.size()));
  return {b.begin(), b.end()};
}

std::vector<std::byte> header(std::uint32_t size, std::uint16_t kind) {
  std::vector<std::byte> h(codec::frame_header_bytes);
  codec::write_frame_header(h.data(), size, static_cast<codec::FrameKind>(kind));
  return h;
}

std::vector<std::byte> publish_frame(std::string_view path, std::string_view value) {
  auto v = std::as_bytes(std::span(value.data(), value.size()));
  std::vector<std::byte> frame(codec::publish_frame_bytes(path.size(), v.size()));
  codec::write_publish(frame.data(), 0, path, std::nullopt, v);
  return frame;
}

std::vector<std::byte> copy(std::span<const std::byte> frame) {
  return {frame.begin(), frame.end()};
}

// A broker with two shards, a subscriber (shard 0) and a publisher (shard 1) that streams
// numbered updates of one topic until told to stop. finish() checks that the subscriber got
// every one of them, in order, and that the broker stops cleanly.
class FaultBadInput : public ::testing::Test {
 protected:
  static constexpr std::size_t max_updates = 30'000;  // bounds the publisher
  static constexpr std::size_t batch = 100;           // one acknowledged publish per batch

  void SetUp() override {
    broker_ = std::make_unique<BrokerProcess>(2);
    BROOK_ASSERT_STARTED(*broker_);
    ASSERT_TRUE(connect_client(subscriber_, broker_->url(), "steady-subscriber"));
    ASSERT_TRUE(connect_client(publisher_, broker_->url(), "steady-publisher"));
    ASSERT_TRUE(subscribe_and_wait(subscriber_, "Steady/t", log_));
    publishing_ = std::thread([this] { publish_until_stopped(); });
    // The stream is flowing before any fault is injected.
    ASSERT_TRUE(log_.wait_for(batch, long_wait)) << "received " << log_.size();
  }

  void TearDown() override {
    stop_.store(true);
    stop_.notify_all();
    if (publishing_.joinable()) publishing_.join();
  }

  // Runs on publishing_: numbered updates until stop_, then the acknowledged "end". The end
  // comes from this thread too, so that it follows every other update whatever the client
  // does with calls from different threads.
  void publish_until_stopped() {
    for (std::size_t i = 0; i < max_updates && !stop_.load(); ++i) {
      std::string value = "s" + std::to_string(i);
      if ((i + 1) % batch != 0) {
        publisher_.publish("Steady/t", value);
        continue;
      }
      // Pace the publisher to the broker: wait for every batch's last publish to be acked.
      Status s = await(publisher_.publish_acked("Steady/t", bytes_of(value)), long_wait);
      if (!s) {
        publisher_failure_ = s.message;
        break;
      }
    }
    publisher_done_.store(true);
    log_.poke();        // finish() may be waiting for more updates that will not come
    stop_.wait(false);  // finish() says when
    Status s = await(publisher_.publish_acked("Steady/t", bytes_of("end")), long_wait);
    if (!s && publisher_failure_.empty()) publisher_failure_ = "end: " + s.message;
  }

  // A fresh raw connection: Connected, and optionally subscribed to the steady topic so that
  // it is mid-stream when it misbehaves.
  std::unique_ptr<RawConnection> raw(bool greet, bool subscribe = false) {
    auto c = std::make_unique<RawConnection>(broker_->port());
    EXPECT_TRUE(c->connected());
    if (greet) {
      EXPECT_TRUE(c->greet()) << "no Connected frame";
    }
    if (subscribe) {
      codec::FrameEncoder encoder;
      EXPECT_TRUE(c->send_bytes(encoder.subscribe(1, "Steady//")));
    }
    return c;
  }

  // The connection gets an Error frame with one of `codes`, then the broker closes it.
  void expect_refused_and_closed(RawConnection& c, std::initializer_list<codec::ErrorCode> codes,
                                 std::string_view what, std::string_view message_part = {}) {
    auto error = c.read_until_error(long_wait);
    ASSERT_TRUE(error.has_value()) << what << ": no Error frame before the stream ended";
    bool expected = false;
    for (auto code : codes) expected |= error->code == code;
    EXPECT_TRUE(expected) << what << ": error code " << codec::to_string(error->code) << " ("
                          << error->message << ")";
    EXPECT_EQ(error->request_id, 0u) << what;
    if (!message_part.empty()) {
      EXPECT_NE(error->message.find(message_part), std::string::npos)
          << what << ": message '" << error->message << "' lacks '" << message_part << "'";
    }
    EXPECT_TRUE(c.wait_for_close(short_wait)) << what << ": the broker kept the connection open";
    ++refused_connections_;
  }

  // Lets the steady stream run on after the fault, then checks every update arrived in order
  // and that the broker counted one protocol error per refused connection.
  void finish() {
    std::size_t after_fault = log_.size() + batch;
    log_.wait_until(
        [&](const std::vector<Received>& e) {
          return e.size() >= after_fault || publisher_done_.load();
        },
        long_wait);
    stop_.store(true);
    stop_.notify_all();
    publishing_.join();
    ASSERT_EQ(publisher_failure_, "");
    if (!log_.wait_until(
            [](const std::vector<Received>& e) { return !e.empty() && e.back().value == "end"; },
            long_wait)) {
      auto got = log_.entries();
      std::string last = got.empty() ? "none"
                                     : "seq " + std::to_string(got.back().topic_seq) + " '" +
                                           got.back().value + "'";
      bool connected = subscriber_.is_connected();
      broker_->stop();  // its counters help to tell where the updates stopped
      FAIL() << "the steady subscriber received " << got.size()
             << " updates and not the acknowledged last one; its last: " << last
             << (connected ? "; still connected" : "; disconnected") << "\n--- brookd ---\n"
             << broker_->log();
    }

    auto got = log_.entries();
    RecordProperty("steady_updates", static_cast<int>(got.size()));
    for (std::size_t i = 0; i + 1 < got.size(); ++i) {
      if (got[i].topic_seq != i + 1 || got[i].value != "s" + std::to_string(i)) {
        ADD_FAILURE() << "steady update #" << i << " is seq " << got[i].topic_seq << " value '"
                      << got[i].value << "'";
        break;
      }
    }
    EXPECT_EQ(got.back().topic_seq, got.size());
    EXPECT_TRUE(subscriber_.is_connected());

    subscriber_.close();
    publisher_.close();
    broker_->stop();
    std::uint64_t protocol_errors = 0;
    for (auto [shard, n] : broker_->shard_counter("protocol_errors")) protocol_errors += n;
    EXPECT_EQ(protocol_errors, refused_connections_) << broker_->log();
  }

  std::unique_ptr<BrokerProcess> broker_;
  UpdateLog log_;
  Client subscriber_, publisher_;
  std::thread publishing_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> publisher_done_{false};
  std::string publisher_failure_;
  std::uint64_t refused_connections_ = 0;
};

// Each fault runs twice, on consecutive connections: accept order spreads them over both
// shards, so the shard of the steady subscriber and the other one each see it.
constexpr int connections_per_fault = 2;

TEST_F(FaultBadInput, garbage_bytes_mid_stream_get_an_error_frame_and_a_close) {
  for (int i = 0; i < connections_per_fault; ++i) {
    auto c = raw(/*greet=*/true, /*subscribe=*/true);
    ASSERT_TRUE(c->read_frame(long_wait).has_value());  // some of the stream arrives
    ASSERT_TRUE(c->send_bytes(bytes("GET / HTTP/1.1\r\nHost: brook\r\n\r\n")));
    expect_refused_and_closed(*c, {codec::ErrorCode::malformed_frame}, "garbage after connect");
  }
  finish();
}

TEST_F(FaultBadInput, garbage_bytes_before_connect_get_an_error_frame_and_a_close) {
  for (int i = 0; i < connections_per_fault; ++i) {
    auto c = raw(/*greet=*/false);
    std::vector<std::byte> noise(4096);
    std::uint64_t x = 0x9e3779b97f4a7c15ull * static_cast<std::uint64_t>(i + 1);
    for (auto& b : noise) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      b = static_cast<std::byte>(x);
    }
    // A header that no frame has: size below the minimum.
    codec::store_le<std::uint32_t>(noise.data(), 3);
    ASSERT_TRUE(c->send_bytes(noise));
    expect_refused_and_closed(*c, {codec::ErrorCode::malformed_frame}, "garbage before connect");
  }
  finish();
}

TEST_F(FaultBadInput, truncated_frame_followed_by_close_is_dropped_without_harm) {
  for (int i = 0; i < connections_per_fault; ++i) {
    auto c = raw(/*greet=*/true, /*subscribe=*/true);
    auto frame = publish_frame("Truncated/x", std::string(200, 'x'));
    ASSERT_TRUE(c->send_bytes(std::span(frame).first(frame.size() / 2)));
    c->shutdown_write();
    EXPECT_TRUE(c->wait_for_close(long_wait)) << "the broker did not close after EOF";
  }
  // Half a publish is no publish: the topic does not exist.
  UpdateLog probe;
  Client prober;
  ASSERT_TRUE(connect_client(prober, broker_->url(), "prober"));
  ASSERT_TRUE(subscribe_and_wait(prober, "Truncated//", probe));
  EXPECT_EQ(probe.size(), 0u);
  prober.close();
  finish();
}

TEST_F(FaultBadInput, frame_header_announcing_more_than_the_limit_gets_frame_too_large) {
  const std::uint32_t sizes[] = {codec::default_max_frame_bytes + 1, 0xffffffffu};
  for (std::uint32_t size : sizes) {
    for (int i = 0; i < connections_per_fault; ++i) {
      auto c = raw(/*greet=*/true);
      auto h = header(size, static_cast<std::uint16_t>(codec::FrameKind::publish));
      ASSERT_TRUE(c->send_bytes(h));
      expect_refused_and_closed(*c, {codec::ErrorCode::frame_too_large},
                                "header of " + std::to_string(size) + " bytes",
                                "exceeds the limit");
    }
  }
  finish();
}

TEST_F(FaultBadInput, unknown_frame_kind_gets_an_error_frame_and_a_close) {
  for (std::uint16_t kind : {std::uint16_t{0}, std::uint16_t{5}, std::uint16_t{0xffff}}) {
    for (int i = 0; i < connections_per_fault; ++i) {
      auto c = raw(/*greet=*/true);
      auto frame = header(16, kind);
      frame.resize(16);
      ASSERT_TRUE(c->send_bytes(frame));
      expect_refused_and_closed(
          *c, {codec::ErrorCode::unknown_frame, codec::ErrorCode::malformed_frame},
          "frame kind " + std::to_string(kind));
    }
  }
  finish();
}

TEST_F(FaultBadInput, frame_kind_a_client_may_not_send_gets_unknown_frame) {
  for (int i = 0; i < connections_per_fault; ++i) {
    auto c = raw(/*greet=*/true);
    // An update frame travels broker -> client only.
    std::vector<std::byte> update(codec::update_head_bytes + 4);
    codec::write_update_head(update.data(), 4, 1, 1, 1);
    ASSERT_TRUE(c->send_bytes(update));
    expect_refused_and_closed(*c, {codec::ErrorCode::unknown_frame}, "update frame from a client");

    // So do Connected and TopicAdd control frames.
    codec::FrameEncoder encoder;
    auto c2 = raw(/*greet=*/true);
    ASSERT_TRUE(c2->send_bytes(encoder.topic_add(1, "Steady/t", TopicType::string)));
    expect_refused_and_closed(*c2, {codec::ErrorCode::unknown_frame}, "topic_add from a client");
  }
  finish();
}

TEST_F(FaultBadInput, control_frame_that_fails_verification_gets_malformed_frame) {
  codec::FrameEncoder encoder;
  std::vector<std::vector<std::byte>> bad;
  // Random body.
  {
    auto f = header(8 + 64, 1);
    for (int i = 0; i < 64; ++i) f.push_back(static_cast<std::byte>(i * 37 + 11));
    bad.push_back(f);
  }
  // A valid subscribe whose root offset points past the end.
  {
    auto f = copy(encoder.subscribe(9, "Steady/t"));
    codec::store_le<std::uint32_t>(f.data() + 8, 0x7fff0000u);
    bad.push_back(f);
  }
  // A valid subscribe with the wrong file identifier.
  {
    auto f = copy(encoder.subscribe(9, "Steady/t"));
    std::memcpy(f.data() + 12, "XXXX", 4);
    bad.push_back(f);
  }
  // A valid subscribe with every string length byte set high (the selector runs off the end).
  {
    auto f = copy(encoder.subscribe(9, "Steady/t"));
    auto text = std::as_bytes(std::span("Steady/t", 8));
    auto at = std::search(f.begin(), f.end(), text.begin(), text.end());
    ASSERT_NE(at, f.end());
    codec::store_le<std::uint32_t>(&*(at - 4), 0x00ffffffu);
    bad.push_back(f);
  }
  // Only a header: an empty body.
  bad.push_back(header(8, 1));

  for (std::size_t b = 0; b < bad.size(); ++b) {
    for (int i = 0; i < connections_per_fault; ++i) {
      auto c = raw(/*greet=*/true, /*subscribe=*/b == 0);
      ASSERT_TRUE(c->send_bytes(bad[b]));
      expect_refused_and_closed(*c, {codec::ErrorCode::malformed_frame},
                                "unverifiable control frame #" + std::to_string(b));
    }
  }
  finish();
}

// A Message whose union names a body type but carries no body. FlatBuffers' Verifier accepts
// that (an absent union value verifies as a null table), so the decoder must check it itself.
std::vector<std::byte> control_frame_naming_a_missing_body() {
  codec::FrameEncoder encoder;
  auto f = copy(encoder.ack(5));  // Message{body_type: Ack, body: Ack{request_id: 5}}
  const std::size_t body = codec::frame_header_bytes;
  std::size_t table = body + codec::load_le<std::uint32_t>(f.data() + body);
  std::size_t vtable =
      table - static_cast<std::size_t>(codec::load_le<std::int32_t>(f.data() + table));
  // Message's vtable: size, table size, then one entry per field: body_type (0), body (1).
  // Ack's own vtable is shorter (one field), so this one is not shared with it.
  EXPECT_EQ(codec::load_le<std::uint16_t>(f.data() + vtable), 8u) << "unexpected Message layout";
  codec::store_le<std::uint16_t>(f.data() + vtable + 6, 0);  // the body field is now absent
  return f;
}

TEST_F(FaultBadInput, control_frame_naming_a_body_it_does_not_carry_gets_malformed_frame) {
  auto bad = control_frame_naming_a_missing_body();
  for (int i = 0; i < connections_per_fault; ++i) {
    auto c = raw(/*greet=*/true);
    ASSERT_TRUE(c->send_bytes(bad));
    expect_refused_and_closed(*c, {codec::ErrorCode::malformed_frame},
                              "control frame without its body");
  }
  finish();
}

TEST_F(FaultBadInput, publish_before_connect_gets_not_connected_and_publishes_nothing) {
  for (int i = 0; i < connections_per_fault; ++i) {
    auto c = raw(/*greet=*/false);
    ASSERT_TRUE(c->send_bytes(publish_frame("Early/publish", "sneaky")));
    expect_refused_and_closed(*c, {codec::ErrorCode::not_connected}, "publish before connect",
                              "connect");
  }
  UpdateLog probe;
  Client prober;
  ASSERT_TRUE(connect_client(prober, broker_->url(), "prober"));
  ASSERT_TRUE(subscribe_and_wait(prober, "Early//", probe));
  EXPECT_EQ(probe.size(), 0u) << "a publish before connect created a topic";
  prober.close();
  finish();
}

TEST_F(FaultBadInput, second_connect_gets_an_error_frame_and_a_close) {
  codec::FrameEncoder encoder;
  for (int i = 0; i < connections_per_fault; ++i) {
    auto c = raw(/*greet=*/true);
    ASSERT_TRUE(c->send_bytes(encoder.connect("again", "", {})));
    expect_refused_and_closed(*c, {codec::ErrorCode::unknown_frame}, "second connect");
  }
  finish();
}

TEST_F(FaultBadInput, client_speaking_another_wire_version_is_refused_naming_both_versions) {
  codec::FrameEncoder encoder;
  for (std::uint16_t version : {std::uint16_t(0), std::uint16_t(wire_version + 1)}) {
    auto c = raw(/*greet=*/false);
    ASSERT_TRUE(c->send_bytes(encoder.connect(codec::ConnectMsg{.protocol_version = version,
                                                                .client_name = "from-the-future"})));
    expect_refused_and_closed(*c, {codec::ErrorCode::protocol_version}, "another wire version",
                              "protocol version " + std::to_string(version) +
                                  " is not supported (broker speaks " + std::to_string(wire_version));
  }
  finish();
}

}  // namespace
}  // namespace brook::test
