// Unit tests of PersistentQueue, the client's sent frames kept in a file, with real files in a
// fresh directory per test: frames and ids across reopen, confirms, truncation of a drained
// file and compaction, the documented byte layout, torn and corrupt records (cut at several
// points, flipped bytes, records that break the id rules), files that are not ours, the
// exclusive lock, the fsync policies, a full disk (RLIMIT_FSIZE in a child), and children
// killed with SIGKILL after and while appending.
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <xxhash.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "../../runtime/client/src/persistent_queue.hpp"

namespace brook::client_detail {
namespace {

using Bytes = std::vector<std::byte>;
using Frames = std::vector<std::pair<std::uint64_t, Bytes>>;

// The documented layout, spelled out here independently of the implementation.
constexpr std::size_t header_bytes = 16;
constexpr std::size_t record_header_bytes = 17;
constexpr std::uint8_t frame_kind = 1;
constexpr std::uint8_t confirm_kind = 2;
constexpr std::uint8_t base_kind = 3;
constexpr std::size_t base_record_bytes = record_header_bytes;

// A fresh directory under /tmp, removed with everything in it when the test ends.
class TempDir {
 public:
  TempDir() {
    char pattern[] = "/tmp/brook-queue-test-XXXXXX";
    EXPECT_NE(::mkdtemp(pattern), nullptr) << "mkdtemp failed";
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name = "queue") const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

// ---- frames and files ----------------------------------------------------------------------

std::size_t standard_size(std::uint64_t id) { return id * 37 % 300; }
std::size_t size_20(std::uint64_t) { return 20; }
std::size_t size_50(std::uint64_t) { return 50; }
std::size_t size_100(std::uint64_t) { return 100; }
// Records of 2 to 11 KiB span pages.
std::size_t large_size(std::uint64_t id) { return 2000 + id * 997 % 9000; }

// The bytes `frames` records of `frame_bytes` each take in the file.
constexpr std::uint64_t records_bytes(std::uint64_t frames, std::uint64_t frame_bytes) {
  return frames * (record_header_bytes + frame_bytes);
}

// Bytes that differ from frame to frame, so a frame returned under the wrong id shows.
Bytes frame_for(std::uint64_t id, std::size_t size) {
  Bytes frame(size);
  std::uint64_t state = id * 0x9E3779B97F4A7C15ull + 1;
  for (auto& byte : frame) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    byte = static_cast<std::byte>(state);
  }
  return frame;
}
Bytes frame_for(std::uint64_t id) { return frame_for(id, standard_size(id)); }

Frames expected_frames(std::uint64_t first, std::uint64_t last,
                       std::size_t (*size_of)(std::uint64_t) = standard_size) {
  Frames frames;
  for (std::uint64_t id = first; id <= last; ++id)
    frames.emplace_back(id, frame_for(id, size_of(id)));
  return frames;
}

Frames pending_frames(PersistentQueue& queue) {
  Frames frames;
  EXPECT_TRUE(queue.for_each_pending([&](std::uint64_t id, std::span<const std::byte> frame) {
    frames.emplace_back(id, Bytes(frame.begin(), frame.end()));
    return true;
  })) << queue.error();
  return frames;
}

PersistentQueueOptions never_sync() {
  PersistentQueueOptions options;
  options.fsync = FsyncPolicy::never;
  return options;
}

std::unique_ptr<PersistentQueue> open_queue(const std::string& path,
                                            const PersistentQueueOptions& options = never_sync()) {
  std::string error;
  auto queue = PersistentQueue::open(path, options, error);
  EXPECT_TRUE(queue) << error;
  return queue;
}

// Appends frame_for(first..last) and checks each id it gets back.
void append_frames(PersistentQueue& queue, std::uint64_t first, std::uint64_t last,
                   std::size_t (*size_of)(std::uint64_t) = standard_size) {
  for (std::uint64_t id = first; id <= last; ++id)
    ASSERT_EQ(queue.append(frame_for(id, size_of(id))), id) << queue.error();
}

std::uint64_t size_on_disk(const std::string& path) { return std::filesystem::file_size(path); }

Bytes read_file(const std::string& path) {
  Bytes bytes(size_on_disk(path));
  const int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::pread(fd, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
  return bytes;
}

void write_file(const std::string& path, std::span<const std::byte> bytes, bool append = false) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

void flip_byte(const std::string& path, std::uint64_t offset) {
  Bytes bytes = read_file(path);
  ASSERT_LT(offset, bytes.size());
  bytes[offset] ^= std::byte{0x5A};
  write_file(path, bytes);
}

void put_le(Bytes& out, std::size_t at, std::uint64_t value, int bytes) {
  for (int i = 0; i < bytes; ++i) out[at + i] = static_cast<std::byte>(value >> (8 * i));
}

Bytes file_header(std::uint32_t version = 1) {
  Bytes header(header_bytes);
  const char magic[8] = {'B', 'R', 'O', 'O', 'K', 'Q', '1', '\0'};
  std::memcpy(header.data(), magic, sizeof magic);
  put_le(header, 8, version, 4);
  return header;
}

// A record as the file comment describes it, valid checksum included.
Bytes record(std::uint8_t kind, std::uint64_t id, const Bytes& payload = {}) {
  Bytes out(record_header_bytes + payload.size());
  put_le(out, 0, payload.size(), 4);
  put_le(out, 8, kind, 1);
  put_le(out, 9, id, 8);
  std::copy(payload.begin(), payload.end(), out.begin() + record_header_bytes);
  put_le(out, 4, XXH3_64bits(out.data() + 8, out.size() - 8) & 0xFFFFFFFFu, 4);
  return out;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// ---- frames, ids and confirms across reopen ------------------------------------------------

TEST(PersistentQueue, appended_frames_come_back_after_reopen_in_order_with_their_ids) {
  TempDir dir;
  std::uint64_t frame_bytes = 0;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    EXPECT_EQ(queue->pending_count(), 0u);
    append_frames(*queue, 1, 100);
    for (std::uint64_t id = 1; id <= 100; ++id) frame_bytes += standard_size(id);
    EXPECT_EQ(queue->pending_count(), 100u);
    EXPECT_EQ(queue->pending_bytes(), frame_bytes);
    EXPECT_EQ(pending_frames(*queue), expected_frames(1, 100));
  }
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  EXPECT_EQ(queue->pending_count(), 100u);
  EXPECT_EQ(queue->pending_bytes(), frame_bytes);
  EXPECT_EQ(pending_frames(*queue), expected_frames(1, 100));
}

TEST(PersistentQueue, confirmed_frames_are_not_returned_after_reopen) {
  TempDir dir;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 10);
    EXPECT_TRUE(queue->confirm(4));
    EXPECT_EQ(pending_frames(*queue), expected_frames(5, 10));
  }
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    EXPECT_EQ(queue->confirmed_id(), 4u);
    EXPECT_EQ(pending_frames(*queue), expected_frames(5, 10));
    EXPECT_TRUE(queue->confirm(7));
    EXPECT_TRUE(queue->confirm(6));  // older than what is confirmed: nothing to do
  }
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  EXPECT_EQ(pending_frames(*queue), expected_frames(8, 10));
}

