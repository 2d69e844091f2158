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
//     -> one send per session per loop turn, gathering every queued frame.
#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "brook/codec/delta.hpp"
#include "brook/codec/messages.hpp"
#include "brook/runtime/broker_options.hpp"
#include "brook/runtime/permissions.hpp"
#include "brook/runtime/selector.hpp"
#include "brook/runtime/selector_index.hpp"
#include "brook/runtime/shared_buffer.hpp"
#include "brook/runtime/topic_path.hpp"
#include "brook/runtime/topic_tree.hpp"
#include "brook/transport/reactor.hpp"
#include "brook/transport/spsc_ring.hpp"
#include "brook/transport/tls.hpp"
#include "brook/transport/websocket.hpp"
#include "authenticator.hpp"
#include "journal_sessions.hpp"
#include "journal_topics.hpp"
#include "journal_writer.hpp"
#include "outbound_queue.hpp"
#include "rate_limited_log.hpp"
#include "shard_message.hpp"
#include "shard_metrics.hpp"
#include "shard_report.hpp"
#include "shm_broadcast_log.hpp"
#include "shm_link.hpp"
#include "topic_history.hpp"
#include "topic_journal_index.hpp"

namespace brook::runtime {

inline constexpr unsigned max_shards = 64;
// A connection's held input keeps its buffer once processed if it is no larger than this, so
// that a publisher held back turn after turn does not fault in a new one each time.
inline constexpr std::size_t max_kept_assembly_bytes = 4u << 20;

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

// Sleeps until now_ns() reaches due_ns.
void sleep_until_ns(std::uint64_t due_ns);

class Shard;

// The shards and the rings between them; created before the shard threads start.
// One shard's memory in use, on a cache line of its own.
struct alignas(64) MemoryGauge {
  std::atomic<std::uint64_t> bytes{0};
};

struct Mesh {
  unsigned shard_count = 0;
  // The memory budget (limits.max_memory_bytes, resolved) and each shard's count against it.
  // Each shard stores its own and sums everyone's once per memory check. relaxed: these are
  // estimates read a millisecond apart, and nothing else is published through them.
  std::uint64_t memory_budget = 0;
  // The TLS listener's certificates (tls.*), or null without one; replaced on SIGHUP under
  // reload_mutex (a connection keeps the context it started with).
  std::shared_ptr<const transport::TlsContext> tls;
  // The WebSocket listeners' settings (ws.*), shared by every WebSocket connection; replaced
  // on SIGHUP under reload_mutex (ws.static_dir read again).
  std::shared_ptr<const transport::WebSocketOptions> websocket;
  // auth.permissions_file as last (re)loaded, or null: every principal may do everything. A
  // reload (SIGHUP) replaces it under the mutex and moves the generation; each shard looks
  // at the generation once per turn and takes the new rules when it moved.
  std::mutex reload_mutex;  // guards permissions, tls and websocket
  std::shared_ptr<const Permissions> permissions;
  std::atomic<std::uint64_t> permissions_generation{0};
  std::unique_ptr<MemoryGauge[]> memory_used;
  MemoryGauge process_rss;  // written by shard 0
  // Shards with records waiting behind a full ring. While any has, no shard reads sockets:
  // back-pressure must reach the shard whose reads feed the full ring, which may be another
  // one (a publisher's shard feeds its topic's owner, which feeds the subscribers' shards).
  // relaxed: a hint read per frame; the rings themselves carry the data.
  alignas(64) std::atomic<unsigned> shards_overflowing{0};
  std::vector<std::unique_ptr<transport::SpscRing<ShardMessage>>> rings;  // [from * n + to]
  std::vector<Shard*> shards;
  // Shared memory: one broadcast segment per shard (written by that shard only), and the
  // read-only descriptors of all of them that every shm client is handed.
  std::vector<transport::SharedSegment> broadcast;
  std::vector<std::span<std::byte>> broadcast_logs;  // the log inside each segment
  std::vector<int> broadcast_read_only_fds;
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

// A publishing session, as a subscriber shard names it (flow control).
struct PublisherRef {
  unsigned shard = 0;
  std::uint64_t token = 0;
};

// When a subscriber's unsent queue holds its publishers back, and when it lets them go: the
// configured marks, capped at half the queue's limits in bytes and in frames.
struct FlowMarks {
  explicit FlowMarks(const BrokerOptions& o)
      : high_bytes(std::min(o.flow_high_water_bytes, o.session_queue_max_bytes / 2)),
        low_bytes(std::min(o.flow_low_water_bytes, high_bytes / 2)),
        high_frames(o.session_queue_max_frames / 2),
        low_frames(high_frames / 4) {}
  bool enabled() const noexcept { return high_bytes != 0; }
  bool over(const OutboundQueue& q) const noexcept {
    return q.bytes() >= high_bytes || q.frames() >= high_frames;
  }
  bool under(const OutboundQueue& q) const noexcept {
    return q.bytes() <= low_bytes && q.frames() <= low_frames;
  }
  std::uint64_t high_bytes, low_bytes;
  std::size_t high_frames, low_frames;
};

// The topic as its owner shard sees it.
struct OwnedTopic {
  std::uint64_t key = 0;
  codec::TopicProperties properties;
  std::uint64_t seq = 0;
  bool has_value = false;         // false for a topic that does not retain its value
  SharedBuffer* frame = nullptr;  // latest publish frame: path + current value (one ref)
  std::uint64_t epoch = 0;        // 48 bits; changes when the topic's history is lost
  HistoryLimits history_limits;   // what it keeps (set_history_limits)
  HistoryLimits memory_limits;    // what of it memory holds: all of it, unless it spills
  TopicHistory history;
  // Spills: its history limits keep more than history.memory_bytes, and it is journalled;
  // the part memory lacks is read back from the journal, where the index finds it.
  bool spills = false;
  TopicJournalIndex journal_index;
  // Durable topics: the last frame applied of each durable session that published here
  // recently (shard_durable_sessions.cpp), most recent last.
  std::vector<journal::PublisherPosition> publishers;
  std::uint64_t interested_mask = 0;               // shards with matching subscriptions
  std::array<std::uint32_t, max_shards> interest{}; // matching subscriptions per shard
};

struct TopicBinding;

// An endpoint as its owner shard sees it: the handlers registered on its path, in order, and
// which handler each requesting session sticks to.
struct EndpointHandler {
  unsigned shard;
  std::uint64_t session_token;
  bool sticky;
  bool away = false;  // its session is disconnected (it may come back within its timeout)
};
struct RequesterKey {
  unsigned shard;
  std::uint64_t session_token;
  bool operator==(const RequesterKey&) const = default;
};
struct RequesterKeyHash {
  std::size_t operator()(const RequesterKey& k) const noexcept {
    return std::hash<std::uint64_t>{}(k.session_token * 0x9e3779b97f4a7c15ull + k.shard);
  }
};
struct Endpoint {
  std::vector<EndpointHandler> handlers;
  std::size_t next = 0;  // round-robin position
  std::unordered_map<RequesterKey, std::size_t, RequesterKeyHash> sticky_handler;  // -> index
};

// A request a handler session has been given and not yet answered: where its answer goes.
struct ServedRequest {
  unsigned requester_shard;
  std::uint64_t requester_token;
  std::uint32_t request_id;
  std::uint64_t deadline_ns;
  std::string path;
};

// A topic as a subscriber shard sees it: who here is subscribed, and each one's binding (its
// alias, and its queued update for conflation). Bindings are nodes of the session's map: they
// stay put until the subscriber entry goes.
struct LocalTopic {
  struct Subscriber {
    std::uint32_t session_slot;
    TopicBinding* binding;
  };
  std::string path;
  codec::TopicType type;
  bool conflate = false;
  std::uint64_t epoch = 0;
  std::vector<Subscriber> subscribers;
  // The last update of the topic this shard had (its sequence and frame), the base of the
  // delta it sends with the next one (topics with deltas only).
  std::uint64_t kept_seq = 0;
  BufferRef kept_frame;
};

// A client's place in a topic, as a resumed subscription brings it (SubscribeMsg::positions).
struct ResumePosition {
  std::string path;
  std::uint64_t epoch = 0;
  std::uint64_t seq = 0;
};

struct Subscription {
  std::uint64_t key;
  std::uint32_t request_id;
  std::uint32_t pending_shards;  // shards that have not yet confirmed add_selector
  Selector selector;
  bool resync = false;           // re-added after a gap: its snapshots are flagged resync
  // History asked for with it (first add only: a re-add after a gap sends current values).
  std::uint32_t history = 0;
  std::uint64_t since_plus_one = 0;
  // Made again in a new session: each topic after the client's position (first add only).
  bool resume = false;
  std::vector<ResumePosition> positions;
};

// A subscription's history that this shard, as the topics' owner, sends a batch at a time
// (shard_replay.cpp).
struct Replay {
  unsigned to = 0;  // the subscriber's shard
  std::uint64_t subscription_key = 0;
  std::uint32_t history = 0;
  std::uint64_t since_plus_one = 0;
  // Resumed: where the client is in each topic (path -> epoch, seq); the others from the
  // start of their history.
  bool resume = false;
  std::unordered_map<std::string, std::pair<std::uint64_t, std::uint64_t>> positions;
  std::vector<OwnedTopic*> topics;  // the matching topics, sent in order
  std::size_t next = 0;
  bool waiting = false;    // until the subscriber's shard asks for more (replay_resume)
  bool cancelled = false;  // the subscription went while the replay ran
  // Its topics' history older than their memory, read from the journal in one pass before
  // the rest (shard_journal_replay.cpp).
  struct JournalTopic {
    OwnedTopic* topic = nullptr;
    std::uint64_t wanted_from = 0;
    std::uint64_t next_seq = 0;  // the first sequence still to send
    bool sent_first = false;     // its snapshot went: the rest go as history
    bool reached_memory = false;
  };
  bool journal_checked = false;  // which topics need the journal is decided
  struct JournalCursor {
    bool active = false;
    bool reading = false;     // a read is in flight into `buffer`
    bool exhausted = false;   // the journal has no more for them: memory has the rest
    std::vector<JournalTopic> topics;
    TopicPathMap<std::size_t> by_path;  // into topics
    std::size_t reached = 0;  // topics whose memory the pass has reached
    // Those, handed to memory: still in topics (removed when the pass ends), not unsent.
    std::unordered_set<OwnedTopic*> handed_over;
    unsigned short_reads = 0;  // in a row that held no whole record
    std::uint64_t sent = 0;   // since the last pause
    journal::SegmentPosition position;
    unsigned requested = 0;   // bytes the read in flight asked for
    std::uint64_t token = 0;
    std::vector<std::byte> buffer;
  } journal;
};

struct TopicBinding {
  std::uint32_t alias;
  // Conflating topics: the sequence of this topic's update still waiting in the session's
  // queue (0: none), which a newer update replaces.
  std::uint64_t queued_sequence = 0;
  // The topic sequence of the value the client will hold once it has read its queue (0:
  // none known): a delta from it to the next one is all the client needs.
  std::uint64_t held_topic_seq = 0;
};

// An update's bodies in the shard's broadcast log, written for its first shm subscriber
// (position + 1; 0: not yet; ~0: not shared, sent inline).
struct SharedBodies {
  std::uint64_t value_at = 0;
  std::uint64_t delta_at = 0;
};

// What a session's queue took of an update: nothing (closed or full), the value or the delta.
enum class QueuedBody : std::uint8_t { nothing, value, delta };

using SessionToken = std::array<std::byte, codec::session_token_bytes>;

struct Connection;

// A session outlives its connections: its subscriptions, topic aliases and outbound stream
// (queue and recovery window) stay on its shard until it is closed or its reconnect timeout
// passes while detached. Addressed across shards by session_token() (slot and generation).
struct Session {
  explicit Session(const OutboundLimits& limits) : out(limits) {}
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  std::string id;  // principal/number
  std::string principal;
  std::int64_t number = 0;
  SessionToken token{};
  Connection* connection = nullptr;  // null while detached
  OutboundQueue out;
  std::uint64_t inbound_seq = 0;     // session frames taken from the client
  std::uint64_t reported_inbound_seq = 0;  // the last inbound_seq told to the client (Received)
  std::uint32_t next_alias = 1;
  std::vector<Subscription> subscriptions;
  std::unordered_map<std::uint64_t, TopicBinding> bindings;  // topic key -> alias
  // Publishers repeat paths: the last one validated, and its owner shard.
  const PrincipalRules* rules = nullptr;  // its principal's permissions (Shard::rules_of)
  std::string last_publish_path;
  unsigned last_publish_owner = 0;
  std::uint32_t reconnect_timeout_ms = 0;
  std::uint64_t expires_ns = 0;      // while detached: when the session is closed
  std::uint64_t waiting_connection = 0;  // a resuming connection waiting for the old one to go
  // Requests: those this session sent and has no answer for; the endpoints it handles (path
  // -> sticky) and the requests they are serving, by the id the handler answers with; the
  // endpoints it sent requests to (their owners forget its stickiness when it ends).
  std::uint32_t requests_in_flight = 0;
  std::unordered_map<std::string, bool> handled_endpoints;
  std::unordered_map<std::uint64_t, ServedRequest> serving;
  std::uint64_t next_serving_id = 1;
  std::unordered_set<std::string> requested_endpoints;
  // Flow control (shard_flow.cpp). As a subscriber: the publishers it holds back while its
  // unsent queue is past the high-water mark, and since when. As a publisher: how many
  // subscribers hold it back; its connection is not read while any does.
  std::vector<PublisherRef> holding;
  std::uint64_t holding_since_ns = 0;
  // With a journal: the owners this session published to since its last durability probe,
  // the probes not yet answered and the inbound seq they are for (shard_journal.cpp).
  std::uint64_t unprobed_owners = 0;
  std::uint32_t probes_outstanding = 0;
  std::uint64_t probed_seq = 0;
  bool closing = false;  // the client sent Close: it ends once its frames are durable
  // Replays paused until this session's queue has room: (owner shard, subscription key).
  std::vector<std::pair<unsigned, std::uint64_t>> replays_waiting;
  // Durable sessions (shard_durable_sessions.cpp): the key its publishes are journalled
  // under (0: not durable). Restored from the journal: not yet attached since. Waiting for
  // the client's positions: its subscriptions (key 0) are added once ResumeSubscriptions
  // comes. Subscribe and Unsubscribe frames up to restored_through are in them already.
  std::uint64_t publisher_key = 0;
  std::uint64_t restored_through = 0;
  // Resumed with a journal: the frames up to here were taken before the drop; the client
  // sends again those not reported Received (they may not be durable), and they are skipped.
  std::uint64_t skip_through = 0;
  bool record_due = false;  // changed this turn: its record is written at the turn's end
  bool restored = false;
  bool awaiting_positions = false;
  std::uint32_t held_by = 0;
  std::uint64_t opened_ns = 0;
  // Publish-to-send latency is sampled: the session sequence of one live update in its queue
  // and when its publish was read (0: none sampled); recorded when a send takes it.
  std::uint64_t sampled_sequence = 0;
  std::uint64_t sampled_received_ns = 0;
  bool flush_listed = false;
  bool overflowed = false;           // queue limit reached: closed after this fan-out
  bool ended = false;                // closed: takes no frames, freed with its connection
};

// What a Connect asked for, kept while the connection waits (authentication, or the end of
// the session's previous connection).
struct PendingConnect {
  std::string principal;
  std::string credentials;
  std::int64_t session_number = 0;
  SessionToken token{};
  bool has_token = false;
  std::uint64_t last_received = 0;
  std::uint32_t reconnect_timeout_ms = 0;
  bool new_if_missing = false;  // with a token: open the named session anew if it is gone
  std::uint64_t resend_from = 0;  // ConnectMsg::resend_from
  bool transient_session = false;
  // The credentials were checked against the credentials file (never without one): only
  // then may a named session be taken over without its token.
  bool verified = false;
};

enum class ConnectionState : std::uint8_t {
  greeting,      // waiting for Connect
  handing_off,   // Connect belongs to another shard's session: moving the socket there
  waiting,       // Connect accepted, waiting for its session to be free (takeover)
  attached,      // carrying its session's frames
};

// One client socket. Frames flow for the session attached to it; connection-level frames
// (connected, ping, pong, the error that explains a close) go in `control_out`, ahead of the
// session's stream and outside its sequence numbers.
struct Connection {
  int fd = -1;
  std::uint32_t slot = 0;
  std::uint32_t generation = 0;
  ConnectionState state = ConnectionState::greeting;
  bool recv_armed = false;
  bool send_in_flight = false;
  bool session_in_send = false;  // the send in flight carries frames of the session's queue
  bool control_last = false;     // ... and its connection frames after them, not before
  bool closing = false;          // no more input; close once the queued frames are out
  bool paused = false;           // input held back by mailbox back-pressure
  bool flush_listed = false;
  bool send_failed = false;      // the socket refused a send: nothing more goes out
  bool drain_closed = false;     // the broker is stopping: the final Received and Close went out
  // The last send left bytes behind (the peer's window or our socket buffer is full): the
  // session is behind, and conflated topics replace their queued updates.
  bool congested = false;
  std::size_t offered_bytes = 0;  // what the send in flight offered the kernel
  std::vector<std::byte> assembly;  // bytes of frames not yet processed
  // While paused: the bytes at the front of `assembly` already processed (resume_input).
  std::size_t assembly_from = 0;
  Session* session = nullptr;
  std::vector<std::byte> control_out;
  std::vector<std::byte> control_sending;
  std::unique_ptr<PendingConnect> pending;
  std::uint64_t opened_ns = 0;  // accepted, or handed over by another shard
  std::uint64_t last_heard_ns = 0;
  std::uint64_t last_sent_ns = 0;  // the last time the peer took bytes (memory: who is stalled)
  std::uint64_t send_started_ns = 0;  // when the last send was handed to the kernel (coalescing)
  // A closing connection still sending its last words (a takeover's reason) is abandoned at
  // this time if it has not finished (0: never).
  std::uint64_t abandon_at_ns = 0;
  std::uint64_t ping_sent_ns = 0;  // 0: no ping outstanding
  unsigned handoff_shard = 0;
  ::msghdr msg{};
  std::vector<::iovec> iov;
  // A shared-memory connection: frames flow through its rings, and `fd` is the Unix socket.
  std::unique_ptr<ShmLink> shm;
  // Layers between Brook's stream and the socket (shard_wire.cpp): TLS (shard_tls.cpp), a
  // WebSocket (shard_websocket.cpp), or a WebSocket inside TLS. A send in flight on such a
  // connection writes `wire_sending`; the stream bytes it carries (`wire_stream_offered`, 0
  // for the layers' own: handshakes, the upgrade's answer, pongs, alerts, close frames) count
  // as sent once all of it is written.
  std::unique_ptr<transport::TlsStream> tls;
  std::unique_ptr<transport::WebSocketServer> ws;
  std::vector<std::byte> wire_sending;
  std::size_t wire_written = 0;
  std::size_t wire_stream_offered = 0;
  bool wire_partial = false;  // the socket took it in more than one write
};

class Shard final : public transport::ReactorHandler {
 public:
  Shard(unsigned index, const BrokerOptions& options, Mesh& mesh,
        Authenticator* authenticator = nullptr);
  ~Shard() override;

