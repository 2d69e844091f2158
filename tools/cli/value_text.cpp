#include "value_text.hpp"

#include <sodium.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace brook::cli {

namespace {

std::string escaped(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char ch : text) {
    switch (ch) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out += ch;
    }
  }
  return out;
}

template <class T>
std::vector<std::byte> bytes_of(T v) {
  std::vector<std::byte> out(sizeof v);
  std::memcpy(out.data(), &v, sizeof v);
  return out;
}

}  // namespace

std::string value_to_text(codec::TopicType type, std::span<const std::byte> value) {
  switch (type) {
    case codec::TopicType::int64: {
      if (value.size() != 8) return "<invalid int64>";
      std::int64_t v;
      std::memcpy(&v, value.data(), 8);
      return std::to_string(v);
    }
    case codec::TopicType::float64: {
      if (value.size() != 8) return "<invalid double>";
      double v;
      std::memcpy(&v, value.data(), 8);
      char buffer[32];
      std::snprintf(buffer, sizeof buffer, "%.17g", v);
      return buffer;
    }
    case codec::TopicType::binary: {
      std::string out(sodium_base64_encoded_len(value.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
      sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(value.data()),
                        value.size(), sodium_base64_VARIANT_ORIGINAL);
      out.resize(std::strlen(out.c_str()));
      return out;
    }
    default:
      return escaped({reinterpret_cast<const char*>(value.data()), value.size()});
  }
}

std::optional<std::vector<std::byte>> value_from_text(std::optional<codec::TopicType> type,
                                                      std::string_view text) {
  if (!type) type = codec::TopicType::string;
  switch (*type) {
    case codec::TopicType::int64: {
      std::int64_t v = 0;
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
      if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
      return bytes_of(v);
    }
    case codec::TopicType::float64: {
      std::string copy(text);
      char* end = nullptr;
      double v = std::strtod(copy.c_str(), &end);
      if (copy.empty() || end != copy.c_str() + copy.size()) return std::nullopt;
      return bytes_of(v);
    }
    case codec::TopicType::binary: {
      std::vector<std::byte> out(text.size());
      std::size_t length = 0;
      if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                            text.size(), nullptr, &length, nullptr,
                            sodium_base64_VARIANT_ORIGINAL) != 0)
        return std::nullopt;
      out.resize(length);
      return out;
    }
    default: {
      auto bytes = std::as_bytes(std::span(text));
      return std::vector<std::byte>(bytes.begin(), bytes.end());
    }
  }
}

}  // namespace brook::cli
