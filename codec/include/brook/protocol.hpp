#pragma once
// What Brook's wire protocol shows an application: the topic types and properties, how an
// update travelled, the error codes a broker or the client reports, and the protocol's
// version. Part of the public API (installed with libbrook-dev); the frames themselves are
// codec/'s business and never appear in a public header.
#include <cstdint>
#include <optional>
#include <string_view>

#include "brook/export.hpp"

namespace brook {

// The wire protocol's version, sent in every Connect. A broker refuses a client that speaks
// another one (ErrorCode::protocol_version, naming both). Bumped on incompatible changes
// only: a new optional field in a control frame keeps the version.
inline constexpr std::uint16_t wire_version = 2;  // 2: the broker sends FlowControl

enum class TopicType : std::uint8_t { json = 0, string = 1, binary = 2, int64 = 3, float64 = 4 };
inline constexpr std::uint8_t topic_type_count = 5;

// "json", "string", "binary", "int64", "double".
BROOK_API std::string_view to_string(TopicType type);
// Accepts json, string, binary, int64, double.
BROOK_API std::optional<TopicType> parse_topic_type(std::string_view text);

// What a topic is, fixed when it is created (explicitly, or by its first publish with these
// defaults).
struct TopicProperties {
  TopicType type = TopicType::string;
  bool conflate = false;  // a slow subscriber's unsent update is replaced by the newer one
  bool deltas = true;     // send a delta against the subscriber's value when it is smaller
  bool retain = true;     // false: an event topic, no current value kept or sent on subscribe
  // History: the last updates a subscriber may ask for (SubscribeOptions), kept by the
  // broker and, with a data dir, in its journal. -1 / 0: the broker's history.* defaults.
  std::int32_t history = -1;           // how many updates; 0 keeps none
  std::uint64_t history_bytes = 0;     // at most this many bytes of values
  std::uint32_t history_age_ms = 0;    // none older than this
  // false: a transient topic, never journalled; it does not survive a broker restart, and
  // an acknowledged publish to it does not wait for the disk.
  bool durable = true;
};

// How an update's value travelled: whole, or as a delta against the subscriber's value at
// topic_seq - 1 (the client applies it and hands on the whole value either way).
enum class UpdateEncoding : std::uint8_t { full = 0, delta = 1 };

// Why a call failed or a session ended. Values travel on the wire (brook.wire.ErrorCode in
// codec/schema/brook.fbs mirrors them): append, never renumber.
enum class ErrorCode : std::uint16_t {
  none = 0,
  malformed_frame = 1,
  frame_too_large = 2,
  unknown_frame = 3,
  invalid_selector = 4,
  invalid_path = 5,
  type_mismatch = 6,
  invalid_value = 7,
  not_connected = 8,
  protocol_version = 9,
  queue_full = 10,
  internal = 11,
  authentication_failed = 12,
  session_not_found = 13,
  session_closed = 14,
  delta_rejected = 15,  // client side: a delta did not apply; the full value was asked for
  no_handler = 16,
  handler_gone = 17,
  handler_failed = 18,
  request_timeout = 19,
  too_many_requests = 20,
  memory_limit = 21,  // the broker's memory budget is spent: the publish was refused
  back_pressured = 22,  // client side (try_publish): flow control holds the publisher back,
                        // or its outbox is full; nothing was sent
  storage_failed = 23,  // the broker's journal cannot write (a full disk, an I/O error): the
                        // publish was refused, or not made durable
  permission_denied = 24,  // the principal's permissions (auth.permissions_file) do not allow
                           // the operation on that path
};
// A short phrase: "authentication failed", "no handler", ...
BROOK_API std::string_view to_string(ErrorCode code);

}  // namespace brook
