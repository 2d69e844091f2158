#pragma once
// One refresh of `brook stat` as text: the broker's rates, totals and shards (/api/broker),
// then its slowest sessions (/api/sessions?sort=queue) and busiest topics (/api/topics?sort=rate).
// Pure formatting: the command fetches, this only lays out.
#include <nlohmann/json.hpp>
#include <string>

namespace brook::cli {

struct StatSnapshot {
  nlohmann::json broker;    // /api/broker
  nlohmann::json sessions;  // /api/sessions's "sessions"
  nlohmann::json topics;    // /api/topics's "topics"
  nlohmann::json silent_shards = nlohmann::json::array();  // shards either list is missing
};

// The block printed (or drawn) for one refresh; `source` names the broker ("http://H:P") and
// `clock` the local time of the sample ("16:30:02").
std::string stat_view(const StatSnapshot& snapshot, const std::string& source, const std::string& clock);

// The one-line JSON of `brook stat --json`: {"broker":...,"sessions":[...],"topics":[...]},
// with "silent_shards":[...] added when a shard did not answer for the lists.
std::string stat_json_line(const StatSnapshot& snapshot);

}  // namespace brook::cli
