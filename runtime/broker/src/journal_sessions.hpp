#pragma once
// Durable sessions in the journal. A client-named session (`principal/N`) that did not opt out
// is durable when the broker has a data dir: its home shard writes a session record when it
// opens, whenever its subscriptions change, and when it ends, each record whole (the last one
// of a session says all there is). A segment roll writes every live durable session again.
// At start-up the last record of each session is handed to the session's home shard, which
// keeps it, detached, for its reconnect timeout: the client resumes it with its token.
//
//   session record payload: u64 time (realtime ns) | u64 through | u64 publisher key |
//                           i64 number |
//                           u32 reconnect timeout ms | u8 ended | u8 0 | u16 principal bytes |
//                           16 B token | principal |
//                           u32 subscriptions | per subscription: u32 request id |
//                           u32 history | u64 since + 1 | u16 selector bytes | selector
//
// `through`: the client frames the subscriptions reflect (a Subscribe or Unsubscribe up to
// it that the client sends again after a restart is already applied). `publisher key`: the
// name the session's publishes are journalled under (below); it changes when a client that
// does not know how the session's frames were counted takes the session over.
//
// What a session has published is recorded with the updates themselves: a topic record's
// frame is followed by publisher positions (journal_topics.hpp), so a restored broker knows
// which of a resumed session's frames it already applied.
#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace brook::runtime::journal {

struct SessionSubscriptionRecord {
  std::uint32_t request_id = 0;
  std::uint32_t history = 0;
  std::uint64_t since_plus_one = 0;
  std::string selector;
};

struct SessionRecord {
  std::string principal;
  std::int64_t number = 0;
  std::array<std::byte, 16> token{};
  std::uint32_t reconnect_timeout_ms = 0;
  std::uint64_t time_ns = 0;
  std::uint64_t through = 0;
  std::uint64_t publisher_key = 0;
  bool ended = false;
  std::vector<SessionSubscriptionRecord> subscriptions;

  std::string id() const { return principal + "/" + std::to_string(number); }
};

void encode_session_record(const SessionRecord& record, std::vector<std::byte>& out);
// Nothing for a payload that is not a whole session record.
std::optional<SessionRecord> decode_session_record(std::span<const std::byte> payload);

// The shard a client-named session lives on: its id's hash modulo the shard count.
unsigned session_home(std::string_view id, unsigned shard_count) noexcept;

}  // namespace brook::runtime::journal
