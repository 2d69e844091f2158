#pragma once
// Which shard owns a topic: its path's hash modulo the shard count. Every update of a topic
// passes through its owner, which is what keeps a topic's updates in order.
#include <xxhash.h>

#include <string_view>

namespace brook::runtime {

inline unsigned topic_owner(std::string_view path, unsigned shard_count) noexcept {
  return static_cast<unsigned>(XXH3_64bits(path.data(), path.size()) % shard_count);
}

}  // namespace brook::runtime
