#pragma once
// JSON topics read as parsed JSON (nlohmann-json), besides their text:
//
//   client.subscribe("Distribution/Football//", [](const brook::Update& u) {
//     auto odds = brook::parse_json(u.value);      // the new value
//     auto before = brook::parse_json(u.old_value);  // null for a topic's first value
//     if (odds["Home_Odds"] != before["Home_Odds"]) ...
//   });
//
// The broker refuses values that are not JSON on json topics, so for those parsing succeeds.
#include <nlohmann/json.hpp>

#include <cstddef>
#include <span>

namespace brook {

// The parsed value; null for an empty one. Throws nlohmann::json::parse_error if `value` is
// not JSON (a value of another topic type).
inline nlohmann::json parse_json(std::span<const std::byte> value) {
  if (value.empty()) return nullptr;
  const auto* text = reinterpret_cast<const char*>(value.data());
  return nlohmann::json::parse(text, text + value.size());
}

}  // namespace brook
