#pragma once
// Binary deltas between two versions of a value, so that an update can carry only what changed.
//
//   delta := checksum:u64 LE (XXH3_64bits of the new value)  op*  (until the end of the delta)
//   op    := varint(length << 1 | 0)  zigzag_varint(offset - expected)   copy old[offset, +length)
//          | varint(length << 1 | 1)  byte[length]                        insert literal bytes
//
// varint is unsigned LEB128 of at most 10 bytes; zigzag is (n << 1) ^ (n >> 63). `expected`
// starts at 0 and becomes offset + length after each copy, so that "copy on from where the last
// copy ended" costs a one-byte offset. Lengths are never 0.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace brook::codec {

inline constexpr std::size_t delta_checksum_bytes = 8;

std::uint64_t value_checksum(std::span<const std::byte> value) noexcept;  // XXH3_64bits

// Computes deltas. Owns a scratch hash index of old positions that it keeps between calls, so
// that encoding allocates nothing once warm (it grows to at most 1 MiB). One per thread.
class DeltaEncoder {
 public:
  // Writes a delta turning `old_value` into `new_value` to out[0..), at most out.size() bytes.
  // Returns the delta's size, or 0 when it would not fit in out (a caller passes a capacity
  // below the new value's size: a delta that is not smaller than the value is not worth sending).
  std::size_t encode(std::span<const std::byte> old_value, std::span<const std::byte> new_value,
                     std::span<std::byte> out);

 private:
  // Per hash bucket the latest indexed slot + 1 (0: none); per slot the one before it in the
  // same bucket. Only encode's matcher (delta.cpp) reads them.
  std::vector<std::uint32_t> heads_, chain_;
};

enum class DeltaError : std::uint8_t {
  none,
  malformed,
  copy_out_of_range,
  too_large,
  checksum_mismatch,
};
std::string_view to_string(DeltaError e);

// Applies `delta` to `old_value`, writing the new value into `out` (cleared first; its capacity
// is reused; left empty on refusal). Refuses, without reading or writing out of bounds, a
// truncated checksum or op, a bad varint or a zero length (malformed), a copy outside old_value,
// a result longer than max_bytes (too_large) and a result whose checksum differs.
DeltaError apply_delta(std::span<const std::byte> old_value, std::span<const std::byte> delta,
                       std::vector<std::byte>& out, std::size_t max_bytes);

}  // namespace brook::codec
