#include "render.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <set>

namespace brook::bench {

namespace {

using nlohmann::json;

std::string fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

// 1,362,348
std::string grouped(double v) {
  const std::string digits = fixed(std::round(v), 0);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    out += digits[i];
    const std::size_t left = digits.size() - 1 - i;
    if (left > 0 && left % 3 == 0 && std::isdigit(static_cast<unsigned char>(digits[i]))) out += ',';
  }
  return out;
}

std::string metric_text(std::string_view field, double v) {
  if (field == "msgs_per_sec" || field == "requests_per_sec" || field == "enqueue_per_sec") return grouped(v);
  if (v >= 1000) return grouped(v);
  if (v >= 100) return fixed(v, 0);
  if (v >= 10) return fixed(v, 1);
  return fixed(v, 2);
}

std::string spread_text(std::string_view field, const Spread& s) {
  std::string text = metric_text(field, s.median);
  if (s.runs > 1) text += " (" + metric_text(field, s.min) + "–" + metric_text(field, s.max) + ")";
  return text;
}

// 100% only when every message arrived: a loss never rounds up to it.
std::string percent_text(double fraction) {
  if (fraction == 1.0) return "100%";
  if (fraction > 1.0) return fixed(fraction * 100, 2) + "%";
  return fixed(std::min(fraction * 100, 99.99), 2) + "%";
}

// The system's row with that variant ("" for a system with one row).
const SystemSummary* find_system(const CaseSummary& c, std::string_view name, std::string_view variant = {}) {
  for (const SystemSummary& s : c.systems)
    if (s.system == name && s.variant == variant) return &s;
  return nullptr;
}

// Whether a messaging peer (not Brook, not a baseline) has the metric in this case.
bool a_peer_has(const CaseSummary& c, const std::string& field) {
  return std::any_of(c.systems.begin(), c.systems.end(), [&](const SystemSummary& s) {
    return s.system != "brook" && !is_baseline(s.system) && s.metrics.count(field) > 0;
  });
}

std::string met_text(const std::optional<bool>& met) {
  if (!met) return "cannot tell from this run";
  return *met ? "**met**" : "**not met**";
}

const MetricInfo* metric_info(std::string_view field) {
  for (const MetricInfo& m : known_metrics())
    if (m.field == field) return &m;
  return nullptr;
}

std::string ratio_text(const std::vector<Ratio>& ratios) {
  std::string text;
  for (const Ratio& r : ratios) {
    if (!text.empty()) text += "; ";
    const MetricInfo* m = metric_info(r.field);
    text += std::string(m ? m->label : r.field) + " " + fixed(r.value, 2) + "x " + r.against;
  }
  return text;
}

// "\nBrook vs the best peer: ...\n", a line per Brook row when it has several variants.
std::string ratio_lines(const std::vector<Ratio>& ratios, const std::string& versus) {
  std::vector<std::string> variants;
  for (const Ratio& r : ratios)
    if (std::find(variants.begin(), variants.end(), r.variant) == variants.end()) variants.push_back(r.variant);
  std::string lines;
  for (const std::string& variant : variants) {
    std::vector<Ratio> of_variant;
    std::copy_if(ratios.begin(), ratios.end(), std::back_inserter(of_variant),
                 [&](const Ratio& r) { return r.variant == variant; });
    lines += "\n" + row_name("Brook", variant) + " vs " + versus + ": " + ratio_text(of_variant) + ".\n";
  }
  return lines;
}

// The metrics any system of the case has, in known_metrics() order.
std::vector<const MetricInfo*> case_metrics(const CaseSummary& c) {
  std::vector<const MetricInfo*> out;
  for (const MetricInfo& m : known_metrics())
    for (const SystemSummary& s : c.systems)
      if (s.metrics.count(std::string(m.field))) {
        out.push_back(&m);
        break;
      }
  return out;
}

bool flat_out(const CaseSummary& c) {
  return std::none_of(c.identity.begin(), c.identity.end(),
                      [](const auto& kv) { return kv.first == "rate_target"; });
}

std::string file_stem(std::string text) {
  std::string out;
  for (char ch : text) {
    if (std::isalnum(static_cast<unsigned char>(ch))) out += ch;
    else if (!out.empty() && out.back() != '-') out += '-';
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out;
}

std::string gnuplot_quoted(const std::string& s) {
  std::string out = "\"";
  for (char ch : s) {
    if (ch == '"' || ch == '\\') out += '\\';
    out += ch;
  }
  return out + '"';
}

// Percentile p as x on a 1/(1-p) axis: 50% at 2, 99% at 100; min at 1 and max one decade
// past the last percentile, where HdrHistogram's plots put them.
double percentile_axis(double p) {
  if (p >= 100.0) return 1e6;
  return 1.0 / (1.0 - p / 100.0);
}

Plot throughput_bars(const std::vector<const CaseSummary*>& cases) {
  std::vector<std::string> systems;  // rows, by name
  for (const CaseSummary* c : cases)
    for (const SystemSummary& s : c->systems)
      if (s.metrics.count("msgs_per_sec") && std::find(systems.begin(), systems.end(), s.row()) == systems.end())
        systems.push_back(s.row());
  Plot p;
  p.name = "throughput";
  p.data = "# case";
  for (const std::string& s : systems) p.data += " " + s + "_median " + s + "_min " + s + "_max";
  p.data += '\n';
  for (const CaseSummary* c : cases) {
    p.data += gnuplot_quoted(case_title(*c));
    for (const std::string& name : systems) {
      auto it = std::find_if(c->systems.begin(), c->systems.end(),
                             [&](const SystemSummary& s) { return s.row() == name; });
      if (it == c->systems.end() || !it->metrics.count("msgs_per_sec")) {
        p.data += " ? ? ?";
        continue;
      }
      const Spread& s = it->metrics.at("msgs_per_sec");
      p.data += " " + fixed(s.median, 0) + " " + fixed(s.min, 0) + " " + fixed(s.max, 0);
    }
    p.data += '\n';
  }
  p.script =
      "set terminal pngcairo size 1400,640 font 'sans,10'\n"
      "set output 'throughput.png'\n"
      "set title 'Messages delivered per second (median of the runs; bars: min to max)'\n"
      "set datafile missing '?'\n"
      "set style data histogram\n"
      "set style histogram errorbars gap 2 lw 1\n"
      "set style fill solid 0.8 border -1\n"
      "set ylabel 'messages/s'\n"
      "set format y '%.1s%c'\n"
      "set yrange [0:*]\n"
      "set grid ytics\n"
      "set key top right\n"
      "set xtics rotate by 20 right noenhanced\n"
      "set bmargin 12\n"
      "set lmargin 26\n";  // the first case's title, rotated, reaches left of the axis
  p.script += "plot ";
  for (std::size_t i = 0; i < systems.size(); ++i) {
    const std::size_t col = 2 + 3 * i;
    if (i > 0) p.script += ", \\\n     ";
    p.script += "'throughput.dat' using " + std::to_string(col) + ":" + std::to_string(col + 1) + ":" +
                std::to_string(col + 2) + (i == 0 ? ":xtic(1)" : "") + " title " +
                gnuplot_quoted(systems[i]);
  }
  p.script += '\n';
  return p;
}

Plot latency_curves(const CaseSummary& c, std::size_t index) {
  Plot p;
  p.name = "latency-" + std::to_string(index) + "-" + file_stem(case_title(c));
  std::vector<const SystemSummary*> drawn;
  for (const SystemSummary& s : c.systems)
    if (!s.curve.empty()) drawn.push_back(&s);
  for (const SystemSummary* s : drawn) {
    p.data += "# " + s->row() + "\n";
    for (auto [percentile, us] : s->curve)
      p.data += fixed(percentile_axis(percentile), 3) + " " + fixed(std::max(us, 0.001), 3) + " " +
                fixed(percentile, 3) + "\n";
    p.data += "\n\n";  // a gnuplot data block per system: index 0, 1, ...
  }
  p.script = "set terminal pngcairo size 900,520 font 'sans,10'\n"
             "set output '" + p.name + ".png'\n"
             "set title " + gnuplot_quoted("Latency by percentile: " + case_title(c) +
                                           " (the run with the median p99)") + " noenhanced\n"
             "set logscale xy\n"
             "set xrange [1:1e6]\n"
             "set xtics ('min' 1, '50%%' 2, '90%%' 10, '99%%' 100, '99.9%%' 1000, '99.99%%' 10000, "
             "'99.999%%' 100000, 'max' 1000000)\n"
             "set ylabel 'microseconds'\n"
             "set grid xtics ytics mytics\n"
             "set key top left\n";
  p.script += "plot ";
  for (std::size_t i = 0; i < drawn.size(); ++i) {
    if (i > 0) p.script += ", \\\n     ";
    p.script += "'" + p.name + ".dat' index " + std::to_string(i) +
                " using 1:2 with linespoints lw 2 title " + gnuplot_quoted(drawn[i]->row());
  }
  p.script += '\n';
  return p;
}

}  // namespace

std::string case_title(const CaseSummary& c) {
  std::string title;
  for (const auto& [field, value] : c.identity) {
    std::string part;
    if (field == "scenario" || field == "transport" || field == "mode" || field == "part") part = value;
    else if (field == "payload_bytes") part = value + " B";
    else if (field == "rate_target") part = value + "/s";
    else if (field == "subscribers") part = value + " subscribers";
    else if (field == "topics") part = value + " topics";
    else if (field == "handlers") part = value + (value == "1" ? " handler" : " handlers");
    else if (field == "window") part = value == "none" ? "no window" : "window " + value;
    else if (field == "client_cpus") part = value == "all" ? "client unpinned" : "client on CPU " + value;
    else part = field + "=" + value;
    if (!title.empty()) title += " · ";
    title += part;
  }
  return title;
}

std::string section_title(const CaseSummary& c) {
  const std::string scenario = identity_of(c, "scenario");
  if (identity_of(c, "part") == "TLS group")
    return "TLS: Brook's TLS listener beside its plain one on the same broker, and nats-server with TLS";
  if (scenario == "throughput") {
    const std::string window = identity_of(c, "window");
    if (window == "none")
      return "Throughput with no application-level window: the publisher as fast as each system's API "
             "accepts, one subscriber";
    return "Throughput: one publisher flat out, one subscriber" +
           (window.empty() ? std::string() : ", the publisher at most " + window + " ahead of it");
  }
  if (scenario == "rtt") return "Round trip through the server at a fixed rate";
  if (scenario == "fanout")
    return "Fan-out: one publisher at a fixed rate, all subscribers in one process, one-way latency";
  if (scenario == "topics") return "Many topics: one publisher flat out, wildcard subscribers";
  if (scenario == "oneway") return "One-way latency and fan-out over shared memory, beside the raw ring";
  if (scenario == "acked")
    return "Durable publish with acknowledgement: one publisher; acknowledged msgs/s flat out with a window of "
           "unacknowledged publishes, acknowledgement latency at a fixed rate";
  return "Other scenarios";
}

// The case that is `c` but for its transport being `transport`: in bench/compare's TLS group,
// Brook's plain TCP figures from the same broker.
const CaseSummary* with_transport(const CaseSummary& c, std::span<const CaseSummary> all, std::string_view transport) {
  for (const CaseSummary& other : all) {
    if (other.identity.size() != c.identity.size()) continue;
    bool same = true;
    for (std::size_t i = 0; i < c.identity.size() && same; ++i)
      same = other.identity[i].first == c.identity[i].first &&
             (other.identity[i].first == "transport" ? other.identity[i].second == transport
                                                      : other.identity[i].second == c.identity[i].second);
    if (same) return &other;
  }
  return nullptr;
}

std::vector<TargetCheck> target_checks(const CaseSummary& c, std::span<const CaseSummary> all) {
  std::vector<TargetCheck> out;
  const SystemSummary* brook = find_system(c, "brook");
  const std::string scenario = identity_of(c, "scenario");
  if (scenario == "throughput" && identity_of(c, "window") == "none") {
    TargetCheck t{"100% delivered, no session closed, ≥2x nats-server msgs/s", "no Brook result", std::nullopt};
    if (brook) {
      const std::optional<double> delivered = brook->delivered_fraction();
      const std::optional<double> ratio = ratio_to(c, "msgs_per_sec", "nats");
      t.measured = (delivered ? percent_text(*delivered) : std::string("nothing sent")) + " delivered, " +
                   (brook->sessions_closed ? grouped(static_cast<double>(*brook->sessions_closed)) + " sessions closed"
                                           : std::string("sessions closed not reported")) +
                   ", msgs/s " + (ratio ? fixed(*ratio, 2) + "x nats" : std::string("(no nats-server result)"));
      const bool missed = (delivered && *delivered < 1.0) || brook->lost > 0 ||
                          brook->sessions_closed.value_or(0) > 0 || (ratio && *ratio < 2.0);
      if (missed) t.met = false;
      else if (delivered && brook->sessions_closed && ratio) t.met = true;
    }
    out.push_back(std::move(t));
  }
  if (scenario == "fanout") {
    TargetCheck t{"0 lost, one-way p99 ≤ half of the best peer's", "no Brook result", std::nullopt};
    if (brook) {
      auto p99 = std::find_if(c.ratios.begin(), c.ratios.end(), [](const Ratio& r) { return r.field == "p99_us"; });
      const bool has_p99 = p99 != c.ratios.end();
      t.measured = grouped(static_cast<double>(brook->lost)) + " lost, p99 " +
                   (has_p99 ? fixed(p99->value, 2) + "x " + p99->against : std::string("(no peer result)"));
      if (brook->lost > 0 || (has_p99 && p99->value > 0.5)) t.met = false;
      else if (has_p99) t.met = true;
    }
    out.push_back(std::move(t));
  }
  if (scenario == "acked") {
    // Issue 21: Brook at its strictest (acknowledged after fdatasync) against JetStream.
    const std::string variant = std::string(kStrictestSync);
    TargetCheck t{"with sync always: nothing lost, ≥2x JetStream's acknowledged msgs/s, acknowledgement p99 ≤ half "
                  "of JetStream's",
                  "no Brook result with sync always", std::nullopt};
    if (const SystemSummary* brook = find_system(c, "brook", variant)) {
      const std::optional<double> rate = ratio_to(c, "msgs_per_sec", "nats", variant);
      const std::optional<double> p99 = ratio_to(c, "p99_us", "nats", variant);
      t.measured = grouped(static_cast<double>(brook->lost)) + " lost, msgs/s " +
                   (rate ? fixed(*rate, 2) + "x nats" : std::string("(no JetStream result)")) + ", p99 " +
                   (p99 ? fixed(*p99, 2) + "x nats" : std::string("(no JetStream result)"));
      if (brook->lost > 0 || (rate && *rate < 2.0) || (p99 && *p99 > 0.5)) t.met = false;
      else if (rate && p99) t.met = true;
    }
    out.push_back(std::move(t));
  }
  if (scenario == "throughput" && identity_of(c, "transport") == "tls") {
    // Issue 22: over TLS, twice nats-server's rate over TLS, and TLS at most 15% of Brook's
    // plain rate (a target set for kernel TLS; user-space TLS is held to it as well).
    TargetCheck t{"≥2x nats-server's msgs/s over TLS; TLS costs ≤15% of Brook's plain TCP msgs/s", "no Brook result",
                  std::nullopt};
    if (brook && brook->metrics.contains("msgs_per_sec")) {
      const std::optional<double> ratio = ratio_to(c, "msgs_per_sec", "nats");
      std::optional<double> of_plain;
      if (const CaseSummary* plain = with_transport(c, all, "tcp"))
        if (const SystemSummary* brook_plain = find_system(*plain, "brook");
            brook_plain && brook_plain->metrics.contains("msgs_per_sec"))
          of_plain = brook->metrics.at("msgs_per_sec").median / brook_plain->metrics.at("msgs_per_sec").median;
      t.measured = "msgs/s " + (ratio ? fixed(*ratio, 2) + "x nats" : std::string("(no nats-server result)")) +
                   ", TLS / plain TCP " + (of_plain ? fixed(*of_plain, 2) + "x" : std::string("(no plain result)"));
      if (brook->lost > 0 || (ratio && *ratio < 2.0) || (of_plain && *of_plain < 0.85)) t.met = false;
      else if (ratio && of_plain) t.met = true;
    }
    out.push_back(std::move(t));
  }
  if ((scenario == "throughput" || scenario == "fanout") && a_peer_has(c, "server_cpu_us_per_delivery") &&
      identity_of(c, "part") != "TLS group" && identity_of(c, "transport") != "ws") {
    TargetCheck t{"server CPU per delivery ≤ half of redis-server's", "", std::nullopt};
    if (const std::optional<double> ratio = ratio_to(c, "server_cpu_us_per_delivery", "redis")) {
      t.measured = fixed(*ratio, 2) + "x redis";
      t.met = *ratio <= 0.5;
    } else {
      t.measured = "no ratio (Brook or redis-server absent, or redis-server under one clock tick)";
    }
    out.push_back(std::move(t));
  }
  return out;
}

std::string markdown_report(const std::vector<CaseSummary>& cases, const json& meta) {
  std::string md;
  if (meta.is_object()) {
    md += "Measured " + meta.value("date", std::string("?")) + " on " + meta.value("machine", std::string("?"));
    if (meta.contains("command")) md += " with `" + meta["command"].get<std::string>() + "`";
    md += ". Medians over the runs, min–max in brackets; ratios are Brook's median over the best "
          "peer's (msgs/s: higher is better; latency and CPU: lower is better).\n\n";
    std::string notes;
    if (meta.contains("brook_shards") && meta["brook_shards"].is_number_integer()) {
      // server_cores: the cores the server may run on (fewer than the machine's when pinned).
      const auto shards = meta["brook_shards"].get<long long>();
      const auto cores = meta.value("server_cores", 0LL);
      const auto machine_cores = meta.value("cores", cores);
      notes += "- Brook: " + std::to_string(shards) + (shards == 1 ? " shard" : " shards") +
               (shards == cores ? " = cores" : " on " + std::to_string(cores) + " cores") +
               (cores < machine_cores ? " it may use (" + std::to_string(cores) + " of " +
                                            std::to_string(machine_cores) + ")"
                                      : "") +
               ".\n";
    }
    for (const auto& [key, label] : {std::pair{"pinning", "Pinning"},
                                     std::pair{"unwindowed_pinning", "No-window throughput"},
                                     std::pair{"server_cpu", "Server CPU"},
                                     std::pair{"durable", "Durable publish"},
                                     std::pair{"tls", "TLS"},
                                     std::pair{"web", "WebSocket"}})
      if (meta.contains(key) && meta[key].is_string())
        notes += std::string("- ") + label + ": " + meta[key].get<std::string>() + ".\n";
    if (!notes.empty()) md += notes + '\n';
  }
  std::string section;
  for (const CaseSummary& c : cases) {
    if (section_title(c) != section) {
      section = section_title(c);
      md += "### " + section + "\n\n";
    }
    const auto metrics = case_metrics(c);
    const bool watched = std::any_of(c.systems.begin(), c.systems.end(),
                                     [](const SystemSummary& s) { return s.sessions_closed.has_value(); });
    md += "#### " + case_title(c) + "\n\n| system |";
    for (const MetricInfo* m : metrics) md += " " + std::string(m->label) + " |";
    md += " sent | delivered | lost | out of order |";
    if (watched) md += " sessions closed |";
    md += "\n|---|";
    for (std::size_t i = 0; i < metrics.size(); ++i) md += "---:|";
    md += watched ? "---:|---:|---:|---:|---:|\n" : "---:|---:|---:|---:|\n";
    for (const SystemSummary& s : c.systems) {
      md += "| " + s.row() + " |";
      for (const MetricInfo* m : metrics) {
        auto it = s.metrics.find(std::string(m->field));
        md += ' ';
        md += it == s.metrics.end() ? std::string("–") : spread_text(m->field, it->second);
        md += " |";
      }
      const std::optional<double> delivered = s.delivered_fraction();
      md += " " + grouped(static_cast<double>(s.sent)) + " | " + (delivered ? percent_text(*delivered) : "–") +
            " | " + grouped(static_cast<double>(s.lost)) + " | " + grouped(static_cast<double>(s.disorder)) + " |";
      if (watched) md += " " + (s.sessions_closed ? grouped(static_cast<double>(*s.sessions_closed)) : "–") + " |";
      md += '\n';
    }
    md += ratio_lines(c.ratios, "the best peer");
    md += ratio_lines(c.baseline_ratios, "the hardware baseline");
    for (const TargetCheck& t : target_checks(c, cases))
      md += "\nTarget: " + t.target + ". Brook: " + t.measured + ": " + met_text(t.met) + ".\n";
    md += '\n';
  }
  return md;
}

json results_document(const std::vector<CaseSummary>& cases, const json& raw_lines,
                      const std::vector<ParseError>& errors, const json& meta) {
  json summary = json::array();
  for (const CaseSummary& c : cases) {
    json entry = {{"case", case_title(c)}};
    for (const auto& [field, value] : c.identity) entry["identity"][field] = value;
    for (const SystemSummary& s : c.systems) {
      json system = {{"system", s.system}, {"sent", s.sent}, {"received", s.received},
                     {"lost", s.lost}, {"out_of_order", s.disorder}};
      if (!s.variant.empty()) system["variant"] = s.variant;
      if (const std::optional<double> delivered = s.delivered_fraction()) system["delivered_fraction"] = *delivered;
      if (s.sessions_closed) system["sessions_closed"] = *s.sessions_closed;
      for (const auto& [field, spread] : s.metrics)
        system["metrics"][field] = {{"min", spread.min}, {"median", spread.median},
                                    {"max", spread.max}, {"runs", spread.runs}};
      entry["systems"].push_back(system);
    }
    // A Brook with variants has its ratios per variant (the plain keys would collide).
    const auto add_ratios = [&](const std::vector<Ratio>& ratios, const std::string& key) {
      for (const Ratio& r : ratios) {
        const json ratio = {{"against", r.against}, {"ratio", r.value}};
        if (r.variant.empty()) entry[key][r.field] = ratio;
        else entry[key + "_by_variant"][r.variant][r.field] = ratio;
      }
    };
    add_ratios(c.ratios, "brook_vs_best_peer");
    add_ratios(c.baseline_ratios, "brook_vs_baseline");
    for (const TargetCheck& t : target_checks(c, cases))
      entry["targets"].push_back({{"target", t.target},
                                  {"brook", t.measured},
                                  {"met", t.met ? json(*t.met) : json(nullptr)}});
    summary.push_back(entry);
  }
  json errs = json::array();
  for (const ParseError& e : errors) errs.push_back({{"line", e.line}, {"reason", e.reason}});
  return {{"meta", meta}, {"summary", summary}, {"runs", raw_lines}, {"errors", errs}};
}

std::vector<Plot> plots(const std::vector<CaseSummary>& cases) {
  std::vector<Plot> out;
  std::vector<const CaseSummary*> bars;
  for (const CaseSummary& c : cases) {
    const bool has_throughput = std::any_of(c.systems.begin(), c.systems.end(), [](const SystemSummary& s) {
      return s.metrics.count("msgs_per_sec") > 0;
    });
    if (flat_out(c) && has_throughput) bars.push_back(&c);
  }
  if (!bars.empty()) out.push_back(throughput_bars(bars));
  std::size_t index = 0;
  for (const CaseSummary& c : cases) {
    if (std::none_of(c.systems.begin(), c.systems.end(), [](const SystemSummary& s) { return !s.curve.empty(); }))
      continue;
    out.push_back(latency_curves(c, ++index));
  }
  return out;
}

}  // namespace brook::bench
