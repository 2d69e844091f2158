// bench/compare's results, read back: every JSON line a benchmark driver printed (brook bench,
// peer_bench, nats_peer), grouped into cases (the same scenario, transport, payload, rate,
// fan-out, ... for every system), with min/median/max over the runs of each metric, the
// losses, and Brook's median as a ratio to the best peer's.
//
// The drivers' lines differ by scenario (requests and deltas have their own fields), so a
// line is read by what it has: known identity fields make the case, known metric fields are
// summarised, everything else is kept only in the raw results. One metric is derived: the
// server's CPU per delivery, from the "server_cpu_s" that bench/compare adds to a line.
//
// A case has a row per system, or several when a system ran in several set-ups (Brook under
// each storage.sync): bench/compare then labels each line with a "variant" ("sync always"),
// which makes its own row ("brook (sync always)") and its own ratios, never its own case.
#pragma once

#include <cstdint>
#include <istream>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace brook::bench {

// Whether more of a metric is better (messages/s) or worse (latency).
enum class Better { higher, lower };

struct MetricInfo {
  std::string_view field;  // as in the JSON line
  std::string_view label;  // for tables and plots
  Better better;
};

// The metrics summarised, in table order.
const std::vector<MetricInfo>& known_metrics();

struct RunLine {
  std::string system;
  std::string variant;                       // the system's set-up when it has several, or ""
  int run = 0;
  std::string case_key;                      // identity fields, "scenario=rtt transport=tcp ..."
  std::vector<std::pair<std::string, std::string>> identity;  // in a fixed order
  std::map<std::string, double> metrics;     // known metric fields present and non-zero
  std::uint64_t sent = 0, received = 0, lost = 0, disorder = 0;  // disorder: out_of_order + wrong
  std::optional<std::uint64_t> sessions_closed;  // when the driver watched for it
  std::vector<std::pair<double, double>> curve;  // (percentile, us), when the line had one
};

struct ParseError {
  std::size_t line = 0;  // 1-based
  std::string reason;
};

struct ParsedResults {
  std::vector<RunLine> lines;
  std::vector<ParseError> errors;  // malformed lines are reported, never silently skipped
};

ParsedResults parse_results(std::istream& jsonl);

struct Spread {
  double min = 0, median = 0, max = 0;
  std::size_t runs = 0;
};

// Min, median (the mean of the middle two for an even count) and max; all zero when empty.
Spread spread_of(std::vector<double> values);

// A row's name: "brook", or "brook (sync always)" for a variant.
std::string row_name(std::string_view system, std::string_view variant);

struct SystemSummary {
  std::string system;
  std::string variant;
  std::map<std::string, Spread> metrics;  // by field
  std::uint64_t sent = 0, received = 0, lost = 0, disorder = 0;  // summed over the runs
  std::optional<std::uint64_t> sessions_closed;  // summed over the runs that watched for it
  std::vector<std::pair<double, double>> curve;  // of the run with the median p99 (if any)

  std::string row() const { return row_name(system, variant); }

  // received / sent over the runs (deliveries, for fan-out); empty when nothing was sent.
  std::optional<double> delivered_fraction() const {
    if (sent == 0) return std::nullopt;
    return static_cast<double>(received) / static_cast<double>(sent);
  }
};

// Brook's median against the best peer's (or the hardware baseline's): for a higher-better
// metric brook/best (2.0: twice as many), for a lower-better one brook/best too (0.5: half
// the latency). `against` names the system compared with (its row, "nats (JetStream)", when
// it has several); `variant` says which of Brook's rows the ratio is for, when it has several
// (one ratio per Brook row and metric).
struct Ratio {
  std::string field;
  std::string against;
  double value = 0;
  std::string variant;
};

struct CaseSummary {
  std::string case_key;
  std::vector<std::pair<std::string, std::string>> identity;
  // brook first, then the peers by name, baselines last; a system's variants in the order
  // they first appear in the results (the order bench/compare ran them)
  std::vector<SystemSummary> systems;
  std::vector<Ratio> ratios;           // vs the best peer
  std::vector<Ratio> baseline_ratios;  // vs a hardware baseline (raw-ring), when present
};

// Systems that are not messaging peers but the hardware floor Brook is measured against.
bool is_baseline(std::string_view system);

// The identity value of `field` in the case ("" when the case has none).
std::string identity_of(const CaseSummary& c, std::string_view field);

// The median of `field` in Brook's row `brook_variant` over the one in `system`'s (first) row;
// empty when either is missing or the other's is 0.
std::optional<double> ratio_to(const CaseSummary& c, std::string_view field, std::string_view system,
                               std::string_view brook_variant = {});

std::vector<CaseSummary> summarize(const std::vector<RunLine>& lines);

}  // namespace brook::bench
