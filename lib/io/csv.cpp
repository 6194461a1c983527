#include "moerate/io/csv.hpp"

#include <csv.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <set>
#include <sstream>

#include "moerate/core/error.hpp"
#include "moerate/core/text.hpp"
#include "moerate/io/files.hpp"

namespace moerate {

namespace {

struct Cell {
  std::string text;
  bool quoted_empty = false;
};

/// Rows of fields with the physical line each row started on (libcsv parser,
/// fed line by line so that line numbers are exact).
struct RawTable {
  std::vector<std::vector<std::string>> rows;
  std::vector<std::size_t> lines;
};

struct ParseState {
  RawTable* table;
  std::vector<std::string> row;
  std::size_t current_line = 0;
  std::size_t row_start_line = 0;
  bool in_row = false;
};

void on_field(void* s, std::size_t len, void* data) {
  auto* st = static_cast<ParseState*>(data);
  if (!st->in_row) {
    st->in_row = true;
    st->row_start_line = st->current_line;
  }
  st->row.emplace_back(s ? std::string(static_cast<const char*>(s), len) : std::string());
}

void on_row(int, void* data) {
  auto* st = static_cast<ParseState*>(data);
  if (!st->in_row) {
    st->row_start_line = st->current_line;
  }
  st->table->rows.push_back(std::move(st->row));
  st->table->lines.push_back(st->row_start_line);
  st->row.clear();
  st->in_row = false;
}

RawTable parse_csv_text(const std::string& raw, const std::string& path) {
  RawTable table;
  ParseState st{&table, {}, 0, 0, false};
  csv_parser p;
  if (csv_init(&p, CSV_APPEND_NULL) != 0) throw InputError(path, 0, 0, "cannot initialise the CSV parser");
  std::size_t begin = 0;
  if (raw.rfind("\xEF\xBB\xBF", 0) == 0) begin = 3;  // UTF-8 byte-order mark (Excel writes one)
  // Where the last quote that is still open was opened (for messages).
  bool in_quote = false;
  std::size_t quote_line = 0, quote_col = 0;
  std::string line;
  while (begin < raw.size()) {
    auto end = raw.find('\n', begin);
    if (end == std::string::npos) end = raw.size();
    line.assign(raw, begin, end - begin);
    begin = end + 1;
    ++st.current_line;
    // RFC 4180: a quote opens a field only at its start; inside, "" is a quote.
    bool field_start = !in_quote;
    for (std::size_t i = 0; i < line.size(); ++i) {
      const char c = line[i];
      if (in_quote) {
        if (c == '"') {
          if (i + 1 < line.size() && line[i + 1] == '"') ++i;
          else in_quote = false;
        }
      } else if (c == ',') {
        field_start = true;
      } else if (c == '"' && field_start) {
        in_quote = true;
        quote_line = st.current_line;
        quote_col = i + 1;
      } else if (c != ' ' && c != '\t') {
        field_start = false;
      }
    }
    line.push_back('\n');
    if (csv_parse(&p, line.data(), line.size(), on_field, on_row, &st) != line.size()) {
      const std::string msg = csv_strerror(csv_error(&p));
      csv_free(&p);
      throw InputError(path, st.current_line, 0, "malformed CSV: " + msg);
    }
  }
  if (in_quote) {
    csv_free(&p);
    throw InputError(path, quote_line, quote_col, "unterminated quoted field: the quote opened here is never closed");
  }
  if (csv_fini(&p, on_field, on_row, &st) != 0) {
    const std::string msg = csv_strerror(csv_error(&p));
    csv_free(&p);
    throw InputError(path, st.current_line, 0, "malformed CSV: " + msg);
  }
  csv_free(&p);
  return table;
}



}  // namespace

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest round-trip form
  return std::string(buf, r.ptr);
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += "\"\"";
    else out += c;
  }
  return out + "\"";
}

CsvTable read_csv_table(const std::string& path) { return read_csv_table_text(read_text_file(path), path); }

CsvTable read_csv_table_text(const std::string& text, const std::string& path) {
  RawTable raw = parse_csv_text(text, path);
  if (raw.rows.empty()) throw InputError(path, 0, 0, "file is empty (expected a header row)");
  CsvTable t;
  t.header = raw.rows[0];
  for (auto& h : t.header) h = trim(h);
  for (std::size_t r = 1; r < raw.rows.size(); ++r) {
    if (raw.rows[r].size() != t.header.size())
      throw InputError(path, raw.lines[r], std::min(raw.rows[r].size(), t.header.size()) + 1,
                       "row has " + std::to_string(raw.rows[r].size()) + " fields but the header has " +
                           std::to_string(t.header.size()));
    t.rows.push_back(std::move(raw.rows[r]));
  }
  return t;
}

std::size_t CsvTable::column(const std::string& name) const {
  for (std::size_t c = 0; c < header.size(); ++c)
    if (header[c] == name) return c;
  throw InvalidArgument("CSV: no column named '" + name + "'");
}

bool CsvTable::has_column(const std::string& name) const {
  return std::find(header.begin(), header.end(), name) != header.end();
}

