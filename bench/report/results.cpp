#include "results.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>

namespace brook::bench {

namespace {

using nlohmann::json;

// What makes two lines the same case, in display order. Everything a driver varies.
// "window" and "client_cpus" are bench/compare's labels (the throughput publisher's window, the
// CPUs the driver was confined to), added to the line beside "run".
constexpr std::string_view identity_fields[] = {"scenario", "transport", "payload_bytes", "rate_target",
                                                "subscribers", "topics", "handlers",
                                                "mode", "part", "window", "client_cpus"};

// The scenarios whose "received" counts every delivery (summed over the subscribers), so that
// the server's CPU over it is a cost per delivery. Not rtt (a pong counted stands for two
// deliveries) nor the Brook-only scenarios with their own counts.
constexpr std::string_view per_delivery_scenarios[] = {"throughput", "fanout", "topics"};

std::string number_text(double v) {
  char buf[64];
  auto r = v == std::floor(v) && std::fabs(v) < 1e15
               ? std::to_chars(buf, buf + sizeof buf, static_cast<long long>(v))
               : std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

std::string identity_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_boolean()) return v.get<bool>() ? "true" : "false";
  if (v.is_number()) return number_text(v.get<double>());
  return v.dump();
}

// The first of `names` that the line has as a number.
std::uint64_t count_field(const json& line, std::initializer_list<const char*> names) {
  for (const char* name : names)
    if (auto it = line.find(name); it != line.end() && it->is_number())
      return static_cast<std::uint64_t>(std::max(0.0, it->get<double>()));
  return 0;
}

RunLine read_line(const json& line) {
  RunLine r;
  r.system = line.at("system").get<std::string>();
  if (auto it = line.find("variant"); it != line.end() && it->is_string()) r.variant = it->get<std::string>();
  if (auto it = line.find("run"); it != line.end() && it->is_number_integer()) r.run = it->get<int>();
  for (std::string_view field : identity_fields) {
    auto it = line.find(std::string(field));
    if (it == line.end() || it->is_null()) continue;
    // A zero rate is "flat out", zero or one subscriber and zero topics the plain case: leave
    // them out of the key
    // so that drivers that print them and drivers that do not meet in one case.
    if (it->is_number() && it->get<double>() == 0.0 && field != "payload_bytes") continue;
    if (field == "subscribers" && it->is_number() && it->get<double>() <= 1.0) continue;
    // An average (the odds feed's values vary in size) differs run by run: not an identity.
    if (it->is_number_float() && it->get<double>() != std::floor(it->get<double>())) continue;
    r.identity.emplace_back(std::string(field), identity_text(*it));
  }
  for (const auto& [field, value] : r.identity) {
    if (!r.case_key.empty()) r.case_key += ' ';
    r.case_key += field + '=' + value;
  }
  for (const MetricInfo& m : known_metrics()) {
    auto it = line.find(std::string(m.field));
    // Zero means "not measured" in the drivers' lines (a throughput run has no p50).
    if (it != line.end() && it->is_number() && it->get<double>() > 0)
      r.metrics[std::string(m.field)] = it->get<double>();
  }
  r.sent = count_field(line, {"sent", "updates"});
  r.received = count_field(line, {"received", "recovered"});
  r.lost = count_field(line, {"lost", "missed"});
  r.disorder = count_field(line, {"out_of_order"}) + count_field(line, {"wrong"}) +
               count_field(line, {"wrong_values"});
  if (auto it = line.find("sessions_closed"); it != line.end() && it->is_number())
    r.sessions_closed = static_cast<std::uint64_t>(std::max(0.0, it->get<double>()));
  // Zero CPU is a measurement here (less than one clock tick), so it is kept, unlike a zero
  // metric from a driver.
  const std::string scenario = line.at("scenario").get<std::string>();
  if (auto it = line.find("server_cpu_s");
      it != line.end() && it->is_number() && r.received > 0 &&
      std::find(std::begin(per_delivery_scenarios), std::end(per_delivery_scenarios), scenario) !=
          std::end(per_delivery_scenarios))
    r.metrics["server_cpu_us_per_delivery"] =
        std::max(0.0, it->get<double>()) * 1e6 / static_cast<double>(r.received);
  if (auto it = line.find("curve"); it != line.end() && it->is_array())
    for (const json& point : *it)
      if (point.is_array() && point.size() == 2 && point[0].is_number() && point[1].is_number())
        r.curve.emplace_back(point[0].get<double>(), point[1].get<double>());
  return r;
}

// The summary's row order: brook first, the peers by name, baselines last; within a system,
// its variants in the order they first appear in `lines`.
std::vector<std::pair<std::string, std::string>> rows_in_order(const std::vector<const RunLine*>& lines) {
  std::vector<std::pair<std::string, std::string>> rows;  // (system, variant), first appearance
  for (const RunLine* line : lines)
    if (std::find(rows.begin(), rows.end(), std::pair(line->system, line->variant)) == rows.end())
      rows.emplace_back(line->system, line->variant);
  const auto rank = [](const std::string& s) { return s == "brook" ? 0 : is_baseline(s) ? 2 : 1; };
  std::stable_sort(rows.begin(), rows.end(), [&](const auto& a, const auto& b) {
    return std::pair(rank(a.first), a.first) < std::pair(rank(b.first), b.first);
  });
  return rows;
}

// The best peer's (or baseline's) median of the metric against Brook's row `brook`.
std::optional<Ratio> ratio_against(const CaseSummary& c, const MetricInfo& m, const SystemSummary& brook,
                                   bool baselines) {
  const std::string field(m.field);
  auto ours = brook.metrics.find(field);
  if (ours == brook.metrics.end()) return std::nullopt;
  std::optional<double> best;
  std::string best_row;
  for (const SystemSummary& s : c.systems) {
    auto it = s.metrics.find(field);
    if (s.system == "brook" || is_baseline(s.system) != baselines || it == s.metrics.end()) continue;
    const double v = it->second.median;
    if (!best || (m.better == Better::higher ? v > *best : v < *best)) {
      best = v;
      // The system's name says which row it is unless the system has several.
      const bool one_row = std::count_if(c.systems.begin(), c.systems.end(),
                                         [&](const SystemSummary& other) { return other.system == s.system; }) == 1;
      best_row = one_row ? s.system : s.row();
    }
  }
  if (!best || *best <= 0) return std::nullopt;
  return Ratio{field, best_row, ours->second.median / *best, brook.variant};
}

}  // namespace

