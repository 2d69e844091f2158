#include "brook/runtime/broker_options.hpp"

#include <bit>
#include <toml++/toml.h>

namespace brook::runtime {

std::string BrokerOptions::validate() const {
  if (shards > 64) return "shards must be at most 64";
  if (max_frame_bytes < 1024) return "limits.max_frame_bytes must be at least 1024";
  if (session_queue_max_frames < 16) return "session.queue_max_frames must be at least 16";
  if (session_queue_max_bytes < max_frame_bytes)
    return "session.queue_max_bytes must be at least limits.max_frame_bytes";
  if (reconnect_timeout_ms > reconnect_timeout_max_ms)
    return "session.reconnect_timeout_ms must not exceed session.reconnect_timeout_max_ms";
  if (ping_interval_ms < 1) return "session.ping_interval_ms must be at least 1";
  if (connect_timeout_ms < 1) return "session.connect_timeout_ms must be at least 1";
  if (request_timeout_max_ms < 1) return "requests.timeout_max_ms must be at least 1";
  if (request_max_in_flight < 1) return "requests.max_in_flight must be at least 1";
  if (mailbox_capacity < 64) return "shards.mailbox_capacity must be at least 64";
  if (!std::has_single_bit(recv_buffer_count) || recv_buffer_count > 32768)
    return "io.recv_buffer_count must be a power of two up to 32768";
  if (recv_buffer_bytes < 4096) return "io.recv_buffer_bytes must be at least 4096";
  if (shm_ring_bytes < 4096 || !std::has_single_bit(shm_ring_bytes))
    return "shm.ring_bytes must be a power of two of at least 4096";
  if (shm_broadcast_bytes < 65536 || !std::has_single_bit(shm_broadcast_bytes))
    return "shm.broadcast_bytes must be a power of two of at least 65536";
  return {};
}

std::string load_broker_options(const std::string& path, BrokerOptions& o) {
  toml::table config;
  try {
    config = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return "cannot read " + path + ": " + std::string(e.description());
  }
  auto read = [&](const char* section, const char* key, auto& field) {
    using T = std::remove_reference_t<decltype(field)>;
    auto node = config[section][key];
    if (!node) return;
    if constexpr (std::is_same_v<T, std::string>) {
      if (auto v = node.template value<std::string>()) field = *v;
    } else if constexpr (std::is_same_v<T, bool>) {
      if (auto v = node.template value<bool>()) field = *v;
    } else {
      if (auto v = node.template value<std::int64_t>(); v && *v >= 0) field = static_cast<T>(*v);
    }
  };
  read("broker", "listen", o.listen);
  read("broker", "shards", o.shards);
  read("broker", "pin_threads", o.pin_threads);
  read("broker", "spin", o.spin);
  read("broker", "drain_ms", o.drain_ms);
  read("shm", "path", o.shm_path);
  read("shm", "ring_bytes", o.shm_ring_bytes);
  read("shm", "broadcast_bytes", o.shm_broadcast_bytes);
  for (auto [key, list] : {std::pair{"allow_uids", &o.shm_allow_uids}, std::pair{"allow_gids", &o.shm_allow_gids}}) {
    auto node = config["shm"][key];
    if (!node) continue;
    auto* array = node.as_array();
    if (!array) return std::string("shm.") + key + " must be an array of numbers";
    list->clear();
    for (auto& item : *array) {
      auto id = item.value<std::int64_t>();
      if (!id || *id < 0 || *id > 0xffffffffLL) return std::string("shm.") + key + " must be an array of numbers";
      list->push_back(static_cast<std::uint32_t>(*id));
    }
  }
  read("limits", "max_frame_bytes", o.max_frame_bytes);
  read("limits", "max_connections_per_shard", o.max_connections_per_shard);
  read("session", "queue_max_frames", o.session_queue_max_frames);
  read("session", "queue_max_bytes", o.session_queue_max_bytes);
  read("session", "recovery_bytes", o.session_recovery_bytes);
  if (auto node = config["session"]["queue_limit_policy"]) {
    auto policy = node.value<std::string>();
    if (policy == "close") o.queue_limit_policy = QueueLimitPolicy::close;
    else if (policy == "drop-oldest") o.queue_limit_policy = QueueLimitPolicy::drop_oldest;
    else return "session.queue_limit_policy must be \"close\" or \"drop-oldest\"";
  }
  read("session", "conflate_after_bytes", o.conflate_after_bytes);
  read("session", "reconnect_timeout_ms", o.reconnect_timeout_ms);
  read("session", "reconnect_timeout_max_ms", o.reconnect_timeout_max_ms);
  read("session", "ping_interval_ms", o.ping_interval_ms);
  read("session", "connect_timeout_ms", o.connect_timeout_ms);
  read("auth", "credentials_file", o.credentials_file);
  read("auth", "allow_anonymous", o.allow_anonymous);
  read("requests", "sticky", o.requests_sticky);
  read("requests", "timeout_max_ms", o.request_timeout_max_ms);
  read("requests", "max_in_flight", o.request_max_in_flight);
  read("shards", "mailbox_capacity", o.mailbox_capacity);
  read("io", "recv_buffer_count", o.recv_buffer_count);
  read("io", "recv_buffer_bytes", o.recv_buffer_bytes);
  return o.validate();
}

}  // namespace brook::runtime
