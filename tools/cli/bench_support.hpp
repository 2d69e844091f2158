#pragma once
// What every `brook bench` scenario needs besides its own measurement: fresh names, time
// stamps a subscriber in another thread or process can subtract, and the wait for the last
// deliveries.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <random>
#include <string>
#include <thread>

#include "brook/client/client.hpp"

namespace brook::cli {

using bench_clock = std::chrono::steady_clock;

// Eight hex digits: each run gets topics of its own, and the path stays short (it travels in
// every publish frame).
inline std::string unique_suffix() {
  char hex[9];
  std::snprintf(hex, sizeof hex, "%08x", std::random_device{}());
  return hex;
}

// A bench client's options: the environment's BROOK_* settings (BROOK_SEND_FROM_CALLER=0
// measures every call through the client's thread), then the scenario's server. Prints why
// and returns nullopt when the environment is malformed.
inline std::optional<ClientOptions> bench_client_options(const std::string& url) {
  ClientOptions options;
  if (auto why = apply_client_environment(options); !why.empty()) {
    std::fprintf(stderr, "brook bench: %s\n", why.c_str());
    return std::nullopt;
  }
  options.url = url;
  options.client_name = "brook-bench";
  return options;
}

// Connects `client`; says why on stderr when it cannot.
inline bool connect_or_report(Client& client, const ClientOptions& options) {
  if (auto s = client.connect(options); !s) {
    std::fprintf(stderr, "brook bench: %s\n", s.message.c_str());
    return false;
  }
  return true;
}

// Nanoseconds of steady_clock (CLOCK_MONOTONIC: the same clock in every process here).
inline std::uint64_t ns_of(bench_clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}
inline std::uint64_t now_ns() { return ns_of(bench_clock::now()); }

// After the last send: waits until `delivered()` reaches `expected`, or nothing new arrived
// for five seconds, or `deadline` passed; what is still missing then is lost.
template <class Delivered>
void await_tail(Delivered delivered, std::uint64_t expected,
                bench_clock::time_point deadline = bench_clock::time_point::max()) {
  constexpr auto quiet = std::chrono::seconds(5);
  std::uint64_t seen = delivered();
  auto last_progress = bench_clock::now();
  while (seen < expected && bench_clock::now() - last_progress < quiet && bench_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (std::uint64_t now = delivered(); now != seen) {
      seen = now;
      last_progress = bench_clock::now();
    }
  }
}

}  // namespace brook::cli
