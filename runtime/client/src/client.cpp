// The client library's public API: Client and ClientContext, called on the application's
// threads. A call is encoded here and handed to the session (Client::Impl, client_impl.hpp)
// through its outbox; the session runs on its loop's thread.
#include "brook/client/client.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "client_default_context.hpp"
#include "client_send.hpp"
#include "server_list.hpp"

namespace brook {

using client_detail::Command;
using client_detail::error_status;
using client_detail::record_frame;
using client_detail::record_queued_frame;

std::string_view to_string(ClientState state) {
  switch (state) {
    case ClientState::connecting: return "connecting";
    case ClientState::connected: return "connected";
    case ClientState::recovering: return "recovering";
    case ClientState::closed: return "closed";
  }
  return "unknown";
}

std::string default_url() {
  const char* env = std::getenv("BROOK_URL");
  return env && *env ? env : "tcp://127.0.0.1:9090";
}

// ---- contexts ------------------------------------------------------------------------------

struct BROOK_LOCAL ClientContext::Impl {
  // A context's loop has room for many sessions' reads.
  std::shared_ptr<client_detail::ClientLoop> loop =
      std::make_shared<client_detail::ClientLoop>(true, 256);
};

ClientContext::ClientContext() : impl_(std::make_shared<Impl>()) {}

// With no Client running on it, the loop's thread ends now and is waited for; otherwise it
// goes on until the last of them has closed.
ClientContext::~ClientContext() {
  impl_->loop->stop();
  if (impl_->loop->members() == 0) impl_->loop->join();
}

std::size_t ClientContext::sessions() const noexcept { return impl_->loop->members(); }

Client::Client() : Client(ClientOptions{}.outbox_bytes) {}

Client::Client(std::size_t outbox_bytes) : impl_(std::make_shared<Impl>(outbox_bytes)) {}

Client::Client(ClientContext& context, std::size_t outbox_bytes) : Client(outbox_bytes) {
  impl_->loop = context.impl_->loop;
  impl_->loop_kind = Impl::LoopKind::context;
}

Client::~Client() {
  // In a callback on its loop's thread, the close cannot be waited for: it goes on without
  // this Client, and none of its callbacks may run any more (their captures may be gone).
  if (impl_->joined && impl_->on_loop_thread()) impl_->abandoned = true;
  close();
}

Status Client::connect(const ClientOptions& options) {
  if (impl_->joined) return error_status(ErrorCode::internal, "already connected");
  std::string error;
  auto servers = client_detail::parse_server_list(options.url, error);
  if (servers.empty()) return error_status(ErrorCode::invalid_value, error);
  impl_->options = options;
  impl_->servers = std::move(servers);
  if (Status s = impl_->make_tls_context(); !s) return s;
  impl_->sent_log = SentLog(options.recovery_bytes);
  if (!options.queue_path.empty()) {
    if (Status s = impl_->open_queue_file(); !s) return s;
  }
  impl_->queue_entries_limit.store(options.queue_entries, std::memory_order_relaxed);
  impl_->queue_bytes_limit.store(options.queue_bytes, std::memory_order_relaxed);
  auto context_gone = [this] {
    close();
    return error_status(ErrorCode::not_connected, "the ClientContext this client was made on is gone");
  };
  std::string failures;
  bool refused = false;
  for (std::size_t i = 0; i < impl_->servers.size(); ++i) {
    std::string why;
    if (impl_->open_server(impl_->servers[i], why, refused)) {
      impl_->server_index.store(static_cast<int>(i), std::memory_order_relaxed);
      break;
    }
    failures += (failures.empty() ? "" : "; ") + why;
  }
  if (impl_->fd < 0) {
    // A broker that refused us (not merely absent) is an answer: no polling.
    if (options.retries == 0 || refused) return error_status(ErrorCode::not_connected, failures);
    // Retries allowed: start recovering; calls queue until a server answers.
    impl_->start_recovering = true;
    impl_->start_reason = "recovering: no server reachable yet (" + failures + ")";
    impl_->connect_answered = true;
    if (!impl_->join_loop()) return context_gone();
    return Status{ErrorCode::none, impl_->start_reason};
  }
  const std::string reached = impl_->reached_server();
  auto answer = impl_->connected_promise.get_future();
  if (!impl_->join_loop()) return context_gone();
  // On the thread that has to read the answer (a callback of the same context): no waiting.
  if (impl_->on_loop_thread())
    return Status{ErrorCode::none, "connecting to " + reached +
                                       ": connect() called on the client thread does not wait for the answer"};
  if (answer.wait_for(options.connect_timeout) != std::future_status::ready) {
    close();
    return error_status(ErrorCode::not_connected, "no answer from " + reached);
  }
  Status status = answer.get();
  if (!status) close();
  return status;
}

Subscription Client::subscribe(std::string selector, UpdateHandler handler,
                               StatusHandler on_subscribed) {
  return subscribe(std::move(selector), std::move(handler), SubscribeOptions{}, std::move(on_subscribed));
}

Subscription Client::subscribe(std::string selector, UpdateHandler handler, const SubscribeOptions& options,
                               StatusHandler on_subscribed) {
  Command c;
  c.history = options.history;
  c.since = options.since;
  c.kind = Command::Kind::subscribe;
  c.id = impl_->next_subscription_id.fetch_add(1, std::memory_order_relaxed);
  const bool queued = impl_->reserve_for(c, selector.size() + 32);
  c.text = std::move(selector);
  c.handler = std::move(handler);
  c.status_handler = std::move(on_subscribed);
  std::uint64_t id = c.id;
  impl_->submit(std::move(c));
  return queued ? Subscription(id) : Subscription();
}

Status Client::unsubscribe(const Subscription& subscription) {
  Command c;
  c.kind = Command::Kind::unsubscribe;
  c.id = subscription.id();
  Status s = impl_->reserve(64, c.queued);
  if (!s) return s;
  c.queued_bytes = 64;
  impl_->submit(std::move(c));
  return s;
}

namespace {
std::vector<std::byte> publish_frame(std::uint32_t request_id, std::string_view path,
                                     std::span<const std::byte> value,
                                     std::optional<TopicType> type) {
  std::vector<std::byte> frame(codec::publish_frame_bytes(path.size(), value.size()));
  codec::write_publish(frame.data(), request_id, path, type, value);
  return frame;
}
}  // namespace

Status Client::publish(std::string_view path, std::span<const std::byte> value,
                       std::optional<TopicType> type) {
  std::size_t bytes = codec::publish_frame_bytes(path.size(), value.size());
  bool queued = false;
  if (Status s = impl_->reserve(bytes, queued); !s) return s;
  if (impl_->queue_file && bytes + sizeof(std::uint64_t) <= impl_->outbox.max_payload()) {
    Status s = impl_->submit_persisted_frame(bytes, queued, [&](std::byte* at) {
      codec::write_publish(at, 0, path, type, value);
    });
    if (!s && queued) impl_->give_back_reservation(1, static_cast<std::int64_t>(bytes));
    return s;
  }
  if (bytes > impl_->outbox.max_payload() || impl_->queue_file) {
    Command c;
    c.kind = Command::Kind::frame;
    c.frame = publish_frame(0, path, value, type);
    c.queued = queued;
    c.queued_bytes = bytes;
    if (impl_->queue_file) return impl_->submit_persisted_command(std::move(c));
    impl_->submit(std::move(c));
    return Status::ok();
  }
  if (!queued && impl_->send_directly(bytes, [&](std::byte* at) {
        codec::write_publish(at, 0, path, type, value);
      }))
    return Status::ok();
  // The frame is written straight into the outbox: no allocation, one copy of the value.
  auto claim = impl_->claim(bytes);
  if (!claim) {
    if (queued) impl_->give_back_reservation(1, static_cast<std::int64_t>(bytes));
    return impl_->no_room();
  }
  codec::write_publish(claim.payload, 0, path, type, value);
  transport::MpscByteRing::commit(claim, queued ? record_queued_frame : record_frame);
  impl_->committed();
  return Status::ok();
}

Status Client::publish(std::string_view path, std::string_view value, std::optional<TopicType> type) {
  return publish(path, std::as_bytes(std::span(value)), type);
}

std::future<Status> Client::publish_acked(std::string_view path, std::span<const std::byte> value,
                                          std::optional<TopicType> type) {
  Command c;
  c.kind = Command::Kind::acked_frame;
  c.request_id = impl_->next_request_id.fetch_add(1, std::memory_order_relaxed);
  c.frame = publish_frame(c.request_id, path, value, type);
  c.status_promise = std::make_shared<std::promise<Status>>();
  auto result = c.status_promise->get_future();
  impl_->reserve_for(c, c.frame.size());
  if (impl_->queue_file && !c.refused) impl_->submit_persisted_command(std::move(c));
  else impl_->submit(std::move(c));
  return result;
}

std::future<Status> Client::create_topic(std::string_view path, const TopicProperties& properties) {
  Command c;
  c.kind = Command::Kind::acked_frame;
  c.request_id = impl_->next_request_id.fetch_add(1, std::memory_order_relaxed);
  // Encoded here rather than on the client thread: FrameEncoder is per thread.
  codec::FrameEncoder encoder;
  auto frame = encoder.create_topic(c.request_id, path, properties);
  c.frame.assign(frame.begin(), frame.end());
  c.status_promise = std::make_shared<std::promise<Status>>();
  auto result = c.status_promise->get_future();
  impl_->reserve_for(c, c.frame.size());
  if (impl_->queue_file && !c.refused) impl_->submit_persisted_command(std::move(c));
  else impl_->submit(std::move(c));
  return result;
}

std::future<std::chrono::nanoseconds> Client::ping() {
  Command c;
  c.kind = Command::Kind::ping;
  c.ping_promise = std::make_shared<std::promise<std::chrono::nanoseconds>>();
  auto result = c.ping_promise->get_future();
  impl_->submit(std::move(c));
  return result;
}

void Client::on_error(std::function<void(const Status&)> listener) {
  Command c;
  c.kind = Command::Kind::error_listener;
  c.error_listener = std::move(listener);
  impl_->submit(std::move(c));
}

void Client::on_close(std::function<void(const std::string&)> listener) {
  Command c;
  c.kind = Command::Kind::close_listener;
  c.close_listener = std::move(listener);
  impl_->submit(std::move(c));
}

void Client::on_disconnect(std::function<void(const std::string&)> listener) {
  Command c;
  c.kind = Command::Kind::disconnect_listener;
  c.close_listener = std::move(listener);
  impl_->submit(std::move(c));
}

void Client::on_flow_control(std::function<void(bool held)> listener) {
  Command c;
  c.kind = Command::Kind::flow_listener;
  c.flow_listener = std::move(listener);
  impl_->submit(std::move(c));
}

bool Client::flow_held() const noexcept { return impl_->flow_held.load(std::memory_order_acquire); }

Status Client::try_publish(std::string_view path, std::span<const std::byte> value,
                           std::optional<TopicType> type) {
  if (impl_->flow_held.load(std::memory_order_acquire))
    return error_status(ErrorCode::back_pressured,
                        "flow control: the broker holds this publisher back until its subscribers catch up");
  const std::size_t bytes = codec::publish_frame_bytes(path.size(), value.size());
  // A persistent queue writes the frame to its file first, and a frame too large for a ring
  // record is handed over whole: neither waits for the outbox.
  if (impl_->queue_file || bytes > impl_->outbox.max_payload()) return publish(path, value, type);
  bool queued = false;
  if (Status s = impl_->reserve(bytes, queued); !s) return s;
  if (!queued && impl_->send_directly(bytes, [&](std::byte* at) {
        codec::write_publish(at, 0, path, type, value);
      }))
    return Status::ok();
  auto claim = impl_->outbox.try_claim(bytes);
  if (!claim) {
    if (queued) impl_->give_back_reservation(1, static_cast<std::int64_t>(bytes));
    impl_->wake_client();
    return error_status(ErrorCode::back_pressured,
                        "the client's outbox is full (ClientOptions::outbox_bytes): the network or "
                        "the broker is slower than this publisher");
  }
  codec::write_publish(claim.payload, 0, path, type, value);
  transport::MpscByteRing::commit(claim, queued ? record_queued_frame : record_frame);
  impl_->committed();
  return Status::ok();
}

Status Client::try_publish(std::string_view path, std::string_view value, std::optional<TopicType> type) {
  return try_publish(path, std::as_bytes(std::span(value)), type);
}

void Client::on_reconnect(std::function<void(bool)> listener) {
  Command c;
  c.kind = Command::Kind::reconnect_listener;
  c.reconnect_listener = std::move(listener);
  impl_->submit(std::move(c));
}

void Client::on_state_change(StateListener listener) {
  Command c;
  c.kind = Command::Kind::state_listener;
  c.state_listener = std::move(listener);
  impl_->submit(std::move(c));
}

std::string Client::server() const {
  if (!is_connected()) return {};
  const int i = impl_->server_index.load(std::memory_order_relaxed);
  return i >= 0 ? impl_->servers[static_cast<std::size_t>(i)].url : std::string{};
}

std::uint64_t Client::queued_calls() const noexcept {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, impl_->queue_entries_used.load(std::memory_order_relaxed)));
}

