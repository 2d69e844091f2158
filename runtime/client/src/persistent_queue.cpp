#include "persistent_queue.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <utility>

namespace brook::client_detail {
namespace {

constexpr std::array<char, 8> file_magic{'B', 'R', 'O', 'O', 'K', 'Q', '1', '\0'};
constexpr std::uint32_t format_version = 1;
constexpr std::size_t file_header_bytes = 16;    // magic, version, reserved
constexpr std::size_t record_header_bytes = 17;  // length, checksum, kind, id
constexpr std::size_t checksummed_from = 8;      // kind, id and payload are checksummed

enum class RecordKind : std::uint8_t { frame = 1, confirm = 2, base = 3, session = 4 };
constexpr std::size_t max_session_id_bytes = 512;

// Opening, iterating and rewriting read the file in pieces this large.
constexpr std::size_t read_chunk_bytes = 1u << 20;
// A file replaced under an open() between its open and its flock: how often to try again.
constexpr int lock_attempts = 8;

void store_u32(std::byte* out, std::uint32_t value) {
  for (int i = 0; i < 4; ++i) out[i] = static_cast<std::byte>(value >> (8 * i));
}
void store_u64(std::byte* out, std::uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::byte>(value >> (8 * i));
}
std::uint32_t load_u32(const std::byte* in) {
  std::uint32_t value = 0;
  for (int i = 0; i < 4; ++i)
    value |= std::uint32_t(std::to_integer<std::uint8_t>(in[i])) << (8 * i);
  return value;
}
std::uint64_t load_u64(const std::byte* in) {
  std::uint64_t value = 0;
  for (int i = 0; i < 8; ++i)
    value |= std::uint64_t(std::to_integer<std::uint8_t>(in[i])) << (8 * i);
  return value;
}

std::array<std::byte, file_header_bytes> file_header() {
  std::array<std::byte, file_header_bytes> header{};
  std::memcpy(header.data(), file_magic.data(), file_magic.size());
  store_u32(header.data() + 8, format_version);
  return header;
}

std::uint32_t record_checksum(std::span<const std::byte> record) {
  auto covered = record.subspan(checksummed_from);
  return static_cast<std::uint32_t>(XXH3_64bits(covered.data(), covered.size()));
}

// `record` holds a whole record (header and payload).
bool checksum_matches(std::span<const std::byte> record) {
  return load_u32(record.data() + 4) == record_checksum(record);
}

// Lays one record out in `out`, reusing its capacity.
void encode_record(std::vector<std::byte>& out, RecordKind kind, std::uint64_t id,
                   std::span<const std::byte> payload) {
  out.resize(record_header_bytes + payload.size());
  store_u32(out.data(), static_cast<std::uint32_t>(payload.size()));
  out[8] = static_cast<std::byte>(kind);
  store_u64(out.data() + 9, id);
  if (!payload.empty())
    std::memcpy(out.data() + record_header_bytes, payload.data(), payload.size());
  store_u32(out.data() + 4, record_checksum(out));
}

// 0, or the errno of the write that failed (some bytes may have been written before it).
int pwrite_all(int fd, std::span<const std::byte> bytes, std::uint64_t offset) {
  while (!bytes.empty()) {
    const ssize_t written = ::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (written == 0) return EIO;  // no progress: do not spin
    bytes = bytes.subspan(static_cast<std::size_t>(written));
    offset += static_cast<std::uint64_t>(written);
  }
  return 0;
}

// 0, or the errno of the read that failed; a file shorter than asked for is EIO.
int pread_all(int fd, std::span<std::byte> bytes, std::uint64_t offset) {
  while (!bytes.empty()) {
    const ssize_t got = ::pread(fd, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (got == 0) return EIO;
    bytes = bytes.subspan(static_cast<std::size_t>(got));
    offset += static_cast<std::uint64_t>(got);
  }
  return 0;
}

int fdatasync_all(int fd) {
  while (::fdatasync(fd) != 0)
    if (errno != EINTR) return errno;
  return 0;
}

// A rename is durable only once its directory is.
int fsync_directory(const std::string& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return errno;
  int result = 0;
  while (::fsync(fd) != 0) {
    if (errno == EINTR) continue;
    result = errno;
    break;
  }
  ::close(fd);
  return result;
}

std::string describe(int error_number) { return std::strerror(error_number); }

// Reads a file front to back through one buffer, so that going over a large queue costs a
// few large reads rather than one per record. Offsets asked for never go back.
class SequentialReader {
 public:
  SequentialReader(int fd, std::uint64_t file_bytes) : fd_(fd), file_bytes_(file_bytes) {}

  // The `n` bytes at `offset` (the caller knows they are inside the file), valid until the
  // next call; empty when the read fails (error_number() says why).
  std::span<const std::byte> bytes_at(std::uint64_t offset, std::size_t n) {
    if (offset >= start_ && offset + n <= start_ + filled_)
      return {buffer_.data() + (offset - start_), n};
    // Keep what the buffer already holds from `offset` on, then read the rest.
    std::size_t kept = 0;
    if (offset >= start_ && offset < start_ + filled_) {
      kept = static_cast<std::size_t>(start_ + filled_ - offset);
      std::memmove(buffer_.data(), buffer_.data() + (offset - start_), kept);
    }
    start_ = offset;
    filled_ = kept;
    const std::uint64_t rest_of_file = file_bytes_ - offset;
    const std::size_t wanted = static_cast<std::size_t>(
        std::max<std::uint64_t>(n, std::min<std::uint64_t>(read_chunk_bytes, rest_of_file)));
    if (buffer_.size() < wanted) buffer_.resize(wanted);
    while (filled_ < n) {
      const ssize_t got = ::pread(fd_, buffer_.data() + filled_, wanted - filled_,
                                  static_cast<off_t>(start_ + filled_));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        error_number_ = got < 0 ? errno : EIO;  // EIO: the file is shorter than it was
        return {};
      }
      filled_ += static_cast<std::size_t>(got);
    }
    return {buffer_.data(), n};
  }
  int error_number() const noexcept { return error_number_; }

 private:
  int fd_;
  std::uint64_t file_bytes_;
  std::vector<std::byte> buffer_;
  std::uint64_t start_ = 0;  // the file offset of buffer_[0]
  std::size_t filled_ = 0;
  int error_number_ = 0;
};

}  // namespace

PersistentQueue::PersistentQueue(const std::string& path, const PersistentQueueOptions& options)
    : path_(path), options_(options) {
  directory_ = std::filesystem::path(path).parent_path().string();
  if (directory_.empty()) directory_ = ".";
}

PersistentQueue::~PersistentQueue() {
  if (fd_ < 0) return;
  // A clean close keeps everything the batch policy had not yet synced.
  if (unsynced_ && !failed_) fdatasync_all(fd_);
  ::close(fd_);  // releases the lock
}

std::unique_ptr<PersistentQueue> PersistentQueue::open(const std::string& path,
                                                       const PersistentQueueOptions& options,
                                                       std::string& error) {
  std::unique_ptr<PersistentQueue> queue(new PersistentQueue(path, options));
  if (!queue->lock_file(error) || !queue->load(error)) return nullptr;
  queue->last_sync_ = std::chrono::steady_clock::now();
  return queue;
}

bool PersistentQueue::lock_file(std::string& error) {
  for (int attempt = 0; attempt < lock_attempts; ++attempt) {
    const int fd = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
      error = "cannot open queue file " + path_ + ": " + describe(errno);
      return false;
    }
    // flock belongs to the open file description: a second open in this process is refused
    // too, and the kernel releases it when a killed process's descriptors close.
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int lock_error = errno;
      ::close(fd);
      error = lock_error == EWOULDBLOCK
                  ? "queue file " + path_ +
                        " is in use: another queue (in this process or another) holds its lock"
                  : "cannot lock queue file " + path_ + ": " + describe(lock_error);
      return false;
    }
    // The holder of the lock may have replaced the file by rename between our open and our
    // flock; then we would hold the lock of a file that is no longer at path_.
    struct stat opened{}, at_path{};
    if (::fstat(fd, &opened) == 0 && ::stat(path_.c_str(), &at_path) == 0 &&
        opened.st_dev == at_path.st_dev && opened.st_ino == at_path.st_ino) {
      fd_ = fd;
      return true;
    }
    ::close(fd);
  }
  error = "cannot lock queue file " + path_ + ": it keeps being replaced while being opened";
  return false;
}