TEST(PersistentQueue, ids_continue_after_reopen_when_everything_was_confirmed) {
  TempDir dir;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 3);
  }
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    EXPECT_EQ(queue->last_id(), 3u);
    append_frames(*queue, 4, 5);
    EXPECT_TRUE(queue->confirm(5));
  }
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  EXPECT_EQ(queue->pending_count(), 0u);
  EXPECT_EQ(queue->last_id(), 5u);
  EXPECT_EQ(queue->append(frame_for(6)), 6u);
}

TEST(PersistentQueue, a_drained_file_past_the_threshold_is_truncated_and_ids_continue) {
  TempDir dir;
  auto options = never_sync();
  options.drained_truncate_bytes = 4096;
  {
    auto queue = open_queue(dir.file(), options);
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 10, size_100);
    EXPECT_TRUE(queue->confirm(10));  // drained, but the file is under the threshold
    EXPECT_GT(size_on_disk(dir.file()), records_bytes(10, 100));
    append_frames(*queue, 11, 60, size_100);
    EXPECT_TRUE(queue->confirm(59));  // past the threshold, but frame 60 is pending
    EXPECT_GT(size_on_disk(dir.file()), 4096u);
    EXPECT_TRUE(queue->confirm(60)) << queue->error();
    EXPECT_EQ(queue->file_bytes(), header_bytes + base_record_bytes);
    EXPECT_EQ(size_on_disk(dir.file()), header_bytes + base_record_bytes);
    EXPECT_EQ(queue->append(frame_for(61)), 61u);
  }
  auto queue = open_queue(dir.file(), options);
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  EXPECT_EQ(pending_frames(*queue), expected_frames(61, 61));
  EXPECT_EQ(queue->append(frame_for(62)), 62u);
  EXPECT_FALSE(std::filesystem::exists(dir.file() + ".compact"));
}

