// What every cnats connection of peer_bench shares (core NATS links and the JetStream
// publisher): the library's error text as an exception, and the connection settings (no
// reconnects: a lost connection stays lost and its messages count as lost; a connect timeout;
// batched or immediate writes).
#pragma once

#include <nats/nats.h>

#include <cstdint>
#include <memory>
#include <string>

namespace brook::bench::nats {

// Batched: publishes wait in the library's 32 KiB buffer, written when it fills or by the
// flusher thread within 1 ms (throughput). At once (send_asap): every publish is written by
// the caller (latency).
enum class Writes { batched, at_once };

inline constexpr std::int64_t kConnectTimeoutMs = 5000;  // a thousand connecting at once on a busy machine

// "nats: WHAT: REASON", the reason from the library's last error where it has one.
std::string failure(const std::string& what, natsStatus s);
// Throws std::runtime_error(failure(what, s)) unless s is NATS_OK.
void check(natsStatus s, const std::string& what);

struct OptionsDeleter {
  void operator()(natsOptions* o) const { natsOptions_Destroy(o); }
};
using OptionsPtr = std::unique_ptr<natsOptions, OptionsDeleter>;

// Options for one connection to `url`, named `name` in the server's logs; the caller adds its
// callbacks. Throws on failure.
OptionsPtr connection_options(const std::string& url, const std::string& name, Writes writes);

}  // namespace brook::bench::nats
