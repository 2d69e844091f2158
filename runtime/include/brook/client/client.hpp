#pragma once
// brook::Client: a session with a Brook broker. Every method is safe to call from any thread:
// calls become commands on a lock-free queue that the client's own io_uring thread drains.
// Callbacks (update handlers, error and close listeners) run on that client thread, so they
// must not block; they may call the client's methods. Calls made by one thread reach the
// broker in the order they were made.
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

#include "brook/codec/frame.hpp"

namespace brook {

using codec::ErrorCode;
using codec::TopicType;

struct Status {
  ErrorCode code = ErrorCode::none;
  std::string message;
  explicit operator bool() const noexcept { return code == ErrorCode::none; }
  static Status ok() { return {}; }
};

// $BROOK_URL, else tcp://127.0.0.1:9090.
std::string default_url();

struct ClientOptions {
  std::string url = default_url();  // tcp://HOST:PORT
  std::string principal;            // empty: anonymous
  std::string credentials;
  std::string client_name = "brook-client";
  std::chrono::milliseconds connect_timeout{5000};
  // Calls are queued in a ring of this many bytes (rounded up to a power of two); publish()
  // waits while it is full: back-pressure on a publisher that outruns the network, instead of
  // unbounded memory. Fixed when the Client is constructed (Client(outbox_bytes)).
  std::size_t outbox_bytes = 1u << 20;
};

struct Update {
  std::string_view path;
  TopicType type;
  std::uint64_t topic_seq;
  std::uint64_t session_seq;
  std::span<const std::byte> value;  // valid during the callback only
  std::string_view text() const noexcept {
    return {reinterpret_cast<const char*>(value.data()), value.size()};
  }
};

using UpdateHandler = std::function<void(const Update&)>;
using StatusHandler = std::function<void(const Status&)>;

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

class Client {
 public:
  Client();
  explicit Client(std::size_t outbox_bytes);
  ~Client();  // closes the session if still open
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects and opens a session; blocks until the broker answers or the timeout passes.
  Status connect(const ClientOptions& options);

  // Delivers the current value of every matching topic, then every update, to `handler`.
  // `on_subscribed` runs once the broker has registered the selector on every shard.
  Subscription subscribe(std::string selector, UpdateHandler handler,
                         StatusHandler on_subscribed = {});
  void unsubscribe(const Subscription& subscription);

  // Fire and forget: a refusal (wrong type, bad path) reaches the error listener.
  void publish(std::string_view path, std::span<const std::byte> value,
               std::optional<TopicType> type = std::nullopt);
  void publish(std::string_view path, std::string_view value,
               std::optional<TopicType> type = std::nullopt);
  // The same, with the broker's verdict.
  std::future<Status> publish_acked(std::string_view path, std::span<const std::byte> value,
                                    std::optional<TopicType> type = std::nullopt);
  std::future<Status> create_topic(std::string_view path, TopicType type);

  // A round trip to the broker and back.
  std::future<std::chrono::nanoseconds> ping();

  // Errors the broker reports that belong to no request (and refusals of fire-and-forget calls).
  void on_error(std::function<void(const Status&)> listener);
  // The session ended: broker closed it, connection lost, or close() was called.
  void on_close(std::function<void(const std::string& reason)> listener);

  bool is_connected() const noexcept;
  std::string session_id() const;
  // Sends everything queued, ends the session and stops the client thread.
  void close();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brook
