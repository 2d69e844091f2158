#pragma once
// Sleeping on a 32-bit atomic until another thread changes it, with a time limit: the
// kernel's futex, private to the process. (std::atomic::wait has no time limit, and a waiter
// that must also notice a session ending or starting late is safer with one.)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdint>

namespace brook::client_detail {

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t));

// Returns once `word` may differ from `seen`, a wake came, or `limit` passed.
inline void futex_wait_for(std::atomic<std::uint32_t>& word, std::uint32_t seen, std::chrono::microseconds limit) {
  const auto us = limit.count();
  timespec timeout{static_cast<time_t>(us / 1'000'000), static_cast<long>(us % 1'000'000) * 1000};
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAIT_PRIVATE, seen, &timeout, nullptr, 0);
}

inline void futex_wake_all(std::atomic<std::uint32_t>& word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(&word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace brook::client_detail
