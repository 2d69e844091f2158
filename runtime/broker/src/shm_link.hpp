#pragma once
// The broker's side of a shared-memory connection: the session segment (a ring from the
// client, a ring to it) and the two eventfd doorbells. The Connection's fd is the Unix socket,
// kept open only to learn when the client is gone (kill -9 included: the kernel closes it).
#include <sys/types.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <string>

#include "brook/runtime/broker_options.hpp"
#include "brook/transport/shm_ring.hpp"
#include "brook/transport/shm_segment.hpp"

namespace brook::runtime {

struct ShmLink {
  transport::SharedSegment segment;
  transport::ShmRingReader from_client;
  transport::ShmRingWriter to_client;
  int doorbell_in = -1;   // the client writes it; read through the shard's io_uring
  int doorbell_out = -1;  // we write it to wake the client
  std::uint64_t doorbell_value = 0;  // the armed read's target
  bool doorbell_armed = false;
  bool waiting_for_space = false;  // the ring to the client was full
  std::size_t space_needed = 1;     // what the next write needs (a reference: all 48 bytes)
  // Shared update references in the ring to the client, oldest first: the broadcast log keeps
  // each body until the client has read past its reference.
  struct Pin {
    std::uint64_t ring_end;  // the ring position just after the reference
    std::uint64_t position;  // the body's position in the broadcast log
  };
  std::deque<Pin> pins;
  // Forgets the pins the client has read past (as of the last validated read position).
  void release_read_pins() noexcept {
    const std::uint64_t read = to_client.consumer_position();
    while (!pins.empty() && pins.front().ring_end <= read) pins.pop_front();
  }
  ShmLink() = default;
  ShmLink(const ShmLink&) = delete;
  ShmLink& operator=(const ShmLink&) = delete;
  ~ShmLink();
  bool corrupt() const noexcept { return from_client.corrupt() || to_client.corrupt(); }
  void close_doorbells() noexcept;
};

// Whether a peer with these ids may use shared memory (BrokerOptions::shm_allow_*).
bool shm_peer_allowed(const BrokerOptions& options, uid_t uid, gid_t gid);

// Checks the peer on a freshly accepted socket, creates its segment and doorbells and sends
// them with the hello (plus `broadcast_fds`). On refusal the hello says why, `why` too, and
// the result is null: the caller closes the socket.
std::unique_ptr<ShmLink> accept_shm_peer(int fd, const BrokerOptions& options,
                                         std::span<const int> broadcast_fds, std::string& why);

}  // namespace brook::runtime
