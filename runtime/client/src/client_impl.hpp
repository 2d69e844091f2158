#pragma once
// Client::Impl: one session of the client library, all that a Client holds behind its pointer.
// It owns the outbox callers write their calls into, the send state (frames on their way,
// the recovery log, the socket or shared-memory ring), the session as it lives across
// connections, and the tables the broker's frames are dispatched to (topic values,
// subscriptions, requests). Made by Client's constructor; connect() hands it to a ClientLoop,
// which runs it until it has closed and nothing of it is in flight. The Client and the loop
// share it; a Responder holds it weakly.
//
// Threads: the callers' threads make calls (through the outbox, or a direct send while the
// loop lends them the send state); the loop's thread, a ClientContext's, the process's default
// one or the Client's own ("the client thread" in the comments), runs everything else. A member that is not atomic
// and whose comment says nothing else is the loop thread's; connect() fills some before the
// loop has the session.
//
// Its code, one idea a file:
//   client.cpp            the public API: Client and ClientContext, on the callers' threads
//   client_send.hpp/.cpp  the outbox and the send state, handed between callers and the loop
//   client_turn.cpp       the session as a member of its loop: a turn, completions, teardown
//   client_commands.cpp   the callers' calls carried out on the loop thread
//   client_inbound.cpp    the broker's bytes cut into frames and dispatched by kind
//   client_values.cpp     topic values, aliases, and the subscriptions updates go to
//   client_requests.cpp   requests sent and answered, request handlers, Responder
//   client_reconnect.cpp  connecting, keep-alive, recovery and failover, the end of a session
// and, beside them, client_loop.hpp/.cpp: the loop (a context's I/O thread) that runs it, and
// client_default_context.hpp/.cpp: the process's default loop.
#include <sys/socket.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "brook/client/client.hpp"
#include "brook/codec/messages.hpp"
#include "brook/runtime/selector.hpp"
#include "brook/transport/mpsc_byte_ring.hpp"
#include "brook/transport/reactor.hpp"
#include "brook/transport/tls.hpp"
#include "client_loop.hpp"
#include "persistent_queue.hpp"
#include "sent_log.hpp"
#include "server_list.hpp"
#include "shm_client_link.hpp"

namespace brook {

namespace client_detail {

// The kinds of outbox record (MpscByteRing's record kind).
constexpr std::uint32_t record_frame = 1;    // payload: one wire frame
constexpr std::uint32_t record_command = 2;  // payload: a Command* the client thread adopts
constexpr std::uint32_t record_queued_frame = 3;  // a frame that took room in the client's queue
// Persistent queue: payload = the frame's record id (8 bytes), then the frame; `queued` as 3.
constexpr std::uint32_t record_persisted_frame = 4;
constexpr std::uint32_t record_persisted_queued_frame = 5;
constexpr std::uint32_t record_void = 6;  // claimed, then the file refused the frame: skipped

inline std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

inline Status error_status(ErrorCode code, std::string message) { return Status{code, std::move(message)}; }

// A call that travels through the outbox as a pointer (record_command): made on the caller's
// thread, adopted by the client thread, which carries it out (handle()) and frees it.
struct Command {
  enum class Kind : std::uint8_t {
    frame,        // pre-encoded frame too large for a ring record
    acked_frame,  // pre-encoded frame whose request id awaits an answer
    subscribe,
    unsubscribe,
    ping,
    error_listener,
    close_listener,
    disconnect_listener,
    reconnect_listener,
    flow_listener,
    state_listener,
    add_handler,
    remove_handler,
    request,
    close,
  };
  Kind kind = Kind::frame;
  std::vector<std::byte> frame;
  std::string text;
  std::uint64_t id = 0;
  std::uint32_t request_id = 0;
  UpdateHandler handler;
  StatusHandler status_handler;
  std::shared_ptr<std::promise<Status>> status_promise;
  std::shared_ptr<std::promise<std::chrono::nanoseconds>> ping_promise;
  std::function<void(const Status&)> error_listener;
  std::function<void(const std::string&)> close_listener;
  std::function<void(bool)> reconnect_listener;
  std::function<void(bool)> flow_listener;
  StateListener state_listener;
  RequestHandler request_handler;
  bool sticky = true;
  std::shared_ptr<std::promise<Response>> response_promise;
  ResponseHandler response_handler;
  std::chrono::steady_clock::time_point deadline{};
  std::uint64_t record = 0;  // its record in the persistent queue (0: none)
  std::uint32_t history = 0;           // subscribe: SubscribeOptions
  std::optional<std::uint64_t> since;
  // Took room in the client's queue (the caller saw it not connected): `queued_bytes` of it.
  bool queued = false;
  std::size_t queued_bytes = 0;
  // Refused before it was queued: the client thread only reports this to the call's handler.
  std::optional<Status> refused;
};

inline Response failed_response(ErrorCode code, std::string message) {
  Response r;
  r.status = Status{code, std::move(message)};
  return r;
}

}  // namespace client_detail

struct BROOK_LOCAL Client::Impl final : client_detail::LoopMember, std::enable_shared_from_this<Client::Impl> {
  struct LocalSubscription {
    runtime::Selector selector;
    UpdateHandler handler;
    StatusHandler on_subscribed;
    std::uint32_t request_id;
  };
  // A topic's value as this client holds it: what the next delta applies to, and the old
  // value handed to the application with the new one. Two buffers, swapped: no allocation
  // per update once they have grown.
  struct TopicValue {
    std::vector<std::byte> current;
    std::vector<std::byte> next;
    std::uint64_t topic_seq = 0;
    std::uint64_t epoch = 0;     // of topic_seq (TopicAdd)
    bool held = false;           // `current` is the topic's value at topic_seq
    bool awaiting_full = false;  // a delta failed; the whole value was asked for
  };
  struct Alias {
    std::string path;
    TopicType type = TopicType::string;
    std::uint64_t epoch = 0;
    bool known = false;
    TopicValue* value = nullptr;  // node of `values`, by path: survives alias resets
    // Local subscriptions whose selector matches (map nodes never move, so pointers hold).
    std::vector<LocalSubscription*> subscriptions;
  };

