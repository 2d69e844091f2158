#pragma once
// brookd's engine: owns the shards (one pinned thread each), the listening socket and the
// shard-to-shard mailboxes. start() returns once every shard is accepting; stop() may be
// called from any thread (a signal handler thread included) and joins the shards.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "brook/runtime/broker_options.hpp"

namespace brook::runtime {

class Broker {
 public:
  explicit Broker(BrokerOptions options);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // Binds, spawns the shards and waits until they run. Returns an error text or "".
  std::string start();
  // Asks every shard to stop and joins them. Idempotent.
  void stop();
  // SIGHUP: reads auth.permissions_file again (each shard applies it at its next turn) and the
  // TLS certificate, key and CA files (new connections use them; open ones keep theirs). What
  // cannot be read is reported and what is in force stays. One line per thing reloaded.
  std::vector<std::string> reload();
  // The bound address, e.g. "127.0.0.1:43817" (valid after start()).
  std::string listen_address() const;
  // The TLS listener's bound address, or "" without one (tls.listen).
  std::string tls_listen_address() const;
  std::string ws_listen_address() const;   // ws.listen as bound ("" without one)
  std::string wss_listen_address() const;  // ws.tls_listen as bound
  std::string http_address() const;        // http.listen as bound ("" without one)
  unsigned shard_count() const;
  // limits.max_memory_bytes as resolved at start (half of the machine's memory by default).
  std::uint64_t memory_budget() const;
  // One line per shard with its counters, for logs and `brook stat`.
  std::string describe_counters() const;
  // With a data directory: what start() read back from the journal, and what it repaired.
  std::string storage_report() const;

 private:
  std::string open_journal(unsigned shard_count);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace brook::runtime
