#pragma once

#include <cassert>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "brook/runtime/selector.hpp"
#include "brook/runtime/topic_path.hpp"

namespace brook::runtime {

// A trie of path segments that owns one payload T per topic: a shard's slice of the topic
// tree. Touched only by its shard's thread; not thread-safe. Nodes without a topic live only
// while a topic sits below them. Lookups by string_view do not allocate.
template <class T>
class TopicTree {
public:
    TopicTree() = default;
    TopicTree(TopicTree&& other) noexcept { *this = std::move(other); }
    TopicTree& operator=(TopicTree&& other) noexcept
    {
        if (this != &other) {
            root_.children = std::exchange(other.root_.children, {});
            size_ = std::exchange(other.size_, 0);
            node_count_ = std::exchange(other.node_count_, 0);
        }
        return *this;
    }

    T* find(std::string_view path) noexcept { return payload(find_node(root_, path)); }
    const T* find(std::string_view path) const noexcept { return payload(find_node(root_, path)); }

    // Creates the topic from `args` if absent; the bool says whether it was created.
    // `path` must be a valid topic path.
    template <class... Args>
    std::pair<T*, bool> try_emplace(std::string_view path, Args&&... args);

    // Removes the topic's payload and the nodes left empty; false when there was no topic.
    bool erase(std::string_view path);

    // Calls f(std::string_view path, T&) once per topic that `selector` matches, in no
    // particular order. f must not add or erase topics.
    template <class F>
    void for_each_match(const Selector& selector, F&& f) { visit_matches(root_, selector, f); }
    template <class F>
    void for_each_match(const Selector& selector, F&& f) const { visit_matches(root_, selector, f); }

    std::size_t size() const noexcept { return size_; }
    std::size_t node_count() const noexcept { return node_count_; } // excluding the root

private:
    struct Node {
        std::string path; // full path of this node; "" for the root
        std::optional<T> value;
        // Keys view the last segment of each child's `path`: nodes never move, so they hold.
        std::unordered_map<std::string_view, std::unique_ptr<Node>> children;
    };

    template <class N>
    static N* child(N& node, std::string_view segment) noexcept
    {
        const auto it = node.children.find(segment);
        return it == node.children.end() ? nullptr : it->second.get();
    }

    template <class N>
    static N* find_node(N& root, std::string_view path) noexcept
    {
        if (path.empty()) {
            return &root;
        }
        N* node = &root;
        for (std::size_t start = 0; node != nullptr;) {
            const auto slash = path.find('/', start);
            node = child(*node, path.substr(start, slash - start));
            if (slash == std::string_view::npos) {
                break;
            }
            start = slash + 1;
        }
        return node;
    }

    template <class N>
    static auto* payload(N* node) noexcept
    {
        return node != nullptr && node->value ? std::addressof(*node->value) : nullptr;
    }

    template <class N, class F>
    static void visit_matches(N& root, const Selector& selector, F& f)
    {
        N* node = find_node(root, selector.base);
        if (node == nullptr) {
            return;
        }
        switch (selector.kind) {
        case SelectorKind::exact:
            if (node->value) {
                f(std::string_view(node->path), *node->value);
            }
            return;
        case SelectorKind::children:
            for (auto& [segment, next] : node->children) {
                if (next->value) {
                    f(std::string_view(next->path), *next->value);
                }
            }
            return;
        case SelectorKind::descendants:
            visit_subtree(*node, f);
            return;
        }
    }

    // Recursion depth is bounded by the path depth (at most max_topic_path_bytes / 2).
    template <class N, class F>
    static void visit_subtree(N& node, F& f)
    {
        if (node.value) {
            f(std::string_view(node.path), *node.value);
        }
        for (auto& [segment, next] : node.children) {
            visit_subtree(*next, f);
        }
    }

    Node root_;
    std::size_t size_ = 0;
    std::size_t node_count_ = 0;
};

template <class T>
template <class... Args>
std::pair<T*, bool> TopicTree<T>::try_emplace(std::string_view path, Args&&... args)
{
    assert(is_valid_topic_path(path));
    Node* node = &root_;
    for (std::size_t start = 0;;) {
        const auto slash = path.find('/', start);
        const auto end = slash == std::string_view::npos ? path.size() : slash;
        Node* next = child(*node, path.substr(start, end - start));
        if (next == nullptr) {
            auto created = std::make_unique<Node>();
            created->path = path.substr(0, end);
            const auto segment = std::string_view(created->path).substr(start);
            next = node->children.emplace(segment, std::move(created)).first->second.get();
            ++node_count_;
        }
        node = next;
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    if (node->value) {
        return {std::addressof(*node->value), false};
    }
    node->value.emplace(std::forward<Args>(args)...);
    ++size_;
    return {std::addressof(*node->value), true};
}

template <class T>
bool TopicTree<T>::erase(std::string_view path)
{
    if (path.empty()) {
        return false;
    }
    // Pruning cuts the chain below the deepest node that must stay: the root, a node with
    // a topic, or a node with another branch.
    Node* keep = &root_;
    std::string_view keep_segment;
    std::size_t keep_depth = 0;
    Node* node = &root_;
    std::size_t depth = 0;
    for (std::size_t start = 0;;) {
        const auto slash = path.find('/', start);
        const auto segment = path.substr(start, slash - start);
        Node* next = child(*node, segment);
        if (next == nullptr) {
            return false;
        }
        if (node == &root_ || node->value || node->children.size() > 1) {
            keep = node;
            keep_segment = segment;
            keep_depth = depth;
        }
        node = next;
        ++depth;
        if (slash == std::string_view::npos) {
            break;
        }
        start = slash + 1;
    }
    if (!node->value) {
        return false;
    }
    node->value.reset();
    --size_;
    if (node->children.empty()) {
        keep->children.erase(keep_segment); // a chain of depth - keep_depth empty nodes
        node_count_ -= depth - keep_depth;
    }
    return true;
}

} // namespace brook::runtime