  explicit Impl(std::size_t ring_bytes) : outbox(ring_bytes), sent_log(16u << 20) {}

  ClientOptions options;
  int fd = -1;
  // The I/O thread this session runs on: a ClientContext's, the process's default one, or one
  // of its own (ClientOptions::own_thread). Set on the owner's thread (constructor, connect()).
  enum class LoopKind : std::uint8_t { default_context, context, own_thread };
  std::shared_ptr<client_detail::ClientLoop> loop;
  LoopKind loop_kind = LoopKind::default_context;
  bool joined = false;  // handed to the loop (connect() got that far)
  transport::Reactor* io = nullptr;  // the loop's reactor, on the loop thread
  std::uint64_t token_base = 0;      // | 0: the socket's operations, | 1: the shm doorbell
  bool tearing_down = false;         // closed: waiting for its operations in flight
  std::chrono::steady_clock::time_point teardown_deadline{};
  std::size_t drained_this_turn = 0;
  std::promise<void> left_promise;
  std::future<void> left_future = left_promise.get_future();
  // Every call becomes one record here, so the calls of a thread reach the broker in order.
  transport::MpscByteRing outbox;
  // seq_cst handshake with producers, as in the broker's shards: the loop's flag.
  std::atomic<bool> no_loop_yet{false};
  std::atomic<bool>* sleeping = &no_loop_yet;
  std::atomic<bool> no_loop_yet_posted{false};
  std::atomic<bool>* work_posted = &no_loop_yet_posted;  // the loop's posted()
  std::atomic<bool> connected{false};
  std::atomic<ClientState> state{ClientState::connecting};
  std::atomic<bool> finished{false};
  std::atomic<std::uint32_t> next_request_id{1};
  std::atomic<std::uint64_t> next_subscription_id{1};
  // Read by callers (am I the client thread?) while the thread starts: atomic.
  std::atomic<std::thread::id> client_thread_id{};
  // Owned by the client thread; other threads only call wake() through it.
  std::atomic<transport::Reactor*> reactor{nullptr};
  std::atomic<int> wakers{0};  // callers inside wake_client()
  // Callers waiting for room in a full outbox sleep until a drain makes some, rather than
  // polling: they count themselves in room_waiters, and a drain that finds any bumps
  // room_made and wakes them (a futex on it).
  std::atomic<std::uint32_t> room_waiters{0};
  std::atomic<std::uint32_t> room_made{0};
  std::atomic<std::uint64_t> outbox_waits{0};
  // Who owns the send state (out, sending, sent_log, the socket or ring to the broker, and the
  // connection flags live() reads): the client thread, except while it waits in its reactor,
  // when it is `lent` and a caller may take it for one direct send (send_directly). A caller
  // that finds its call must be queued `leaves` it for the client thread, so that the rest of
  // a burst skips it with one load until the client thread has taken it back. Held from the
  // start: the client thread takes over from connect(), and keeps it once it has ended.
  enum SendStateOwner : std::uint8_t { send_state_lent, send_state_held, send_state_left };
  std::atomic<std::uint8_t> send_state_owner{send_state_held};
  // The client thread sleeps on send_state_owner (take_back_send_state) and says so here.
  std::atomic<bool> client_waits_for_send_state{false};
  // Under the send state: when a call was last seen (taken by a caller, or drained by the
  // client thread); a call sooner after it is part of a burst.
  std::int64_t last_call_ns = 0;
  // One writer each (the holder of the send state; the client thread): read by anyone.
  std::atomic<std::uint64_t> calls_sent_by_caller{0};
  std::atomic<std::uint64_t> calls_handed_over{0};