bool PersistentQueue::load(std::string& error) {
  auto not_a_queue_file = [&] {
    return "queue file " + path_ + " is not a Brook queue file (it does not start with "
           "BROOKQ1): refusing to use it; move it away or set another queue.path";
  };
  struct stat file{};
  if (::fstat(fd_, &file) != 0) {
    error = "cannot read queue file " + path_ + ": " + describe(errno);
    return false;
  }
  const auto file_bytes = static_cast<std::uint64_t>(file.st_size);
  const auto expected_header = file_header();
  std::array<std::byte, file_header_bytes> header{};
  const std::size_t header_read = std::min<std::size_t>(file_header_bytes, file_bytes);
  if (const int read_error = pread_all(fd_, std::span(header).first(header_read), 0)) {
    error = "cannot read queue file " + path_ + ": " + describe(read_error);
    return false;
  }

  if (file_bytes < file_header_bytes) {
    // Empty: a new queue. The start of our own header: a creation cut short (only possible
    // under FsyncPolicy::never and a power cut, since files appear by rename). Anything else
    // is not ours to overwrite.
    if (std::memcmp(header.data(), expected_header.data(), header_read) != 0) {
      error = not_a_queue_file();
      return false;
    }
    remove_interrupted_rewrite();
    if (file_bytes > 0)
      warnings_.push_back("queue file " + path_ + " held only " + std::to_string(file_bytes) +
                          " bytes of its header (its creation was cut short): started afresh");
    if (!rewrite_live_records()) {
      error = error_;
      return false;
    }
    return true;
  }
  if (std::memcmp(header.data(), file_magic.data(), file_magic.size()) != 0) {
    error = not_a_queue_file();
    return false;
  }
  if (const std::uint32_t version = load_u32(header.data() + 8); version != format_version) {
    error = "queue file " + path_ + " has format version " + std::to_string(version) +
            "; this build reads version " + std::to_string(format_version);
    return false;
  }
  remove_interrupted_rewrite();
  return load_records(file_bytes, error);
}