Dataset read_csv(const std::string& path, const CsvReadOptions& opt) {
  return read_csv_text(read_text_file(path), path, opt);
}

Dataset read_csv_text(const std::string& text, const std::string& path, const CsvReadOptions& opt) {
  RawTable raw = parse_csv_text(text, path);
  if (raw.rows.empty()) throw InputError(path, 0, 0, "file is empty (expected a header row and data rows)");
  std::vector<std::string> header = raw.rows[0];
  for (auto& h : header) h = trim(h);
  const std::size_t header_line = raw.lines[0];
  {
    std::set<std::string> seen;
    for (std::size_t c = 0; c < header.size(); ++c) {
      if (header[c].empty())
        throw InputError(path, header_line, c + 1, "empty column name in the header");
      if (!seen.insert(header[c]).second)
        throw InputError(path, header_line, c + 1, "duplicate column name '" + header[c] + "'");
    }
  }
  auto find_col = [&](const std::string& name) -> std::ptrdiff_t {
    auto it = std::find(header.begin(), header.end(), name);
    return it == header.end() ? -1 : it - header.begin();
  };
  Dataset D;
  D.source = path;
  const std::string yname = opt.y_column.value_or("y");
  const std::ptrdiff_t ycol = find_col(yname);
  if (ycol < 0 && (opt.require_y || opt.y_column))
    throw InputError(path, header_line, 0,
                     "no response column '" + yname + "' in the header (use --y NAME to choose it)");
  std::vector<std::size_t> xcols;
  if (opt.x_columns) {
    for (const auto& name : *opt.x_columns) {
      const auto c = find_col(name);
      if (c < 0) throw InputError(path, header_line, 0, "no covariate column '" + name + "' in the header");
      if (c == ycol) throw InputError(path, header_line, c + 1, "column '" + name + "' is both response and covariate");
      xcols.push_back(static_cast<std::size_t>(c));
    }
  } else {
    for (std::size_t c = 0; c < header.size(); ++c)
      if (static_cast<std::ptrdiff_t>(c) != ycol) xcols.push_back(c);
  }
  if (xcols.empty()) throw InputError(path, header_line, 0, "no covariate columns (need at least one besides the response)");
  const std::size_t n = raw.rows.size() - 1;
  if (n == 0) throw InputError(path, header_line, 0, "no data rows after the header");
  D.X.set_size(xcols.size(), n);
  if (ycol >= 0) {
    D.y.set_size(n);
    D.y_name = yname;
  }
  for (auto c : xcols) D.x_names.push_back(header[c]);
  for (std::size_t r = 0; r < n; ++r) {
    const auto& row = raw.rows[r + 1];
    const std::size_t line = raw.lines[r + 1];
    D.lines.push_back(line);
    if (row.size() != header.size())
      throw InputError(path, line, std::min(row.size(), header.size()) + 1,
                       "row has " + std::to_string(row.size()) + " fields but the header has " +
                           std::to_string(header.size()));
    auto number = [&](std::size_t c) {
      const std::string s = trim(row[c]);
      if (s.empty()) throw InputError(path, line, c + 1, "missing value in column '" + header[c] + "'");
      double v = 0;
      const char* b = s.data();
      const char* e = s.data() + s.size();
      if (*b == '+') ++b;
      auto res = std::from_chars(b, e, v);
      if (res.ec == std::errc::result_out_of_range && res.ptr == e) {
        // Too large or too small for a double: strtod tells which.
        errno = 0;
        const double w = std::strtod(s.c_str(), nullptr);
        if (std::isinf(w) || std::abs(w) > 1)
          throw InputError(path, line, c + 1, "value '" + s + "' in column '" + header[c] +
                                                  "' is too large for a double (at most about 1.8e308)");
        return w;  // underflow: the nearest double (0 or a subnormal), as R and numpy read it
      }
      if (res.ec != std::errc() || res.ptr != e)
        throw InputError(path, line, c + 1, "non-numeric value '" + s + "' in column '" + header[c] + "'");
      if (!std::isfinite(v))
        throw InputError(path, line, c + 1, "non-finite value '" + s + "' in column '" + header[c] + "'");
      return v;
    };
    for (std::size_t u = 0; u < xcols.size(); ++u) D.X(u, r) = number(xcols[u]);
    if (ycol >= 0) D.y[r] = number(static_cast<std::size_t>(ycol));
  }
  return D;
}

void write_dataset_csv(const std::string& path, const arma::mat& X, const arma::rowvec& y,
                       const std::vector<std::string>& x_names, const std::string& y_name) {
  if (!X.is_finite() || !y.is_finite())
    throw InvalidArgument(path + ": the values to write include inf or NaN (the model or design overflows a double); nothing written");
  std::ostringstream out;
  for (const auto& nm : x_names) out << csv_field(nm) << ',';
  out << csv_field(y_name) << '\n';
  for (std::size_t i = 0; i < X.n_cols; ++i) {
    for (std::size_t u = 0; u < X.n_rows; ++u) out << format_double(X(u, i)) << ',';
    out << format_double(y[i]) << '\n';
  }
  write_file_atomic(path, out.str());
}

}  // namespace moerate