  // The listening sockets, by the accept token that tells their connections apart; -1: none.
  // Only shard 0 listens.
  enum Listener : unsigned { tcp_listener, shm_listener, tls_listener, ws_listener, wss_listener, listener_count };
  using Listeners = std::array<int, listener_count>;
  static constexpr Listeners no_listeners{-1, -1, -1, -1, -1};
  // Runs on the shard's thread until stop is requested.
  void run(const Listeners& listeners = no_listeners);
  void request_stop();
  // Any thread: stop taking input and send every session its queue, then a last Received and
  // a Close; drained() turns true once that is done and no mailbox holds anything.
  void request_drain();
  bool drained() const noexcept { return drained_.load(std::memory_order_acquire); }
  // Any thread: makes the shard run a turn soon (used by the authenticator's worker).
  void wake() { if (ready_.load(std::memory_order_acquire)) reactor_->wake(); }
  // Blocks until the shard's reactor exists (the thread constructs it).
  void wait_ready();
  // Before run(): the journal this shard appends to (--data-dir), and the topics it owns as
  // the journal left them, which run() restores before the shard takes any connection.
  void adopt_journal(std::unique_ptr<journal::JournalWriter> writer,
                     std::vector<journal::RestoredTopic> topics,
                     std::vector<journal::SessionRecord> sessions);
  // After the thread has stopped: drop every buffer reference this shard holds. The broker
  // calls it on every shard before destroying any, because a buffer may belong to another
  // shard's pool.
  void release_buffers();
  std::string describe_counters() const;
  // Any thread: the counters, the levels, and the detail only the shard can read (it copies
  // it out at the end of its next turn; nothing if it does not within `timeout`).
  const ShardCounters& counters() const noexcept { return counters_; }
  const ShardGauges& gauges() const noexcept { return gauges_; }
  std::optional<ShardReport> report(const ReportRequest& request, std::chrono::milliseconds timeout);
  // Any thread: the records waiting in this shard's inbound mailboxes, roughly.
  std::size_t mailbox_depth() const noexcept;