void PersistentQueue::remove_interrupted_rewrite() {
  // A rewrite cut short by a crash leaves its temporary file behind. Holding the lock of a
  // file that is ours, we know no rewrite is running now.
  ::unlink((path_ + ".compact").c_str());
}

bool PersistentQueue::load_records(std::uint64_t file_bytes, std::string& error) {
  SequentialReader reader(fd_, file_bytes);
  std::uint64_t offset = file_header_bytes;
  std::string problem;  // why the record at `offset` ends the readable part
  bool problem_is_last_record = false;  // nothing follows the bad record
  while (offset < file_bytes) {
    problem_is_last_record = false;
    const std::uint64_t left = file_bytes - offset;
    if (left < record_header_bytes) {
      problem = "is cut short inside its " + std::to_string(record_header_bytes) + "-byte header";
      problem_is_last_record = true;
      break;
    }
    const auto head = reader.bytes_at(offset, record_header_bytes);
    if (head.empty()) {
      error = "cannot read queue file " + path_ + ": " + describe(reader.error_number());
      return false;
    }
    const std::uint32_t length = load_u32(head.data());
    if (length > max_frame_bytes) {
      problem = "claims a payload of " + std::to_string(length) + " bytes, over the limit of " +
                std::to_string(max_frame_bytes);
      break;
    }
    const std::uint64_t record_bytes = record_header_bytes + length;
    if (record_bytes > left) {
      problem = "is cut short: " + std::to_string(record_bytes) + " bytes long, " +
                std::to_string(left) + " left in the file";
      problem_is_last_record = true;
      break;
    }
    const auto record = reader.bytes_at(offset, record_bytes);
    if (record.empty()) {
      error = "cannot read queue file " + path_ + ": " + describe(reader.error_number());
      return false;
    }
    problem_is_last_record = offset + record_bytes == file_bytes;
    if (!checksum_matches(record)) {
      problem = "fails its checksum";
      break;
    }
    const auto kind = static_cast<RecordKind>(record[8]);
    const std::uint64_t id = load_u64(record.data() + 9);
    if (kind == RecordKind::frame) {
      if (id != last_id_ + 1) {
        problem = "is frame " + std::to_string(id) + " where frame " +
                  std::to_string(last_id_ + 1) + " should come";
        break;
      }
      last_id_ = id;
      pending_.push_back({offset, length});
      pending_frame_bytes_ += length;
      pending_record_bytes_ += record_bytes;
    } else if (kind == RecordKind::confirm && length == 0) {
      if (id <= confirmed_id_ || id > last_id_) {
        problem = "confirms up to frame " + std::to_string(id) + " where only frames " +
                  std::to_string(confirmed_id_ + 1) + " to " + std::to_string(last_id_) +
                  " are pending";
        break;
      }
      confirmed_id_ = id;
      forget_confirmed_records();
    } else if (kind == RecordKind::session && id == 0 && length > PersistentQueue::token_bytes &&
               length <= PersistentQueue::token_bytes + max_session_id_bytes) {
      const auto payload = record.subspan(record_header_bytes);
      std::memcpy(session_token_.data(), payload.data(), token_bytes);
      session_id_.assign(reinterpret_cast<const char*>(payload.data() + token_bytes), length - token_bytes);
      session_record_bytes_ = record_bytes;
    } else if (kind == RecordKind::base && length == 0) {
      if (offset != file_header_bytes) {
        problem = "is a base record after the start of the file";
        break;
      }
      last_id_ = confirmed_id_ = id;
    } else {
      problem = "has kind " + std::to_string(std::to_integer<int>(record[8])) + " and " +
                std::to_string(length) + " payload bytes, which no record has";
      break;
    }
    offset += record_bytes;
  }
  file_bytes_ = offset;
  if (offset == file_bytes) return true;

  // Appending after the bad record would hide every later record from the next open: cut it.
  const std::uint64_t dropped = file_bytes - offset;
  const std::string where = std::to_string(dropped) + " bytes at offset " + std::to_string(offset);
  warnings_.push_back(
      problem_is_last_record
          ? "queue file " + path_ + ": dropped its last record (" + where + "), which " + problem
          : "queue file " + path_ + ": dropped " + where + ": the record there " + problem +
                ", and every record after it was dropped with it");
  if (::ftruncate(fd_, static_cast<off_t>(offset)) != 0) {
    error = "cannot cut the damaged end off queue file " + path_ + ": " + describe(errno);
    return false;
  }
  if (options_.fsync != FsyncPolicy::never) {
    if (const int sync_error = fdatasync_all(fd_)) {
      error = "cannot sync queue file " + path_ + ": " + describe(sync_error);
      return false;
    }
  }
  return true;
}

