#pragma once
// A session's outbound stream: a ring of (per-session head, shared body) frames numbered by
// their position. The position of a frame plus one is its session sequence number, so the
// same ring is both the send queue and the recovery buffer (DESIGN.md: "recovery buffers are
// the outbound rings themselves"):
//
//   head_            sent_          in_flight_end_        tail_
//     | retained, sent |  in the send  |   queued, unsent    |
//
// Frames the kernel has taken stay in the ring, bounded by recovery_bytes, until they fall out
// of the window; rewind() makes them unsent again for a client that reconnects and says the
// last sequence it received, and the same bytes go out again. Owned by the session's shard.
//
// A small frame that went out is retained from the staging block its send copied it into,
// not from its own body: the body goes back to its pool while it is still in the cache, and
// the window holds a few dense blocks instead of one cold block per frame (with 8 MiB of
// 40-byte deltas that is 200,000 blocks, and trimming each one was a cache miss). A body that
// others still hold (a fan-out's subscribers, the topic's retained value) is kept instead:
// it costs nothing more, and 1,000 subscribers' copies of it cost 1,000 blocks.
#include <sys/uio.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "brook/runtime/shared_buffer.hpp"
#include "chunked_ring.hpp"

namespace brook::runtime {

struct OutFrame {
  static constexpr std::uint32_t not_staged = UINT32_MAX;
  std::array<std::byte, 32> head;
  std::uint8_t head_bytes = 0;
  std::uint32_t body_offset = 0;
  std::uint32_t body_bytes = 0;
  // Where gather() copied the whole body into its staging block (not_staged: it did not).
  std::uint32_t staged_body_at = not_staged;
  SharedBuffer* body = nullptr;  // one reference owned by the queue
  // Shared memory: the body's position in the shard's broadcast log plus one (0: not there).
  std::uint64_t shared_at = 0;
  std::size_t wire_bytes() const noexcept { return head_bytes + std::size_t{body_bytes}; }
};

struct OutboundLimits {
  std::uint32_t max_frames = 1u << 20;         // unsent frames
  std::uint64_t max_bytes = 64ull << 20;       // unsent bytes
  std::uint64_t recovery_bytes = 8ull << 20;   // sent bytes kept for replay
  // Bodies up to this size are copied next to their heads in one staging buffer per send:
  // the kernel's cost is per iovec, and for small frames it dwarfs the copy.
  std::uint32_t copy_body_max = 512;
  // The owner's total of its queues' ring bytes (the memory budget's count), kept up to date
  // as rings grow and go; null: not counted.
  std::uint64_t* ring_bytes_total = nullptr;
};

class OutboundQueue {
 public:
  // What one entry of the ring costs, counted against the limits with the frame's bytes.
  static constexpr std::uint64_t entry_bytes = sizeof(OutFrame);

  explicit OutboundQueue(const OutboundLimits& limits);
  ~OutboundQueue();
  OutboundQueue(const OutboundQueue&) = delete;
  OutboundQueue& operator=(const OutboundQueue&) = delete;

  // The session sequence number the next pushed frame gets (the first is 1).
  std::uint64_t next_sequence() const noexcept { return tail_ + 1; }
  // The sequence of the last frame pushed (0 before any).
  std::uint64_t last_sequence() const noexcept { return tail_; }

  // Takes over one reference of frame.body on success; on failure (full) the caller keeps it.
  bool push(const OutFrame& frame);
  // Conflation: puts `frame` in place of the frame with session sequence `sequence` if that
  // one is still unsent and not in a send (the caller writes the same sequence into the new
  // head). Takes over frame.body's reference on success; false leaves everything as it was.
  bool replace(std::uint64_t sequence, const OutFrame& frame);
  // The frame replace() would replace, or null when it is sent, in a send, or partly sent.
  const OutFrame* replaceable(std::uint64_t sequence) const noexcept;
  // Pushes even past the limits: for the one error frame that explains a close.
  void push_unbounded(const OutFrame& frame);

  // Fills iov with the unsent frames, from the partly sent one on, and marks them in flight.
  // Heads and small bodies are copied into a staging buffer from `pool` that stays put until
  // complete(); larger bodies are referenced. Returns the iovec count.
  std::size_t gather(std::span<::iovec> iov, BufferPool& pool);
  // Copying transports (shared memory): hands the unsent frames, in order, to
  // take(frame, skip), skip being the bytes of it already sent, which returns how many of the
  // rest it took; stops at the first frame it does not take whole. What it took counts as sent
  // at once, as complete() does. Returns the bytes taken. Only while no send is in flight.
  template <class Take>
  std::size_t send_by_copy(Take&& take) {
    std::size_t total = 0;
    std::size_t skip = sent_partly_;
    for (std::uint64_t p = sent_; p != tail_; ++p) {
      const OutFrame& f = at(p);
      const std::size_t rest = f.wire_bytes() - skip;
      const std::size_t n = take(f, skip);
      total += n;
      if (n < rest) break;
      skip = 0;
    }
    complete(total);
    return total;
  }

