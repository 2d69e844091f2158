#pragma once
// A topic's type is a promise to its subscribers: the owner shard checks every published
// value against it (json parses, string is UTF-8, int64 and double are 8 bytes) and refuses
// the publish otherwise, so that no subscriber ever receives a value of the wrong type.
#include <span>
#include <string>

#include "brook/codec/frame.hpp"

namespace brook::runtime {

// Why `value` is not a valid value of a `type` topic ("is not valid JSON (at byte 6)"); empty
// when it is.
std::string invalid_value_reason(codec::TopicType type, std::span<const std::byte> value);

// The first byte at which `text` stops being well-formed UTF-8 (no overlong forms, no
// surrogates, nothing above U+10FFFF); text.size() when it is well-formed.
std::size_t utf8_valid_prefix(std::span<const std::byte> text) noexcept;

}  // namespace brook::runtime
