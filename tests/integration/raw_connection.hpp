#pragma once
// A plain blocking TCP socket speaking Brook's wire format by hand, for tests that must send
// what brook::Client never would (garbage, truncated or oversized frames) and read exactly
// what the broker answers. Every read has a deadline. One thread at a time.
//
// It may speak TLS (start_tls) and then WebSocket (upgrade_to_websocket): from then on
// send_bytes() sends a masked binary frame, reads take the payloads of the server's frames,
// send_raw() sends bytes outside any frame, and a close frame ends the stream.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "brook/codec/messages.hpp"

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;

namespace brook::test {

// An Error control frame, copied out of the decoder's views.
struct ErrorReport {
  codec::ErrorCode code = codec::ErrorCode::none;
  std::uint32_t request_id = 0;
  std::string message;
};

class RawConnection {
 public:
  // Connects to 127.0.0.1:port; check connected().
  explicit RawConnection(std::uint16_t port);
  ~RawConnection();
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;

  bool connected() const noexcept { return fd_ >= 0; }
  int fd() const noexcept { return fd_; }

  // Writes every byte (blocking; in a binary frame once upgraded); false if the connection failed.
  bool send_bytes(std::span<const std::byte> bytes);
  // Writes the bytes as they are, whatever the connection speaks.
  bool send_raw(std::span<const std::byte> bytes);

  // A TLS handshake (verifying the broker against `ca_file` and `host`); false on failure.
  bool start_tls(const std::string& ca_file, const std::string& host = "localhost");
  // Sends a WebSocket upgrade for `target` (with an Origin header unless empty) and reads the
  // answer's head: its status line ("HTTP/1.1 101 Switching Protocols"), "" on no answer.
  std::string upgrade_to_websocket(std::string_view target = "/", std::string_view origin = {},
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends an HTTP request as it is and reads the answer's head: its status line, "" on none.
  // A 101 answer that carries the right Sec-WebSocket-Accept switches to WebSocket.
  std::string http_request(std::string_view request, std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // A frame of the caller's: `first_byte` (FIN, opcode), masked unless told otherwise.
  bool send_websocket_frame(std::uint8_t first_byte, std::span<const std::byte> payload, bool masked = true);
  // The code in the server's close frame: 0 before one came (or when it had none).
  std::uint16_t websocket_close_code() const noexcept { return close_code_; }
  bool websocket_closed() const noexcept { return ws_closed_; }
  // Sends Connect and waits for Connected; false on anything else.
  bool greet(std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // The next whole frame, or nullopt on timeout, end of stream or a malformed frame header.
  std::optional<std::vector<std::byte>> read_frame(std::chrono::milliseconds timeout);
  // Reads (and drops) frames until an Error control frame arrives; nullopt if the stream ends
  // or the timeout passes first.
  std::optional<ErrorReport> read_until_error(std::chrono::milliseconds timeout);
  // True when the peer ends the stream (EOF or reset) within the timeout; input is dropped.
  bool wait_for_close(std::chrono::milliseconds timeout);
  // True when the stream has ended (seen by a read).
  bool closed_by_peer() const noexcept { return eof_; }

  void shutdown_write();
  void close();

 private:
  // Reads what is available into buffer_, waiting until `deadline`; false on EOF/error/timeout.
  bool fill(std::chrono::steady_clock::time_point deadline);
  // Reads what the socket has (through TLS when on) into `into`; false on EOF/error/timeout.
  bool read_some(std::chrono::steady_clock::time_point deadline, std::vector<std::byte>& into);
  // The server's whole frames in ws_raw_, their payloads into buffer_.
  void unwrap_websocket();

  int fd_ = -1;
  SSL_CTX* ssl_ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  bool websocket_ = false;
  bool ws_closed_ = false;
  std::uint16_t close_code_ = 0;
  std::vector<std::byte> ws_raw_;
  bool eof_ = false;
  std::vector<std::byte> buffer_;
  codec::FrameEncoder encoder_;
  codec::FrameDecoder decoder_;
};

}  // namespace brook::test
