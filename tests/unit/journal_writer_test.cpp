// Unit tests of a shard's journal writer, through a real io_uring and real files: records
// become durable in order, turn by turn; segments roll and the scan reads them all back; a
// reopened journal continues its lsns; a write the file refuses stops the journal with why.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <filesystem>
#include <string>
#include <vector>

#include "../../runtime/broker/src/journal_scan.hpp"
#include "../../runtime/broker/src/journal_writer.hpp"
#include "brook/transport/reactor.hpp"

namespace brook::runtime::journal {
namespace {

namespace fs = std::filesystem;

std::uint64_t now_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

std::string payload_for(std::uint64_t lsn) { return "update " + std::to_string(lsn) + std::string(lsn % 97, '.'); }

struct Completions : transport::ReactorHandler {
  JournalWriter* writer = nullptr;
  transport::Reactor* reactor = nullptr;
  int moved = 0;
  int syncs = 0;
  void on_completion(const transport::Completion& c) override {
    if (c.token != JournalWriter::token) return;
    if (c.op == transport::Op::file_sync) ++syncs;
    if (writer->on_completion(*reactor, c, now_ns())) ++moved;
  }
};

class JournalWriterTest : public ::testing::Test {
 protected:
  JournalWriterTest() {
    char pattern[] = "/tmp/brook-journal-writer-XXXXXX";
    dir_ = ::mkdtemp(pattern);
    handler_.reactor = &reactor_;
  }
  ~JournalWriterTest() override { fs::remove_all(dir_); }

  std::unique_ptr<JournalWriter> open(SyncPolicy sync, std::uint64_t segment_bytes, ScanResult* scanned = nullptr) {
    ScanResult scan = scan_shard_journal(shard_directory(dir_, 0), 0, [](const RecordView&) {});
    EXPECT_EQ(scan.error, "");
    if (scanned) *scanned = scan;
    std::string error;
    auto writer = JournalWriter::open({.data_dir = dir_, .shard = 0, .sync = sync, .sync_interval_ms = 5,
                                       .segment_bytes = segment_bytes},
                                      scan, error);
    EXPECT_TRUE(writer) << error;
    handler_.writer = writer.get();
    return writer;
  }
  // Turns of `per_turn` records each, as a shard makes them, until `count` are durable. With
  // `one_write_per_turn` each turn waits for the previous one to be durable, so that a slow
  // disk (a busy machine) cannot batch many turns into one write.
  void write_turns(JournalWriter& writer, std::uint64_t count, std::uint64_t per_turn,
                   bool one_write_per_turn = false) {
    const std::uint64_t first = writer.last_lsn() + 1;
    std::uint64_t appended = 0;
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (writer.durable_lsn() < first + count - 1 && std::chrono::steady_clock::now() < give_up &&
           writer.failure().empty()) {
      for (std::uint64_t i = 0; i < per_turn && appended < count; ++i, ++appended) {
        const std::string p = payload_for(first + appended);
        EXPECT_EQ(writer.append(RecordType::update, std::as_bytes(std::span(p.data(), p.size()))),
                  first + appended);
      }
      writer.submit(reactor_, now_ns());
      reactor_.run_once(handler_, 1);
      while (one_write_per_turn && !writer.idle() && writer.failure().empty() &&
             std::chrono::steady_clock::now() < give_up)
        reactor_.run_once(handler_, 1);
    }
  }
  std::vector<std::uint64_t> read_back(ScanResult* result = nullptr) {
    std::vector<std::uint64_t> lsns;
    auto r = scan_shard_journal(shard_directory(dir_, 0), 0, [&](const RecordView& v) {
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(v.payload.data()), v.payload.size()), payload_for(v.lsn));
      lsns.push_back(v.lsn);
    });
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.repaired, "");
    if (result) *result = r;
    return lsns;
  }

  std::string dir_;
  transport::Reactor reactor_;
  Completions handler_;
};

TEST_F(JournalWriterTest, records_become_durable_in_order_and_read_back_whole) {
  auto writer = open(SyncPolicy::always, 64 << 20);
  write_turns(*writer, 5000, 37);
  EXPECT_EQ(writer->failure(), "");
  EXPECT_EQ(writer->durable_lsn(), 5000u);
  EXPECT_TRUE(writer->idle());
  // Group commit: far fewer flushes than records.
  EXPECT_LT(handler_.moved, 5000);
  auto lsns = read_back();
  ASSERT_EQ(lsns.size(), 5000u);
  for (std::size_t i = 0; i < lsns.size(); ++i) ASSERT_EQ(lsns[i], i + 1);
}

TEST_F(JournalWriterTest, segments_roll_by_size_and_the_scan_reads_across_them) {
  auto writer = open(SyncPolicy::interval, 8192);
  write_turns(*writer, 3000, 50, true);
  EXPECT_EQ(writer->durable_lsn(), 3000u);
  std::size_t segments = 0;
  for (const auto& e : fs::directory_iterator(shard_directory(dir_, 0)))
    if (parse_segment_name(e.path().filename().string())) ++segments;
  EXPECT_GT(segments, 10u);
  auto lsns = read_back();
  ASSERT_EQ(lsns.size(), 3000u);
  EXPECT_EQ(lsns.back(), 3000u);
}

