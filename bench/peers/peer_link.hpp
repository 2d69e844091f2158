// One client connection to a peer messaging system (nats-server, redis-server, mosquitto),
// as bench/peers/scenarios.cpp drives it: the scenarios are written once, against this
// interface, so that every peer runs exactly the same load and checks; a backend only
// translates publish/subscribe into its client library.
//
// Threading: publish() and flush() are called from one thread (the scenario's sender);
// receivers run on the link's own receive thread (the library's or the backend's), one message
// at a time, in the order the server delivered them. A link is closed by its destructor, which
// stops its receive thread before it returns (no receiver runs afterwards). In every scenario a
// link either publishes or subscribes, never both (the rtt responder receives on one link and
// echoes through a second, whose one sending thread is the first one's receive thread): hiredis,
// for one, cannot publish on a connection in subscribe mode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace brook::bench {

// How a system names things: "bench.tp" / "bench:tp" / "bench/tp", and the pattern that
// matches every subject below a prefix ("bench.topics.>" / "bench:topics:*" / "bench/topics/#").
struct SubjectSyntax {
  char separator = '.';
  std::string_view descendants = ">";

  std::string subject(std::string_view prefix, std::string_view leaf) const {
    std::string s(prefix);
    s += separator;
    s += leaf;
    return s;
  }
  std::string all_below(std::string_view prefix) const { return subject(prefix, descendants); }
};

class PeerLink {
 public:
  using Receiver = std::function<void(std::string_view subject, std::span<const std::byte> payload)>;

  virtual ~PeerLink() = default;

  // Subscribes to a subject or an all_below() pattern and returns once the server has the
  // subscription (messages published after the return reach it). One receiver per link:
  // calling it again adds a subscription that feeds the same receiver.
  virtual void subscribe(const std::string& subject_or_pattern, Receiver receiver) = 0;

  // Queues one message; it may sit in the client library's buffer until flush() or until the
  // library sends on its own. Low-latency scenarios call flush() after every publish.
  virtual void publish(const std::string& subject, std::span<const std::byte> payload) = 0;

  // Everything published so far is written to the server's socket.
  virtual void flush() = 0;

  // Messages the client library itself discarded for this link's subscriptions (a full receive
  // queue), where the library counts them; they never reach the receiver and so count as lost.
  // The scenarios poll it from the sending thread to stop waiting for them early.
  virtual std::uint64_t dropped() const { return 0; }

  // Whether the connection ended under the link while it was open (the server closed it, say
  // as a slow consumer): what it would have received after that counts as lost. No backend
  // reconnects, so a lost connection stays lost. Any thread may ask.
  virtual bool connection_lost() const { return false; }
};

// A peer system: its name in results ("nats", "redis", "mqtt"), how it names subjects, and how
// to open a link to a server at `url` (nats://HOST:PORT, redis://HOST:PORT, mqtt://HOST:PORT).
// `name` identifies the link in the server's logs. Failures throw std::runtime_error with the
// library's reason.
struct PeerSystem {
  std::string name;
  SubjectSyntax syntax;
  std::function<std::unique_ptr<PeerLink>(const std::string& url, const std::string& name)> connect;
  // Optional: a link for the latency scenarios (rtt, fanout) and for links that only subscribe,
  // where every publish() must leave at once instead of waiting for a batch to fill. Only for a
  // library that makes this a connection setting (cnats: send_asap, whose buffered default
  // holds a lone message up to 1 ms); empty: `connect` serves both.
  std::function<std::unique_ptr<PeerLink>(const std::string& url, const std::string& name)> connect_unbatched = {};
};

// The backends compiled in (their libraries were found); each defined in its own file.
PeerSystem nats_system();
PeerSystem redis_system();
PeerSystem mqtt_system();

}  // namespace brook::bench
