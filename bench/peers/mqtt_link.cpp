// The MQTT backend of peer_bench: a PeerLink over libmosquitto (2.0), for mosquitto or any
// MQTT 3.1.1 broker. Run the way MQTT users run it for low latency: QoS 0 (at most once, like
// NATS core and Redis pub/sub), clean session, TCP_NODELAY, one client id per link.
//
// Threads. Each link has its own receive thread, a poll() loop over the socket and a stop
// eventfd that drives mosquitto_loop_read/_write/_misc; publish() and subscribe() write to the
// socket from the caller's thread. Not mosquitto_loop_start(), for two measured reasons:
//  - loop_start's thread waits in pselect(), which refuses descriptors >= FD_SETSIZE (1024): a
//    link holds three (socket and a wake-up socket pair), so beyond ~340 links in one process
//    the library's thread quits at once and those links never receive (fanout opens 1000).
//  - with loop_start a publish only queues the packet and wakes the library's thread, which
//    writes it: one thread hand-off more per message on the latency path.
// The library is told it is threaded (mosquitto_threaded_set), so its calls only queue packets
// and this file decides which thread writes them (see write_queued_packets()). Unthreaded, the
// library would write at once unless "in a callback", a flag it keeps per connection, not per
// thread: a publish made while the receive thread runs a callback would stay queued unseen.
#include "peer_link.hpp"

#include <mosquitto.h>
#include <poll.h>
#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace brook::bench {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr int kDefaultPort = 1883;
constexpr int kKeepaliveSeconds = 60;
// The receive loop wakes at least this often to let mosquitto_loop_misc() send keep-alive
// pings; a link that only receives would otherwise be cut by the broker after 1.5 keep-alives.
constexpr int kReceiveIdleWakeMs = 1000;
constexpr auto kConnackTimeout = 10s;
constexpr auto kSubackTimeout = 10s;
// flush() waits this long for a server that does not read (then throws): far beyond any stall
// a healthy run sees, it only keeps a wedged run from hanging.
constexpr auto kFlushTimeout = 30s;
// The receive thread runs libmosquitto's reader and the scenario's receiver; the fanout
// scenario starts a thousand of them, so they do not get the default 8 MiB each.
constexpr std::size_t kReceiveStackBytes = 256 * 1024;
// SUBACK return code for a refused subscription (MQTT 3.1.1, 3.9.3).
constexpr int kSubscriptionRefused = 0x80;

void initialise_library_once() {
  static std::once_flag once;
  // Never paired with mosquitto_lib_cleanup(): links may live until the process exits.
  std::call_once(once, [] { mosquitto_lib_init(); });
}

// mosquitto_strerror() says only "Unknown error" for MOSQ_ERR_ERRNO; errno has the reason
// (connection refused and the like).
std::string describe(int rc) {
  if (rc == MOSQ_ERR_ERRNO) return std::strerror(errno);
  return mosquitto_strerror(rc);
}

std::string seconds(std::chrono::seconds s) { return std::to_string(s.count()) + " s"; }

[[noreturn]] void fail(const std::string& link, const std::string& what, const std::string& why) {
  throw std::runtime_error("mqtt link " + link + ": " + what + ": " + why);
}

struct HostPort {
  std::string host;
  int port = kDefaultPort;
};

