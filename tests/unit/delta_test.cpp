// Unit tests of the binary delta codec: apply(old, encode(old, new)) == new for random and
// edited pairs; deltas stay small for the updates Brook carries (odds JSON with a field or two
// changed, binary records, strings); encode gives up when the delta would not fit; inputs that
// defeat naive matchers finish; and apply refuses every kind of broken delta with its own error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "brook/codec/delta.hpp"

namespace brook::codec {
namespace {

using Bytes = std::vector<std::byte>;

Bytes bytes(std::string_view s) {
  auto b = std::as_bytes(std::span(s.data(), s.size()));
  return {b.begin(), b.end()};
}

Bytes random_bytes(std::mt19937_64& rng, std::size_t n) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng());
  return b;
}

// A few overwrite, insert and delete runs at random places. `budget` (when given) gets a bound
// on a good delta's size: the checksum, and per edit its new bytes and a few ops' worth.
Bytes mutated(std::mt19937_64& rng, Bytes b, std::size_t* budget = nullptr) {
  if (budget) *budget = delta_checksum_bytes + 8;
  for (std::size_t edits = 1 + rng() % 4; edits > 0; --edits) {
    const std::size_t at = b.empty() ? 0 : rng() % (b.size() + 1);
    const std::size_t run = 1 + rng() % (rng() % 4 == 0 ? 200 : 12);
    if (budget) *budget += run + 24;
    switch (rng() % 3) {
      case 0:  // overwrite
        for (std::size_t k = at; k < std::min(b.size(), at + run); ++k)
          b[k] = static_cast<std::byte>(rng());
        break;
      case 1: {  // insert
        Bytes noise = random_bytes(rng, run);
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), noise.begin(), noise.end());
        break;
      }
      default:  // delete
        b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
                b.begin() + static_cast<std::ptrdiff_t>(std::min(b.size(), at + run)));
        break;
    }
  }
  return b;
}

// Encodes with room for new.size() + 64 bytes; returns the delta (empty when encode gave up).
Bytes encode(DeltaEncoder& encoder, const Bytes& old_value, const Bytes& new_value) {
  Bytes delta(new_value.size() + 64);
  delta.resize(encoder.encode(old_value, new_value, delta));
  return delta;
}

// Encodes, checks the delta applies back to new_value, and returns its size.
std::size_t round_trip(DeltaEncoder& encoder, const Bytes& old_value, const Bytes& new_value) {
  Bytes delta = encode(encoder, old_value, new_value);
  EXPECT_FALSE(delta.empty()) << "encode gave up";
  Bytes out;
  EXPECT_EQ(apply_delta(old_value, delta, out, new_value.size()), DeltaError::none);
  EXPECT_TRUE(out == new_value) << "round trip differs";
  return delta.size();
}

std::string replaced(std::string s, std::string_view from, std::string_view to) {
  s.replace(s.find(from), from.size(), to);
  return s;
}

const std::string odds =
    R"({"Home_Spread":"+3.5","Home_Odds":"+120","Away_Spread":"-3.5","Away_Odds":"-140",)"
    R"("Total":"45.5","Over_Odds":"-110","Under_Odds":"-110"})";

// ---- round trips -------------------------------------------------------------------------

TEST(Delta, random_and_edited_pairs_round_trip) {
  std::mt19937_64 rng(20261122);
  DeltaEncoder encoder;  // one encoder throughout, as a shard keeps it
  for (int n = 0; n < 600; ++n) {
    const std::size_t size = rng() % 4 == 0 ? rng() % 64 : rng() % 8193;
    Bytes old_value = random_bytes(rng, size);
    std::size_t budget = 0;
    Bytes edited = mutated(rng, old_value, &budget);
    EXPECT_LE(round_trip(encoder, old_value, edited), budget) << "old value of " << size << " B";

    // Unrelated values: encode may give up, but what it produces must apply.
    Bytes other = random_bytes(rng, rng() % 8193);
    Bytes delta = encode(encoder, old_value, other);
    if (!delta.empty()) {
      Bytes out;
      ASSERT_EQ(apply_delta(old_value, delta, out, other.size()), DeltaError::none);
      ASSERT_TRUE(out == other);
    }
  }
}

