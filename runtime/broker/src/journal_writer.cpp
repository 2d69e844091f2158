#include "journal_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace brook::runtime::journal {

namespace {

bool sync_directory(const std::string& dir, std::string& error) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || ::fsync(fd) != 0) {
    error = "cannot sync " + dir + ": " + std::strerror(errno);
    if (fd >= 0) ::close(fd);
    return false;
  }
  ::close(fd);
  return true;
}

}  // namespace

JournalWriter::JournalWriter(const WriterOptions& options, std::uint64_t next_lsn)
    : options_(options), next_lsn_(next_lsn), durable_lsn_(next_lsn - 1), written_lsn_(next_lsn - 1) {}

JournalWriter::~JournalWriter() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<JournalWriter> JournalWriter::open(const WriterOptions& options, const ScanResult& scan,
                                                   std::string& error) {
  std::uint64_t next_lsn = scan.last_lsn + 1;
  if (scan.last_lsn == 0 && !scan.last_segment.empty()) {
    // Segments, but no record in any: the journal continues where the last one begins.
    const std::string name = std::filesystem::path(scan.last_segment).filename().string();
    next_lsn = parse_segment_name(name).value_or(1);
  }
  std::unique_ptr<JournalWriter> writer(new JournalWriter(options, next_lsn));
  const std::string dir = shard_directory(options.data_dir, options.shard);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    error = "cannot create " + dir + ": " + ec.message();
    return nullptr;
  }
  for (const ScannedSegment& segment : scan.segments) writer->segments_.add_scanned(segment);
  if (scan.last_segment.empty()) {
    if (!writer->start_segment(next_lsn, error)) return nullptr;
    return writer;
  }
  writer->segment_path_ = scan.last_segment;
  writer->fd_ = ::open(scan.last_segment.c_str(), O_WRONLY | O_CLOEXEC);
  if (writer->fd_ < 0) {
    error = "cannot open " + scan.last_segment + ": " + std::strerror(errno);
    return nullptr;
  }
  writer->segment_offset_ = scan.last_segment_bytes;
  writer->segment_first_lsn_ =
      parse_segment_name(std::filesystem::path(scan.last_segment).filename().string()).value_or(1);
  return writer;
}

// The header is written and synced, and so is the directory entry, before any record: a
// crash then leaves either no segment or one whose header checks.
bool JournalWriter::start_segment(std::uint64_t first_lsn, std::string& error) {
  const std::string dir = shard_directory(options_.data_dir, options_.shard);
  segment_path_ = dir + "/" + segment_name(first_lsn);
  fd_ = ::open(segment_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    error = "cannot create " + segment_path_ + ": " + std::strerror(errno);
    return false;
  }
  std::byte header[segment_header_bytes];
  write_segment_header(header, {.shard = options_.shard, .first_lsn = first_lsn});
  if (::pwrite(fd_, header, sizeof header, 0) != static_cast<ssize_t>(sizeof header) ||
      ::fdatasync(fd_) != 0) {
    error = "cannot write " + segment_path_ + ": " + std::strerror(errno);
    return false;
  }
  segment_offset_ = sizeof header;
  segment_first_lsn_ = first_lsn;
  segments_.begin(first_lsn, segment_path_, segment_offset_);
  return sync_directory(dir, error);
}

bool JournalWriter::roll_segment(std::uint64_t first_lsn, std::string& error) {
  // Synced before the next one exists: only the last segment can be torn.
  if (::fdatasync(fd_) != 0) {
    error = "cannot sync " + segment_path_ + ": " + std::strerror(errno);
    return false;
  }
  ::close(fd_);
  fd_ = -1;
  return start_segment(first_lsn, error);
}

std::uint64_t JournalWriter::append(RecordType type, std::span<const std::byte> head,
                                    std::span<const std::byte> body, std::span<const std::byte> tail) {
  const std::uint64_t lsn = next_lsn_++;
  if (filling_.empty()) filling_first_lsn_ = lsn;
  // A batch's first record (it may begin a segment), and each one due for a mark.
  if (filling_.size() >= next_mark_at_) {
    filling_marks_.push_back({lsn, filling_.size()});
    next_mark_at_ = filling_.size() + SegmentIndex::mark_every_bytes;
  } else if (filling_.empty()) {
    filling_marks_.push_back({lsn, 0});
  }
  append_record(filling_, lsn, type, head, body, tail);
  filling_last_lsn_ = lsn;
  return lsn;
}

