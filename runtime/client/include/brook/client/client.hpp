#pragma once
// brook::Client: a session with a Brook broker. Every method is safe to call from any thread:
// calls become commands on a lock-free queue that the client's io_uring thread drains (one
// per process by default, shared by its Clients: ClientContext). Callbacks (update handlers,
// error and close listeners) run on that client thread, so they must not block; they may call
// the client's methods. Calls made by one thread reach the broker in the order they were made.
//
//   brook::Client client;
//   if (auto s = client.connect({.url = "tcp://127.0.0.1:9090"}); !s) return fail(s.message);
//   client.subscribe("Distribution/Football//", [](const brook::Update& u) { ... });
//   client.publish("Distribution/Football/NFL/Odds", R"({"Home_Odds":"+120"})");
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "brook/export.hpp"
#include "brook/protocol.hpp"

namespace brook {

struct Status {
  ErrorCode code = ErrorCode::none;
  std::string message;
  explicit operator bool() const noexcept { return code == ErrorCode::none; }
  static Status ok() { return {}; }
};

// $BROOK_URL, else tcp://127.0.0.1:9090.
BROOK_API std::string default_url();

enum class ClientState : std::uint8_t {
  connecting,  // before the broker's first answer
  connected,
  recovering,  // no connection (dropped, or no server reachable yet): polling the servers
  closed,      // dead: the session is over and the client takes no more calls
};
BROOK_API std::string_view to_string(ClientState state);

// Given to the reconnection strategy after a connection drops and after each failed attempt.
// The strategy calls reconnect() (now or after a delay) or abort() (closes the session);
// calling neither aborts. It runs on the client thread and must not block.
class ReconnectControl {
 public:
  unsigned attempt() const noexcept { return attempt_; }  // 1 for the first try
  std::chrono::milliseconds since_disconnect() const noexcept { return since_; }
  const std::string& reason() const noexcept { return reason_; }  // why the last try failed
  void reconnect(std::chrono::milliseconds after = std::chrono::milliseconds{0}) {
    decided_ = true;
    abort_ = false;
    after_ = after;
  }
  void abort() {
    decided_ = true;
    abort_ = true;
  }