TEST(PersistentQueue, a_confirm_past_the_last_id_confirms_only_the_frames_appended) {
  TempDir dir;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 3);
    EXPECT_TRUE(queue->confirm(10));
    EXPECT_EQ(queue->confirmed_id(), 3u);
    EXPECT_EQ(queue->append(frame_for(4)), 4u);
  }
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  EXPECT_EQ(pending_frames(*queue), expected_frames(4, 4));
}

TEST(PersistentQueue, iteration_starts_after_the_given_id_and_stops_when_the_visitor_says_so) {
  TempDir dir;
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  append_frames(*queue, 1, 10);
  EXPECT_TRUE(queue->confirm(2));

  std::vector<std::uint64_t> ids;
  auto collect = [&](std::uint64_t id, std::span<const std::byte>) {
    ids.push_back(id);
    return true;
  };
  EXPECT_TRUE(queue->for_each_pending(5, collect));
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{6, 7, 8, 9, 10}));
  ids.clear();
  EXPECT_TRUE(queue->for_each_pending(10, collect));
  EXPECT_TRUE(ids.empty());

  ids.clear();
  EXPECT_TRUE(queue->for_each_pending([&](std::uint64_t id, std::span<const std::byte>) {
    ids.push_back(id);
    return ids.size() < 2;
  }));
  EXPECT_EQ(ids, (std::vector<std::uint64_t>{3, 4}));
}

TEST(PersistentQueue, the_file_holds_the_documented_header_and_records) {
  TempDir dir;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 2);
    EXPECT_TRUE(queue->confirm(1));
  }
  Bytes expected = file_header();
  for (const Bytes& part : {record(base_kind, 0), record(frame_kind, 1, frame_for(1)),
                            record(frame_kind, 2, frame_for(2)), record(confirm_kind, 1)})
    expected.insert(expected.end(), part.begin(), part.end());
  EXPECT_EQ(read_file(dir.file()), expected);
}

// ---- torn and corrupt records --------------------------------------------------------------

TEST(PersistentQueue, a_torn_tail_record_is_dropped_with_a_warning_and_the_rest_kept) {
  // Inside the length, at the checksum, inside the id, just after the header, mid-payload,
  // one byte short.
  for (std::size_t kept : {1u, 4u, 12u, 17u, 60u, 116u}) {
    SCOPED_TRACE("kept " + std::to_string(kept) + " bytes of the last record");
    TempDir dir;
    std::uint64_t last_record_offset = 0;
    {
      auto queue = open_queue(dir.file());
      ASSERT_TRUE(queue);
      append_frames(*queue, 1, 4, size_100);
      last_record_offset = queue->file_bytes();
      append_frames(*queue, 5, 5, size_100);
    }
    std::filesystem::resize_file(dir.file(), last_record_offset + kept);
    {
      auto queue = open_queue(dir.file());
      ASSERT_TRUE(queue);
      ASSERT_EQ(queue->warnings().size(), 1u);
      const std::string& warning = queue->warnings()[0];
      EXPECT_TRUE(contains(warning, "dropped its last record")) << warning;
      EXPECT_TRUE(contains(warning, std::to_string(kept) + " bytes at offset " +
                                        std::to_string(last_record_offset)))
          << warning;
      EXPECT_TRUE(contains(warning, "cut short")) << warning;
      EXPECT_EQ(size_on_disk(dir.file()), last_record_offset);
      EXPECT_EQ(pending_frames(*queue), expected_frames(1, 4, size_100));
      // The frame that was torn never got its id: the next append takes it.
      EXPECT_EQ(queue->append(frame_for(5, 100)), 5u);
    }
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    EXPECT_TRUE(queue->warnings().empty());
    EXPECT_EQ(pending_frames(*queue), expected_frames(1, 5, size_100));
  }
}

