// The NATS backend of peer_bench: one PeerLink is one cnats connection to nats-server.
//
// Threads (the library's): each connection has a read loop, each subscription a delivery thread
// that runs its receiver, and a batched connection a flusher thread. The receivers of one link
// are serialised by a mutex, uncontended with the one subscription a scenario makes per link.
// Lifecycle: connected by the constructor (which throws on failure); the destructor
// unsubscribes, waits until every delivery thread has returned from its receiver for the last
// time, then closes the connection. No reconnects: a lost connection is reported and its
// messages count as lost.
#include <nats/nats.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "nats_connect.hpp"
#include "peer_link.hpp"

namespace brook::bench {

namespace {

using namespace std::chrono_literals;
using nats::check;
using nats::Writes;

// A subscription's receive queue in the library. The defaults (65,536 messages, 64 MiB) drop a
// flat-out burst while the delivery thread is descheduled, silently but for a count: a NATS
// user tuning for throughput raises them. The scenarios' windows and rates keep the backlog far
// below these bounds.
constexpr int kPendingMessages = 1 << 24;
constexpr int kPendingBytes = 1 << 30;
constexpr std::int64_t kFlushTimeoutMs = 10'000;
constexpr auto kCloseTimeout = 5s;

// Opened once by a library callback, awaited by the link's destructor. open() notifies under the
// mutex, so the waiter cannot return (and free the latch) before open() is done with it.
class Latch {
 public:
  void open() {
    const std::lock_guard lock(mutex_);
    open_ = true;
    opened_.notify_all();
  }
  bool wait_for(std::chrono::steady_clock::duration timeout) {
    std::unique_lock lock(mutex_);
    return opened_.wait_for(lock, timeout, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable opened_;
  bool open_ = false;
};

// What the connection's callbacks see. They run on the library's callback thread, possibly
// after natsConnection_Close has returned, so this lives until the closed callback (the
// library's last for the connection) has run.
struct ConnectionState {
  std::string name;
  std::atomic<bool> closing{false};  // relaxed: only silences the report of our own disconnect
  std::atomic<bool> lost{false};     // relaxed: a flag on its own, read by connection_lost()
  std::mutex one_receiver_at_a_time;
  Latch closed;
};

// One subscription's receiver, alive until the library reports the subscription complete
// (closed, and its message handler returned for the last time).
struct SubscriptionState {
  PeerLink::Receiver receiver;
  std::mutex* one_receiver_at_a_time = nullptr;
  natsSubscription* subscription = nullptr;
  bool completion_armed = false;
  Latch complete;
};

void on_message(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
  auto* state = static_cast<SubscriptionState*>(closure);
  const auto* data = reinterpret_cast<const std::byte*>(natsMsg_GetData(msg));
  const auto length = static_cast<std::size_t>(natsMsg_GetDataLength(msg));
  {
    const std::lock_guard lock(*state->one_receiver_at_a_time);
    state->receiver(natsMsg_GetSubject(msg), std::span<const std::byte>(data, length));
  }
  natsMsg_Destroy(msg);
}
void on_subscription_complete(void* closure) { static_cast<SubscriptionState*>(closure)->complete.open(); }

// Asynchronous trouble (a slow consumer, a lost connection) explains loss: reported, never hidden.
void on_async_error(natsConnection*, natsSubscription*, natsStatus err, void* closure) {
  std::fprintf(stderr, "peer_bench: nats link %s: %s\n", static_cast<ConnectionState*>(closure)->name.c_str(),
               natsStatus_GetText(err));
}
void on_disconnected(natsConnection*, void* closure) {
  auto* state = static_cast<ConnectionState*>(closure);
  if (state->closing.load(std::memory_order_relaxed)) return;
  state->lost.store(true, std::memory_order_relaxed);
  std::fprintf(stderr, "peer_bench: nats link %s: disconnected\n", state->name.c_str());
}
void on_closed(natsConnection*, void* closure) { static_cast<ConnectionState*>(closure)->closed.open(); }

class NatsLink final : public PeerLink {
 public:
  NatsLink(const std::string& url, const std::string& name, Writes writes)
      : state_(std::make_unique<ConnectionState>()), writes_(writes) {
    state_->name = name;
    const nats::OptionsPtr options = nats::connection_options(url, name, writes);
    natsOptions* raw = options.get();
    check(natsOptions_SetErrorHandler(raw, on_async_error, state_.get()), "natsOptions_SetErrorHandler");
    check(natsOptions_SetDisconnectedCB(raw, on_disconnected, state_.get()), "natsOptions_SetDisconnectedCB");
    check(natsOptions_SetClosedCB(raw, on_closed, state_.get()), "natsOptions_SetClosedCB");
    // A failed connect makes no callbacks: state_ may go with the exception.
    check(natsConnection_Connect(&connection_, raw), "connect " + name + " to " + url);
  }

  ~NatsLink() override {
    state_->closing.store(true, std::memory_order_relaxed);
    bool all_returned = true;
    for (auto& sub : subscriptions_) {
      natsSubscription_Unsubscribe(sub->subscription);  // fails harmlessly if the connection is gone
      if (sub->completion_armed && !sub->complete.wait_for(kCloseTimeout)) all_returned = false;
      natsSubscription_Destroy(sub->subscription);
    }
    natsConnection_Close(connection_);
    const bool closed = state_->closed.wait_for(kCloseTimeout);
    natsConnection_Destroy(connection_);
    if (publish_failures_ > 0)
      std::fprintf(stderr, "peer_bench: nats link %s: %llu publishes failed\n", state_->name.c_str(),
                   static_cast<unsigned long long>(publish_failures_));
    if (!all_returned || !closed) {
      // A callback may still run and find its state: keep it rather than free it under it.
      std::fprintf(stderr, "peer_bench: nats link %s: the library did not finish closing within %lld s\n",
                   state_->name.c_str(), static_cast<long long>(kCloseTimeout.count()));
      for (auto& sub : subscriptions_) static_cast<void>(sub.release());
      static_cast<void>(state_.release());
    }
  }

  NatsLink(const NatsLink&) = delete;
  NatsLink& operator=(const NatsLink&) = delete;

  void subscribe(const std::string& subject_or_pattern, Receiver receiver) override {
    auto owned = std::make_unique<SubscriptionState>();
    SubscriptionState* sub = owned.get();
    sub->receiver = std::move(receiver);
    sub->one_receiver_at_a_time = &state_->one_receiver_at_a_time;
    check(natsConnection_Subscribe(&sub->subscription, connection_, subject_or_pattern.c_str(), on_message, sub),
          state_->name + ": subscribe " + subject_or_pattern);
    subscriptions_.push_back(std::move(owned));  // from here the destructor closes it
    check(natsSubscription_SetOnCompleteCB(sub->subscription, on_subscription_complete, sub),
          "natsSubscription_SetOnCompleteCB");
    sub->completion_armed = true;
    check(natsSubscription_SetPendingLimits(sub->subscription, kPendingMessages, kPendingBytes),
          "natsSubscription_SetPendingLimits");
    // A PING/PONG round trip: once the PONG is back the server has the subscription.
    check(natsConnection_FlushTimeout(connection_, kFlushTimeoutMs), state_->name + ": flush after subscribe");
  }

  void publish(const std::string& subject, std::span<const std::byte> payload) override {
    const natsStatus s =
        natsConnection_Publish(connection_, subject.c_str(), payload.data(), static_cast<int>(payload.size()));
    if (s != NATS_OK && publish_failures_++ == 0)
      std::fprintf(stderr, "peer_bench: nats link %s: publish: %s\n", state_->name.c_str(), natsStatus_GetText(s));
  }

  // Batched: a PING/PONG round trip, once the PONG is back everything before it was written.
  // At once (send_asap): every publish was written by the caller, nothing is left to do.
  void flush() override {
    if (writes_ == Writes::at_once) return;
    const natsStatus s = natsConnection_FlushTimeout(connection_, kFlushTimeoutMs);
    if (s != NATS_OK) std::fprintf(stderr, "peer_bench: nats link %s: flush: %s\n", state_->name.c_str(), natsStatus_GetText(s));
  }

  std::uint64_t dropped() const override {
    std::uint64_t total = 0;
    for (const auto& sub : subscriptions_) {
      int64_t n = 0;
      if (natsSubscription_GetDropped(sub->subscription, &n) == NATS_OK && n > 0) total += static_cast<std::uint64_t>(n);
    }
    return total;
  }

  bool connection_lost() const override { return state_->lost.load(std::memory_order_relaxed); }

 private:
  std::unique_ptr<ConnectionState> state_;
  const Writes writes_;
  natsConnection* connection_ = nullptr;
  std::vector<std::unique_ptr<SubscriptionState>> subscriptions_;
  std::uint64_t publish_failures_ = 0;  // sending thread only
};

}  // namespace

PeerSystem nats_system() {
  PeerSystem system;
  system.name = "nats";
  system.syntax = SubjectSyntax{.separator = '.', .descendants = ">"};
  system.connect = [](const std::string& url, const std::string& name) -> std::unique_ptr<PeerLink> {
    return std::make_unique<NatsLink>(url, name, Writes::batched);
  };
  system.connect_unbatched = [](const std::string& url, const std::string& name) -> std::unique_ptr<PeerLink> {
    return std::make_unique<NatsLink>(url, name, Writes::at_once);
  };
  return system;
}

}  // namespace brook::bench
