// Unit tests of the Authenticator: requests from several shard threads are verified on its
// worker and each result comes back to the shard that asked, with a wake-up, and nothing is
// lost or crossed. Runs under ThreadSanitizer with the other unit tests.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "../../runtime/broker/src/authenticator.hpp"

namespace brook::runtime {
namespace {

TEST(Authenticator, results_return_to_the_shard_that_asked_with_a_wake_up) {
  constexpr unsigned shards = 2;
  constexpr std::uint64_t per_shard = 500;
  std::atomic<std::uint64_t> wakes[shards]{};
  Authenticator auth(
      [](std::string_view principal, std::span<const std::byte> password) {
        return principal == "alice" && password.size() == 6;  // "secret"
      },
      shards, [&](unsigned shard) { wakes[shard].fetch_add(1); });

  std::vector<std::thread> threads;
  std::vector<std::vector<AuthResult>> got(shards);
  for (unsigned shard = 0; shard < shards; ++shard) {
    threads.emplace_back([&, shard] {
      for (std::uint64_t i = 0; i < per_shard; ++i) {
        // Odd connections give a wrong password, every tenth an unknown principal.
        auth.submit({shard, (std::uint64_t{shard} << 32) | i, i % 10 == 0 ? "mallory" : "alice",
                     i % 2 ? "wrong!!" : "secret"});
      }
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (got[shard].size() < per_shard && std::chrono::steady_clock::now() < deadline) {
        auth.drain(shard, [&](const AuthResult& r) { got[shard].push_back(r); });
        std::this_thread::yield();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (unsigned shard = 0; shard < shards; ++shard) {
    ASSERT_EQ(got[shard].size(), per_shard) << "shard " << shard;
    for (std::uint64_t i = 0; i < per_shard; ++i) {
      const AuthResult& r = got[shard][i];
      EXPECT_EQ(r.connection, (std::uint64_t{shard} << 32) | i) << "results stay in order";
      EXPECT_EQ(r.accepted, i % 10 != 0 && i % 2 == 0) << "connection " << i;
    }
    EXPECT_EQ(wakes[shard].load(), per_shard) << "one wake-up per result";
  }
}

TEST(Authenticator, stops_with_requests_still_queued) {
  std::atomic<int> verified{0};
  {
    Authenticator auth(
        [&](std::string_view, std::span<const std::byte>) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          verified.fetch_add(1);
          return true;
        },
        1, [](unsigned) {});
    for (int i = 0; i < 200; ++i) auth.submit({0, static_cast<std::uint64_t>(i), "a", "b"});
  }  // the destructor must not wait for all 200 checks
  EXPECT_LT(verified.load(), 200);
}

}  // namespace
}  // namespace brook::runtime