const std::vector<MetricInfo>& known_metrics() {
  static const std::vector<MetricInfo> metrics = {
      {"msgs_per_sec", "msgs/s", Better::higher},
      {"requests_per_sec", "requests/s", Better::higher},
      {"p50_us", "p50 us", Better::lower},
      {"p99_us", "p99 us", Better::lower},
      {"p999_us", "p99.9 us", Better::lower},
      {"max_us", "max us", Better::lower},
      {"catchup_ms", "catch-up ms", Better::lower},
      {"bytes_ratio", "full/delta bytes", Better::higher},
      {"p50_us_delta", "p50 us (deltas)", Better::lower},
      {"p99_us_delta", "p99 us (deltas)", Better::lower},
      {"broker_cpu_us_per_update", "broker CPU us/update", Better::lower},
      {"server_cpu_us_per_delivery", "server CPU us/delivery", Better::lower},
      {"enqueue_per_sec", "queued calls/s", Better::higher},
      {"flush_seconds", "flush s", Better::lower},
      {"server_kib_per_connection", "server KiB/connection", Better::lower},
      {"wire_bytes_per_update", "wire bytes/update", Better::lower},
      {"json_bytes_per_update", "JSON bytes/update", Better::lower},
  };
  return metrics;
}

bool is_baseline(std::string_view system) { return system == "raw-ring"; }

std::string row_name(std::string_view system, std::string_view variant) {
  std::string name(system);
  if (!variant.empty()) name += " (" + std::string(variant) + ")";
  return name;
}

std::string identity_of(const CaseSummary& c, std::string_view field) {
  for (const auto& [name, value] : c.identity)
    if (name == field) return value;
  return "";
}

