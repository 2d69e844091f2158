// Unit tests: SelectorIndex finds every stored subscription that matches a topic.
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "brook/runtime/selector_index.hpp"

namespace brook::runtime {
namespace {

using Match = std::pair<std::uint64_t, std::string>; // key, selector text

Selector parsed(std::string_view text)
{
    return Selector::parse(text).value();
}

std::vector<Match> matches_of(const SelectorIndex& index, std::string_view topic)
{
    std::vector<Match> found;
    index.for_each_match(topic, [&](std::uint64_t key, const Selector& selector) {
        found.emplace_back(key, selector.text());
    });
    std::sort(found.begin(), found.end());
    return found;
}

TEST(SelectorIndex, finds_each_form_for_a_topic)
{
    SelectorIndex index;
    index.add(parsed("a/b/c"), 1);
    index.add(parsed("a/b/*"), 2);
    index.add(parsed("a//"), 3);
    index.add(parsed("a/b/c//"), 4);
    index.add(parsed("//"), 5);
    index.add(parsed("*"), 6);
    EXPECT_EQ(index.size(), 6u);

    const std::vector<Match> for_abc{{1, "a/b/c"}, {2, "a/b/*"}, {3, "a//"}, {4, "a/b/c//"},
                                     {5, "//"}};
    EXPECT_EQ(matches_of(index, "a/b/c"), for_abc);
    const std::vector<Match> for_a{{3, "a//"}, {5, "//"}, {6, "*"}};
    EXPECT_EQ(matches_of(index, "a"), for_a);
}

TEST(SelectorIndex, descendants_do_not_match_a_longer_segment)
{
    SelectorIndex index;
    index.add(parsed("a/b//"), 1);
    index.add(parsed("a/b/*"), 2);
    EXPECT_TRUE(matches_of(index, "a/bc").empty());
    EXPECT_TRUE(matches_of(index, "a/bc/d").empty());
}

TEST(SelectorIndex, finds_nothing_in_an_empty_index)
{
    const SelectorIndex index;
    EXPECT_TRUE(matches_of(index, "a/b").empty());
    EXPECT_EQ(index.size(), 0u);
}

TEST(SelectorIndex, stores_the_same_subscription_twice_and_removes_one_at_a_time)
{
    SelectorIndex index;
    index.add(parsed("a//"), 7);
    index.add(parsed("a//"), 7);
    EXPECT_EQ(index.size(), 2u);
    EXPECT_EQ(matches_of(index, "a/b").size(), 2u);

    EXPECT_TRUE(index.remove(parsed("a//"), 7));
    EXPECT_EQ(index.size(), 1u);
    EXPECT_EQ(matches_of(index, "a/b").size(), 1u);

    EXPECT_TRUE(index.remove(parsed("a//"), 7));
    EXPECT_FALSE(index.remove(parsed("a//"), 7));
    EXPECT_EQ(index.size(), 0u);
    EXPECT_TRUE(matches_of(index, "a/b").empty());
}

TEST(SelectorIndex, removing_an_absent_pair_changes_nothing)
{
    SelectorIndex index;
    index.add(parsed("a/*"), 1);
    EXPECT_FALSE(index.remove(parsed("a/*"), 2));  // other key
    EXPECT_FALSE(index.remove(parsed("a//"), 1));  // same base, other kind
    EXPECT_FALSE(index.remove(parsed("b/*"), 1));  // other base
    EXPECT_EQ(index.size(), 1u);
    EXPECT_EQ(matches_of(index, "a/x"), (std::vector<Match>{{1, "a/*"}}));
}

TEST(SelectorIndex, one_key_with_two_matching_selectors_is_reported_for_each)
{
    SelectorIndex index;
    index.add(parsed("a/*"), 9);
    index.add(parsed("a//"), 9);
    EXPECT_EQ(matches_of(index, "a/x"), (std::vector<Match>{{9, "a/*"}, {9, "a//"}}));
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

Selector random_selector(std::mt19937_64& rng)
{
    switch (std::uniform_int_distribution<int>(0, 7)(rng)) {
    case 0: return parsed("*");
    case 1: return parsed("//");
    case 2: case 3: return parsed(random_path(rng, 4));
    case 4: case 5: return parsed(random_path(rng, 3) + "/*");
    default: return parsed(random_path(rng, 3) + "//");
    }
}

TEST(SelectorIndex, agrees_with_brute_force_on_random_subscriptions)
{
    std::mt19937_64 rng(20240611);
    SelectorIndex index;
    std::vector<std::pair<Selector, std::uint64_t>> stored;
    for (int i = 0; i < 400; ++i) {
        auto selector = random_selector(rng);
        const auto key = std::uniform_int_distribution<std::uint64_t>(0, 20)(rng);
        index.add(selector, key);
        stored.emplace_back(std::move(selector), key);
    }
    for (int i = 0; i < 150; ++i) {
        const auto victim = std::uniform_int_distribution<std::size_t>(0, stored.size() - 1)(rng);
        ASSERT_TRUE(index.remove(stored[victim].first, stored[victim].second));
        stored.erase(stored.begin() + static_cast<std::ptrdiff_t>(victim));
    }
    ASSERT_EQ(index.size(), stored.size());

    for (int i = 0; i < 1000; ++i) {
        const auto topic = random_path(rng, 5);
        std::vector<Match> expected;
        for (const auto& [selector, key] : stored) {
            if (selector.matches(topic)) {
                expected.emplace_back(key, selector.text());
            }
        }
        std::sort(expected.begin(), expected.end());
        ASSERT_EQ(matches_of(index, topic), expected) << topic;
    }
}

} // namespace
} // namespace brook::runtime