 private:
  friend class Client;
  ReconnectControl(unsigned attempt, std::chrono::milliseconds since, std::string reason)
      : attempt_(attempt), since_(since), reason_(std::move(reason)) {}
  unsigned attempt_;
  std::chrono::milliseconds since_;
  std::string reason_;
  bool decided_ = false;
  bool abort_ = true;
  std::chrono::milliseconds after_{0};
  friend struct ClientReconnectAccess;
};
using ReconnectStrategy = std::function<void(ReconnectControl&)>;

// How the persistent queue (ClientOptions::queue_path) reaches the disk.
enum class QueueFsync : std::uint8_t {
  never,   // the OS writes back when it likes: survives the process's death, not the machine's
  batch,   // fdatasync at most every 10 ms, and when the queue is flushed or closed
  always,  // fdatasync after every call: survives a power cut, at the disk's pace
};

struct ClientOptions {
  // tcp://HOST:PORT, tls://HOST:PORT (brookd --tls-listen), or shm://PATH (brookd --shm PATH);
  // several, separated by commas, are tried in that order on connect and on every
  // reconnection attempt (server()).
  std::string url = default_url();
  // tls:// servers: the CAs that may sign the broker's certificate (PEM; empty: the system's
  // store), and a certificate of this client's own with its key (mutual TLS). The broker's
  // certificate must name the URL's host unless tls_verify is false (tests only: anyone in
  // the path could then read and change everything).
  std::string tls_ca_file{};
  std::string tls_cert_file{};
  std::string tls_key_file{};
  bool tls_verify = true;
  std::string principal{};          // empty: anonymous
  std::string credentials{};
  // 0: the broker numbers the session. N > 0 names it principal/N: connecting again with the
  // same name (and the principal's credentials) resumes it.
  std::int64_t session_number = 0;
  // A named session on a broker with a data dir is journalled: it survives a restart of the
  // broker (kill -9 included), and this client resumes it with nothing missed and nothing
  // applied twice. false: the broker keeps it in memory only (a restart ends it, and the
  // client goes on in a new session).
  bool durable_session = true;
  std::string client_name = "brook-client";
  std::chrono::milliseconds connect_timeout{5000};
  // How long the broker keeps the session after the connection drops (within its maximum);
  // zero: no reconnection, a lost connection closes the session.
  std::chrono::milliseconds reconnect_timeout{60'000};
  // The default strategy tries at once, then every reconnect_delay until reconnect_timeout.
  std::chrono::milliseconds reconnect_delay{5'000};
  ReconnectStrategy reconnect_strategy{};  // empty: the default
  // Ping the broker after this long without hearing from it; no answer within another
  // interval counts as a lost connection.
  std::chrono::milliseconds ping_interval{90'000};
  // Connection attempts (each tries every server in turn) after connect() finds no server,
  // and after a drop; -1: no limit. With retries allowed, connect() to servers that are all
  // down returns at once and the client starts in `recovering`. 0: connect() fails, and a
  // drop closes the session. A session the broker no longer has (it restarted, the reconnect
  // timeout passed, or the client failed over to another server) is replaced by a new one:
  // subscriptions and request handlers are registered again, unconfirmed calls sent again.
  std::int64_t retries = -1;
  // Calls made while not connected (publish, subscribe, unsubscribe, send_request, ...) wait
  // in the client's queue and go out in call order once connected, close() last. At most
  // queue_entries calls and queue_bytes of frames; -1: no limit; 0: no queue, such calls fail
  // at once (not_connected). A full queue refuses the call (queue_full): never a silent drop.
  std::int64_t queue_entries = 1'000'000;
  std::int64_t queue_bytes = 64ll << 20;
  // close() while calls wait for a connection gives them this long to go out.
  std::chrono::milliseconds close_timeout{10'000};
  // A persistent queue: publish() and create_topic() write their frame to this file (an
  // append-only log of checksummed records; one process at a time) before they return, and
  // the broker's confirmations are recorded there. A process started again with the same file
  // sends what the broker never confirmed first, in order: after a kill -9 while the broker
  // was away, exactly once. A torn or corrupt tail is dropped and reported (on_error).
  std::string queue_path{};
  QueueFsync queue_fsync = QueueFsync::batch;
  // Session frames already written to the socket, kept to resend those the broker did not
  // get before a drop. Older ones are forgotten past this size (reported if then needed).
  std::size_t recovery_bytes = 16u << 20;
  // Calls are queued in a ring of this many bytes (rounded up to a power of two); publish()
  // waits while it is full: back-pressure on a publisher that outruns the network, instead of
  // unbounded memory. Fixed when the Client is constructed (Client(outbox_bytes)).
  std::size_t outbox_bytes = 1u << 20;
  // The client's thread busy-polls instead of sleeping: the lowest latency over shared
  // memory, at the price of a core.
  bool spin = false;
  // A publish() made while the client's thread sleeps with nothing to send is written to the
  // socket (or ring) by the caller's own thread: one thread hand-off fewer, the lowest latency
  // for a paced feed. Calls in a burst still go through the client's thread, gathered into
  // one send. false: every call goes through the client's thread.
  bool send_from_caller = true;
  // An I/O thread of its own for this Client, instead of the process's default context (see
  // ClientContext): for callbacks that may block, or a spinning client that should not make
  // every session's thread spin. Read by connect(); a Client made on a ClientContext ignores it.
  bool own_thread = false;
};

// Reads ClientOptions from a TOML file's [client] table: url, retries, reconnect_delay_ms,
// reconnect_timeout_ms, connect_timeout_ms, ping_interval_ms, queue_entries, queue_bytes,
// close_timeout_ms, queue_path, queue_fsync ("never", "batch", "always"), principal,
// session_number, client_name, send_from_caller and own_thread (true or false). Absent keys
// keep their value.
// Returns "" or why the file was refused.
BROOK_API std::string load_client_options(const std::string& path, ClientOptions& options);
// Then the environment, which wins over the file: BROOK_URL, BROOK_RETRIES,
// BROOK_RECONNECT_DELAY_MS, BROOK_PING_INTERVAL_MS, BROOK_QUEUE_ENTRIES, BROOK_QUEUE_BYTES,
// BROOK_QUEUE_PATH, BROOK_QUEUE_FSYNC, BROOK_TLS_CA, BROOK_TLS_CERT, BROOK_TLS_KEY,
// BROOK_SEND_FROM_CALLER and BROOK_OWN_THREAD (1, 0, true, false).
// Returns "" or which variable is malformed.
BROOK_API std::string apply_client_environment(ClientOptions& options);

// One change of a topic's value: (path, old value, new value, topic sequence). The client keeps
// each subscribed topic's value and applies the broker's deltas to it, so `value` is always
// the whole new value, checked against the delta's checksum. For a json topic, read it as
// text() or parsed (brook/client/json.hpp).
struct Update {
  std::string_view path;
  TopicType type;
  std::uint64_t topic_seq;
  std::uint64_t session_seq;
  std::span<const std::byte> value;      // the new value; valid during the callback only
  std::span<const std::byte> old_value;  // the value it replaces (empty for the first one)
  // The current value sent after a gap: the broker could not fill it (its recovery buffer was
  // overrun while the client was away), or a delta failed and the client asked for the whole
  // value, or history asked for (SubscribeOptions) was no longer kept and this is the oldest
  // update left. Updates between the last one received (or asked for) and this one were
  // missed. Never silent.
  bool resync = false;
  UpdateEncoding encoding = UpdateEncoding::full;  // how it travelled: whole, or as a delta
  std::size_t wire_bytes = 0;                      // bytes of the value or delta on the wire
  // Names the topic's history: it changes only when the broker lost that history (restarted
  // without a data dir, storage wiped). A topic_seq kept from another epoch means nothing
  // now: start again instead of asking for the updates after it.
  std::uint64_t epoch = 0;
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(value.data()), value.size()};
  }
  std::string_view old_text() const noexcept {
    return {reinterpret_cast<const char*>(old_value.data()), old_value.size()};
  }
};

using UpdateHandler = std::function<void(const Update&)>;
// Every change of ClientState: from, to, and why (which server was reached, what failed).
using StateListener = std::function<void(ClientState from, ClientState to, const std::string& reason)>;

// The answer to send_request(): the handler's payload, or why there is none (status codes
// no_handler, handler_gone, handler_failed with the handler's message, request_timeout,
// too_many_requests, or not_connected).
struct Response {
  Status status;
  TopicType type = TopicType::string;
  std::vector<std::byte> payload;
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(payload.data()), payload.size()};
  }
};
using ResponseHandler = std::function<void(Response)>;

// A request as its handler sees it.
struct Request {
  std::string_view path;
  std::string_view requester;  // the requesting session's id, principal/N
  TopicType type;
  std::span<const std::byte> payload;  // valid during the handler call only
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(payload.data()), payload.size()};
  }
};

