// Fuzz target: whatever delta a peer sends, apply_delta stays inside the old value, the delta
// and max_bytes, and accepts only results whose checksum matches; and whatever two values it is
// given, DeltaEncoder produces a delta that applies back to the new one.
//
// The first two input bytes choose where the old value ends; the rest is both a delta to apply
// and a new value to encode. A second new value splices that rest into the old one, so that
// random inputs also give the matcher similar values to work on.
//
// Built with libFuzzer under clang (-DBROOK_FUZZ=ON); the gcc build links it with
// fuzz_replay_main.cpp, which feeds it generated inputs.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <vector>

#include "brook/codec/delta.hpp"

namespace {

using namespace brook::codec;
using Bytes = std::vector<std::byte>;

constexpr std::size_t max_result_bytes = 1 << 20;

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "delta_apply_fuzz: invariant violated: %s\n", what);
  std::abort();
}

std::uint64_t load_checksum(std::span<const std::byte> delta) {
  std::uint64_t sum;
  std::memcpy(&sum, delta.data(), sizeof sum);
  return sum;
}

// encode must succeed with room to spare: a copy is only chosen where it is shorter than its
// bytes, so even with the literal headers it splits off a delta stays under four times the
// value plus its fixed part.
void check_round_trip(DeltaEncoder& encoder, std::span<const std::byte> old_value,
                      std::span<const std::byte> new_value, Bytes& delta, Bytes& out) {
  delta.resize(new_value.size() + 64);
  std::size_t size = encoder.encode(old_value, new_value, delta);
  if (size > delta.size()) violated("encode wrote past the room it was given");
  if (size == 0) {
    delta.resize(4 * new_value.size() + 64);
    size = encoder.encode(old_value, new_value, delta);
    if (size == 0) violated("encode gave up with room for four times the value");
  }
  if (size < delta_checksum_bytes) violated("a delta shorter than its checksum");
  const auto d = std::span<const std::byte>(delta).first(size);
  if (apply_delta(old_value, d, out, new_value.size()) != DeltaError::none)
    violated("a delta from encode does not apply");
  if (!std::equal(out.begin(), out.end(), new_value.begin(), new_value.end()))
    violated("a delta from encode applies to another value");
  // One byte less room than the result needs must be refused, not overrun.
  if (!new_value.empty() &&
      apply_delta(old_value, d, out, new_value.size() - 1) == DeltaError::none)
    violated("apply ignored max_bytes");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static DeltaEncoder encoder;  // reused across inputs, as a shard's encoder is
  static Bytes out, delta, spliced;
  std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  if (input.size() < 2) return 0;
  const std::size_t split = (static_cast<std::size_t>(data[0]) | std::size_t{data[1]} << 8) %
                            (input.size() - 1);
  const auto old_value = input.subspan(2, split);
  const auto rest = input.subspan(2 + split);

  // The rest as a delta.
  const DeltaError e = apply_delta(old_value, rest, out, max_result_bytes);
  if (e == DeltaError::none) {
    if (out.size() > max_result_bytes) violated("result beyond max_bytes");
    if (value_checksum(out) != load_checksum(rest)) violated("accepted a wrong checksum");
  } else if (!out.empty()) {
    violated("a refused delta left bytes in out");
  }

  // The rest as a new value, and spliced into the old one.
  check_round_trip(encoder, old_value, rest, delta, out);
  const std::size_t at = (data[0] * 7u + data[1]) % (split + 1);
  const auto head = old_value.first(at), tail = old_value.subspan(at);
  const auto inserted = rest.first(rest.size() / 4);
  spliced.assign(head.begin(), head.end());
  spliced.insert(spliced.end(), inserted.begin(), inserted.end());
  spliced.insert(spliced.end(), tail.begin(), tail.end());
  check_round_trip(encoder, old_value, spliced, delta, out);
  return 0;
}
