#pragma once
// The records shards exchange through their SPSC mailboxes. Fixed size and trivially
// copyable; a record that carries a buffer owns exactly one reference to it, which the
// receiving shard takes over.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "brook/codec/frame.hpp"
#include "brook/runtime/shared_buffer.hpp"

namespace brook::runtime {

enum class ShardMessageKind : std::uint8_t {
  new_connection,   // shard 0 -> any: `a` = accepted fd; or a connection handed to its
                    //   session's shard: buffer = the bytes received so far (Connect first);
                    //   flags: connection_shm (a Unix socket to check and set up) or
                    //   connection_shm_link (set up: `b` = its ShmLink*, owned by the record);
                    //   connection_tls (from the TLS listener) or connection_tls_stream
                    //   (handed over mid-stream: `b` = its TlsStream*, owned by the record)
  publish,          // session shard -> owner: buffer = publish frame; a = session token,
                    //   b = the session's frame number, c = its publisher key (0: not durable;
                    //   shard_durable_sessions.cpp)
  create_topic,     // session shard -> owner: buffer = publish frame with empty value, flags =
                    //   property flags, b = history bytes, c = history age ms << 32 |
                    //   history + 1 (0: the broker's defaults)
  reply,            // owner -> session shard: a = session token, request_id, code (0 = ok)
  add_selector,     // session shard -> every shard: a = subscription key, buffer = selector text,
                    //   b = the last N updates of each topic first, c = after this topic seq
                    //   + 1 (0: neither; shard_replay.cpp); flags add_selector_resume: buffer =
                    //   the selector and the client's positions in this shard's topics
  remove_selector,  // session shard -> every shard: a = subscription key
  selector_added,   // every shard -> session shard: a = subscription key (after its snapshots)
  snapshot,         // owner -> session shard: a = topic key, b = topic seq, c = subscription key,
                    //   buffer = topic's frame (path and current value), flags = has_value,
                    //   property flags and snapshot_gap; request_id | code << 32 = its epoch
  history,          // owner -> session shard: an update from the topic's history after its
                    //   snapshot (a, b, c, buffer as snapshot)
  replay_paused,    // owner -> session shard: a = subscription key; the owner sends more
                    //   history once replay_resume says the session's queue has room
  replay_resume,    // session shard -> owner: a = subscription key
  durability_probe, // session shard -> owner (with a journal): a = session token, b = the
                    //   session's inbound seq; answered once the owner's journal is durable
                    //   up to its last record (shard_journal.cpp)
  durable_through,  // owner -> session shard: the answer (a, b as the probe)
  deliver,          // owner -> subscriber shard: a = topic key, b = topic seq, buffer = frame,
                    //   flags = deliver_deltas when the topic's updates may go as deltas,
                    //   code = the publisher's shard + 1 (0: none), c = its session token
  flow_hold,        // subscriber shard -> publisher's shard: a = publisher's session token;
                    //   stop reading it (flow control)
  flow_release,     // subscriber shard -> publisher's shard: a = the token; one hold fewer
  refresh,          // session shard -> owner: a = topic key, c = session token, buffer = path
  current_value,    // owner -> session shard: the answer to refresh (a, b, c, buffer as snapshot)
  // Requests (shard_requests.cpp). The endpoint's owner is the shard its path hashes to.
  add_handler,      // handler's shard -> owner: a = session token, flags = sticky, buffer = path
  remove_handler,   // handler's shard -> owner: a = session token, buffer = path
  handler_presence, // handler's shard -> owner: a = session token, flags = away, buffer = path
  forget_requester, // requester's shard -> owner: a = session token, buffer = path (session over)
  request,          // requester's shard -> owner: a = session token, b = timeout ms,
                    //   buffer = ForwardedRequest
  handle_request,   // owner -> handler's shard: a = handler's session token, b = requester's
                    //   token, c = timeout ms << 32 | requester's shard, buffer = ForwardedRequest
  request_result,   // -> requester's shard: a = session token, code (0: answered), buffer =
                    //   type byte + answer, or the reason
  stop,             // broker -> shard
};

struct ShardMessage {
  ShardMessageKind kind;
  std::uint8_t flags = 0;
  std::uint16_t code = 0;
  std::uint32_t request_id = 0;
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  std::uint64_t c = 0;
  SharedBuffer* buffer = nullptr;
};
static_assert(sizeof(ShardMessage) == 40);

// `buffer` came with one reference and `users` holders (queues, records) now point at it: one
// atomic operation at most, however many they are.
inline void hand_over(SharedBuffer* buffer, std::uint32_t users) noexcept {
  if (!buffer) return;
  if (users == 0) buffer->release();
  else if (users > 1) buffer->add_ref(users - 1);
}

inline void release_buffers_of(const ShardMessage& m) noexcept {
  if (m.buffer) m.buffer->release();
}

// A record's buffer was written on the sending shard's core, and its first lines (the
// reference count, the frame's head and a short value) are what the receiving shard touches
// first: asked for a few records ahead, they arrive while the records in between are handled.
inline constexpr std::size_t head_prefetch_bytes = 128;  // the two lines asked for first
inline void prefetch_buffers_of(const ShardMessage& m) noexcept {
  static_assert(head_prefetch_bytes == 2 * 64);
  if (const SharedBuffer* b = m.buffer) {
    __builtin_prefetch(b, 1);
    __builtin_prefetch(reinterpret_cast<const char*>(b) + 64, 0);
  }
}

// The rest of a longer buffer, once its head (and so its size) has arrived: a 1 KiB value is
// sixteen more lines, which the owner's delta checksum otherwise fetched one miss at a time
// from the other core (12% of a 1 KiB stream's broker). At most max_prefetch_bytes: a large
// value is read sequentially, where the hardware's own prefetcher keeps up.
inline constexpr std::size_t max_prefetch_bytes = 4096;
inline void prefetch_rest_of(const ShardMessage& m) noexcept {
  const SharedBuffer* b = m.buffer;
  if (!b) return;
  const char* start = reinterpret_cast<const char*>(b);
  const std::size_t end = sizeof(SharedBuffer) + std::min<std::size_t>(b->size(), max_prefetch_bytes);
  for (std::size_t line = head_prefetch_bytes; line < end; line += 64) __builtin_prefetch(start + line, 0);
}

inline constexpr std::uint8_t connection_shm = 1;
inline constexpr std::uint8_t connection_shm_link = 2;
inline constexpr std::uint8_t connection_tls = 4;         // accepted on the TLS listener: handshake first
inline constexpr std::uint8_t connection_tls_stream = 8;  // handed over: `b` = its TlsStream*, owned by the record
inline constexpr std::uint8_t connection_ws = 16;         // accepted on a WebSocket listener: the upgrade first
inline constexpr std::uint8_t connection_ws_stream = 32;  // handed over: `c` = its WebSocketServer*, owned by the record
inline constexpr std::uint8_t snapshot_has_value = 1;
inline constexpr std::uint8_t handler_sticky = 1;  // on add_handler
inline constexpr std::uint8_t handler_away = 1;    // on handler_presence: disconnected
// Topic properties, on snapshot and create_topic.
inline constexpr std::uint8_t topic_conflates = 2;
inline constexpr std::uint8_t topic_without_deltas = 4;
inline constexpr std::uint8_t topic_not_retained = 8;
inline constexpr std::uint8_t topic_transient = 16;
inline constexpr std::uint8_t add_selector_resume = 1;
// On snapshot: updates the subscriber asked for are no longer kept (history ran out).
inline constexpr std::uint8_t snapshot_gap = 32;
// On deliver: the topic sends deltas (and retains its value), so a subscriber shard that kept
// the update before this one may send this one as a delta from it (shard_delivery.cpp).
inline constexpr std::uint8_t deliver_deltas = 1;

inline std::uint8_t topic_property_flags(const codec::TopicProperties& p) noexcept {
  return static_cast<std::uint8_t>((p.conflate ? topic_conflates : 0) |
                                   (p.deltas ? 0 : topic_without_deltas) |
                                   (p.retain ? 0 : topic_not_retained) |
                                   (p.durable ? 0 : topic_transient));
}

}  // namespace brook::runtime