  std::promise<Status> connected_promise;
  bool connect_answered = false;
  std::string session_id;  // written on the client thread before `connected` is set
  // ClientOptions::url, in order; fixed before the thread starts. The one in use, or -1.
  std::vector<client_detail::ServerAddress> servers;
  std::atomic<int> server_index{-1};
  // No server answered connect(): the thread starts recovering, calls wait in the queue.
  bool start_recovering = false;
  std::string start_reason;
  // Shared memory (shm://PATH): frames go through the link's rings instead of `fd`, which is
  // its Unix socket, watched only for the broker going away.
  std::unique_ptr<client_detail::ShmClientLink> shm;
  // tls:// (client_tls.cpp): the context made by connect(), and the stream of the connection
  // in use. The records of a send are written in one or more writes (`wire_written` of
  // `wire_sending`); the plaintext they carry counts as sent once all are out.
  std::shared_ptr<transport::TlsContext> tls_context;
  std::unique_ptr<transport::TlsStream> tls;
  std::vector<std::byte> wire_sending;
  std::size_t wire_written = 0;
  std::size_t wire_stream_offered = 0;
  std::vector<std::byte> tls_plain;  // received plaintext, reused
  bool shm_waiting_space = false;  // the ring to the broker was full
  bool doorbell_armed = false;

  // The session, as the client keeps it across connections.
  bool has_session = false;
  bool session_ended_by_broker = false;  // an error without request: no resumption
  std::int64_t session_number = 0;
  std::array<std::byte, codec::session_token_bytes> token{};
  std::uint64_t received_seq = 0;  // sequenced frames received from the broker
  SentLog sent_log;                // session frames written, until the broker confirms them
  std::uint64_t sending_last_seq = 0;  // the last session frame in `sending`
  // The broker no longer has our session (it restarted, the timeout passed, or this is
  // another server): the next attempt opens a new one and rebuilds it (restart_session).
  bool fresh_session = false;
  bool retry_at_once = false;
  int session_server = -1;  // the server holding our session
  // Session sequence of each call awaiting an answer: an answer means the broker has every
  // frame up to it, which need not be sent again after a failover or restart.
  std::unordered_map<std::uint32_t, std::uint64_t> answer_confirms;
  // The broker journals: only its Received lets frames go (an answer vouches for its own).
  bool confirm_on_received_only = false;

  // The persistent queue (ClientOptions::queue_path). Callers append under the lock and
  // commit to the outbox in the same hold, so the file's order is the session's; nobody
  // waits for outbox room while holding it. The client thread only try_locks it.
  std::unique_ptr<client_detail::PersistentQueue> queue_file;
  std::mutex queue_file_mutex;
  std::uint64_t queue_file_confirmed = 0;  // client thread: the last record confirmed in it
  std::vector<std::string> queue_file_warnings;  // from opening it, reported on the thread
  std::uint64_t kept_from_earlier_run = 0;        // calls it held unconfirmed, sent first
  std::string fresh_session_reason;
  // The first Connect resumes the session the persistent queue recorded, with its token.
  bool resume_with_recorded_token = false;

