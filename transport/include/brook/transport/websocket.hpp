#pragma once
// The server's side of one WebSocket connection (RFC 6455) that carries a byte stream: the
// HTTP/1.1 upgrade, then binary messages whose payloads, in order, are the stream (message
// boundaries mean nothing, as TCP's segment boundaries mean nothing). Like TlsStream it never
// touches a socket: the peer's bytes go in with receive(), the stream's bytes come out; what
// must go back (the upgrade's answer, pongs, a close frame) waits in output(), and the caller
// puts frame_header() before each run of stream bytes it sends.
//
// Threads: one at a time; a WebSocketServer may move between threads between calls.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace brook::transport {

// RFC 6455 close codes used here.
enum class CloseCode : std::uint16_t {
  normal = 1000,
  going_away = 1001,
  protocol_error = 1002,
  unsupported_data = 1003,  // a text message: Brook speaks binary
  invalid_payload = 1007,   // text that is not UTF-8
  policy_violation = 1008,
  message_too_big = 1009,
  internal_error = 1011,
};

// A file a WebSocket port also serves to a plain GET (a page and its script, say), from memory.
struct StaticFile {
  std::string content_type;
  std::string body;
};

struct WebSocketOptions {
  // Origin header values let in (exact, as the browser sends them: "https://odds.example").
  // Empty: any origin. A request without Origin (not from a browser) is always let in.
  std::vector<std::string> allowed_origins;
  std::size_t max_frame_payload = 1u << 20;   // a longer frame is closed with 1009
  std::size_t max_request_bytes = 8192;        // the upgrade request, headers and all
  // By request path ("/index.html"; "/" is "/index.html"): answered to a GET without an
  // upgrade, then the connection ends. Empty: such a GET is told to upgrade (426).
  std::map<std::string, StaticFile, std::less<>> static_files;
};

class WebSocketServer {
 public:
  explicit WebSocketServer(std::shared_ptr<const WebSocketOptions> options);

  // Bytes from the peer: the upgrade request, then frames. Stream bytes (binary messages'
  // payloads, unmasked) are appended to `stream`. False when the connection must end once
  // output() is written: a refused upgrade (an HTTP error answer waits in output()), a
  // protocol error (a close frame with its code waits), or the peer's close (answered).
  bool receive(std::span<const std::byte> bytes, std::vector<std::byte>& stream);

  // The header of one unfragmented binary frame of `payload_bytes` from the server (servers
  // do not mask): written to `out`, its length returned (2, 4 or 10).
  static std::size_t frame_header(std::size_t payload_bytes, std::byte (&out)[10]) noexcept;

  // Ends the connection from this side: a close frame into output() (once; nothing before
  // the upgrade is done).
  void close(CloseCode code, std::string_view reason);

  std::vector<std::byte>& output() noexcept { return output_; }
  bool open() const noexcept { return state_ == State::open; }
  bool upgraded() const noexcept { return state_ != State::request; }
  bool ended() const noexcept { return state_ == State::ended; }
  // The peer closed in order (a close frame): an end, not an error.
  bool closed_by_peer() const noexcept { return closed_by_peer_; }
  // The request was a GET for a static file, answered: an end, not an error.
  bool served_file() const noexcept { return served_file_; }
  // Why the connection ended from this side: "unmasked frame from the client" (empty otherwise).
  const std::string& error() const noexcept { return error_; }
  std::uint16_t close_code() const noexcept { return close_code_; }
  // The upgrade request's target ("/brook") and Origin (empty without one).
  const std::string& target() const noexcept { return target_; }
  const std::string& origin() const noexcept { return origin_; }

 private:
  enum class State { request, open, ended };
  bool read_request(std::span<const std::byte>& bytes);
  bool refuse(int status, std::string_view reason, std::string_view extra_headers = {});
  bool serve(const StaticFile& file);
  bool read_frames(std::span<const std::byte> bytes, std::vector<std::byte>& stream);
  bool frame_complete();
  bool control_frame();
  bool fail(CloseCode code, std::string reason);
  void append_frame(std::uint8_t opcode, std::span<const std::byte> payload);

  std::shared_ptr<const WebSocketOptions> options_;
  State state_ = State::request;
  std::string request_;  // the upgrade request until its blank line
  std::string target_, origin_;
  std::vector<std::byte> output_;

  // The frame being read: its header (2 to 14 bytes), then `payload_left` bytes.
  std::byte header_[14]{};
  std::size_t header_have_ = 0;
  std::size_t header_need_ = 2;
  std::uint8_t opcode_ = 0;
  bool fin_ = false;
  std::uint8_t mask_[4]{};
  std::uint64_t payload_left_ = 0;
  std::uint64_t payload_offset_ = 0;  // bytes of this frame's payload unmasked so far
  // The message in progress: 0 none, 1 text, 2 binary (continuation frames add to it).
  std::uint8_t message_ = 0;
  std::vector<std::byte> control_;  // a control frame's payload (at most 125 bytes)
  std::vector<std::byte> text_;     // a text message, to say whether it was UTF-8
  bool closed_by_peer_ = false;
  bool served_file_ = false;
  bool close_sent_ = false;
  std::uint16_t close_code_ = 0;
  std::string error_;
};

// Whether `bytes` are well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most
// U+10FFFF).
bool valid_utf8(std::span<const std::byte> bytes) noexcept;

}  // namespace brook::transport
