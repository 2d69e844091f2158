#include "brook/runtime/selector.hpp"

#include "brook/runtime/topic_path.hpp"

namespace brook::runtime {

std::optional<Selector> Selector::parse(std::string_view text)
{
    if (text.size() > max_topic_path_bytes) {
        return std::nullopt;
    }
    if (text == "//") {
        return Selector{SelectorKind::descendants, {}};
    }
    if (text == "*") {
        return Selector{SelectorKind::children, {}};
    }
    auto kind = SelectorKind::exact;
    auto base = text;
    if (text.ends_with("//")) {
        kind = SelectorKind::descendants;
        base.remove_suffix(2);
    } else if (text.ends_with("/*")) {
        kind = SelectorKind::children;
        base.remove_suffix(2);
    }
    if (!is_valid_topic_path(base) || base.find('*') != std::string_view::npos) {
        return std::nullopt;
    }
    return Selector{kind, std::string(base)};
}

bool Selector::matches(std::string_view topic_path) const noexcept
{
    if (topic_path.empty()) {
        return false;
    }
    switch (kind) {
    case SelectorKind::exact:
        return topic_path == base;
    case SelectorKind::children:
        return parent_path(topic_path) == base;
    case SelectorKind::descendants:
        // A prefix only counts when it ends at a segment boundary: "a/b//" is not "a/bc".
        return base.empty() || topic_path == base
            || (topic_path.starts_with(base) && topic_path[base.size()] == '/');
    }
    return false;
}

std::string Selector::text() const
{
    switch (kind) {
    case SelectorKind::exact:
        return base;
    case SelectorKind::children:
        return base.empty() ? std::string("*") : base + "/*";
    case SelectorKind::descendants:
        return base.empty() ? std::string("//") : base + "//";
    }
    return base;
}

} // namespace brook::runtime
