#pragma once
// Reading a shard's journal back at start-up, and repairing what a crash can leave behind.
//
// Segments are read in lsn order; every record is checked (length, CRC-32C, and its lsn
// following the one before) and handed to the caller. What the scan decides:
//   - the last segment ends in an incomplete or damaged record, and no intact record
//     follows it: a write the crash cut off. The file is truncated after the last good
//     record and the report says what was dropped. An acknowledged record is never in that
//     tail: under sync "always" it was on disk before its acknowledgement.
//   - a damaged record with intact records after it (a flipped byte in the middle of a
//     segment), damage in a segment other than the last (a segment is synced before the next
//     one is started, so a crash cannot tear it), a missing or doubled lsn, a header that
//     does not check: the scan refuses, with the file, offset and lsn, and drops nothing.
//   - a last segment too short to hold its header (created, then the crash): removed.
// Runs on the thread that starts the broker, before the shards do.
#include <cstdint>
#include <functional>
#include <string>

#include "journal_format.hpp"
#include "journal_segments.hpp"

namespace brook::runtime::journal {

struct ScanResult {
  std::uint64_t records = 0;
  std::uint64_t last_lsn = 0;        // 0: the journal is empty
  std::string last_segment;          // the path the writer continues, "" if none
  std::uint64_t last_segment_bytes = 0;
  std::vector<ScannedSegment> segments;  // what remains, oldest first, with their marks
  std::string repaired;              // what was dropped, and where; "" if nothing
  std::string error;                 // damage the scan will not repair; "" if none
};

// `shard_dir` may not exist yet (an empty journal). `on_record` sees each good record once,
// in lsn order, with its segment's first lsn and its offset there; its payload is valid
// during the call only.
ScanResult scan_shard_journal(const std::string& shard_dir, unsigned shard,
                              const std::function<void(const RecordView&, const SegmentMark& where)>& on_record);
ScanResult scan_shard_journal(const std::string& shard_dir, unsigned shard,
                              const std::function<void(const RecordView&)>& on_record);

}  // namespace brook::runtime::journal