bool PersistentQueue::for_each_pending(std::uint64_t after_id, const PendingVisitor& visit) {
  if (after_id >= last_id_) return true;
  const std::uint64_t first_id = std::max(after_id, confirmed_id_) + 1;
  SequentialReader reader(fd_, file_bytes_);
  for (std::uint64_t id = first_id; id <= last_id_; ++id) {
    const PendingRecord& pending = pending_[pending_head_ + (id - confirmed_id_ - 1)];
    const auto record = reader.bytes_at(pending.offset, record_header_bytes + pending.frame_bytes);
    if (record.empty()) {
      error_ = "cannot read queue file " + path_ + ": " + describe(reader.error_number());
      return false;
    }
    if (!checksum_matches(record)) {
      error_ = "queue file " + path_ + " changed under its queue: the record at offset " +
               std::to_string(pending.offset) + " no longer matches its checksum";
      return false;
    }
    if (!visit(id, record.subspan(record_header_bytes))) break;
  }
  return true;
}

std::uint64_t PersistentQueue::append(std::span<const std::byte> frame) {
  if (failed_) return 0;
  if (frame.size() > max_frame_bytes) {
    error_ = "a frame of " + std::to_string(frame.size()) + " bytes is over the queue's limit of " +
             std::to_string(max_frame_bytes);
    return 0;
  }
  const std::uint64_t id = last_id_ + 1;
  const std::uint64_t offset = file_bytes_;
  encode_record(record_buffer_, RecordKind::frame, id, frame);
  if (!write_record(record_buffer_)) return 0;
  last_id_ = id;
  pending_.push_back({offset, static_cast<std::uint32_t>(frame.size())});
  pending_frame_bytes_ += frame.size();
  pending_record_bytes_ += record_buffer_.size();
  if (!sync_after_write()) return 0;
  return id;
}

