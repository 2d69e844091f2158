// compare_report: turns bench/compare's results.jsonl into results.json, results.md and the
// plots (PNG through gnuplot, when it is installed; the .gp and .dat files are written
// either way so the plots can be drawn elsewhere).
//
//   compare_report --in DIR/results.jsonl --meta DIR/meta.json --out DIR [--require-complete brook]
//
// Exit status: 0 written; 1 the input could not be read or had malformed lines (they are
// listed on stderr and in results.json; the rest is still written), or a system named by
// --require-complete lost or reordered a message; 2 usage.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>

#include "render.hpp"
#include "results.hpp"

namespace {

namespace fs = std::filesystem;

bool write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  if (!out) std::fprintf(stderr, "compare_report: cannot write %s\n", path.c_str());
  return static_cast<bool>(out);
}

bool gnuplot_installed() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"compare_report: bench/compare's results as JSON, Markdown and plots"};
  std::string in_path, meta_path, out_dir;
  std::vector<std::string> complete_systems;
  app.add_option("--in", in_path, "results.jsonl: one JSON line per run")->required();
  app.add_option("--meta", meta_path, "meta.json: the run's date, machine, peer settings");
  app.add_option("--out", out_dir, "directory for results.json, results.md, plots/")->required();
  app.add_option("--require-complete", complete_systems,
                 "fail when this system lost or reordered any message (repeatable)");
  CLI11_PARSE(app, argc, argv);

  std::ifstream in(in_path);
  if (!in) {
    std::fprintf(stderr, "compare_report: cannot read %s\n", in_path.c_str());
    return 1;
  }
  std::stringstream text;
  text << in.rdbuf();
  std::istringstream for_parse(text.str());
  const brook::bench::ParsedResults parsed = brook::bench::parse_results(for_parse);
  for (const auto& e : parsed.errors)
    std::fprintf(stderr, "compare_report: %s:%zu: %s\n", in_path.c_str(), e.line, e.reason.c_str());

  nlohmann::json raw = nlohmann::json::array();
  std::istringstream lines(text.str());
  for (std::string line; std::getline(lines, line);) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_discarded() && j.is_object()) raw.push_back(std::move(j));
  }
  nlohmann::json meta = nlohmann::json::object();
  if (!meta_path.empty()) {
    std::ifstream m(meta_path);
    meta = nlohmann::json::parse(m, nullptr, false);
    if (meta.is_discarded()) {
      std::fprintf(stderr, "compare_report: %s is not JSON\n", meta_path.c_str());
      return 1;
    }
  }

  const auto cases = brook::bench::summarize(parsed.lines);
  const fs::path out(out_dir);
  std::error_code ec;
  fs::create_directories(out / "plots", ec);
  bool ok = write_file(out / "results.json",
                       brook::bench::results_document(cases, raw, parsed.errors, meta).dump(2) + "\n") &&
            write_file(out / "results.md", brook::bench::markdown_report(cases, meta));
  const auto plots = brook::bench::plots(cases);
  for (const auto& p : plots)
    ok = write_file(out / "plots" / (p.name + ".gp"), p.script) &&
         write_file(out / "plots" / (p.name + ".dat"), p.data) && ok;
  if (ok && !plots.empty()) {
    if (!gnuplot_installed()) {
      std::fprintf(stderr, "compare_report: gnuplot is not installed: plots/*.gp written, no PNG\n");
    } else {
      for (const auto& p : plots) {
        const std::string command = "cd '" + (out / "plots").string() + "' && gnuplot '" + p.name + ".gp'";
        if (std::system(command.c_str()) != 0) {
          std::fprintf(stderr, "compare_report: gnuplot failed on plots/%s.gp\n", p.name.c_str());
          ok = false;
        }
      }
    }
  }
  for (const auto& c : cases)
    for (const auto& s : c.systems)
      if (std::find(complete_systems.begin(), complete_systems.end(), s.system) != complete_systems.end() &&
          (s.lost > 0 || s.disorder > 0)) {
        std::fprintf(stderr, "compare_report: %s lost %llu and reordered %llu messages in %s\n",
                     s.system.c_str(), static_cast<unsigned long long>(s.lost),
                     static_cast<unsigned long long>(s.disorder), brook::bench::case_title(c).c_str());
        ok = false;
      }
  std::printf("compare_report: %zu runs in %zu cases -> %s/results.{json,md}, %zu plots\n",
              parsed.lines.size(), cases.size(), out_dir.c_str(), plots.size());
  return ok && parsed.errors.empty() ? 0 : 1;
}
