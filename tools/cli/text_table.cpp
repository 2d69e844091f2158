#include "text_table.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>

namespace brook::cli {

namespace {

// Display width of UTF-8 text: code points, not bytes (paths and values may be non-ASCII).
std::size_t width_of(std::string_view text) {
  return static_cast<std::size_t>(
      std::count_if(text.begin(), text.end(), [](char ch) { return (static_cast<unsigned char>(ch) & 0xC0) != 0x80; }));
}

std::string format(const char* pattern, double value) {
  char text[64];
  std::snprintf(text, sizeof text, pattern, value);
  return text;
}

}  // namespace

void TextTable::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string TextTable::render() const {
  std::vector<std::size_t> widths(columns_.size());
  for (std::size_t c = 0; c < columns_.size(); ++c) {
    widths[c] = width_of(columns_[c].heading);
    for (const auto& row : rows_) widths[c] = std::max(widths[c], width_of(row[c]));
  }
  std::string out;
  auto line = [&](auto cell_of) {
    std::string text;
    for (std::size_t c = 0; c < columns_.size(); ++c) {
      const std::string& cell = cell_of(c);
      std::size_t pad = widths[c] - width_of(cell);
      if (c > 0) text += "  ";
      if (columns_[c].right_aligned) text.append(pad, ' ');
      text += cell;
      if (!columns_[c].right_aligned) text.append(pad, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text;
    out += '\n';
  };
  line([&](std::size_t c) -> const std::string& { return columns_[c].heading; });
  for (const auto& row : rows_) line([&](std::size_t c) -> const std::string& { return row[c]; });
  return out;
}

std::string human_bytes(double bytes) {
  static constexpr const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  std::size_t unit = 0;
  while (std::fabs(bytes) >= 1024 && unit + 1 < std::size(units)) {
    bytes /= 1024;
    ++unit;
  }
  if (unit == 0) return format("%.0f B", bytes);
  return format(std::fabs(bytes) < 10 ? "%.1f " : "%.0f ", bytes) + units[unit];
}

std::string human_seconds(double seconds) {
  if (!(seconds >= 0)) return "-";
  if (seconds < 60) return format(seconds < 10 ? "%.1fs" : "%.0fs", seconds);
  auto whole = static_cast<long long>(seconds);
  char text[32];
  if (whole < 3600)
    std::snprintf(text, sizeof text, "%lldm%02llds", whole / 60, whole % 60);
  else if (whole < 86400)
    std::snprintf(text, sizeof text, "%lldh%02lldm", whole / 3600, whole % 3600 / 60);
  else
    std::snprintf(text, sizeof text, "%lldd%02lldh", whole / 86400, whole % 86400 / 3600);
  return text;
}

std::string human_count(double count) {
  double size = std::fabs(count);
  if (size < 1000) return format(count == std::floor(count) ? "%.0f" : "%.1f", count);
  if (size < 1e6) return format("%.1fk", count / 1e3);
  if (size < 1e9) return format("%.2fM", count / 1e6);
  return format("%.2fG", count / 1e9);
}

std::string percent(double ratio) { return format("%.0f%%", ratio * 100); }

std::string one_line(std::string_view text, std::size_t at_most) {
  std::string out;
  std::size_t shown = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    bool starts_character = (static_cast<unsigned char>(ch) & 0xC0) != 0x80;
    if (at_most != 0 && starts_character && shown == at_most) {
      out += "...";
      break;
    }
    if (starts_character) ++shown;
    switch (ch) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default: out += ch;
    }
  }
  return out;
}

}  // namespace brook::cli