TEST(Delta, edits_of_repetitive_text_round_trip) {
  // Low-entropy values give the hash table many equal keys and the matcher many false starts.
  std::mt19937_64 rng(7);
  DeltaEncoder encoder;
  for (int n = 0; n < 300; ++n) {
    std::string text;
    const std::string_view words[] = {"ab", "abc", "\"x\":1,", "0000", "a"};
    for (const std::size_t size = rng() % 6000; text.size() < size;)
      text += words[rng() % std::size(words)];
    Bytes old_value = bytes(text);
    round_trip(encoder, old_value, mutated(rng, old_value));
  }
}

// ---- sizes of typical updates --------------------------------------------------------------

TEST(Delta, odds_json_with_one_or_two_fields_changed_gives_a_tiny_delta) {
  DeltaEncoder encoder;
  const std::string one = replaced(odds, "+120", "+125");
  const std::string two = replaced(one, R"("Over_Odds":"-110")", R"("Over_Odds":"-115")");
  const std::string longer = replaced(odds, "\"-3.5\"", "\"-10.5\"");  // changes the length
  const std::size_t one_size = round_trip(encoder, bytes(odds), bytes(one));
  const std::size_t two_size = round_trip(encoder, bytes(odds), bytes(two));
  const std::size_t longer_size = round_trip(encoder, bytes(odds), bytes(longer));
  EXPECT_LE(one_size, 18u);
  EXPECT_LE(two_size, 25u);
  EXPECT_LE(longer_size, 20u);
  std::printf("odds JSON (%zu B): one field %zu B, two fields %zu B, length change %zu B\n",
              odds.size(), one_size, two_size, longer_size);
}

// {"Market_000":"+120","Market_001":"-3.5",...}: the same keys over and over, which fills the
// matcher's hash buckets with positions where only a key matches.
using Fields = std::vector<std::pair<std::string, std::string>>;
std::string json_of(const Fields& fields) {
  std::string s = "{";
  for (const auto& [key, value] : fields) {
    if (s.size() > 1) s += ',';
    s.append("\"").append(key).append("\":\"").append(value).append("\"");
  }
  return s += '}';
}

TEST(Delta, four_kilobyte_json_with_fields_changing_length_gives_a_small_delta) {
  DeltaEncoder encoder;
  Fields fields;
  for (std::size_t i = 0; i < 215; ++i)
    fields.emplace_back("Market_" + std::to_string(1000 + i).substr(1),
                        std::to_string(100 + i * 37 % 400));
  const std::string old_text = json_of(fields);
  ASSERT_GE(old_text.size(), 4000u);  // about 4 KiB

  // Each a different length from the value it replaces.
  fields[20].second = "-3.5", fields[90].second = "+1205", fields[170].second = "45";
  const std::size_t changed = round_trip(encoder, bytes(old_text), bytes(json_of(fields)));
  EXPECT_LE(changed, 8u + 3 * (6 + 4) + 6);

  // A field inserted (new bytes, everything after it shifted) and another removed.
  fields.insert(fields.begin() + 50, {"Status", "Suspended"});
  fields.erase(fields.begin() + 150);
  const std::size_t moved = round_trip(encoder, bytes(old_text), bytes(json_of(fields)));
  EXPECT_LE(moved, changed + 40);
  std::printf("215-field JSON (%zu B): three fields changed %zu B, plus one inserted and one "
              "removed %zu B\n", old_text.size(), changed, moved);
}

TEST(Delta, binary_record_with_a_few_fields_changed_costs_about_the_fields) {
  std::mt19937_64 rng(3);
  DeltaEncoder encoder;
  const Bytes record = random_bytes(rng, 1024);
  Bytes changed = record;
  for (std::size_t field : {5u, 40u, 97u}) {  // three 8-byte fields
    for (std::size_t k = 0; k < 8; ++k) changed[field * 8 + k] = static_cast<std::byte>(rng());
  }
  EXPECT_LE(round_trip(encoder, record, changed), 8u + 3 * (1 + 8 + 3) + 3);
}

