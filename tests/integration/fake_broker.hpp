#pragma once
// A scripted stand-in for brookd, for tests of what brook::Client does with frames a real
// broker would not send (a delta whose checksum is wrong, a copy out of range): it listens on
// 127.0.0.1 at a port the kernel picks, accepts one connection and lets the test read the
// client's frames and write the broker's side by hand, numbering the session's sequenced frames
// as brookd does. Owns the listening and the accepted socket; blocking I/O with a deadline on
// every read. One thread at a time (the test's).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "brook/codec/messages.hpp"

namespace brook::test {

class FakeBroker {
 public:
  FakeBroker();  // listens; check listening()
  ~FakeBroker();
  FakeBroker(const FakeBroker&) = delete;
  FakeBroker& operator=(const FakeBroker&) = delete;

  bool listening() const noexcept { return port_ != 0; }
  std::string url() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  // Waits for the client's connection.
  bool accept(std::chrono::milliseconds timeout);
  // Reads the Connect frame and answers with Connected (a new anonymous session, numbering
  // its frames from 1).
  bool greet(std::chrono::milliseconds timeout);

  // Reads frames until one decodes to a T (others, such as pings, are dropped). The pointer
  // and the views in the message stay valid until the next read; nullptr on timeout, end of
  // stream or an undecodable frame.
  template <class T>
  const T* next(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (int frames = 0; frames < 1024; ++frames) {
      if (!read_frame(deadline)) return nullptr;
      if (auto* m = std::get_if<T>(&decoded_.message)) return m;
    }
    return nullptr;
  }

  // A control frame of the session's stream: flagged sequenced, it takes the next number.
  bool send_sequenced(std::span<const std::byte> control_frame);
  // An update frame for `alias`; it takes the next session number.
  bool send_update(std::uint32_t alias, std::uint64_t topic_seq, codec::UpdateEncoding encoding,
                   std::span<const std::byte> body,
                   std::uint16_t flags = codec::frame_flag_sequenced);
  bool send_bytes(std::span<const std::byte> bytes);
  // Closes the connection, as a broker does once the client said Close.
  void hang_up();

  codec::FrameEncoder& encoder() noexcept { return encoder_; }

 private:
  bool read_frame(std::chrono::steady_clock::time_point deadline);

  int listen_fd_ = -1;
  int fd_ = -1;
  std::uint16_t port_ = 0;
  std::uint64_t next_sequence_ = 1;
  std::vector<std::byte> buffer_;  // received, not yet split into frames
  std::vector<std::byte> frame_;   // the last frame read; decoded_ points into it
  codec::Decoded decoded_;
  codec::FrameDecoder decoder_;
  codec::FrameEncoder encoder_;
};

}  // namespace brook::test