TEST(PersistentQueue, a_flipped_byte_anywhere_in_the_last_record_is_detected) {
  // The length, the checksum, the kind, the id, the first, a middle and the last payload byte.
  for (std::size_t at : {0u, 5u, 8u, 12u, 17u, 70u, 116u}) {
    SCOPED_TRACE("flipped byte " + std::to_string(at) + " of the last record");
    TempDir dir;
    std::uint64_t last_record_offset = 0;
    {
      auto queue = open_queue(dir.file());
      ASSERT_TRUE(queue);
      append_frames(*queue, 1, 4, size_100);
      last_record_offset = queue->file_bytes();
      append_frames(*queue, 5, 5, size_100);
    }
    flip_byte(dir.file(), last_record_offset + at);
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    ASSERT_EQ(queue->warnings().size(), 1u);
    EXPECT_TRUE(contains(queue->warnings()[0], "offset " + std::to_string(last_record_offset)))
        << queue->warnings()[0];
    EXPECT_EQ(size_on_disk(dir.file()), last_record_offset);
    EXPECT_EQ(pending_frames(*queue), expected_frames(1, 4, size_100));
  }
}

TEST(PersistentQueue, a_flipped_byte_in_a_middle_record_drops_it_and_every_record_after_it) {
  TempDir dir;
  std::uint64_t fourth_record_offset = 0;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 3, size_50);
    fourth_record_offset = queue->file_bytes();
    append_frames(*queue, 4, 10, size_50);
  }
  const std::uint64_t file_bytes = size_on_disk(dir.file());
  flip_byte(dir.file(), fourth_record_offset + record_header_bytes + 20);
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  ASSERT_EQ(queue->warnings().size(), 1u);
  const std::string& warning = queue->warnings()[0];
  EXPECT_TRUE(contains(warning, "dropped " + std::to_string(file_bytes - fourth_record_offset) +
                                    " bytes at offset " + std::to_string(fourth_record_offset)))
      << warning;
  EXPECT_TRUE(contains(warning, "fails its checksum")) << warning;
  EXPECT_TRUE(contains(warning, "every record after it")) << warning;
  EXPECT_EQ(size_on_disk(dir.file()), fourth_record_offset);
  EXPECT_EQ(pending_frames(*queue), expected_frames(1, 3, size_50));
  EXPECT_EQ(queue->append(frame_for(4)), 4u);
}

