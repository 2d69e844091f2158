#pragma once
// Where a shard's journal records are: its segments in lsn order, each with a sparse index
// of (lsn, file offset) marks, one at the segment's first record, at the first record of
// every write and every 64 KiB between, so that history older than a topic's memory is
// read back from the nearest mark (shard_journal_replay.cpp) instead of from the start of a
// segment. The marks are built as records are written, and from the scan at start-up.
//
// Segment files are opened for reading when first read and closed when removed: a file
// removed while a read of it is in flight would have its descriptor reused, so the owner
// removes nothing while it reads (Shard::remove_unretained_segments). Owned by one shard's thread.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace brook::runtime::journal {

struct SegmentMark {
  std::uint64_t lsn = 0;
  std::uint64_t offset = 0;
};

struct ScannedSegment {
  std::uint64_t first_lsn = 0;
  std::string path;
  std::uint64_t bytes = 0;          // its size once scanned (and repaired)
  std::vector<SegmentMark> marks;
};

// Where to read: `bytes_left` from `offset` in the segment starting at `first_lsn`.
struct SegmentPosition {
  int fd = -1;
  std::uint64_t first_lsn = 0;
  std::uint64_t offset = 0;
  std::uint64_t bytes_left = 0;
};

class SegmentIndex {
 public:
  static constexpr std::uint64_t mark_every_bytes = 64u << 10;

  SegmentIndex() = default;
  ~SegmentIndex();
  SegmentIndex(const SegmentIndex&) = delete;
  SegmentIndex& operator=(const SegmentIndex&) = delete;

  void add_scanned(ScannedSegment segment);
  // A new segment, being written: its records begin at `records_at`.
  void begin(std::uint64_t first_lsn, std::string path, std::uint64_t records_at);
  // The record `lsn` is at `offset` of the last segment; kept when it is the segment's first
  // or mark_every_bytes past the last mark.
  void mark(std::uint64_t lsn, std::uint64_t offset);
  // The last segment's records are on disk up to `end` (a completed write).
  void written_to(std::uint64_t end) noexcept;
  // Where in the last segment the next mark is due (a record there or after it).
  std::uint64_t next_mark_offset() const noexcept {
    return segments_.empty() || segments_.back().marks.empty() ? 0
                                                                : segments_.back().marks.back().offset + mark_every_bytes;
  }

  // The segment that holds `lsn` (the oldest when `lsn` is before it), from the last mark at
  // or before it. Null when no segment is left or the file cannot be opened.
  std::optional<SegmentPosition> locate(std::uint64_t lsn);
  // `position` moved on by `bytes`, into the next segment when it reached its end (bytes_left
  // 0: the end of what is written). Null when the segment it was in is gone.
  std::optional<SegmentPosition> advance(const SegmentPosition& position, std::uint64_t bytes);

  // Deletes the segments whose records all come before `lsn`, oldest first (a crash between
  // two leaves the rest contiguous), never the last one; returns how many, or -errno.
  int remove_before(std::uint64_t lsn);
  std::size_t size() const noexcept { return segments_.size(); }
  std::uint64_t bytes() const noexcept;

 private:
  struct Segment {
    std::uint64_t first_lsn = 0;
    std::string path;
    std::uint64_t end = 0;  // bytes readable: its size, or what is written of the last one
    std::vector<SegmentMark> marks;
    int read_fd = -1;
  };
  std::optional<SegmentPosition> position_in(std::size_t i, std::uint64_t offset);
  std::vector<Segment> segments_;  // oldest first; the last is being written
};

}  // namespace brook::runtime::journal
