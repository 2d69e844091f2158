#pragma once
// Brook's wire format: every frame starts with an 8-byte header (size, kind, flags).
//
//   control (kind 1): header + a verified FlatBuffers `Message` (schema/brook.fbs)
//   update  (kind 2): header + session_seq u64, topic_seq u64, alias u32, encoding u8, 3 pad
//                     + value bytes. The 32-byte head is per session; the value is one shared
//                     buffer, so an update is sent as two iovecs without copying the value.
//   publish (kind 3): header + request_id u32, path_len u16, type u8, pad u8 + path + value
//   shared update (kind 4, shared memory only): the update head (its size 48) + position u64,
//                     value_bytes u32, segment u16, 2 pad: the value lies in broadcast segment
//                     `segment` at `position`, written there once for every shm subscriber.
//
// All integers are little-endian. Decoding checks every length against the frame size.
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string_view>

#include "brook/protocol.hpp"

namespace brook::codec {

static_assert(std::endian::native == std::endian::little, "the wire format is little-endian");

inline constexpr std::size_t frame_header_bytes = 8;
inline constexpr std::size_t update_head_bytes = 32;
inline constexpr std::size_t publish_head_bytes = 16;
inline constexpr std::uint32_t default_max_frame_bytes = 8u << 20;
inline constexpr std::size_t max_path_bytes = 1024;

enum class FrameKind : std::uint16_t { control = 1, update = 2, publish = 3, shared_update = 4 };
inline constexpr std::uint16_t max_frame_kind = 4;
inline constexpr std::size_t shared_update_bytes = update_head_bytes + 16;

// The types an application sees (brook/protocol.hpp), by their codec names.
using brook::ErrorCode;
using brook::parse_topic_type;
using brook::to_string;
using brook::topic_type_count;
using brook::TopicProperties;
using brook::TopicType;
using brook::UpdateEncoding;
using brook::wire_version;
// In a publish frame: "whatever type the topic has" (string when the publish creates it).
inline constexpr std::uint8_t topic_type_unspecified = 0xff;

// Header flags. A broker frame with `sequenced` belongs to the session's outbound stream and
// takes the next session sequence number (the client counts them; an update also carries its
// number). `resync` on an update: the current value sent after a gap the broker could not fill.
inline constexpr std::uint16_t frame_flag_sequenced = 1;
inline constexpr std::uint16_t frame_flag_resync = 2;
inline constexpr std::size_t session_token_bytes = 16;

inline std::uint16_t frame_flags(const std::byte* frame) noexcept;

struct FrameHeader {
  std::uint32_t size;  // whole frame, header included
  FrameKind kind;
  std::uint16_t flags;
};

enum class SplitStatus : std::uint8_t { frame, need_more, too_large, malformed };

struct FrameSplit {
  SplitStatus status;
  std::uint32_t size;  // bytes of the complete frame when status == frame
};

// Finds the frame at the front of a byte stream without reading past `bytes`.
FrameSplit split_frame(std::span<const std::byte> bytes, std::uint32_t max_frame_bytes) noexcept;

template <class T>
inline T load_le(const std::byte* p) noexcept {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

template <class T>
inline void store_le(std::byte* p, T v) noexcept {
  std::memcpy(p, &v, sizeof v);
}

inline std::uint16_t frame_flags(const std::byte* frame) noexcept {
  return load_le<std::uint16_t>(frame + 6);
}
inline void set_frame_flags(std::byte* frame, std::uint16_t flags) noexcept {
  store_le(frame + 6, flags);
}

inline void write_frame_header(std::byte* out, std::uint32_t size, FrameKind kind,
                               std::uint16_t flags = 0) noexcept {
  store_le(out, size);
  store_le(out + 4, static_cast<std::uint16_t>(kind));
  store_le(out + 6, flags);
}

// The per-session part of an update frame. `value_bytes` is the length of the shared body.
inline void write_update_head(std::byte* out, std::size_t value_bytes, std::uint64_t session_seq,
                              std::uint64_t topic_seq, std::uint32_t alias,
                              UpdateEncoding encoding = UpdateEncoding::full,
                              std::uint16_t flags = frame_flag_sequenced) noexcept {
  write_frame_header(out, static_cast<std::uint32_t>(update_head_bytes + value_bytes),
                     FrameKind::update, flags);
  store_le(out + 8, session_seq);
  store_le(out + 16, topic_seq);
  store_le(out + 24, alias);
  out[28] = static_cast<std::byte>(encoding);
  out[29] = out[30] = out[31] = std::byte{0};
}

// Turns an update head (as write_update_head wrote it) into a shared update frame whose value
// is `value_bytes` at `position` of broadcast segment `segment`.
inline void write_shared_update(std::byte* out, const std::byte* update_head, std::uint64_t position,
                                std::uint32_t value_bytes, std::uint16_t segment) noexcept {
  std::memcpy(out, update_head, update_head_bytes);
  store_le(out, static_cast<std::uint32_t>(shared_update_bytes));
  store_le(out + 4, static_cast<std::uint16_t>(FrameKind::shared_update));
  store_le(out + 32, position);
  store_le(out + 40, value_bytes);
  store_le(out + 44, segment);
  out[46] = out[47] = std::byte{0};
}

inline std::size_t publish_frame_bytes(std::size_t path_bytes, std::size_t value_bytes) noexcept {
  return publish_head_bytes + path_bytes + value_bytes;
}

// Writes a whole publish frame into `out`, which must hold publish_frame_bytes(...) bytes.
void write_publish(std::byte* out, std::uint32_t request_id, std::string_view path,
                   std::optional<TopicType> type, std::span<const std::byte> value) noexcept;

// Fields of a publish frame that a broker has already validated (it keeps such frames as the
// topic's retained value and shares them with subscribers).
struct TrustedPublish {
  std::string_view path;
  std::optional<TopicType> type;
  std::uint32_t value_offset;
  std::uint32_t value_bytes;
};
TrustedPublish read_trusted_publish(const std::byte* frame, std::uint32_t frame_bytes) noexcept;
inline void set_publish_type(std::byte* frame, TopicType type) noexcept {
  frame[14] = static_cast<std::byte>(type);
}

}  // namespace brook::codec
