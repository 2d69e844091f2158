#include "topic_value_check.hpp"

#include <nlohmann/json.hpp>

namespace brook::runtime {

namespace {

// Parses without building a document: only the verdict and where it went wrong.
struct JsonSyntaxCheck final : nlohmann::json_sax<nlohmann::json> {
  std::string error;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception&) override {
    error = "is not valid JSON (at byte " + std::to_string(position) + ")";
    return false;
  }
};

}  // namespace

std::size_t utf8_valid_prefix(std::span<const std::byte> text) noexcept {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t length;
    unsigned char low = 0x80, high = 0xbf;  // allowed range of the second byte
    if (c >= 0xc2 && c <= 0xdf) length = 2;
    else if (c == 0xe0) length = 3, low = 0xa0;            // no overlong forms
    else if (c >= 0xe1 && c <= 0xec) length = 3;
    else if (c == 0xed) length = 3, high = 0x9f;           // no surrogates
    else if (c >= 0xee && c <= 0xef) length = 3;
    else if (c == 0xf0) length = 4, low = 0x90;            // no overlong forms
    else if (c >= 0xf1 && c <= 0xf3) length = 4;
    else if (c == 0xf4) length = 4, high = 0x8f;           // nothing above U+10FFFF
    else return i;
    if (n - i < length || s[i + 1] < low || s[i + 1] > high) return i;
    for (std::size_t k = 2; k < length; ++k)
      if ((s[i + k] & 0xc0) != 0x80) return i;
    i += length;
  }
  return n;
}

std::string invalid_value_reason(codec::TopicType type, std::span<const std::byte> value) {
  switch (type) {
    case codec::TopicType::int64:
    case codec::TopicType::float64:
      if (value.size() == 8) return {};
      return "is " + std::to_string(value.size()) + " bytes, not 8";
    case codec::TopicType::string: {
      std::size_t valid = utf8_valid_prefix(value);
      if (valid == value.size()) return {};
      return "is not valid UTF-8 (at byte " + std::to_string(valid) + ")";
    }
    case codec::TopicType::json: {
      JsonSyntaxCheck check;
      const auto* begin = reinterpret_cast<const char*>(value.data());
      nlohmann::json::sax_parse(begin, begin + value.size(), &check);
      return check.error;
    }
    case codec::TopicType::binary: return {};
  }
  return "unknown topic type";
}

}  // namespace brook::runtime
