#include "authenticator.hpp"

#include <chrono>

namespace brook::runtime {

Authenticator::Authenticator(Verify verify, unsigned shard_count, Wake wake)
    : verify_(std::move(verify)), wake_(std::move(wake)) {
  for (unsigned i = 0; i < shard_count; ++i)
    results_.push_back(std::make_unique<moodycamel::ConcurrentQueue<AuthResult>>());
  worker_ = std::thread([this] { work(); });
}

Authenticator::~Authenticator() {
  stopping_.store(true, std::memory_order_release);
  requests_.enqueue(AuthRequest{});  // wakes the worker
  worker_.join();
}

void Authenticator::submit(AuthRequest request) { requests_.enqueue(std::move(request)); }

void Authenticator::work() {
  AuthRequest request;
  for (;;) {
    requests_.wait_dequeue(request);
    if (stopping_.load(std::memory_order_acquire)) return;
    bool accepted = verify_(request.principal, std::as_bytes(std::span(request.password)));
    // The password leaves memory as soon as it has been checked.
    std::fill(request.password.begin(), request.password.end(), '\0');
    results_[request.shard]->enqueue({request.connection, accepted});
    wake_(request.shard);
  }
}

}  // namespace brook::runtime
