// Unit tests: TopicTree owns per-topic payloads and visits the topics a selector matches.
#include <gtest/gtest.h>

#include <algorithm>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "brook/runtime/topic_tree.hpp"

namespace brook::runtime {
namespace {

Selector parsed(std::string_view text)
{
    return Selector::parse(text).value();
}

template <class T>
std::vector<std::string> paths_matching(TopicTree<T>& tree, std::string_view selector)
{
    std::vector<std::string> paths;
    tree.for_each_match(parsed(selector), [&](std::string_view path, T&) {
        paths.emplace_back(path);
    });
    std::sort(paths.begin(), paths.end());
    return paths;
}

using Paths = std::vector<std::string>;

TEST(TopicTree, creates_a_topic_once_and_finds_it)
{
    TopicTree<int> tree;
    const auto [created, was_created] = tree.try_emplace("a/b", 1);
    EXPECT_TRUE(was_created);
    EXPECT_EQ(*created, 1);

    const auto [existing, created_again] = tree.try_emplace("a/b", 2);
    EXPECT_FALSE(created_again);
    EXPECT_EQ(existing, created);
    EXPECT_EQ(*existing, 1);

    EXPECT_EQ(tree.find("a/b"), created);
    EXPECT_EQ(tree.size(), 1u);
}

TEST(TopicTree, does_not_find_intermediate_nodes_or_malformed_paths)
{
    TopicTree<int> tree;
    tree.try_emplace("a/b/c", 1);
    const auto& view = tree;
    EXPECT_EQ(view.find("a"), nullptr);
    EXPECT_EQ(view.find("a/b"), nullptr);
    EXPECT_EQ(view.find("a/b/"), nullptr);
    EXPECT_EQ(view.find("a/bc"), nullptr);
    EXPECT_EQ(view.find(""), nullptr);
    EXPECT_NE(view.find("a/b/c"), nullptr);
}

TEST(TopicTree, holds_payloads_that_cannot_be_copied)
{
    TopicTree<std::unique_ptr<int>> tree;
    tree.try_emplace("a", std::make_unique<int>(5));
    ASSERT_NE(tree.find("a"), nullptr);
    EXPECT_EQ(**tree.find("a"), 5);
}

TEST(TopicTree, erase_removes_the_topic_and_prunes_empty_nodes)
{
    TopicTree<int> tree;
    tree.try_emplace("a/b/c/d", 1);
    EXPECT_EQ(tree.node_count(), 4u);

    EXPECT_TRUE(tree.erase("a/b/c/d"));
    EXPECT_FALSE(tree.erase("a/b/c/d"));
    EXPECT_EQ(tree.find("a/b/c/d"), nullptr);
    EXPECT_EQ(tree.size(), 0u);
    EXPECT_EQ(tree.node_count(), 0u);
}

TEST(TopicTree, erase_keeps_ancestors_that_hold_topics_or_other_branches)
{
    TopicTree<int> tree;
    tree.try_emplace("a", 1);
    tree.try_emplace("a/b/c", 2);
    tree.try_emplace("a/b/x/y", 3);
    tree.try_emplace("a/b/x/y/z", 4);
    EXPECT_EQ(tree.node_count(), 6u);

    EXPECT_TRUE(tree.erase("a/b/x/y")); // still has a child: node stays, payload goes
    EXPECT_EQ(tree.node_count(), 6u);
    EXPECT_TRUE(tree.erase("a/b/x/y/z")); // prunes z, y and x; b still leads to c
    EXPECT_EQ(tree.node_count(), 3u);
    EXPECT_TRUE(tree.erase("a/b/c")); // prunes c and b; a holds a topic
    EXPECT_EQ(tree.node_count(), 1u);
    EXPECT_EQ(*tree.find("a"), 1);
    EXPECT_FALSE(tree.erase("a/b"));
    EXPECT_FALSE(tree.erase(""));
}

TEST(TopicTree, exact_selector_visits_one_topic)
{
    TopicTree<int> tree;
    tree.try_emplace("a/b", 1);
    tree.try_emplace("a/b/c", 2);
    EXPECT_EQ(paths_matching(tree, "a/b"), (Paths{"a/b"}));
    EXPECT_EQ(paths_matching(tree, "a"), Paths{});
    EXPECT_EQ(paths_matching(tree, "x"), Paths{});
}

TEST(TopicTree, children_selector_visits_direct_children_that_hold_topics)
{
    TopicTree<int> tree;
    for (const auto* path : {"a", "a/b", "a/c/d", "a/e", "a/e/f", "ab/x"}) {
        tree.try_emplace(path, 0);
    }
    EXPECT_EQ(paths_matching(tree, "a/*"), (Paths{"a/b", "a/e"}));
    EXPECT_EQ(paths_matching(tree, "*"), (Paths{"a"}));
}

TEST(TopicTree, descendants_selector_visits_the_base_and_its_subtree)
{
    TopicTree<int> tree;
    for (const auto* path : {"a", "a/b", "a/c/d", "ab", "ab/x", "b/Pre Match"}) {
        tree.try_emplace(path, 0);
    }
    EXPECT_EQ(paths_matching(tree, "a//"), (Paths{"a", "a/b", "a/c/d"}));
    EXPECT_EQ(paths_matching(tree, "a/c//"), (Paths{"a/c/d"}));
    EXPECT_EQ(paths_matching(tree, "//"),
              (Paths{"a", "a/b", "a/c/d", "ab", "ab/x", "b/Pre Match"}));
    EXPECT_EQ(paths_matching(tree, "zz//"), Paths{});
}

TEST(TopicTree, visits_payloads_in_place)
{
    TopicTree<int> tree;
    tree.try_emplace("a/b", 1);
    tree.try_emplace("a/c", 2);
    tree.for_each_match(parsed("a/*"), [](std::string_view, int& value) { value *= 10; });
    EXPECT_EQ(*tree.find("a/b"), 10);
    EXPECT_EQ(*tree.find("a/c"), 20);
}

TEST(TopicTree, a_moved_tree_keeps_its_topics_and_leaves_the_source_empty)
{
    TopicTree<int> source;
    source.try_emplace("a/b", 1);
    TopicTree<int> target(std::move(source));
    EXPECT_EQ(*target.find("a/b"), 1);
    EXPECT_EQ(target.size(), 1u);
    EXPECT_EQ(source.size(), 0u);
    EXPECT_EQ(source.node_count(), 0u);
    EXPECT_EQ(source.find("a/b"), nullptr);
}

std::string random_path(std::mt19937_64& rng, int max_depth)
{
    static const char* const segments[] = {"a", "b", "ab", "b a", "c"};
    const int depth = std::uniform_int_distribution<int>(1, max_depth)(rng);
    std::string path;
    for (int i = 0; i < depth; ++i) {
        path += i == 0 ? "" : "/";
        path += segments[std::uniform_int_distribution<int>(0, 4)(rng)];
    }
    return path;
}

std::string random_selector_text(std::mt19937_64& rng)
{
    switch (std::uniform_int_distribution<int>(0, 7)(rng)) {
    case 0: return "*";
    case 1: return "//";
    case 2: case 3: return random_path(rng, 4);
    case 4: case 5: return random_path(rng, 3) + "/*";
    default: return random_path(rng, 3) + "//";
    }
}

TEST(TopicTree, agrees_with_brute_force_on_random_topics)
{
    std::mt19937_64 rng(7);
    TopicTree<std::string> tree;
    std::set<std::string> topics;
    for (int i = 0; i < 300; ++i) {
        const auto path = random_path(rng, 5);
        EXPECT_EQ(tree.try_emplace(path, path).second, topics.insert(path).second);
    }
    for (int i = 0; i < 200; ++i) {
        const auto path = random_path(rng, 5);
        EXPECT_EQ(tree.erase(path), topics.erase(path) == 1) << path;
    }
    ASSERT_EQ(tree.size(), topics.size());

    for (int i = 0; i < 1000; ++i) {
        const auto text = random_selector_text(rng);
        const auto selector = parsed(text);
        Paths expected;
        for (const auto& topic : topics) {
            if (selector.matches(topic)) {
                expected.push_back(topic);
            }
        }
        Paths visited;
        tree.for_each_match(selector, [&](std::string_view path, std::string& payload) {
            EXPECT_EQ(path, payload);
            visited.emplace_back(path);
        });
        std::sort(visited.begin(), visited.end()); // duplicates would show as a mismatch
        ASSERT_EQ(visited, expected) << text;
    }

    for (const auto& topic : topics) {
        ASSERT_TRUE(tree.erase(topic));
    }
    EXPECT_EQ(tree.node_count(), 0u);
}

} // namespace
} // namespace brook::runtime
