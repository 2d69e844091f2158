#include "brook/codec/frame.hpp"

#include <array>

namespace brook::codec {

FrameSplit split_frame(std::span<const std::byte> bytes, std::uint32_t max_frame_bytes) noexcept {
  if (bytes.size() < frame_header_bytes) return {SplitStatus::need_more, 0};
  auto size = load_le<std::uint32_t>(bytes.data());
  auto kind = load_le<std::uint16_t>(bytes.data() + 4);
  if (size < frame_header_bytes || kind < 1 || kind > max_frame_kind) return {SplitStatus::malformed, 0};
  if (size > max_frame_bytes) return {SplitStatus::too_large, size};
  if (bytes.size() < size) return {SplitStatus::need_more, size};
  return {SplitStatus::frame, size};
}

void write_publish(std::byte* out, std::uint32_t request_id, std::string_view path,
                   std::optional<TopicType> type, std::span<const std::byte> value) noexcept {
  auto size = publish_frame_bytes(path.size(), value.size());
  write_frame_header(out, static_cast<std::uint32_t>(size), FrameKind::publish);
  store_le(out + 8, request_id);
  store_le(out + 12, static_cast<std::uint16_t>(path.size()));
  out[14] = type ? static_cast<std::byte>(*type) : std::byte{topic_type_unspecified};
  out[15] = std::byte{0};
  std::memcpy(out + publish_head_bytes, path.data(), path.size());
  if (!value.empty()) std::memcpy(out + publish_head_bytes + path.size(), value.data(), value.size());
}

TrustedPublish read_trusted_publish(const std::byte* frame, std::uint32_t frame_bytes) noexcept {
  auto path_bytes = load_le<std::uint16_t>(frame + 12);
  auto type = static_cast<std::uint8_t>(frame[14]);
  auto value_offset = static_cast<std::uint32_t>(publish_head_bytes + path_bytes);
  return {{reinterpret_cast<const char*>(frame + publish_head_bytes), path_bytes},
          type < topic_type_count ? std::optional<TopicType>(static_cast<TopicType>(type))
                                  : std::nullopt,
          value_offset, frame_bytes - value_offset};
}

}  // namespace brook::codec