// Answers one request, once: respond() or fail(), from any thread, during the handler call or
// later. Copies share the one answer; the first call wins, later ones do nothing. When the
// last copy goes away unanswered, the request fails ("no response").
class BROOK_API Responder {
 public:
  void respond(std::span<const std::byte> payload, TopicType type = TopicType::string);
  void respond(std::string_view text, TopicType type = TopicType::string);
  void fail(std::string_view message);

  struct State;  // defined by the client library
  explicit Responder(std::shared_ptr<State> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<State> state_;
};
using RequestHandler = std::function<void(const Request&, Responder)>;

struct HandlerOptions {
  // Sticky (the default, unless the broker's requests.sticky is false): a requesting session
  // keeps reaching the handler it reached first. Off: requests go round-robin over the
  // endpoint's handlers, so a handler added later takes its share at once.
  bool sticky = true;
};
using StatusHandler = std::function<void(const Status&)>;

// What a subscription is sent before the live stream, besides each topic's current value.
// The broker keeps each topic's last updates (history.* keys, or the topic's own
// TopicProperties::history), in its journal too with a data dir.
struct SubscribeOptions {
  // The last `history` updates of each matching topic, oldest first, then the live ones.
  std::uint32_t history = 0;
  // Or every update after this topic sequence (one the client already has), per topic.
  std::optional<std::uint64_t> since;
  // Either way, a topic whose asked-for updates the broker no longer keeps starts with the
  // oldest it has, flagged Update::resync: a gap, never silent. No gap and no duplicate
  // between the history and the live updates. A topic this session already receives through
  // another subscription is not sent again (never backwards). A subscription re-made in a
  // new session (the broker lost the old one) asks for current values only.
};

class Subscription {
 public:
  Subscription() = default;
  std::uint64_t id() const noexcept { return id_; }
  explicit operator bool() const noexcept { return id_ != 0; }