// "mqtt://HOST:PORT", "HOST:PORT" or "HOST"; an IPv6 host is written in brackets.
HostPort parse_url(const std::string& url) {
  std::string rest = url;
  if (const auto scheme = rest.find("://"); scheme != std::string::npos) {
    if (rest.compare(0, scheme, "mqtt") != 0 && rest.compare(0, scheme, "tcp") != 0) {
      throw std::runtime_error("mqtt: url " + url + " is not mqtt://HOST:PORT");
    }
    rest.erase(0, scheme + 3);
  }
  if (const auto slash = rest.find('/'); slash != std::string::npos) rest.erase(slash);
  HostPort hp;
  std::string port;
  if (!rest.empty() && rest.front() == '[') {
    const auto close = rest.find(']');
    if (close == std::string::npos) throw std::runtime_error("mqtt: bad host in url " + url);
    hp.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (const auto colon = rest.rfind(':'); colon != std::string::npos) {
    hp.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    hp.host = rest;
  }
  if (hp.host.empty()) throw std::runtime_error("mqtt: no host in url " + url);
  if (!port.empty()) {
    try {
      std::size_t used = 0;
      hp.port = std::stoi(port, &used);
      if (used != port.size() || hp.port <= 0 || hp.port > 65535) throw std::out_of_range(port);
    } catch (const std::exception&) {
      throw std::runtime_error("mqtt: bad port in url " + url);
    }
  }
  return hp;
}

// "NAME-COUNTER-PID": unique among the links of this process and across processes, which a
// clean-session broker needs (a second connection with the same id takes the first one over).
std::string unique_client_id(const std::string& name) {
  static std::atomic<std::uint64_t> links_opened{0};  // relaxed: only uniqueness matters
  const std::uint64_t n = links_opened.fetch_add(1, std::memory_order_relaxed);
  return name + "-" + std::to_string(n) + "-" + std::to_string(::getpid());
}

// One MQTT connection. Owns the mosquitto handle, its receive thread and the stop eventfd.
// publish/flush/subscribe come from one sender thread (or from inside this link's receiver);
// callbacks and the receiver run on the receive thread. Connected (CONNACK seen) when the
// constructor returns; the destructor stops the receive thread, then sends DISCONNECT.
class MqttLink final : public PeerLink {
 public:
  MqttLink(const std::string& url, const std::string& name) : name_(name) {
    initialise_library_once();
    const HostPort server = parse_url(url);

    mosq_ = mosquitto_new(unique_client_id(name).c_str(), /*clean_session=*/true, this);
    if (mosq_ == nullptr) fail(name_, "mosquitto_new", std::strerror(errno));
    try {
      connect(server);
      stop_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (stop_fd_ < 0) fail(name_, "eventfd", std::strerror(errno));
      start_receive_thread();
    } catch (...) {
      if (stop_fd_ >= 0) ::close(stop_fd_);
      mosquitto_destroy(mosq_);
      throw;
    }
  }

  ~MqttLink() override {
    const std::uint64_t one = 1;
    if (::write(stop_fd_, &one, sizeof one) != sizeof one) {
      std::fprintf(stderr, "mqtt link %s: cannot wake the receive thread: %s\n", name_.c_str(),
                   std::strerror(errno));
    }
    ::pthread_join(receive_thread_, nullptr);
    // No receiver runs from here on. DISCONNECT lets the broker end the session without
    // logging a lost client; the write closes the socket after it.
    if (mosquitto_disconnect(mosq_) == MOSQ_ERR_SUCCESS) mosquitto_loop_write(mosq_, 1);
    mosquitto_destroy(mosq_);
    ::close(stop_fd_);
  }

  MqttLink(const MqttLink&) = delete;
  MqttLink& operator=(const MqttLink&) = delete;

  void subscribe(const std::string& subject_or_pattern, Receiver receiver) override {
    {
      std::lock_guard lock(mutex_);
      if (!receiver_) receiver_ = std::move(receiver);  // the first one serves every subscription
    }
    int mid = 0;
    const int rc = mosquitto_subscribe(mosq_, &mid, subject_or_pattern.c_str(), /*qos=*/0);
    if (rc != MOSQ_ERR_SUCCESS) fail(name_, "subscribe " + subject_or_pattern, describe(rc));
    write_queued_packets("subscribe " + subject_or_pattern);

    // The broker routes to a subscription once it has sent the SUBACK, so after this wait a
    // message published on any link reaches it.
    std::unique_lock lock(mutex_);
    const bool answered = subacks_.wait_for(lock, kSubackTimeout, [&] {
      return receive_stopped_ ||
             std::find_if(subacks_received_.begin(), subacks_received_.end(),
                          [&](const Suback& s) { return s.mid == mid; }) != subacks_received_.end();
    });
    const auto suback = std::find_if(subacks_received_.begin(), subacks_received_.end(),
                                     [&](const Suback& s) { return s.mid == mid; });
    if (suback == subacks_received_.end()) {
      fail(name_, "subscribe " + subject_or_pattern,
           answered ? "connection lost: " + receive_failure_
                    : "no SUBACK within " + seconds(kSubackTimeout));
    }
    const int granted_qos = suback->granted_qos;
    subacks_received_.erase(suback);
    if (granted_qos == kSubscriptionRefused) {
      fail(name_, "subscribe " + subject_or_pattern, "refused by the broker");
    }
  }

  void publish(const std::string& subject, std::span<const std::byte> payload) override {
    const int rc = mosquitto_publish(mosq_, /*mid=*/nullptr, subject.c_str(),
                                     static_cast<int>(payload.size()), payload.data(),
                                     /*qos=*/0, /*retain=*/false);
    if (rc != MOSQ_ERR_SUCCESS) fail(name_, "publish " + subject, describe(rc));
    write_queued_packets("publish " + subject);
  }

  // publish() already wrote what the socket took. What is left is what a full socket buffer
  // refused (EAGAIN): wait for room and write it here, on the caller's thread. With
  // loop_start this would be the library thread's job, and flush would have to wait for it.
  void flush() override {
    // The receiver (publishing from inside a callback) cannot write; the receive loop writes
    // what it queued as soon as the callback returns.
    if (on_receive_thread()) return;
    const auto deadline = Clock::now() + kFlushTimeout;
    while (mosquitto_want_write(mosq_)) {
      const int rc = mosquitto_loop_write(mosq_, 1);
      if (rc != MOSQ_ERR_SUCCESS) fail(name_, "flush", describe(rc));
      if (!mosquitto_want_write(mosq_)) break;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left <= 0ms) fail(name_, "flush", "socket not writable for " + seconds(kFlushTimeout));
      pollfd writable{mosquitto_socket(mosq_), POLLOUT, 0};
      ::poll(&writable, 1, static_cast<int>(left.count()));
    }
  }

  bool connection_lost() const override { return connection_lost_.load(std::memory_order_relaxed); }

 private:
  struct Suback {
    int mid;
    int granted_qos;
  };

  void connect(const HostPort& server) {
    mosquitto_threaded_set(mosq_, true);
    mosquitto_int_option(mosq_, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311);
    // libmosquitto writes each packet with its own write(): with Nagle, a publish that
    // follows another within one round trip would wait for the ACK of the first.
    mosquitto_int_option(mosq_, MOSQ_OPT_TCP_NODELAY, 1);
    mosquitto_connect_callback_set(mosq_, &MqttLink::on_connect);
    mosquitto_subscribe_callback_set(mosq_, &MqttLink::on_subscribe);
    mosquitto_message_callback_set(mosq_, &MqttLink::on_message);

    const int rc = mosquitto_connect(mosq_, server.host.c_str(), server.port, kKeepaliveSeconds);
    if (rc != MOSQ_ERR_SUCCESS) {
      fail(name_, "connect to " + server.host + ":" + std::to_string(server.port), describe(rc));
    }
    write_queued_packets("CONNECT");

    // CONNACK is read here, before the receive thread exists, so on_connect runs on this
    // thread and connack_ needs no lock.
    const auto deadline = Clock::now() + kConnackTimeout;
    while (connack_ < 0) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left <= 0ms) fail(name_, "connect", "no CONNACK within " + seconds(kConnackTimeout));
      pollfd readable{mosquitto_socket(mosq_), POLLIN, 0};
      if (::poll(&readable, 1, static_cast<int>(left.count())) <= 0) continue;
      const int read_rc = mosquitto_loop_read(mosq_, 1);
      // A refusing CONNACK fails the read too; its reason code says more ("not authorised").
      if (connack_ > 0) fail(name_, "connect", mosquitto_connack_string(connack_));
      if (read_rc != MOSQ_ERR_SUCCESS) fail(name_, "connect", describe(read_rc));
    }
  }

  void start_receive_thread() {
    pthread_attr_t attr;
    ::pthread_attr_init(&attr);
    ::pthread_attr_setstacksize(&attr, kReceiveStackBytes);
    const int rc = ::pthread_create(
        &receive_thread_, &attr, [](void* link) -> void* {
          static_cast<MqttLink*>(link)->receive_loop();
          return nullptr;
        },
        this);
    ::pthread_attr_destroy(&attr);
    if (rc != 0) fail(name_, "start the receive thread", std::strerror(rc));
  }

  bool on_receive_thread() const { return receiving_link == this; }

  // Writes the packets the library queued, from this thread: the lowest-latency path, and
  // what mosquitto does itself when it is not in threaded mode. Not from inside a callback:
  // the library holds its callback mutex there and takes it again after writing a PUBLISH.
  void write_queued_packets(const std::string& what) {
    if (on_receive_thread()) return;
    const int rc = mosquitto_loop_write(mosq_, 1);
    if (rc != MOSQ_ERR_SUCCESS) fail(name_, what, describe(rc));
  }

  // The receive thread: reads and dispatches packets, writes what callbacks queued (and what a
  // full socket held back), sends keep-alive pings; ends on the stop eventfd or an error.
  void receive_loop() {
    receiving_link = this;
    int rc = MOSQ_ERR_SUCCESS;
    while (rc == MOSQ_ERR_SUCCESS) {
      const int sock = mosquitto_socket(mosq_);
      if (sock < 0) {
        rc = MOSQ_ERR_NO_CONN;
        break;
      }
      pollfd fds[2] = {{sock, static_cast<short>(POLLIN | (mosquitto_want_write(mosq_) ? POLLOUT : 0)), 0},
                       {stop_fd_, POLLIN, 0}};
      if (::poll(fds, 2, kReceiveIdleWakeMs) < 0) {
        if (errno == EINTR) continue;
        rc = MOSQ_ERR_ERRNO;
        break;
      }
      if (fds[1].revents != 0) return;  // the destructor; it disconnects after the join
      // One packet per call (the library ignores max_packets for QoS 0), as in mosquitto_loop().
      if (fds[0].revents & (POLLIN | POLLERR | POLLHUP)) rc = mosquitto_loop_read(mosq_, 1);
      if (rc == MOSQ_ERR_SUCCESS && mosquitto_want_write(mosq_)) rc = mosquitto_loop_write(mosq_, 1);
      if (rc == MOSQ_ERR_SUCCESS) rc = mosquitto_loop_misc(mosq_);
    }
    const std::string why = describe(rc);
    connection_lost_.store(true, std::memory_order_relaxed);
    std::fprintf(stderr, "mqtt link %s: receive loop stopped: %s\n", name_.c_str(), why.c_str());
    std::lock_guard lock(mutex_);
    receive_failure_ = why;
    receive_stopped_ = true;
    subacks_.notify_all();
  }

  // The link whose receive loop runs on this thread: publish() and flush() called from inside
  // its receiver must leave the writing to that loop. Thread-local, so no thread reads another's.
  static thread_local const MqttLink* receiving_link;

  static MqttLink& self(void* obj) { return *static_cast<MqttLink*>(obj); }

  static void on_connect(mosquitto*, void* obj, int connack_code) { self(obj).connack_ = connack_code; }

  static void on_subscribe(mosquitto*, void* obj, int mid, int qos_count, const int* granted_qos) {
    MqttLink& link = self(obj);
    std::lock_guard lock(link.mutex_);
    link.subacks_received_.push_back({mid, qos_count > 0 ? granted_qos[0] : kSubscriptionRefused});
    link.subacks_.notify_all();
  }

  static void on_message(mosquitto*, void* obj, const mosquitto_message* message) {
    MqttLink& link = self(obj);
    // Set once, before the first SUBSCRIBE is sent; the lock makes that visible to this
    // thread (the socket round trip that orders the two is invisible to the memory model).
    Receiver* receiver = nullptr;
    {
      std::lock_guard lock(link.mutex_);
      receiver = &link.receiver_;
    }
    if (!*receiver) return;
    const auto* bytes = static_cast<const std::byte*>(message->payload);
    // An exception must not unwind through libmosquitto's C frames; the message counts as lost.
    try {
      (*receiver)(message->topic, std::span<const std::byte>(bytes, static_cast<std::size_t>(message->payloadlen)));
    } catch (const std::exception& e) {
      if (!link.receiver_failed_) {
        std::fprintf(stderr, "mqtt link %s: receiver failed: %s\n", link.name_.c_str(), e.what());
      }
      link.receiver_failed_ = true;
    }
  }

  const std::string name_;
  mosquitto* mosq_ = nullptr;
  int stop_fd_ = -1;
  int connack_ = -1;  // constructor's thread only (see connect())
  bool receiver_failed_ = false;  // receive thread only: report the first failure, not each
  pthread_t receive_thread_{};
  std::atomic<bool> connection_lost_{false};  // relaxed: a flag on its own, set by the receive loop's failure

  std::mutex mutex_;  // guards what follows; subacks_ waits on it
  std::condition_variable subacks_;
  Receiver receiver_;
  std::vector<Suback> subacks_received_;
  bool receive_stopped_ = false;
  std::string receive_failure_;
};

thread_local const MqttLink* MqttLink::receiving_link = nullptr;

}  // namespace

PeerSystem mqtt_system() {
  return PeerSystem{
      .name = "mqtt",
      .syntax = SubjectSyntax{.separator = '/', .descendants = "#"},
      .connect = [](const std::string& url, const std::string& name) -> std::unique_ptr<PeerLink> {
        return std::make_unique<MqttLink>(url, name);
      },
      // libmosquitto has no batching to turn off: it writes every packet with its own write().
      .connect_unbatched = {},
  };
}

}  // namespace brook::bench
