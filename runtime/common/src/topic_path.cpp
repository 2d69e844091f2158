#include "brook/runtime/topic_path.hpp"

namespace brook::runtime {

bool is_valid_topic_path(std::string_view path) noexcept
{
    if (path.empty() || path.size() > max_topic_path_bytes) {
        return false;
    }
    std::size_t segment_start = 0;
    for (std::size_t i = 0; i <= path.size(); ++i) {
        if (i == path.size() || path[i] == '/') {
            const auto segment = path.substr(segment_start, i - segment_start);
            if (segment.empty() || segment == "*") {
                return false;
            }
            segment_start = i + 1;
            continue;
        }
        const auto byte = static_cast<unsigned char>(path[i]);
        if (byte < 0x20 || byte == 0x7f) {
            return false;
        }
    }
    return true;
}

std::string_view parent_path(std::string_view path) noexcept
{
    const auto slash = path.rfind('/');
    return slash == std::string_view::npos ? std::string_view{} : path.substr(0, slash);
}

} // namespace brook::runtime
