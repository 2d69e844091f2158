#include "brook/transport/websocket.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace brook::transport {

namespace {

constexpr std::uint8_t op_continuation = 0, op_text = 1, op_binary = 2, op_close = 8, op_ping = 9, op_pong = 10;
constexpr std::string_view accept_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& ch : out) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether the comma-separated header value `list` holds `token` (case-insensitive).
bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (lower(trim(list.substr(0, comma))) == token) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// A Sec-WebSocket-Key: the base64 of 16 bytes, so 22 characters and "==".
bool valid_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  return std::all_of(key.begin(), key.begin() + 22, [](char ch) {
    return std::isalnum(static_cast<unsigned char>(ch)) || ch == '+' || ch == '/';
  });
}

std::string accept_of(std::string_view key) {
  std::string joined = std::string(key) + std::string(accept_guid);
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(joined.data()), joined.size(), digest);
  unsigned char encoded[4 * ((SHA_DIGEST_LENGTH + 2) / 3) + 1];
  const int n = EVP_EncodeBlock(encoded, digest, SHA_DIGEST_LENGTH);
  return std::string(reinterpret_cast<const char*>(encoded), static_cast<std::size_t>(n));
}

const char* status_text(int status) {
  switch (status) {
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 426: return "Upgrade Required";
    case 404: return "Not Found";
    case 431: return "Request Header Fields Too Large";
    default: return "Error";
  }
}

bool valid_close_code(std::uint16_t code) {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1011) || (code >= 3000 && code <= 4999);
}

}  // namespace

bool valid_utf8(std::span<const std::byte> bytes) noexcept {
  std::size_t i = 0;
  const std::size_t n = bytes.size();
  auto at = [&](std::size_t k) { return static_cast<std::uint8_t>(bytes[k]); };
  while (i < n) {
    const std::uint8_t b = at(i);
    if (b < 0x80) {
      ++i;
      continue;
    }
    std::size_t extra;
    std::uint8_t low = 0x80, high = 0xbf;  // the range of the second byte
    if (b >= 0xc2 && b <= 0xdf) extra = 1;
    else if (b == 0xe0) extra = 2, low = 0xa0;
    else if (b == 0xed) extra = 2, high = 0x9f;  // no surrogates
    else if (b >= 0xe1 && b <= 0xef) extra = 2;
    else if (b == 0xf0) extra = 3, low = 0x90;
    else if (b == 0xf4) extra = 3, high = 0x8f;  // at most U+10FFFF
    else if (b >= 0xf1 && b <= 0xf3) extra = 3;
    else return false;
    if (i + extra >= n) return false;
    if (at(i + 1) < low || at(i + 1) > high) return false;
    for (std::size_t k = 2; k <= extra; ++k)
      if ((at(i + k) & 0xc0) != 0x80) return false;
    i += extra + 1;
  }
  return true;
}

WebSocketServer::WebSocketServer(std::shared_ptr<const WebSocketOptions> options) : options_(std::move(options)) {}

std::size_t WebSocketServer::frame_header(std::size_t payload_bytes, std::byte (&out)[10]) noexcept {
  out[0] = std::byte{0x80 | op_binary};
  if (payload_bytes < 126) {
    out[1] = static_cast<std::byte>(payload_bytes);
    return 2;
  }
  if (payload_bytes <= 0xffff) {
    out[1] = std::byte{126};
    out[2] = static_cast<std::byte>(payload_bytes >> 8);
    out[3] = static_cast<std::byte>(payload_bytes);
    return 4;
  }
  out[1] = std::byte{127};
  for (int k = 0; k < 8; ++k) out[2 + k] = static_cast<std::byte>(static_cast<std::uint64_t>(payload_bytes) >> (56 - 8 * k));
  return 10;
}

bool WebSocketServer::receive(std::span<const std::byte> bytes, std::vector<std::byte>& stream) {
  if (state_ == State::ended) return false;
  if (state_ == State::request && !read_request(bytes)) return false;
  if (state_ == State::request) return true;  // the request is not whole yet
  return read_frames(bytes, stream);
}