bool PersistentQueue::confirm(std::uint64_t id) {
  id = std::min(id, last_id_);
  if (id <= confirmed_id_) return true;
  // The broker has these frames whatever happens on disk: this process never sends them again.
  confirmed_id_ = id;
  forget_confirmed_records();
  if (failed_) return false;
  encode_record(record_buffer_, RecordKind::confirm, id, {});
  if (!write_record(record_buffer_) || !sync_after_write()) return false;
  return rewrite_if_worthwhile();
}

bool PersistentQueue::remember_session(std::string_view id, std::span<const std::byte, token_bytes> token) {
  if (id == session_id_ && std::equal(token.begin(), token.end(), session_token_.begin())) return true;
  if (failed_) return false;
  if (id.empty() || id.size() > max_session_id_bytes) {
    error_ = "a session id of " + std::to_string(id.size()) + " bytes cannot be recorded";
    return false;
  }
  std::vector<std::byte> payload(token_bytes + id.size());
  std::memcpy(payload.data(), token.data(), token_bytes);
  std::memcpy(payload.data() + token_bytes, id.data(), id.size());
  encode_record(record_buffer_, RecordKind::session, 0, payload);
  if (!write_record(record_buffer_) || !sync_after_write()) return false;
  session_id_.assign(id);
  std::copy(token.begin(), token.end(), session_token_.begin());
  session_record_bytes_ = record_buffer_.size();
  return true;
}

bool PersistentQueue::sync() {
  if (failed_) return false;
  return !unsynced_ || fdatasync_or_fail();
}

bool PersistentQueue::write_record(std::span<const std::byte> record) {
  const int write_error = pwrite_all(fd_, record, file_bytes_);
  if (write_error == 0) {
    file_bytes_ += record.size();
    return true;
  }
  // Part of the record may have reached the file (disk full halfway); left there, it would
  // hide every record appended after it from the next open.
  if (::ftruncate(fd_, static_cast<off_t>(file_bytes_)) != 0) {
    fail("cannot write to queue file " + path_ + " (" + describe(write_error) +
         ") nor cut off the partial record (" + describe(errno) + ")");
    return false;
  }
  error_ = "cannot write to queue file " + path_ + ": " + describe(write_error);
  return false;
}

bool PersistentQueue::sync_after_write() {
  switch (options_.fsync) {
    case FsyncPolicy::never:
      return true;
    case FsyncPolicy::batch:
      unsynced_ = true;
      if (std::chrono::steady_clock::now() - last_sync_ < options_.batch_interval) return true;
      return fdatasync_or_fail();
    case FsyncPolicy::always:
      unsynced_ = true;
      return fdatasync_or_fail();
  }
  return true;
}

bool PersistentQueue::fdatasync_or_fail() {
  // After a failed fdatasync the kernel may have dropped the dirty pages and a retry would
  // report success: what the file holds is unknown, so the queue stops here.
  if (const int sync_error = fdatasync_all(fd_)) {
    fail("cannot sync queue file " + path_ + ": " + describe(sync_error) +
         "; what it holds is unknown until it is opened again");
    return false;
  }
  unsynced_ = false;
  last_sync_ = std::chrono::steady_clock::now();
  return true;
}

std::uint64_t PersistentQueue::dead_bytes() const noexcept {
  return file_bytes_ - file_header_bytes - pending_record_bytes_ - session_record_bytes_;
}

bool PersistentQueue::rewrite_if_worthwhile() {
  if (file_bytes_ < no_rewrite_before_file_bytes_) return true;
  const bool drained = pending_count() == 0 && file_bytes_ > options_.drained_truncate_bytes;
  // Rewriting copies the live records: only when the dead ones outweigh them is it amortised.
  const std::uint64_t dead = dead_bytes();
  const bool mostly_dead = dead > options_.compact_bytes && dead > pending_record_bytes_;
  if (!drained && !mostly_dead) return true;
  return rewrite_live_records();
}

