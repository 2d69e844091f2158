// Permissions on a shard: a session's principal is looked up in the permissions file once,
// and each call it makes is checked where the shard first handles it (a publisher's topic
// when it changes, a subscription when it is made and each topic when it is bound, an
// endpoint per request or handler). Nothing is checked per delivered message. A reload
// (SIGHUP) reaches each shard at its next turn: what a principal lost stops at once.
#include <mutex>

#include "shard.hpp"

namespace brook::runtime {

const PrincipalRules* Shard::rules_of(Session& s) {
  if (!permissions_) return nullptr;
  if (!s.rules) s.rules = &permissions_->rules_for(s.principal);
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

void Shard::take_permissions() {
  {
    std::lock_guard lock(mesh_.reload_mutex);
    permissions_generation_ = mesh_.permissions_generation.load(std::memory_order_relaxed);
    if (permissions_ == mesh_.permissions) return;
    // The sessions' rules point into the old instance: looked up again below before it goes.
    permissions_ = mesh_.permissions;
  }
  std::vector<std::uint64_t> revoked_topics;
  std::vector<std::string> revoked_endpoints;
  for (auto& owned : sessions_) {
    Session* s = owned.get();
    if (!s) continue;
    s->rules = nullptr;
    s->last_publish_path.clear();  // its next publish is checked again
    const PrincipalRules* rules = rules_of(*s);
    if (!rules || s->ended) continue;
    revoked_topics.clear();
    for (const auto& [topic_key, binding] : s->bindings) {
      auto topic = local_topics_.find(topic_key);
      if (topic != local_topics_.end() && !rules->allows(Operation::subscribe, topic->second.path))
        revoked_topics.push_back(topic_key);
    }
    for (std::uint64_t topic_key : revoked_topics) unbind(*s, topic_key);
    revoked_endpoints.clear();
    for (const auto& [path, sticky] : s->handled_endpoints)
      if (!rules->allows(Operation::handle, path)) revoked_endpoints.push_back(path);
    for (const std::string& path : revoked_endpoints) {
      s->handled_endpoints.erase(path);
      fail_served(*s, path, "handler gone: its permission to handle '" + path + "' was withdrawn");
      send_to(owner_of(path), {ShardMessageKind::remove_handler, 0, 0, 0, session_token(*s), 0, 0,
                               text_buffer(pool_, path)});
    }
  }
}

}  // namespace brook::runtime
