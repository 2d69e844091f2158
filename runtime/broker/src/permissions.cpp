#include "brook/runtime/permissions.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace brook::runtime {

namespace {

constexpr std::string_view anonymous_principal = "anonymous";

// `path` is `root` or below it; "" is the root of every path.
bool within(std::string_view path, std::string_view root) noexcept {
  if (root.empty()) return true;
  return path == root || (path.size() > root.size() && path.starts_with(root) && path[root.size()] == '/');
}

// `path` is one level below `parent`.
bool is_child(std::string_view path, std::string_view parent) noexcept {
  if (parent.empty()) return !path.empty() && path.find('/') == std::string_view::npos;
  return within(path, parent) && path != parent && path.find('/', parent.size() + 1) == std::string_view::npos;
}

constexpr std::array<std::pair<std::string_view, Operation>, 4> operation_keys{{
    {"publish", Operation::publish},
    {"subscribe", Operation::subscribe},
    {"request", Operation::request},
    {"handle", Operation::handle},
}};

std::string where(const toml::node& node) {
  const auto& source = node.source();
  return source.begin.line > 0 ? "line " + std::to_string(source.begin.line) + ": " : std::string();
}

// One table's rules ([default], [anonymous], [principal.X], [group.X]).
bool read_rules(const toml::table& table, const std::string& name, PrincipalRules& rules, std::string& error) {
  for (const auto& [key, value] : table) {
    std::string_view k = key.str();
    const bool deny = k.starts_with("deny_");
    if (deny) k.remove_prefix(5);
    auto found = std::find_if(operation_keys.begin(), operation_keys.end(), [&](const auto& p) { return p.first == k; });
    if (found == operation_keys.end()) {
      error = where(value) + "[" + name + "]: unknown key '" + std::string(key.str()) +
              "' (publish, subscribe, request, handle, or deny_ and one of them)";
      return false;
    }
    const auto* array = value.as_array();
    if (!array) {
      error = where(value) + "[" + name + "]." + std::string(key.str()) + " must be an array of selectors";
      return false;
    }
    for (const auto& item : *array) {
      auto text = item.value<std::string>();
      auto selector = text ? Selector::parse(*text) : std::nullopt;
      if (!selector) {
        error = where(item) + "[" + name + "]." + std::string(key.str()) + ": '" + text.value_or("?") +
                "' is not a selector (PATH, PATH/* or PATH//)";
        return false;
      }
      if (deny) rules.deny(found->second, std::move(*selector));
      else rules.allow(found->second, std::move(*selector));
    }
  }
  return true;
}

}  // namespace

std::string_view to_string(Operation operation) {
  switch (operation) {
    case Operation::publish: return "publish";
    case Operation::subscribe: return "subscribe";
    case Operation::request: return "request";
    case Operation::handle: return "handle";
  }
  return "?";
}

bool selectors_overlap(const Selector& a, const Selector& b) noexcept {
  using K = SelectorKind;
  if (a.kind == K::exact) return b.matches(a.base);
  if (b.kind == K::exact) return a.matches(b.base);
  if (a.kind == K::children && b.kind == K::children) return a.base == b.base;
  if (a.kind == K::descendants && b.kind == K::descendants) return within(a.base, b.base) || within(b.base, a.base);
  const Selector& children = a.kind == K::children ? a : b;
  const Selector& descendants = a.kind == K::children ? b : a;
  // Some child of `children.base` lies within `descendants.base`'s subtree.
  return within(children.base, descendants.base) || is_child(descendants.base, children.base);
}

bool selector_covers(const Selector& outer, const Selector& inner) noexcept {
  using K = SelectorKind;
  switch (outer.kind) {
    case K::descendants: return within(inner.base, outer.base);
    case K::children: return inner.kind == K::exact ? is_child(inner.base, outer.base) : inner == outer;
    case K::exact: return inner.kind == K::exact && inner.base == outer.base;
  }
  return false;
}

bool PrincipalRules::allows(Operation operation, std::string_view path) const noexcept {
  const Grant& g = grants_[static_cast<std::size_t>(operation)];
  auto matches = [&](const Selector& s) { return s.matches(path); };
  return std::any_of(g.allowed.begin(), g.allowed.end(), matches) &&
         std::none_of(g.denied.begin(), g.denied.end(), matches);
}

