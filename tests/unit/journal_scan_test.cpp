// Unit tests of the journal's format and of the start-up scan: records read back exactly,
// a torn tail repaired and reported, damage that would lose intact records refused with the
// file, offset and lsn.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../../runtime/broker/src/journal_format.hpp"
#include "../../runtime/broker/src/journal_scan.hpp"

namespace brook::runtime::journal {
namespace {

namespace fs = std::filesystem;

std::span<const std::byte> bytes_of(std::string_view text) {
  return std::as_bytes(std::span(text.data(), text.size()));
}

TEST(JournalFormat, crc32c_is_castagnolis) {
  EXPECT_EQ(crc32c(bytes_of("123456789")), 0xE3069283u);
  EXPECT_EQ(crc32c(bytes_of("")), 0u);
  // In pieces, continuing from the crc so far, as for one piece.
  EXPECT_EQ(crc32c(bytes_of("6789"), crc32c(bytes_of("12345"))), 0xE3069283u);
}

TEST(JournalFormat, a_record_reads_back_and_any_flipped_bit_is_seen) {
  std::vector<std::byte> out;
  append_record(out, 42, RecordType::update, bytes_of("odds 2.75"));
  RecordView r;
  ASSERT_EQ(read_record(out, r), RecordCheck::ok);
  EXPECT_EQ(r.lsn, 42u);
  EXPECT_EQ(r.type, RecordType::update);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.payload.data()), r.payload.size()), "odds 2.75");
  EXPECT_EQ(r.bytes, out.size());
  EXPECT_EQ(read_record(std::span(out).first(out.size() - 1), r), RecordCheck::incomplete);
  for (std::size_t i = 4; i < out.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      auto damaged = out;
      damaged[i] ^= std::byte(1u << bit);
      EXPECT_NE(read_record(damaged, r), RecordCheck::ok) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(JournalFormat, segment_names_sort_by_first_lsn) {
  EXPECT_EQ(segment_name(1), "00000000000000000001.journal");
  EXPECT_EQ(parse_segment_name(segment_name(123456789)), 123456789u);
  EXPECT_FALSE(parse_segment_name("00000000000000000001.journal.tmp"));
  EXPECT_FALSE(parse_segment_name("0000000000000000000x.journal"));
  EXPECT_FALSE(parse_segment_name("index"));
}

class JournalScan : public ::testing::Test {
 protected:
  JournalScan() {
    char pattern[] = "/tmp/brook-journal-XXXXXX";
    dir_ = ::mkdtemp(pattern);
  }
  ~JournalScan() override { fs::remove_all(dir_); }

  // A segment of `count` records from `first`, each payload "value N"; returns its path
  // and the offset of each record.
  std::string write_segment(std::uint64_t first, std::uint64_t count, std::vector<std::size_t>* offsets = nullptr) {
    std::vector<std::byte> out(segment_header_bytes);
    write_segment_header(out.data(), {.shard = 0, .first_lsn = first});
    for (std::uint64_t lsn = first; lsn < first + count; ++lsn) {
      if (offsets) offsets->push_back(out.size());
      append_record(out, lsn, RecordType::update, bytes_of("value " + std::to_string(lsn)));
    }
    const std::string path = dir_ + "/" + segment_name(first);
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(out.data()),
                                                static_cast<std::streamsize>(out.size()));
    return path;
  }
  ScanResult scan(std::vector<std::uint64_t>& lsns) {
    return scan_shard_journal(dir_, 0, [&](const RecordView& r) {
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(r.payload.data()), r.payload.size()),
                "value " + std::to_string(r.lsn));
      lsns.push_back(r.lsn);
    });
  }
  std::string dir_;
};

TEST_F(JournalScan, every_record_of_every_segment_comes_back_in_lsn_order) {
  write_segment(1, 100);
  const std::string last = write_segment(101, 50);
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.repaired, "");
  ASSERT_EQ(lsns.size(), 150u);
  for (std::size_t i = 0; i < lsns.size(); ++i) EXPECT_EQ(lsns[i], i + 1);
  EXPECT_EQ(result.last_lsn, 150u);
  EXPECT_EQ(result.last_segment, last);
  EXPECT_EQ(result.last_segment_bytes, fs::file_size(last));
}

TEST_F(JournalScan, a_missing_directory_is_an_empty_journal) {
  std::vector<std::uint64_t> lsns;
  auto result = scan_shard_journal(dir_ + "/shard-7", 7, [&](const RecordView& r) { lsns.push_back(r.lsn); });
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(result.last_lsn, 0u);
  EXPECT_TRUE(lsns.empty());
}

