// The shard's side of the HTTP side (broker_http.cpp): its levels stored once per turn for
// other threads, the detail of its sessions, topics and subscriptions copied out when asked,
// the sessions it closed lately, and the sampled publish-to-send latency. Runs on the shard's
// thread, except report() and mailbox_depth(), which other threads call.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <chrono>
#include <cstring>

#include "shard.hpp"

namespace brook::runtime {

namespace {

constexpr std::size_t closed_sessions_kept = 64;
constexpr std::size_t value_text_limit = 4096;
constexpr std::size_t binary_hex_limit = 64;

std::string peer_address(int fd) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (fd < 0 || ::getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return {};
  char host[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET) {
    const auto& in = reinterpret_cast<const sockaddr_in&>(address);
    ::inet_ntop(AF_INET, &in.sin_addr, host, sizeof host);
    return std::string(host) + ":" + std::to_string(ntohs(in.sin_port));
  }
  if (address.ss_family == AF_INET6) {
    const auto& in6 = reinterpret_cast<const sockaddr_in6&>(address);
    ::inet_ntop(AF_INET6, &in6.sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(in6.sin6_port));
  }
  return "unix";
}

const char* transport_of(const Connection& c) {
  if (c.shm) return "shm";
  if (c.ws) return c.tls ? "wss" : "ws";
  return c.tls ? "tls" : "tcp";
}

const char* state_of(const Session& s) {
  const Connection* c = s.connection;
  if (!c) return "detached";
  if (c->closing) return "closing";
  return c->state == ConnectionState::attached ? "attached" : "connecting";
}

double seconds(std::uint64_t ns) { return static_cast<double>(ns) / 1e9; }

// How a value reads in JSON: text types as they are, numbers in decimal, binary as the hex of
// its first bytes.
void describe_value(TopicReport& topic, codec::TopicType type, std::span<const std::byte> value) {
  std::string text;
  switch (type) {
    case codec::TopicType::int64:
      if (value.size() == sizeof(std::int64_t)) {
        std::int64_t v;
        std::memcpy(&v, value.data(), sizeof v);
        text = std::to_string(v);
      }
      break;
    case codec::TopicType::float64:
      if (value.size() == sizeof(double)) {
        double v;
        std::memcpy(&v, value.data(), sizeof v);
        char number[32];
        std::snprintf(number, sizeof number, "%.17g", v);
        text = number;
      }
      break;
    case codec::TopicType::binary: {
      static constexpr char digits[] = "0123456789abcdef";
      const std::size_t n = std::min(value.size(), binary_hex_limit);
      for (std::size_t i = 0; i < n; ++i) {
        text += digits[std::to_integer<unsigned>(value[i]) >> 4];
        text += digits[std::to_integer<unsigned>(value[i]) & 15];
      }
      topic.value_truncated = value.size() > n;
      break;
    }
    default: {
      const std::size_t n = std::min(value.size(), value_text_limit);
      text.assign(reinterpret_cast<const char*>(value.data()), n);
      topic.value_truncated = value.size() > n;
    }
  }
  topic.value = std::move(text);
}

}  // namespace

std::optional<ShardReport> Shard::report(const ReportRequest& request, std::chrono::milliseconds timeout) {
  return report_desk_.ask(request, timeout, [this] { wake(); });
}

std::size_t Shard::mailbox_depth() const noexcept {
  std::size_t depth = 0;
  for (unsigned from = 0; from < mesh_.shard_count; ++from) depth += mesh_.ring(from, index_).size_hint();
  return depth;
}

void Shard::store_gauges(std::uint64_t now) {
  gauges_.connections = open_connections_;
  gauges_.sessions = sessions_.size() - free_session_slots_.size();
  gauges_.topics = topic_by_path_.size();
  gauges_.subscriptions = subscription_owner_.size();
  gauges_.overflow_records = overflow_count_;
  gauges_.pool_in_use_bytes = pool_.in_use_bytes();
  gauges_.pool_heap_bytes = pool_.heap_bytes();
  gauges_.last_turn_ns = now;
  if (report_desk_.wanted())
    report_desk_.answer([this](const ReportRequest& request) { return build_report(request); });
}

void Shard::remember_closed(const Session& s, std::string_view reason, bool by_broker) {
  ClosedSessionReport closed;
  closed.id = s.id;
  closed.principal = s.principal;
  closed.shard = index_;
  if (const Connection* c = s.connection) {
    closed.address = c->shm ? "unix" : peer_address(c->fd);
    closed.transport = transport_of(*c);
  }
  closed.reason = reason.empty() ? "closed by the client" : std::string(reason);
  closed.closed_at_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch()).count();
  closed.age_s = seconds(now_ns() - s.opened_ns);
  if (by_broker)
    log_.line(now_ns(), "brookd: shard %u: session %s of '%s' (%s %s) ended by the broker: %s", index_,
              closed.id.c_str(), closed.principal.c_str(), closed.transport.c_str(), closed.address.c_str(),
              closed.reason.c_str());
  if (closed_sessions_.size() == closed_sessions_kept) closed_sessions_.pop_front();
  closed_sessions_.push_back(std::move(closed));
}

