#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "brook/runtime/selector.hpp"
#include "brook/runtime/topic_path.hpp"

namespace brook::runtime {

// Owns a shard's subscriptions as (selector, subscriber key) pairs, stored as a multiset.
// Touched only by its shard's thread; not thread-safe. Finding the subscriptions that match
// a topic costs O(path depth) hash lookups, whatever the number of subscriptions.
class SelectorIndex {
public:
    void add(const Selector& selector, std::uint64_t key);

    // Removes one occurrence; false when the pair was not there.
    bool remove(const Selector& selector, std::uint64_t key);

    // Calls f(std::uint64_t key, const Selector&) once per stored pair that matches
    // `topic_path`, in no particular order. Allocation-free. f must not modify the index.
    template <class F>
    void for_each_match(std::string_view topic_path, F&& f) const;

    std::size_t size() const noexcept { return size_; }

private:
    struct Bucket {
        Selector selector;
        std::vector<std::uint64_t> keys; // one entry per add(); duplicates allowed
    };
    using Table = TopicPathMap<Bucket>; // keyed by Selector::base

    Table& table_for(SelectorKind kind) noexcept;

    template <class F>
    static void visit(const Table& table, std::string_view base, F& f)
    {
        if (const auto it = table.find(base); it != table.end()) {
            for (const auto key : it->second.keys) {
                f(key, it->second.selector);
            }
        }
    }

    Table exact_;
    Table children_;    // a topic's children subscribers sit under its parent path
    Table descendants_; // probed with "", every ancestor of the topic and the topic itself
    std::size_t size_ = 0;
};

template <class F>
void SelectorIndex::for_each_match(std::string_view topic_path, F&& f) const
{
    if (topic_path.empty()) {
        return;
    }
    visit(exact_, topic_path, f);
    visit(children_, parent_path(topic_path), f);
    if (descendants_.empty()) {
        return;
    }
    visit(descendants_, std::string_view{}, f);
    for (auto slash = topic_path.find('/'); slash != std::string_view::npos;
         slash = topic_path.find('/', slash + 1)) {
        visit(descendants_, topic_path.substr(0, slash), f);
    }
    visit(descendants_, topic_path, f);
}

} // namespace brook::runtime
