#include "brook/protocol.hpp"

#include <array>
#include <cstddef>

namespace brook {

namespace {
constexpr std::array<std::string_view, topic_type_count> topic_type_names{"json", "string", "binary",
                                                                          "int64", "double"};
}

std::string_view to_string(TopicType type) {
  auto index = static_cast<std::size_t>(type);
  return index < topic_type_names.size() ? topic_type_names[index] : "unknown";
}

std::optional<TopicType> parse_topic_type(std::string_view text) {
  for (std::size_t i = 0; i < topic_type_names.size(); ++i)
    if (topic_type_names[i] == text) return static_cast<TopicType>(i);
  return std::nullopt;
}

std::string_view to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::none: return "none";
    case ErrorCode::malformed_frame: return "malformed frame";
    case ErrorCode::frame_too_large: return "frame too large";
    case ErrorCode::unknown_frame: return "unknown frame";
    case ErrorCode::invalid_selector: return "invalid selector";
    case ErrorCode::invalid_path: return "invalid topic path";
    case ErrorCode::type_mismatch: return "topic type mismatch";
    case ErrorCode::invalid_value: return "invalid value";
    case ErrorCode::not_connected: return "not connected";
    case ErrorCode::protocol_version: return "unsupported protocol version";
    case ErrorCode::queue_full: return "outbound queue full";
    case ErrorCode::internal: return "internal error";
    case ErrorCode::authentication_failed: return "authentication failed";
    case ErrorCode::session_not_found: return "session not found";
    case ErrorCode::session_closed: return "session closed";
    case ErrorCode::delta_rejected: return "delta rejected";
    case ErrorCode::no_handler: return "no handler";
    case ErrorCode::handler_gone: return "handler gone";
    case ErrorCode::handler_failed: return "handler failed";
    case ErrorCode::request_timeout: return "timeout";
    case ErrorCode::too_many_requests: return "too many requests in flight";
    case ErrorCode::memory_limit: return "broker memory limit reached";
    case ErrorCode::storage_failed: return "broker storage failed";
    case ErrorCode::permission_denied: return "permission denied";
    case ErrorCode::back_pressured: return "back-pressured";
  }
  return "unknown error";
}

}  // namespace brook
