#pragma once
// A session's outbound frames, oldest first: a bounded ring of (per-session head, shared body)
// pairs. gather() turns the unsent frames into iovecs for one sendmsg; complete() releases
// what the kernel took. Bodies are references, never copies. Owned by the session's shard.
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "brook/runtime/shared_buffer.hpp"

namespace brook::runtime {

struct OutFrame {
  std::array<std::byte, 32> head;
  std::uint8_t head_bytes = 0;
  std::uint32_t body_offset = 0;
  std::uint32_t body_bytes = 0;
  SharedBuffer* body = nullptr;  // one reference owned by the queue
  std::size_t wire_bytes() const noexcept { return head_bytes + std::size_t{body_bytes}; }
};

class OutboundQueue {
 public:
  OutboundQueue(std::uint32_t max_frames, std::uint64_t max_bytes);
  ~OutboundQueue();
  OutboundQueue(const OutboundQueue&) = delete;
  OutboundQueue& operator=(const OutboundQueue&) = delete;

  // Takes over one reference of frame.body on success; on failure (full) the caller keeps it.
  bool push(const OutFrame& frame);
  // Pushes even past the limits: for the one error frame that explains a close.
  void push_unbounded(const OutFrame& frame);

  // Fills iov with the unsent frames, from the partly sent one on, and marks them in flight.
  // Heads are copied to a scratch area that stays put until complete(), because the ring may
  // grow (and move) while the kernel reads them. Returns the iovec count.
  std::size_t gather(std::span<::iovec> iov);
  // The kernel took `bytes` of the in-flight frames: release the frames it finished.
  void complete(std::size_t bytes);
  // Releases the frames that are not part of the send in flight.
  void drop_unsent();
  // Releases everything; only when no send is in flight.
  void clear();

  bool empty() const noexcept { return head_ == tail_; }
  std::size_t frames() const noexcept { return static_cast<std::size_t>(tail_ - head_); }
  std::uint64_t bytes() const noexcept { return queued_bytes_; }

 private:
  void grow();
  OutFrame& at(std::uint64_t position) noexcept { return ring_[position & (ring_.size() - 1)]; }
  const OutFrame& at(std::uint64_t position) const noexcept {
    return ring_[position & (ring_.size() - 1)];
  }

  std::vector<OutFrame> ring_;
  std::vector<std::array<std::byte, 32>> send_heads_;  // stable copies for the send in flight
  std::uint64_t head_ = 0;          // oldest frame not yet fully sent
  std::uint64_t in_flight_end_ = 0; // frames [head_, in_flight_end_) are in a send
  std::uint64_t tail_ = 0;          // next free position
  std::size_t head_sent_bytes_ = 0; // how much of frame head_ the kernel already took
  std::uint64_t queued_bytes_ = 0;
  std::uint32_t max_frames_;
  std::uint64_t max_bytes_;
};

}  // namespace brook::runtime