std::optional<double> ratio_to(const CaseSummary& c, std::string_view field, std::string_view system,
                               std::string_view brook_variant) {
  std::optional<double> ours, theirs;
  for (const SystemSummary& s : c.systems) {
    auto it = s.metrics.find(std::string(field));
    if (it == s.metrics.end()) continue;
    if (s.system == "brook" && s.variant == brook_variant) ours = it->second.median;
    else if (s.system == system && !theirs) theirs = it->second.median;
  }
  if (!ours || !theirs || *theirs <= 0) return std::nullopt;
  return *ours / *theirs;
}

ParsedResults parse_results(std::istream& jsonl) {
  ParsedResults out;
  std::string text;
  std::size_t number = 0;
  while (std::getline(jsonl, text)) {
    ++number;
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    json line = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (line.is_discarded() || !line.is_object()) {
      out.errors.push_back({number, "not a JSON object"});
      continue;
    }
    auto system = line.find("system");
    auto scenario = line.find("scenario");
    if (system == line.end() || !system->is_string() || scenario == line.end() ||
        !scenario->is_string()) {
      out.errors.push_back({number, "no \"system\" or \"scenario\" string"});
      continue;
    }
    out.lines.push_back(read_line(line));
  }
  return out;
}

Spread spread_of(std::vector<double> values) {
  Spread s;
  s.runs = values.size();
  if (values.empty()) return s;
  std::sort(values.begin(), values.end());
  s.min = values.front();
  s.max = values.back();
  const std::size_t mid = values.size() / 2;
  s.median = values.size() % 2 ? values[mid] : (values[mid - 1] + values[mid]) / 2;
  return s;
}

std::vector<CaseSummary> summarize(const std::vector<RunLine>& lines) {
  std::vector<CaseSummary> cases;
  // Cases in the order they first appear: the order bench/compare ran them.
  for (const RunLine& line : lines) {
    auto known = std::find_if(cases.begin(), cases.end(),
                              [&](const CaseSummary& c) { return c.case_key == line.case_key; });
    if (known == cases.end()) cases.push_back({line.case_key, line.identity, {}, {}, {}});
  }
  for (CaseSummary& c : cases) {
    std::vector<const RunLine*> case_lines;
    for (const RunLine& line : lines)
      if (line.case_key == c.case_key) case_lines.push_back(&line);
    for (const auto& [system, variant] : rows_in_order(case_lines)) {
      SystemSummary s{.system = system, .variant = variant};
      std::map<std::string, std::vector<double>> values;
      std::vector<const RunLine*> runs;
      for (const RunLine* line : case_lines) {
        if (line->system != system || line->variant != variant) continue;
        runs.push_back(line);
        for (const auto& [field, v] : line->metrics) values[field].push_back(v);
        s.sent += line->sent;
        s.received += line->received;
        s.lost += line->lost;
        s.disorder += line->disorder;
        if (line->sessions_closed) s.sessions_closed = s.sessions_closed.value_or(0) + *line->sessions_closed;
      }
      for (auto& [field, v] : values) s.metrics[field] = spread_of(std::move(v));
      // The curve of the run whose p99 is the median one: a typical run, not the best.
      std::vector<const RunLine*> curved;
      for (const RunLine* r : runs)
        if (!r->curve.empty()) curved.push_back(r);
      if (!curved.empty()) {
        auto p99 = [](const RunLine* r) {
          auto it = r->metrics.find("p99_us");
          return it == r->metrics.end() ? 0.0 : it->second;
        };
        std::sort(curved.begin(), curved.end(), [&](auto* a, auto* b) { return p99(a) < p99(b); });
        s.curve = curved[(curved.size() - 1) / 2]->curve;
      }
      c.systems.push_back(std::move(s));
    }
    for (const SystemSummary& brook : c.systems) {
      if (brook.system != "brook") continue;
      for (const MetricInfo& m : known_metrics()) {
        if (auto r = ratio_against(c, m, brook, /*baselines=*/false)) c.ratios.push_back(*r);
        if (auto r = ratio_against(c, m, brook, /*baselines=*/true)) c.baseline_ratios.push_back(*r);
      }
    }
  }
  return cases;
}

}  // namespace brook::bench
