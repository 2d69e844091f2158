// The shared delta vectors (tests/vectors/deltas.json) that other clients' tests (the
// TypeScript client's, runtime/typescript) apply: this encoder must still produce each
// vector's delta and checksum byte for byte, and applying the delta must give the new value.
// A change of the encoder's choices fails here first; regenerate the vectors with it and let
// the other clients' tests confirm they still read them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "brook/codec/delta.hpp"

namespace brook::codec {
namespace {

using Bytes = std::vector<std::byte>;

std::filesystem::path vectors_path() {
#ifdef BROOK_SOURCE_DIR
  return std::filesystem::path(BROOK_SOURCE_DIR) / "tests" / "vectors" / "deltas.json";
#else
  // This file is tests/unit/delta_vectors_test.cpp: the vectors are in tests/vectors.
  return std::filesystem::path(__FILE__).parent_path().parent_path() / "vectors" / "deltas.json";
#endif
}

std::optional<Bytes> from_hex(std::string_view hex) {
  if (hex.size() % 2 != 0) return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  Bytes out(hex.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i) {
    const int high = nibble(hex[2 * i]), low = nibble(hex[2 * i + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    out[i] = static_cast<std::byte>(high << 4 | low);
  }
  return out;
}

std::string to_hex(const Bytes& bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (std::byte b : bytes) {
    out += digits[static_cast<unsigned>(b) >> 4];
    out += digits[static_cast<unsigned>(b) & 15];
  }
  return out;
}

nlohmann::json load_vectors() {
  std::ifstream in(vectors_path());
  if (!in) {
    ADD_FAILURE() << "cannot open " << vectors_path();
    return nlohmann::json::array();
  }
  return nlohmann::json::parse(in);
}

TEST(DeltaVectors, file_holds_the_cases_other_clients_rely_on) {
  const nlohmann::json vectors = load_vectors();
  ASSERT_TRUE(vectors.is_array());
  EXPECT_GE(vectors.size(), 10u);
  bool has_empty = false, has_equal = false, has_kib = false;
  for (const auto& v : vectors) {
    const std::string old_hex = v.at("old"), new_hex = v.at("new");
    has_empty |= old_hex.empty() || new_hex.empty();
    has_equal |= !old_hex.empty() && old_hex == new_hex;
    has_kib |= new_hex.size() / 2 >= 2048;
  }
  EXPECT_TRUE(has_empty);
  EXPECT_TRUE(has_equal);
  EXPECT_TRUE(has_kib);
}

TEST(DeltaVectors, encoder_still_produces_each_vector_and_it_applies) {
  const nlohmann::json vectors = load_vectors();
  ASSERT_TRUE(vectors.is_array());
  for (const auto& v : vectors) {
    const std::string name = v.at("name");
    SCOPED_TRACE(name);
    const auto old_value = from_hex(v.at("old").get<std::string>());
    const auto new_value = from_hex(v.at("new").get<std::string>());
    const auto expected_delta = from_hex(v.at("delta").get<std::string>());
    ASSERT_TRUE(old_value && new_value && expected_delta) << "malformed hex";

    char checksum[17];
    std::snprintf(checksum, sizeof checksum, "%016llx",
                  static_cast<unsigned long long>(value_checksum(*new_value)));
    EXPECT_EQ(std::string(checksum), v.at("checksum").get<std::string>());

    // The capacity the vectors were made with: the new value's size and some room, so that
    // the encoder never gives up on them.
    DeltaEncoder encoder;
    Bytes delta(new_value->size() + 64);
    delta.resize(encoder.encode(*old_value, *new_value, delta));
    EXPECT_EQ(to_hex(delta), to_hex(*expected_delta));

    Bytes applied;
    EXPECT_EQ(apply_delta(*old_value, *expected_delta, applied, new_value->size()), DeltaError::none);
    EXPECT_TRUE(applied == *new_value);
  }
}

}  // namespace
}  // namespace brook::codec
