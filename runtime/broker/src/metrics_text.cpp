#include "metrics_text.hpp"

#include <cstdio>

#include "shard.hpp"

namespace brook::runtime {

namespace {

constexpr CounterEntry counters[] = {
    {"connections_accepted", "Client connections accepted.", &ShardCounters::connections_accepted},
    {"connections_closed", "Client connections closed.", &ShardCounters::connections_closed},
    {"connections_refused", "Connections closed at once: the shard was full, or a shared-memory peer unfit.",
     &ShardCounters::connections_refused},
    {"frames_in", "Frames read from clients.", &ShardCounters::frames_in},
    {"bytes_in", "Bytes read from clients (Brook's stream, inside TLS and WebSocket).", &ShardCounters::bytes_in},
    {"bytes_out", "Bytes sent to clients, on the wire.", &ShardCounters::bytes_out},
    {"publishes", "Updates published (sequenced by their topic's owner).", &ShardCounters::publishes},
    {"deliveries", "Updates queued to subscribers.", &ShardCounters::deliveries},
    {"delta_deliveries", "Deliveries sent as a delta against the subscriber's value.", &ShardCounters::delta_deliveries},
    {"deltas_computed", "Deltas made smaller than their value (by each shard with subscribers to the topic).",
     &ShardCounters::deltas_computed},
    {"shared_deliveries", "Deliveries to shared-memory subscribers by reference into the broadcast log.",
     &ShardCounters::shared_deliveries},
    {"sends", "Sends to clients carrying session frames.", &ShardCounters::sends},
    {"conflated", "Queued updates replaced by a newer one of the same topic (conflation).", &ShardCounters::conflated},
    {"dropped_backlogs", "Subscriber queues dropped by the drop-oldest policy (each then resynchronised).",
     &ShardCounters::dropped_backlogs},
    {"resyncs", "Sessions resynchronised from current values after a gap.", &ShardCounters::resyncs},
    {"refreshes", "Full values asked for again by clients (a delta did not apply).", &ShardCounters::refreshes},
    {"slow_consumer_closes", "Sessions closed as slow consumers (queue limit, policy close).",
     &ShardCounters::slow_consumer_closes},
    {"flow_holds", "Subscribers that began holding their publishers back (flow control).", &ShardCounters::flow_holds},
    {"flow_stalls", "Publishers held back by flow control (episodes).", &ShardCounters::flow_stalls},
    {"flow_timeouts", "Subscribers given their queue-limit policy after flow.max_stall_ms.",
     &ShardCounters::flow_timeouts},
    {"memory_sheds", "Sessions given their queue-limit policy to keep within the memory budget.",
     &ShardCounters::memory_sheds},
    {"memory_refusals", "Publishes refused: the memory budget was spent.", &ShardCounters::memory_refusals},
    {"recovery_trimmed", "Sent frames forgotten from recovery windows early, for memory.",
     &ShardCounters::recovery_trimmed},
    {"refused_requests", "Client requests refused, all reasons (brook_refusals_total by reason).",
     &ShardCounters::refused_requests},
    {"protocol_errors", "Connections closed for breaking the protocol.", &ShardCounters::protocol_errors},
    {"permission_denials", "Operations denied by auth.permissions_file.", &ShardCounters::permission_denials},
    {"auth_failures", "Connections refused for their credentials.", &ShardCounters::auth_failures},
    {"requests", "Requests routed to a handler.", &ShardCounters::requests},
    {"responses", "Answers passed back to requesters.", &ShardCounters::responses},
    {"stray_responses", "Answers to requests the session was not serving (dropped).", &ShardCounters::stray_responses},
    {"sessions_opened", "Sessions opened.", &ShardCounters::sessions_opened},
    {"sessions_resumed", "Sessions resumed by a reconnecting client.", &ShardCounters::sessions_resumed},
    {"sessions_closed", "Sessions closed.", &ShardCounters::sessions_closed},
    {"handoffs", "Connections handed to the shard of their session.", &ShardCounters::handoffs},
    {"ping_timeouts", "Connections closed for not answering pings.", &ShardCounters::ping_timeouts},
    {"tls_handshakes", "TLS handshakes completed.", &ShardCounters::tls_handshakes},
    {"tls_failures", "TLS connections closed for a failed handshake or record.", &ShardCounters::tls_failures},
    {"ws_upgrades", "WebSocket upgrades completed.", &ShardCounters::ws_upgrades},
    {"ws_failures", "WebSocket connections refused or closed for a protocol error.", &ShardCounters::ws_failures},
};

// Error codes as label values: their names in brook::ErrorCode (stable, unlike the phrases).
constexpr std::string_view refusal_reasons[] = {
    "",               "malformed_frame",   "frame_too_large",  "unknown_frame",  "invalid_selector",
    "invalid_path",   "type_mismatch",     "invalid_value",    "not_connected",  "protocol_version",
    "queue_full",     "internal",          "authentication_failed", "session_not_found", "session_closed",
    "delta_rejected", "no_handler",        "handler_gone",     "handler_failed", "request_timeout",
    "too_many_requests", "memory_limit",   "back_pressured",   "storage_failed", "permission_denied",
};
static_assert(std::size(refusal_reasons) == static_cast<std::size_t>(ErrorCode::permission_denied) + 1);
static_assert(std::size(refusal_reasons) <= error_code_slots);

class Exposition {
 public:
  void family(std::string_view name, std::string_view type, std::string_view help) {
    text_ += "# HELP ";
    text_ += name;
    text_ += ' ';
    text_ += help;
    text_ += "\n# TYPE ";
    text_ += name;
    text_ += ' ';
    text_ += type;
    text_ += '\n';
  }
  void sample(std::string_view name, std::string_view labels, double value) {
    text_ += name;
    if (!labels.empty()) {
      text_ += '{';
      text_ += labels;
      text_ += '}';
    }
    char number[40];
    // Whole numbers exactly (counters pass 2^53 only in theory); others with enough digits.
    if (value == static_cast<double>(static_cast<std::uint64_t>(value)) && value < 9.0e15)
      std::snprintf(number, sizeof number, " %llu\n", static_cast<unsigned long long>(value));
    else
      std::snprintf(number, sizeof number, " %.17g\n", value);
    text_ += number;
  }
  std::string take() { return std::move(text_); }