bool PrincipalRules::may_subscribe(const Selector& selector) const noexcept {
  const Grant& g = grants_[static_cast<std::size_t>(Operation::subscribe)];
  return std::any_of(g.allowed.begin(), g.allowed.end(), [&](const Selector& s) { return selectors_overlap(s, selector); }) &&
         std::none_of(g.denied.begin(), g.denied.end(), [&](const Selector& s) { return selector_covers(s, selector); });
}

void PrincipalRules::allow(Operation operation, Selector selector) {
  grants_[static_cast<std::size_t>(operation)].allowed.push_back(std::move(selector));
}

void PrincipalRules::deny(Operation operation, Selector selector) {
  grants_[static_cast<std::size_t>(operation)].denied.push_back(std::move(selector));
}

void PrincipalRules::merge(const PrincipalRules& other) {
  for (std::size_t i = 0; i < grants_.size(); ++i) {
    auto& mine = grants_[i];
    const auto& theirs = other.grants_[i];
    mine.allowed.insert(mine.allowed.end(), theirs.allowed.begin(), theirs.allowed.end());
    mine.denied.insert(mine.denied.end(), theirs.denied.begin(), theirs.denied.end());
  }
}

const PrincipalRules& Permissions::rules_for(std::string_view principal) const noexcept {
  if (principal.empty() || principal == anonymous_principal) return anonymous_;
  auto it = principals_.find(std::string(principal));
  return it == principals_.end() ? default_ : it->second;
}

std::shared_ptr<const Permissions> Permissions::load(const std::filesystem::path& path, std::string& error) {
  std::ifstream file(path);
  if (!file) {
    error = path.string() + ": cannot open";
    return nullptr;
  }
  std::stringstream text;
  text << file.rdbuf();
  auto permissions = parse(text.str(), error);
  if (!permissions) error = path.string() + ": " + error;
  return permissions;
}

std::shared_ptr<const Permissions> Permissions::parse(std::string_view text, std::string& error) {
  toml::table config;
  try {
    config = toml::parse(text);
  } catch (const toml::parse_error& e) {
    error = "line " + std::to_string(e.source().begin.line) + ": " + std::string(e.description());
    return nullptr;
  }
  auto permissions = std::make_shared<Permissions>();
  std::unordered_map<std::string, std::vector<std::string>> members;  // group -> principals
  std::unordered_map<std::string, PrincipalRules> groups;
  for (const auto& [key, value] : config) {
    const std::string section(key.str());
    const auto* table = value.as_table();
    if (!table) {
      error = where(value) + "'" + section + "' must be a table ([" + section + "])";
      return nullptr;
    }
    if (section == "default" || section == "anonymous") {
      if (!read_rules(*table, section, section == "default" ? permissions->default_ : permissions->anonymous_, error))
        return nullptr;
    } else if (section == "principal" || section == "group") {
      for (const auto& [name, rules] : *table) {
        const auto* rules_table = rules.as_table();
        const std::string label = section + "." + std::string(name.str());
        if (!rules_table) {
          error = where(rules) + "'" + label + "' must be a table ([" + label + "])";
          return nullptr;
        }
        auto& into = section == "principal" ? permissions->principals_[std::string(name.str())]
                                            : groups[std::string(name.str())];
        if (!read_rules(*rules_table, label, into, error)) return nullptr;
      }
    } else if (section == "groups") {
      for (const auto& [group, list] : *table) {
        const auto* array = list.as_array();
        if (!array) {
          error = where(list) + "groups." + std::string(group.str()) + " must be an array of principals";
          return nullptr;
        }
        for (const auto& item : *array) {
          auto name = item.value<std::string>();
          if (!name || name->empty()) {
            error = where(item) + "groups." + std::string(group.str()) + " must be an array of principals";
            return nullptr;
          }
          members[std::string(group.str())].push_back(*name);
        }
      }
    } else {
      error = where(value) + "unknown table [" + section + "] (default, anonymous, groups, principal.NAME, group.NAME)";
      return nullptr;
    }
  }
  for (const auto& [group, names] : members) {
    auto rules = groups.find(group);
    for (const auto& name : names) {
      auto& principal = permissions->principals_[name];  // named in a group: not a default principal
      if (rules != groups.end()) principal.merge(rules->second);
    }
  }
  return permissions;
}

}  // namespace brook::runtime
