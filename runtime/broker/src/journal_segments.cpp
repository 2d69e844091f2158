#include "journal_segments.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace brook::runtime::journal {

SegmentIndex::~SegmentIndex() {
  for (Segment& s : segments_)
    if (s.read_fd >= 0) ::close(s.read_fd);
}

void SegmentIndex::add_scanned(ScannedSegment scanned) {
  segments_.push_back({scanned.first_lsn, std::move(scanned.path), scanned.bytes, std::move(scanned.marks), -1});
}

void SegmentIndex::begin(std::uint64_t first_lsn, std::string path, std::uint64_t records_at) {
  if (!segments_.empty() && segments_.back().first_lsn == first_lsn) {
    segments_.back().end = records_at;  // the scan's last segment, removed and begun again
    segments_.back().marks.clear();
    return;
  }
  segments_.push_back({first_lsn, std::move(path), records_at, {}, -1});
}

void SegmentIndex::mark(std::uint64_t lsn, std::uint64_t offset) {
  if (segments_.empty()) return;
  auto& marks = segments_.back().marks;
  if (marks.empty() || offset >= marks.back().offset + mark_every_bytes) marks.push_back({lsn, offset});
}

void SegmentIndex::written_to(std::uint64_t end) noexcept {
  if (!segments_.empty()) segments_.back().end = std::max(segments_.back().end, end);
}

std::optional<SegmentPosition> SegmentIndex::position_in(std::size_t i, std::uint64_t offset) {
  Segment& s = segments_[i];
  if (s.read_fd < 0) {
    s.read_fd = ::open(s.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (s.read_fd < 0) return std::nullopt;
  }
  return SegmentPosition{s.read_fd, s.first_lsn, offset, s.end > offset ? s.end - offset : 0};
}

std::optional<SegmentPosition> SegmentIndex::locate(std::uint64_t lsn) {
  if (segments_.empty()) return std::nullopt;
  auto after = std::upper_bound(segments_.begin(), segments_.end(), lsn,
                                [](std::uint64_t l, const Segment& s) { return l < s.first_lsn; });
  const std::size_t i = after == segments_.begin() ? 0 : static_cast<std::size_t>(after - segments_.begin()) - 1;
  const auto& marks = segments_[i].marks;
  auto mark = std::upper_bound(marks.begin(), marks.end(), lsn,
                               [](std::uint64_t l, const SegmentMark& m) { return l < m.lsn; });
  if (mark == marks.begin()) return position_in(i, marks.empty() ? segments_[i].end : marks.front().offset);
  return position_in(i, std::prev(mark)->offset);
}

std::optional<SegmentPosition> SegmentIndex::advance(const SegmentPosition& position, std::uint64_t bytes) {
  auto it = std::find_if(segments_.begin(), segments_.end(),
                         [&](const Segment& s) { return s.first_lsn == position.first_lsn; });
  if (it == segments_.end()) return std::nullopt;
  const std::size_t i = static_cast<std::size_t>(it - segments_.begin());
  const std::uint64_t offset = position.offset + bytes;
  if (offset < it->end || i + 1 == segments_.size()) return position_in(i, offset);
  const Segment& next = segments_[i + 1];
  return position_in(i + 1, next.marks.empty() ? next.end : next.marks.front().offset);
}

int SegmentIndex::remove_before(std::uint64_t lsn) {
  int removed = 0;
  while (segments_.size() > 1 && segments_[1].first_lsn <= lsn) {
    Segment& s = segments_.front();
    if (::unlink(s.path.c_str()) != 0 && errno != ENOENT) return -errno;
    if (s.read_fd >= 0) ::close(s.read_fd);
    segments_.erase(segments_.begin());
    ++removed;
  }
  return removed;
}

std::uint64_t SegmentIndex::bytes() const noexcept {
  std::uint64_t total = 0;
  for (const Segment& s : segments_) total += s.end;
  return total;
}

}  // namespace brook::runtime::journal