  void on_completion(const transport::Completion& completion) override;

 private:
  // Loop plumbing (shard.cpp).
  void send_to(unsigned shard, const ShardMessage& message);
  void flush_overflow();
  void wake_peers();
  bool inbound_pending() const;
  std::size_t drain_mailboxes();
  void handle_message(unsigned from, const ShardMessage& message);
  bool back_pressured() const noexcept {
    return overflow_count_ > 0 || mesh_.shards_overflowing.load(std::memory_order_relaxed) > 0;
  }
  // No frames are read from the connection: mailbox back-pressure, or flow control holding
  // its session back.
  bool input_stopped(const Connection& c) const noexcept {
    return back_pressured() || (c.session && c.session->held_by > 0);
  }

  // Connections (shard_connections.cpp).
  // `link`: a handed-over connection's ShmLink or TlsStream (as `flags` say), `ws` its
  // WebSocketServer; the new connection owns them.
  void adopt_connection(int fd, SharedBuffer* received, std::uint8_t flags, void* link,
                        transport::WebSocketServer* ws = nullptr);
  void on_recv(Connection& c, const transport::Completion& completion);
  void on_send(Connection& c, int result);
  void process_input(Connection& c, std::span<const std::byte> data);
  void hold_input(Connection& c, std::span<const std::byte> data);
  void trade_with_spare(Connection& c, std::size_t from);
  std::size_t process_frames(Connection& c, std::span<const std::byte> bytes);
  bool accepts_frames(const Connection& c) const noexcept;
  void handle_frame(Connection& c, std::span<const std::byte> frame);
  void handle_session_frame(Connection& c, Session& s, const codec::Decoded& decoded,
                            std::span<const std::byte> frame);
  void resume_paused();
  void resume_input(Connection& c);
  void resume_attached();
  void flush_sessions();
  void start_send(Connection& c);
  void send_control(Connection& c, std::span<const std::byte> frame);
  // Tells the client how many of its frames the broker has (durable, with a journal), once
  // `every` frames went unreported.
  void report_received(Connection& c, Session& s, std::uint64_t every = 256);
  void protocol_error(Connection& c, codec::ErrorCode code, std::string_view message);
  void begin_close(Connection& c);
  void maybe_release(Connection& c);
  Connection* connection_for(std::uint64_t token);
  std::uint64_t token_of(const Connection& c) const {
    return (std::uint64_t{c.generation} << 32) | c.slot;
  }
  void mark_for_flush(Connection& c);

