#pragma once

// Topic paths: "Distribution/Football/NFL/Pre Match". Segments are separated by '/',
// may contain spaces, and never contain control characters.

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace brook::runtime {

inline constexpr std::size_t max_topic_path_bytes = 1024;

// Non-empty, at most max_topic_path_bytes, no leading, trailing or doubled '/', no byte
// below 0x20 or equal to 0x7f, and no segment equal to "*" (reserved for selectors).
bool is_valid_topic_path(std::string_view path) noexcept;

// "a/b/c" -> "a/b"; "a" -> "". The result is a view into `path`.
std::string_view parent_path(std::string_view path) noexcept;

// Hash for tables keyed by std::string that are probed with a std::string_view:
// with std::equal_to<> the probe does not build a std::string.
// Not noexcept on purpose: libstdc++ keeps each node's hash code unless the hash is "fast"
// and noexcept, and it counts every custom hash as fast, so a noexcept one made every probe
// rehash the path of each node it walked past (100,000 topics: 8% more broker CPU per
// delivery). Other standard libraries decide otherwise; this only matters for libstdc++.
struct TopicPathHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view path) const
    {
        return std::hash<std::string_view>{}(path);
    }
};

template <class V>
using TopicPathMap = std::unordered_map<std::string, V, TopicPathHash, std::equal_to<>>;

} // namespace brook::runtime