std::uint64_t Client::recovered_calls() const noexcept { return impl_->kept_from_earlier_run; }

std::uint64_t Client::calls_sent_by_caller() const noexcept {
  return impl_->calls_sent_by_caller.load(std::memory_order_relaxed);
}

std::uint64_t Client::calls_handed_to_client_thread() const noexcept {
  return impl_->calls_handed_over.load(std::memory_order_relaxed);
}

std::uint64_t Client::waits_for_outbox_room() const noexcept {
  return impl_->outbox_waits.load(std::memory_order_relaxed);
}

std::uint64_t Client::queued_bytes() const noexcept {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, impl_->queue_bytes_used.load(std::memory_order_relaxed)));
}

ClientState Client::state() const noexcept { return impl_->state.load(std::memory_order_acquire); }

bool Client::is_connected() const noexcept {
  return impl_->connected.load(std::memory_order_acquire);
}

std::string Client::session_id() const {
  return is_connected() ? impl_->session_id : std::string{};
}

void Client::close() {
  if (!impl_->joined) {
    // Never connected (or the connect failed before the thread ran): calls made before
    // connect() are still queued; they fail now, on this thread, with `not connected`.
    impl_->stream_closed = true;
    impl_->finished.store(true, std::memory_order_release);
    impl_->wake_room_waiters();
    impl_->drain_outbox(SIZE_MAX);
    return;
  }
  if (impl_->on_loop_thread()) {
    // From a callback: ask for the close; the loop finishes it (it holds the session until
    // then), and the owner's close() or destructor waits for it.
    Command c;
    c.kind = Command::Kind::close;
    impl_->submit(std::move(c));
    return;
  }
  Command c;
  c.kind = Command::Kind::close;
  impl_->submit(std::move(c));
  impl_->left_future.wait();
  // A thread of its own ends with its one session; the default context's, with its last.
  if (impl_->loop_kind == Impl::LoopKind::own_thread) impl_->loop->join();
  if (impl_->loop_kind == Impl::LoopKind::default_context) client_detail::default_context::leave(impl_->loop);
  // The session may have ended before this close() was taken (the broker closed it, the
  // client gave up): what was submitted since fails now, on this thread. Nothing else
  // reads the outbox any more.
  impl_->drain_outbox(SIZE_MAX);
}

}  // namespace brook