  // Shared-memory connections (shard_shm.cpp).
  bool attach_shm(Connection& c, int fd, std::uint8_t flags, ShmLink* link);
  std::size_t poll_shm();  // bytes read
  std::size_t read_shm(Connection& c);
  void send_shm(Connection& c);
  // The oldest broadcast position an shm client may still read (`head` when none).
  std::uint64_t oldest_shared_pin(std::uint64_t head);
  // Before sleeping: asks every shm client to ring; false when one has work for us already.
  bool shm_quiet();
  void shm_awake();
  void arm_doorbell(Connection& c);
  void on_doorbell(Connection& c, int result);
  void forget_shm(Connection& c);
  // A released connection's link, kept while its client may still read what it pins.
  void retire_shm_link(std::unique_ptr<ShmLink> link);
  void sweep_draining_links(std::uint64_t now);
  void ring_client(Connection& c);
  bool doorbells_armed() const;
  // Drops a record that will never be handled (at shutdown), with what it owns.
  static void release_message(const ShardMessage& m);

  // Sessions (shard_sessions.cpp).
  unsigned session_shard(std::string_view principal, std::int64_t number) const;
  // A session in a free slot, with its queue and generation; the caller names it.
  Session& new_session();
  void on_connect(Connection& c, const codec::ConnectMsg& m);
  void open_session(Connection& c);
  void attach(Session& s, Connection& c, bool resumed);
  void detach(Session& s);
  void end_session(Session& s, codec::ErrorCode code, std::string_view reason);
  void free_session(Session& s);
  // What ended sessions queued or retained is released a bounded number of frames per turn
  // (a stalled subscriber may hold millions); a session freed before that waits in dying_.
  std::size_t release_ended_sessions();  // frames released
  void resync(Session& s);
  void resync_subscriptions(Session& s);
  void start_handoff(Connection& c, unsigned shard);
  void finish_handoff(Connection& c);
  void finish_due_handoffs();
  void check_liveness(std::uint64_t now);
  // A closing connection that has not sent its last words within grace_ns is abandoned.
  void abandon_after(Connection& c, std::uint64_t grace_ns);
  void abandon_overdue();
  // The memory budget (shard_memory.cpp): count, publish, sum, act.
  void check_memory();
  std::uint64_t memory_in_use() const noexcept;
  std::uint64_t resident_bytes();  // the process's, from /proc/self/statm
  void shed_longest_stalled(std::size_t max_sessions);
  void apply_queue_limit_policy(Session& s, std::string_view why);
  // Flow control (shard_flow.cpp).
  void hold_publisher(Session& subscriber, unsigned shard, std::uint64_t token);
  void release_publishers(Session& subscriber);
  void after_progress(Session& subscriber) {
    if (!subscriber.holding.empty() && flow_marks_.under(subscriber.out)) release_publishers(subscriber);
    if (!subscriber.replays_waiting.empty() && wants_more_history(subscriber)) resume_replays(subscriber);
  }
  void check_flow(std::uint64_t now);
  void on_flow_hold(const ShardMessage& m);
  void on_flow_release(const ShardMessage& m);
  void abandon(Connection& c);
  void on_authenticated(std::uint64_t connection_token, bool accepted);
  Session* session_for(std::uint64_t token);
  std::uint64_t session_token(const Session& s) const {
    return (std::uint64_t{s.generation} << 32) | s.slot;
  }
  void mark_for_flush(Session& s);
  void enqueue_control(Session& s, std::span<const std::byte> frame);
  // Permissions (shard_permissions.cpp): null when every principal may do everything.
  const PrincipalRules* rules_of(Session& s);
  // Connections with layers (shard_wire.cpp, shard_tls.cpp, shard_websocket.cpp).
  static bool layered(const Connection& c) noexcept { return c.tls || c.ws; }
  // No stream bytes may go yet (a handshake or upgrade not done) or ever (a layer failed).
  static bool layers_mute(const Connection& c) noexcept;
  // The layers have bytes of their own to write.
  static bool layers_have_output(const Connection& c) noexcept;
  void write_layer_output(Connection& c);
  bool send_layered(Connection& c, std::size_t iovecs);  // false: a layer failed
  void write_wire(Connection& c, std::size_t stream_bytes);
  // On a send's completion: true when it goes on (more to write, or only the layers' own
  // bytes were written); `result` becomes the stream bytes sent.
  bool wire_send_done(Connection& c, int& result);
  // Bytes in from the socket through the layers, to process_input().
  void receive_tls(Connection& c, std::span<const std::byte> cipher);
  void tls_failed(Connection& c);  // counted, and the reason logged
  void receive_ws(Connection& c, std::span<const std::byte> bytes);
  // A WebSocket ends with a close frame after the last of the stream: true when one was
  // queued now (the connection closes once it is written).
  bool send_ws_close(Connection& c);
  // After a reload: every session's rules looked up again; topics it may no longer read are
  // unbound and endpoints it may no longer handle withdrawn, at once.
  void take_permissions();
  void unbind(Session& s, std::uint64_t topic_key);
  // False, and the session told why (permission_denied), when its principal may not.
  bool permitted(Session& s, Operation operation, std::string_view path, std::uint32_t request_id);
  void refuse(Session& s, codec::ErrorCode code, std::uint32_t request_id,
              std::string_view message);
  // A full outbound queue is noticed mid-fan-out; the close happens after the fan-out.
  void mark_overflowed(Session& s);
  void close_slow_consumers();

