// Log-linear (HDR-style) histogram of nanosecond latencies.
//
// Owns one fixed array of bucket counters, allocated in the constructor and never resized.
// Not thread-safe: one thread records into it; give each recording thread its own histogram
// and merge() them once the threads have stopped.
#pragma once

#include <algorithm>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

namespace brook::runtime {

// Values below 256 ns have their own bucket (exact). Above, each power-of-two range
// [2^k, 2^(k+1)) is split into 128 equal sub-buckets, so a bucket is never wider than 1/128 of
// its lower bound: a reported percentile (the bucket midpoint, clamped to [min, max]) is within
// 1/256 (0.4 %) of a recorded value. Buckets cover [0, 2^42) ns (about 73 minutes); larger
// values land in the last bucket, are counted by saturated(), and still set max() exactly.
class LatencyHistogram {
public:
    static constexpr unsigned kSubBucketBits = 7;
    static constexpr std::uint64_t kSubBuckets = std::uint64_t{1} << kSubBucketBits;  // 128
    static constexpr unsigned kHighestBits = 42;
    static constexpr std::uint64_t kHighestTrackableNs = (std::uint64_t{1} << kHighestBits) - 1;
    static constexpr std::size_t kBucketCount =
        static_cast<std::size_t>(((kHighestBits - kSubBucketBits) << kSubBucketBits) + kSubBuckets);

    static_assert(kHighestTrackableNs >= 3'600'000'000'000ULL, "must cover one hour");
    static_assert(kBucketCount == 4608, "bucket layout changed: check index_of/bucket_lower");

    LatencyHistogram() : counts_(kBucketCount, 0) {}

    // Copies are deep. There is deliberately no move constructor: a moved-from histogram would
    // have no buckets and record() would write out of bounds; rvalues copy instead.
    LatencyHistogram(const LatencyHistogram&) = default;
    LatencyHistogram& operator=(const LatencyHistogram&) = default;
    ~LatencyHistogram() = default;

    // O(1), allocation-free.
    void record(std::uint64_t ns) noexcept {
        if (ns > kHighestTrackableNs) {
            ++saturated_;
        }
        ++counts_[index_of(std::min(ns, kHighestTrackableNs))];
        ++count_;
        sum_ns_ += static_cast<double>(ns);
        min_ = std::min(min_, ns);
        max_ = std::max(max_, ns);
    }

    std::uint64_t count() const noexcept { return count_; }
    // Values above kHighestTrackableNs (their percentiles are reported as that bound).
    std::uint64_t saturated() const noexcept { return saturated_; }
    // Exact; 0 when empty.
    std::uint64_t min() const noexcept { return count_ == 0 ? 0 : min_; }
    std::uint64_t max() const noexcept { return max_; }
    // Exact up to double rounding of the running sum; 0 when empty.
    double mean() const noexcept { return count_ == 0 ? 0.0 : sum_ns_ / static_cast<double>(count_); }

    // Smallest recorded value v such that at least p % of the values are <= v, to within the
    // bucket precision. p <= 0 (or NaN) gives min(), p >= 100 gives max(), both exact; 0 when empty.
    std::uint64_t percentile(double p) const noexcept {
        if (count_ == 0) return 0;
        if (!(p > 0.0)) return min();
        if (p >= 100.0) return max_;
        const double wanted = p / 100.0 * static_cast<double>(count_);
        auto rank = static_cast<std::uint64_t>(wanted);
        if (static_cast<double>(rank) < wanted) ++rank;  // ceil without <cmath>
        rank = std::clamp<std::uint64_t>(rank, 1, count_);
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < kBucketCount; ++i) {
            seen += counts_[i];
            if (seen >= rank) {
                const std::uint64_t lo = bucket_lower_at(i);
                const std::uint64_t mid = lo + (bucket_width_at(i) - 1) / 2;
                return std::clamp(mid, min_, max_);
            }
        }
        return max_;  // unreachable while counts_ sums to count_
    }

    void merge(const LatencyHistogram& other) noexcept {
        for (std::size_t i = 0; i < kBucketCount; ++i) counts_[i] += other.counts_[i];
        count_ += other.count_;
        saturated_ += other.saturated_;
        sum_ns_ += other.sum_ns_;
        min_ = std::min(min_, other.min_);
        max_ = std::max(max_, other.max_);
    }

    void reset() noexcept {
        std::fill(counts_.begin(), counts_.end(), 0);
        count_ = 0;
        saturated_ = 0;
        sum_ns_ = 0.0;
        min_ = std::numeric_limits<std::uint64_t>::max();
        max_ = 0;
    }

    // Bucket geometry, public so that tests and reports can state the precision.
    static constexpr std::size_t index_of(std::uint64_t ns) noexcept {
        // shift = 0 below 256 (unit-width buckets); each doubling above adds one bit of width.
        const unsigned width = static_cast<unsigned>(std::bit_width(ns));
        const unsigned shift = width > kSubBucketBits + 1 ? width - (kSubBucketBits + 1) : 0;
        return static_cast<std::size_t>((std::uint64_t{shift} << kSubBucketBits) + (ns >> shift));
    }
    static constexpr std::uint64_t bucket_lower_at(std::size_t index) noexcept {
        if (index < 2 * kSubBuckets) return index;
        const unsigned shift = static_cast<unsigned>(index >> kSubBucketBits) - 1;
        return (static_cast<std::uint64_t>(index) - (std::uint64_t{shift} << kSubBucketBits)) << shift;
    }
    static constexpr std::uint64_t bucket_width_at(std::size_t index) noexcept {
        if (index < 2 * kSubBuckets) return 1;
        return std::uint64_t{1} << ((index >> kSubBucketBits) - 1);
    }
    // The range [lowest_equivalent(v), highest_equivalent(v)] holds every value sharing v's bucket.
    static constexpr std::uint64_t lowest_equivalent(std::uint64_t ns) noexcept {
        return bucket_lower_at(index_of(ns));
    }
    static constexpr std::uint64_t highest_equivalent(std::uint64_t ns) noexcept {
        const std::size_t i = index_of(ns);
        return bucket_lower_at(i) + bucket_width_at(i) - 1;
    }

private:
    std::vector<std::uint64_t> counts_;  // kBucketCount entries, sized once
    std::uint64_t count_ = 0;
    std::uint64_t saturated_ = 0;
    double sum_ns_ = 0.0;
    std::uint64_t min_ = std::numeric_limits<std::uint64_t>::max();
    std::uint64_t max_ = 0;
};

static_assert(LatencyHistogram::index_of(LatencyHistogram::kHighestTrackableNs) ==
                  LatencyHistogram::kBucketCount - 1,
              "highest trackable value must map to the last bucket");
static_assert(LatencyHistogram::index_of(255) == 255 && LatencyHistogram::index_of(256) == 256);
static_assert(LatencyHistogram::bucket_lower_at(LatencyHistogram::index_of(1000)) == 1000 - 1000 % 4);

}  // namespace brook::runtime