TEST(PersistentQueue, records_that_break_the_id_rules_end_the_readable_part) {
  struct Case {
    const char* what;
    Bytes bad_record;
    const char* warning_part;
  };
  const Case cases[] = {
      {"a frame that skips an id", record(frame_kind, 5, frame_for(5)), "is frame 5 where frame 4"},
      {"a frame that repeats an id", record(frame_kind, 3, frame_for(3)),
       "is frame 3 where frame 4"},
      {"a confirm past the last frame", record(confirm_kind, 4), "confirms up to frame 4"},
      {"a confirm that goes back", record(confirm_kind, 1), "confirms up to frame 1"},
      {"a base record after the start", record(base_kind, 9), "base record after the start"},
      {"an unknown kind", record(7, 4), "has kind 7"},
      {"a confirm with a payload", record(confirm_kind, 3, frame_for(1, 4)),
       "has kind 2 and 4 payload"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    TempDir dir;
    {
      auto queue = open_queue(dir.file());
      ASSERT_TRUE(queue);
      append_frames(*queue, 1, 3);
      EXPECT_TRUE(queue->confirm(2));
    }
    const std::uint64_t good_bytes = size_on_disk(dir.file());
    write_file(dir.file(), c.bad_record, true);
    write_file(dir.file(), record(frame_kind, 4, frame_for(4)), true);  // valid, but after it
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    ASSERT_EQ(queue->warnings().size(), 1u);
    EXPECT_TRUE(contains(queue->warnings()[0], c.warning_part)) << queue->warnings()[0];
    EXPECT_TRUE(contains(queue->warnings()[0], "every record after it")) << queue->warnings()[0];
    EXPECT_EQ(size_on_disk(dir.file()), good_bytes);
    EXPECT_EQ(pending_frames(*queue), expected_frames(3, 3));
  }
}

TEST(PersistentQueue, a_length_over_the_record_limit_is_taken_as_corrupt) {
  TempDir dir;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 2);
  }
  const std::uint64_t good_bytes = size_on_disk(dir.file());
  Bytes bad = record(frame_kind, 3, frame_for(3, 40));
  put_le(bad, 0, PersistentQueue::max_frame_bytes + 1, 4);
  write_file(dir.file(), bad, true);
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  ASSERT_EQ(queue->warnings().size(), 1u);
  EXPECT_TRUE(contains(queue->warnings()[0], "over the limit")) << queue->warnings()[0];
  EXPECT_EQ(size_on_disk(dir.file()), good_bytes);
  EXPECT_EQ(pending_frames(*queue), expected_frames(1, 2));
}

// ---- files that are not ours, locking, leftovers -------------------------------------------

TEST(PersistentQueue, a_file_that_is_not_a_queue_is_refused_and_left_untouched) {
  for (const std::string& text : {std::string("a precious file that is not a queue at all\n"),
                                 std::string("short"), std::string(100, '\0')}) {
    SCOPED_TRACE(text.size());
    TempDir dir;
    const auto bytes = std::as_bytes(std::span(text));
    write_file(dir.file(), bytes);
    std::string error;
    EXPECT_EQ(PersistentQueue::open(dir.file(), never_sync(), error), nullptr);
    EXPECT_TRUE(contains(error, "is not a Brook queue file")) << error;
    EXPECT_TRUE(contains(error, dir.file())) << error;
    EXPECT_EQ(read_file(dir.file()), Bytes(bytes.begin(), bytes.end()));
  }
}

TEST(PersistentQueue, a_file_of_another_format_version_is_refused_and_left_untouched) {
  TempDir dir;
  Bytes bytes = file_header(2);
  const Bytes frame = record(frame_kind, 1, frame_for(1));
  bytes.insert(bytes.end(), frame.begin(), frame.end());
  write_file(dir.file(), bytes);
  std::string error;
  EXPECT_EQ(PersistentQueue::open(dir.file(), never_sync(), error), nullptr);
  EXPECT_TRUE(contains(error, "format version 2")) << error;
  EXPECT_EQ(read_file(dir.file()), bytes);
}

TEST(PersistentQueue, an_empty_file_or_a_cut_short_header_starts_a_new_queue) {
  TempDir dir;
  write_file(dir.file("empty"), {});
  const Bytes header = file_header();
  write_file(dir.file("cut"), std::span(header).first(5));
  for (const char* name : {"empty", "cut"}) {
    SCOPED_TRACE(name);
    auto queue = open_queue(dir.file(name));
    ASSERT_TRUE(queue);
    EXPECT_EQ(queue->warnings().size(), name == std::string("cut") ? 1u : 0u);
    EXPECT_EQ(queue->append(frame_for(1)), 1u);
  }
}

TEST(PersistentQueue, a_second_open_of_the_same_file_is_refused_until_the_first_is_closed) {
  TempDir dir;
  auto first = open_queue(dir.file());
  ASSERT_TRUE(first);
  append_frames(*first, 1, 3);
  std::string error;
  EXPECT_EQ(PersistentQueue::open(dir.file(), never_sync(), error), nullptr);
  EXPECT_TRUE(contains(error, "is in use")) << error;
  EXPECT_EQ(first->append(frame_for(4)), 4u);  // the refused open changed nothing

  first.reset();
  auto second = open_queue(dir.file());
  ASSERT_TRUE(second);
  EXPECT_EQ(pending_frames(*second), expected_frames(1, 4));
}