  // The kernel took `bytes` of the in-flight frames: they move into the recovery window.
  void complete(std::size_t bytes);
  // The send in flight failed or the connection is gone: nothing is in flight any more, and
  // the partly sent frame counts as unsent.
  void abort_send();

  // Makes every frame after `last_received` unsent again, for a reconnected client (and the
  // frames up to it sent, should a cancelled send have delivered more than it reported).
  // False when those frames are no longer retained (the gap cannot be filled) or when
  // `last_received` is beyond the last frame pushed. Only while no send is in flight.
  bool rewind(std::uint64_t last_received);
  // Releases every unsent frame (not the send in flight). Sequence numbers continue.
  void drop_unsent();
  // The same at once for a session that ends: the frames leave the queue now, their bodies
  // are released by release_abandoned() a bounded number at a time (a stalled subscriber may
  // hold millions). No push may follow until they are all released.
  void abandon_unsent() noexcept;
  // Releases up to max_frames abandoned frames; returns how many.
  std::size_t release_abandoned(std::size_t max_frames) noexcept;
  // Abandoned or retained frames are left to release.
  bool holds_frames_to_release() const noexcept { return abandoned_end_ > tail_ || head_ != sent_; }
  // Releases everything; only when no send is in flight. Sequence numbers continue.
  void clear();

  bool empty() const noexcept { return sent_ == tail_; }  // nothing left to send
  // Part of the next frame is on the wire: nothing else may go before the rest of it.
  bool mid_frame() const noexcept { return sent_partly_ > 0; }
  std::uint64_t frames_in_flight() const noexcept { return in_flight_end_ - sent_; }
  // The last session sequence a send has taken (the frames up to it are sent or in flight).
  std::uint64_t in_flight_through() const noexcept { return in_flight_end_; }
  bool send_in_flight() const noexcept { return in_flight_end_ != sent_ || staging_; }
  std::size_t frames() const noexcept { return static_cast<std::size_t>(tail_ - sent_); }
  std::uint64_t bytes() const noexcept { return queued_bytes_; }
  std::uint64_t retained_bytes() const noexcept { return retained_bytes_; }
  std::uint64_t retained_frames() const noexcept { return sent_ - head_; }
  // The ring's own memory: its entries at their high-water mark.
  std::uint64_t ring_bytes() const noexcept { return ring_.allocated() * entry_bytes; }
  // Frees the ring's chunks that hold nothing live (memory pressure), at most max_chunks;
  // returns the bytes.
  std::uint64_t release_unused_ring(std::size_t max_chunks = SIZE_MAX);
  std::size_t ring_chunks() const noexcept { return ring_.allocated_chunks(); }
  // Releases up to max_frames of the oldest sent frames (memory pressure: a reconnect then
  // resyncs instead of replaying); returns how many.
  std::size_t forget_retained(std::size_t max_frames) noexcept;
  // The sequence of the next frame a send would start with.
  std::uint64_t oldest_unsent_sequence() const noexcept { return sent_ + 1; }
  // The oldest sequence rewind() can still resend from.
  std::uint64_t oldest_retained_sequence() const noexcept { return head_ + 1; }

 private:
  void release_frame(std::uint64_t position) noexcept;
  void trim_recovery_window() noexcept;
  void release_staging() noexcept;
  OutFrame& at(std::uint64_t position) noexcept { return ring_[position]; }
  std::size_t staging_needed() noexcept;
  void retain_from_staging(std::uint64_t from, std::uint64_t to) noexcept;

  ChunkedRing<OutFrame> ring_;
  SharedBuffer* staging_ = nullptr;  // heads and small bodies of the send in flight
  std::uint64_t head_ = 0;           // oldest retained frame
  std::uint64_t sent_ = 0;           // oldest frame not yet fully sent
  std::uint64_t in_flight_end_ = 0;  // frames [sent_, in_flight_end_) are in a send
  std::uint64_t tail_ = 0;           // next free position
  std::uint64_t abandoned_end_ = 0;  // frames [tail_, abandoned_end_) wait for release
  std::size_t sent_partly_ = 0;      // how much of frame sent_ the kernel already took
  std::uint64_t queued_bytes_ = 0;   // unsent, counting the partly sent frame's rest
  std::uint64_t retained_bytes_ = 0;
  OutboundLimits limits_;
};

}  // namespace brook::runtime
