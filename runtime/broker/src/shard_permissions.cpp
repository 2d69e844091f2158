// Permissions on a shard: a session's principal is looked up in the permissions file once,
// and each call it makes is checked where the shard first handles it (a publisher's topic
// when it changes, a subscription when it is made and each topic when it is bound, an
// endpoint per request or handler). Nothing is checked per delivered message.
#include "shard.hpp"

namespace brook::runtime {

const PrincipalRules* Shard::rules_of(Session& s) {
  if (!mesh_.permissions) return nullptr;
  if (!s.rules) s.rules = &mesh_.permissions->rules_for(s.principal);
  return s.rules;
}

bool Shard::permitted(Session& s, Operation operation, std::string_view path, std::uint32_t request_id) {
  const PrincipalRules* rules = rules_of(s);
  if (!rules || rules->allows(operation, path)) return true;
  ++counters_.permission_denials;
  const char* preposition = operation == Operation::publish ? "' may not publish to '" : "' may not handle '";
  refuse(s, codec::ErrorCode::permission_denied, request_id,
         "permission denied: principal '" + s.principal + preposition + std::string(path) + "'");
  return false;
}

}  // namespace brook::runtime