  // The client's queue: calls made while not connected. Callers reserve room in these
  // (reserve()); the client thread gives it back once the calls went out (or failed).
  std::atomic<std::int64_t> queue_entries_limit{ClientOptions{}.queue_entries};
  std::atomic<std::int64_t> queue_bytes_limit{ClientOptions{}.queue_bytes};
  std::atomic<std::int64_t> queue_entries_used{0};
  std::atomic<std::int64_t> queue_bytes_used{0};
  std::int64_t held_entries = 0;  // reserved calls the client thread holds until connected
  std::int64_t held_bytes = 0;
  bool close_when_flushed = false;  // close() while recovering: after the queue went out
  std::atomic<bool> close_when_flushed_hint{false};  // the same, for callers
  StateListener state_listener;
  std::uint16_t current_flags = 0;  // header flags of the frame being handled
  bool hold_out = false;           // resuming: nothing but Connect until Connected answers
  bool recovering = false;
  std::chrono::steady_clock::time_point disconnected_at{};
  std::chrono::steady_clock::time_point next_attempt{};
  unsigned attempt = 0;
  std::chrono::steady_clock::time_point last_heard{};
  std::chrono::steady_clock::time_point keepalive_sent{};  // {}: no keepalive ping outstanding

  // Client-thread state.
  codec::FrameEncoder encoder;
  codec::FrameDecoder decoder;
  // The stream still to send is `out` followed by the session frames of the log after
  // `log_queued`: a publish is copied once, into the log, and a TCP send gathers the log's
  // bytes where they are. A connection frame (ping, pong, close) first moves the log's unsent
  // frames into `out` (queue_log_tail), so the stream keeps the order the calls were made in.
  // Over TLS and shared memory, whose writes copy anyway, the log's frames go into `out`.
  std::vector<std::byte> out;
  std::uint64_t log_queued = 0;     // the log's frames up to here are in `out` or went out
  std::size_t log_tail_bytes = 0;   // the bytes of the log's frames after it (when live)
  std::vector<std::byte> sending;   // connection frames, and copies of session frames, in flight
  std::vector<::iovec> send_parts;  // what the send in flight carries: `sending`, the log's bytes
  std::size_t sending_total = 0;
  std::size_t sending_offset = 0;   // of those, what the kernel has taken
  bool send_in_flight = false;
  ::msghdr msg{};
  std::vector<::iovec> send_iov;    // send_parts from sending_offset on
  std::vector<std::byte> assembly;
  // Calls drained while the session's tables may not change (inside a dispatch, or a drain a
  // callback made) wait in `deferred`, and the calls behind them too, until run_deferred().
  bool deferring = false;
  std::vector<std::unique_ptr<client_detail::Command>> deferred;
  bool draining = false;  // inside drain_outbox: a drain nested in it would take records twice
  bool lent = false;      // the send state is with the callers: from lend() to take_back()
  bool out_full_when_lent = false;
  // A callback drained the outbox outside the session's turn: the loop gives it one soon to
  // send what was taken, and lends it nothing until then.
  bool drained_outside_turn = false;
  bool recv_armed = false;
  bool closing = false;            // close() asked for: send Close, then wait for EOF
  bool shut_down_write = false;
  bool stream_closed = false;
  std::chrono::steady_clock::time_point close_deadline{};
  std::unordered_map<std::uint64_t, LocalSubscription> subscriptions;
  std::unordered_map<std::uint32_t, std::shared_ptr<std::promise<Status>>> requests;
  std::unordered_map<std::uint64_t, std::shared_ptr<std::promise<std::chrono::nanoseconds>>> pings;
  std::uint64_t next_ping_id = 1;
  std::vector<Alias> aliases;
  // Requests: the handlers this session registered, by endpoint path, and the requests it
  // sent that have no answer yet.
  struct PendingRequest {
    std::shared_ptr<std::promise<Response>> promise;
    ResponseHandler callback;
    std::chrono::steady_clock::time_point deadline;
  };
  std::unordered_map<std::string, RequestHandler> request_handlers;
  std::unordered_map<std::string, bool> handler_sticky;  // to register them again
  std::unordered_map<std::uint32_t, PendingRequest> pending_requests;
  std::atomic<std::uint32_t> broker_max_frame_bytes{codec::default_max_frame_bytes};
  std::unordered_map<std::string, TopicValue> values;  // subscribed topics, by path
  std::size_t max_value_bytes = codec::default_max_frame_bytes;
  std::function<void(const Status&)> error_listener;
  std::function<void(const std::string&)> close_listener;
  std::function<void(const std::string&)> disconnect_listener;
  std::function<void(bool)> reconnect_listener;
  std::function<void(bool)> flow_listener;
  // The broker holds this publisher back (flow control): written by the client thread, read
  // by try_publish() on any thread.
  std::atomic<bool> flow_held{false};
  std::string close_reason;
  ErrorCode close_code = ErrorCode::not_connected;  // the broker's, when it ended the session
  // The Client was destroyed in a callback on this loop's thread: its close goes on without
  // it, and none of its callbacks runs any more (notify()).
  bool abandoned = false;