  // Owner side of topics (shard_topics.cpp).
  unsigned owner_of(std::string_view path) const;
  void on_publish(unsigned from, const ShardMessage& message);
  void on_create_topic(unsigned from, const ShardMessage& message);

  // The journal (shard_journal.cpp).
  void restore_topics();
  // Writes the topic's state as of now, with the positions of its recent publishers;
  // returns the record's lsn.
  std::uint64_t journal_topic(const OwnedTopic& topic);
  // Writes one update of the topic (its history's, in a snapshot; or the one just applied,
  // with the position of the session that published it); returns the lsn.
  std::uint64_t journal_update(const OwnedTopic& topic, std::uint64_t seq, const SharedBuffer* frame,
                               std::uint64_t time_ns,
                               std::span<const journal::PublisherPosition> publishers = {});
  // The answer to `request_id` from shard `from` waits until `lsn` is durable.
  void acknowledge_when_durable(std::uint64_t lsn, unsigned from, std::uint32_t request_id,
                                std::uint64_t a);
  void on_journal_completion(const transport::Completion& completion);
  // The journal failed: what waited for it is refused with why.
  void refuse_pending_acks();
  bool journal_idle() const;
  // With a journal, Received tells a client only what is durable (shard_journal.cpp).
  void report_durable_received(Session& s);
  void on_durability_probe(unsigned from, const ShardMessage& message);
  void on_durable_through(const ShardMessage& message);

