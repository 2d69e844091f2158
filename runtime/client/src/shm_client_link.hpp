#pragma once
// The client's side of a shared-memory connection (shm://PATH): connects to the broker's Unix
// socket, receives the segments and doorbells (one message, SCM_RIGHTS), maps them and exposes
// the two rings. The socket stays open: the broker closing it (or dying) is how the client
// learns the connection is gone.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "brook/transport/shm_ring.hpp"
#include "brook/transport/shm_segment.hpp"

namespace brook::client_detail {

struct ShmClientLink {
  int socket_fd = -1;
  transport::SharedSegment session;
  std::vector<transport::SharedSegment> broadcast;   // one per broker shard, read-only
  std::vector<std::span<const std::byte>> broadcast_logs;
  std::vector<const std::uint64_t*> broadcast_reclaimed;  // each segment's reclaim point
  transport::ShmRingWriter to_broker;
  transport::ShmRingReader from_broker;
  int doorbell_to_broker = -1;
  int doorbell_in = -1;
  std::uint64_t doorbell_value = 0;  // the armed read's target

  ShmClientLink() = default;
  ShmClientLink(const ShmClientLink&) = delete;
  ShmClientLink& operator=(const ShmClientLink&) = delete;
  ~ShmClientLink();

  // Connects and sets up; null and `error` filled when that fails or the broker refuses
  // (then `*refused` is set: trying again will not help).
  static std::unique_ptr<ShmClientLink> open(const std::string& path, int timeout_ms,
                                             std::string& error, bool* refused = nullptr);
  void ring_broker() const noexcept;
  // Gives the socket to the caller's own bookkeeping (it closes it).
  int release_socket() noexcept {
    int fd = socket_fd;
    socket_fd = -1;
    return fd;
  }
};

}  // namespace brook::client_detail
