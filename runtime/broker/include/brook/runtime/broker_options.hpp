#pragma once
// The broker's settings: defaults beside the names, units in the names. Loaded once from a TOML
// file and the command line, validated by validate() before the broker starts.
#include <cstdint>
#include <string>
#include <vector>

namespace brook::runtime {

enum class QueueLimitPolicy : std::uint8_t { close, drop_oldest };

// When a journalled update counts as durable (and publish_acked is answered).
enum class StorageSync : std::uint8_t {
  always,    // after fdatasync returned: on disk, whatever happens to the machine
  interval,  // after the write: safe from a crash of brookd; on disk within sync_interval_ms
  never,     // after the write: safe from a crash of brookd; the kernel writes back when it likes
};

struct BrokerOptions {
  std::string listen = "127.0.0.1:9090";        // HOST:PORT; port 0 picks a free one
  unsigned shards = 0;                           // 0 = one per core
  bool pin_threads = true;                       // pin shard i to core i % cores
  std::uint32_t max_frame_bytes = 8u << 20;      // larger inbound frames close the connection
  std::uint32_t session_queue_max_frames = 1u << 20; // outbound frames queued per session
  std::uint64_t session_queue_max_bytes = 64u << 20; // outbound bytes queued per session
  std::uint64_t session_recovery_bytes = 8u << 20;   // sent bytes kept per session for replay
  // At the queue limit: "close" ends the session (reason "queue limit"); "drop-oldest" drops
  // its unsent updates and resynchronises it with current values.
  QueueLimitPolicy queue_limit_policy = QueueLimitPolicy::close;
  // Conflated topics replace a subscriber's queued update once it is this far behind (unsent
  // bytes, with its connection full), or while it is disconnected.
  std::uint64_t conflate_after_bytes = 1u << 20;
  // Flow control: a subscriber whose unsent queue passes the high-water mark holds back the
  // publishers feeding it (the broker stops reading their connections) until it is under the
  // low-water mark again. A subscriber that takes nothing for flow_max_stall_ms while holding
  // them gets the queue-limit policy and lets them go. flow_high_water_bytes = 0: off. The
  // marks are capped at half the session queue's limits (bytes and frames), so that a queue
  // never reaches its limit while its subscriber still drains.
  std::uint64_t flow_high_water_bytes = 1u << 20;
  std::uint64_t flow_low_water_bytes = 256u << 10;
  std::uint32_t flow_max_stall_ms = 2000;
  std::uint32_t reconnect_timeout_ms = 60'000;       // when the client does not say
  // On SIGTERM: how long to send the sessions their queues and last Received before exiting.
  std::uint32_t drain_ms = 2000;
  std::uint32_t reconnect_timeout_max_ms = 3'600'000; // the most a client may ask for
  std::uint32_t ping_interval_ms = 90'000;           // ping a connection quiet this long
  std::uint32_t connect_timeout_ms = 10'000;         // a new connection must send Connect by then
  std::string credentials_file;                      // PRINCIPAL:HASH lines (brook passwd)
  bool allow_anonymous = true;                       // sessions without a principal
  std::string permissions_file;                      // who may publish, subscribe, request, handle (permissions.hpp)
  // TLS: a second listener (tls.listen, --tls-listen) beside the plain one, with the broker's
  // certificate; clients verified against tls_ca_file when tls_verify_clients.
  std::string tls_listen;
  std::string tls_cert_file;
  std::string tls_key_file;
  std::string tls_ca_file;
  bool tls_verify_clients = false;
  // With tls_verify_clients: a name from the client certificate is the principal, proven as by
  // a password (a Connect that names another principal is refused). Which name:
  // tls_principal_name, "common_name" (the subject's CN) or the first subject alternative
  // name of a kind: "dns" or "email" (a URI's ':' and '/' are not principal characters).
  bool tls_principal_from_certificate = false;
  std::string tls_principal_name = "common_name";
  std::string tls_min_version = "1.3";  // or "1.2"
  // WebSocket listeners (ws.*): ws_listen plain (--ws), ws_tls_listen inside TLS (--wss, with
  // tls.cert_file and tls.key_file). Origins let in: empty, any (a request without an Origin,
  // not from a browser, always is).
  std::string ws_listen;
  std::string ws_tls_listen;
  std::vector<std::string> ws_allowed_origins;
  // Files the WebSocket listeners also serve to a plain GET (a page and its script), read
  // into memory at start and on SIGHUP; empty: none.
  std::string ws_static_dir;
  // The HTTP side (http.*): metrics, health, JSON introspection and the web console. Off
  // unless http_listen is set (--http); a port alone listens on 127.0.0.1. With
  // http_credentials_file (the format of auth.credentials_file) every request needs basic
  // auth; http_tls serves HTTPS with tls.cert_file and tls.key_file. http_console_dir: the
  // console's built files (tools/console/dist), served at /.
  std::string http_listen;
  std::string http_credentials_file;
  bool http_tls = false;
  std::string http_console_dir;
  std::string version;  // what the HTTP side reports (brookd sets it)
  // Requests: sticky routing by default (a requester keeps its first handler); a broker-wide
  // false makes every endpoint round-robin on every request.
  bool requests_sticky = true;
  std::uint32_t request_timeout_max_ms = 60'000;  // the longest a request may wait for its answer
  std::uint32_t request_max_in_flight = 1024;     // unanswered requests per requesting session
  std::uint32_t mailbox_capacity = 16384;        // records per shard-to-shard ring
  std::uint32_t recv_buffer_count = 512;         // provided receive buffers per shard
  std::uint32_t recv_buffer_bytes = 16384;
  std::uint32_t max_connections_per_shard = 65536;
  // The broker's memory budget: pooled buffers (queued and retained updates, recovery
  // windows), the queues' bookkeeping and the receive buffers count against it. 0: half of
  // the machine's memory (or of the cgroup's limit), resolved by resolve_memory_budget().
  std::uint64_t max_memory_bytes = 0;
  // Shared memory for co-located clients: the Unix socket they connect to ("" = off). A peer
  // is let in when its uid or gid (SO_PEERCRED) is listed; with both lists empty, only
  // processes of the broker's own uid are.
  std::string shm_path;
  std::vector<std::uint32_t> shm_allow_uids;
  std::vector<std::uint32_t> shm_allow_gids;
  std::uint32_t shm_ring_bytes = 1u << 20;        // per connection and direction (power of two)
  std::uint32_t shm_broadcast_bytes = 16u << 20;  // per shard: update bodies shared by subscribers
  // Shards busy-poll instead of sleeping in io_uring: the lowest latency for shm clients, at
  // the price of a core per shard.
  bool spin = false;
  // The journal (--data-dir): each shard appends its topics' updates to segment files in
  // DATA_DIR/shard-N, and a restart restores every topic's value and sequence from them.
  // "" = no journal: a restart loses the topics.
  std::string data_dir;
  StorageSync storage_sync = StorageSync::always;
  std::uint32_t storage_sync_interval_ms = 100;
  std::uint64_t storage_segment_bytes = 64ull << 20;
  // Each topic's history (a subscriber may ask for it: Subscribe history / since), unless
  // the topic was created with its own: its last history_depth updates, at most
  // history_max_bytes of values and none older than history_max_age_ms (0: no age limit).
  // Kept in memory by the topic's owner, and in the journal with a data dir.
  std::uint32_t history_depth = 8;
  std::uint64_t history_max_bytes = 1ull << 20;
  std::uint32_t history_max_age_ms = 0;
  // With a data dir, a durable topic keeps at most this many bytes of its history in memory;
  // the rest of what its limits keep stays in the journal and is read back from there.
  std::uint64_t history_memory_bytes = 1ull << 20;
  // After a turn with work a shard keeps polling this long before it sleeps: the reply to
  // what it just delivered (a round trip's second half, the next update of a burst) then
  // finds it awake, without a wake-up. It yields the core while it polls. 0: sleep at once.
  // -1 (the default): 50 when the shards leave a core to the clients, else 0 (measured on 2
  // cores with 2 shards: polling shards took the core a fan-out's subscribers needed).
  std::int32_t idle_spin_us = -1;
  // Send coalescing: while a shard delivers more than send_coalesce_rate updates a second
  // (summed over its sessions) and has sends for 8 or more connections in a turn (a fan-out,
  // not one stream or a round trip), a connection that was sent to less than
  // send_coalesce_us ago waits out the rest of that time, so that one send (one system call,
  // one wake-up of the subscriber) carries several updates. Otherwise every update is sent
  // at once. 0 (either): never.
  std::uint32_t send_coalesce_us = 500;
  std::uint64_t send_coalesce_rate = 200'000;

  // An empty string when valid, otherwise what is wrong.
  std::string validate() const;
};

// idle_spin_us as configured, or as -1 resolves for `shard_count` shards on this machine.
std::uint32_t resolve_idle_spin_us(const BrokerOptions& options, unsigned shard_count);

// max_memory_bytes as configured, or half of the memory this process may use: the machine's
// (MemTotal) or, when lower, its cgroup's limit (memory.max).
std::uint64_t resolve_memory_budget(const BrokerOptions& options);

// Reads [broker], [limits], [session], [auth], [requests], [shm], [shards] and [io] from a TOML file into `options`; returns an error text or "".
std::string load_broker_options(const std::string& path, BrokerOptions& options);

}  // namespace brook::runtime