 private:
  std::string text_;
};

std::string shard_label(std::size_t i) { return "shard=\"" + std::to_string(i) + "\""; }

template <std::size_t Bounds>
void histogram(Exposition& out, std::string_view name, std::string_view help, const MetricsSources& sources,
               PowerHistogram<Bounds> ShardCounters::*member, double unit) {
  out.family(name, "histogram", help);
  std::uint64_t cumulative = 0, sum = 0;
  const auto& first = sources.shards.front()->counters().*member;
  const std::string bucket = std::string(name) + "_bucket";
  for (std::size_t i = 0; i <= Bounds; ++i) {
    for (const Shard* shard : sources.shards) cumulative += (shard->counters().*member).bucket(i);
    char le[40];
    if (i == Bounds) std::snprintf(le, sizeof le, "le=\"+Inf\"");
    else std::snprintf(le, sizeof le, "le=\"%.9g\"", static_cast<double>(first.bound(i)) * unit);
    out.sample(bucket, le, static_cast<double>(cumulative));
  }
  for (const Shard* shard : sources.shards) sum += (shard->counters().*member).sum();
  out.sample(std::string(name) + "_sum", {}, static_cast<double>(sum) * unit);
  out.sample(std::string(name) + "_count", {}, static_cast<double>(cumulative));
}

}  // namespace

std::span<const CounterEntry> counter_table() { return counters; }

std::string prometheus_text(const MetricsSources& sources) {
  Exposition out;
  const auto& shards = sources.shards;
  out.family("brook_build_info", "gauge", "The running brookd's version (always 1).");
  out.sample("brook_build_info", "version=\"" + std::string(sources.version) + "\"", 1);
  out.family("brook_start_time_seconds", "gauge", "When brookd started, in Unix time.");
  out.sample("brook_start_time_seconds", {}, sources.start_time_s);
  out.family("brook_memory_budget_bytes", "gauge", "limits.max_memory_bytes as resolved at start.");
  out.sample("brook_memory_budget_bytes", {}, static_cast<double>(sources.memory_budget));
  out.family("brook_resident_bytes", "gauge", "The process's resident memory, as the shards last read it.");
  out.sample("brook_resident_bytes", {}, static_cast<double>(sources.resident_bytes));

  for (const CounterEntry& counter : counters) {
    const std::string name = "brook_" + std::string(counter.json_name) + "_total";
    std::uint64_t sum = 0;
    for (const Shard* shard : shards) sum += (shard->counters().*counter.member).get();
    out.family(name, "counter", counter.help);
    out.sample(name, {}, static_cast<double>(sum));
  }
  out.family("brook_refusals_total", "counter", "Client requests refused, by the error code the client was sent.");
  for (std::size_t code = 1; code < std::size(refusal_reasons); ++code) {
    const std::string_view reason = refusal_reasons[code];
    std::uint64_t sum = 0;
    for (const Shard* shard : shards) sum += shard->counters().refusals[code].get();
    out.sample("brook_refusals_total", "reason=\"" + std::string(reason) + "\"", static_cast<double>(sum));
  }

  struct PerShard {
    std::string_view name, type, help;
    double (*read)(const Shard&);
  };
  static constexpr PerShard per_shard[] = {
      {"brook_shard_busy_seconds_total", "counter", "Time the shard's loop spent working, its waits excluded.",
       [](const Shard& s) { return static_cast<double>(s.counters().busy_ns.get()) / 1e9; }},
      {"brook_shard_turns_total", "counter", "Turns of the shard's loop.",
       [](const Shard& s) { return static_cast<double>(s.counters().loop_turns.get()); }},
      {"brook_shard_longest_turn_seconds", "gauge", "The shard's longest loop turn since start.",
       [](const Shard& s) { return static_cast<double>(s.counters().longest_turn_ns.get()) / 1e9; }},
      {"brook_shard_connections", "gauge", "Open client connections.",
       [](const Shard& s) { return static_cast<double>(s.gauges().connections.get()); }},
      {"brook_shard_sessions", "gauge", "Sessions, attached or waiting for their client.",
       [](const Shard& s) { return static_cast<double>(s.gauges().sessions.get()); }},
      {"brook_shard_topics", "gauge", "Topics the shard owns.",
       [](const Shard& s) { return static_cast<double>(s.gauges().topics.get()); }},
      {"brook_shard_subscriptions", "gauge", "Subscriptions of the shard's sessions.",
       [](const Shard& s) { return static_cast<double>(s.gauges().subscriptions.get()); }},
      {"brook_shard_mailbox_depth", "gauge", "Records waiting in the shard's inbound mailboxes.",
       [](const Shard& s) { return static_cast<double>(s.mailbox_depth()); }},
      {"brook_shard_mailbox_overflows_total", "counter", "Records the shard queued behind a peer's full mailbox.",
       [](const Shard& s) { return static_cast<double>(s.counters().mailbox_overflows.get()); }},
      {"brook_shard_mailbox_overflow_records", "gauge", "Records the shard holds behind full mailboxes of its peers now.",
       [](const Shard& s) { return static_cast<double>(s.gauges().overflow_records.get()); }},
      {"brook_shard_pool_in_use_bytes", "gauge", "The shard's buffer pool: blocks in use (values, frames, deltas).",
       [](const Shard& s) { return static_cast<double>(s.gauges().pool_in_use_bytes.get()); }},
      {"brook_shard_pool_heap_bytes", "gauge", "The shard's buffer pool: what it holds from the heap.",
       [](const Shard& s) { return static_cast<double>(s.gauges().pool_heap_bytes.get()); }},
  };
  for (const PerShard& metric : per_shard) {
    out.family(metric.name, metric.type, metric.help);
    for (std::size_t i = 0; i < shards.size(); ++i) out.sample(metric.name, shard_label(i), metric.read(*shards[i]));
  }
  out.family("brook_shard_memory_bytes", "gauge", "Memory the shard counts against the budget (pools, queues, topics).");
  for (std::size_t i = 0; i < shards.size(); ++i)
    out.sample("brook_shard_memory_bytes", shard_label(i),
               static_cast<double>(sources.shard_memory[i].bytes.load(std::memory_order_relaxed)));

  if (!shards.empty()) {
    histogram(out, "brook_publish_to_send_seconds",
              "From reading a publish to the send that carries it to a subscriber, inside the broker (sampled).",
              sources, &ShardCounters::publish_to_send_ns, 1e-9);
    histogram(out, "brook_send_batch_frames", "Frames one send to a subscriber carries.", sources,
              &ShardCounters::send_batch_frames, 1.0);
  }
  return out.take();
}

}  // namespace brook::runtime