  // Every callback of the application's goes through here.
  template <class F, class... A>
  void notify(const F& callback, A&&... args) {
    if (callback && !abandoned) callback(std::forward<A>(args)...);
  }

  // ---- client_send.hpp: the send state, the callers' side (inline: every publish runs it)
  bool on_client_thread() const noexcept {
    return std::this_thread::get_id() == client_thread_id.load(std::memory_order_acquire);
  }
  // On its loop's thread, whether or not the loop has taken it yet: it must not wait for it.
  bool on_loop_thread() const noexcept { return loop && loop->thread_id() == std::this_thread::get_id(); }
  // Its loop has taken it (begin()).
  bool begun() const noexcept { return client_thread_id.load(std::memory_order_acquire) != std::thread::id{}; }
  inline Status reserve(std::size_t bytes, bool& queued);
  inline transport::MpscByteRing::Claim claim(std::size_t bytes);
  inline void committed();
  inline void wake_client();
  template <class Fill>
  bool send_directly(std::size_t bytes, Fill&& fill);
  inline void release_send_state(std::uint8_t to);
  template <class Fill>
  Status submit_persisted_frame(std::size_t frame_bytes, bool queued, Fill&& fill);

  // ---- client_send.cpp: the send state, the client thread's side; the call queues
  void give_back_reservation(std::int64_t entries, std::int64_t bytes) {
    queue_entries_used.fetch_sub(entries, std::memory_order_relaxed);
    queue_bytes_used.fetch_sub(bytes, std::memory_order_relaxed);
  }
  // Connected, with nothing holding sends back.
  bool live() const { return !recovering && !hold_out && has_session && !stream_closed; }
  // Remembers that the frame just logged is confirmed by the answer to `request_id`.
  void confirm_on_answer(std::uint32_t request_id) { answer_confirms[request_id] = sent_log.last(); }
  // A frame of this connection only (ping, pong, close): never resent.
  void append(std::span<const std::byte> frame) {
    queue_log_tail();
    out.insert(out.end(), frame.begin(), frame.end());
  }
  // Something waits to be sent; how many bytes of it.
  bool unsent() const noexcept { return !out.empty() || (!recovering && log_queued < sent_log.last()); }
  std::size_t unsent_bytes() const noexcept { return out.size() + log_tail_bytes; }
  void queue_log_tail();
  std::uint64_t set_log_queued(std::uint64_t sequence);
  void log_all_queued() noexcept {
    log_queued = sent_log.last();
    log_tail_bytes = 0;
  }
  void drop_unsent();
  void end_sending();
  // `consumed_before`: outbox.consumed() read before the claim that failed.
  bool wait_for_room(std::uint64_t consumed_before);
  void made_room();
  void wake_room_waiters();
  bool make_room_on_loop();
  Status no_room() const;
  void run_deferred();
  bool reserve_for(client_detail::Command& c, std::size_t bytes);
  void submit(client_detail::Command&& command);
  void submit_frame(std::span<const std::byte> frame);
  Status submit_persisted_command(client_detail::Command&& command);
  bool write_out_directly();
  void lend_send_state(bool drained);
  void take_back_send_state();
  std::size_t drain_outbox(std::size_t max);
  void take_reservation(std::size_t bytes);
  void give_back_held();
  void append_session(std::span<const std::byte> frame, std::uint64_t record = 0);
  void start_send();
  void send_parts_in_order(std::uint64_t last_sequence);
  void issue_send();
  void shm_send();
  void sent(int result);
  void rebase_log(std::uint64_t last_received);
  void answered(std::uint32_t request_id);
  Status open_queue_file();
  bool replayable(std::span<const std::byte> frame, std::uint32_t& request_id);
  void tend_queue_file(bool idle, bool wait = false);

