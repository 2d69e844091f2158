// Shared-memory connections on a shard. Frames come and go through the session segment's
// rings instead of the socket, in the same wire format, so everything above the connection
// (sessions, queues, conflation, recovery) is the code TCP uses:
//
//   in:  ring from the client --copy--> shm_scratch_ --> process_input()  (as a receive)
//   out: connection frames, then the session's queue --copy--> ring to the client; an update
//        body shared by several subscribers is written once to the shard's broadcast log and
//        each ring gets a reference to it
//
// Bytes are copied out of the ring before they are parsed: the client can still write them,
// and a frame checked in shared memory could be changed between the check and its use.
// Each turn polls every shm connection; a shard about to sleep raises the rings' waiting flags
// so that a client writing to an idle shard rings its doorbell (an eventfd read by io_uring).
#include <algorithm>
#include <array>
#include <cerrno>

#include "shard.hpp"

namespace brook::runtime {

namespace {
constexpr std::size_t shm_read_batch = 256 * 1024;  // per connection per turn
// A released connection's client may still be reading the references left in its ring (its
// last frames, read after it sees the socket close): their bodies stay pinned this long.
constexpr std::uint64_t draining_ns = 10'000'000'000ull;
}  // namespace

void Shard::arm_doorbell(Connection& c) {
  c.shm->doorbell_armed = true;
  reactor_->read(c.shm->doorbell_in, &c.shm->doorbell_value, sizeof c.shm->doorbell_value,
                 token_of(c));
}

void Shard::on_doorbell(Connection& c, int result) {
  if (!c.shm) return;
  c.shm->doorbell_armed = false;
  if (c.closing) {
    maybe_release(c);
    return;
  }
  if (c.state == ConnectionState::handing_off) {
    if (!c.paused) finish_handoff(c);
    return;
  }
  // The ring is polled every turn: the doorbell only has to wake us, so any result will do.
  // A doorbell that fails for good is left unarmed (the shard still wakes every idle period).
  if ((result >= 0 || result == -EINTR || result == -ECANCELED) &&
      !stop_requested_.load(std::memory_order_relaxed))
    arm_doorbell(c);
}

void Shard::forget_shm(Connection& c) {
  auto it = std::find(shm_slots_.begin(), shm_slots_.end(), c.slot);
  if (it != shm_slots_.end()) {
    *it = shm_slots_.back();
    shm_slots_.pop_back();
  }
}

std::size_t Shard::poll_shm() {
  // A copy: reading may end or hand off a connection, which changes the list.
  shm_polling_.assign(shm_slots_.begin(), shm_slots_.end());
  std::size_t read = 0;
  for (std::uint32_t slot : shm_polling_) {
    Connection* c = connections_[slot].get();
    if (!c || !c->shm) continue;
    read += read_shm(*c);
    if (!c->shm) continue;
    ShmLink& link = *c->shm;
    if (!link.pins.empty()) {
      link.to_client.writable();  // refreshes the client's read position
      link.release_read_pins();
    }
    if (link.waiting_for_space &&
        (link.to_client.writable() >= link.space_needed || link.to_client.corrupt())) {
      link.waiting_for_space = false;
      mark_for_flush(*c);
    }
  }
  return read;
}

std::size_t Shard::read_shm(Connection& c) {
  ShmLink& link = *c.shm;
  if (c.closing || c.paused || !accepts_frames(c) || input_stopped(c)) return 0;
  std::size_t total = 0;
  bool wake_client = false;
  while (total < shm_read_batch) {
    auto bytes = link.from_client.readable();
    if (bytes.empty()) break;
    const std::size_t n = std::min(bytes.size(), shm_read_batch - total);
    if (shm_scratch_.size() < total + n) shm_scratch_.resize(std::max(total + n, shm_read_batch));
    std::memcpy(shm_scratch_.data() + total, bytes.data(), n);
    total += n;
    wake_client |= link.from_client.consume(n);
  }
  if (wake_client) ring_client(c);
  if (link.from_client.corrupt()) {
    protocol_error(c, codec::ErrorCode::malformed_frame,
                   "shared memory: the ring's indices are corrupt");
    return total;
  }
  if (total == 0) return 0;
  counters_.bytes_in += total;
  c.last_heard_ns = now_ns();
  c.ping_sent_ns = 0;
  process_input(c, std::span<const std::byte>(shm_scratch_.data(), total));
  return total;
}

// Connection frames first, then the session's: an update whose body is in the broadcast log
// goes as a 48-byte reference to it (whole or not at all: the client reads it in place), any
// other frame as its bytes, split wherever the ring fills.
void Shard::send_shm(Connection& c) {
  ShmLink& link = *c.shm;
  auto& ring = link.to_client;
  std::size_t written = 0;
  bool stopped = false;
  // Connection frames go between whole session frames (a ping inside a frame would become
  // part of its value): true once none is left to write.
  auto write_control = [&] {
    if (c.control_out.empty()) return true;
    const std::size_t n = ring.write(c.control_out);
    c.control_out.erase(c.control_out.begin(), c.control_out.begin() + static_cast<std::ptrdiff_t>(n));
    written += n;
    return c.control_out.empty();
  };
  link.space_needed = 1;
  Session* s = c.state == ConnectionState::attached ? c.session : nullptr;
  if (!(s && s->out.mid_frame())) stopped = !write_control();
  // A closing connection sends its session's frames only as an ending session's last words.
  if (!stopped && s && !s->out.empty() && (!c.closing || s->ended)) {
    const std::uint64_t sent_before = s->out.oldest_unsent_sequence() - 1;
    s->out.send_by_copy([&](const OutFrame& f, std::size_t skip) -> std::size_t {
      if (skip == 0 && !write_control()) return 0;  // at a frame boundary: connection frames first
      if (skip == 0 && f.shared_at != 0 && broadcast_.live(f.shared_at - 1)) {
        std::array<std::byte, codec::shared_update_bytes> reference;
        codec::write_shared_update(reference.data(), f.head.data(), f.shared_at - 1, f.body_bytes,
                                   static_cast<std::uint16_t>(index_));
        if (!ring.write_whole(reference)) {
          link.space_needed = reference.size();
          return 0;
        }
        link.pins.push_back({ring.position(), f.shared_at - 1});
        written += reference.size();
        ++counters_.shared_deliveries;
        return f.wire_bytes();
      }
      std::size_t taken = 0;
      if (skip < f.head_bytes) {
        const std::size_t want = f.head_bytes - skip;
        taken = ring.write(std::span<const std::byte>(f.head.data() + skip, want));
        if (taken < want) {
          written += taken;
          return taken;
        }
        skip = f.head_bytes;
      }
      const std::size_t body_skip = skip - f.head_bytes;
      taken += ring.write(std::span<const std::byte>(f.body->data() + f.body_offset + body_skip,
                                                     f.body_bytes - body_skip));
      written += taken;
      return taken;
    });
    const std::uint64_t sent_through = s->out.oldest_unsent_sequence() - 1;
    note_send(*s, sent_through - sent_before, sent_through);
    stopped = !s->out.empty();
  }
  if (!c.control_out.empty()) stopped = (s && s->out.mid_frame()) || !write_control() || stopped;
  if (ring.corrupt()) {
    // The client wrote nonsense over its read position: its session ends, and nothing more
    // can go to it.
    protocol_error(c, codec::ErrorCode::malformed_frame,
                   "shared memory: the ring's indices are corrupt");
    c.send_failed = true;
    c.control_out.clear();
    begin_close(c);  // flush_sessions() releases it, after this call
    return;
  }
  if (written > 0 && ring.publish()) ring_client(c);
  if (written > 0) c.last_sent_ns = now_ns();
  if (written > 0 && s) after_progress(*s);
  counters_.bytes_out += written;
  link.waiting_for_space = stopped;
  c.congested = stopped;
}

void Shard::ring_client(Connection& c) {
  // Through io_uring: the writes of a turn reach the kernel in one submission. The descriptor
  // stays open until that submission (retire_shm_link), so the write cannot reach another file.
  static const std::uint64_t one = 1;
  reactor_->write(c.shm->doorbell_out, &one, sizeof one, token_of(c));
}

void Shard::retire_shm_link(std::unique_ptr<ShmLink> link) {
  link->to_client.writable();
  link->release_read_pins();
  if (!link->pins.empty()) draining_links_.push_back({std::move(link), now_ns() + draining_ns});
  else closing_links_.push_back(std::move(link));
}

void Shard::sweep_draining_links(std::uint64_t now) {
  std::erase_if(draining_links_, [this, now](DrainingLink& d) {
    d.link->to_client.writable();
    d.link->release_read_pins();
    if (!d.link->pins.empty() && !d.link->corrupt() && now < d.until_ns) return false;
    closing_links_.push_back(std::move(d.link));
    return true;
  });
}

std::uint64_t Shard::oldest_shared_pin(std::uint64_t head) {
  sweep_draining_links(now_ns());
  for (auto& d : draining_links_) head = std::min(head, d.link->pins.front().position);
  for (std::uint32_t slot : shm_slots_) {
    Connection* c = connections_[slot].get();
    if (!c || !c->shm || c->shm->pins.empty()) continue;
    c->shm->to_client.writable();  // refreshes the client's read position
    c->shm->release_read_pins();
    if (!c->shm->pins.empty()) head = std::min(head, c->shm->pins.front().position);
  }
  return head;
}

bool Shard::shm_quiet() {
  bool quiet = true;
  for (std::uint32_t slot : shm_slots_) {
    Connection* c = connections_[slot].get();
    if (!c || !c->shm || c->closing) continue;
    ShmLink& link = *c->shm;
    if (!c->paused && accepts_frames(*c) && !input_stopped(*c) && link.from_client.prepare_to_sleep())
      quiet = false;
    if (link.waiting_for_space && link.to_client.wait_for_space(link.space_needed)) quiet = false;
  }
  return quiet;
}

void Shard::shm_awake() {
  for (std::uint32_t slot : shm_slots_)
    if (Connection* c = connections_[slot].get(); c && c->shm) c->shm->from_client.awake();
}

}  // namespace brook::runtime