bool WebSocketServer::read_request(std::span<const std::byte>& bytes) {
  // Only the bytes up to the blank line are the request's; frames may follow at once.
  const std::size_t before = request_.size();
  request_.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  // Not even a GET (TLS, or Brook's own frames, at a WebSocket port): no need to wait for more.
  if (std::string_view(request_).substr(0, 4) != std::string_view("GET ").substr(0, std::min<std::size_t>(4, request_.size())))
    return refuse(400, "not an HTTP GET");
  const std::size_t search_from = before >= 3 ? before - 3 : 0;
  const std::size_t end = request_.find("\r\n\r\n", search_from);
  if (end == std::string::npos) {
    if (request_.size() > options_->max_request_bytes) return refuse(431, "the upgrade request is too large");
    bytes = {};
    return true;
  }
  if (end + 4 > options_->max_request_bytes) return refuse(431, "the upgrade request is too large");
  bytes = bytes.subspan(end + 4 - before);
  request_.resize(end);

  std::string_view text(request_);
  const std::size_t line_end = text.find("\r\n");
  const std::string_view request_line = text.substr(0, line_end);
  const std::size_t sp1 = request_line.find(' ');
  const std::size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1) return refuse(400, "malformed request line");
  if (request_line.substr(0, sp1) != "GET") return refuse(400, "a WebSocket upgrade is a GET");
  const std::string_view version = request_line.substr(sp2 + 1);
  if (version != "HTTP/1.1") return refuse(400, "a WebSocket upgrade needs HTTP/1.1");
  target_ = std::string(request_line.substr(sp1 + 1, sp2 - sp1 - 1));

  std::string upgrade, connection, key, ws_version, protocols;
  std::string_view headers = line_end == std::string_view::npos ? std::string_view() : text.substr(line_end + 2);
  while (!headers.empty()) {
    const std::size_t eol = headers.find("\r\n");
    const std::string_view line = headers.substr(0, eol);
    headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return refuse(400, "malformed header line");
    const std::string name = lower(line.substr(0, colon));
    const std::string_view value = trim(line.substr(colon + 1));
    if (name == "upgrade") upgrade = value;
    else if (name == "connection") connection = value;
    else if (name == "sec-websocket-key") key = value;
    else if (name == "sec-websocket-version") ws_version = value;
    else if (name == "sec-websocket-protocol") protocols = protocols.empty() ? std::string(value) : protocols + "," + std::string(value);
    else if (name == "origin") origin_ = value;
  }
  if (!has_token(upgrade, "websocket") && !options_->static_files.empty()) {
    std::string_view path = std::string_view(target_).substr(0, target_.find('?'));
    if (path == "/") path = "/index.html";
    const auto file = options_->static_files.find(path);
    if (file == options_->static_files.end()) return refuse(404, "no such file: " + std::string(path));
    return serve(file->second);
  }
  if (!has_token(upgrade, "websocket") || !has_token(connection, "upgrade"))
    return refuse(426, "this port speaks WebSocket: ask for an upgrade",
                  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n");
  if (ws_version != "13") return refuse(426, "WebSocket version 13 only", "Sec-WebSocket-Version: 13\r\n");
  if (!valid_key(key)) return refuse(400, "a missing or malformed Sec-WebSocket-Key");
  const auto& allowed = options_->allowed_origins;
  if (!origin_.empty() && !allowed.empty() && std::find(allowed.begin(), allowed.end(), origin_) == allowed.end())
    return refuse(403, "origin " + origin_ + " is not allowed");

  std::string answer = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: " + accept_of(key) + "\r\n";
  if (has_token(protocols, "brook")) answer += "Sec-WebSocket-Protocol: brook\r\n";
  answer += "\r\n";
  const auto* p = reinterpret_cast<const std::byte*>(answer.data());
  output_.insert(output_.end(), p, p + answer.size());
  request_.clear();
  request_.shrink_to_fit();
  state_ = State::open;
  return true;
}