TEST(PersistentQueue, the_lock_follows_the_file_when_a_rewrite_replaces_it) {
  TempDir dir;
  auto options = never_sync();
  options.drained_truncate_bytes = 0;
  auto queue = open_queue(dir.file(), options);
  ASSERT_TRUE(queue);
  append_frames(*queue, 1, 3);
  EXPECT_TRUE(queue->confirm(3));  // drained: the file is replaced by a new one
  EXPECT_EQ(queue->file_bytes(), header_bytes + base_record_bytes);
  std::string error;
  EXPECT_EQ(PersistentQueue::open(dir.file(), options, error), nullptr);
  EXPECT_TRUE(contains(error, "is in use")) << error;
}

TEST(PersistentQueue, a_leftover_compaction_file_is_removed_and_the_queue_kept) {
  TempDir dir;
  {
    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 5);
  }
  const Bytes half_written = file_header();
  write_file(dir.file() + ".compact", half_written);
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  EXPECT_FALSE(std::filesystem::exists(dir.file() + ".compact"));
  EXPECT_EQ(pending_frames(*queue), expected_frames(1, 5));
}

// ---- compaction ----------------------------------------------------------------------------

TEST(PersistentQueue, compaction_rewrites_the_file_with_the_pending_frames_and_their_ids) {
  TempDir dir;
  auto options = never_sync();
  options.compact_bytes = 8192;
  {
    auto queue = open_queue(dir.file(), options);
    ASSERT_TRUE(queue);
    append_frames(*queue, 1, 200, size_100);
    EXPECT_TRUE(queue->confirm(190)) << queue->error();
    EXPECT_EQ(queue->file_bytes(), header_bytes + base_record_bytes + records_bytes(10, 100));
    EXPECT_EQ(size_on_disk(dir.file()), queue->file_bytes());
    EXPECT_EQ(pending_frames(*queue), expected_frames(191, 200, size_100));
    EXPECT_EQ(queue->append(frame_for(201, 100)), 201u);
    EXPECT_FALSE(std::filesystem::exists(dir.file() + ".compact"));
  }
  auto queue = open_queue(dir.file(), options);
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  EXPECT_EQ(queue->confirmed_id(), 190u);
  EXPECT_EQ(pending_frames(*queue), expected_frames(191, 201, size_100));
}

TEST(PersistentQueue, compaction_waits_until_the_dead_records_outweigh_the_live_ones) {
  TempDir dir;
  auto options = never_sync();
  options.compact_bytes = 2048;
  auto queue = open_queue(dir.file(), options);
  ASSERT_TRUE(queue);
  append_frames(*queue, 1, 200, size_100);
  const std::uint64_t before = queue->file_bytes();
  EXPECT_TRUE(queue->confirm(50));  // 50 dead records, 150 live: copying them would not pay
  EXPECT_EQ(queue->file_bytes(), before + record_header_bytes);
  EXPECT_TRUE(queue->confirm(120));  // now the dead outweigh the live
  EXPECT_EQ(queue->file_bytes(), header_bytes + base_record_bytes + records_bytes(80, 100));
  EXPECT_EQ(pending_frames(*queue), expected_frames(121, 200, size_100));
}

// ---- fsync policies ------------------------------------------------------------------------

TEST(PersistentQueue, each_fsync_policy_keeps_every_frame_and_confirm_across_a_reopen) {
  for (FsyncPolicy policy : {FsyncPolicy::never, FsyncPolicy::batch, FsyncPolicy::always}) {
    SCOPED_TRACE(static_cast<int>(policy));
    TempDir dir;
    PersistentQueueOptions options;
    options.fsync = policy;
    options.drained_truncate_bytes = 0;
    {
      auto queue = open_queue(dir.file(), options);
      ASSERT_TRUE(queue);
      append_frames(*queue, 1, 20);
      EXPECT_TRUE(queue->confirm(5));
      EXPECT_TRUE(queue->sync());
      EXPECT_FALSE(queue->needs_sync());
    }
    {
      auto queue = open_queue(dir.file(), options);
      ASSERT_TRUE(queue);
      EXPECT_EQ(pending_frames(*queue), expected_frames(6, 20));
      EXPECT_TRUE(queue->confirm(20));  // drained: the rewrite path under this policy
      append_frames(*queue, 21, 22);
    }
    auto queue = open_queue(dir.file(), options);
    ASSERT_TRUE(queue);
    EXPECT_TRUE(queue->warnings().empty());
    EXPECT_EQ(pending_frames(*queue), expected_frames(21, 22));
  }
}

