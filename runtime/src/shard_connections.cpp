// Connections on a shard: multishot receive, frame reassembly, dispatch of inbound frames,
// one gathered sendmsg per connection per turn, and an orderly close that never frees a
// connection while the kernel still holds one of its buffers.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <variant>

#include "brook/runtime/topic_path.hpp"
#include "brook/transport/tcp.hpp"
#include "shard.hpp"

namespace brook::runtime {

namespace {
constexpr std::size_t max_iovecs = 1024;  // IOV_MAX on Linux
constexpr std::uint32_t generation_mask = (1u << 24) - 1;

template <class... F>
struct overloaded : F... {
  using F::operator()...;
};
template <class... F>
overloaded(F...) -> overloaded<F...>;

}  // namespace

Connection* Shard::connection_for(std::uint64_t token) {
  auto slot = static_cast<std::uint32_t>(token & 0xffffffffu);
  auto generation = static_cast<std::uint32_t>(token >> 32);
  if (slot >= connections_.size() || !connections_[slot]) return nullptr;
  Connection* c = connections_[slot].get();
  return c->generation == generation ? c : nullptr;
}

void Shard::adopt_connection(int fd) {
  if (open_connections_ >= options_.max_connections_per_shard) {
    ++counters_.refused_requests;
    ::close(fd);
    return;
  }
  transport::tune_connection(fd);
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(connections_.size());
    connections_.emplace_back();
  }
  if (slot_generation_.size() <= slot) slot_generation_.resize(slot + 1, 0);
  std::uint32_t generation = slot_generation_[slot] = (slot_generation_[slot] + 1) & generation_mask;
  connections_[slot] = std::make_unique<Connection>(OutboundLimits{
      options_.session_queue_max_frames, options_.session_queue_max_bytes, 0});
  Connection& c = *connections_[slot];
  c.fd = fd;
  c.slot = slot;
  c.generation = generation;
  ++open_connections_;
  c.recv_armed = true;
  reactor_->recv_multishot(fd, token_of(c));
}

void Shard::on_recv(Connection& c, const transport::Completion& completion) {
  if (completion.result > 0) {
    counters_.bytes_in += static_cast<std::uint64_t>(completion.result);
    if (!c.closing) process_input(c, completion.data);
  }
  if (completion.more) return;
  c.recv_armed = false;
  if (c.closing) {
    maybe_release(c);
    return;
  }
  if (completion.result > 0 || completion.result == -ENOBUFS) {
    // The multishot receive ended without an error (or ran out of provided buffers, which
    // is back-pressure): arm it again unless input is paused.
    if (!c.paused) {
      c.recv_armed = true;
      reactor_->recv_multishot(c.fd, token_of(c));
    }
    return;
  }
  if (completion.result == -ECANCELED && c.paused) return;
  // EOF or a socket error: the peer is gone, and so is everything queued for it.
  c.out.drop_unsent();
  begin_close(c);
}

void Shard::process_input(Connection& c, std::span<const std::byte> data) {
  if (c.paused || back_pressured()) {
    c.assembly.insert(c.assembly.end(), data.begin(), data.end());
    if (!c.paused) {
      c.paused = true;
      paused_.push_back(c.slot);
      if (c.recv_armed) reactor_->cancel(transport::Op::recv, token_of(c));
    }
    return;
  }
  if (!c.assembly.empty()) {
    // Complete the frame that straddled the previous receive buffer, copying only its bytes.
    if (c.assembly.size() < codec::frame_header_bytes) {
      std::size_t take = std::min(codec::frame_header_bytes - c.assembly.size(), data.size());
      c.assembly.insert(c.assembly.end(), data.begin(), data.begin() + take);
      data = data.subspan(take);
      if (c.assembly.size() < codec::frame_header_bytes) return;
    }
    auto split = codec::split_frame(c.assembly, options_.max_frame_bytes);
    if (split.status == codec::SplitStatus::need_more) {
      std::size_t take = std::min<std::size_t>(split.size - c.assembly.size(), data.size());
      c.assembly.insert(c.assembly.end(), data.begin(), data.begin() + take);
      data = data.subspan(take);
      split = codec::split_frame(c.assembly, options_.max_frame_bytes);
      if (split.status == codec::SplitStatus::need_more) return;
    }
    std::size_t used = process_frames(c, c.assembly);
    if (c.closing) return;
    c.assembly.erase(c.assembly.begin(), c.assembly.begin() + static_cast<std::ptrdiff_t>(used));
    if (!c.assembly.empty()) {
      // Back-pressure stopped us mid-way: keep everything, in order, for resume_paused().
      process_input(c, data);
      return;
    }
  }
  std::size_t used = process_frames(c, data);
  if (c.closing) return;
  auto rest = data.subspan(used);
  if (back_pressured() && !rest.empty()) {
    process_input(c, rest);  // pauses and keeps the rest
    return;
  }
  c.assembly.assign(rest.begin(), rest.end());
}

