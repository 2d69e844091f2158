#pragma once
// A shard: one pinned thread, one io_uring, its own connections and sessions and its own slice
// of the topic tree (the topics whose path hashes to it). Shards share nothing mutable; they
// exchange ShardMessages through one SPSC ring per ordered pair (the Mesh). Everything in a
// Shard is touched only by its thread, except `sleeping_` and the reactor's wake().
//
// Data flow of an update:
//   publisher's shard S: frame -> SharedBuffer (one copy out of the receive buffer)
//     -> mailbox S->O (or direct when S is the owner O)
//   owner O: topic seq, retained value, one `deliver` per shard with subscribers
//   subscriber shard X: one reference per subscribed session into its OutboundQueue
//     -> one sendmsg per session per loop turn, gathering every queued frame.
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <cstring>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "brook/codec/messages.hpp"
#include "brook/runtime/broker_options.hpp"
#include "brook/runtime/selector.hpp"
#include "brook/runtime/selector_index.hpp"
#include "brook/runtime/shared_buffer.hpp"
#include "brook/runtime/topic_path.hpp"
#include "brook/runtime/topic_tree.hpp"
#include "brook/transport/reactor.hpp"
#include "brook/transport/spsc_ring.hpp"
#include "outbound_queue.hpp"
#include "shard_message.hpp"

namespace brook::runtime {

inline constexpr unsigned max_shards = 64;

class Shard;

// The shards and the rings between them; created before the shard threads start.
struct Mesh {
  unsigned shard_count = 0;
  std::vector<std::unique_ptr<transport::SpscRing<ShardMessage>>> rings;  // [from * n + to]
  std::vector<Shard*> shards;
  transport::SpscRing<ShardMessage>& ring(unsigned from, unsigned to) {
    return *rings[from * shard_count + to];
  }
};

// A pooled buffer holding `text` (selectors and error messages sent between shards).
inline SharedBuffer* text_buffer(BufferPool& pool, std::string_view text) {
  SharedBuffer* b = pool.allocate(text.size());
  std::memcpy(b->data(), text.data(), text.size());
  return b;
}

struct ShardCounters {
  std::uint64_t connections_accepted = 0;
  std::uint64_t connections_closed = 0;
  std::uint64_t frames_in = 0;
  std::uint64_t bytes_in = 0;
  std::uint64_t publishes = 0;
  std::uint64_t deliveries = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t protocol_errors = 0;
  std::uint64_t refused_requests = 0;
  std::uint64_t slow_consumer_closes = 0;
  std::uint64_t mailbox_overflows = 0;
  std::uint64_t loop_turns = 0;
  std::uint64_t longest_turn_ns = 0;
};

// The topic as its owner shard sees it.
struct OwnedTopic {
  std::uint64_t key = 0;
  codec::TopicType type = codec::TopicType::string;
  std::uint64_t seq = 0;
  bool has_value = false;
  SharedBuffer* frame = nullptr;  // latest publish frame: path + current value (one ref)
  std::uint64_t interested_mask = 0;               // shards with matching subscriptions
  std::array<std::uint32_t, max_shards> interest{}; // matching subscriptions per shard
};

// A topic as a subscriber shard sees it: who here is subscribed, under which alias.
struct LocalTopic {
  struct Subscriber {
    std::uint32_t connection_slot;
    std::uint32_t alias;
  };
  std::string path;
  codec::TopicType type;
  std::vector<Subscriber> subscribers;
};

struct Subscription {
  std::uint64_t key;
  std::uint32_t request_id;
  std::uint32_t pending_shards;  // shards that have not yet confirmed add_selector
  Selector selector;
};

struct TopicBinding {
  std::uint32_t alias;
};

// One client connection and (until sessions outlive connections) its session.
struct Connection {
  explicit Connection(const OutboundLimits& limits) : out(limits) {}
  int fd = -1;
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  bool recv_armed = false;
  bool send_in_flight = false;
  bool closing = false;        // no more input; close once the queued frames are out
  bool paused = false;         // input held back by mailbox back-pressure
  bool flush_listed = false;
  bool overflowed = false;     // outbound queue full: closed as a slow consumer this turn
  bool greeted = false;        // Connect received
  std::vector<std::byte> assembly;  // bytes of frames not yet processed
  // Publishers repeat paths: the last one validated, and its owner shard.
  std::string last_publish_path;
  unsigned last_publish_owner = 0;
  ::msghdr msg{};
  std::vector<::iovec> iov;

  // Session state.
  std::string session_id;
  OutboundQueue out;
  std::uint32_t next_alias = 1;
  std::vector<Subscription> subscriptions;
  std::unordered_map<std::uint64_t, TopicBinding> bindings;  // topic key -> alias
};

class Shard final : public transport::ReactorHandler {
 public:
  Shard(unsigned index, const BrokerOptions& options, Mesh& mesh);
  ~Shard() override;