TEST(PersistentQueue, only_the_batch_policy_leaves_writes_waiting_for_a_sync) {
  TempDir dir;
  auto needs_sync_after_append = [&](FsyncPolicy policy, std::chrono::milliseconds interval) {
    PersistentQueueOptions options;
    options.fsync = policy;
    options.batch_interval = interval;
    auto queue = open_queue(dir.file(), options);
    EXPECT_NE(queue->append(frame_for(1)), 0u);
    return queue;
  };
  EXPECT_FALSE(needs_sync_after_append(FsyncPolicy::never, std::chrono::hours(1))->needs_sync());
  EXPECT_FALSE(needs_sync_after_append(FsyncPolicy::always, std::chrono::hours(1))->needs_sync());
  EXPECT_FALSE(needs_sync_after_append(FsyncPolicy::batch, std::chrono::hours(0))->needs_sync());
  auto batched = needs_sync_after_append(FsyncPolicy::batch, std::chrono::hours(1));
  EXPECT_TRUE(batched->needs_sync());
  EXPECT_TRUE(batched->sync());
  EXPECT_FALSE(batched->needs_sync());
}

// ---- failures ------------------------------------------------------------------------------

TEST(PersistentQueue, a_frame_over_the_record_limit_is_refused_and_the_queue_carries_on) {
  TempDir dir;
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  const Bytes huge(PersistentQueue::max_frame_bytes + 1);
  EXPECT_EQ(queue->append(huge), 0u);
  EXPECT_TRUE(contains(queue->error(), "over the queue's limit")) << queue->error();
  EXPECT_FALSE(queue->failed());
  EXPECT_EQ(queue->append(frame_for(1)), 1u);
}

// RLIMIT_FSIZE stands in for a full disk: the write that crosses it is cut short, the next
// fails with EFBIG. Done in a child so the limit does not outlive the test.
TEST(PersistentQueue, a_write_cut_short_by_a_full_disk_leaves_no_partial_record_behind) {
  TempDir dir;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string error;
    auto queue = PersistentQueue::open(dir.file(), never_sync(), error);
    if (!queue) ::_exit(2);
    for (std::uint64_t id = 1; id <= 3; ++id)
      if (queue->append(frame_for(id, 100)) != id) ::_exit(3);
    ::signal(SIGXFSZ, SIG_IGN);
    const rlimit limit{queue->file_bytes() + 67, queue->file_bytes() + 67};
    if (::setrlimit(RLIMIT_FSIZE, &limit) != 0) ::_exit(4);
    if (queue->append(frame_for(4, 100)) != 0) ::_exit(5);  // 117 bytes: does not fit
    if (!contains(queue->error(), "cannot write") || queue->failed()) ::_exit(6);
    if (size_on_disk(dir.file()) != queue->file_bytes()) ::_exit(7);
    if (queue->append(frame_for(4, 20)) != 4) ::_exit(8);  // 37 bytes: fits
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status);
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  Frames expected = expected_frames(1, 3, size_100);
  expected.emplace_back(4, frame_for(4, size_20(4)));
  EXPECT_EQ(pending_frames(*queue), expected);
}

// ---- kill -9 -------------------------------------------------------------------------------

TEST(PersistentQueue, frames_appended_before_a_kill_9_are_all_there_after_reopen) {
  TempDir dir;
  constexpr std::uint64_t frames = 1000;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // No sync, no close, no destructor: only what the kernel already holds survives.
    std::string error;
    auto queue = PersistentQueue::open(dir.file(), never_sync(), error);
    if (!queue) ::_exit(2);
    for (std::uint64_t id = 1; id <= frames; ++id)
      if (queue->append(frame_for(id)) != id) ::_exit(3);
    ::raise(SIGKILL);
    ::_exit(4);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << describe_status(status);
  auto queue = open_queue(dir.file());
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  EXPECT_EQ(pending_frames(*queue), expected_frames(1, frames));
}