std::size_t Shard::process_frames(Connection& c, std::span<const std::byte> bytes) {
  std::size_t used = 0;
  while (!c.closing && !back_pressured()) {
    auto split = codec::split_frame(bytes.subspan(used), options_.max_frame_bytes);
    if (split.status == codec::SplitStatus::need_more) break;
    if (split.status == codec::SplitStatus::too_large) {
      protocol_error(c, codec::ErrorCode::frame_too_large,
                     "frame of " + std::to_string(split.size) + " bytes exceeds the limit of " +
                         std::to_string(options_.max_frame_bytes));
      break;
    }
    if (split.status == codec::SplitStatus::malformed) {
      protocol_error(c, codec::ErrorCode::malformed_frame, "malformed frame header");
      break;
    }
    ++counters_.frames_in;
    handle_frame(c, bytes.subspan(used, split.size));
    used += split.size;
  }
  return used;
}

bool Shard::handle_frame(Connection& c, std::span<const std::byte> frame) {
  codec::Decoded decoded = decoder_.decode(frame);
  if (!decoded.ok()) {
    protocol_error(c, codec::ErrorCode::malformed_frame,
                   std::string("malformed frame: ") + std::string(codec::to_string(decoded.error)));
    return false;
  }
  if (!c.greeted) {
    auto* connect = std::get_if<codec::ConnectMsg>(&decoded.message);
    if (!connect) {
      protocol_error(c, codec::ErrorCode::not_connected, "the first frame must be connect");
      return false;
    }
    if (connect->protocol_version != codec::wire_version) {
      protocol_error(c, codec::ErrorCode::protocol_version,
                     "protocol version " + std::to_string(connect->protocol_version) +
                         " is not supported (broker speaks " +
                         std::to_string(codec::wire_version) + ")");
      return false;
    }
    c.greeted = true;
    // Broker-chosen session numbers are negative and unique across shards.
    std::int64_t number = -((next_session_number_++ - 1) * mesh_.shard_count + index_ + 1);
    std::string principal = connect->principal.empty() ? "anonymous" : std::string(connect->principal);
    c.session_id = principal + "/" + std::to_string(number);
    enqueue_control(c, encoder_.connected(c.session_id, options_.max_frame_bytes));
    return true;
  }
  std::visit(
      overloaded{
          [&](const codec::PublishMsg& m) {
            if (c.last_publish_path.empty() || m.path != c.last_publish_path) {
              if (!is_valid_topic_path(m.path)) {
                refuse(c, codec::ErrorCode::invalid_path, m.request_id,
                       "invalid topic path '" + std::string(m.path) + "'");
                return;
              }
              c.last_publish_path = m.path;
              c.last_publish_owner = owner_of(m.path);
            }
            SharedBuffer* copy = pool_.allocate(frame.size());
            std::memcpy(copy->data(), frame.data(), frame.size());
            send_to(c.last_publish_owner, {ShardMessageKind::publish, 0, 0, m.request_id,
                                           token_of(c), index_, 0, copy});
          },
          [&](const codec::CreateTopicMsg& m) {
            if (!is_valid_topic_path(m.path)) {
              refuse(c, codec::ErrorCode::invalid_path, m.request_id,
                     "invalid topic path '" + std::string(m.path) + "'");
              return;
            }
            SharedBuffer* copy = pool_.allocate(codec::publish_frame_bytes(m.path.size(), 0));
            codec::write_publish(copy->data(), m.request_id, m.path, m.type,
                                 std::span<const std::byte>{});
            send_to(owner_of(m.path), {ShardMessageKind::create_topic, 0, 0, m.request_id,
                                       token_of(c), index_, 0, copy});
          },
          [&](const codec::SubscribeMsg& m) { subscribe(c, m.request_id, m.selector); },
          [&](const codec::UnsubscribeMsg& m) { unsubscribe(c, m.request_id, m.selector); },
          [&](const codec::PingMsg& m) { enqueue_control(c, encoder_.pong(m.id, m.sent_ns)); },
          [&](const codec::CloseMsg&) { begin_close(c); },
          [&](const codec::ConnectMsg&) {
            protocol_error(c, codec::ErrorCode::unknown_frame, "connect sent twice");
          },
          [&](const auto&) {
            protocol_error(c, codec::ErrorCode::unknown_frame,
                           "frame not accepted from a client");
          }},
      decoded.message);
  return !c.closing;
}

