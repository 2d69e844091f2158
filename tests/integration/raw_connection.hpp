#pragma once
// A plain blocking TCP socket speaking Brook's wire format by hand, for tests that must send
// what brook::Client never would (garbage, truncated or oversized frames) and read exactly
// what the broker answers. Every read has a deadline. One thread at a time.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "brook/codec/messages.hpp"

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

  // Writes every byte (blocking); false if the connection failed.
  bool send_bytes(std::span<const std::byte> bytes);
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

  int fd_ = -1;
  bool eof_ = false;
  std::vector<std::byte> buffer_;
  codec::FrameEncoder encoder_;
  codec::FrameDecoder decoder_;
};

}  // namespace brook::test