TEST_F(JournalWriterTest, a_reopened_journal_continues_its_lsns_after_a_repaired_tail) {
  {
    auto writer = open(SyncPolicy::never, 64 << 20);
    write_turns(*writer, 100, 10);
    ASSERT_EQ(writer->durable_lsn(), 100u);
  }
  // A crash cut the last record short.
  ScanResult before;
  read_back(&before);
  fs::resize_file(before.last_segment, before.last_segment_bytes - 3);
  ScanResult scanned;
  std::vector<std::uint64_t> lsns;
  scanned = scan_shard_journal(shard_directory(dir_, 0), 0, [&](const RecordView& v) { lsns.push_back(v.lsn); });
  EXPECT_NE(scanned.repaired, "");
  EXPECT_EQ(scanned.last_lsn, 99u);

  auto writer = open(SyncPolicy::always, 64 << 20);
  EXPECT_EQ(writer->last_lsn(), 99u);
  write_turns(*writer, 50, 7);
  EXPECT_EQ(writer->durable_lsn(), 149u);
  auto all = read_back();
  ASSERT_EQ(all.size(), 149u);
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], i + 1);
}

// never: the kernel writes back when it likes, no fdatasync ever. interval: an fdatasync every
// sync_interval_ms beside the writes, which it never holds up.
TEST_F(JournalWriterTest, never_issues_no_fdatasync_and_interval_syncs_beside_the_writes) {
  {
    auto writer = open(SyncPolicy::never, 64 << 20);
    write_turns(*writer, 2000, 20, true);
    EXPECT_EQ(writer->durable_lsn(), 2000u);
    EXPECT_EQ(handler_.syncs, 0);
  }
  handler_.syncs = 0;
  auto writer = open(SyncPolicy::interval, 64 << 20);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t written = 0;
  while (std::chrono::steady_clock::now() - start < std::chrono::milliseconds(60)) {
    write_turns(*writer, 10, 10, true);
    written += 10;
  }
  EXPECT_EQ(writer->durable_lsn(), 2000u + written);
  EXPECT_GE(handler_.syncs, 1);
  // Far fewer flushes than writes: one per interval (5 ms), not one per write.
  EXPECT_LT(handler_.syncs, static_cast<int>(written / 10));
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!writer->idle() && std::chrono::steady_clock::now() < give_up) reactor_.run_once(handler_, 1);
}

TEST_F(JournalWriterTest, a_write_the_file_refuses_stops_the_journal_and_says_why) {
  auto writer = open(SyncPolicy::always, 64 << 20);
  write_turns(*writer, 10, 10);
  ASSERT_EQ(writer->durable_lsn(), 10u);
  // No more room: the file may not grow (EFBIG, as ENOSPC would be for a full disk).
  std::signal(SIGXFSZ, SIG_IGN);
  rlimit old{};
  ::getrlimit(RLIMIT_FSIZE, &old);
  rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  write_turns(*writer, 1000, 100);
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, SIG_DFL);
  EXPECT_NE(writer->failure(), "");
  EXPECT_NE(writer->failure().find("journal write to"), std::string::npos) << writer->failure();
  EXPECT_LT(writer->durable_lsn(), 1010u);
  EXPECT_GE(writer->durable_lsn(), 10u);
  // Everything it called durable is there, whole, and the cut tail is repaired.
  std::vector<std::uint64_t> lsns;
  auto r = scan_shard_journal(shard_directory(dir_, 0), 0, [&](const RecordView& v) { lsns.push_back(v.lsn); });
  EXPECT_EQ(r.error, "");
  EXPECT_GE(lsns.size(), writer->durable_lsn());
}


// The segment index: from the position locate(lsn) gives, reading forward finds record `lsn`
// within the same segment, while the journal is written and after it is reopened; removing
// the segments before an lsn keeps the one that holds it.
TEST_F(JournalWriterTest, the_segment_index_finds_each_record_from_a_nearby_mark) {
  auto find = [](JournalWriter& writer, std::uint64_t lsn) -> std::uint64_t {
    auto position = writer.segments().locate(lsn);
    if (!position) return ~0ull;
    std::vector<std::byte> bytes(position->bytes_left);
    if (::pread(position->fd, bytes.data(), bytes.size(), static_cast<off_t>(position->offset)) !=
        static_cast<ssize_t>(bytes.size()))
      return ~0ull;
    std::size_t at = 0;
    while (at < bytes.size()) {
      RecordView record;
      if (read_record(std::span(bytes).subspan(at), record) != RecordCheck::ok) return ~0ull;
      if (record.lsn == lsn) return at;  // bytes read before it
      at += record.bytes;
    }
    return ~0ull;
  };
  {
    auto writer = open(SyncPolicy::interval, 256 << 10);
    write_turns(*writer, 20000, 500, true);
    ASSERT_EQ(writer->durable_lsn(), 20000u);
    EXPECT_GT(writer->segments().size(), 4u);
    for (std::uint64_t lsn : {1ull, 2ull, 999ull, 5000ull, 12345ull, 19999ull, 20000ull}) {
      const std::uint64_t skipped = find(*writer, lsn);
      ASSERT_NE(skipped, ~0ull) << lsn;
      // A mark at least every 64 KiB: what is read before the record is less than that and
      // one record (under 200 bytes here).
      EXPECT_LT(skipped, (64u << 10) + 200) << lsn;
    }
  }
  auto writer = open(SyncPolicy::interval, 256 << 10);
  for (std::uint64_t lsn : {1ull, 7000ull, 20000ull}) {
    const std::uint64_t skipped = find(*writer, lsn);
    ASSERT_NE(skipped, ~0ull) << "after a reopen: " << lsn;
    EXPECT_LT(skipped, (64u << 10) + 200) << lsn;
  }
  const std::size_t before = writer->segments().size();
  ASSERT_GT(writer->segments().remove_before(12345), 0);
  EXPECT_LT(writer->segments().size(), before);
  EXPECT_NE(find(*writer, 12345), ~0ull) << "the segment holding the lsn went";
  EXPECT_EQ(find(*writer, 1), ~0ull) << "lsn 1's segment stayed";
}

}  // namespace
}  // namespace brook::runtime::journal
