// Fuzz target: whatever a crash or a bad disk leaves in a journal segment, the start-up scan
// reads only what was written: the records it hands on are the first ones of those written,
// whole and in order; a tail cut at any byte is repaired (the file truncated just after the
// last whole record) and never refused; and when it refuses, it truncates nothing.
//
// The input is cut into record payloads (each piece's length is its first byte); they are
// written as a valid segment, then the last three input bytes choose one damage: none, a cut
// at some offset, a flipped byte, or zeros over the tail.
//
// Built with libFuzzer under clang (-DBROOK_FUZZ=ON); the gcc build links it with
// fuzz_replay_main.cpp, which feeds it generated inputs.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../../runtime/broker/src/journal_format.hpp"
#include "../../runtime/broker/src/journal_scan.hpp"

namespace {

namespace fs = std::filesystem;
using namespace brook::runtime::journal;
using Bytes = std::vector<std::byte>;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "journal_scan_fuzz: invariant violated: %s\n", what);
  std::abort();
}

const std::string& scratch_dir() {
  static const std::string dir = [] {
    char pattern[] = "/tmp/brook-journal-fuzz-XXXXXX";
    const char* made = ::mkdtemp(pattern);
    if (!made) violated("cannot make a scratch directory");
    return std::string(made);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t damage = data[size - 3];
  const std::size_t where = std::size_t{data[size - 2]} << 8 | data[size - 1];
  size -= 3;

  // The segment as written: the input's pieces as records with lsns from 7.
  constexpr std::uint64_t first_lsn = 7;
  Bytes segment(segment_header_bytes);
  write_segment_header(segment.data(), {.shard = 0, .first_lsn = first_lsn});
  std::vector<Bytes> payloads;
  std::vector<std::size_t> ends;  // where each record ends
  for (std::size_t at = 0; at < size;) {
    const std::size_t length = std::min<std::size_t>(data[at], size - at - 1);
    const auto* piece = reinterpret_cast<const std::byte*>(data + at + 1);
    payloads.emplace_back(piece, piece + length);
    append_record(segment, first_lsn + payloads.size() - 1, RecordType::topic, payloads.back());
    ends.push_back(segment.size());
    at += 1 + length;
  }

  // One damage, somewhere after the header.
  const std::size_t records_bytes = segment.size() - segment_header_bytes;
  const std::size_t at = segment_header_bytes + where % (records_bytes + 1);  // may be the end
  std::size_t cut = segment.size();
  switch (damage % 4) {
    case 0: break;
    case 1: cut = at; break;
    case 2:
      if (at < segment.size()) segment[at] ^= std::byte{0x40};
      break;
    case 3: std::fill(segment.begin() + static_cast<std::ptrdiff_t>(at), segment.end(), std::byte{0}); break;
  }
  segment.resize(cut);

  const std::string path = scratch_dir() + "/" + segment_name(first_lsn);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(segment.data()), static_cast<std::streamsize>(segment.size()));
  }
  std::size_t seen = 0;
  auto result = scan_shard_journal(scratch_dir(), 0, [&](const RecordView& r) {
    if (seen >= payloads.size()) violated("more records than were written");
    if (r.lsn != first_lsn + seen) violated("a record out of order");
    if (r.payload.size() != payloads[seen].size() ||
        !std::equal(r.payload.begin(), r.payload.end(), payloads[seen].begin()))
      violated("a record that was not written");
    ++seen;
  });
  const auto size_after = fs::file_size(path);
  if (!result.error.empty()) {
    if (size_after != segment.size()) violated("a refusing scan changed the file");
    if (damage % 4 == 1) violated("a cut tail was refused");
  } else {
    const std::size_t end_of_good = seen == 0 ? segment_header_bytes : ends[seen - 1];
    if (size_after != end_of_good) violated("the file does not end after the last good record");
    if (damage % 4 == 0 && seen != payloads.size()) violated("an intact segment lost records");
    if (damage % 4 == 1) {
      std::size_t whole = 0;
      while (whole < ends.size() && ends[whole] <= cut) ++whole;
      if (seen != whole) violated("a cut tail lost a whole record");
    }
  }
  fs::remove(path);
  return 0;
}
