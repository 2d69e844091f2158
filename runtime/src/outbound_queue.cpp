#include "outbound_queue.hpp"

#include <bit>
#include <cstring>

namespace brook::runtime {

OutboundQueue::OutboundQueue(std::uint32_t max_frames, std::uint64_t max_bytes)
    : ring_(16), max_frames_(max_frames), max_bytes_(max_bytes) {}

OutboundQueue::~OutboundQueue() { clear(); }

void OutboundQueue::grow() {
  // Grows by doubling up to the frame limit: allocation happens only while a session's
  // backlog reaches a new high, never per message in the steady state.
  std::vector<OutFrame> bigger(ring_.size() * 2);
  for (std::uint64_t p = head_; p != tail_; ++p) bigger[p & (bigger.size() - 1)] = at(p);
  ring_.swap(bigger);
}

bool OutboundQueue::push(const OutFrame& frame) {
  if (frames() >= max_frames_ || queued_bytes_ + frame.wire_bytes() > max_bytes_) return false;
  push_unbounded(frame);
  return true;
}

void OutboundQueue::push_unbounded(const OutFrame& frame) {
  if (frames() == ring_.size()) grow();
  at(tail_++) = frame;
  queued_bytes_ += frame.wire_bytes();
}

std::size_t OutboundQueue::gather(std::span<::iovec> iov) {
  std::size_t n = 0;
  std::size_t skip = head_sent_bytes_;
  // A frame with an empty value is a head alone: one iovec, so up to iov.size() heads.
  if (send_heads_.size() < iov.size()) send_heads_.resize(iov.size());
  std::size_t heads = 0;
  std::uint64_t p = head_;
  for (; p != tail_ && n + 2 <= iov.size(); ++p) {
    const OutFrame& f = at(p);
    if (skip < f.head_bytes) {
      auto& copy = send_heads_[heads++];
      std::memcpy(copy.data(), f.head.data(), f.head_bytes);
      iov[n++] = {copy.data() + skip, f.head_bytes - skip};
      skip = 0;
    } else {
      skip -= f.head_bytes;
    }
    if (f.body_bytes > skip) {
      iov[n++] = {f.body->data() + f.body_offset + skip, f.body_bytes - skip};
    }
    skip = 0;
  }
  in_flight_end_ = p;
  return n;
}

void OutboundQueue::drop_unsent() {
  // Keep what the kernel holds, and a partly sent frame: dropping its tail would corrupt
  // the byte stream for whatever is sent after it.
  std::uint64_t keep_end = head_ + (head_sent_bytes_ > 0 && head_ != tail_ ? 1 : 0);
  if (in_flight_end_ > keep_end) keep_end = in_flight_end_;
  if (keep_end > tail_) keep_end = tail_;
  for (std::uint64_t p = keep_end; p != tail_; ++p) {
    queued_bytes_ -= at(p).wire_bytes();
    if (at(p).body) at(p).body->release();
    at(p).body = nullptr;
  }
  tail_ = keep_end;
}

void OutboundQueue::complete(std::size_t bytes) {
  queued_bytes_ -= bytes;
  bytes += head_sent_bytes_;
  while (head_ != tail_) {
    OutFrame& f = at(head_);
    if (bytes < f.wire_bytes()) break;
    bytes -= f.wire_bytes();
    if (f.body) f.body->release();
    f.body = nullptr;
    ++head_;
  }
  head_sent_bytes_ = head_ == tail_ ? 0 : bytes;
  in_flight_end_ = head_;
}

void OutboundQueue::clear() {
  for (std::uint64_t p = head_; p != tail_; ++p) {
    if (at(p).body) at(p).body->release();
    at(p).body = nullptr;
  }
  head_ = tail_ = in_flight_end_ = 0;
  head_sent_bytes_ = 0;
  queued_bytes_ = 0;
}

}  // namespace brook::runtime