void Shard::resume_paused() {
  auto paused = std::move(paused_);
  paused_.clear();
  for (std::uint32_t slot : paused) {
    Connection* c = connections_[slot].get();
    if (!c || !c->paused) continue;
    c->paused = false;
    if (c->closing) {
      maybe_release(*c);
      continue;
    }
    std::vector<std::byte> held;
    held.swap(c->assembly);
    process_input(*c, held);
    if (!c->paused && !c->closing && !c->recv_armed) {
      c->recv_armed = true;
      reactor_->recv_multishot(c->fd, token_of(*c));
    }
  }
}

void Shard::mark_for_flush(Connection& c) {
  if (c.flush_listed) return;
  c.flush_listed = true;
  flush_list_.push_back(c.slot);
}

void Shard::flush_sessions() {
  if (!overflowed_.empty()) close_slow_consumers();
  for (std::size_t i = 0; i < flush_list_.size(); ++i) {
    Connection* c = connections_[flush_list_[i]].get();
    if (!c) continue;
    c->flush_listed = false;
    if (!c->send_in_flight && !c->out.empty()) start_send(*c);
    if (c->closing) maybe_release(*c);
  }
  flush_list_.clear();
}

void Shard::start_send(Connection& c) {
  std::size_t wanted = std::min(max_iovecs, c.out.frames() * 2);
  if (c.iov.size() < wanted) c.iov.resize(std::max<std::size_t>(wanted, 64));
  std::size_t n = c.out.gather(c.iov, pool_);
  if (n == 0) return;
  c.msg = {};
  c.msg.msg_iov = c.iov.data();
  c.msg.msg_iovlen = n;
  c.send_in_flight = true;
  reactor_->sendmsg(c.fd, &c.msg, token_of(c));
}

void Shard::on_send(Connection& c, int result) {
  c.send_in_flight = false;
  if (result < 0) {
    c.out.abort_send();
    c.out.clear();
    begin_close(c);
    maybe_release(c);
    return;
  }
  counters_.bytes_out += static_cast<std::uint64_t>(result);
  c.out.complete(static_cast<std::size_t>(result));
  if (!c.out.empty()) mark_for_flush(c);
  if (c.closing) maybe_release(c);
}

void Shard::enqueue_control(Connection& c, std::span<const std::byte> frame) {
  SharedBuffer* buffer = pool_.allocate(frame.size());
  std::memcpy(buffer->data(), frame.data(), frame.size());
  OutFrame out{};
  out.body = buffer;
  out.body_bytes = static_cast<std::uint32_t>(frame.size());
  if (c.closing || c.overflowed || !c.out.push(out)) {
    buffer->release();
    if (!c.closing) mark_overflowed(c);
    return;
  }
  mark_for_flush(c);
}

void Shard::mark_overflowed(Connection& c) {
  if (c.overflowed) return;
  c.overflowed = true;
  overflowed_.push_back(c.slot);
}

void Shard::close_slow_consumers() {
  for (std::uint32_t slot : overflowed_) {
    Connection* c = connections_[slot].get();
    if (!c) continue;
    ++counters_.slow_consumer_closes;
    protocol_error(*c, codec::ErrorCode::queue_full,
                   "outbound queue full (" + std::to_string(c->out.frames()) + " frames, " +
                       std::to_string(c->out.bytes()) +
                       " bytes): session closed as a slow consumer");
  }
  overflowed_.clear();
}

void Shard::refuse(Connection& c, codec::ErrorCode code, std::uint32_t request_id,
                   std::string_view message) {
  ++counters_.refused_requests;
  enqueue_control(c, encoder_.error(code, request_id, message));
}

void Shard::protocol_error(Connection& c, codec::ErrorCode code, std::string_view message) {
  if (c.closing) return;
  if (code != codec::ErrorCode::queue_full) ++counters_.protocol_errors;
  // The session ends: what was queued for it no longer matters, the reason does.
  c.out.drop_unsent();
  auto frame = encoder_.error(code, 0, message);
  SharedBuffer* buffer = pool_.allocate(frame.size());
  std::memcpy(buffer->data(), frame.data(), frame.size());
  OutFrame out{};
  out.body = buffer;
  out.body_bytes = static_cast<std::uint32_t>(frame.size());
  c.out.push_unbounded(out);
  begin_close(c);
}

void Shard::begin_close(Connection& c) {
  if (!c.closing) {
    c.closing = true;
    if (c.recv_armed) reactor_->cancel(transport::Op::recv, token_of(c));
    drop_subscriptions(c);
  }
  mark_for_flush(c);
}

void Shard::maybe_release(Connection& c) {
  if (!c.closing || c.send_in_flight || c.recv_armed || !c.out.empty()) return;
  if (c.flush_listed) return;  // flush_sessions() comes back here
  ::shutdown(c.fd, SHUT_RDWR);
  ::close(c.fd);
  ++counters_.connections_closed;
  --open_connections_;
  std::uint32_t slot = c.slot;
  connections_[slot].reset();
  free_slots_.push_back(slot);
}

}  // namespace brook::runtime