ShardReport Shard::build_report(const ReportRequest& request) {
  ShardReport report;
  const std::uint64_t now = now_ns();
  if (request.sessions || request.subscriptions) {
    for (const auto& held : sessions_) {
      if (!held || held->ended) continue;
      const Session& s = *held;
      if (request.subscriptions) {
        for (const auto& sub : s.subscriptions)
          report.subscriptions.push_back({.session = s.id, .selector = sub.selector.text(), .shard = index_,
                                          .resync = sub.resync, .history = sub.history});
      }
      if (!request.sessions) continue;
      SessionReport r;
      r.id = s.id;
      r.principal = s.principal;
      r.shard = index_;
      r.state = state_of(s);
      r.subscriptions = static_cast<std::uint32_t>(s.subscriptions.size());
      r.pending_frames = s.out.frames();
      r.pending_bytes = s.out.bytes();
      r.recovery_frames = s.out.retained_frames();
      r.recovery_bytes = s.out.retained_bytes();
      r.age_s = seconds(now - std::min(now, s.opened_ns));
      r.holding_publishers = !s.holding.empty();
      r.held_back = s.held_by > 0;
      if (const Connection* c = s.connection) {
        r.transport = transport_of(*c);
        r.address = c->shm ? "unix" : peer_address(c->fd);
        const std::uint64_t last = std::max(c->last_heard_ns, c->last_sent_ns);
        r.idle_s = seconds(now - std::min(now, std::max(last, c->opened_ns)));
      } else {
        r.idle_s = seconds(now - std::min(now, s.expires_ns - std::uint64_t{s.reconnect_timeout_ms} * 1'000'000));
      }
      report.sessions.push_back(std::move(r));
    }
    report.closed.assign(closed_sessions_.rbegin(), closed_sessions_.rend());
  }
  if (request.topics) {
    for (const auto& [path, topic] : topic_by_path_) {
      if (!request.topic_prefix.empty() && !std::string_view(path).starts_with(request.topic_prefix)) continue;
      TopicReport r;
      r.path = path;
      r.shard = index_;
      r.type = std::string(codec::to_string(topic->properties.type));
      r.sequence = topic->seq;
      for (unsigned shard = 0; shard < mesh_.shard_count; ++shard) r.subscribers += topic->interest[shard];
      r.retained = topic->properties.retain;
      r.conflate = topic->properties.conflate;
      r.history = topic->properties.history;
      if (topic->has_value && topic->frame) {
        auto publish = codec::read_trusted_publish(topic->frame->data(), topic->frame->size());
        r.value_bytes = publish.value_bytes;
        if (request.values)
          describe_value(r, topic->properties.type,
                         std::span<const std::byte>(topic->frame->data() + publish.value_offset, publish.value_bytes));
      }
      report.topics.push_back(std::move(r));
    }
  }
  return report;
}

void Shard::note_send(Session& s, std::uint64_t frames, std::uint64_t through) {
  if (frames == 0) return;
  ++counters_.sends;
  counters_.send_batch_frames.record(frames);
  if (s.sampled_sequence != 0 && s.sampled_sequence <= through) {
    const std::uint64_t now = std::max(received_clock_ns_, send_clock_ns_);
    counters_.publish_to_send_ns.record(now - std::min(now, s.sampled_received_ns));
    s.sampled_sequence = 0;
  }
}

}  // namespace brook::runtime