 private:
  friend class Client;
  explicit Subscription(std::uint64_t id) : id_(id) {}
  std::uint64_t id_ = 0;
};

// One I/O thread (and one io_uring) for many Clients: a process that holds a thousand
// sessions runs them on one thread instead of a thousand. Callbacks of every Client made on
// a context run on its thread, one at a time: a handler that blocks holds up all of them.
// Destroying the context after its Clients have closed waits for its thread to end;
// destroying it while some still run is allowed, and the thread ends after the last of them
// has closed.
//
// The default context: a Client made without one runs on the process's own, which the first
// connect() starts and whose thread ends (and is waited for) when its last Client closes; a
// child process after fork() starts its own (Clients made before the fork do not work in the
// child). Client(context) or ClientOptions::own_thread keep a Client off it.
//
// In a callback, calls to any Client of the same context never wait for its thread: a
// publish() into a full outbox makes room itself (the calls move on to the session's send
// buffer), or returns back_pressured for a session that has not started yet; connect()
// returns at once, without the broker's answer (on_state_change tells it); destroying a
// Client (its own or another's) closes it without waiting, and none of that Client's
// callbacks runs any more. A callback must not wait for an answer (a future) that another
// session of its context has to read: that takes the very thread it holds.
class BROOK_API ClientContext {
 public:
  ClientContext();
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;
  // Clients running on it (connected, or closing).
  std::size_t sessions() const noexcept;

 private:
  friend class Client;
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

class BROOK_API Client {
 public:
  // A Client on the process's default context (or its own thread: ClientOptions::own_thread).
  Client();
  explicit Client(std::size_t outbox_bytes);
  // A Client that runs on `context`'s thread, with the other sessions made on it.
  explicit Client(ClientContext& context, std::size_t outbox_bytes = ClientOptions{}.outbox_bytes);
  ~Client();  // closes the session if still open
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and opens a session; blocks until the broker answers or the timeout passes.
  // With ClientOptions::retries allowed and no server reachable, returns at once (ok, the
  // message saying so) with the client recovering: calls are queued until a broker answers.
  Status connect(const ClientOptions& options);

  // Delivers the current value of every matching topic, then every update, to `handler`.
  // The id is the client's own, valid at once, also while the call waits in the queue;
  // `on_subscribed` runs once the broker has registered the selector on every shard (or with
  // the reason it was refused, the client's queue being full among them).
  Subscription subscribe(std::string selector, UpdateHandler handler,
                         StatusHandler on_subscribed = {});
  // The same, with history first (SubscribeOptions).
  Subscription subscribe(std::string selector, UpdateHandler handler, const SubscribeOptions& options,
                         StatusHandler on_subscribed = {});
  Status unsubscribe(const Subscription& subscription);

  // Fire and forget: a refusal by the broker (wrong type, bad path) reaches the error
  // listener. The Status is the client's: not ok when the call cannot even be queued
  // (queue_full, or not_connected with the queue off or the session closed).
  Status publish(std::string_view path, std::span<const std::byte> value,
                 std::optional<TopicType> type = std::nullopt);
  Status publish(std::string_view path, std::string_view value,
                 std::optional<TopicType> type = std::nullopt);
  // Never waits: back_pressured (and nothing sent) while flow control holds this publisher
  // back (flow_held()) or while the client's outbox is full. With a persistent queue, or a
  // value too large for the outbox, it is publish().
  Status try_publish(std::string_view path, std::span<const std::byte> value,
                     std::optional<TopicType> type = std::nullopt);
  Status try_publish(std::string_view path, std::string_view value,
                     std::optional<TopicType> type = std::nullopt);
  // The same, with the broker's verdict.
  std::future<Status> publish_acked(std::string_view path, std::span<const std::byte> value,
                                    std::optional<TopicType> type = std::nullopt);
  // Creates a topic with its properties (TopicProperties: type; conflate, so that a
  // subscriber that falls behind gets the latest value in place of the updates it has not
  // been sent yet; deltas; retain, false for event topics). A topic that exists keeps its
  // properties; asking for another type is refused.
  std::future<Status> create_topic(std::string_view path, const TopicProperties& properties);
  std::future<Status> create_topic(std::string_view path, TopicType type) {
    return create_topic(path, TopicProperties{.type = type});
  }

