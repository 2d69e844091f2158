#include "brook/runtime/broker_options.hpp"

#include <bit>
#include <fstream>
#include <sstream>
#include <thread>
#include <toml++/toml.h>

namespace brook::runtime {

namespace {
// MemTotal from /proc/meminfo, in bytes (0 when unreadable).
std::uint64_t machine_memory_bytes() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key, unit;
  std::uint64_t kib = 0;
  while (meminfo >> key >> kib >> unit)
    if (key == "MemTotal:") return kib * 1024;
  return 0;
}
// The cgroup v2 limit of this process (memory.max), or 0 when there is none.
std::uint64_t cgroup_memory_limit() {
  std::ifstream cgroup("/proc/self/cgroup");
  std::string line;
  while (std::getline(cgroup, line)) {
    if (line.rfind("0::", 0) != 0) continue;
    std::ifstream max("/sys/fs/cgroup" + line.substr(3) + "/memory.max");
    std::string value;
    if (max >> value && value != "max") return std::strtoull(value.c_str(), nullptr, 10);
  }
  return 0;
}
}  // namespace

std::uint64_t resolve_memory_budget(const BrokerOptions& options) {
  if (options.max_memory_bytes != 0) return options.max_memory_bytes;
  std::uint64_t available = machine_memory_bytes();
  if (std::uint64_t limit = cgroup_memory_limit(); limit != 0 && (available == 0 || limit < available))
    available = limit;
  if (available == 0) return 1ull << 30;  // nothing to go by: 1 GiB
  return std::max<std::uint64_t>(available / 2, 64ull << 20);
}

