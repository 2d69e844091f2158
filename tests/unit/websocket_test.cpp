// transport::WebSocketServer: the upgrade (RFC 6455's own example key, refusals with the
// right HTTP status, the Origin allow-list), frames in any split (masking, lengths of every
// encoding, fragmentation with control frames between the fragments), and every way a client
// can break the protocol, each closed with its code.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "brook/transport/websocket.hpp"

namespace brook::transport {
namespace {

std::span<const std::byte> as_bytes(std::string_view s) { return std::as_bytes(std::span(s.data(), s.size())); }
std::string as_text(std::span<const std::byte> b) { return std::string(reinterpret_cast<const char*>(b.data()), b.size()); }

std::string upgrade_request(std::string_view extra = {}, std::string_view key = "dGhlIHNhbXBsZSBub25jZQ==") {
  return "GET /brook HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
         "Sec-WebSocket-Key: " + std::string(key) + "\r\nSec-WebSocket-Version: 13\r\n" + std::string(extra) + "\r\n";
}

// A client frame: masked with a fixed key, the length in its shortest encoding unless `wide`.
std::vector<std::byte> client_frame(std::uint8_t first_byte, std::span<const std::byte> payload, bool masked = true) {
  std::vector<std::byte> f{std::byte{first_byte}};
  const std::uint8_t mask_bit = masked ? 0x80 : 0;
  const std::size_t n = payload.size();
  if (n < 126) {
    f.push_back(std::byte(mask_bit | n));
  } else if (n <= 0xffff) {
    f.push_back(std::byte(mask_bit | 126));
    f.push_back(std::byte(n >> 8));
    f.push_back(std::byte(n & 0xff));
  } else {
    f.push_back(std::byte(mask_bit | 127));
    for (int k = 7; k >= 0; --k) f.push_back(std::byte((static_cast<std::uint64_t>(n) >> (8 * k)) & 0xff));
  }
  const std::byte key[4] = {std::byte{0x37}, std::byte{0xfa}, std::byte{0x21}, std::byte{0x3d}};
  if (masked) f.insert(f.end(), key, key + 4);
  for (std::size_t i = 0; i < n; ++i) f.push_back(masked ? payload[i] ^ key[i % 4] : payload[i]);
  return f;
}
std::vector<std::byte> binary(std::string_view s, bool fin = true) { return client_frame(fin ? 0x82 : 0x02, as_bytes(s)); }

class WebSocketCodec : public ::testing::Test {
 protected:
  explicit WebSocketCodec() { options_ = std::make_shared<WebSocketOptions>(); }
  std::unique_ptr<WebSocketServer> open(std::string_view extra = {}) {
    auto ws = std::make_unique<WebSocketServer>(options_);
    std::vector<std::byte> stream;
    EXPECT_TRUE(ws->receive(as_bytes(upgrade_request(extra)), stream));
    EXPECT_TRUE(ws->open());
    ws->output().clear();
    return ws;
  }
  // The close code of the frame that ends output(), 0 without one.
  static std::uint16_t close_code_sent(WebSocketServer& ws) {
    const auto& out = ws.output();
    if (out.size() < 4 || out[0] != std::byte{0x88}) return 0;
    return static_cast<std::uint16_t>((std::to_integer<int>(out[2]) << 8) | std::to_integer<int>(out[3]));
  }
  std::shared_ptr<WebSocketOptions> options_;
};

TEST_F(WebSocketCodec, the_upgrade_answers_rfc_6455s_example_key_and_offers_the_brook_subprotocol) {
  WebSocketServer ws(options_);
  std::vector<std::byte> stream;
  ASSERT_TRUE(ws.receive(as_bytes(upgrade_request("Sec-WebSocket-Protocol: chat, brook\r\n")), stream));
  ASSERT_TRUE(ws.open());
  const std::string answer = as_text(ws.output());
  EXPECT_TRUE(answer.starts_with("HTTP/1.1 101 Switching Protocols\r\n")) << answer;
  EXPECT_NE(answer.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"), std::string::npos) << answer;
  EXPECT_NE(answer.find("Sec-WebSocket-Protocol: brook\r\n"), std::string::npos);
  EXPECT_TRUE(answer.ends_with("\r\n\r\n"));
  EXPECT_EQ(ws.target(), "/brook");
}

TEST_F(WebSocketCodec, a_request_split_byte_by_byte_with_frames_right_behind_it_is_read_whole) {
  WebSocketServer ws(options_);
  std::string wire = upgrade_request();
  auto frame = binary("hello");
  wire.append(reinterpret_cast<const char*>(frame.data()), frame.size());
  std::vector<std::byte> stream;
  for (char ch : wire) ASSERT_TRUE(ws.receive(as_bytes(std::string_view(&ch, 1)), stream));
  EXPECT_TRUE(ws.open());
  EXPECT_EQ(as_text(stream), "hello");
}

TEST_F(WebSocketCodec, binary_payloads_of_every_length_encoding_unmask_into_one_stream) {
  auto ws = open();
  std::vector<std::byte> stream, expected;
  for (std::size_t n : {0u, 1u, 125u, 126u, 127u, 65535u, 65536u, 200000u}) {
    std::string payload(n, '\0');
    for (std::size_t i = 0; i < n; ++i) payload[i] = static_cast<char>('a' + (i * 7 + n) % 26);
    auto frame = binary(payload);
    // Delivered in uneven pieces, as TCP may.
    for (std::size_t at = 0; at < frame.size();) {
      const std::size_t piece = std::min<std::size_t>(frame.size() - at, 1 + (at * 13) % 4099);
      ASSERT_TRUE(ws->receive(std::span(frame).subspan(at, piece), stream)) << "length " << n;
      at += piece;
    }
    const auto bytes = as_bytes(payload);
    expected.insert(expected.end(), bytes.begin(), bytes.end());
  }
  EXPECT_EQ(stream, expected);
  EXPECT_TRUE(ws->output().empty());
}

TEST_F(WebSocketCodec, fragments_join_and_a_ping_between_them_gets_its_pong) {
  auto ws = open();
  std::vector<std::byte> wire, stream;
  auto append = [&](const std::vector<std::byte>& f) { wire.insert(wire.end(), f.begin(), f.end()); };
  append(binary("one,", false));
  append(client_frame(0x89, as_bytes("are you there")));  // ping between fragments
  append(client_frame(0x00, as_bytes("two,")));            // continuation
  append(client_frame(0x8a, as_bytes("")));                // an unasked pong: ignored
  append(client_frame(0x80, as_bytes("three")));           // the last fragment
  ASSERT_TRUE(ws->receive(wire, stream));
  EXPECT_EQ(as_text(stream), "one,two,three");
  const std::string pong = as_text(ws->output());
  ASSERT_GE(pong.size(), 2u);
  EXPECT_EQ(static_cast<unsigned char>(pong[0]), 0x8a);
  EXPECT_EQ(pong.substr(2), "are you there");
}

TEST_F(WebSocketCodec, every_protocol_break_is_closed_with_its_code) {
  struct Case {
    const char* what;
    std::vector<std::byte> frames;
    CloseCode code;
  };
  std::vector<Case> cases;
  cases.push_back({"unmasked", client_frame(0x82, as_bytes("x"), false), CloseCode::protocol_error});
  cases.push_back({"reserved bit", client_frame(0xc2, as_bytes("x")), CloseCode::protocol_error});
  cases.push_back({"unknown data opcode", client_frame(0x83, as_bytes("x")), CloseCode::protocol_error});
  cases.push_back({"unknown control opcode", client_frame(0x8b, as_bytes("")), CloseCode::protocol_error});
  cases.push_back({"continuation first", client_frame(0x80, as_bytes("x")), CloseCode::protocol_error});
  {
    auto f = binary("a", false);
    auto g = binary("b");
    f.insert(f.end(), g.begin(), g.end());
    cases.push_back({"new message inside a fragmented one", f, CloseCode::protocol_error});
  }
  cases.push_back({"fragmented ping", client_frame(0x09, as_bytes("x")), CloseCode::protocol_error});
  cases.push_back({"long ping", client_frame(0x89, as_bytes(std::string(126, 'p'))), CloseCode::protocol_error});
  cases.push_back({"one-byte close", client_frame(0x88, as_bytes("x")), CloseCode::protocol_error});
  cases.push_back({"close code 1005", client_frame(0x88, as_bytes(std::string("\x03\xed", 2))), CloseCode::protocol_error});
  cases.push_back({"valid text", client_frame(0x81, as_bytes("hello")), CloseCode::unsupported_data});
  cases.push_back({"invalid UTF-8 text", client_frame(0x81, as_bytes("ab\xc0\xaf")), CloseCode::invalid_payload});
  {
    // A character split over two fragments is fine; the message as a whole is not UTF-8.
    auto f = client_frame(0x01, as_bytes("\xe2\x82"));
    auto g = client_frame(0x80, as_bytes("\xac\xff"));
    f.insert(f.end(), g.begin(), g.end());
    cases.push_back({"invalid UTF-8 over fragments", f, CloseCode::invalid_payload});
  }
  options_->max_frame_payload = 1000;
  cases.push_back({"oversized frame", binary(std::string(1001, 'x')), CloseCode::message_too_big});
  for (const Case& c : cases) {
    auto ws = open();
    std::vector<std::byte> stream;
    EXPECT_FALSE(ws->receive(c.frames, stream)) << c.what;
    EXPECT_TRUE(ws->ended()) << c.what;
    EXPECT_FALSE(ws->closed_by_peer()) << c.what;
    EXPECT_EQ(close_code_sent(*ws), static_cast<std::uint16_t>(c.code)) << c.what << ": " << ws->error();
    EXPECT_FALSE(ws->error().empty()) << c.what;
    std::vector<std::byte> more;
    EXPECT_FALSE(ws->receive(binary("late"), more)) << "nothing is read after the end: " << c.what;
    EXPECT_TRUE(more.empty());
  }
}

TEST_F(WebSocketCodec, the_peers_close_is_answered_with_its_code_and_is_no_error) {
  auto ws = open();
  std::vector<std::byte> stream;
  EXPECT_FALSE(ws->receive(client_frame(0x88, as_bytes(std::string("\x03\xe9" "bye", 5))), stream));
  EXPECT_TRUE(ws->closed_by_peer());
  EXPECT_TRUE(ws->error().empty());
  EXPECT_EQ(close_code_sent(*ws), 1001);
  EXPECT_EQ(ws->close_code(), 1001);
}

TEST_F(WebSocketCodec, closing_from_our_side_sends_one_close_frame_with_a_cut_reason) {
  auto ws = open();
  ws->close(CloseCode::going_away, std::string(200, 'r'));
  ws->close(CloseCode::normal, "again");
  ASSERT_EQ(ws->output().size(), 2u + 125u) << "one frame, its reason cut to fit 125 bytes";
  EXPECT_EQ(close_code_sent(*ws), 1001);
}

TEST_F(WebSocketCodec, refused_upgrades_get_the_right_http_status) {
  struct Case {
    const char* what;
    std::string request;
    const char* status;
  };
  const std::vector<Case> cases = {
      {"plain GET", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 426 "},
      {"version 8", "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
                    "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n", "HTTP/1.1 426 "},
      {"bad key", upgrade_request({}, "short"), "HTTP/1.1 400 "},
      {"POST", "POST / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", "HTTP/1.1 400 "},
      {"HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", "HTTP/1.1 400 "},
      {"TLS at a plain port", "\x16\x03\x01\x02\x05\x01", "HTTP/1.1 400 "},
      {"an early GET-less byte", "G", ""},
      {"header without a colon", "GET / HTTP/1.1\r\nUpgrade websocket\r\n\r\n", "HTTP/1.1 400 "},
      {"too large", "GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n", "HTTP/1.1 431 "},
  };
  for (const Case& c : cases) {
    WebSocketServer ws(options_);
    std::vector<std::byte> stream;
    if (std::string_view(c.status).empty()) {
      EXPECT_TRUE(ws.receive(as_bytes(c.request), stream)) << c.what << ": a G may begin a GET";
      continue;
    }
    EXPECT_FALSE(ws.receive(as_bytes(c.request), stream)) << c.what;
    EXPECT_TRUE(ws.ended()) << c.what;
    EXPECT_TRUE(as_text(ws.output()).starts_with(c.status)) << c.what << ": " << as_text(ws.output());
    EXPECT_TRUE(stream.empty());
  }
  // An endless header line is refused once it passes the limit, without waiting for its end.
  WebSocketServer endless(options_);
  std::vector<std::byte> stream;
  const std::string chunk(1000, 'a');
  bool refused = !endless.receive(as_bytes("GET /"), stream);
  for (int i = 0; i < 20 && !refused; ++i) refused = !endless.receive(as_bytes(chunk), stream);
  EXPECT_TRUE(refused);
  EXPECT_TRUE(as_text(endless.output()).starts_with("HTTP/1.1 431 "));
}

TEST_F(WebSocketCodec, origins_outside_the_allow_list_are_refused_and_requests_without_one_pass) {
  options_->allowed_origins = {"https://odds.example"};
  WebSocketServer stranger(options_);
  std::vector<std::byte> stream;
  EXPECT_FALSE(stranger.receive(as_bytes(upgrade_request("Origin: https://evil.example\r\n")), stream));
  EXPECT_TRUE(as_text(stranger.output()).starts_with("HTTP/1.1 403 ")) << as_text(stranger.output());
  WebSocketServer friendly(options_);
  EXPECT_TRUE(friendly.receive(as_bytes(upgrade_request("Origin: https://odds.example\r\n")), stream));
  EXPECT_EQ(friendly.origin(), "https://odds.example");
  WebSocketServer no_browser(options_);
  EXPECT_TRUE(no_browser.receive(as_bytes(upgrade_request()), stream));
}

TEST_F(WebSocketCodec, a_plain_get_is_answered_from_the_static_files_and_nothing_else_is_reachable) {
  options_->static_files.emplace("/index.html", StaticFile{"text/html; charset=utf-8", "<h1>odds</h1>"});
  auto get = [&](std::string_view target) {
    WebSocketServer ws(options_);
    std::vector<std::byte> stream;
    EXPECT_FALSE(ws.receive(as_bytes("GET " + std::string(target) + " HTTP/1.1\r\nHost: x\r\n\r\n"), stream));
    EXPECT_TRUE(ws.ended());
    EXPECT_FALSE(ws.open());
    return std::pair(as_text(ws.output()), ws.served_file());
  };
  const auto [page, served] = get("/?ws=ws://127.0.0.1:9080");
  EXPECT_TRUE(served);
  EXPECT_TRUE(page.starts_with("HTTP/1.1 200 OK\r\n")) << page;
  EXPECT_NE(page.find("Content-Type: text/html; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(page.find("Content-Length: 13\r\n"), std::string::npos);
  EXPECT_TRUE(page.ends_with("\r\n\r\n<h1>odds</h1>"));
  for (const char* elsewhere : {"/missing.js", "/../etc/passwd", "/index.html/..", "//index.html"}) {
    const auto [answer, found] = get(elsewhere);
    EXPECT_FALSE(found) << elsewhere;
    EXPECT_TRUE(answer.starts_with("HTTP/1.1 404 Not Found")) << elsewhere << ": " << answer;
  }
  // An upgrade on the same port is still an upgrade.
  WebSocketServer ws(options_);
  std::vector<std::byte> stream;
  EXPECT_TRUE(ws.receive(as_bytes(upgrade_request()), stream));
  EXPECT_TRUE(ws.open());
}

TEST(WebSocketFrameHeader, uses_the_shortest_length_encoding) {
  std::byte h[10];
  EXPECT_EQ(WebSocketServer::frame_header(0, h), 2u);
  EXPECT_EQ(h[0], std::byte{0x82});
  EXPECT_EQ(h[1], std::byte{0});
  EXPECT_EQ(WebSocketServer::frame_header(125, h), 2u);
  EXPECT_EQ(WebSocketServer::frame_header(126, h), 4u);
  EXPECT_EQ(h[1], std::byte{126});
  EXPECT_EQ(h[3], std::byte{126});
  EXPECT_EQ(WebSocketServer::frame_header(65535, h), 4u);
  EXPECT_EQ(WebSocketServer::frame_header(65536, h), 10u);
  EXPECT_EQ(h[1], std::byte{127});
  EXPECT_EQ(h[7], std::byte{1});
}

TEST(Utf8, accepts_well_formed_text_and_refuses_the_classic_malformations) {
  auto ok = [](std::string_view s) { return valid_utf8(as_bytes(s)); };
  EXPECT_TRUE(ok(""));
  EXPECT_TRUE(ok("odds 1.91"));
  EXPECT_TRUE(ok("\xc3\xa9\xe2\x82\xac\xf0\x9f\x8f\x88"));  // é € 🏈
  EXPECT_TRUE(ok("\xf4\x8f\xbf\xbf"));                       // U+10FFFF
  EXPECT_FALSE(ok("\xc0\xaf"));                              // overlong '/'
  EXPECT_FALSE(ok("\xe0\x80\xaf"));                          // overlong
  EXPECT_FALSE(ok("\xed\xa0\x80"));                          // a surrogate
  EXPECT_FALSE(ok("\xf4\x90\x80\x80"));                      // over U+10FFFF
  EXPECT_FALSE(ok("\xe2\x82"));                              // cut short
  EXPECT_FALSE(ok("\x80"));                                  // a lone continuation byte
  EXPECT_FALSE(ok("\xff"));
}

}  // namespace
}  // namespace brook::transport
