#include "tools/portctl/table.h"

#include <algorithm>

namespace portctl {

namespace {

// Display width: UTF-8 continuation bytes take no column.
size_t width_of(const std::string& s) {
  size_t w = 0;
  for (unsigned char c : s)
    if ((c & 0xc0) != 0x80) ++w;
  return w;
}

}  // namespace

void Table::add_row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  rows_.push_back(std::move(cells));
}

std::string Table::render(bool legend) const {
  std::vector<size_t> widths(columns_.size(), 0);
  if (legend)
    for (size_t i = 0; i < columns_.size(); ++i) widths[i] = width_of(columns_[i].header);
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size(); ++i) widths[i] = std::max(widths[i], width_of(row[i]));

  std::string out;
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < cells.size(); ++i) {
      const size_t pad = widths[i] - width_of(cells[i]);
      const bool last = i + 1 == cells.size();
      if (i > 0) text += "  ";
      if (columns_[i].align == Align::kRight) {
        text.append(pad, ' ');
        text += cells[i];
      } else {
        text += cells[i];
        if (!last) text.append(pad, ' ');
      }
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text;
    out += '\n';
  };
  if (legend) {
    std::vector<std::string> headers;
    for (const auto& c : columns_) headers.push_back(c.header);
    line(headers);
  }
  for (const auto& row : rows_) line(row);
  return out;
}

}  // namespace portctl