std::string BrokerOptions::validate() const {
  if (http_tls && (tls_cert_file.empty() || tls_key_file.empty()))
    return "http.tls needs tls.cert_file and tls.key_file";
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
  if (tls_min_version != "1.3" && tls_min_version != "1.2") return "tls.min_version must be \"1.2\" or \"1.3\"";
  if (!tls_listen.empty() && (tls_cert_file.empty() || tls_key_file.empty()))
    return "tls.listen needs tls.cert_file and tls.key_file";
  if (!ws_tls_listen.empty() && (tls_cert_file.empty() || tls_key_file.empty()))
    return "ws.tls_listen needs tls.cert_file and tls.key_file";
  if (tls_verify_clients && tls_ca_file.empty()) return "tls.verify_clients needs tls.ca_file";
  if (tls_principal_from_certificate && !tls_verify_clients)
    return "tls.principal_from_certificate needs tls.verify_clients (an unverified certificate proves nothing)";
  if (tls_principal_name != "common_name" && tls_principal_name != "dns" && tls_principal_name != "email")
    return "tls.principal_name must be \"common_name\", \"dns\" or \"email\"";
  if (request_max_in_flight < 1) return "requests.max_in_flight must be at least 1";
  if (idle_spin_us > 100'000) return "broker.idle_spin_us must be at most 100000 (or -1: automatic)";
  if (send_coalesce_us > 10'000) return "broker.send_coalesce_us must be at most 10000";
  if (mailbox_capacity < 64) return "shards.mailbox_capacity must be at least 64";
  if (max_memory_bytes != 0 && max_memory_bytes < (64ull << 20))
    return "limits.max_memory_bytes must be at least 67108864 (64 MiB), or 0 for half of the machine's memory";
  if (!std::has_single_bit(recv_buffer_count) || recv_buffer_count > 32768)
    return "io.recv_buffer_count must be a power of two up to 32768";
  if (flow_high_water_bytes != 0) {
    if (flow_low_water_bytes >= flow_high_water_bytes)
      return "flow.low_water_bytes must be below flow.high_water_bytes";
    if (flow_max_stall_ms == 0) return "flow.max_stall_ms must be at least 1";
  }
  if (storage_sync_interval_ms < 1) return "storage.sync_interval_ms must be at least 1";
  if (storage_segment_bytes < (64u << 10) || storage_segment_bytes > (1ull << 32))
    return "storage.segment_bytes must be between 65536 and 4294967296";
  if (history_depth > (1u << 24)) return "history.depth must be at most 16777216";
  if (history_memory_bytes < 4096) return "history.memory_bytes must be at least 4096";
  if (recv_buffer_bytes < 4096) return "io.recv_buffer_bytes must be at least 4096";
  if (shm_ring_bytes < 4096 || !std::has_single_bit(shm_ring_bytes))
    return "shm.ring_bytes must be a power of two of at least 4096";
  if (shm_broadcast_bytes < 65536 || !std::has_single_bit(shm_broadcast_bytes))
    return "shm.broadcast_bytes must be a power of two of at least 65536";
  return {};
}

std::uint32_t resolve_idle_spin_us(const BrokerOptions& options, unsigned shard_count) {
  if (options.idle_spin_us >= 0) return static_cast<std::uint32_t>(options.idle_spin_us);
  return shard_count < std::thread::hardware_concurrency() ? 50 : 0;
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
  read("broker", "idle_spin_us", o.idle_spin_us);
  read("broker", "send_coalesce_us", o.send_coalesce_us);
  read("broker", "send_coalesce_rate", o.send_coalesce_rate);
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
  read("limits", "max_memory_bytes", o.max_memory_bytes);
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
  read("flow", "high_water_bytes", o.flow_high_water_bytes);
  read("flow", "low_water_bytes", o.flow_low_water_bytes);
  read("flow", "max_stall_ms", o.flow_max_stall_ms);
  read("session", "reconnect_timeout_ms", o.reconnect_timeout_ms);
  read("session", "reconnect_timeout_max_ms", o.reconnect_timeout_max_ms);
  read("session", "ping_interval_ms", o.ping_interval_ms);
  read("session", "connect_timeout_ms", o.connect_timeout_ms);
  read("auth", "credentials_file", o.credentials_file);
  read("auth", "allow_anonymous", o.allow_anonymous);
  read("auth", "permissions_file", o.permissions_file);
  read("tls", "listen", o.tls_listen);
  read("tls", "cert_file", o.tls_cert_file);
  read("tls", "key_file", o.tls_key_file);
  read("tls", "ca_file", o.tls_ca_file);
  read("tls", "verify_clients", o.tls_verify_clients);
  read("tls", "principal_from_certificate", o.tls_principal_from_certificate);
  read("tls", "principal_name", o.tls_principal_name);
  read("tls", "min_version", o.tls_min_version);
  read("ws", "listen", o.ws_listen);
  read("ws", "tls_listen", o.ws_tls_listen);
  read("ws", "static_dir", o.ws_static_dir);
  read("http", "listen", o.http_listen);
  read("http", "credentials_file", o.http_credentials_file);
  read("http", "tls", o.http_tls);
  read("http", "console_dir", o.http_console_dir);
  if (auto node = config["ws"]["allowed_origins"]) {
    auto* array = node.as_array();
    if (!array) return "ws.allowed_origins must be an array of strings";
    o.ws_allowed_origins.clear();
    for (auto& item : *array) {
      auto origin = item.value<std::string>();
      if (!origin) return "ws.allowed_origins must be an array of strings";
      o.ws_allowed_origins.push_back(*origin);
    }
  }
  read("requests", "sticky", o.requests_sticky);
  read("requests", "timeout_max_ms", o.request_timeout_max_ms);
  read("requests", "max_in_flight", o.request_max_in_flight);
  read("shards", "mailbox_capacity", o.mailbox_capacity);
  read("storage", "data_dir", o.data_dir);
  if (auto sync = config["storage"]["sync"]) {
    auto text = sync.value<std::string>();
    if (text == "always") o.storage_sync = StorageSync::always;
    else if (text == "interval") o.storage_sync = StorageSync::interval;
    else if (text == "never") o.storage_sync = StorageSync::never;
    else return "storage.sync must be \"always\", \"interval\" or \"never\"";
  }
  read("storage", "sync_interval_ms", o.storage_sync_interval_ms);
  read("storage", "segment_bytes", o.storage_segment_bytes);
  read("history", "depth", o.history_depth);
  read("history", "max_bytes", o.history_max_bytes);
  read("history", "max_age_ms", o.history_max_age_ms);
  read("history", "memory_bytes", o.history_memory_bytes);
  read("io", "recv_buffer_count", o.recv_buffer_count);
  read("io", "recv_buffer_bytes", o.recv_buffer_bytes);
  return o.validate();
}

}  // namespace brook::runtime
