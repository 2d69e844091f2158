#pragma once
// Aligned plain-text tables and the human units in their cells, for the operator commands.
// A value type: build it, add rows, render it once.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace brook::cli {

class TextTable {
 public:
  struct Column {
    std::string heading;
    bool right_aligned = false;  // numbers
  };
  explicit TextTable(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // Cells beyond the columns are dropped, missing ones are empty.
  void add_row(std::vector<std::string> cells);
  std::size_t rows() const noexcept { return rows_.size(); }
  // The heading line and one line per row, columns two spaces apart, no trailing blanks.
  std::string render() const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// 0 B, 640 B, 6.3 KiB, 12 MiB, 1.5 GiB.
std::string human_bytes(double bytes);
// 0.2s, 12.5s, 2m05s, 1h02m, 3d04h.
std::string human_seconds(double seconds);
// 12, 950, 12.3k, 4.56M: counts and rates.
std::string human_count(double count);
// 12%: a 0..1 ratio.
std::string percent(double ratio);
// `text` with \ newline CR tab escaped (as `brook sub` prints values), cut to `at_most`
// characters with "..." when longer (0: never).
std::string one_line(std::string_view text, std::size_t at_most = 0);

}  // namespace brook::cli
