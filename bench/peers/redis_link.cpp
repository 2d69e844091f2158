// The Redis backend of peer_bench: PeerLink over hiredis, used the way Redis users run pub/sub
// for low latency. A link is one TCP connection, and its first use decides what it is: a
// publisher pipelines PUBLISH commands in hiredis's output buffer and writes them on flush()
// (or whenever a batch has built up); a subscriber is a connection in subscribe mode, read by a
// receive thread the link owns. Redis allows nothing but (P)SUBSCRIBE and friends on a
// connection in subscribe mode, so a link that did one refuses the other (peer_link.hpp: no
// scenario needs both on one link).
#include "peer_link.hpp"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

namespace brook::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// publish() writes once this much has been buffered, so that a flat-out sender that flushes
// rarely keeps a bounded buffer and the server starts working before the sender is done.
constexpr std::size_t kWriteBatchBytes = 64 * 1024;
// Replies to PUBLISH (subscriber counts) are read back once this many are outstanding: often
// enough that neither the socket nor the server's buffer for them grows, rarely enough that a
// flush per message does not pay a read system call per message.
constexpr std::uint64_t kDrainAfterReplies = 256;
constexpr auto kConnectTimeout = 5s;
constexpr auto kSubscribeTimeout = 10s;
// A closing publisher waits this long for the replies to what it sent (see ~PublisherConnection).
constexpr auto kCloseTimeout = 2s;
// Receive threads run hiredis's reader and the scenario's receiver; the fanout scenario starts
// a thousand of them, so they do not get the default 8 MiB each.
constexpr std::size_t kReceiveStackBytes = 256 * 1024;

struct Endpoint {
  std::string host;
  int port = 6379;
};

Endpoint parse_url(const std::string& url) {
  constexpr std::string_view scheme = "redis://";
  if (!url.starts_with(scheme)) throw std::runtime_error("redis: url must be redis://HOST:PORT: " + url);
  const std::string rest = url.substr(scheme.size());
  Endpoint endpoint;
  const std::size_t colon = rest.rfind(':');
  endpoint.host = rest.substr(0, colon);
  if (colon != std::string::npos) {
    try {
      std::size_t used = 0;
      endpoint.port = std::stoi(rest.substr(colon + 1), &used);
      if (used != rest.size() - colon - 1) throw std::invalid_argument("trailing characters");
    } catch (const std::exception&) {
      throw std::runtime_error("redis: bad port in url " + url);
    }
  }
  if (endpoint.host.empty()) throw std::runtime_error("redis: no host in url " + url);
  return endpoint;
}

struct ContextDeleter {
  void operator()(redisContext* c) const { redisFree(c); }
};
using Context = std::unique_ptr<redisContext, ContextDeleter>;

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

std::string_view text_of(const redisReply& r) { return {r.str, r.len}; }

// CLIENT SETNAME takes no spaces or control characters.
std::string client_name(std::string name) {
  for (char& ch : name)
    if (ch <= ' ' || ch > '~') ch = '_';
  return name;
}

// One blocking TCP connection, named after the link so that CLIENT LIST shows who is who.
// hiredis sets TCP_NODELAY; the connect timeout bounds only the connect (reads block without
// limit, which a subscriber waiting for its next message needs; closing shuts the socket down).
Context open_connection(const Endpoint& endpoint, const std::string& name) {
  const auto connect_s = std::chrono::duration_cast<std::chrono::seconds>(kConnectTimeout).count();
  Context c(redisConnectWithTimeout(endpoint.host.c_str(), endpoint.port, timeval{connect_s, 0}));
  const std::string where = endpoint.host + ":" + std::to_string(endpoint.port);
  if (!c) throw std::runtime_error("redis: cannot allocate a connection to " + where);
  if (c->err) throw std::runtime_error("redis: connect to " + where + ": " + c->errstr);
  if (name.empty()) return c;
  Reply named(static_cast<redisReply*>(redisCommand(c.get(), "CLIENT SETNAME %s", client_name(name).c_str())));
  if (!named) throw std::runtime_error("redis: CLIENT SETNAME on " + where + ": " + c->errstr);
  if (named->type == REDIS_REPLY_ERROR)
    throw std::runtime_error("redis: CLIENT SETNAME on " + where + ": " + std::string(text_of(*named)));
  return c;
}

// A publishing link's connection, used only by the thread that publishes (the scenario's
// sender, or the rtt responder's receive thread). The replies to PUBLISH must be read or they
// fill the socket and then the server's memory; they are read without blocking inside
// publish()/flush(), which costs less than a thread that wakes up for every reply.
class PublisherConnection {
 public:
  explicit PublisherConnection(Context context) : context_(std::move(context)) {}

