#pragma once
// What every `brook bench` scenario needs besides its own measurement: fresh names, time
// stamps a subscriber in another thread or process can subtract, and the wait for the last
// deliveries.
#include <atomic>
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

// Counts the subscriber sessions that ended while a run was on (the broker closed one as a
// slow consumer, or its recovery gave up) and says why on stderr: a closed session explains
// what its subscriber lost. Outlives the clients it watches (declare it before them); their
// threads call it until close() has joined them. Closes after stop() are the bench's own.
class SessionWatch {
 public:
  void watch(Client& client, std::string role) {
    client.on_close([this, role = std::move(role)](const std::string& reason) {
      // acquire: pairs with the release in stop(); a close the bench asked for is not counted.
      if (stopping_.load(std::memory_order_acquire)) return;
      std::fprintf(stderr, "brook bench: %s's session closed during the run: %s\n", role.c_str(), reason.c_str());
      closed_.fetch_add(1, std::memory_order_relaxed);  // read after the clients' threads are joined
    });
  }
  // Before the bench closes its clients.
  void stop() { stopping_.store(true, std::memory_order_release); }
  std::uint64_t closed() const { return closed_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> stopping_{false};
  std::atomic<std::uint64_t> closed_{0};
};

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
