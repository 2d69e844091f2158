// Unit tests: topic path validation and the three selector forms.
#include <gtest/gtest.h>

#include <string>

#include "brook/runtime/selector.hpp"
#include "brook/runtime/topic_path.hpp"

namespace brook::runtime {
namespace {

Selector parsed(std::string_view text)
{
    auto selector = Selector::parse(text);
    EXPECT_TRUE(selector.has_value()) << text;
    return selector.value_or(Selector{});
}

TEST(TopicPath, accepts_segments_with_spaces)
{
    EXPECT_TRUE(is_valid_topic_path("a"));
    EXPECT_TRUE(is_valid_topic_path("Distribution/Football/NFL/Pre Match"));
    EXPECT_TRUE(is_valid_topic_path(" a / b "));
}

TEST(TopicPath, rejects_empty_paths_and_empty_segments)
{
    EXPECT_FALSE(is_valid_topic_path(""));
    EXPECT_FALSE(is_valid_topic_path("/"));
    EXPECT_FALSE(is_valid_topic_path("/a"));
    EXPECT_FALSE(is_valid_topic_path("a/"));
    EXPECT_FALSE(is_valid_topic_path("a//b"));
}

TEST(TopicPath, rejects_control_characters)
{
    EXPECT_FALSE(is_valid_topic_path("a\tb"));
    EXPECT_FALSE(is_valid_topic_path(std::string_view("a\0b", 3)));
    EXPECT_FALSE(is_valid_topic_path("a/\x7f"));
    EXPECT_TRUE(is_valid_topic_path("caf\xc3\xa9")); // UTF-8 bytes are fine
}

TEST(TopicPath, rejects_a_segment_that_is_a_lone_star)
{
    EXPECT_FALSE(is_valid_topic_path("*"));
    EXPECT_FALSE(is_valid_topic_path("a/*/b"));
    EXPECT_TRUE(is_valid_topic_path("a/b*"));
}

TEST(TopicPath, is_at_most_1024_bytes)
{
    EXPECT_TRUE(is_valid_topic_path(std::string(max_topic_path_bytes, 'a')));
    EXPECT_FALSE(is_valid_topic_path(std::string(max_topic_path_bytes + 1, 'a')));
}

TEST(TopicPath, parent_drops_the_last_segment)
{
    EXPECT_EQ(parent_path("a/b/c"), "a/b");
    EXPECT_EQ(parent_path("a/b"), "a");
    EXPECT_EQ(parent_path("a"), "");
}

TEST(Selector, exact_matches_only_its_own_path)
{
    const auto selector = parsed("a/b");
    EXPECT_EQ(selector, (Selector{SelectorKind::exact, "a/b"}));
    EXPECT_TRUE(selector.matches("a/b"));
    EXPECT_FALSE(selector.matches("a"));
    EXPECT_FALSE(selector.matches("a/bc"));
    EXPECT_FALSE(selector.matches("a/b/c"));
}

TEST(Selector, children_match_direct_children_only)
{
    const auto selector = parsed("a/b/*");
    EXPECT_EQ(selector, (Selector{SelectorKind::children, "a/b"}));
    EXPECT_TRUE(selector.matches("a/b/x"));
    EXPECT_TRUE(selector.matches("a/b/Pre Match"));
    EXPECT_FALSE(selector.matches("a/b"));
    EXPECT_FALSE(selector.matches("a/b/x/y"));
    EXPECT_FALSE(selector.matches("a/bc/x"));
    EXPECT_FALSE(selector.matches("a/x"));
}

TEST(Selector, descendants_match_the_path_itself_and_everything_below)
{
    const auto selector = parsed("a/b//");
    EXPECT_EQ(selector, (Selector{SelectorKind::descendants, "a/b"}));
    EXPECT_TRUE(selector.matches("a/b"));
    EXPECT_TRUE(selector.matches("a/b/x"));
    EXPECT_TRUE(selector.matches("a/b/x/y/z"));
    EXPECT_FALSE(selector.matches("a"));
    EXPECT_FALSE(selector.matches("a/c"));
}

TEST(Selector, descendants_stop_at_segment_boundaries)
{
    const auto selector = parsed("a/b//");
    EXPECT_FALSE(selector.matches("a/bc"));
    EXPECT_FALSE(selector.matches("a/bc/d"));
    EXPECT_FALSE(parsed("a/b/*").matches("a/bc"));
}

TEST(Selector, double_slash_alone_matches_every_topic)
{
    const auto selector = parsed("//");
    EXPECT_EQ(selector, (Selector{SelectorKind::descendants, ""}));
    EXPECT_TRUE(selector.matches("a"));
    EXPECT_TRUE(selector.matches("a/b/c"));
}

TEST(Selector, star_alone_matches_every_top_level_topic)
{
    const auto selector = parsed("*");
    EXPECT_EQ(selector, (Selector{SelectorKind::children, ""}));
    EXPECT_TRUE(selector.matches("a"));
    EXPECT_TRUE(selector.matches("Distribution"));
    EXPECT_FALSE(selector.matches("a/b"));
}

TEST(Selector, rejects_malformed_text)
{
    for (const auto* text : {"", "/", "/*", "///", "a//b", "a/*/b", "a/b*", "*a", "a/*b",
                             "a/**", "**", "*/*", "*//", "/a", "a/", "a/b//c", "a/b///",
                             "a/\tb", "a//*"}) {
        EXPECT_FALSE(Selector::parse(text).has_value()) << '"' << text << '"';
    }
}

TEST(Selector, rejects_text_over_1024_bytes)
{
    EXPECT_TRUE(Selector::parse(std::string(max_topic_path_bytes, 'a')).has_value());
    EXPECT_TRUE(Selector::parse(std::string(max_topic_path_bytes - 2, 'a') + "//").has_value());
    EXPECT_FALSE(Selector::parse(std::string(max_topic_path_bytes + 1, 'a')).has_value());
    EXPECT_FALSE(Selector::parse(std::string(max_topic_path_bytes - 1, 'a') + "/*").has_value());
}

TEST(Selector, text_round_trips_through_parse)
{
    for (const auto* text : {"a", "a/b", "Distribution/Football/NFL/Pre Match", "a/*",
                             "a/b/*", "a//", "a/b//", "*", "//"}) {
        const auto selector = parsed(text);
        EXPECT_EQ(selector.text(), text);
        EXPECT_EQ(Selector::parse(selector.text()), selector);
    }
}

} // namespace
} // namespace brook::runtime
