// Fuzz target: whatever bytes a client sends to a WebSocket port, WebSocketServer stays inside
// them and keeps its word. The first input byte picks how the rest arrives: after a valid
// upgrade request or as the request itself, and in how many pieces. Invariants that hold for
// any input abort on violation: the stream never grows by more than the bytes given, a false
// from receive() leaves the connection ended, an ended connection reads nothing more, and
// what goes back to the client is an HTTP answer before the upgrade and frames after it.
//
// Built with libFuzzer under clang (-DBROOK_FUZZ=ON); the gcc build links it with
// fuzz_replay_main.cpp, which feeds it generated inputs (mostly Brook frames: here they are
// frame payloads, masked or not, as their first byte falls).
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "brook/transport/websocket.hpp"

namespace {

using namespace brook::transport;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "websocket_fuzz: invariant violated: %s\n", what);
  std::abort();
}

constexpr std::string_view upgrade =
    "GET /brook HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t how = data[0];
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  auto options = std::make_shared<WebSocketOptions>();
  options->max_frame_payload = 4096;
  options->max_request_bytes = 1024;
  if (how & 0x40) options->allowed_origins = {"https://odds.example"};
  WebSocketServer ws(options);
  std::vector<std::byte> stream;
  if (how & 0x80) {
    if (!ws.receive(std::as_bytes(std::span(upgrade.data(), upgrade.size())), stream) || !ws.open())
      violated("a valid upgrade was refused");
    ws.output().clear();
  }
  // Pieces of 1 + (how & 0x3f) * 7 bytes: byte by byte up to whole.
  const std::size_t piece = 1 + static_cast<std::size_t>(how & 0x3f) * 7;
  bool alive = true;
  std::size_t given = 0;
  while (!input.empty()) {
    const std::size_t n = std::min(piece, input.size());
    const bool upgraded_before = ws.upgraded();
    const std::size_t stream_before = stream.size();
    alive = ws.receive(input.first(n), stream);
    given += n;
    if (stream.size() - stream_before > n) violated("more stream bytes than were given");
    if (stream.size() > given) violated("the stream outgrew the input");
    if (!alive && !ws.ended()) violated("refused but not ended");
    if (!upgraded_before && !ws.output().empty() && ws.output()[0] != std::byte{'H'})
      violated("the first answer is not HTTP");
    input = input.subspan(n);
    if (!alive) break;
  }
  if (!alive) {
    std::vector<std::byte> more;
    const std::byte late[] = {std::byte{0x82}, std::byte{0x81}, std::byte{0}, std::byte{0}, std::byte{0},
                              std::byte{0}, std::byte{'x'}};
    if (ws.receive(late, more) || !more.empty()) violated("read after the end");
  }
  return 0;
}