TEST(Delta, strings_with_words_inserted_and_removed) {
  DeltaEncoder encoder;
  const std::string text =
      "Match 17: Arsenal v Spurs, kick-off 15:00, referee M. Oliver, attendance 60,260.";
  EXPECT_LE(round_trip(encoder, bytes(text), bytes(replaced(text, "15:00", "17:30 (delayed)"))),
            8u + 20);
  EXPECT_LE(round_trip(encoder, bytes(text), bytes(replaced(text, " referee M. Oliver,", ""))),
            8u + 6);
  // A block moved: the old tail copied to the front.
  EXPECT_LE(round_trip(encoder, bytes(text), bytes(text.substr(40) + text.substr(0, 40))), 8u + 8);
}

TEST(Delta, identical_and_empty_values) {
  DeltaEncoder encoder;
  EXPECT_LE(round_trip(encoder, bytes(odds), bytes(odds)), 8u + 3);
  EXPECT_EQ(round_trip(encoder, bytes(odds), {}), delta_checksum_bytes);
  EXPECT_LE(round_trip(encoder, {}, bytes(odds)), 8u + 2 + odds.size());
  EXPECT_EQ(round_trip(encoder, {}, {}), delta_checksum_bytes);
  EXPECT_LE(round_trip(encoder, bytes("ab"), bytes("abc")), 8u + 4);
}

TEST(Delta, encode_returns_0_when_the_delta_does_not_fit) {
  DeltaEncoder encoder;
  const Bytes old_value = bytes(odds);
  const Bytes new_value = bytes(replaced(odds, "+120", "+125"));
  Bytes out(64);
  const std::size_t size = encoder.encode(old_value, new_value, out);
  ASSERT_GT(size, 0u);
  for (std::size_t room = 0; room < size; ++room)
    EXPECT_EQ(encoder.encode(old_value, new_value, std::span(out).first(room)), 0u) << room;
  EXPECT_EQ(encoder.encode(old_value, new_value, std::span(out).first(size)), size);

  // Unrelated values give up once the literal outgrows the room, not after the whole value.
  std::mt19937_64 rng(11);
  Bytes a = random_bytes(rng, 4096), b = random_bytes(rng, 4096);
  Bytes small(b.size() - 1);
  EXPECT_EQ(encoder.encode(a, b, small), 0u);
}

// ---- inputs that defeat naive matchers ----------------------------------------------------

TEST(Delta, megabyte_values_of_zeros_and_of_noise_finish_and_round_trip) {
  DeltaEncoder encoder;
  Bytes zeros(1 << 20);
  Bytes one_changed = zeros;
  one_changed[123457] = std::byte{1};
  EXPECT_LE(round_trip(encoder, zeros, one_changed), 8u + 12);

  // Zeros in the middle, between changed ends: the matcher itself meets the run.
  Bytes framed = zeros;
  framed.front() = framed.back() = std::byte{9};
  framed.insert(framed.begin() + 1000, std::byte{7});
  EXPECT_LE(round_trip(encoder, zeros, framed), 8u + 40);

  std::mt19937_64 rng(5);
  const Bytes a = random_bytes(rng, 1 << 20), b = random_bytes(rng, 1 << 20);
  round_trip(encoder, a, b);
  round_trip(encoder, a, mutated(rng, a));

  // A short pattern repeated, shifted by one byte.
  Bytes pattern(1 << 20);
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = static_cast<std::byte>(i % 3);
  Bytes shifted(pattern.begin() + 1, pattern.end());
  shifted.push_back(std::byte{0xff});
  EXPECT_LE(round_trip(encoder, pattern, shifted), 8u + 20);
}

// ---- apply refuses broken deltas ----------------------------------------------------------

