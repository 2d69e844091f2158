#pragma once
// Memory shared with one other process: an anonymous memfd, so nothing exists under a name
// another process could guess or open, and only a process that was handed the descriptor (over
// a Unix socket, SCM_RIGHTS) can map it. The creator seals its size, so the peer cannot shrink
// it under our mapping (which would make our next access fault with SIGBUS).
//
// Two kinds of segments (layouts below, all offsets from the segment's start):
//   session segment, one per shm connection, read and written by both sides:
//     [0, 64)    SessionSegmentHeader
//     [64, 192)  indices of the ring to the broker     [192, 320) indices of the ring to the client
//     page-aligned: ring data to the broker, then ring data to the client
//   broadcast segment, one per broker shard, written by the broker only (clients get a
//   read-only descriptor of a segment sealed against new writable mappings):
//     [0, 64)    BroadcastSegmentHeader          [4096, 4096 + capacity) the log
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "brook/transport/shm_ring.hpp"

namespace brook::transport {

class SharedSegment {
 public:
  SharedSegment() = default;
  // Creates and maps a new segment of at least `bytes` (rounded up to whole pages).
  // Throws std::system_error.
  static SharedSegment create(const char* name, std::size_t bytes);
  // Maps a segment received from a peer, its size taken from the descriptor. Takes ownership
  // of `fd`. Throws std::system_error.
  static SharedSegment map(int fd, bool writable);

  ~SharedSegment();
  SharedSegment(SharedSegment&& other) noexcept;
  SharedSegment& operator=(SharedSegment&& other) noexcept;
  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;

  std::byte* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }
  std::span<std::byte> bytes() const noexcept { return {data_, size_}; }
  int fd() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return data_ != nullptr; }

  // Seals the segment against every new writable mapping (ours stays writable) and returns a
  // new read-only descriptor of it, for peers that may only read. -errno on failure.
  int seal_and_open_read_only();
  // The descriptor is no longer needed once passed on; the mapping stays.
  void close_fd() noexcept;

 private:
  SharedSegment(int fd, std::byte* data, std::size_t size) noexcept
      : fd_(fd), data_(data), size_(size) {}
  void reset() noexcept;
  int fd_ = -1;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
};

inline constexpr std::uint64_t session_segment_magic = 0x3153534b4f4f5242ull;    // "BROOKSS1"
inline constexpr std::uint64_t broadcast_segment_magic = 0x3153424b4f4f5242ull;  // "BROOKBS1"

struct SessionSegmentHeader {
  std::uint64_t magic;
  std::uint64_t to_broker_offset;
  std::uint64_t to_broker_bytes;
  std::uint64_t to_client_offset;
  std::uint64_t to_client_bytes;
  std::uint64_t reserved[3];
};
static_assert(sizeof(SessionSegmentHeader) == 64);

struct BroadcastSegmentHeader {
  std::uint64_t magic;
  std::uint64_t log_offset;
  std::uint64_t log_bytes;
  // Bodies before this log position may have been overwritten (the broker's reclaim point,
  // stored with release before it writes over them; read it with std::atomic_ref).
  std::uint64_t reclaimed;
  std::uint64_t reserved[4];
};
static_assert(sizeof(BroadcastSegmentHeader) == 64);

// The two rings of a session segment, as one side sees them.
struct SessionRings {
  ShmRingIndices* to_broker;
  std::byte* to_broker_data;
  std::size_t to_broker_bytes;
  ShmRingIndices* to_client;
  std::byte* to_client_data;
  std::size_t to_client_bytes;
};

// Segment size for rings of these capacities (each rounded up to a power of two).
std::size_t session_segment_bytes(std::size_t to_broker_bytes, std::size_t to_client_bytes);
// Writes the header and empty indices into a new segment of session_segment_bytes(...).
SessionRings init_session_segment(std::span<std::byte> segment, std::size_t to_broker_bytes,
                                  std::size_t to_client_bytes);
// Reads a segment's header; nullopt when it does not describe rings inside the segment.
std::optional<SessionRings> open_session_segment(std::span<std::byte> segment);

std::size_t broadcast_segment_bytes(std::size_t log_bytes);
// Returns the log (capacity rounded up to a power of two).
std::span<std::byte> init_broadcast_segment(std::span<std::byte> segment, std::size_t log_bytes);
std::optional<std::span<const std::byte>> open_broadcast_segment(std::span<const std::byte> segment);
// The header's reclaim point of a broadcast segment (written by the broker, read by clients).
inline std::uint64_t& broadcast_reclaimed(std::byte* segment) noexcept {
  return reinterpret_cast<BroadcastSegmentHeader*>(segment)->reclaimed;
}

}  // namespace brook::transport
