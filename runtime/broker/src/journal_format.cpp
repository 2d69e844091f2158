#include "journal_format.hpp"

#include <isa-l/crc.h>

#include <algorithm>
#include <bit>
#include <charconv>
#include <cstdio>
#include <cstring>

namespace brook::runtime::journal {

namespace {

constexpr char segment_magic[8] = {'B', 'R', 'O', 'O', 'K', 'J', 'N', 'L'};
constexpr std::string_view segment_suffix = ".journal";
constexpr std::size_t segment_digits = 20;

template <class T>
void put(std::byte* out, T value) noexcept {
  static_assert(std::endian::native == std::endian::little, "the journal is little-endian");
  std::memcpy(out, &value, sizeof value);
}

template <class T>
T get(const std::byte* in) noexcept {
  T value;
  std::memcpy(&value, in, sizeof value);
  return value;
}

}  // namespace

std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc) noexcept {
  // ISA-L's crc32_iscsi neither inverts its input nor its result; CRC-32C does both.
  auto* data = const_cast<unsigned char*>(reinterpret_cast<const unsigned char*>(bytes.data()));
  std::uint32_t state = ~crc;
  std::size_t left = bytes.size();
  while (left > 0) {  // its length is an int
    const int piece = static_cast<int>(std::min<std::size_t>(left, 1u << 30));
    state = crc32_iscsi(data, piece, state);
    data += piece;
    left -= static_cast<std::size_t>(piece);
  }
  return ~state;
}

void write_segment_header(std::byte* out, const SegmentHeader& header) noexcept {
  std::memcpy(out, segment_magic, sizeof segment_magic);
  put<std::uint32_t>(out + 8, format_version);
  put<std::uint32_t>(out + 12, header.shard);
  put<std::uint64_t>(out + 16, header.first_lsn);
  put<std::uint32_t>(out + 24, crc32c({out, 24}));
  put<std::uint32_t>(out + 28, 0);
}

std::optional<SegmentHeader> read_segment_header(std::span<const std::byte> bytes) noexcept {
  if (bytes.size() < segment_header_bytes) return std::nullopt;
  if (std::memcmp(bytes.data(), segment_magic, sizeof segment_magic) != 0) return std::nullopt;
  if (get<std::uint32_t>(bytes.data() + 24) != crc32c(bytes.first(24))) return std::nullopt;
  const auto version = get<std::uint32_t>(bytes.data() + 8);
  if (version < oldest_format_version || version > format_version) return std::nullopt;
  return SegmentHeader{.shard = get<std::uint32_t>(bytes.data() + 12),
                       .first_lsn = get<std::uint64_t>(bytes.data() + 16)};
}

void append_record(std::vector<std::byte>& out, std::uint64_t lsn, RecordType type,
                   std::span<const std::byte> head, std::span<const std::byte> body,
                   std::span<const std::byte> tail) {
  const std::size_t at = out.size();
  const std::size_t payload = head.size() + body.size() + tail.size();
  out.resize(at + record_header_bytes + payload);
  std::byte* r = out.data() + at;
  put<std::uint32_t>(r, static_cast<std::uint32_t>(payload));
  put<std::uint64_t>(r + 8, lsn);
  put<std::uint16_t>(r + 16, static_cast<std::uint16_t>(type));
  put<std::uint16_t>(r + 18, 0);
  put<std::uint32_t>(r + 20, 0);
  if (!head.empty()) std::memcpy(r + record_header_bytes, head.data(), head.size());
  if (!body.empty()) std::memcpy(r + record_header_bytes + head.size(), body.data(), body.size());
  if (!tail.empty())
    std::memcpy(r + record_header_bytes + head.size() + body.size(), tail.data(), tail.size());
  put<std::uint32_t>(r + 4, crc32c({r + 8, record_header_bytes - 8 + payload}));
}

RecordCheck read_record_unchecked(std::span<const std::byte> bytes, RecordView& record) noexcept {
  if (bytes.size() < record_header_bytes) return RecordCheck::incomplete;
  const auto length = get<std::uint32_t>(bytes.data());
  if (length > max_payload_bytes) return RecordCheck::damaged;
  const std::size_t whole = record_header_bytes + length;
  if (bytes.size() < whole) return RecordCheck::incomplete;
  record.lsn = get<std::uint64_t>(bytes.data() + 8);
  record.type = static_cast<RecordType>(get<std::uint16_t>(bytes.data() + 16));
  record.payload = bytes.subspan(record_header_bytes, length);
  record.bytes = whole;
  return RecordCheck::ok;
}

bool record_checksum_matches(const RecordView& record) noexcept {
  const std::byte* start = record.payload.data() - record_header_bytes;
  return get<std::uint32_t>(start + 4) == crc32c({start + 8, record.bytes - 8});
}

RecordCheck read_record(std::span<const std::byte> bytes, RecordView& record) noexcept {
  const RecordCheck framed = read_record_unchecked(bytes, record);
  if (framed != RecordCheck::ok) return framed;
  return record_checksum_matches(record) ? RecordCheck::ok : RecordCheck::damaged;
}

std::string shard_directory(const std::string& data_dir, unsigned shard) {
  return data_dir + "/shard-" + std::to_string(shard);
}

std::string segment_name(std::uint64_t first_lsn) {
  char name[segment_digits + 1];
  std::snprintf(name, sizeof name, "%020llu", static_cast<unsigned long long>(first_lsn));
  return std::string(name) + std::string(segment_suffix);
}

std::optional<std::uint64_t> parse_segment_name(const std::string& name) {
  if (name.size() != segment_digits + segment_suffix.size() ||
      name.compare(segment_digits, segment_suffix.size(), segment_suffix) != 0)
    return std::nullopt;
  std::uint64_t lsn = 0;
  auto [end, error] = std::from_chars(name.data(), name.data() + segment_digits, lsn);
  if (error != std::errc{} || end != name.data() + segment_digits) return std::nullopt;
  return lsn;
}

}  // namespace brook::runtime::journal