void JournalWriter::submit(transport::Reactor& reactor, std::uint64_t now_ns) {
  if (!failure_.empty()) return;
  if (!write_in_flight_ && !filling_.empty()) start_write(reactor);
  start_sync_if_due(reactor, now_ns);
}

// always: a flush as soon as written records are not covered by one, one flush at a time,
// while the next records are being written (pipelined group commit: a record waits for at
// most the flush in progress and its own). interval: one every sync_interval_ms, which nothing
// waits for. never: none.
void JournalWriter::start_sync_if_due(transport::Reactor& reactor, std::uint64_t now_ns) {
  if (sync_in_flight_ || !failure_.empty()) return;
  if (options_.sync == SyncPolicy::always) {
    if (written_lsn_ <= durable_lsn_) return;
    sync_target_lsn_ = written_lsn_;
  } else if (options_.sync == SyncPolicy::interval) {
    if (!written_unsynced_ || now_ns < next_sync_ns_) return;
    written_unsynced_ = false;
    next_sync_ns_ = now_ns + std::uint64_t{options_.sync_interval_ms} * 1'000'000;
  } else {
    return;
  }
  sync_in_flight_ = true;
  reactor.sync_file(fd_, token);
}

void JournalWriter::start_write(transport::Reactor& reactor) {
  if (segment_offset_ > segment_header_bytes &&
      segment_offset_ + filling_.size() > options_.segment_bytes + snapshot_bytes_) {
    std::string error;
    if (!roll_segment(filling_first_lsn_, error)) {
      fail(error);
      return;
    }
    // The roll synced the old segment: everything written so far is on disk.
    durable_lsn_ = std::max(durable_lsn_, written_lsn_);
    rolled_ = true;
  }
  for (const SegmentMark& m : filling_marks_) segments_.mark(m.lsn, segment_offset_ + m.offset);
  filling_marks_.clear();
  writing_.swap(filling_);
  filling_.clear();
  const std::uint64_t next_write_at = segment_offset_ + writing_.size();
  const std::uint64_t due = segments_.next_mark_offset();
  next_mark_at_ = due > next_write_at ? due - next_write_at : 0;
  writing_last_lsn_ = filling_last_lsn_;
  written_ = 0;
  write_in_flight_ = true;
  reactor.write_file(fd_, writing_.data(), static_cast<unsigned>(writing_.size()), segment_offset_, token, false);
}

bool JournalWriter::on_completion(transport::Reactor& reactor, const transport::Completion& c,
                                  std::uint64_t now_ns) {
  if (c.op == transport::Op::file_write) {
    if (!write_in_flight_) return false;
    if (c.result < 0) {
      fail("journal write to " + segment_path_ + " failed: " + std::strerror(-c.result));
      return false;
    }
    written_ += static_cast<std::size_t>(c.result);
    segment_offset_ += static_cast<std::uint64_t>(c.result);
    if (written_ < writing_.size()) {
      if (c.result == 0) {
        fail("journal write to " + segment_path_ + " wrote nothing (is the disk full?)");
        return false;
      }
      reactor.write_file(fd_, writing_.data() + written_, static_cast<unsigned>(writing_.size() - written_),
                         segment_offset_, token, false);
      return false;
    }
    write_in_flight_ = false;
    written_lsn_ = writing_last_lsn_;
    segments_.written_to(segment_offset_);
    writing_.clear();
    bool moved = false;
    if (options_.sync != SyncPolicy::always) {  // durable once written
      durable_lsn_ = written_lsn_;
      written_unsynced_ = options_.sync == SyncPolicy::interval;
      moved = true;
    }
    submit(reactor, now_ns);
    return moved;
  }
  if (c.op != transport::Op::file_sync || !sync_in_flight_) return false;
  sync_in_flight_ = false;
  if (c.result < 0) {
    fail("journal sync of " + segment_path_ + " failed: " + std::strerror(-c.result));
    return false;
  }
  bool moved = false;
  if (options_.sync == SyncPolicy::always && sync_target_lsn_ > durable_lsn_) {
    durable_lsn_ = sync_target_lsn_;
    moved = true;
  }
  submit(reactor, now_ns);
  return moved;
}

void JournalWriter::fail(std::string why) {
  write_in_flight_ = false;
  sync_in_flight_ = false;
  if (failure_.empty()) failure_ = std::move(why);
}

}  // namespace brook::runtime::journal
