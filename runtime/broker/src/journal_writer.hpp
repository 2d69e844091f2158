#pragma once
// A shard's side of the journal: records appended during a turn go to disk together, through
// the shard's own io_uring, as one write; with sync "always" an fdatasync follows, which
// covers every record written before it: group commit, one device flush for many records.
//
//   append() -> filling_ --submit()--> one write in flight --> written_lsn()
//                                      one fdatasync in flight (always) --> durable_lsn()
//
// One write and one flush are in flight at a time, side by side: records appended meanwhile
// wait in `filling_` and go as the next write, while the flush of the previous ones runs, so
// a slow disk batches more per flush instead of queueing flushes. A segment
// that passes segment_bytes is synced and closed, and the next one begins (with its
// directory entry synced), so only the last segment can ever be torn by a crash
// (journal_scan.hpp). The owner then writes every topic's state into the new segment, and
// once that is durable the older segments go, except those still holding history that a
// topic keeps only on disk (Shard::remove_unretained_segments). segments() knows where
// each record is, for reading history back. Everything runs on the shard's thread.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "brook/runtime/broker_options.hpp"
#include "brook/transport/reactor.hpp"
#include "journal_format.hpp"
#include "journal_scan.hpp"
#include "journal_segments.hpp"

namespace brook::runtime::journal {

// always: a record is durable once fdatasync has returned after its write; interval:
// fdatasync every sync_interval_ms, durable once written (in the page cache); never: the
// kernel writes back when it likes, durable once written.
using SyncPolicy = StorageSync;

struct WriterOptions {
  std::string data_dir;
  unsigned shard = 0;
  SyncPolicy sync = SyncPolicy::always;
  std::uint32_t sync_interval_ms = 100;
  std::uint64_t segment_bytes = 64ull << 20;
};

class JournalWriter {
 public:
  // Continues the journal the scan found (or starts it at lsn 1). Null and `error` set when
  // the directory or segment cannot be opened.
  static std::unique_ptr<JournalWriter> open(const WriterOptions& options, const ScanResult& scan,
                                             std::string& error);
  ~JournalWriter();
  JournalWriter(const JournalWriter&) = delete;
  JournalWriter& operator=(const JournalWriter&) = delete;

  // Adds a record (payload: `head`, `body`, then `tail`) to this turn's write; returns its lsn.
  std::uint64_t append(RecordType type, std::span<const std::byte> head,
                       std::span<const std::byte> body = {}, std::span<const std::byte> tail = {});
  // End of a turn: hands what was appended to the kernel, unless a write is in flight (it
  // goes when that one completes).
  void submit(transport::Reactor& reactor, std::uint64_t now_ns);
  // The completion of an operation with this writer's token. Returns true when
  // durable_lsn() moved.
  bool on_completion(transport::Reactor& reactor, const transport::Completion& completion,
                     std::uint64_t now_ns);

  std::uint64_t last_lsn() const noexcept { return next_lsn_ - 1; }
  // Every record up to this lsn is as safe as the sync policy makes it.
  std::uint64_t durable_lsn() const noexcept { return durable_lsn_; }
  // Every record up to this lsn is written (in the kernel's page cache at least): it survives
  // a crash of the process, if not a power cut. At least durable_lsn().
  std::uint64_t written_lsn() const noexcept { return written_lsn_; }
  // Nothing waits to be written, and nothing is in flight.
  bool idle() const noexcept {
    return filling_.empty() && !write_in_flight_ && !sync_in_flight_ &&
           (options_.sync != SyncPolicy::always || durable_lsn_ == written_lsn_);
  }
  // True once after a new segment began: the owner then writes every topic's state into it
  // (between begin_snapshot() and end_snapshot()), and once those records are durable the
  // segments before it hold nothing a restart needs (remove_older_segments()).
  bool take_rolled() noexcept { return std::exchange(rolled_, false); }
  void begin_snapshot() noexcept { snapshot_start_ = filling_.size(); }
  void end_snapshot() noexcept { snapshot_bytes_ = filling_.size() - snapshot_start_; }
  std::uint64_t segment_first_lsn() const noexcept { return segment_first_lsn_; }
  SegmentIndex& segments() noexcept { return segments_; }
  // Why the journal stopped (a write or sync failed: a full disk, an I/O error); then no
  // record is made durable again, and the broker refuses what needs the journal.
  const std::string& failure() const noexcept { return failure_; }

  static constexpr std::uint64_t token = 0xffffffffffffull;  // the shard's connections never use it

 private:
  JournalWriter(const WriterOptions& options, std::uint64_t next_lsn);
  bool start_segment(std::uint64_t first_lsn, std::string& error);
  bool roll_segment(std::uint64_t first_lsn, std::string& error);
  void start_write(transport::Reactor& reactor);
  void start_sync_if_due(transport::Reactor& reactor, std::uint64_t now_ns);
  void fail(std::string why);

  WriterOptions options_;
  int fd_ = -1;
  std::string segment_path_;
  std::uint64_t segment_offset_ = 0;  // where the next write goes
  std::uint64_t next_lsn_;
  std::uint64_t durable_lsn_;
  std::uint64_t written_lsn_;
  std::vector<std::byte> filling_;    // records of the turns since the last write
  std::vector<SegmentMark> filling_marks_;  // offsets in filling_ until written
  std::size_t next_mark_at_ = 0;            // in filling_: where the next mark is due
  SegmentIndex segments_;
  std::uint64_t filling_first_lsn_ = 0;
  std::uint64_t filling_last_lsn_ = 0;
  std::vector<std::byte> writing_;    // the write in flight
  std::uint64_t writing_last_lsn_ = 0;
  std::size_t written_ = 0;           // of writing_, after a short write
  bool write_in_flight_ = false;
  bool sync_in_flight_ = false;
  std::uint64_t sync_target_lsn_ = 0; // always: what the flush in flight makes durable
  bool written_unsynced_ = false;     // interval: bytes are written that no sync covered
  std::uint64_t next_sync_ns_ = 0;
  std::uint64_t segment_first_lsn_ = 0;  // of the segment being written
  bool rolled_ = false;
  std::size_t snapshot_start_ = 0;
  // A segment rolls when what follows its snapshot reaches segment_bytes: one whose
  // snapshot alone were larger would otherwise roll again at once, for ever.
  std::size_t snapshot_bytes_ = 0;
  std::string failure_;
};

}  // namespace brook::runtime::journal
