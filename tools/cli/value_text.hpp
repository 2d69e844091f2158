#pragma once
// Topic values as text on the command line: what `brook pub` parses and `brook sub` prints.
// json and string values are their text, int64 and double their decimal form, binary base64.
// On output, backslash, newline, carriage return and tab are escaped (\\ \n \r \t) so that
// every update stays one line.
#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "brook/codec/frame.hpp"

namespace brook::cli {

std::string value_to_text(codec::TopicType type, std::span<const std::byte> value);
// nullopt when `text` is not a valid value of `type`.
std::optional<std::vector<std::byte>> value_from_text(std::optional<codec::TopicType> type,
                                                      std::string_view text);

}  // namespace brook::cli
