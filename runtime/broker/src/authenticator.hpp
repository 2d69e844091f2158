#pragma once
// Password checks off the shards' threads. Verifying an argon2id hash takes tens of
// milliseconds and tens of MiB by design; a shard that did it inline would stall every session
// it serves. Shards submit requests; one worker thread verifies them in order and hands each
// result back to the shard that asked, through that shard's result queue, waking it.
#include <concurrentqueue/blockingconcurrentqueue.h>
#include <concurrentqueue/concurrentqueue.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace brook::runtime {

struct AuthRequest {
  unsigned shard = 0;
  std::uint64_t connection = 0;  // the shard's token for the waiting connection
  std::string principal;
  std::string password;
};

struct AuthResult {
  std::uint64_t connection = 0;
  bool accepted = false;
};

class Authenticator {
 public:
  using Verify = std::function<bool(std::string_view principal, std::span<const std::byte> password)>;
  using Wake = std::function<void(unsigned shard)>;

  Authenticator(Verify verify, unsigned shard_count, Wake wake);
  ~Authenticator();  // stops the worker; pending requests are dropped
  Authenticator(const Authenticator&) = delete;
  Authenticator& operator=(const Authenticator&) = delete;

  // Any shard thread.
  void submit(AuthRequest request);
  // The shard's own thread: its results so far.
  template <class F>
  void drain(unsigned shard, F&& on_result) {
    AuthResult result;
    while (results_[shard]->try_dequeue(result)) on_result(result);
  }

 private:
  void work();

  Verify verify_;
  Wake wake_;
  moodycamel::BlockingConcurrentQueue<AuthRequest> requests_;
  std::vector<std::unique_ptr<moodycamel::ConcurrentQueue<AuthResult>>> results_;
  std::atomic<bool> stopping_{false};
  std::thread worker_;
};

}  // namespace brook::runtime
