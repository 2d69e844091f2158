// Unit tests: the permissions file (auth.permissions_file): who gets which rules, allow and
// deny per path, which subscriptions may deliver anything, and the errors a bad file gets.
#include <gtest/gtest.h>

#include <string>

#include "brook/runtime/permissions.hpp"

namespace brook::runtime {
namespace {

Selector parsed(std::string_view text) {
  auto selector = Selector::parse(text);
  EXPECT_TRUE(selector.has_value()) << text;
  return selector.value_or(Selector{});
}

std::shared_ptr<const Permissions> parsed_file(std::string_view text) {
  std::string error;
  auto permissions = Permissions::parse(text, error);
  EXPECT_TRUE(permissions) << error;
  return permissions;
}

std::string refusal(std::string_view text) {
  std::string error;
  EXPECT_FALSE(Permissions::parse(text, error)) << text;
  return error;
}

constexpr std::string_view betting = R"(
[groups]
customers = ["bob", "carol"]
traders = ["dave"]
[default]
subscribe = ["Odds/public//"]
[anonymous]
subscribe = ["Odds/public/headline"]
[principal.feed]
publish = ["Odds//"]
deny_publish = ["Odds/admin//"]
[group.customers]
subscribe = ["Odds//"]
deny_subscribe = ["Odds/internal//"]
request = ["Bets/place"]
[group.traders]
subscribe = ["Odds/internal/*"]
[principal.dave]
handle = ["Bets/place"]
)";

TEST(Permissions, a_principal_gets_its_own_rules_and_its_groups) {
  auto p = parsed_file(betting);
  ASSERT_TRUE(p);
  const auto& feed = p->rules_for("feed");
  EXPECT_TRUE(feed.allows(Operation::publish, "Odds/nfl/kc-buf"));
  EXPECT_FALSE(feed.allows(Operation::publish, "Odds/admin/limits")) << "deny wins";
  EXPECT_FALSE(feed.allows(Operation::subscribe, "Odds/nfl/kc-buf")) << "nothing allowed is denied";
  const auto& bob = p->rules_for("bob");
  EXPECT_TRUE(bob.allows(Operation::subscribe, "Odds/nfl/kc-buf"));
  EXPECT_FALSE(bob.allows(Operation::subscribe, "Odds/internal/margin"));
  EXPECT_TRUE(bob.allows(Operation::request, "Bets/place"));
  EXPECT_FALSE(bob.allows(Operation::handle, "Bets/place"));
  EXPECT_FALSE(bob.allows(Operation::publish, "Odds/nfl/kc-buf"));
  const auto& dave = p->rules_for("dave");  // a group member with a table of his own too
  EXPECT_TRUE(dave.allows(Operation::subscribe, "Odds/internal/margin"));
  EXPECT_FALSE(dave.allows(Operation::subscribe, "Odds/internal/margin/eu"));
  EXPECT_TRUE(dave.allows(Operation::handle, "Bets/place"));
}

TEST(Permissions, principals_named_nowhere_get_the_default_and_anonymous_its_own) {
  auto p = parsed_file(betting);
  ASSERT_TRUE(p);
  EXPECT_TRUE(p->rules_for("erin").allows(Operation::subscribe, "Odds/public/headline"));
  EXPECT_TRUE(p->rules_for("erin").allows(Operation::subscribe, "Odds/public/nfl"));
  EXPECT_TRUE(p->rules_for("anonymous").allows(Operation::subscribe, "Odds/public/headline"));
  EXPECT_FALSE(p->rules_for("anonymous").allows(Operation::subscribe, "Odds/public/nfl"));
  EXPECT_FALSE(p->rules_for("").allows(Operation::publish, "Odds/public/nfl"));
}

TEST(Permissions, an_empty_file_allows_nothing) {
  auto p = parsed_file("");
  ASSERT_TRUE(p);
  EXPECT_FALSE(p->rules_for("bob").allows(Operation::subscribe, "a"));
  EXPECT_FALSE(p->rules_for("bob").may_subscribe(parsed("//")));
}

TEST(Permissions, a_subscription_may_deliver_when_an_allowed_selector_overlaps_it_and_no_deny_covers_it) {
  auto p = parsed_file(betting);
  ASSERT_TRUE(p);
  const auto& bob = p->rules_for("bob");
  EXPECT_TRUE(bob.may_subscribe(parsed("//")));
  EXPECT_TRUE(bob.may_subscribe(parsed("Odds/*")));
  EXPECT_TRUE(bob.may_subscribe(parsed("Odds/nfl/kc-buf")));
  EXPECT_FALSE(bob.may_subscribe(parsed("Bets//")));
  EXPECT_FALSE(bob.may_subscribe(parsed("Odds/internal//")));
  EXPECT_FALSE(bob.may_subscribe(parsed("Odds/internal/*")));
  EXPECT_FALSE(bob.may_subscribe(parsed("Odds/internal/margin")));
  const auto& anonymous = p->rules_for("anonymous");
  EXPECT_TRUE(anonymous.may_subscribe(parsed("Odds/public/*")));
  EXPECT_FALSE(anonymous.may_subscribe(parsed("Odds/nfl//")));
}

TEST(Permissions, selectors_overlap_when_some_path_matches_both) {
  EXPECT_TRUE(selectors_overlap(parsed("a//"), parsed("a/b/*")));
  EXPECT_TRUE(selectors_overlap(parsed("a/*"), parsed("a/b//")));
  EXPECT_FALSE(selectors_overlap(parsed("a/*"), parsed("a/b/c//")));
  EXPECT_TRUE(selectors_overlap(parsed("*"), parsed("a")));
  EXPECT_FALSE(selectors_overlap(parsed("*"), parsed("a/b")));
  EXPECT_FALSE(selectors_overlap(parsed("a/*"), parsed("b/*")));
  EXPECT_FALSE(selectors_overlap(parsed("a/b"), parsed("a/c")));
  EXPECT_TRUE(selectors_overlap(parsed("//"), parsed("x/y")));
  EXPECT_FALSE(selectors_overlap(parsed("ab//"), parsed("a//")));
}

TEST(Permissions, a_selector_covers_another_when_it_matches_all_its_paths) {
  EXPECT_TRUE(selector_covers(parsed("a//"), parsed("a/b/*")));
  EXPECT_TRUE(selector_covers(parsed("a//"), parsed("a")));
  EXPECT_TRUE(selector_covers(parsed("//"), parsed("*")));
  EXPECT_FALSE(selector_covers(parsed("a/*"), parsed("a//")));
  EXPECT_TRUE(selector_covers(parsed("a/*"), parsed("a/b")));
  EXPECT_FALSE(selector_covers(parsed("a/b"), parsed("a/b//")));
  EXPECT_FALSE(selector_covers(parsed("a/b//"), parsed("a//")));
}

TEST(Permissions, a_bad_file_is_refused_with_the_line) {
  EXPECT_NE(refusal("[principal.bob]\npublsh = [\"a\"]\n").find("line 2"), std::string::npos);
  EXPECT_NE(refusal("[principal.bob]\npublish = [\"a/*/b\"]\n").find("not a selector"), std::string::npos);
  EXPECT_NE(refusal("[principal.bob]\npublish = \"a\"\n").find("array"), std::string::npos);
  EXPECT_NE(refusal("[roles]\n").find("unknown table"), std::string::npos);
  EXPECT_NE(refusal("[groups]\ncustomers = [1]\n").find("principals"), std::string::npos);
  EXPECT_NE(refusal("[principal.bob\n").find("line 1"), std::string::npos);
}

}  // namespace
}  // namespace brook::runtime