bool PersistentQueue::rewrite_live_records() {
  const std::string temp_path = path_ + ".compact";
  int temp_fd = -1;
  auto give_up = [&](const std::string& what, int error_number) {
    if (temp_fd >= 0) {
      ::close(temp_fd);
      ::unlink(temp_path.c_str());
    }
    error_ = "cannot rewrite queue file " + path_ + ": " + what + ": " + describe(error_number);
    no_rewrite_before_file_bytes_ = file_bytes_ + options_.compact_bytes;
    return false;
  };

  temp_fd = ::open(temp_path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (temp_fd < 0) return give_up("cannot create " + temp_path, errno);
  // Locked before it appears at path_, so that no other open can take it in between.
  if (::flock(temp_fd, LOCK_EX | LOCK_NB) != 0) return give_up("cannot lock " + temp_path, errno);

  std::vector<std::byte> out;
  out.reserve(std::min<std::uint64_t>(read_chunk_bytes, file_bytes_) + file_header_bytes +
              record_header_bytes);
  const auto header = file_header();
  out.insert(out.end(), header.begin(), header.end());
  encode_record(record_buffer_, RecordKind::base, confirmed_id_, {});
  out.insert(out.end(), record_buffer_.begin(), record_buffer_.end());
  if (!session_id_.empty()) {
    std::vector<std::byte> payload(token_bytes + session_id_.size());
    std::memcpy(payload.data(), session_token_.data(), token_bytes);
    std::memcpy(payload.data() + token_bytes, session_id_.data(), session_id_.size());
    encode_record(record_buffer_, RecordKind::session, 0, payload);
    out.insert(out.end(), record_buffer_.begin(), record_buffer_.end());
  }

  std::vector<std::uint64_t> new_offsets;
  new_offsets.reserve(pending_count());
  std::uint64_t written = 0;
  SequentialReader reader(fd_, file_bytes_);
  for (std::size_t i = pending_head_; i < pending_.size(); ++i) {
    const PendingRecord& pending = pending_[i];
    const auto record = reader.bytes_at(pending.offset, record_header_bytes + pending.frame_bytes);
    if (record.empty()) return give_up("cannot read it", reader.error_number());
    if (!checksum_matches(record))
      return give_up("a pending record no longer matches its checksum", EIO);
    new_offsets.push_back(written + out.size());
    out.insert(out.end(), record.begin(), record.end());
    if (out.size() >= read_chunk_bytes) {
      if (const int write_error = pwrite_all(temp_fd, out, written))
        return give_up("cannot write " + temp_path, write_error);
      written += out.size();
      out.clear();
    }
  }
  if (const int write_error = pwrite_all(temp_fd, out, written))
    return give_up("cannot write " + temp_path, write_error);
  written += out.size();
  // The new file's content must be on disk before the rename can make it the queue.
  if (options_.fsync != FsyncPolicy::never) {
    if (const int sync_error = fdatasync_all(temp_fd))
      return give_up("cannot sync " + temp_path, sync_error);
  }
  if (::rename(temp_path.c_str(), path_.c_str()) != 0)
    return give_up("cannot rename " + temp_path, errno);

  // From here the new file is the queue, whatever else fails.
  if (fd_ >= 0) ::close(fd_);
  fd_ = temp_fd;
  file_bytes_ = written;
  no_rewrite_before_file_bytes_ = 0;
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pending_head_));
  pending_head_ = 0;
  for (std::size_t i = 0; i < pending_.size(); ++i) pending_[i].offset = new_offsets[i];
  unsynced_ = false;
  if (options_.fsync != FsyncPolicy::never) {
    if (const int sync_error = fsync_directory(directory_)) {
      fail("cannot sync directory " + directory_ + " after replacing queue file " + path_ + ": " +
           describe(sync_error) + "; which file a power cut would leave is unknown");
      return false;
    }
  }
  return true;
}

void PersistentQueue::forget_confirmed_records() {
  const std::uint64_t still_pending = last_id_ - confirmed_id_;
  while (pending_count() > still_pending) {
    const PendingRecord& confirmed = pending_[pending_head_++];
    pending_frame_bytes_ -= confirmed.frame_bytes;
    pending_record_bytes_ -= record_header_bytes + confirmed.frame_bytes;
  }
  // Move the index down only when its consumed front dominates: amortised O(1) per record,
  // and the vector keeps its capacity.
  if (pending_head_ == pending_.size()) {
    pending_.clear();
    pending_head_ = 0;
  } else if (pending_head_ >= 1024 && pending_head_ * 2 >= pending_.size()) {
    pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pending_head_));
    pending_head_ = 0;
  }
}

void PersistentQueue::fail(std::string error) {
  failed_ = true;
  error_ = std::move(error);
}

}  // namespace brook::client_detail
