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
  std::vector<std::string> systems;
  for (const CaseSummary* c : cases)
    for (const SystemSummary& s : c->systems)
      if (s.metrics.count("msgs_per_sec") && std::find(systems.begin(), systems.end(), s.system) == systems.end())
        systems.push_back(s.system);
  Plot p;
  p.name = "throughput";
  p.data = "# case";
  for (const std::string& s : systems) p.data += " " + s + "_median " + s + "_min " + s + "_max";
  p.data += '\n';
  for (const CaseSummary* c : cases) {
    p.data += gnuplot_quoted(case_title(*c));
    for (const std::string& name : systems) {
      auto it = std::find_if(c->systems.begin(), c->systems.end(),
                             [&](const SystemSummary& s) { return s.system == name; });
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
      "set terminal pngcairo size 1100,520 font 'sans,10'\n"
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
      "set bmargin 9\n";
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
    p.data += "# " + s->system + "\n";
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
                " using 1:2 with linespoints lw 2 title " + gnuplot_quoted(drawn[i]->system);
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
    else part = field + "=" + value;
    if (!title.empty()) title += " · ";
    title += part;
  }
  return title;
}

std::string markdown_report(const std::vector<CaseSummary>& cases, const json& meta) {
  std::string md;
  if (meta.is_object()) {
    md += "Measured " + meta.value("date", std::string("?")) + " on " + meta.value("machine", std::string("?"));
    if (meta.contains("command")) md += " with `" + meta["command"].get<std::string>() + "`";
    md += ". Medians over the runs, min–max in brackets; ratios are Brook's median over the best "
          "peer's (msgs/s: higher is better; latency: lower is better).\n\n";
  }
  for (const CaseSummary& c : cases) {
    const auto metrics = case_metrics(c);
    md += "#### " + case_title(c) + "\n\n| system |";
    for (const MetricInfo* m : metrics) md += " " + std::string(m->label) + " |";
    md += " sent | lost | out of order |\n|---|";
    for (std::size_t i = 0; i < metrics.size(); ++i) md += "---:|";
    md += "---:|---:|---:|\n";
    for (const SystemSummary& s : c.systems) {
      md += "| " + s.system + " |";
      for (const MetricInfo* m : metrics) {
        auto it = s.metrics.find(std::string(m->field));
        md += ' ';
        md += it == s.metrics.end() ? std::string("–") : spread_text(m->field, it->second);
        md += " |";
      }
      md += " " + grouped(static_cast<double>(s.sent)) + " | " + grouped(static_cast<double>(s.lost)) +
            " | " + grouped(static_cast<double>(s.disorder)) + " |\n";
    }
    if (!c.ratios.empty()) md += "\nBrook vs the best peer: " + ratio_text(c.ratios) + ".\n";
    if (!c.baseline_ratios.empty())
      md += "\nBrook vs the hardware baseline: " + ratio_text(c.baseline_ratios) + ".\n";
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
      for (const auto& [field, spread] : s.metrics)
        system["metrics"][field] = {{"min", spread.min}, {"median", spread.median},
                                    {"max", spread.max}, {"runs", spread.runs}};
      entry["systems"].push_back(system);
    }
    for (const Ratio& r : c.ratios)
      entry["brook_vs_best_peer"][r.field] = {{"against", r.against}, {"ratio", r.value}};
    for (const Ratio& r : c.baseline_ratios)
      entry["brook_vs_baseline"][r.field] = {{"against", r.against}, {"ratio", r.value}};
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
