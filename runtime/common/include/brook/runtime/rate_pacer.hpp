// Fixed-rate send schedule that does not hide stalls (no coordinated omission).
//
// Send i is due at start + i * period whatever happened to sends before it: a sender that
// stalls finds the following sends already due and sends them at once, and latency measured
// from intended_time(i) (not from the late actual send) charges the stall to every message it
// delayed. Immutable after construction; wait_until_due() may be called from one sending thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace brook::runtime {

class RatePacer {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    // Closer than this to the due time, wait_until_due() stops sleeping and yield-spins:
    // a sleep overshoots by the timer slack (about 50 us on Linux) plus the wake-up latency.
    static constexpr std::chrono::nanoseconds kSpinWindow = std::chrono::microseconds(200);

    // rate_per_sec <= 0 (or NaN) means flat out: wait_until_due() never waits. The period is
    // rounded to whole nanoseconds, so the rate achieved is 1e9 / period().count() per second.
    RatePacer(double rate_per_sec, time_point start) noexcept
        : start_(start), period_(period_for(rate_per_sec)) {}

    bool flat_out() const noexcept { return period_.count() == 0; }
    std::chrono::nanoseconds period() const noexcept { return period_; }
    time_point start() const noexcept { return start_; }
    // Messages per second the schedule achieves; 0 when flat out.
    double rate() const noexcept { return flat_out() ? 0.0 : 1e9 / static_cast<double>(period_.count()); }

    // start + i * period exactly (start itself for every i when flat out).
    time_point intended_time(std::uint64_t i) const noexcept {
        return start_ + std::chrono::duration_cast<clock::duration>(
                            period_ * static_cast<std::chrono::nanoseconds::rep>(i));
    }

    // Blocks until intended_time(i) and returns it; returns at once if it is already past.
    // Flat out it returns clock::now() (the send time is the only intended time there is).
    time_point wait_until_due(std::uint64_t i) const {
        if (flat_out()) return clock::now();
        const time_point due = intended_time(i);
        time_point now = clock::now();
        if (due - now > kSpinWindow) {
            std::this_thread::sleep_until(due - kSpinWindow);
            now = clock::now();
        }
        // Bounded: the loop ends at `due`, at most kSpinWindow (plus any oversleep) away.
        // yield rather than pause: on a 2-core box the receiver and the server need the CPU.
        while (now < due) {
            std::this_thread::yield();
            now = clock::now();
        }
        return due;
    }

private:
    static std::chrono::nanoseconds period_for(double rate_per_sec) noexcept {
        if (!(rate_per_sec > 0.0)) return std::chrono::nanoseconds{0};
        const double ns = 1e9 / rate_per_sec;
        if (ns < 1.0) return std::chrono::nanoseconds{1};  // above 1e9/s: as fast as the schedule allows
        if (ns > 1e18) return std::chrono::nanoseconds{1'000'000'000'000'000'000};  // ~31 years, no overflow
        return std::chrono::nanoseconds{static_cast<std::chrono::nanoseconds::rep>(ns + 0.5)};
    }

    time_point start_;
    std::chrono::nanoseconds period_;
};

}  // namespace brook::runtime
