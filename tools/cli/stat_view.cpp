#include "stat_view.hpp"

#include "api_json.hpp"
#include "ops_tables.hpp"
#include "text_table.hpp"

namespace brook::cli {

namespace {

// "publishes 500/s": a label and its value, joined into lines two spaces apart.
std::string pairs(std::initializer_list<std::pair<const char*, std::string>> items) {
  std::string line;
  for (const auto& [label, value] : items) {
    if (!line.empty()) line += "   ";
    line += label;
    line += ' ';
    line += value;
  }
  return line + "\n";
}

std::string shards_table(const nlohmann::json& shards) {
  TextTable table({{"SHARD", true}, {"BUSY", true}, {"CONNS", true}, {"SESSIONS", true}, {"TOPICS", true},
                   {"MAILBOX", true}, {"PUBLISHES", true}, {"DELIVERIES", true}, {"MEMORY", true}});
  for (const auto& s : shards)
    table.add_row({api::text(s, "shard"), percent(api::number(s, "busy_ratio")),
                   human_count(api::number(s, "connections")), human_count(api::number(s, "sessions")),
                   human_count(api::number(s, "topics")), human_count(api::number(s, "mailbox_depth")),
                   human_count(api::number(s, "publishes")), human_count(api::number(s, "deliveries")),
                   human_bytes(api::number(s, "memory_bytes"))});
  return table.render();
}

}  // namespace

std::string stat_view(const StatSnapshot& snapshot, const std::string& source, const std::string& clock) {
  const auto& broker = snapshot.broker;
  const auto empty = nlohmann::json::object();
  const auto* totals_field = api::field(broker, "totals");
  const auto* rates_field = api::field(broker, "rates");
  const auto& totals = totals_field != nullptr ? *totals_field : empty;
  const auto& rates = rates_field != nullptr ? *rates_field : empty;

  std::string out = "brookd " + api::text(broker, "version", "?") + " at " + source + "   up " +
                    human_seconds(api::number(broker, "uptime_s", -1)) + "   " +
                    api::text(broker, "shard_count", "?") + " shards   " +
                    (api::flag(broker, "ready") ? "ready" : "NOT READY") + "   " + clock + "\n";
  out += pairs({{"publishes/s", human_count(api::number(rates, "publishes_per_s"))},
                {"deliveries/s", human_count(api::number(rates, "deliveries_per_s"))},
                {"in", human_bytes(api::number(rates, "bytes_in_per_s")) + "/s"},
                {"out", human_bytes(api::number(rates, "bytes_out_per_s")) + "/s"}});
  out += pairs({{"connections", human_count(api::number(totals, "connections"))},
                {"sessions", human_count(api::number(totals, "sessions"))},
                {"topics", human_count(api::number(totals, "topics"))},
                {"subscriptions", human_count(api::number(totals, "subscriptions"))}});
  out += pairs({{"refusals", human_count(api::number(totals, "refusals"))},
                {"slow-consumer closes", human_count(api::number(totals, "slow_consumer_closes"))},
                {"flow stalls", human_count(api::number(totals, "flow_stalls"))},
                {"resyncs", human_count(api::number(totals, "resyncs"))},
                {"auth failures", human_count(api::number(totals, "auth_failures"))}});
  out += '\n';
  out += shards_table(api::list(broker, "shards"));
  out += "\nslowest sessions (queued bytes)\n";
  out += snapshot.sessions.empty() ? "  none\n" : sessions_table(snapshot.sessions, TableWidth::compact);
  out += "\nbusiest topics (updates/s)\n";
  out += snapshot.topics.empty() ? "  none\n" : topics_table(snapshot.topics, TableWidth::compact);
  out += partial_answer_note(snapshot.silent_shards);
  return out;
}

std::string stat_json_line(const StatSnapshot& snapshot) {
  nlohmann::json line = {{"broker", snapshot.broker}, {"sessions", snapshot.sessions}, {"topics", snapshot.topics}};
  if (!snapshot.silent_shards.empty()) line["silent_shards"] = snapshot.silent_shards;
  return line.dump() + "\n";
}

}  // namespace brook::cli
