// Unit tests: LatencyHistogram (bucket geometry, percentiles, merge) and the BenchResult JSON line.
#include "brook/runtime/bench_report.hpp"
#include "brook/runtime/latency_histogram.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <string_view>

namespace {

using brook::runtime::BenchResult;
using brook::runtime::LatencyHistogram;

// |actual - expected| <= expected / 256: the midpoint of a bucket no wider than 1/128 of its
// lower bound (1 ns below 256 ns).
void expect_within_bucket_precision(std::uint64_t actual, std::uint64_t expected) {
    const std::uint64_t diff = actual > expected ? actual - expected : expected - actual;
    EXPECT_LE(diff, expected / 256) << "actual " << actual << " expected " << expected;
}

LatencyHistogram uniform(std::uint64_t from, std::uint64_t to) {
    LatencyHistogram h;
    for (std::uint64_t v = from; v <= to; ++v) h.record(v);
    return h;
}

TEST(LatencyHistogram, empty_histogram_reports_zeros) {
    const LatencyHistogram h;
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    EXPECT_EQ(h.mean(), 0.0);
    EXPECT_EQ(h.percentile(0), 0u);
    EXPECT_EQ(h.percentile(50), 0u);
    EXPECT_EQ(h.percentile(100), 0u);
}

TEST(LatencyHistogram, buckets_tile_the_range_without_gaps_or_overlaps) {
    EXPECT_EQ(LatencyHistogram::bucket_lower_at(0), 0u);
    for (std::size_t i = 0; i + 1 < LatencyHistogram::kBucketCount; ++i) {
        const std::uint64_t lo = LatencyHistogram::bucket_lower_at(i);
        ASSERT_EQ(lo + LatencyHistogram::bucket_width_at(i), LatencyHistogram::bucket_lower_at(i + 1))
            << "bucket " << i;
        ASSERT_EQ(LatencyHistogram::index_of(lo), i);
        ASSERT_EQ(LatencyHistogram::index_of(lo + LatencyHistogram::bucket_width_at(i) - 1), i);
    }
    const std::size_t last = LatencyHistogram::kBucketCount - 1;
    EXPECT_EQ(LatencyHistogram::bucket_lower_at(last) + LatencyHistogram::bucket_width_at(last) - 1,
              LatencyHistogram::kHighestTrackableNs);
}

TEST(LatencyHistogram, bucket_width_is_at_most_one_128th_of_its_values) {
    for (std::size_t i = 0; i < LatencyHistogram::kBucketCount; ++i) {
        const std::uint64_t lo = LatencyHistogram::bucket_lower_at(i);
        const std::uint64_t width = LatencyHistogram::bucket_width_at(i);
        if (lo < 256) {
            ASSERT_EQ(width, 1u) << "values below 256 ns are exact";
        } else {
            ASSERT_LE(width * 128, lo) << "bucket " << i;
        }
    }
}

TEST(LatencyHistogram, covers_one_hour) {
    EXPECT_GE(LatencyHistogram::kHighestTrackableNs, 3'600'000'000'000ULL);
    LatencyHistogram h;
    h.record(3'600'000'000'000ULL);
    h.record(1);
    EXPECT_EQ(h.saturated(), 0u);
    EXPECT_EQ(h.max(), 3'600'000'000'000ULL);
    expect_within_bucket_precision(h.percentile(99.0), 3'600'000'000'000ULL);
}

TEST(LatencyHistogram, percentile_of_any_value_is_within_one_percent) {
    std::mt19937_64 rng(42);
    std::uniform_int_distribution<unsigned> bits(0, 41);
    for (int n = 0; n < 20'000; ++n) {
        const std::uint64_t v = rng() >> (64 - 1 - bits(rng));  // log-uniform over [0, 2^42)
        LatencyHistogram h;
        h.record(v);
        h.record(v * 3 + 1000);  // so that clamping to [min, max] cannot hide the bucket error
        const std::uint64_t p = h.percentile(50.0);
        expect_within_bucket_precision(p, v);
        ASSERT_LE(LatencyHistogram::lowest_equivalent(v), v);
        ASSERT_GE(LatencyHistogram::highest_equivalent(v), v);
    }
}

TEST(LatencyHistogram, uniform_one_to_a_million_has_the_expected_percentiles) {
    const LatencyHistogram h = uniform(1, 1'000'000);
    EXPECT_EQ(h.count(), 1'000'000u);
    EXPECT_EQ(h.min(), 1u);
    EXPECT_EQ(h.max(), 1'000'000u);
    EXPECT_DOUBLE_EQ(h.mean(), 500'000.5);
    EXPECT_EQ(h.percentile(0.0), 1u);
    expect_within_bucket_precision(h.percentile(1.0), 10'000);
    expect_within_bucket_precision(h.percentile(25.0), 250'000);
    expect_within_bucket_precision(h.percentile(50.0), 500'000);
    expect_within_bucket_precision(h.percentile(90.0), 900'000);
    expect_within_bucket_precision(h.percentile(99.0), 990'000);
    expect_within_bucket_precision(h.percentile(99.9), 999'000);
    expect_within_bucket_precision(h.percentile(99.99), 999'900);
    EXPECT_EQ(h.percentile(100.0), 1'000'000u);
}

TEST(LatencyHistogram, percentiles_never_decrease_with_p) {
    const LatencyHistogram h = uniform(1, 100'000);
    std::uint64_t previous = 0;
    for (double p = 0.0; p <= 100.0; p += 0.37) {
        const std::uint64_t v = h.percentile(p);
        ASSERT_GE(v, previous) << "p=" << p;
        previous = v;
    }
}

TEST(LatencyHistogram, constant_distribution_reports_the_constant_exactly) {
    LatencyHistogram h;
    for (int i = 0; i < 1000; ++i) h.record(123'457);
    EXPECT_EQ(h.min(), 123'457u);
    EXPECT_EQ(h.max(), 123'457u);
    EXPECT_DOUBLE_EQ(h.mean(), 123'457.0);
    for (const double p : {0.0, 1.0, 50.0, 99.0, 99.9, 100.0}) EXPECT_EQ(h.percentile(p), 123'457u) << p;
}

TEST(LatencyHistogram, two_point_distribution_splits_at_the_right_rank) {
    LatencyHistogram h;
    for (int i = 0; i < 900; ++i) h.record(100);
    for (int i = 0; i < 100; ++i) h.record(5'000'000);
    EXPECT_EQ(h.percentile(50.0), 100u);
    EXPECT_EQ(h.percentile(90.0), 100u);  // rank 900 is the last 100 ns value
    expect_within_bucket_precision(h.percentile(90.1), 5'000'000);
    expect_within_bucket_precision(h.percentile(99.0), 5'000'000);
    EXPECT_EQ(h.percentile(100.0), 5'000'000u);
    EXPECT_DOUBLE_EQ(h.mean(), (900.0 * 100 + 100.0 * 5'000'000) / 1000.0);
}

TEST(LatencyHistogram, min_and_max_are_exact_not_bucketed) {
    LatencyHistogram h;
    h.record(987'654'321'123ULL);
    h.record(1'234'567'891ULL);
    h.record(55'555'555'555ULL);
    EXPECT_EQ(h.min(), 1'234'567'891ULL);
    EXPECT_EQ(h.max(), 987'654'321'123ULL);
    EXPECT_EQ(h.percentile(0.0), 1'234'567'891ULL);
    EXPECT_EQ(h.percentile(100.0), 987'654'321'123ULL);
}

TEST(LatencyHistogram, values_beyond_the_range_are_counted_and_keep_an_exact_max) {
    LatencyHistogram h;
    const std::uint64_t huge = LatencyHistogram::kHighestTrackableNs * 4;
    h.record(10);
    h.record(huge);
    EXPECT_EQ(h.count(), 2u);
    EXPECT_EQ(h.saturated(), 1u);
    EXPECT_EQ(h.max(), huge);
    EXPECT_EQ(h.percentile(100.0), huge);
    EXPECT_EQ(h.percentile(50.0), 10u);
}

TEST(LatencyHistogram, merge_of_two_halves_equals_the_whole) {
    LatencyHistogram low = uniform(1, 500'000);
    const LatencyHistogram high = uniform(500'001, 1'000'000);
    const LatencyHistogram whole = uniform(1, 1'000'000);
    low.merge(high);
    EXPECT_EQ(low.count(), whole.count());
    EXPECT_EQ(low.min(), whole.min());
    EXPECT_EQ(low.max(), whole.max());
    EXPECT_DOUBLE_EQ(low.mean(), whole.mean());
    for (const double p : {0.0, 10.0, 50.0, 99.0, 99.9, 100.0}) EXPECT_EQ(low.percentile(p), whole.percentile(p)) << p;
}

TEST(LatencyHistogram, merge_with_an_empty_histogram_changes_nothing) {
    LatencyHistogram h = uniform(10, 20);
    h.merge(LatencyHistogram{});
    EXPECT_EQ(h.count(), 11u);
    EXPECT_EQ(h.min(), 10u);
    EXPECT_EQ(h.max(), 20u);
    LatencyHistogram empty;
    empty.merge(h);
    EXPECT_EQ(empty.min(), 10u);
    EXPECT_EQ(empty.percentile(50.0), 15u);
}

TEST(LatencyHistogram, reset_empties_it_and_copies_are_independent) {
    LatencyHistogram h = uniform(1, 1000);
    const LatencyHistogram copy = h;
    h.reset();
    EXPECT_EQ(h.count(), 0u);
    EXPECT_EQ(h.min(), 0u);
    EXPECT_EQ(h.max(), 0u);
    EXPECT_EQ(h.percentile(99.0), 0u);
    h.record(7);
    EXPECT_EQ(h.min(), 7u);
    EXPECT_EQ(h.max(), 7u);
    EXPECT_EQ(copy.count(), 1000u);
    EXPECT_EQ(copy.max(), 1000u);
}

// --- BenchResult JSON ---------------------------------------------------------------------

// JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
// (by hand: std::regex draws libstdc++ warnings under the sanitizer presets).
bool is_json_number(std::string_view v) {
    std::size_t i = 0;
    const auto digits = [&] {
        const std::size_t from = i;
        while (i < v.size() && v[i] >= '0' && v[i] <= '9') ++i;
        return i - from;
    };
    if (i < v.size() && v[i] == '-') ++i;
    if (i < v.size() && v[i] == '0') {
        ++i;
    } else if (i >= v.size() || v[i] < '1' || v[i] > '9' || digits() == 0) {
        return false;
    }
    if (i < v.size() && v[i] == '.') {
        ++i;
        if (digits() == 0) return false;
    }
    if (i < v.size() && (v[i] == 'e' || v[i] == 'E')) {
        ++i;
        if (i < v.size() && (v[i] == '+' || v[i] == '-')) ++i;
        if (digits() == 0) return false;
    }
    return i == v.size();
}

TEST(BenchReport, the_test_number_check_follows_the_json_grammar) {
    for (const char* ok : {"0", "-0", "7", "123", "0.5", "-12.25", "1e6", "1E+06", "2.5e-3"})
        EXPECT_TRUE(is_json_number(ok)) << ok;
    for (const char* bad : {"", "-", "01", "1.", ".5", "+1", "1e", "1e+", "nan", "inf", "1,2", "0x10"})
        EXPECT_FALSE(is_json_number(bad)) << bad;
}

// Parses one flat JSON object (string, number or null values) into key -> raw value text;
// returns false on anything else, including nesting and trailing text.
bool parse_flat_json(const std::string& s, std::map<std::string, std::string>& out) {
    std::size_t i = 0;
    const auto skip_ws = [&] {
        while (i < s.size() && (s[i] == ' ' || s[i] == '\t')) ++i;
    };
    const auto parse_string = [&](std::string& value) {
        if (i >= s.size() || s[i] != '"') return false;
        for (++i; i < s.size(); ++i) {
            const char c = s[i];
            if (c == '"') {
                ++i;
                return true;
            }
            if (static_cast<unsigned char>(c) < 0x20) return false;
            if (c == '\\') {
                if (++i >= s.size()) return false;
                const char e = s[i];
                if (e == 'u') {
                    if (i + 4 >= s.size()) return false;
                    value += s.substr(i - 1, 6);
                    i += 4;
                    continue;
                }
                if (std::string_view("\"\\/bfnrt").find(e) == std::string_view::npos) return false;
            }
            value += c;
        }
        return false;
    };
    skip_ws();
    if (i >= s.size() || s[i++] != '{') return false;
    skip_ws();
    if (i < s.size() && s[i] == '}') return ++i == s.size();
    while (true) {
        skip_ws();
        std::string key;
        if (!parse_string(key)) return false;
        skip_ws();
        if (i >= s.size() || s[i++] != ':') return false;
        skip_ws();
        std::string value;
        if (i < s.size() && s[i] == '"') {
            if (!parse_string(value)) return false;
        } else {
            const std::size_t start = i;
            while (i < s.size() && s[i] != ',' && s[i] != '}' && s[i] != ' ') ++i;
            value = s.substr(start, i - start);
            if (value != "null" && !is_json_number(value)) return false;
        }
        if (!out.emplace(key, value).second) return false;  // duplicate key
        skip_ws();
        if (i >= s.size()) return false;
        if (s[i] == '}') return ++i == s.size();
        if (s[i++] != ',') return false;
    }
}

TEST(BenchReport, to_json_is_one_flat_object_with_every_field) {
    BenchResult r;
    r.system = "nats";
    r.scenario = "rtt";
    r.transport = "tcp";
    r.payload_bytes = 64;
    r.sent = 50'000;
    r.received = 49'999;
    r.lost = 1;
    r.out_of_order = 2;
    r.seconds = 5.000123;
    r.msgs_per_sec = 9999.75;
    r.mb_per_sec = 0.639984;
    r.rate_target = 10'000;
    r.p50_us = 61.5;
    r.p99_us = 120.25;
    r.p999_us = 480.0;
    r.max_us = 1234.567;
    r.min_us = 40.1;
    r.mean_us = 65.4321;
    r.subscribers = 50;
    r.broker_cpu_us_per_update = 3.25;
    r.sessions_closed = 1;
    const std::string json = brook::runtime::to_json(r);
    EXPECT_EQ(json.find('\n'), std::string::npos);

    std::map<std::string, std::string> fields;
    ASSERT_TRUE(parse_flat_json(json, fields)) << json;
    const std::map<std::string, std::string> expected = {
        {"system", "nats"},       {"scenario", "rtt"},       {"transport", "tcp"},
        {"payload_bytes", "64"},  {"sent", "50000"},         {"received", "49999"},
        {"lost", "1"},            {"delivered_fraction", "0.99998"},
        {"out_of_order", "2"},    {"seconds", "5.000123"},
        {"msgs_per_sec", "9999.75"}, {"mb_per_sec", "0.639984"}, {"rate_target", "10000"},
        {"p50_us", "61.5"},       {"p99_us", "120.25"},      {"p999_us", "480"},
        {"max_us", "1234.567"},   {"min_us", "40.1"},        {"mean_us", "65.4321"},
        {"subscribers", "50"},    {"broker_cpu_us_per_update", "3.25"}, {"topics", "0"},
        {"sessions_closed", "1"},
    };
    EXPECT_EQ(fields, expected) << json;
}

TEST(BenchReport, fill_latency_draws_the_curve_from_min_through_the_percentiles_to_max) {
    LatencyHistogram h;
    for (std::uint64_t us = 1; us <= 1000; ++us) h.record(us * 1000);
    BenchResult r;
    brook::runtime::fill_latency(r, h);
    ASSERT_EQ(r.curve.size(), std::size(brook::runtime::kCurvePercentiles));
    EXPECT_EQ(r.curve.front().first, 0.0);
    EXPECT_NEAR(r.curve.front().second, 1.0, 0.01);
    EXPECT_EQ(r.curve.back().first, 100.0);
    EXPECT_NEAR(r.curve.back().second, 1000.0, 10.0);
    for (std::size_t i = 1; i < r.curve.size(); ++i) {
        EXPECT_GT(r.curve[i].first, r.curve[i - 1].first);
        EXPECT_GE(r.curve[i].second, r.curve[i - 1].second);
    }
    const std::string json = brook::runtime::to_json(r);
    EXPECT_NE(json.find(",\"curve\":[[0,"), std::string::npos) << json;
    EXPECT_EQ(json.back(), '}');

    BenchResult empty;
    brook::runtime::fill_latency(empty, LatencyHistogram{});
    EXPECT_TRUE(empty.curve.empty());
    EXPECT_EQ(brook::runtime::to_json(empty).find("curve"), std::string::npos);
}

TEST(BenchReport, to_json_escapes_strings_and_writes_null_for_non_finite_numbers) {
    BenchResult r;
    r.system = "we\"ird\\name\n\x01";
    r.msgs_per_sec = std::numeric_limits<double>::infinity();
    r.mean_us = std::numeric_limits<double>::quiet_NaN();
    r.max_us = 1e20;  // large values stay plain decimals, no exponent
    const std::string json = brook::runtime::to_json(r);
    std::map<std::string, std::string> fields;
    ASSERT_TRUE(parse_flat_json(json, fields)) << json;
    EXPECT_EQ(fields.size(), 21u);
    EXPECT_EQ(fields["msgs_per_sec"], "null");
    EXPECT_EQ(fields["mean_us"], "null");
    EXPECT_EQ(fields["max_us"], "100000000000000000000");
    EXPECT_NE(json.find(R"("system":"we\"ird\\name\n\u0001")"), std::string::npos) << json;
}

TEST(BenchReport, fill_latency_converts_nanoseconds_to_microseconds) {
    LatencyHistogram h;
    for (int i = 0; i < 100; ++i) h.record(50'000);  // 50 us
    h.record(2'000'000);                             // 2 ms
    BenchResult r;
    brook::runtime::fill_latency(r, h);
    EXPECT_NEAR(r.p50_us, 50.0, 50.0 / 256);  // bucketed
    EXPECT_DOUBLE_EQ(r.min_us, 50.0);          // exact
    EXPECT_DOUBLE_EQ(r.max_us, 2000.0);
    EXPECT_NEAR(r.p999_us, 2000.0, 2000.0 / 256);
    EXPECT_NEAR(r.mean_us, (100 * 50.0 + 2000.0) / 101, 1e-9);

    BenchResult empty;
    brook::runtime::fill_latency(empty, LatencyHistogram{});
    EXPECT_EQ(empty.p50_us, 0.0);
    EXPECT_EQ(empty.p99_us, 0.0);
    EXPECT_EQ(empty.p999_us, 0.0);
    EXPECT_EQ(empty.max_us, 0.0);
    EXPECT_EQ(empty.min_us, 0.0);
    EXPECT_EQ(empty.mean_us, 0.0);
}

}  // namespace