bool WebSocketServer::refuse(int status, std::string_view reason, std::string_view extra_headers) {
  std::string answer = "HTTP/1.1 " + std::to_string(status) + " " + status_text(status) +
                       "\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: " +
                       std::to_string(reason.size() + 1) + "\r\n" + std::string(extra_headers) + "\r\n" +
                       std::string(reason) + "\n";
  const auto* p = reinterpret_cast<const std::byte*>(answer.data());
  output_.insert(output_.end(), p, p + answer.size());
  error_ = "upgrade refused (" + std::to_string(status) + "): " + std::string(reason);
  state_ = State::ended;
  return false;
}

bool WebSocketServer::serve(const StaticFile& file) {
  std::string answer = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: " + file.content_type +
                       "\r\nContent-Length: " + std::to_string(file.body.size()) +
                       "\r\nCache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n\r\n";
  const auto* head = reinterpret_cast<const std::byte*>(answer.data());
  const auto* body = reinterpret_cast<const std::byte*>(file.body.data());
  output_.reserve(answer.size() + file.body.size());
  output_.insert(output_.end(), head, head + answer.size());
  output_.insert(output_.end(), body, body + file.body.size());
  served_file_ = true;
  state_ = State::ended;
  return false;
}

bool WebSocketServer::read_frames(std::span<const std::byte> bytes, std::vector<std::byte>& stream) {
  while (!bytes.empty() || (header_have_ == header_need_ && payload_left_ == 0)) {
    if (header_have_ < header_need_) {
      const std::size_t take = std::min(header_need_ - header_have_, bytes.size());
      std::memcpy(header_ + header_have_, bytes.data(), take);
      header_have_ += take;
      bytes = bytes.subspan(take);
      if (header_have_ < header_need_) return true;
      if (header_need_ == 2) {
        const auto b0 = static_cast<std::uint8_t>(header_[0]), b1 = static_cast<std::uint8_t>(header_[1]);
        if (b0 & 0x70) return fail(CloseCode::protocol_error, "reserved bits set (no extension was agreed)");
        if (!(b1 & 0x80)) return fail(CloseCode::protocol_error, "an unmasked frame from the client");
        const std::uint8_t len7 = b1 & 0x7f;
        header_need_ = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
        continue;
      }
      // The whole header: length, mask, and whether this frame may come now.
      const auto b0 = static_cast<std::uint8_t>(header_[0]);
      const std::uint8_t len7 = static_cast<std::uint8_t>(header_[1]) & 0x7f;
      fin_ = (b0 & 0x80) != 0;
      opcode_ = b0 & 0x0f;
      std::uint64_t length = len7;
      std::size_t at = 2;
      if (len7 >= 126) {
        const std::size_t n = len7 == 126 ? 2 : 8;
        length = 0;
        for (std::size_t k = 0; k < n; ++k) length = (length << 8) | static_cast<std::uint8_t>(header_[at + k]);
        at += n;
        if (len7 == 127 && (length >> 63)) return fail(CloseCode::protocol_error, "a frame length with its top bit set");
      }
      std::memcpy(mask_, header_ + at, 4);
      if (opcode_ >= 8) {
        if (opcode_ != op_close && opcode_ != op_ping && opcode_ != op_pong)
          return fail(CloseCode::protocol_error, "an unknown control opcode");
        if (!fin_) return fail(CloseCode::protocol_error, "a fragmented control frame");
        if (length > 125) return fail(CloseCode::protocol_error, "a control frame over 125 bytes");
      } else if (opcode_ == op_continuation) {
        if (message_ == 0) return fail(CloseCode::protocol_error, "a continuation frame with no message begun");
      } else if (opcode_ == op_text || opcode_ == op_binary) {
        if (message_ != 0) return fail(CloseCode::protocol_error, "a new message before the last one ended");
        message_ = opcode_;
      } else {
        return fail(CloseCode::protocol_error, "an unknown data opcode");
      }
      if (length > options_->max_frame_payload)
        return fail(CloseCode::message_too_big, "a frame of " + std::to_string(length) + " bytes (at most " +
                                                    std::to_string(options_->max_frame_payload) + ")");
      payload_left_ = length;
      payload_offset_ = 0;
      control_.clear();
      if (opcode_ < 8 && message_ == op_text && text_.size() + length > options_->max_frame_payload)
        return fail(CloseCode::message_too_big, "a text message over the frame limit");
    }
    if (payload_left_ > 0) {
      const std::size_t take = static_cast<std::size_t>(std::min<std::uint64_t>(payload_left_, bytes.size()));
      std::vector<std::byte>& into = opcode_ >= 8 ? control_ : message_ == op_text ? text_ : stream;
      const std::size_t start = into.size();
      into.resize(start + take);
      std::byte* out = into.data() + start;
      const std::byte* in = bytes.data();
      std::size_t k = static_cast<std::size_t>(payload_offset_ & 3);
      for (std::size_t i = 0; i < take; ++i, k = (k + 1) & 3) out[i] = in[i] ^ std::byte{mask_[k]};
      payload_left_ -= take;
      payload_offset_ += take;
      bytes = bytes.subspan(take);
      if (payload_left_ > 0) return true;
    }
    if (!frame_complete()) return false;
  }
  return true;
}

