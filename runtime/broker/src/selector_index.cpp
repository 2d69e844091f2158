#include "brook/runtime/selector_index.hpp"

#include <algorithm>

namespace brook::runtime {

SelectorIndex::Table& SelectorIndex::table_for(SelectorKind kind) noexcept
{
    switch (kind) {
    case SelectorKind::exact:
        return exact_;
    case SelectorKind::children:
        return children_;
    case SelectorKind::descendants:
        break;
    }
    return descendants_;
}

void SelectorIndex::add(const Selector& selector, std::uint64_t key)
{
    auto& table = table_for(selector.kind);
    auto it = table.find(std::string_view(selector.base));
    if (it == table.end()) {
        it = table.emplace(selector.base, Bucket{selector, {}}).first;
    }
    it->second.keys.push_back(key);
    ++size_;
}

bool SelectorIndex::remove(const Selector& selector, std::uint64_t key)
{
    auto& table = table_for(selector.kind);
    const auto it = table.find(std::string_view(selector.base));
    if (it == table.end()) {
        return false;
    }
    // Linear in the subscribers of this one selector; removal is a control-path operation.
    auto& keys = it->second.keys;
    const auto found = std::find(keys.begin(), keys.end(), key);
    if (found == keys.end()) {
        return false;
    }
    *found = keys.back();
    keys.pop_back();
    if (keys.empty()) {
        table.erase(it);
    }
    --size_;
    return true;
}

} // namespace brook::runtime
