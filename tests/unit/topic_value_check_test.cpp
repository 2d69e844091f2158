// The owner shard's check of published values against their topic's type.
#include "../../runtime/broker/src/topic_value_check.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace {

using brook::codec::TopicType;
using brook::runtime::invalid_value_reason;
using brook::runtime::utf8_valid_prefix;

std::span<const std::byte> bytes(std::string_view s) { return std::as_bytes(std::span(s)); }

TEST(TopicValueCheck, json_values_must_parse) {
  EXPECT_EQ(invalid_value_reason(TopicType::json, bytes(R"({"Home_Odds":"+120","n":[1,2.5,null]})")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::json, bytes("42")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::json, bytes(" \"text\" ")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::json, bytes(R"({"bad)")), "is not valid JSON (at byte 6)");
  EXPECT_NE(invalid_value_reason(TopicType::json, bytes("")), "");
  EXPECT_NE(invalid_value_reason(TopicType::json, bytes("{} {}")), "");  // one document only
  EXPECT_NE(invalid_value_reason(TopicType::json, bytes("[1,]")), "");
}

TEST(TopicValueCheck, strings_must_be_well_formed_utf8) {
  EXPECT_EQ(invalid_value_reason(TopicType::string, bytes("plain")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::string, bytes("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8f\x88")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::string, bytes("")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::string, bytes("ok\xff")), "is not valid UTF-8 (at byte 2)");
  EXPECT_EQ(utf8_valid_prefix(bytes("\xc0\xaf")), 0u);          // overlong '/'
  EXPECT_EQ(utf8_valid_prefix(bytes("\xe0\x80\xaf")), 0u);      // overlong, 3 bytes
  EXPECT_EQ(utf8_valid_prefix(bytes("a\xed\xa0\x80")), 1u);     // a surrogate
  EXPECT_EQ(utf8_valid_prefix(bytes("\xf4\x90\x80\x80")), 0u);  // above U+10FFFF
  EXPECT_EQ(utf8_valid_prefix(bytes("ab\xe2\x82")), 2u);        // truncated at the end
  EXPECT_EQ(utf8_valid_prefix(bytes("\xe2\x28\xa1")), 0u);      // bad continuation
  EXPECT_EQ(utf8_valid_prefix(bytes("\xf4\x8f\xbf\xbf")), 4u);  // U+10FFFF itself
}

TEST(TopicValueCheck, numbers_are_eight_bytes_and_binary_is_anything) {
  EXPECT_EQ(invalid_value_reason(TopicType::int64, bytes("12345678")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::float64, bytes("12345678")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::int64, bytes("123")), "is 3 bytes, not 8");
  EXPECT_NE(invalid_value_reason(TopicType::float64, bytes("123456789")), "");
  EXPECT_EQ(invalid_value_reason(TopicType::binary, bytes("\xff\x00\xfe")), "");
}

}  // namespace
