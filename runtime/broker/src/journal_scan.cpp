#include "journal_scan.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>
#include <vector>

namespace brook::runtime::journal {

namespace {

namespace fs = std::filesystem;

bool read_file(const std::string& path, std::vector<std::byte>& out, std::string& error) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    error = "cannot open " + path + ": " + std::strerror(errno);
    return false;
  }
  out.clear();
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  out.resize(ec ? 0 : size);
  std::size_t got = 0;
  while (got < out.size()) {
    const ssize_t n = ::read(fd, out.data() + got, out.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<std::size_t>(n);
  }
  out.resize(got);
  ::close(fd);
  return true;
}

bool intact_record_at(std::span<const std::byte> bytes, std::size_t q, std::uint64_t lsn_at_least,
                      std::uint64_t lsn_at_most) {
  std::uint32_t length;
  std::uint64_t lsn;
  std::memcpy(&length, bytes.data() + q, 4);
  std::memcpy(&lsn, bytes.data() + q + 8, 8);
  if (length > bytes.size() - q - record_header_bytes || lsn < lsn_at_least || lsn > lsn_at_most)
    return false;
  RecordView record;
  return read_record(bytes.subspan(q), record) == RecordCheck::ok;
}

// Whether the record at `at` that failed its check has intact records after it, which
// dropping it would drop too; then the damage is not a torn tail. Two signs, and only these:
// a torn write leaves nothing intact after the record it cut, but an update's value may hold
// any bytes, a journal record among them, so a record found inside the damaged one proves
// nothing unless the damaged one checks when it ends there.
//   - its length field was hit: the record with the next lsn starts at some q, and the
//     damaged record checks (its CRC-32C covers everything but the length) when it ends at q;
//   - its length fits the file and the record with the next lsn starts where it ends (a
//     byte of its own was hit).
bool intact_records_follow(std::span<const std::byte> bytes, std::size_t at, std::uint64_t expected) {
  if (at + record_header_bytes > bytes.size()) return false;
  std::uint32_t stored_crc;
  std::memcpy(&stored_crc, bytes.data() + at + 4, 4);
  for (std::size_t q = at + record_header_bytes; q + record_header_bytes <= bytes.size(); ++q)
    if (intact_record_at(bytes, q, expected + 1, expected + 1) &&
        crc32c(bytes.subspan(at + 8, q - at - 8)) == stored_crc)
      return true;
  std::uint32_t length;
  std::memcpy(&length, bytes.data() + at, 4);
  if (length > max_payload_bytes || length > bytes.size() - at - record_header_bytes) return false;
  const std::size_t next = at + record_header_bytes + length;
  return next + record_header_bytes <= bytes.size() && intact_record_at(bytes, next, expected + 1, expected + 1);
}

std::string where(const std::string& path, std::size_t offset, std::uint64_t lsn) {
  return path + " at offset " + std::to_string(offset) + " (lsn " + std::to_string(lsn) + ")";
}

}  // namespace

ScanResult scan_shard_journal(const std::string& shard_dir, unsigned shard,
                              const std::function<void(const RecordView&, const SegmentMark& where)>& on_record) {
  ScanResult result;
  std::error_code ec;
  if (!fs::exists(shard_dir, ec)) return result;
  std::vector<std::pair<std::uint64_t, std::string>> segments;
  for (const auto& entry : fs::directory_iterator(shard_dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (auto lsn = parse_segment_name(name)) segments.emplace_back(*lsn, entry.path().string());
  }
  if (ec) {
    result.error = "cannot list " + shard_dir + ": " + ec.message();
    return result;
  }
  std::sort(segments.begin(), segments.end());

  std::vector<std::byte> bytes;
  std::uint64_t expected = 0;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& [named_lsn, path] = segments[i];
    const bool last = i + 1 == segments.size();
    if (!read_file(path, bytes, result.error)) return result;
    if (bytes.size() < segment_header_bytes && last) {
      // Created, and the crash came before its header was on disk: it holds no record.
      fs::remove(path, ec);
      if (ec) {
        result.error = "cannot remove " + path + ": " + ec.message();
        return result;
      }
      result.repaired = "removed " + path + " (" + std::to_string(bytes.size()) +
                        " bytes, shorter than a segment header: created just before the crash)";
      break;
    }
    auto header = read_segment_header(bytes);
    if (!header || header->first_lsn != named_lsn || header->shard != shard) {
      result.error = path + ": the segment header does not check (or names another shard, lsn or format version)";
      return result;
    }
    if (i == 0) {
      expected = header->first_lsn;
    } else if (header->first_lsn != expected) {
      result.error = path + " starts at lsn " + std::to_string(header->first_lsn) +
                     " where lsn " + std::to_string(expected) + " was due: records are " +
                     (header->first_lsn > expected ? "missing" : "doubled");
      return result;
    }
    std::span<const std::byte> all(bytes);
    std::size_t at = segment_header_bytes;
    ScannedSegment scanned{.first_lsn = header->first_lsn, .path = path, .bytes = 0, .marks = {}};
    while (at < all.size()) {
      RecordView record;
      const RecordCheck check = read_record(all.subspan(at), record);
      if (check == RecordCheck::ok && record.lsn == expected) {
        on_record(record, SegmentMark{header->first_lsn, at});
        if (scanned.marks.empty() || at >= scanned.marks.back().offset + SegmentIndex::mark_every_bytes)
          scanned.marks.push_back({record.lsn, at});
        ++result.records;
        result.last_lsn = expected++;
        at += record.bytes;
        continue;
      }
      const char* what = check == RecordCheck::incomplete ? "incomplete" : "damaged";
      if (!last) {
        result.error = "the record in " + where(path, at, expected) + " is " + what +
                       ", in a segment that is not the last (it was synced before the next one began)";
        return result;
      }
      if (intact_records_follow(all, at, expected)) {
        result.error = "the record in " + where(path, at, expected) + " is " + what +
                       ", and intact records follow it: refusing to drop them. Move the data "
                       "directory aside, or truncate the file at that offset to accept losing "
                       "lsn " + std::to_string(expected) + " onwards";
        return result;
      }
      if (::truncate(path.c_str(), static_cast<off_t>(at)) != 0) {
        result.error = "cannot truncate " + path + ": " + std::strerror(errno);
        return result;
      }
      result.repaired = "dropped " + std::to_string(all.size() - at) + " bytes from " +
                        where(path, at, expected) + " on: an " + what +
                        " record at the tail, a write the crash cut off";
      bytes.resize(at);
      break;
    }
    result.last_segment = path;
    result.last_segment_bytes = bytes.size();
    scanned.bytes = bytes.size();
    result.segments.push_back(std::move(scanned));
  }
  return result;
}

ScanResult scan_shard_journal(const std::string& shard_dir, unsigned shard,
                              const std::function<void(const RecordView&)>& on_record) {
  return scan_shard_journal(shard_dir, shard, [&](const RecordView& r, const SegmentMark&) { on_record(r); });
}

}  // namespace brook::runtime::journal