// A delta from raw parts: the checksum of `result` and then the op bytes.
Bytes delta_of(std::string_view result, std::initializer_list<std::uint8_t> ops) {
  Bytes d(delta_checksum_bytes);
  const std::uint64_t sum = value_checksum(bytes(result));
  std::memcpy(d.data(), &sum, sizeof sum);
  for (std::uint8_t b : ops) d.push_back(static_cast<std::byte>(b));
  return d;
}

DeltaError apply_to(std::string_view old_value, const Bytes& delta,
                    std::size_t max_bytes = 1 << 20) {
  Bytes out{std::byte{1}};
  DeltaError e = apply_delta(bytes(old_value), delta, out, max_bytes);
  if (e != DeltaError::none) {
    EXPECT_TRUE(out.empty()) << to_string(e);
  }
  return e;
}

TEST(Delta, hand_built_deltas_apply) {
  // copy 5 from 0, insert "XY", copy 3 from 7 (relative +2).
  EXPECT_EQ(apply_to("hello world", delta_of("helloXYorl", {10, 0, 5, 'X', 'Y', 6, 4})),
            DeltaError::none);
  // copy 2 from 6, then copy 3 from 0 (relative -8 -> zigzag 15).
  Bytes out;
  ASSERT_EQ(apply_delta(bytes("hello world"), delta_of("wohel", {4, 12, 6, 15}), out, 100),
            DeltaError::none);
  EXPECT_TRUE(out == bytes("wohel"));
  // A two-byte varint length: insert 64 bytes.
  std::string sixty_four(64, 'z');
  Bytes d = delta_of(sixty_four, {0x81, 0x01});
  for (char c : sixty_four) d.push_back(static_cast<std::byte>(c));
  EXPECT_EQ(apply_to("", d), DeltaError::none);
}

TEST(Delta, apply_refuses_truncated_and_malformed_deltas) {
  for (std::size_t n = 0; n < delta_checksum_bytes; ++n)
    EXPECT_EQ(apply_to("abc", Bytes(n)), DeltaError::malformed) << n;
  EXPECT_EQ(apply_to("abc", delta_of("", {0x80})), DeltaError::malformed);        // varint cut
  EXPECT_EQ(apply_to("abc", delta_of("a", {2})), DeltaError::malformed);          // copy, no offset
  EXPECT_EQ(apply_to("abc", delta_of("a", {2, 0x80})), DeltaError::malformed);    // offset cut
  EXPECT_EQ(apply_to("abc", delta_of("", {0})), DeltaError::malformed);           // zero copy
  EXPECT_EQ(apply_to("abc", delta_of("", {1})), DeltaError::malformed);           // zero insert
  EXPECT_EQ(apply_to("abc", delta_of("ab", {5, 'a'})), DeltaError::malformed);    // insert past end
  EXPECT_EQ(apply_to("abc", delta_of("a", {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
                                         'a'})),
            DeltaError::malformed);  // an insert of 2^62 - 1 bytes
  // 11-byte varint, and a 10th byte with bits beyond 64.
  EXPECT_EQ(apply_to("abc", delta_of("a", {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                        0x80, 0x00})),
            DeltaError::malformed);
  EXPECT_EQ(apply_to("abc", delta_of("a", {0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                        0x02})),
            DeltaError::malformed);
  // The largest 10-byte varint is well formed: here a copy of 2^63 - 1 bytes, out of range.
  EXPECT_EQ(apply_to("abc", delta_of("a", {0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                        0x01, 0x00})),
            DeltaError::copy_out_of_range);
}

TEST(Delta, apply_refuses_copies_outside_the_old_value) {
  EXPECT_EQ(apply_to("abc", delta_of("abc", {6, 0})), DeltaError::none);
  EXPECT_EQ(apply_to("abc", delta_of("abcd", {8, 0})), DeltaError::copy_out_of_range);  // runs past
  EXPECT_EQ(apply_to("abc", delta_of("", {2, 8})), DeltaError::copy_out_of_range);      // offset 4
  EXPECT_EQ(apply_to("abc", delta_of("", {2, 6})), DeltaError::copy_out_of_range);      // offset 3
  EXPECT_EQ(apply_to("abc", delta_of("", {2, 1})), DeltaError::copy_out_of_range);      // offset -1
  // Back to -1 after a copy: expected is 2, relative -3.
  EXPECT_EQ(apply_to("abc", delta_of("", {4, 0, 2, 5})), DeltaError::copy_out_of_range);
  // The most negative and most positive relative offsets.
  EXPECT_EQ(apply_to("abc", delta_of("", {2, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0x01})),
            DeltaError::copy_out_of_range);
  EXPECT_EQ(apply_to("abc", delta_of("", {2, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                                       0x01})),
            DeltaError::copy_out_of_range);
}

