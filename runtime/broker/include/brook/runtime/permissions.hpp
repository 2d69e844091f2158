#pragma once
// Who may do what: the permissions file (auth.permissions_file), read once at start. Each
// principal gets allow and deny selectors for four operations: publish (topic paths; also
// creating a topic), subscribe (topics delivered), request and handle (endpoint paths). A
// path is allowed when an allow selector matches it and no deny selector does.
//
//   [groups]
//   customers = ["alice", "bob"]
//   [default]                     # principals no table and no group names
//   subscribe = ["Odds//"]
//   [anonymous]                   # connections without a principal
//   subscribe = ["Odds/public//"]
//   [principal.feed-eu]           # one principal; [group.NAME] for a group's members
//   publish = ["Odds//"]
//   deny_publish = ["Odds/admin//"]
//
// A principal's rules are its own table's and its groups' together. Decisions are made once
// per topic and subscription (the shards keep them), never per delivered message.
//
// Immutable once loaded: shards share one instance through a shared_ptr.
#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "brook/runtime/selector.hpp"

namespace brook::runtime {

enum class Operation : std::uint8_t { publish, subscribe, request, handle };
std::string_view to_string(Operation operation);

// One principal's rules.
class PrincipalRules {
 public:
  // `path` is a valid topic or endpoint path.
  bool allows(Operation operation, std::string_view path) const noexcept;
  // Whether a subscription to `selector` may deliver anything: some allowed path matches it
  // and the deny rules do not cover all of it. The topics it delivers are still checked one
  // by one (allows(subscribe, path)).
  bool may_subscribe(const Selector& selector) const noexcept;

  void allow(Operation operation, Selector selector);
  void deny(Operation operation, Selector selector);
  void merge(const PrincipalRules& other);

 private:
  struct Grant {
    std::vector<Selector> allowed, denied;
  };
  std::array<Grant, 4> grants_;
};

class Permissions {
 public:
  // Null and `error` set (with the file, and the line where it can be told) when the file
  // cannot be read or says something this does not understand.
  static std::shared_ptr<const Permissions> load(const std::filesystem::path& path, std::string& error);
  static std::shared_ptr<const Permissions> parse(std::string_view text, std::string& error);

  // The anonymous principal's name is "anonymous".
  const PrincipalRules& rules_for(std::string_view principal) const noexcept;

 private:
  std::unordered_map<std::string, PrincipalRules> principals_;
  PrincipalRules anonymous_;
  PrincipalRules default_;
};

// Whether some path matches both selectors; whether every path `inner` matches, `outer` does.
bool selectors_overlap(const Selector& a, const Selector& b) noexcept;
bool selector_covers(const Selector& outer, const Selector& inner) noexcept;

}  // namespace brook::runtime
