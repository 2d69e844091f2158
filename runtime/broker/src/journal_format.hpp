#pragma once
// The journal's bytes on disk (DESIGN.md point 11): each shard appends to its own segment
// files, DIR/shard-N/<first lsn, 20 digits>.journal, and nothing else writes them.
//
//   segment: header (32 B) | record | record | ...
//   header:  "BROOKJNL" | u32 version | u32 shard | u64 first lsn | u32 crc32c of the 20
//            bytes before it | u32 zero
//   record:  u32 payload bytes | u32 crc32c of everything after it | u64 lsn | u16 type |
//            u16 zero | u32 zero | payload
//
// Little-endian throughout. The lsn is the shard's record number: it starts at 1 and every
// record is the previous one's plus one, across segments, so a scan notices a record that
// is missing or doubled as surely as one that is damaged. The checksum is CRC-32C (ISA-L's
// crc32_iscsi, which uses the CPU's crc32 instruction). Thread-free: plain functions.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace brook::runtime::journal {

// 2: topic records carry history and epoch; 3: publisher positions after a topic record's
// frame, and session records. A broker reads both.
constexpr std::uint32_t format_version = 3;
constexpr std::uint32_t oldest_format_version = 2;
constexpr std::size_t segment_header_bytes = 32;
constexpr std::size_t record_header_bytes = 24;
// A record larger than this is damage, not data: the broker's largest frame is far smaller.
constexpr std::uint32_t max_payload_bytes = 64u << 20;

enum class RecordType : std::uint16_t {
  topic = 1,    // a topic created or its properties changed
  update = 2,   // a topic's new value and sequence
  removed = 3,  // a topic removed
  session = 4,  // a durable session's token, subscriptions and position (journal_sessions.hpp)
};

struct SegmentHeader {
  std::uint32_t shard = 0;
  std::uint64_t first_lsn = 0;
};

struct RecordView {
  std::uint64_t lsn = 0;
  RecordType type{};
  std::span<const std::byte> payload;
  std::size_t bytes = 0;  // the record's whole size on disk
};

// CRC-32C (Castagnoli), as iSCSI and ext4 use it: crc32c("123456789") == 0xE3069283.
std::uint32_t crc32c(std::span<const std::byte> bytes, std::uint32_t crc = 0) noexcept;

void write_segment_header(std::byte* out, const SegmentHeader& header) noexcept;
std::optional<SegmentHeader> read_segment_header(std::span<const std::byte> bytes) noexcept;

// Appends one whole record to `out`; its payload is `head`, `body`, then `tail`.
void append_record(std::vector<std::byte>& out, std::uint64_t lsn, RecordType type,
                   std::span<const std::byte> head, std::span<const std::byte> body = {},
                   std::span<const std::byte> tail = {});

enum class RecordCheck { ok, incomplete, damaged };
// Reads the record at the start of `bytes`: ok (and `record` filled), incomplete (the bytes
// end before the record does), or damaged (a length no record has, or a wrong checksum).
RecordCheck read_record(std::span<const std::byte> bytes, RecordView& record) noexcept;
// The same without the checksum, for a reader that skips most records (a replay looking for
// one topic's): it checks those it uses with record_checksum_matches().
RecordCheck read_record_unchecked(std::span<const std::byte> bytes, RecordView& record) noexcept;
bool record_checksum_matches(const RecordView& record) noexcept;

// DIR/shard-N and the name of the segment whose first record is `first_lsn`.
std::string shard_directory(const std::string& data_dir, unsigned shard);
std::string segment_name(std::uint64_t first_lsn);
// The first lsn a segment's file name says, or nothing for a file that is not a segment.
std::optional<std::uint64_t> parse_segment_name(const std::string& name);

}  // namespace brook::runtime::journal