  // ---- client_turn.cpp: a member of its loop: joining, turns, completions, teardown
  ~Impl() override;
  bool join_loop();
  void begin(transport::Reactor& r, std::uint64_t base) override;
  int turn() override;
  int next_wake_ms(std::chrono::steady_clock::time_point now) const;
  bool wants_turn() override;
  bool has_input() override;
  void lend() override;
  void take_back() override;
  void after_sleep() override;
  bool spins() const override;
  bool polls() const override;
  void on_completion(const transport::Completion& c, unsigned) override;
  void tear_down();
  bool done() override;
  void left(std::shared_ptr<client_detail::LoopMember> self) override;

  // ---- client_commands.cpp: the callers' calls, carried out on the client thread
  void handle(client_detail::Command&& c);
  void fail_command(client_detail::Command& c);
  void fail_command(client_detail::Command& c, const Status& closed);

  // ---- client_inbound.cpp: the broker's frames, and the shared-memory link's reads
  void on_bytes(std::span<const std::byte> data);
  void dispatch_bytes(std::span<const std::byte> data);
  std::size_t dispatch_frames(std::span<const std::byte> bytes);
  void protocol_failure(std::string reason);
  void handle_frame(std::span<const std::byte> frame);
  void on_error_frame(const codec::ErrorMsg& m);
  void set_flow_held(bool held);
  void pump_shm();
  std::optional<std::span<const std::byte>> shared_value(const codec::SharedUpdateMsg& m) const;
  void arm_doorbell();
  bool shm_quiet();

  // ---- client_values.cpp: topic values, aliases, the subscriptions updates go to
  void on_update(const codec::UpdateMsg& m);
  bool apply_delta(std::uint32_t alias, TopicValue& v, const codec::UpdateMsg& m);
  void on_topic_add(const codec::TopicAddMsg& m);
  void rematch(Alias& a);
  void add_subscription(client_detail::Command& c);
  void on_subscribed(const codec::SubscribedMsg& m);
  void remove_subscription(std::uint64_t subscription_id);

  // ---- client_requests.cpp: requests sent and answered, the handlers registered
  bool answer(std::uint32_t request_id, Status status);
  void on_request_result(const codec::RequestResultMsg& m);
  void complete(PendingRequest& r, Response response);
  void expire_requests(std::chrono::steady_clock::time_point now);
  void on_handle_request(const codec::HandleRequestMsg& m);

  // ---- client_reconnect.cpp: the connection, its recovery and failover, the session's end
  void set_state(ClientState to, const std::string& reason);
  std::span<const std::byte> connect_frame(bool resume);
  void keep_alive(std::chrono::steady_clock::time_point now);
  bool can_recover() const;
  void lost(std::string reason);
  void begin_recovery(std::string reason);
  void schedule_attempt(std::string reason);
  void give_up(std::string reason);
  void report_unsent(const std::string& reason);
  void step_recovery(std::chrono::steady_clock::time_point now);
  bool open_server(const client_detail::ServerAddress& server, std::string& error, bool& refused);
  // TLS (client_tls.cpp).
  Status make_tls_context();
  bool tls_handshake(const client_detail::ServerAddress& server, std::string& error);
  void receive_tls(std::span<const std::byte> cipher);
  void send_tls();
  bool wire_send_done(int& result);  // true: the send goes on (more records to write)
  std::string reached_server() const;
  void on_connected(const codec::ConnectedMsg& m);
  void resumed(const codec::ConnectedMsg& m, bool first_session);
  void go_live(const std::string& reason);
  void close_if_flushed();
  void restart_session(const codec::ConnectedMsg& m, const std::string& old_id);
  std::vector<codec::TopicPosition> held_positions(const runtime::Selector* selector) const;
  void end_session(const std::string& reason);
};

}  // namespace brook