  // Everything flushed reaches the server before the connection closes: closing a socket with
  // unread replies in it sends a reset, which could discard commands the server has not read
  // yet. So the destructor waits (bounded) for the reply to every PUBLISH.
  ~PublisherConnection() {
    try {
      write_buffered();
      const Clock::time_point deadline = Clock::now() + kCloseTimeout;
      while (acknowledged_ < published_ && Clock::now() < deadline) {
        pollfd readable{context_->fd, POLLIN, 0};
        ::poll(&readable, 1, 10);
        drain_replies();
      }
      if (acknowledged_ < published_)
        std::fprintf(stderr, "redis link: closing with %llu of %llu PUBLISH replies missing\n",
                     static_cast<unsigned long long>(published_ - acknowledged_),
                     static_cast<unsigned long long>(published_));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "redis link: closing publisher: %s\n", e.what());
    }
  }

  void publish(const std::string& subject, std::span<const std::byte> payload) {
    if (redisAppendCommand(context_.get(), "PUBLISH %b %b", subject.data(), subject.size(), payload.data(),
                           payload.size()) != REDIS_OK)
      throw std::runtime_error(std::string("redis: PUBLISH: ") + context_->errstr);
    ++published_;
    if (sdslen(context_->obuf) >= kWriteBatchBytes) flush();
  }

  void flush() {
    write_buffered();
    if (published_ - acknowledged_ >= kDrainAfterReplies) drain_replies();
  }

 private:
  void write_buffered() {
    int done = 0;
    while (!done)
      if (redisBufferWrite(context_.get(), &done) != REDIS_OK)
        throw std::runtime_error(std::string("redis: write: ") + context_->errstr);
  }

  // Reads whatever replies have arrived, without waiting for more.
  void drain_replies() {
    char buffer[16 * 1024];
    for (;;) {
      const ssize_t n = ::recv(context_->fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n > 0) {
        if (redisReaderFeed(context_->reader, buffer, static_cast<std::size_t>(n)) != REDIS_OK)
          throw std::runtime_error("redis: reply reader out of memory");
        if (static_cast<std::size_t>(n) < sizeof buffer) break;
        continue;
      }
      if (n == 0) throw std::runtime_error("redis: server closed the publishing connection");
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      throw std::runtime_error(std::string("redis: read: ") + std::strerror(errno));
    }
    for (;;) {
      void* raw = nullptr;
      if (redisGetReplyFromReader(context_.get(), &raw) != REDIS_OK)
        throw std::runtime_error(std::string("redis: reply: ") + context_->errstr);
      if (raw == nullptr) return;
      const Reply reply(static_cast<redisReply*>(raw));
      if (reply->type == REDIS_REPLY_ERROR)
        throw std::runtime_error("redis: PUBLISH refused: " + std::string(text_of(*reply)));
      ++acknowledged_;
    }
  }

  Context context_;
  std::uint64_t published_ = 0;
  std::uint64_t acknowledged_ = 0;  // PUBLISH replies read back
};

// A subscribing link's connection (in subscribe mode) and the thread that reads it.
// The receive thread is the only one that reads the connection (through hiredis) and the only
// one that calls the receiver; subscribe() only writes, straight to the socket, and waits for
// the receive thread to see the server's confirmation. Lives from the first subscribe() to the
// link's destructor; its own destructor stops the thread, so no receiver runs afterwards.
class SubscriberConnection {
 public:
  SubscriberConnection(Context context, PeerLink::Receiver receiver, std::string name)
      : context_(std::move(context)), receiver_(std::move(receiver)), name_(std::move(name)) {
    pthread_attr_t attributes;
    pthread_attr_init(&attributes);
    pthread_attr_setstacksize(&attributes, kReceiveStackBytes);
    const int failed = pthread_create(&thread_, &attributes, &SubscriberConnection::run, this);
    pthread_attr_destroy(&attributes);
    if (failed) throw std::runtime_error(std::string("redis: receive thread: ") + std::strerror(failed));
  }

  ~SubscriberConnection() {
    // release: pairs with the acquire in receive_loop, which then takes the failed read that
    // the shutdown causes for the end it is, not for a lost connection.
    stopping_.store(true, std::memory_order_release);
    ::shutdown(context_->fd, SHUT_RDWR);
    pthread_join(thread_, nullptr);
  }

  SubscriberConnection(const SubscriberConnection&) = delete;
  SubscriberConnection& operator=(const SubscriberConnection&) = delete;

  bool lost() const { return lost_.load(std::memory_order_relaxed); }

  void subscribe(const std::string& subject_or_pattern) {
    const bool pattern = subject_or_pattern.find('*') != std::string::npos;
    char* command = nullptr;
    const int length = redisFormatCommand(&command, pattern ? "PSUBSCRIBE %b" : "SUBSCRIBE %b",
                                          subject_or_pattern.data(), subject_or_pattern.size());
    if (length < 0) throw std::runtime_error("redis: cannot format SUBSCRIBE");
    const std::unique_ptr<char, void (*)(char*)> owned(command, redisFreeCommand);
    send_all(std::string_view(command, static_cast<std::size_t>(length)));

    std::unique_lock lock(mutex_);
    const std::uint64_t ticket = ++requested_;
    const bool answered = confirmed_changed_.wait_for(
        lock, kSubscribeTimeout, [&] { return confirmed_ >= ticket || !trouble_.empty(); });
    if (!trouble_.empty()) throw std::runtime_error("redis: subscribe " + subject_or_pattern + ": " + trouble_);
    if (!answered) throw std::runtime_error("redis: subscribe " + subject_or_pattern + ": no confirmation");
  }

