#pragma once
// brookd's sessions and topics (the arrays of /api/sessions and /api/topics) as text tables:
// what `brook sessions` and `brook topics` print, and, compact, the lists in `brook stat`.
#include <nlohmann/json.hpp>
#include <string>

namespace brook::cli {

enum class TableWidth { full, compact };

// One row per session: queued and recovery bytes, age, idle time, where it is.
std::string sessions_table(const nlohmann::json& sessions, TableWidth width);
// One row per recently closed session, with the reason.
std::string closed_sessions_table(const nlohmann::json& closed);
// One row per topic: rate, subscribers, sequence, size, properties; the value when the
// entries carry one (/api/topics?values=1).
std::string topics_table(const nlohmann::json& topics, TableWidth width);
// "shards 1, 3 did not answer in time: the list is partial\n" for an answer's
// "silent_shards" (an array of shard numbers), or "" when every shard answered.
std::string partial_answer_note(const nlohmann::json& silent_shards);

}  // namespace brook::cli
