#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace brook::runtime {

enum class SelectorKind : std::uint8_t {
    exact,       // "a/b": the topic a/b only
    children,    // "a/b/*": a/b/x, not a/b nor a/b/x/y; "*" alone: every top-level topic
    descendants, // "a/b//": a/b and everything below it; "//" alone: every topic
};

// A parsed subscription selector. A plain value: copy it freely, share it across threads.
// '*' is reserved for wildcards, so parse() rejects it anywhere in the base path.
struct Selector {
    SelectorKind kind = SelectorKind::exact;
    std::string base; // topic path without the "/*" or "//" suffix; "" for "*" and "//"

    static std::optional<Selector> parse(std::string_view text);

    // `topic_path` must be a valid topic path. Allocation-free.
    bool matches(std::string_view topic_path) const noexcept;

    std::string text() const; // parse(s.text()) == s

    bool operator==(const Selector&) const = default;
};

} // namespace brook::runtime
