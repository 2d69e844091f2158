#include "ops_tables.hpp"

#include "api_json.hpp"
#include "text_table.hpp"

namespace brook::cli {

namespace {

std::string whole(const nlohmann::json& object, std::string_view name) {
  return human_count(api::number(object, name));
}

// "holding publishers", "held back": the session flags worth an operator's attention.
std::string session_notes(const nlohmann::json& session) {
  std::string notes;
  auto add = [&](const char* note) { notes += notes.empty() ? note : std::string(", ") + note; };
  if (api::flag(session, "holding_publishers")) add("holding publishers");
  if (api::flag(session, "held_back")) add("held back");
  return notes;
}

std::string topic_properties(const nlohmann::json& topic) {
  std::string properties;
  auto add = [&](const std::string& property) { properties += properties.empty() ? property : "," + property; };
  if (api::flag(topic, "retained")) add("retained");
  if (api::flag(topic, "conflate")) add("conflate");
  if (double history = api::number(topic, "history"); history > 0) add("history=" + human_count(history));
  return properties;
}

}  // namespace

std::string sessions_table(const nlohmann::json& sessions, TableWidth width) {
  const bool full = width == TableWidth::full;
  std::vector<TextTable::Column> columns = {{"SESSION"}, {"STATE"}, {"SHARD", true}, {"QUEUED", true},
                                            {"FRAMES", true}, {"RECOVERY", true}, {"IDLE", true}};
  if (full) {
    for (TextTable::Column column :
         {TextTable::Column{"SUBS", true}, {"AGE", true}, {"TRANSPORT"}, {"ADDRESS"}, {"NOTES"}})
      columns.push_back(column);
  }
  TextTable table(std::move(columns));
  for (const auto& s : sessions) {
    std::vector<std::string> row = {api::text(s, "id"),
                                    api::text(s, "state"),
                                    api::text(s, "shard"),
                                    human_bytes(api::number(s, "pending_bytes")),
                                    whole(s, "pending_frames"),
                                    human_bytes(api::number(s, "recovery_bytes")),
                                    human_seconds(api::number(s, "idle_s", -1))};
    if (full) {
      row.insert(row.end(), {whole(s, "subscriptions"), human_seconds(api::number(s, "age_s", -1)),
                             api::text(s, "transport"), api::text(s, "address"), session_notes(s)});
    }
    table.add_row(std::move(row));
  }
  return table.render();
}

std::string closed_sessions_table(const nlohmann::json& closed) {
  TextTable table({{"SESSION"}, {"SHARD", true}, {"CLOSED AT"}, {"AGE", true}, {"TRANSPORT"}, {"ADDRESS"}, {"REASON"}});
  for (const auto& s : closed)
    table.add_row({api::text(s, "id"), api::text(s, "shard"), api::text(s, "closed_at"),
                   human_seconds(api::number(s, "age_s", -1)), api::text(s, "transport"), api::text(s, "address"),
                   one_line(api::text(s, "reason"))});
  return table.render();
}

std::string topics_table(const nlohmann::json& topics, TableWidth width) {
  const bool full = width == TableWidth::full;
  bool values = false;
  for (const auto& t : topics) values = values || api::field(t, "value") != nullptr;
  std::vector<TextTable::Column> columns = {{"TOPIC"}, {"RATE/S", true}, {"SUBS", true}, {"SEQ", true}};
  if (full) {
    for (TextTable::Column column : {TextTable::Column{"SHARD", true}, {"TYPE"}, {"SIZE", true}, {"PROPERTIES"}})
      columns.push_back(column);
    if (values) columns.push_back({"VALUE"});
  }
  TextTable table(std::move(columns));
  for (const auto& t : topics) {
    std::vector<std::string> row = {one_line(api::text(t, "path")), human_count(api::number(t, "rate_per_s")),
                                    whole(t, "subscribers"), api::text(t, "sequence")};
    if (full) {
      row.insert(row.end(), {api::text(t, "shard"), api::text(t, "type"), human_bytes(api::number(t, "value_bytes")),
                             topic_properties(t)});
      if (values)
        row.push_back(one_line(api::text(t, "value")) + (api::flag(t, "value_truncated") ? " [cut]" : ""));
    }
    table.add_row(std::move(row));
  }
  return table.render();
}

std::string partial_answer_note(const nlohmann::json& silent_shards) {
  if (!silent_shards.is_array() || silent_shards.empty()) return "";
  std::string shards;
  for (const auto& shard : silent_shards) shards += (shards.empty() ? "" : ", ") + shard.dump();
  return (silent_shards.size() == 1 ? "shard " : "shards ") + shards +
         " did not answer in time: the list is partial\n";
}

}  // namespace brook::cli