  // Registers `handler` for requests to `path` (an endpoint: a path outside the topic tree).
  // The handler runs on the client thread and answers through its Responder, now or later.
  std::future<Status> add_request_handler(std::string_view path, RequestHandler handler,
                                          HandlerOptions options = {});
  std::future<Status> remove_request_handler(std::string_view path);
  // Sends a request to one of `path`'s handlers. The future (or callback, on the client
  // thread) gets the handler's answer, or the reason there is none; after `timeout` without
  // an answer it gets request_timeout.
  std::future<Response> send_request(std::string_view path, std::span<const std::byte> payload,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                     TopicType type = TopicType::string);
  std::future<Response> send_request(std::string_view path, std::string_view text,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                     TopicType type = TopicType::string);
  void send_request(std::string_view path, std::span<const std::byte> payload,
                    std::chrono::milliseconds timeout, ResponseHandler on_response,
                    TopicType type = TopicType::string);

  // A round trip to the broker and back.
  std::future<std::chrono::nanoseconds> ping();

  // Errors the broker reports that belong to no request (and refusals of fire-and-forget
  // calls), and deltas that did not apply (ErrorCode::delta_rejected: the client asked for the
  // whole value, which follows as a resync).
  void on_error(std::function<void(const Status&)> listener);
  // The session ended: broker closed it, reconnection gave up, or close() was called.
  void on_close(std::function<void(const std::string& reason)> listener);
  // The connection dropped; the client is recovering the session.
  void on_disconnect(std::function<void(const std::string& reason)> listener);
  // The session was resumed on a new connection; `resync` when current values follow
  // instead of the missed updates (see Update::resync), as after a new session.
  void on_reconnect(std::function<void(bool resync)> listener);
  // Flow control: true when the broker starts holding this publisher back (a subscriber of
  // what it publishes fell behind; publish() then waits once the outbox is full, try_publish()
  // returns back_pressured), false when it lets it go. Runs on the client thread.
  void on_flow_control(std::function<void(bool held)> listener);
  bool flow_held() const noexcept;
  // Every state change (StateListener). Register it before connect() to see them all.
  void on_state_change(StateListener listener);

  ClientState state() const noexcept;
  bool is_connected() const noexcept;
  std::string session_id() const;
  // The URL of the server connected to (one of ClientOptions::url's), or "" when none.
  std::string server() const;
  // Calls waiting in the client's queue for a connection, and their bytes.
  std::uint64_t queued_calls() const noexcept;
  std::uint64_t queued_bytes() const noexcept;
  // Calls the persistent queue held unconfirmed from an earlier run (sent first), known once
  // connect() returned.
  std::uint64_t recovered_calls() const noexcept;
  // Since the client was made: publishes its callers' threads wrote to the broker themselves
  // (ClientOptions::send_from_caller), and calls handed to the client's thread instead.
  std::uint64_t calls_sent_by_caller() const noexcept;
  std::uint64_t calls_handed_to_client_thread() const noexcept;
  // Since the client was made: times a call found the outbox full and waited for the client's
  // thread to make room (the network or the broker slower than the callers).
  std::uint64_t waits_for_outbox_room() const noexcept;
  // Sends everything queued, ends the session and stops the client thread.
  void close();

 private:
  friend class Responder;
  struct Impl;
  // Shared with the Responders of requests in flight, which may outlive the client.
  std::shared_ptr<Impl> impl_;
};

}  // namespace brook
