#include "outbound_queue.hpp"

#include <cassert>
#include <algorithm>
#include <cstring>

namespace brook::runtime {

namespace {
// One staging block per send: 64 KiB holds ~600 small updates, more than a turn gathers.
constexpr std::size_t staging_bytes = 65536;
}  // namespace

OutboundQueue::OutboundQueue(const OutboundLimits& limits) : limits_(limits) {
  if (limits_.ring_bytes_total) *limits_.ring_bytes_total += ring_bytes();
}

OutboundQueue::~OutboundQueue() {
  clear();
  if (limits_.ring_bytes_total) *limits_.ring_bytes_total -= ring_bytes();
}

void OutboundQueue::release_frame(std::uint64_t position) noexcept {
  OutFrame& f = at(position);
  if (f.body) f.body->release();
  f.body = nullptr;
}

void OutboundQueue::release_staging() noexcept {
  if (staging_) staging_->release();
  staging_ = nullptr;
}

bool OutboundQueue::push(const OutFrame& frame) {
  // The byte limit counts what a queued frame really costs: its bytes and its entry.
  const std::uint64_t after = queued_bytes_ + frame.wire_bytes() + (frames() + 1) * entry_bytes;
  if (frames() >= limits_.max_frames || after > limits_.max_bytes) return false;
  push_unbounded(frame);
  return true;
}

const OutFrame* OutboundQueue::replaceable(std::uint64_t sequence) const noexcept {
  const std::uint64_t position = sequence - 1;
  if (sequence == 0 || position < in_flight_end_ || position >= tail_) return nullptr;
  if (position == sent_ && sent_partly_ > 0) return nullptr;  // half of it is on the wire
  return &ring_[position];
}

bool OutboundQueue::replace(std::uint64_t sequence, const OutFrame& frame) {
  if (!replaceable(sequence)) return false;
  OutFrame& old = at(sequence - 1);
  queued_bytes_ = queued_bytes_ - old.wire_bytes() + frame.wire_bytes();
  if (old.body) old.body->release();
  old = frame;
  return true;
}

void OutboundQueue::push_unbounded(const OutFrame& frame) {
  // The positions after tail_ still hold abandoned frames: release them before reuse (an
  // ended session is pushed nothing in the normal course, so this is rare).
  release_abandoned(SIZE_MAX);
  // Grows while a session's backlog (or recovery window) reaches a new high; never per
  // message in the steady state.
  const std::size_t allocated = ring_.allocated();
  ring_.prepare(head_, tail_);
  if (limits_.ring_bytes_total && ring_.allocated() != allocated)
    *limits_.ring_bytes_total += (ring_.allocated() - allocated) * entry_bytes;
  at(tail_++) = frame;
  queued_bytes_ += frame.wire_bytes();
}

std::size_t OutboundQueue::gather(std::span<::iovec> iov, BufferPool& pool) {
  assert(!send_in_flight());
  std::size_t n = 0;
  std::size_t skip = sent_partly_;
  std::byte* stage = nullptr;
  std::size_t staged = 0;
  std::size_t stage_capacity = 0;
  // Appends to the staging block, extending the last iovec when it already ends there.
  auto stage_copy = [&](const std::byte* data, std::size_t len) {
    std::byte* at_end = stage + staged;
    std::memcpy(at_end, data, len);
    staged += len;
    if (n > 0 && static_cast<std::byte*>(iov[n - 1].iov_base) + iov[n - 1].iov_len == at_end)
      iov[n - 1].iov_len += len;
    else
      iov[n++] = {at_end, len};
  };
  std::uint64_t p = sent_;
  for (; p != tail_ && n + 2 <= iov.size(); ++p) {
    OutFrame& f = at(p);
    const std::size_t head_part = skip < f.head_bytes ? f.head_bytes - skip : 0;
    const std::size_t body_skip = skip > f.head_bytes ? skip - f.head_bytes : 0;
    const std::size_t body_part = f.body_bytes - body_skip;
    const bool copy_body = f.body_bytes <= limits_.copy_body_max;
    const std::size_t to_stage = head_part + (copy_body ? body_part : 0);
    if (to_stage > 0) {
      if (!staging_) {
        staging_ = pool.allocate(staging_needed());
        stage = staging_->data();
        stage_capacity = staging_->capacity();
      }
      if (stage_capacity - staged < to_stage) break;
    }
    if (head_part > 0) stage_copy(f.head.data() + (f.head_bytes - head_part), head_part);
    f.staged_body_at = OutFrame::not_staged;
    if (body_part > 0) {
      const std::byte* body = f.body->data() + f.body_offset + body_skip;
      if (!copy_body) {
        iov[n++] = {const_cast<std::byte*>(body), body_part};
      } else {
        if (body_skip == 0) f.staged_body_at = static_cast<std::uint32_t>(staged);
        stage_copy(body, body_part);
      }
    }
    skip = 0;
  }
  in_flight_end_ = p;
  if (n == 0) release_staging();
  return n;
}

// What gather() will copy, at most staging_bytes: the block is sized to it, because it stays
// in the recovery window afterwards and an almost empty 64 KiB block per quiet send would hold
// far more memory than the bytes it retains.
std::size_t OutboundQueue::staging_needed() noexcept {
  std::size_t needed = 0;
  std::size_t skip = sent_partly_;
  for (std::uint64_t p = sent_; p != tail_ && needed < staging_bytes; ++p) {
    const OutFrame& f = at(p);
    std::size_t frame = f.head_bytes + (f.body_bytes <= limits_.copy_body_max ? f.body_bytes : 0);
    needed += frame > skip ? frame - skip : 0;
    skip = 0;
  }
  return std::min(std::max<std::size_t>(needed, 1), staging_bytes);
}

void OutboundQueue::retain_from_staging(std::uint64_t from, std::uint64_t to) noexcept {
  std::uint32_t moved = 0;
  for (std::uint64_t p = from; p != to; ++p) {
    OutFrame& f = at(p);
    if (f.staged_body_at == OutFrame::not_staged || !f.body) continue;
    if (f.body->ref_count_hint() > 1) {
      // Others hold this body too (every subscriber's window in a fan-out, or the topic's
      // retained value): keeping it costs the window nothing, while a copy would cost a
      // block per subscriber, faulted in fresh on the shard thread.
      f.staged_body_at = OutFrame::not_staged;
      continue;
    }
    f.body->release();
    f.body = staging_;
    f.body_offset = f.staged_body_at;
    f.staged_body_at = OutFrame::not_staged;
    ++moved;
  }
  if (moved > 0) staging_->add_ref(moved);
}

void OutboundQueue::complete(std::size_t bytes) {
  const std::uint64_t first_unsent = sent_;
  queued_bytes_ -= bytes;
  bytes += sent_partly_;
  while (sent_ != tail_) {
    const std::size_t size = at(sent_).wire_bytes();
    if (bytes < size) break;
    bytes -= size;
    retained_bytes_ += size;
    ++sent_;
  }
  sent_partly_ = sent_ == tail_ ? 0 : bytes;
  in_flight_end_ = sent_;
  if (staging_) retain_from_staging(first_unsent, sent_);
  release_staging();
  trim_recovery_window();
}

void OutboundQueue::trim_recovery_window() noexcept {
  // Entries count as well: 8 MiB of 40-byte deltas is 200,000 of them, 13 MiB of entries.
  while (head_ != sent_ && retained_bytes_ + (sent_ - head_) * entry_bytes > limits_.recovery_bytes) {
    retained_bytes_ -= at(head_).wire_bytes();
    release_frame(head_++);
  }
}

std::uint64_t OutboundQueue::release_unused_ring(std::size_t max_chunks) {
  const std::uint64_t freed = ring_.release_unused(head_, std::max(tail_, abandoned_end_), max_chunks) * entry_bytes;
  if (limits_.ring_bytes_total) *limits_.ring_bytes_total -= freed;
  return freed;
}

std::size_t OutboundQueue::forget_retained(std::size_t max_frames) noexcept {
  std::size_t released = 0;
  while (head_ != sent_ && released < max_frames) {
    retained_bytes_ -= at(head_).wire_bytes();
    release_frame(head_++);
    ++released;
  }
  return released;
}

void OutboundQueue::abort_send() {
  release_staging();
  queued_bytes_ += sent_partly_;
  sent_partly_ = 0;
  in_flight_end_ = sent_;
}

bool OutboundQueue::rewind(std::uint64_t last_received) {
  assert(!send_in_flight());
  // Sequence s lives at position s - 1: frames from position last_received on are resent.
  // The client may hold more than sent_ says: a send cancelled in flight may have gone out.
  if (last_received < head_ || last_received > tail_) return false;
  queued_bytes_ += sent_partly_;
  sent_partly_ = 0;
  for (std::uint64_t p = sent_; p < last_received; ++p) {  // received, so sent after all
    const std::size_t size = at(p).wire_bytes();
    queued_bytes_ -= size;
    retained_bytes_ += size;
  }
  for (std::uint64_t p = last_received; p < sent_; ++p) {  // sent, not received: again
    const std::size_t size = at(p).wire_bytes();
    retained_bytes_ -= size;
    queued_bytes_ += size;
  }
  sent_ = in_flight_end_ = last_received;
  // Frames the client confirmed are no longer needed for recovery.
  while (head_ != sent_) {
    retained_bytes_ -= at(head_).wire_bytes();
    release_frame(head_++);
  }
  return true;
}

void OutboundQueue::drop_unsent() {
  // Keep what the kernel holds, and a partly sent frame: dropping its tail would corrupt
  // the byte stream for whatever is sent after it.
  std::uint64_t keep_end = sent_ + (sent_partly_ > 0 && sent_ != tail_ ? 1 : 0);
  if (in_flight_end_ > keep_end) keep_end = in_flight_end_;
  if (keep_end > tail_) keep_end = tail_;
  for (std::uint64_t p = keep_end; p != tail_; ++p) {
    queued_bytes_ -= at(p).wire_bytes();
    release_frame(p);
  }
  tail_ = keep_end;
}

void OutboundQueue::abandon_unsent() noexcept {
  std::uint64_t keep_end = sent_ + (sent_partly_ > 0 && sent_ != tail_ ? 1 : 0);
  if (in_flight_end_ > keep_end) keep_end = in_flight_end_;
  if (keep_end >= tail_) return;
  if (abandoned_end_ < tail_) abandoned_end_ = tail_;
  // What stays unsent is the send in flight and a partly sent frame: a few frames to count.
  queued_bytes_ = 0;
  for (std::uint64_t p = sent_; p != keep_end; ++p) queued_bytes_ += at(p).wire_bytes();
  queued_bytes_ -= std::min<std::uint64_t>(queued_bytes_, sent_partly_);
  tail_ = keep_end;
}

std::size_t OutboundQueue::release_abandoned(std::size_t max_frames) noexcept {
  std::size_t released = 0;
  while (abandoned_end_ > tail_ && released < max_frames) {
    release_frame(--abandoned_end_);
    ++released;
  }
  return released;
}

void OutboundQueue::clear() {
  release_staging();
  release_abandoned(SIZE_MAX);
  for (std::uint64_t p = head_; p != tail_; ++p) release_frame(p);
  head_ = sent_ = in_flight_end_ = tail_;
  sent_partly_ = 0;
  queued_bytes_ = 0;
  retained_bytes_ = 0;
}

}  // namespace brook::runtime