 private:
  static void* run(void* self) {
    pthread_setname_np(pthread_self(), "redis-receive");
    static_cast<SubscriberConnection*>(self)->receive_loop();
    return nullptr;
  }

  void receive_loop() {
    for (;;) {
      void* raw = nullptr;
      // Blocking read; the output buffer of this context stays empty, so hiredis never writes.
      if (redisGetReply(context_.get(), &raw) != REDIS_OK) {
        if (stopping_.load(std::memory_order_acquire)) return;  // pairs with the release in ~SubscriberConnection
        lost_.store(true, std::memory_order_relaxed);
        report_trouble(context_->errstr);
        return;
      }
      const Reply reply(static_cast<redisReply*>(raw));
      dispatch(*reply);
    }
  }

  void dispatch(const redisReply& reply) {
    if (reply.type == REDIS_REPLY_ERROR) return report_trouble(text_of(reply));
    if (reply.type != REDIS_REPLY_ARRAY || reply.elements < 3) return;
    const redisReply* const* part = reply.element;
    const std::string_view kind = text_of(*part[0]);
    if (kind == "message") return deliver(*part[1], *part[2]);
    if (kind == "pmessage" && reply.elements >= 4) return deliver(*part[2], *part[3]);
    if (kind == "subscribe" || kind == "psubscribe") {
      const std::lock_guard lock(mutex_);
      ++confirmed_;
      confirmed_changed_.notify_all();
    }
  }

  void deliver(const redisReply& channel, const redisReply& payload) {
    receiver_(text_of(channel), std::as_bytes(std::span(payload.str, payload.len)));
  }

  // Asynchronous trouble (the server closed the connection, say because this subscriber fell
  // further behind than client-output-buffer-limit allows) is reported, never hidden: it
  // explains missing messages.
  void report_trouble(std::string_view what) {
    std::fprintf(stderr, "redis link %s: subscriber connection: %.*s\n", name_.c_str(), static_cast<int>(what.size()),
                 what.data());
    const std::lock_guard lock(mutex_);
    trouble_ = what;
    confirmed_changed_.notify_all();
  }

  void send_all(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(context_->fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(std::string("redis: send SUBSCRIBE: ") + std::strerror(errno));
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }

  Context context_;
  PeerLink::Receiver receiver_;
  std::string name_;
  pthread_t thread_{};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> lost_{false};  // relaxed: a flag on its own; the read ended other than by the destructor

  std::mutex mutex_;  // guards the three below, shared by subscribe() and the receive thread
  std::condition_variable confirmed_changed_;
  std::uint64_t requested_ = 0;
  std::uint64_t confirmed_ = 0;  // subscribe/psubscribe confirmations seen
  std::string trouble_;          // why the connection is unusable; empty while it is fine
};

// A link: the connection opened by connect(), until the first publish() or subscribe() hands it
// to a PublisherConnection or a SubscriberConnection for the rest of the link's life.
class RedisLink final : public PeerLink {
 public:
  RedisLink(const Endpoint& endpoint, std::string name)
      : name_(std::move(name)), unused_(open_connection(endpoint, name_)) {}

  // One receiver per link: a later call's receiver is not used (the interface feeds every
  // subscription of a link to the same receiver).
  void subscribe(const std::string& subject_or_pattern, Receiver receiver) override {
    if (publisher_) throw std::logic_error("redis link " + name_ + ": cannot subscribe on a publishing link");
    if (!subscriber_)
      subscriber_ = std::make_unique<SubscriberConnection>(std::move(unused_), std::move(receiver), name_);
    subscriber_->subscribe(subject_or_pattern);
  }

  void publish(const std::string& subject, std::span<const std::byte> payload) override {
    if (subscriber_) throw std::logic_error("redis link " + name_ + ": cannot publish on a subscribed link");
    if (!publisher_) publisher_ = std::make_unique<PublisherConnection>(std::move(unused_));
    publisher_->publish(subject, payload);
  }

  void flush() override {
    if (publisher_) publisher_->flush();
  }

  bool connection_lost() const override { return subscriber_ && subscriber_->lost(); }

 private:
  std::string name_;
  Context unused_;  // empty once a role took it
  std::unique_ptr<PublisherConnection> publisher_;
  std::unique_ptr<SubscriberConnection> subscriber_;
};

}  // namespace

PeerSystem redis_system() {
  return PeerSystem{
      .name = "redis",
      .syntax = SubjectSyntax{':', "*"},
      .connect = [](const std::string& url, const std::string& name) -> std::unique_ptr<PeerLink> {
        return std::make_unique<RedisLink>(parse_url(url), name);
      },
  };
}

}  // namespace brook::bench