bool WebSocketServer::frame_complete() {
  header_have_ = 0;
  header_need_ = 2;
  if (opcode_ >= 8) return control_frame();
  if (!fin_) return true;
  const std::uint8_t finished = message_;
  message_ = 0;
  if (finished == op_text) {
    if (!valid_utf8(text_)) return fail(CloseCode::invalid_payload, "a text message that is not UTF-8");
    return fail(CloseCode::unsupported_data, "a text message: Brook's frames go in binary messages");
  }
  return true;
}

bool WebSocketServer::control_frame() {
  if (opcode_ == op_ping) {
    append_frame(op_pong, control_);
    return true;
  }
  if (opcode_ == op_pong) return true;
  // Close: answer it (with the peer's code) and end.
  closed_by_peer_ = true;
  if (control_.size() == 1) return fail(CloseCode::protocol_error, "a close frame with a one-byte body");
  if (control_.size() >= 2) {
    const auto code = static_cast<std::uint16_t>((static_cast<std::uint8_t>(control_[0]) << 8) |
                                                 static_cast<std::uint8_t>(control_[1]));
    if (!valid_close_code(code)) return fail(CloseCode::protocol_error, "close code " + std::to_string(code));
    if (!valid_utf8(std::span(control_).subspan(2)))
      return fail(CloseCode::invalid_payload, "a close reason that is not UTF-8");
    close_code_ = code;
    append_frame(op_close, std::span(control_).first(2));
  } else {
    close_code_ = static_cast<std::uint16_t>(CloseCode::normal);
    append_frame(op_close, {});
  }
  close_sent_ = true;
  state_ = State::ended;
  return false;
}

bool WebSocketServer::fail(CloseCode code, std::string reason) {
  error_ = std::move(reason);
  closed_by_peer_ = false;
  close(code, error_);
  return false;
}

void WebSocketServer::close(CloseCode code, std::string_view reason) {
  if (state_ == State::request) {
    state_ = State::ended;
    return;
  }
  if (close_sent_) return;
  std::vector<std::byte> payload(2);
  payload[0] = static_cast<std::byte>(static_cast<std::uint16_t>(code) >> 8);
  payload[1] = static_cast<std::byte>(static_cast<std::uint16_t>(code));
  // A control frame holds 125 bytes: the reason is cut at a character boundary.
  std::size_t keep = std::min<std::size_t>(reason.size(), 123);
  while (keep > 0 && keep < reason.size() && (static_cast<unsigned char>(reason[keep]) & 0xc0) == 0x80) --keep;
  const auto* r = reinterpret_cast<const std::byte*>(reason.data());
  payload.insert(payload.end(), r, r + keep);
  append_frame(op_close, payload);
  close_sent_ = true;
  close_code_ = static_cast<std::uint16_t>(code);
  state_ = State::ended;
}

void WebSocketServer::append_frame(std::uint8_t opcode, std::span<const std::byte> payload) {
  output_.push_back(static_cast<std::byte>(0x80 | opcode));
  output_.push_back(static_cast<std::byte>(payload.size()));  // control frames: at most 125
  output_.insert(output_.end(), payload.begin(), payload.end());
}

}  // namespace brook::transport