  // Runs on the shard's thread until stop is requested. `listen_fd` >= 0 only on shard 0.
  void run(int listen_fd);
  void request_stop();
  // Blocks until the shard's reactor exists (the thread constructs it).
  void wait_ready();
  // After the thread has stopped: drop every buffer reference this shard holds. The broker
  // calls it on every shard before destroying any, because a buffer may belong to another
  // shard's pool.
  void release_buffers();
  std::string describe_counters() const;

  void on_completion(const transport::Completion& completion) override;

 private:
  // Loop plumbing (shard.cpp).
  void send_to(unsigned shard, const ShardMessage& message);
  void flush_overflow();
  void wake_peers();
  bool inbound_pending() const;
  std::size_t drain_mailboxes();
  void handle_message(unsigned from, const ShardMessage& message);
  bool back_pressured() const noexcept { return overflow_count_ > 0; }

  // Connections (shard_connections.cpp).
  void adopt_connection(int fd);
  void on_recv(Connection& c, const transport::Completion& completion);
  void on_send(Connection& c, int result);
  void process_input(Connection& c, std::span<const std::byte> data);
  std::size_t process_frames(Connection& c, std::span<const std::byte> bytes);
  bool handle_frame(Connection& c, std::span<const std::byte> frame);
  void resume_paused();
  void flush_sessions();
  void start_send(Connection& c);
  void protocol_error(Connection& c, codec::ErrorCode code, std::string_view message);
  void refuse(Connection& c, codec::ErrorCode code, std::uint32_t request_id,
              std::string_view message);
  void begin_close(Connection& c);
  void maybe_release(Connection& c);
  void enqueue_control(Connection& c, std::span<const std::byte> frame);
  Connection* connection_for(std::uint64_t token);
  std::uint64_t token_of(const Connection& c) const {
    return (std::uint64_t{c.generation} << 32) | c.slot;
  }
  void mark_for_flush(Connection& c);
  // A full outbound queue is noticed mid-fan-out; the close happens after the fan-out.
  void mark_overflowed(Connection& c);
  void close_slow_consumers();

  // Owner side of topics (shard_topics.cpp).
  unsigned owner_of(std::string_view path) const;
  void on_publish(unsigned from, const ShardMessage& message);
  void on_create_topic(unsigned from, const ShardMessage& message);
  void on_add_selector(unsigned from, const ShardMessage& message);
  void on_remove_selector(unsigned from, const ShardMessage& message);
  void fan_out(OwnedTopic& topic);

  // Subscriber side (shard_delivery.cpp).
  void subscribe(Connection& c, std::uint32_t request_id, std::string_view selector_text);
  void unsubscribe(Connection& c, std::uint32_t request_id, std::string_view selector_text);
  void drop_subscriptions(Connection& c);
  void on_snapshot(const ShardMessage& message);
  void on_deliver(const ShardMessage& message);
  void on_selector_added(const ShardMessage& message);
  void on_reply(const ShardMessage& message);
  void enqueue_update(Connection& c, std::uint32_t alias, std::uint64_t topic_seq,
                      SharedBuffer* frame);
  void bind(Connection& c, std::uint64_t topic_key, const ShardMessage& snapshot);

  unsigned index_;
  const BrokerOptions& options_;
  Mesh& mesh_;
  std::unique_ptr<transport::Reactor> reactor_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stop_requested_{false};
  // seq_cst store/fence with the peers' fence/load: Dekker-style "am I asleep" handshake.
  std::atomic<bool> sleeping_{false};
  int listen_fd_ = -1;
  unsigned next_connection_shard_ = 0;

  BufferPool pool_;
  codec::FrameDecoder decoder_;
  codec::FrameEncoder encoder_;

  std::vector<std::unique_ptr<Connection>> connections_;  // by slot
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint32_t> slot_generation_;  // survives the connection, for stale tokens
  std::vector<std::uint32_t> flush_list_;
  std::vector<std::uint32_t> paused_;
  std::vector<std::uint32_t> overflowed_;
  std::size_t open_connections_ = 0;

  // Back-pressure: records that did not fit in a peer's ring wait here, in order.
  std::vector<std::deque<ShardMessage>> overflow_;
  std::size_t overflow_count_ = 0;
  std::uint64_t peers_to_wake_ = 0;  // bit per shard pushed to in this turn

  // Owner side.
  TopicTree<OwnedTopic> topics_;          // for selector matching
  TopicPathMap<OwnedTopic*> topic_by_path_;  // one hash per publish; tree nodes never move
  std::uint64_t next_topic_index_ = 1;
  SelectorIndex remote_selectors_;  // every shard's subscriptions, keyed by subscription key
  std::unordered_map<std::uint64_t, Selector> selector_of_;

  // Subscriber side.
  std::unordered_map<std::uint64_t, LocalTopic> local_topics_;            // topic key ->
  std::unordered_map<std::uint64_t, std::uint32_t> subscription_owner_;  // sub key -> slot
  std::uint64_t next_subscription_ = 1;
  std::int64_t next_session_number_ = 1;

  ShardCounters counters_;
};

}  // namespace brook::runtime
