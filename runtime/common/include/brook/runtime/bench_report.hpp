// One benchmark run's result and its one-line JSON form, shared by `brook bench` and the peer
// drivers (bench/peers, bench/nats_peer) so bench/compare can put the systems side by side.
//
// Plain value type; to_json() allocates and is meant for the end of a run, not the hot path.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

#include "brook/runtime/latency_histogram.hpp"

namespace brook::runtime {

struct BenchResult {
    std::string system;     // "brook", "nats", ...
    std::string scenario;   // "throughput", "rtt", ...
    std::string transport;  // "tcp", "shm", ...
    std::size_t payload_bytes = 0;
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t lost = 0;          // sent but never received within the run's bound
    std::uint64_t out_of_order = 0;  // received with a sequence below one already received
    double seconds = 0.0;            // throughput: first send to last receive
    double msgs_per_sec = 0.0;       // received / seconds
    double mb_per_sec = 0.0;         // payload bytes received / seconds / 1e6
    double rate_target = 0.0;        // messages/s asked for; 0 = flat out
    // Latency in microseconds, 0 when not measured.
    double p50_us = 0.0;
    double p99_us = 0.0;
    double p999_us = 0.0;
    double max_us = 0.0;
    double min_us = 0.0;
    double mean_us = 0.0;
    // Fan-out: subscribers per update, and the broker's CPU time per update published (user +
    // system, all its threads; 0 when not measured).
    std::uint32_t subscribers = 0;
    double broker_cpu_us_per_update = 0.0;
    // Many topics: how many distinct topics the updates were spread over (0: one topic).
    std::uint64_t topics = 0;
    // Subscriber sessions (links, for a peer) that the server closed or lost before the run
    // ended: they explain loss. Empty when the driver does not watch for it (not written).
    std::optional<std::uint64_t> sessions_closed;
    // The latency distribution for percentile plots: (percentile, microseconds) pairs from
    // fill_latency(), empty when latency was not measured. Written as "curve":[[50,12.5],...].
    std::vector<std::pair<double, double>> curve;
};

// The percentiles a latency curve is drawn through: 1/(1-p) steps, as HdrHistogram plots them.
inline constexpr double kCurvePercentiles[] = {0.0,  50.0, 75.0,  90.0,   95.0,   99.0,
                                               99.5, 99.9, 99.95, 99.99, 99.999, 100.0};

namespace detail {

inline void json_string(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    out += '"';
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (u < 0x20) {
                    out += "\\u00";
                    out += kHex[u >> 4];
                    out += kHex[u & 0xf];
                } else {
                    out += c;  // UTF-8 passes through unchanged
                }
        }
    }
    out += '"';
}

inline void json_number(std::string& out, std::uint64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

// Shortest decimal that reads back to the same double, without an exponent so that plain
// awk and shell tools read it too. JSON has no NaN or infinity: those become null.
inline void json_number(std::string& out, double v) {
    if (!std::isfinite(v)) {
        out += "null";
        return;
    }
    char buf[400];  // fixed notation of DBL_MAX is 309 digits
    auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::fixed);
    if (r.ec != std::errc{}) r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

template <typename T>
void json_field(std::string& out, std::string_view key, const T& value) {
    if (out.size() > 1) out += ',';
    json_string(out, key);
    out += ':';
    if constexpr (std::is_convertible_v<const T&, std::string_view>) {
        json_string(out, value);
    } else if constexpr (std::is_floating_point_v<T>) {
        json_number(out, static_cast<double>(value));
    } else {
        json_number(out, static_cast<std::uint64_t>(value));
    }
}

}  // namespace detail

// One flat JSON object on one line (no trailing newline); keys are the field names, in
// declaration order, with "delivered_fraction" (received / sent) after "lost" when anything was
// sent, and "sessions_closed" only when it was watched.
inline std::string to_json(const BenchResult& r) {
    std::string out;
    out.reserve(512);
    out += '{';
    detail::json_field(out, "system", r.system);
    detail::json_field(out, "scenario", r.scenario);
    detail::json_field(out, "transport", r.transport);
    detail::json_field(out, "payload_bytes", r.payload_bytes);
    detail::json_field(out, "sent", r.sent);
    detail::json_field(out, "received", r.received);
    detail::json_field(out, "lost", r.lost);
    if (r.sent > 0)
        detail::json_field(out, "delivered_fraction",
                           static_cast<double>(r.received) / static_cast<double>(r.sent));
    detail::json_field(out, "out_of_order", r.out_of_order);
    detail::json_field(out, "seconds", r.seconds);
    detail::json_field(out, "msgs_per_sec", r.msgs_per_sec);
    detail::json_field(out, "mb_per_sec", r.mb_per_sec);
    detail::json_field(out, "rate_target", r.rate_target);
    detail::json_field(out, "p50_us", r.p50_us);
    detail::json_field(out, "p99_us", r.p99_us);
    detail::json_field(out, "p999_us", r.p999_us);
    detail::json_field(out, "max_us", r.max_us);
    detail::json_field(out, "min_us", r.min_us);
    detail::json_field(out, "mean_us", r.mean_us);
    detail::json_field(out, "subscribers", r.subscribers);
    detail::json_field(out, "broker_cpu_us_per_update", r.broker_cpu_us_per_update);
    detail::json_field(out, "topics", r.topics);
    if (r.sessions_closed) detail::json_field(out, "sessions_closed", *r.sessions_closed);
    if (!r.curve.empty()) {
        out += ",\"curve\":[";
        for (std::size_t i = 0; i < r.curve.size(); ++i) {
            if (i > 0) out += ',';
            out += '[';
            detail::json_number(out, r.curve[i].first);
            out += ',';
            detail::json_number(out, r.curve[i].second);
            out += ']';
        }
        out += ']';
    }
    out += '}';
    return out;
}

// Copies the histogram's percentiles (nanoseconds) into r's latency fields (microseconds);
// an empty histogram sets them all to 0.
inline BenchResult& fill_latency(BenchResult& r, const LatencyHistogram& h) {
    const auto us = [](double ns) { return ns / 1000.0; };
    r.p50_us = us(static_cast<double>(h.percentile(50.0)));
    r.p99_us = us(static_cast<double>(h.percentile(99.0)));
    r.p999_us = us(static_cast<double>(h.percentile(99.9)));
    r.max_us = us(static_cast<double>(h.max()));
    r.min_us = us(static_cast<double>(h.min()));
    r.mean_us = us(h.mean());
    r.curve.clear();
    if (h.count() > 0)
        for (double p : kCurvePercentiles)
            r.curve.emplace_back(p, us(static_cast<double>(p >= 100.0 ? h.max()
                                                           : p <= 0.0 ? h.min()
                                                                      : h.percentile(p))));
    return r;
}

}  // namespace brook::runtime