  // Durable sessions (shard_durable_sessions.cpp).
  void restore_sessions();
  void make_durable(Session& s);
  void journal_session(Session& s);
  // A durable session's subscriptions changed: one record for all of a turn's changes.
  void session_changed(Session& s);
  void journal_changed_sessions();
  void snapshot_sessions();
  void attach_restored(Session& s, std::uint64_t resend_from, codec::ConnectedMsg& connected);
  void reattach_awaiting_positions(Session& s, codec::ConnectedMsg& connected);
  void resume_restored_subscriptions(Session& s, const codec::ResumeSubscriptionsMsg& m);
  // A frame of a resumed session that a restored broker applied before it stopped.
  bool already_applied(const OwnedTopic& topic, std::uint64_t publisher_key, std::uint64_t frame) const;
  void record_publisher(OwnedTopic& topic, std::uint64_t publisher_key, std::uint64_t frame);
  // A new segment began: every topic's state goes into it, so that the older segments can go.
  void snapshot_topics();
  void on_add_selector(unsigned from, const ShardMessage& message);
  // History (shard_replay.cpp). Owner side: a subscription's replay, a batch per call.
  void run_replay(std::uint64_t subscription_key);
  std::size_t replay_topic(Replay& replay, OwnedTopic& topic, const Replay::JournalTopic* from_journal = nullptr);
  // The first sequence of `topic` the replay wants; since_plus_one is set when the client
  // named a position (since, or a resumed one).
  std::uint64_t wanted_from(const Replay& replay, const OwnedTopic& topic, std::uint64_t& since_plus_one) const;
  // shard_journal_replay.cpp: history older than memory, read through the reactor.
  bool start_journal_read(Replay& replay);
  bool read_journal(Replay& replay);
  std::size_t finish_journal_read(Replay& replay);
  std::size_t hand_over_to_memory(Replay& replay, const Replay::JournalTopic& topic);
  void on_journal_read(const transport::Completion& completion);
  std::size_t send_journal_records(Replay& replay, std::span<const std::byte> bytes, std::size_t& consumed);
  void send_replayed(const Replay& replay, const OwnedTopic& topic, std::uint64_t seq, SharedBuffer* frame,
                     bool as_snapshot, bool with_value, bool gap);
  bool journal_reading() const;
  void remove_unretained_segments();
  bool spills_beyond_memory(OwnedTopic& topic);
  void set_history_limits(OwnedTopic& topic);
  void on_replay_resume(const ShardMessage& message);
  std::size_t continue_replays();
  // The add_selector buffer of a resumed subscription: its selector and the positions whose
  // topics `shard` owns; and back.
  SharedBuffer* resume_buffer(const Subscription& subscription, unsigned shard);
  static std::string_view read_resume_buffer(const SharedBuffer& buffer, Replay& replay);
  // Ends the replay of a subscription that went; returns the topics it had not sent yet,
  // whose interest it never counted.
  std::vector<OwnedTopic*> cancel_replay(std::uint64_t subscription_key);
  void record_history(OwnedTopic& topic);
  // Subscriber side.
  void on_history(const ShardMessage& message);
  void on_replay_paused(unsigned from, const ShardMessage& message);
  bool wants_more_history(const Session& s) const;
  void resume_replays(Session& s);
  HistoryLimits history_limits_for(const codec::TopicProperties& properties) const;
  std::uint64_t new_topic_epoch();
  void on_remove_selector(unsigned from, const ShardMessage& message);
  // Sends update `seq` (its frame) to every shard with matching subscriptions.
  void fan_out(OwnedTopic& topic, std::uint64_t seq, SharedBuffer* frame, PublisherRef publisher);
  // With the journal: the fan-out waits until the update's record at `lsn` is durable.
  void deliver_when_durable(std::uint64_t lsn, OwnedTopic& topic, PublisherRef publisher);
  void deliver_durable_updates(bool all);
  void on_refresh(unsigned from, const ShardMessage& message);

  // Request/response (shard_requests.cpp).
  void add_handler(Session& s, const codec::AddHandlerMsg& m);
  void remove_handler(Session& s, const codec::RemoveHandlerMsg& m);
  void send_request(Session& s, const codec::RequestMsg& m);
  void answer_request(Session& s, const codec::ResponseMsg& m);
  void on_add_handler(unsigned from, const ShardMessage& message);
  void on_remove_handler(unsigned from, const ShardMessage& message);
  void on_handler_presence(unsigned from, const ShardMessage& message);
  void announce_handler_presence(Session& s, bool away);
  void on_forget_requester(unsigned from, const ShardMessage& message);
  void on_request(unsigned from, const ShardMessage& message);
  void on_handle_request(const ShardMessage& message);
  void on_request_result(const ShardMessage& message);
  void fail_request(unsigned requester_shard, std::uint64_t requester_token,
                    std::uint32_t request_id, codec::ErrorCode code, std::string_view why);
  void fail_served(Session& s, std::string_view path, std::string_view why);
  void end_requests(Session& s);
  void expire_requests(Session& s, std::uint64_t now);

