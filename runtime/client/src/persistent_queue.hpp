#pragma once
// The client's sent frames kept in a file (`queue.path`), so that a publisher killed with
// kill -9 while the broker is away sends, once restarted, every frame the broker never
// confirmed, in order, each with the id it had. A PersistentQueue owns its file and holds an
// exclusive flock on it from open() to destruction; it is used only from the client thread.
// It keeps an index of the pending records in memory and reads frames back from the file.
//
// File format, integers little endian:
//
//   file    := header record*
//   header  := magic "BROOKQ1\0" (8 bytes)  version:u32 (= 1)  reserved:u32 (= 0)
//   record  := length:u32  checksum:u32  kind:u8  id:u64  payload[length]
//              checksum = lower 32 bits of XXH3_64bits over kind, id and payload
//   kind 1  frame    payload = one session frame. Ids are consecutive: each frame's id is one
//                    more than the highest id before it in the file (0 at the start).
//   kind 2  confirm  no payload; every frame up to `id` reached the broker. Confirmed ids only
//                    grow and never pass the highest frame id before them.
//   kind 3  base     no payload; only as the first record: every id up to `id` was used and
//                    confirmed, so the next frame is id + 1. A rewritten file starts with one.
//   kind 4  session  id 0; payload = the session's 16-byte token, then its id (principal/N,
//                    1 to 512 bytes). The last one names the session the frames belong to,
//                    so that a restarted process resumes it with its token. A rewritten file
//                    keeps the last one, right after its base.
//
// Appending writes each record with one pwrite at the end of the file. Reading stops at the
// first record that is cut short, claims more than max_frame_bytes, fails its checksum or
// breaks the rules above: the file is truncated there and a warning says what was dropped.
// A process killed mid-append leaves at most a torn last record (a multi-page write can be cut
// between pages); a damaged record elsewhere takes every record after it with it.
//
// The file never shrinks in place. When nothing is pending and it has grown past
// drained_truncate_bytes, or its dead records exceed both compact_bytes and the live ones,
// the live records are copied into `path.compact`, which then replaces `path` by rename.
// A crash at any point leaves either the old file or the new one, never a mix.
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace brook::client_detail {

enum class FsyncPolicy : std::uint8_t {
  never,   // no fdatasync ever: survives kill -9 of the process (the page cache has every
           // write), not a power cut
  batch,   // fdatasync at most every batch_interval, on sync() and on destruction
  always,  // fdatasync after every append and confirm
};

struct PersistentQueueOptions {
  FsyncPolicy fsync = FsyncPolicy::batch;
  std::chrono::milliseconds batch_interval{10};
  // Dead records (confirmed frames, confirms) past this, and past the live records' size,
  // make confirm() rewrite the file with the live records only.
  std::uint64_t compact_bytes = 64u << 20;
  // A file past this with nothing pending is replaced by an empty one (header and base).
  std::uint64_t drained_truncate_bytes = 1u << 20;
};

class PersistentQueue {
 public:
  static constexpr std::uint32_t max_frame_bytes = 64u << 20;

  // Opens `path`, or creates it (mode 0600), and locks it: while this queue lives, another
  // open of the same file, from this process or another, fails. Reads and checks every record;
  // a torn or corrupt one is cut off with a warning. Null with `error` set when the file cannot
  // be opened, locked, read or truncated, or is not a queue file (such a file is left as it is).
  static std::unique_ptr<PersistentQueue> open(const std::string& path,
                                               const PersistentQueueOptions& options,
                                               std::string& error);
  ~PersistentQueue();
  PersistentQueue(const PersistentQueue&) = delete;
  PersistentQueue& operator=(const PersistentQueue&) = delete;

  // What open() dropped or repaired, one sentence each, for the client to report.
  const std::vector<std::string>& warnings() const noexcept { return warnings_; }

  // Calls `visit` with each pending frame whose id is above `after_id`, in id order, until it
  // returns false. The frame's bytes are valid only during the call, and `visit` must not
  // call append() or confirm(). False with error() set when the file cannot be read back or a
  // record no longer matches its checksum.
  using PendingVisitor = std::function<bool(std::uint64_t id, std::span<const std::byte> frame)>;
  bool for_each_pending(std::uint64_t after_id, const PendingVisitor& visit);
  bool for_each_pending(const PendingVisitor& visit) { return for_each_pending(0, visit); }

  std::uint64_t pending_count() const noexcept { return pending_.size() - pending_head_; }
  std::uint64_t pending_bytes() const noexcept { return pending_frame_bytes_; }  // frames only
  std::uint64_t last_id() const noexcept { return last_id_; }            // 0: none yet
  std::uint64_t confirmed_id() const noexcept { return confirmed_id_; }
  std::uint64_t file_bytes() const noexcept { return file_bytes_; }

  // The session these frames belong to (a named session, principal/N) and its token, as the
  // last remember_session() left them; an empty id when none was recorded.
  static constexpr std::size_t token_bytes = 16;
  const std::string& session_id() const noexcept { return session_id_; }
  const std::array<std::byte, token_bytes>& session_token() const noexcept { return session_token_; }
  // Records the session and its token (a no-op when they are already the last recorded).
  // False with error() set when the write failed.
  bool remember_session(std::string_view id, std::span<const std::byte, token_bytes> token);

  // Appends one frame and returns its id, or 0 with error() set: the frame is over
  // max_frame_bytes, the write failed (disk full: nothing of it stays in the file, and a
  // later append may succeed), or the queue has failed() (now or before; after a failed
  // fdatasync the frame was written but whether it is on disk is unknown).
  std::uint64_t append(std::span<const std::byte> frame);

  // Every frame up to `id` reached the broker (ids past last_id() count as last_id()). They
  // leave the pending set at once; a confirm record makes that last across a restart, and the
  // file may be rewritten (see the file comment). False with error() set when something on disk
  // failed; a failed rewrite keeps the old file and is tried again after compact_bytes more.
  bool confirm(std::uint64_t id);

  // fdatasync now if a write is waiting for one under the batch policy (nothing to do under
  // never and always). The client calls it when its outgoing queue is flushed and, while
  // needs_sync(), at least every batch_interval.
  bool sync();
  bool needs_sync() const noexcept { return unsynced_; }

  // The last error. After a failed fdatasync, or a partial record that could not be cut off,
  // the file's content is unknown: the queue has failed() and refuses every further write.
  // Opening the file again reads what it really holds.
  const std::string& error() const noexcept { return error_; }
  bool failed() const noexcept { return failed_; }

 private:
  // Where a pending frame's record is in the file.
  struct PendingRecord {
    std::uint64_t offset;
    std::uint32_t frame_bytes;
  };

  PersistentQueue(const std::string& path, const PersistentQueueOptions& options);

  bool lock_file(std::string& error);
  bool load(std::string& error);
  bool load_records(std::uint64_t file_bytes, std::string& error);
  void remove_interrupted_rewrite();
  bool write_record(std::span<const std::byte> record);
  bool sync_after_write();
  bool fdatasync_or_fail();
  bool rewrite_if_worthwhile();
  bool rewrite_live_records();
  void forget_confirmed_records();
  std::uint64_t dead_bytes() const noexcept;
  void fail(std::string error);

  std::string session_id_;
  std::array<std::byte, token_bytes> session_token_{};
  std::uint64_t session_record_bytes_ = 0;  // the last session record's, counted as live
  std::string path_;
  std::string directory_;
  PersistentQueueOptions options_;
  int fd_ = -1;
  std::uint64_t file_bytes_ = 0;  // where the next record goes
  std::uint64_t last_id_ = 0;     // the highest id in the file (a frame's, or the base's)
  std::uint64_t confirmed_id_ = 0;

  // Pending frames are ids confirmed_id_ + 1 .. last_id_, in order, from pending_head_ on.
  // A vector consumed from the front and compacted now and then: appends do not allocate
  // once it has grown to the usual backlog.
  std::vector<PendingRecord> pending_;
  std::size_t pending_head_ = 0;
  std::uint64_t pending_frame_bytes_ = 0;
  std::uint64_t pending_record_bytes_ = 0;  // the live part of the file

  std::vector<std::byte> record_buffer_;  // the record being appended, reused
  bool unsynced_ = false;
  std::chrono::steady_clock::time_point last_sync_{};
  std::uint64_t no_rewrite_before_file_bytes_ = 0;  // back-off after a failed rewrite

  bool failed_ = false;
  std::string error_;
  std::vector<std::string> warnings_;
};

}  // namespace brook::client_detail
