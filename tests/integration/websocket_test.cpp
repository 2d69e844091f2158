// Integration: WebSocket on brookd (--ws, --wss). A session over a WebSocket is the same
// session as over TCP: it shares topics with TCP clients both ways, inside TLS as well. Every
// way a client can break RFC 6455 (unmasked frames, oversized frames, text, invalid UTF-8, a
// refused origin, a plain GET, an upgrade that never ends, garbage inside binary frames) is
// refused or closed with its code and counted, while a WebSocket subscriber and a TCP client
// carry on. The WebSocket client is RawConnection's, speaking Brook's frames by hand.
#include <gtest/gtest.h>

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>
#include <memory>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include "broker_process.hpp"
#include "brook/client/client.hpp"
#include "brook/codec/frame.hpp"
#include "brook/codec/messages.hpp"
#include "raw_connection.hpp"
#include "test_certificates.hpp"
#include "update_log.hpp"

namespace brook::test {
namespace {

constexpr auto wait_time = std::chrono::seconds(15);

std::vector<std::byte> publish_frame(std::string_view path, std::string_view value) {
  auto v = std::as_bytes(std::span(value.data(), value.size()));
  std::vector<std::byte> frame(codec::publish_frame_bytes(path.size(), v.size()));
  codec::write_publish(frame.data(), 0, path, std::nullopt, v);
  return frame;
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }

// Reads frames until an update whose value is `value` arrives; false on timeout or close.
bool read_update(RawConnection& raw, std::string_view value) {
  codec::FrameDecoder decoder;
  const auto deadline = std::chrono::steady_clock::now() + wait_time;
  while (std::chrono::steady_clock::now() < deadline) {
    auto frame = raw.read_frame(std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now()));
    if (!frame) return false;
    auto decoded = decoder.decode(*frame);
    if (!decoded.ok()) return false;
    if (auto* u = std::get_if<codec::UpdateMsg>(&decoded.message);
        u && std::string_view(reinterpret_cast<const char*>(u->value.data()), u->value.size()) == value)
      return true;
  }
  return false;
}

std::string last_value(const UpdateLog& log, const std::string& path) {
  const auto by_path = log.by_path();
  auto it = by_path.find(path);
  return it == by_path.end() || it->second.empty() ? std::string() : it->second.back().value;
}

class WebSocket : public ::testing::Test {
 protected:
  void TearDown() override {
    broker_.reset();
    if (!dir_.empty()) remove_temp_dir(dir_);
  }
  void start(const std::string& config_toml = "", bool wss = false) {
    BrokerConfig config = with_shards(2);
    config.ws = true;
    config.wss = wss;
    config.config_toml = config_toml + "[session]\nconnect_timeout_ms = 1000\n";
    broker_ = std::make_unique<BrokerProcess>(config);
  }
  // A WebSocket client that has said Connect and subscribed to `selector`.
  std::unique_ptr<RawConnection> subscriber(const std::string& selector, std::uint16_t port = 0) {
    auto raw = std::make_unique<RawConnection>(port ? port : broker_->ws_port());
    EXPECT_TRUE(raw->connected());
    EXPECT_EQ(raw->upgrade_to_websocket("/brook"), "HTTP/1.1 101 Switching Protocols");
    EXPECT_TRUE(raw->greet());
    codec::FrameEncoder encoder;
    EXPECT_TRUE(raw->send_bytes(encoder.subscribe(1, selector)));
    return raw;
  }
  std::string dir_;
  std::unique_ptr<BrokerProcess> broker_;
};

TEST_F(WebSocket, a_session_over_websocket_shares_topics_with_tcp_both_ways) {
  start();
  BROOK_ASSERT_STARTED(*broker_);
  auto browser = subscriber("Odds//");
  Client tcp;
  ASSERT_TRUE(connect_client_once(tcp, broker_->url(), "tcp"));
  UpdateLog log;
  ASSERT_TRUE(subscribe_and_wait(tcp, "Odds//", log));

  ASSERT_TRUE(tcp.publish_acked("Odds/kc-buf", bytes_of("1.91")).get());
  EXPECT_TRUE(read_update(*browser, "1.91")) << "TCP to WebSocket";
  ASSERT_TRUE(browser->send_bytes(publish_frame("Odds/det-gb", "2.05")));
  ASSERT_TRUE(log.wait_for(2, wait_time)) << "WebSocket to TCP";
  EXPECT_EQ(last_value(log, "Odds/det-gb"), "2.05");
  // Many frames in one message and one frame over many messages: the payloads are a stream.
  std::vector<std::byte> two = publish_frame("Odds/a", "1"), second = publish_frame("Odds/b", "2");
  two.insert(two.end(), second.begin(), second.end());
  ASSERT_TRUE(browser->send_bytes(two));
  const auto split = publish_frame("Odds/c", "3");
  for (std::size_t at = 0; at < split.size(); at += 5)
    ASSERT_TRUE(browser->send_bytes(std::span(split).subspan(at, std::min<std::size_t>(5, split.size() - at))));
  ASSERT_TRUE(log.wait_for(5, wait_time));
  EXPECT_EQ(last_value(log, "Odds/c"), "3");
  broker_->stop();
  EXPECT_GE(broker_->counter_total("ws_upgrades"), 1u);
  EXPECT_EQ(broker_->counter_total("ws_failures"), 0u) << broker_->log_tail();
}

TEST_F(WebSocket, wss_carries_the_same_session_inside_tls) {
  dir_ = make_temp_dir("wss");
  TestCertificates pki(dir_, "brook");
  auto server = pki.issue("server", "localhost");
  start("[tls]\ncert_file = \"" + server.cert_file + "\"\nkey_file = \"" + server.key_file + "\"\n", true);
  BROOK_ASSERT_STARTED(*broker_);
  RawConnection browser(broker_->wss_port());
  ASSERT_TRUE(browser.start_tls(pki.ca_file()));
  ASSERT_EQ(browser.upgrade_to_websocket("/brook"), "HTTP/1.1 101 Switching Protocols");
  ASSERT_TRUE(browser.greet());
  codec::FrameEncoder encoder;
  ASSERT_TRUE(browser.send_bytes(encoder.subscribe(1, "Odds//")));
  Client tcp;
  ASSERT_TRUE(connect_client_once(tcp, broker_->url(), "tcp"));
  // Until the subscription is in place the publish may come first: publish until one arrives.
  bool arrived = false;
  for (int i = 0; i < 20 && !arrived; ++i) {
    ASSERT_TRUE(tcp.publish_acked("Odds/kc-buf", bytes_of("1.91")).get());
    arrived = read_update(browser, "1.91");
  }
  EXPECT_TRUE(arrived);
  broker_->stop();
  EXPECT_GE(broker_->counter_total("tls_handshakes"), 1u);
  EXPECT_GE(broker_->counter_total("ws_upgrades"), 1u);
}

TEST_F(WebSocket, every_protocol_break_is_refused_or_closed_with_its_code_and_nobody_else_notices) {
  start("[ws]\nallowed_origins = [\"https://odds.example\"]\n[limits]\nmax_frame_bytes = 1024\n");
  BROOK_ASSERT_STARTED(*broker_);
  auto browser = subscriber("Odds//");
  Client tcp;
  ASSERT_TRUE(connect_client_once(tcp, broker_->url(), "tcp"));

  // Refused upgrades: the HTTP status, then the end of the connection.
  {
    RawConnection plain_get(broker_->ws_port());
    EXPECT_EQ(plain_get.http_request("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), "HTTP/1.1 426 Upgrade Required");
    EXPECT_TRUE(plain_get.wait_for_close(std::chrono::seconds(5)));
    RawConnection stranger(broker_->ws_port());
    EXPECT_EQ(stranger.upgrade_to_websocket("/brook", "https://evil.example"), "HTTP/1.1 403 Forbidden");
    EXPECT_TRUE(stranger.wait_for_close(std::chrono::seconds(5)));
    RawConnection friendly(broker_->ws_port());
    EXPECT_EQ(friendly.upgrade_to_websocket("/brook", "https://odds.example"), "HTTP/1.1 101 Switching Protocols");
  }
  struct Break {
    const char* what;
    std::uint8_t first_byte;
    std::string payload;
    bool masked;
    std::uint16_t code;
  };
  const std::vector<Break> breaks = {
      {"unmasked frame", 0x82, "x", false, 1002},
      {"text", 0x81, "hello", true, 1003},
      {"invalid UTF-8 text", 0x81, "ab\xc0\xaf", true, 1007},
      {"fragmented ping", 0x09, "x", true, 1002},
      {"reserved bits", 0xf2, "x", true, 1002},
  };
  for (const Break& b : breaks) {
    RawConnection raw(broker_->ws_port());
    ASSERT_EQ(raw.upgrade_to_websocket(), "HTTP/1.1 101 Switching Protocols") << b.what;
    raw.send_websocket_frame(b.first_byte, bytes_of(b.payload), b.masked);
    EXPECT_TRUE(raw.wait_for_close(std::chrono::seconds(5))) << b.what;
    EXPECT_EQ(raw.websocket_close_code(), b.code) << b.what;
  }
  {
    // A frame longer than the limit (limits.max_frame_bytes + 64 KiB): closed on its header.
    RawConnection raw(broker_->ws_port());
    ASSERT_EQ(raw.upgrade_to_websocket(), "HTTP/1.1 101 Switching Protocols");
    const std::byte header[] = {std::byte{0x82}, std::byte{0xff}, std::byte{0}, std::byte{0}, std::byte{0},
                                std::byte{0},    std::byte{0},    std::byte{0x10}, std::byte{0}, std::byte{0},
                                std::byte{1},    std::byte{2},    std::byte{3}, std::byte{4}};
    raw.send_raw(header);
    EXPECT_TRUE(raw.wait_for_close(std::chrono::seconds(5)));
    EXPECT_EQ(raw.websocket_close_code(), 1009);
  }
  {
    // Garbage inside well-formed binary frames is Brook's protocol error: its Error frame,
    // then a close frame.
    RawConnection raw(broker_->ws_port());
    ASSERT_EQ(raw.upgrade_to_websocket(), "HTTP/1.1 101 Switching Protocols");
    ASSERT_TRUE(raw.greet());
    std::vector<std::byte> garbage(64, std::byte{0xee});
    raw.send_bytes(garbage);
    EXPECT_TRUE(raw.read_until_error(std::chrono::seconds(5)).has_value());
    EXPECT_TRUE(raw.wait_for_close(std::chrono::seconds(5)));
    EXPECT_EQ(raw.websocket_close_code(), 1000);
  }
  {
    // An upgrade that never ends meets the connect timeout.
    RawConnection stalled(broker_->ws_port());
    stalled.send_raw(bytes_of("GET /brook HTTP/1.1\r\nHost: x\r\n"));
    EXPECT_TRUE(stalled.wait_for_close(std::chrono::seconds(10)));
  }

  ASSERT_TRUE(tcp.publish_acked("Odds/kc-buf", bytes_of("1.91")).get());
  EXPECT_TRUE(read_update(*browser, "1.91")) << "the well-behaved browser carries on";
  broker_->stop();
  EXPECT_GE(broker_->counter_total("ws_failures"), breaks.size() + 3) << broker_->log_tail();
}

TEST_F(WebSocket, the_port_serves_ws_static_dir_to_a_plain_get_and_reloads_it_on_sighup) {
  dir_ = make_temp_dir("ws-static");
  std::filesystem::create_directories(dir_ + "/page/js");
  std::ofstream(dir_ + "/page/index.html") << "<h1>odds</h1>";
  std::ofstream(dir_ + "/page/js/page.js") << "console.log(1)";
  std::ofstream(dir_ + "/secret.txt") << "not served";
  start("[ws]\nstatic_dir = \"" + dir_ + "/page\"\n");
  BROOK_ASSERT_STARTED(*broker_);
  auto get = [&](const std::string& path) {
    RawConnection raw(broker_->ws_port());
    return raw.http_request("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n");
  };
  EXPECT_EQ(get("/"), "HTTP/1.1 200 OK");
  EXPECT_EQ(get("/js/page.js"), "HTTP/1.1 200 OK");
  EXPECT_EQ(get("/../secret.txt"), "HTTP/1.1 404 Not Found");
  EXPECT_EQ(get("/new.js"), "HTTP/1.1 404 Not Found");
  std::ofstream(dir_ + "/page/new.js") << "console.log(2)";
  ::kill(broker_->pid(), SIGHUP);
  bool reloaded = false;
  for (int i = 0; i < 100 && !reloaded; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    reloaded = get("/new.js") == "HTTP/1.1 200 OK";
  }
  EXPECT_TRUE(reloaded);
  auto browser = subscriber("Odds//");  // the same port still upgrades
  broker_->stop();
  EXPECT_EQ(broker_->counter_total("ws_failures"), 2u) << "the two 404s";
}

TEST_F(WebSocket, a_flood_of_connections_and_random_frames_leaves_the_others_whole) {
  start();
  BROOK_ASSERT_STARTED(*broker_);
  auto browser = subscriber("Odds//");
  Client tcp;
  ASSERT_TRUE(connect_client_once(tcp, broker_->url(), "tcp"));
  std::mt19937 random(20261205);
  constexpr int connections = 100;
  std::vector<std::unique_ptr<RawConnection>> flood;
  for (int i = 0; i < connections; ++i) {
    flood.push_back(std::make_unique<RawConnection>(broker_->ws_port()));
    RawConnection& raw = *flood.back();
    ASSERT_TRUE(raw.connected());
    if (i % 3 == 0) continue;  // connects and says nothing
    if (raw.upgrade_to_websocket() != "HTTP/1.1 101 Switching Protocols") continue;
    if (i % 3 == 1) raw.greet();
    // Random Brook "frames" in random binary frames (a valid Brook header half the time).
    std::vector<std::byte> bytes(1 + random() % 2048);
    for (auto& b : bytes) b = static_cast<std::byte>(random());
    if (i % 2 == 0 && bytes.size() >= codec::frame_header_bytes)
      codec::write_frame_header(bytes.data(), static_cast<std::uint32_t>(bytes.size()),
                                static_cast<codec::FrameKind>(random() % 40));
    raw.send_bytes(bytes);
  }
  for (int i = 0; i < connections; ++i)
    EXPECT_TRUE(flood[static_cast<std::size_t>(i)]->wait_for_close(std::chrono::seconds(10))) << "connection " << i;
  ASSERT_TRUE(tcp.publish_acked("Odds/kc-buf", bytes_of("1.91")).get());
  EXPECT_TRUE(read_update(*browser, "1.91"));
  EXPECT_TRUE(tcp.is_connected());
}

}  // namespace
}  // namespace brook::test