  // Subscriber side (shard_delivery.cpp).
  void subscribe(Session& s, const codec::SubscribeMsg& m);
  void add_selector(Session& s, Subscription& subscription);
  // A subscription key no shard has seen yet.
  std::uint64_t new_subscription_key() noexcept { return (std::uint64_t{index_} << 48) | next_subscription_++; }
  // Every shard forgets the subscription `key` (0: a restored one never added: nothing to do).
  void withdraw_selector(std::uint64_t key);
  void unsubscribe(Session& s, std::uint32_t request_id, std::string_view selector_text);
  void drop_subscriptions(Session& s);
  void unbind_all(Session& s);
  void on_snapshot(const ShardMessage& message);
  void on_deliver(const ShardMessage& message);
  // The delta from the update this shard kept of `topic` to `frame`'s value, or null when
  // none is smaller than the value (or worth making).
  SharedBuffer* delta_from_kept(const LocalTopic& topic, const SharedBuffer& frame);
  // Keeps `frame` (update `seq`, whose reference this takes) as the base of the next delta.
  static void keep_for_next_delta(LocalTopic& topic, std::uint64_t seq, SharedBuffer* frame);
  void on_selector_added(const ShardMessage& message);
  void on_reply(const ShardMessage& message);
  // Queues `frame`'s value, or `delta` when the client holds the value it applies to. Takes no
  // references: the caller adds one for each body the queue kept.
  QueuedBody enqueue_update(Session& s, TopicBinding& binding, bool conflate,
                            std::uint64_t topic_seq, SharedBuffer* frame, SharedBuffer* delta,
                            std::uint16_t flags = codec::frame_flag_sequenced,
                            SharedBodies* shared = nullptr);
  // out.shared_at for an shm subscriber: the body's place in the broadcast log.
  std::uint64_t share_body(SharedBodies& shared, bool delta, const OutFrame& out);
  void refresh(Session& s, std::uint32_t alias);
  void on_current_value(const ShardMessage& message);
  void bind(Session& s, std::uint64_t topic_key, const ShardMessage& snapshot, bool resync);

  unsigned index_;
  const BrokerOptions& options_;
  const FlowMarks flow_marks_{options_};
  Mesh& mesh_;
  Authenticator* authenticator_;
  std::unique_ptr<transport::Reactor> reactor_;
  std::atomic<bool> ready_{false};
  std::atomic<bool> stop_requested_{false};
  std::atomic<bool> drain_requested_{false};
  std::atomic<bool> drained_{false};
  bool draining_ = false;  // input is ignored: the client sends it again to the next broker
  bool drain_step();
  // seq_cst store/fence with the peers' fence/load: Dekker-style "am I asleep" handshake.
  std::atomic<bool> sleeping_{false};
  Listeners listeners_ = no_listeners;
  std::vector<std::byte> tls_plain_;  // receive_tls's plaintext, reused
  std::vector<std::byte> ws_stream_;  // receive_ws's stream bytes, reused
  std::vector<::iovec> layered_iov_;  // send_layered's: the layers' bytes, then the stream's
  std::vector<std::uint32_t> shm_slots_;  // connections over shared memory
  std::vector<std::uint32_t> shm_polling_;
  std::vector<std::byte> shm_scratch_;    // frames copied out of a ring before they are read
  ShmBroadcastLog broadcast_;
  struct DrainingLink {
    std::unique_ptr<ShmLink> link;
    std::uint64_t until_ns;
  };
  std::vector<DrainingLink> draining_links_;
  // Links to close once this turn's submissions (doorbell writes among them) reached the kernel.
  std::vector<std::unique_ptr<ShmLink>> closing_links_;
  unsigned next_connection_shard_ = 0;

  BufferPool pool_;
  codec::FrameDecoder decoder_;
  codec::FrameEncoder encoder_;
  codec::DeltaEncoder delta_encoder_;

  std::vector<std::unique_ptr<Connection>> connections_;  // by slot
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint32_t> slot_generation_;  // survives the connection, for stale tokens
  std::vector<std::uint32_t> flush_list_;
  std::vector<std::uint32_t> paused_;
  // The large buffer a held-back connection's input last grew into, kept for the next
  // episode (of any connection here): grown again each time, its pages were given back and
  // faulted in anew, 5% of a shard's time with a flat-out publisher. Given back after a
  // second unused, or under memory pressure.
  std::vector<std::byte> spare_input_;
  std::uint64_t spare_input_used_ns_ = 0;
  std::vector<std::uint32_t> to_resume_;  // connections just attached, with input held back
  // Connections whose hand-off waits for nothing: finished by the loop, never from inside
  // the frame handling that started it (which still reads the connection).
  std::vector<std::uint64_t> handoffs_due_;  // tokens
  std::size_t open_connections_ = 0;

  // Every session queue's ring bytes (OutboundLimits::ring_bytes_total); declared before the
  // sessions, whose queues subtract from it as they go.
  std::uint64_t ring_bytes_total_ = 0;
  std::vector<std::unique_ptr<Session>> sessions_;  // by slot
  std::vector<std::uint32_t> free_session_slots_;
  std::vector<std::uint64_t> releasing_;  // tokens of ended sessions with frames to release
  std::vector<std::unique_ptr<Session>> dying_;  // freed, their frames still being released
  std::vector<std::uint32_t> session_generation_;
  std::unordered_map<std::string, std::uint32_t> session_by_id_;
  std::vector<std::uint32_t> overflowed_;  // session slots
  std::vector<std::uint32_t> holding_sessions_;  // slots of sessions holding publishers back
  std::uint64_t next_liveness_check_ns_ = 0;
  std::uint64_t last_active_ns_ = 0;  // the end of the last turn that had work (idle_spin_us)
  // When the shard last had every completion in hand: a connection's stall is judged as of
  // then, not counting the time the shard itself waited for its core.
  std::uint64_t completions_seen_ns_ = 0;
  std::shared_ptr<const Permissions> permissions_;  // this shard's copy of mesh_.permissions
  std::uint64_t permissions_generation_ = 0;
  std::uint64_t next_memory_check_ns_ = 0;
  std::uint64_t next_pool_release_ns_ = 0;
  int statm_fd_ = -1;
  std::uint64_t next_rss_read_ns_ = 0;
  std::uint64_t held_at_collect_ = 0;  // the most the shard held since mimalloc last collected
  std::uint64_t next_collect_ns_ = 0;
  std::vector<std::uint64_t> to_abandon_;  // connection tokens with an abandon_at_ns
  // Where the whole broker stood at the last memory check.
  enum class MemoryState : std::uint8_t { normal, pressure, shedding, refusing };
  MemoryState memory_state_ = MemoryState::normal;
  std::uint64_t broker_memory_used_ = 0;