// Records of 2 to 11 KiB span pages, so a kill can land between the pages of one write and
// leave a torn last record. Whatever the moment, the file must hold frames 1..k, intact, with
// k at least the last id the child reported as appended.
TEST(PersistentQueue, a_process_killed_while_appending_leaves_every_frame_it_had_appended) {
  for (std::uint64_t stop_after : {150u, 500u, 900u}) {
    SCOPED_TRACE("killed after " + std::to_string(stop_after) + " reported appends");
    TempDir dir;
    int reports[2];
    ASSERT_EQ(::pipe(reports), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(reports[0]);
      std::string error;
      auto queue = PersistentQueue::open(dir.file(), never_sync(), error);
      if (!queue) ::_exit(2);
      for (std::uint64_t id = 1;; ++id) {
        if (queue->append(frame_for(id, large_size(id))) != id) ::_exit(3);
        if (::write(reports[1], &id, sizeof id) != static_cast<ssize_t>(sizeof id)) ::_exit(4);
      }
    }
    ::close(reports[1]);
    std::uint64_t last_reported = 0;
    auto read_reports = [&](std::uint64_t until) {
      std::uint64_t id = 0;
      while (last_reported < until &&
             ::read(reports[0], &id, sizeof id) == static_cast<ssize_t>(sizeof id))
        last_reported = id;
    };
    read_reports(stop_after);
    ::kill(child, SIGKILL);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << describe_status(status);
    read_reports(UINT64_MAX);  // what the child wrote before the kill, up to end of file
    ::close(reports[0]);

    auto queue = open_queue(dir.file());
    ASSERT_TRUE(queue);
    EXPECT_LE(queue->warnings().size(), 1u);
    ASSERT_GE(queue->last_id(), last_reported);
    EXPECT_EQ(pending_frames(*queue), expected_frames(1, queue->last_id(), large_size));
  }
}

TEST(PersistentQueue, the_last_recorded_session_and_token_survive_reopen_and_rewrite) {
  TempDir dir;
  auto options = never_sync();
  options.drained_truncate_bytes = 4096;
  std::array<std::byte, PersistentQueue::token_bytes> first{}, second{};
  first.fill(std::byte{0x11});
  second.fill(std::byte{0x22});
  {
    auto queue = open_queue(dir.file(), options);
    ASSERT_TRUE(queue);
    EXPECT_EQ(queue->session_id(), "");
    append_frames(*queue, 1, 5, size_100);
    ASSERT_TRUE(queue->remember_session("feed/7", first)) << queue->error();
    const auto size = queue->file_bytes();
    ASSERT_TRUE(queue->remember_session("feed/7", first));
    EXPECT_EQ(queue->file_bytes(), size) << "the same session was recorded twice";
    ASSERT_TRUE(queue->remember_session("feed/7", second)) << queue->error();
    append_frames(*queue, 6, 60, size_100);
  }
  {
    auto queue = open_queue(dir.file(), options);
    ASSERT_TRUE(queue);
    EXPECT_TRUE(queue->warnings().empty());
    EXPECT_EQ(queue->session_id(), "feed/7");
    EXPECT_EQ(queue->session_token(), second);
    EXPECT_EQ(pending_frames(*queue), expected_frames(1, 60, size_100));
    // Drained past the threshold: the file is rewritten, and keeps the session.
    EXPECT_TRUE(queue->confirm(60)) << queue->error();
    EXPECT_LT(size_on_disk(dir.file()), 4096u);
  }
  auto queue = open_queue(dir.file(), options);
  ASSERT_TRUE(queue);
  EXPECT_TRUE(queue->warnings().empty());
  EXPECT_EQ(queue->session_id(), "feed/7");
  EXPECT_EQ(queue->session_token(), second);
  EXPECT_EQ(queue->append(frame_for(61)), 61u);
}

}  // namespace
}  // namespace brook::client_detail
