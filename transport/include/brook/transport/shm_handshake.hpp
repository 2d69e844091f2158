#pragma once
// The one message a broker sends on a shared-memory connection's Unix socket, right after
// accepting it: either the segments and doorbells for the session (as SCM_RIGHTS descriptors)
// or why the peer was refused. Everything after it flows through the segment's rings; the
// socket stays open only so that each side notices when the other is gone.
//
// Descriptors, in order: session segment, doorbell to the broker (eventfd the client writes),
// doorbell to the client (eventfd the broker writes), then one read-only broadcast segment per
// broker shard.
#include <cstdint>
#include <cstring>
#include <string_view>

namespace brook::transport {

inline constexpr std::size_t shm_session_fds = 3;

struct ShmHello {
  char magic[8] = {'B', 'R', 'O', 'O', 'K', 'S', 'H', 'M'};
  std::uint32_t version = 1;
  std::uint32_t refused = 0;          // non-zero: no descriptors, `reason` says why
  std::uint32_t broadcast_segments = 0;
  std::uint32_t reserved = 0;
  char reason[232] = {};

  bool valid() const noexcept {
    return std::memcmp(magic, "BROOKSHM", 8) == 0 && version == 1;
  }
  void set_reason(std::string_view text) noexcept {
    std::size_t n = text.size() < sizeof reason - 1 ? text.size() : sizeof reason - 1;
    std::memcpy(reason, text.data(), n);
    reason[n] = '\0';
  }
  std::string_view reason_text() const noexcept { return {reason, strnlen(reason, sizeof reason)}; }
};
static_assert(sizeof(ShmHello) == 256);

}  // namespace brook::transport
