// Table: aligned columns for portctl's human output.
//
// Every column is as wide as its widest cell (or header, when the legend is
// shown); columns are separated by two spaces; numbers are right-aligned,
// text left-aligned, and the last column is never padded, so no line ends
// in spaces. With the legend off (--no-legend) only the rows are printed,
// for scripts that cut columns.
#pragma once

#include <string>
#include <vector>

namespace portctl {

enum class Align { kLeft, kRight };

struct Column {
  std::string header;
  Align align = Align::kLeft;
};

class Table {
 public:
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}

  // A row has one cell per column (missing cells are empty).
  void add_row(std::vector<std::string> cells);
  size_t rows() const { return rows_.size(); }

  // The table, one line per row (and the header first with `legend`), each
  // line ending in a newline. Empty when there are no rows and no legend.
  std::string render(bool legend) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace portctl