TEST_F(JournalScan, a_tail_cut_mid_record_is_truncated_at_the_last_good_record_and_reported) {
  std::vector<std::size_t> offsets;
  const std::string path = write_segment(1, 20, &offsets);
  const auto cut = offsets[19] + 10;  // the 20th record, cut 10 bytes in
  fs::resize_file(path, cut);
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(lsns.size(), 19u);
  EXPECT_EQ(result.last_lsn, 19u);
  EXPECT_EQ(fs::file_size(path), offsets[19]);
  EXPECT_EQ(result.last_segment_bytes, offsets[19]);
  EXPECT_NE(result.repaired.find("dropped 10 bytes"), std::string::npos) << result.repaired;
  EXPECT_NE(result.repaired.find("lsn 20"), std::string::npos) << result.repaired;
  // Repaired once: the next scan finds nothing to do.
  lsns.clear();
  EXPECT_EQ(scan(lsns).repaired, "");
  EXPECT_EQ(lsns.size(), 19u);
}

TEST_F(JournalScan, a_zeroed_tail_is_a_torn_write_too) {
  const std::string path = write_segment(1, 5);
  const auto good = fs::file_size(path);
  std::ofstream(path, std::ios::binary | std::ios::app) << std::string(4096, '\0');
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(lsns.size(), 5u);
  EXPECT_EQ(fs::file_size(path), good);
}

TEST_F(JournalScan, a_flipped_byte_in_the_middle_is_refused_with_where_and_nothing_is_dropped) {
  std::vector<std::size_t> offsets;
  const std::string path = write_segment(1, 20, &offsets);
  const auto size = fs::file_size(path);
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(offsets[7] + record_header_bytes + 2));
    f.put('X');
  }
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_NE(result.error.find(path + " at offset " + std::to_string(offsets[7]) + " (lsn 8)"),
            std::string::npos) << result.error;
  EXPECT_NE(result.error.find("intact records follow"), std::string::npos) << result.error;
  EXPECT_EQ(fs::file_size(path), size) << "nothing is truncated when the scan refuses";
}

// A publisher's value may hold any bytes, a well-formed journal record among them: a crash
// that cuts such a value short must not look like damage with intact records after it.
TEST_F(JournalScan, a_record_inside_a_value_cut_by_the_crash_is_no_reason_to_refuse) {
  std::vector<std::byte> forged;
  append_record(forged, 2, RecordType::topic, bytes_of("value 2"));
  std::vector<std::byte> value(100, std::byte{'x'});
  value.insert(value.begin() + 10, forged.begin(), forged.end());
  value.insert(value.end(), 50, std::byte{'y'});
  std::vector<std::byte> out(segment_header_bytes);
  write_segment_header(out.data(), {.shard = 0, .first_lsn = 1});
  append_record(out, 1, RecordType::topic, value);
  const std::size_t cut = segment_header_bytes + record_header_bytes + 10 + forged.size() + 5;
  out.resize(cut);
  const std::string path = dir_ + "/" + segment_name(1);
  std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(out.data()),
                                              static_cast<std::streamsize>(out.size()));
  auto result = scan_shard_journal(dir_, 0, [](const RecordView&) {});
  EXPECT_EQ(result.error, "");
  EXPECT_NE(result.repaired, "");
  EXPECT_EQ(fs::file_size(path), segment_header_bytes);
}

TEST_F(JournalScan, a_hit_length_field_with_records_after_it_is_refused) {
  std::vector<std::size_t> offsets;
  const std::string path = write_segment(1, 20, &offsets);
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(offsets[4] + 1));
    f.put('\x7f');  // the length now reaches past the end of the file
  }
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_NE(result.error.find("(lsn 5)"), std::string::npos) << result.error;
  EXPECT_EQ(lsns.size(), 4u);
}

TEST_F(JournalScan, damage_in_a_segment_that_is_not_the_last_is_refused) {
  std::vector<std::size_t> offsets;
  const std::string first = write_segment(1, 10, &offsets);
  write_segment(11, 10);
  fs::resize_file(first, offsets[9] + 5);
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_NE(result.error.find("not the last"), std::string::npos) << result.error;
}

TEST_F(JournalScan, missing_records_between_segments_are_refused) {
  write_segment(1, 10);
  write_segment(15, 10);
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_NE(result.error.find("where lsn 11 was due: records are missing"), std::string::npos)
      << result.error;
}

TEST_F(JournalScan, a_last_segment_shorter_than_its_header_is_removed) {
  const std::string first = write_segment(1, 10);
  const std::string second = dir_ + "/" + segment_name(11);
  std::ofstream(second, std::ios::binary) << "BROOK";
  std::vector<std::uint64_t> lsns;
  auto result = scan(lsns);
  EXPECT_EQ(result.error, "");
  EXPECT_EQ(lsns.size(), 10u);
  EXPECT_FALSE(fs::exists(second));
  EXPECT_NE(result.repaired.find("removed " + second), std::string::npos) << result.repaired;
  EXPECT_EQ(result.last_segment, first);
}

}  // namespace
}  // namespace brook::runtime::journal
