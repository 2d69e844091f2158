// Unit tests: RatePacer schedule arithmetic. Wall-clock checks are loose sanity bounds only:
// the test machine is small and noisy.
#include "brook/runtime/rate_pacer.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <limits>

namespace {

using brook::runtime::RatePacer;
using namespace std::chrono_literals;
using clock_type = RatePacer::clock;

TEST(RatePacer, intended_times_are_exact_multiples_of_the_period) {
    const auto start = clock_type::now();
    const RatePacer pacer(10'000.0, start);
    EXPECT_FALSE(pacer.flat_out());
    EXPECT_EQ(pacer.period(), 100us);
    EXPECT_DOUBLE_EQ(pacer.rate(), 10'000.0);
    EXPECT_EQ(pacer.start(), start);
    for (const std::uint64_t i : {0ULL, 1ULL, 2ULL, 3ULL, 999ULL, 50'000ULL, 1'000'000ULL, 123'456'789ULL}) {
        EXPECT_EQ(pacer.intended_time(i) - start, pacer.period() * static_cast<std::int64_t>(i)) << i;
    }
}

TEST(RatePacer, a_rate_that_does_not_divide_a_second_rounds_the_period_and_never_drifts) {
    const auto start = clock_type::time_point{} + 12345ns;
    const RatePacer pacer(3.0, start);
    EXPECT_EQ(pacer.period(), 333'333'333ns);
    for (std::uint64_t i = 0; i < 10'000; i += 7) {
        ASSERT_EQ(pacer.intended_time(i) - start, 333'333'333ns * static_cast<std::int64_t>(i));
        ASSERT_EQ(pacer.intended_time(i + 1) - pacer.intended_time(i), pacer.period());
    }
    EXPECT_NEAR(pacer.rate(), 3.0, 1e-6);
}

TEST(RatePacer, rates_above_one_per_nanosecond_use_a_one_nanosecond_period) {
    const RatePacer pacer(5e9, clock_type::now());
    EXPECT_EQ(pacer.period(), 1ns);
    EXPECT_FALSE(pacer.flat_out());
}

TEST(RatePacer, rate_zero_negative_or_nan_is_flat_out_and_never_waits) {
    for (const double rate : {0.0, -5.0, std::numeric_limits<double>::quiet_NaN()}) {
        const auto start = clock_type::now() + 1h;  // a pacing bug would block for an hour
        const RatePacer pacer(rate, start);
        EXPECT_TRUE(pacer.flat_out());
        EXPECT_EQ(pacer.period(), 0ns);
        EXPECT_EQ(pacer.rate(), 0.0);
        EXPECT_EQ(pacer.intended_time(1'000), start);
        const auto before = clock_type::now();
        for (std::uint64_t i = 0; i < 1'000; ++i) {
            const auto t = pacer.wait_until_due(i);
            ASSERT_GE(t, before);  // flat out: the intended time is the send time
        }
        EXPECT_LT(clock_type::now() - before, 5s);
    }
}

TEST(RatePacer, wait_until_due_returns_the_intended_time_never_before_it) {
    const RatePacer pacer(2'000.0, clock_type::now());  // 500 us apart
    for (std::uint64_t i = 0; i < 20; ++i) {
        const auto due = pacer.wait_until_due(i);
        EXPECT_EQ(due, pacer.intended_time(i));
        EXPECT_GE(clock_type::now(), due);
    }
    // 20 sends at 2000/s take ~10 ms; allow for a very slow machine.
    EXPECT_LT(clock_type::now() - pacer.start(), 10s);
}

TEST(RatePacer, after_a_stall_the_overdue_sends_go_at_once_and_keep_their_intended_times) {
    // The sender "stalled" for 50 ms: sends 0..49 at 1000/s are all overdue. They must not
    // wait, and latency measured from the returned time must include the stall.
    const auto start = clock_type::now() - 50ms;
    const RatePacer pacer(1'000.0, start);
    const auto before = clock_type::now();
    for (std::uint64_t i = 0; i < 50; ++i) {
        const auto due = pacer.wait_until_due(i);
        ASSERT_EQ(due, start + 1ms * static_cast<std::int64_t>(i));
        ASSERT_LT(due, before);
    }
    EXPECT_LT(clock_type::now() - before, 5s);  // no sleeping happened (loose bound)
}

TEST(RatePacer, a_far_due_time_sleeps_then_returns_on_time) {
    const auto start = clock_type::now() + 20ms;  // well beyond the spin window: sleeps first
    const RatePacer pacer(100.0, start);
    const auto due = pacer.wait_until_due(0);
    EXPECT_EQ(due, start);
    EXPECT_GE(clock_type::now(), start);
    EXPECT_LT(clock_type::now() - start, 10s);
}

}  // namespace