  // Back-pressure: records that did not fit in a peer's ring wait here, in order.
  std::vector<std::deque<ShardMessage>> overflow_;
  std::size_t overflow_count_ = 0;
  std::uint64_t peers_to_wake_ = 0;  // bit per shard pushed to in this turn

  // Owner side.
  TopicTree<OwnedTopic> topics_;          // for selector matching
  TopicPathMap<OwnedTopic*> topic_by_path_;  // one hash per publish; tree nodes never move
  const std::string* last_published_path_ = nullptr;  // a key of topic_by_path_
  std::unique_ptr<journal::JournalWriter> journal_;
  std::vector<journal::RestoredTopic> restored_;  // until run() restores them
  std::vector<journal::SessionRecord> restored_sessions_;
  std::vector<std::byte> session_record_;  // scratch for journal_session()
  std::vector<std::uint64_t> changed_sessions_;  // tokens of sessions with record_due
  struct PendingAck {
    std::uint64_t lsn;
    unsigned from;
    std::uint32_t request_id;
    std::uint64_t a;
    std::uint64_t probed_seq = 0;  // > 0: the answer to a durability probe, not a reply
  };
  std::deque<PendingAck> pending_acks_;  // in lsn order
  struct PendingDelivery {
    std::uint64_t lsn;
    OwnedTopic* topic;
    std::uint64_t seq;
    SharedBuffer* frame;  // a reference of its own
    PublisherRef publisher;
  };
  std::deque<PendingDelivery> pending_deliveries_;  // in lsn order
  // Snapshots not yet durable, oldest first. Under load a segment can roll again before the
  // last snapshot is durable; each one, once durable, frees the segments before its own.
  struct PendingSnapshot {
    std::uint64_t last_lsn;       // its last record
    std::uint64_t segment_first;  // no earlier than the segment that holds its records
  };
  std::deque<PendingSnapshot> pending_snapshots_;
  std::uint64_t durable_snapshot_segment_ = 0;  // the segment of the last durable one (0: none)
  std::uint64_t next_retention_check_ns_ = 0;
  OwnedTopic* last_published_ = nullptr;
  std::uint64_t next_topic_index_ = 1;
  std::unordered_map<std::string, Endpoint> endpoints_;  // request endpoints owned here
  SelectorIndex remote_selectors_;  // every shard's subscriptions, keyed by subscription key
  std::unordered_map<std::uint64_t, Selector> selector_of_;
  std::vector<std::unique_ptr<Replay>> replays_;
  std::vector<std::uint64_t> replays_to_continue_;  // past their share of a turn: next turn
  std::uint64_t next_journal_read_ = 0;  // tokens of history reads from the journal
  bool stopping_ = false;                // the loop ended: no new history read starts
  bool replaying_ = false;  // run_replay() is on the stack: a nested resume only marks
  std::uint64_t epoch_state_ = 0;  // splitmix64 state for new topic epochs

  // Subscriber side.
  std::unordered_map<std::uint64_t, LocalTopic> local_topics_;            // topic key ->
  std::unordered_map<std::uint64_t, std::uint32_t> subscription_owner_;  // sub key -> session slot
  std::uint64_t next_subscription_ = 1;
  std::int64_t next_session_number_ = 1;

  ShardCounters counters_;
  ShardGauges gauges_;
  ReportDesk report_desk_;
  // The last sessions closed here, most recent last, for the HTTP side (shard_report.cpp).
  std::deque<ClosedSessionReport> closed_sessions_;
  // Kept for /api/sessions; one the broker ended (`by_broker`) is logged as well.
  void remember_closed(const Session& s, std::string_view reason, bool by_broker);
  // What the loop says on stderr about connections and sessions, a few lines a second.
  RateLimitedLog log_;
  ShardReport build_report(const ReportRequest& request);
  void store_gauges(std::uint64_t now);
  // When the frames this turn reads arrived, as far as the broker can tell: the end of the
  // wait that returned them (stamped on publishes for the publish-to-send latency).
  std::uint64_t received_clock_ns_ = 0;
  std::uint64_t send_clock_ns_ = 0;  // the start of this turn's flush_sessions()
  // Send coalescing (shard_coalescing.cpp): while this shard delivers at a high rate, a
  // connection that sent less than options_.send_coalesce_us ago waits for the rest of that
  // time, so that one send carries several updates.
  bool coalescing_ = false;
  std::uint64_t coalesce_window_start_ns_ = 0;
  std::uint64_t coalesce_window_deliveries_ = 0;  // counters_.deliveries when the window began
  std::uint64_t held_sends_due_ns_ = 0;           // the earliest held connection's time (0: none)
  void update_coalescing(std::uint64_t now);
  bool coalescing_turn() const;  // this turn's flush may hold sends back
  bool hold_send(const Connection& c) const;
  std::uint64_t coalesce_window_ns() const noexcept { return std::uint64_t{options_.send_coalesce_us} * 1000; }
  // A send took `frames` of s's frames, through session sequence `through`: counts it, and
  // the latency of the sampled update if it went.
  void note_send(Session& s, std::uint64_t frames, std::uint64_t through);
};

}  // namespace brook::runtime