TEST(Delta, apply_refuses_results_beyond_max_bytes) {
  const Bytes d = delta_of("abcabc", {6, 0, 6, 5});  // copy 3, copy 3 from 0 again
  EXPECT_EQ(apply_to("abc", d, 6), DeltaError::none);
  EXPECT_EQ(apply_to("abc", d, 5), DeltaError::too_large);
  EXPECT_EQ(apply_to("abc", d, 2), DeltaError::too_large);
  EXPECT_EQ(apply_to("", delta_of("xy", {5, 'x', 'y'}), 1), DeltaError::too_large);
}

TEST(Delta, apply_refuses_a_result_whose_checksum_differs) {
  DeltaEncoder encoder;
  const Bytes old_value = bytes(odds);
  const Bytes new_value = bytes(replaced(odds, "+120", "+125"));
  const Bytes good = encode(encoder, old_value, new_value);
  ASSERT_FALSE(good.empty());
  Bytes out;
  ASSERT_EQ(apply_delta(old_value, good, out, 1024), DeltaError::none);

  Bytes bad_sum = good;
  bad_sum[3] ^= std::byte{0x10};
  EXPECT_EQ(apply_delta(old_value, bad_sum, out, 1024), DeltaError::checksum_mismatch);
  EXPECT_TRUE(out.empty());

  // The literal '5' is the only byte of the delta equal to it after the prefix copy.
  Bytes bad_literal = good;
  auto it =
      std::find(bad_literal.begin() + delta_checksum_bytes, bad_literal.end(), std::byte{'5'});
  ASSERT_NE(it, bad_literal.end());
  *it = std::byte{'6'};
  EXPECT_EQ(apply_delta(old_value, bad_literal, out, 1024), DeltaError::checksum_mismatch);

  // Against another old value.
  EXPECT_EQ(apply_delta(bytes(replaced(odds, "45.5", "46.5")), good, out, 1024),
            DeltaError::checksum_mismatch);
}

TEST(Delta, apply_survives_every_truncation_and_bit_flip_of_real_deltas) {
  std::mt19937_64 rng(99);
  DeltaEncoder encoder;
  Bytes out;
  for (int n = 0; n < 50; ++n) {
    const Bytes old_value = random_bytes(rng, rng() % 600);
    const Bytes new_value = mutated(rng, old_value);
    const Bytes delta = encode(encoder, old_value, new_value);
    ASSERT_FALSE(delta.empty());
    for (std::size_t cut = 0; cut < delta.size(); ++cut) {
      const Bytes head(delta.begin(), delta.begin() + static_cast<std::ptrdiff_t>(cut));
      EXPECT_NE(apply_delta(old_value, head, out, 1 << 16), DeltaError::none) << cut;
    }
    for (std::size_t bit = 0; bit < delta.size() * 8; ++bit) {
      Bytes flipped = delta;
      flipped[bit / 8] ^= static_cast<std::byte>(1u << (bit % 8));
      EXPECT_NE(apply_delta(old_value, flipped, out, 1 << 16), DeltaError::none) << bit;
    }
  }
}

TEST(Delta, every_error_has_a_name) {
  for (auto e : {DeltaError::none, DeltaError::malformed, DeltaError::copy_out_of_range,
                 DeltaError::too_large, DeltaError::checksum_mismatch})
    EXPECT_NE(to_string(e), "unknown delta error");
}

}  // namespace
}  // namespace brook::codec
