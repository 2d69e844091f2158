#pragma once
// Reading fields of brookd's JSON API leniently: a field that is missing, null or of another
// type reads as the fallback, so a view keeps working while the server adds or renames fields.
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace brook::cli::api {

inline const nlohmann::json* field(const nlohmann::json& object, std::string_view name) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(name);
  return it == object.end() ? nullptr : &*it;
}

inline double number(const nlohmann::json& object, std::string_view name, double fallback = 0) {
  auto* value = field(object, name);
  return value != nullptr && value->is_number() ? value->get<double>() : fallback;
}

inline std::string text(const nlohmann::json& object, std::string_view name, std::string fallback = "") {
  auto* value = field(object, name);
  if (value == nullptr || value->is_null()) return fallback;
  return value->is_string() ? value->get<std::string>() : value->dump();
}

inline bool flag(const nlohmann::json& object, std::string_view name) {
  auto* value = field(object, name);
  return value != nullptr && value->is_boolean() && value->get<bool>();
}

// The array `name` of `object` (an empty one when missing).
inline const nlohmann::json& list(const nlohmann::json& object, std::string_view name) {
  static const nlohmann::json empty = nlohmann::json::array();
  auto* value = field(object, name);
  return value != nullptr && value->is_array() ? *value : empty;
}

}  // namespace brook::cli::api
