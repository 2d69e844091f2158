// bench/compare's outputs from the summarised results: the Markdown tables the README shows,
// the results file (JSON: the run's description, every raw line, the summary), and gnuplot
// scripts for the plots (latency percentile curves, throughput bars).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "results.hpp"

namespace brook::bench {

// A case's title: "rtt · tcp · 64 B · 10000/s".
std::string case_title(const CaseSummary& c);

// The heading of the group of cases `c` belongs to ("Fan-out: ..."); consecutive cases with the
// same section share one heading.
std::string section_title(const CaseSummary& c);

// A target from DESIGN.md's performance list that a case is measured against, and where
// Brook stands: `met` is empty when the run cannot tell (no Brook, no such peer, nothing
// measured).
struct TargetCheck {
  std::string target;    // "100% delivered, no session closed, ≥2x nats-server msgs/s"
  std::string measured;  // "100% delivered, 0 sessions closed, msgs/s 2.31x nats"
  std::optional<bool> met;
};
// `all`: every case of the run, for targets that compare two cases (TLS against plain TCP).
std::vector<TargetCheck> target_checks(const CaseSummary& c, std::span<const CaseSummary> all = {});

// The variant bench/compare gives Brook's row under storage.sync = "always", the setting the
// durable publish's target is about.
inline constexpr std::string_view kStrictestSync = "sync always";

// One table per case: a row per system, a column per metric the case has (median, and the
// min–max over the runs when there was more than one), the losses, and Brook's ratios to
// the best peer and to the hardware baseline, and the targets it is held to. `meta` (date,
// machine, Brook's shards, pinning, how server CPU is measured) heads it.
std::string markdown_report(const std::vector<CaseSummary>& cases, const nlohmann::json& meta);

// The results file: {"meta": ..., "summary": [...], "runs": [raw lines], "errors": [...]}.
nlohmann::json results_document(const std::vector<CaseSummary>& cases, const nlohmann::json& raw_lines,
                                const std::vector<ParseError>& errors, const nlohmann::json& meta);

struct Plot {
  std::string name;    // file stem: name.gp, name.dat, name.png
  std::string script;  // gnuplot, reading name.dat and writing name.png in its directory
  std::string data;
};

// Throughput bars for the flat-out cases, one percentile-curve plot per latency case that
// has curves. Empty when there is nothing to draw.
std::vector<Plot> plots(const std::vector<CaseSummary>& cases);

}  // namespace brook::bench
