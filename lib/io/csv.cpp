#include "moerate/io/csv.hpp"

#include <csv.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <functional>
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

using RowFn = std::function<void(std::vector<std::string>& fields, std::size_t line)>;

struct ParseState {
  const RowFn* on_row;
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
  (*st->on_row)(st->row, st->row_start_line);
  st->row.clear();
  st->in_row = false;
}

/// Parses the lines that next_line(line) yields (false at the end; the line
/// without its '\n') and calls row_fn for each row as soon as it is complete,
/// so that a large file is never held in memory as text or as strings.
template <class NextLine>
void parse_csv_rows(NextLine next_line, const std::string& path, const RowFn& row_fn) {
  ParseState st{&row_fn, {}, 0, 0, false};
  csv_parser p;
  if (csv_init(&p, CSV_APPEND_NULL) != 0) throw InputError(path, 0, 0, "cannot initialise the CSV parser");
  struct Free {
    csv_parser* p;
    ~Free() { csv_free(p); }
  } guard{&p};
  // Where the last quote that is still open was opened (for messages).
  bool in_quote = false;
  std::size_t quote_line = 0, quote_col = 0;
  std::string line;
  while (next_line(line)) {
    ++st.current_line;
    if (st.current_line == 1 && line.rfind("\xEF\xBB\xBF", 0) == 0) line.erase(0, 3);  // UTF-8 byte-order mark
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
    if (csv_parse(&p, line.data(), line.size(), on_field, on_row, &st) != line.size())
      throw InputError(path, st.current_line, 0, std::string("malformed CSV: ") + csv_strerror(csv_error(&p)));
  }
  if (in_quote)
    throw InputError(path, quote_line, quote_col, "unterminated quoted field: the quote opened here is never closed");
  if (csv_fini(&p, on_field, on_row, &st) != 0)
    throw InputError(path, st.current_line, 0, std::string("malformed CSV: ") + csv_strerror(csv_error(&p)));
}

/// Lines of a text in memory.
struct TextLines {
  const std::string& text;
  std::size_t begin = 0;
  bool operator()(std::string& line) {
    if (begin >= text.size()) return false;
    auto end = text.find('\n', begin);
    if (end == std::string::npos) end = text.size();
    line.assign(text, begin, end - begin);
    begin = end + 1;
    return true;
  }
};

RawTable parse_csv_text(const std::string& raw, const std::string& path) {
  RawTable table;
  const RowFn keep = [&](std::vector<std::string>& fields, std::size_t line) {
    table.rows.push_back(std::move(fields));
    table.lines.push_back(line);
  };
  parse_csv_rows(TextLines{raw}, path, keep);
  return table;
}

/// Builds a Dataset row by row: the header fixes the columns, and each data
/// row is converted to doubles at once, straight into X and y.
class DatasetBuilder {
public:
  DatasetBuilder(const std::string& path, const CsvReadOptions& opt, std::size_t max_rows)
      : path_(path), opt_(opt), max_rows_(max_rows) {}

  void add(std::vector<std::string>& row, std::size_t line) {
    if (!have_header_) {
      header(row, line);
      return;
    }
    if (row.size() != header_.size())
      throw InputError(path_, line, std::min(row.size(), header_.size()) + 1,
                       "row has " + std::to_string(row.size()) + " fields but the header has " +
                           std::to_string(header_.size()));
    if (n_ == D_.X.n_cols) grow();
    // File lines are kept only once one differs from the default i + 2 (a
    // header on line 1, one row per line), so a plain file costs no memory.
    if (D_.lines.empty() && line != n_ + 2) {
      D_.lines.reserve(n_ + 1);
      for (std::size_t i = 0; i < n_; ++i) D_.lines.push_back(i + 2);
    }
    if (!D_.lines.empty() || line != n_ + 2) D_.lines.push_back(line);
    for (std::size_t u = 0; u < xcols_.size(); ++u) D_.X(u, n_) = number(row, xcols_[u], line);
    if (ycol_ >= 0) D_.y[n_] = number(row, static_cast<std::size_t>(ycol_), line);
    ++n_;
  }

  Dataset finish() {
    if (!have_header_) throw InputError(path_, 0, 0, "file is empty (expected a header row and data rows)");
    if (n_ == 0) throw InputError(path_, header_line_, 0, "no data rows after the header");
    if (n_ < D_.X.n_cols) {
      D_.X.resize(D_.X.n_rows, n_);
      if (!D_.lines.empty()) D_.lines.resize(n_);
      if (ycol_ >= 0) D_.y.resize(n_);
    }
    return std::move(D_);
  }

private:
  void header(std::vector<std::string>& row, std::size_t line) {
    have_header_ = true;
    header_line_ = line;
    header_ = row;
    for (auto& h : header_) h = trim(h);
    std::set<std::string> seen;
    for (std::size_t c = 0; c < header_.size(); ++c) {
      if (header_[c].empty()) throw InputError(path_, line, c + 1, "empty column name in the header");
      if (!seen.insert(header_[c]).second)
        throw InputError(path_, line, c + 1, "duplicate column name '" + header_[c] + "'");
    }
    auto find_col = [&](const std::string& name) -> std::ptrdiff_t {
      auto it = std::find(header_.begin(), header_.end(), name);
      return it == header_.end() ? -1 : it - header_.begin();
    };
    D_.source = path_;
    const std::string yname = opt_.y_column.value_or("y");
    ycol_ = find_col(yname);
    if (ycol_ < 0 && (opt_.require_y || opt_.y_column))
      throw InputError(path_, line, 0, "no response column '" + yname + "' in the header (use --y NAME to choose it)");
    if (opt_.x_columns) {
      for (const auto& name : *opt_.x_columns) {
        const auto c = find_col(name);
        if (c < 0) throw InputError(path_, line, 0, "no covariate column '" + name + "' in the header");
        if (c == ycol_) throw InputError(path_, line, c + 1, "column '" + name + "' is both response and covariate");
        xcols_.push_back(static_cast<std::size_t>(c));
      }
    } else {
      for (std::size_t c = 0; c < header_.size(); ++c)
        if (static_cast<std::ptrdiff_t>(c) != ycol_) xcols_.push_back(c);
    }
    if (xcols_.empty()) throw InputError(path_, line, 0, "no covariate columns (need at least one besides the response)");
    for (auto c : xcols_) D_.x_names.push_back(header_[c]);
    if (ycol_ >= 0) D_.y_name = yname;
    // Sized once for the rows the file can hold (its line count), so that the
    // numbers are written in place; grown by doubling only if that was short.
    D_.X.set_size(xcols_.size(), std::max<std::size_t>(max_rows_, 1));
    if (ycol_ >= 0) D_.y.set_size(D_.X.n_cols);
  }

  void grow() {
    const std::size_t cap = std::max<std::size_t>(2 * D_.X.n_cols, 16);
    D_.X.resize(D_.X.n_rows, cap);
    if (ycol_ >= 0) D_.y.resize(cap);
  }

  double number(const std::vector<std::string>& row, std::size_t c, std::size_t line) const {
    const std::string s = trim(row[c]);
    if (s.empty()) throw InputError(path_, line, c + 1, "missing value in column '" + header_[c] + "'");
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
        throw InputError(path_, line, c + 1, "value '" + s + "' in column '" + header_[c] +
                                                 "' is too large for a double (at most about 1.8e308)");
      return w;  // underflow: the nearest double (0 or a subnormal), as R and numpy read it
    }
    if (res.ec != std::errc() || res.ptr != e)
      throw InputError(path_, line, c + 1, "non-numeric value '" + s + "' in column '" + header_[c] + "'");
    if (!std::isfinite(v))
      throw InputError(path_, line, c + 1, "non-finite value '" + s + "' in column '" + header_[c] + "'");
    return v;
  }

  const std::string& path_;
  const CsvReadOptions& opt_;
  std::size_t max_rows_;
  bool have_header_ = false;
  std::size_t header_line_ = 0;
  std::vector<std::string> header_;
  std::ptrdiff_t ycol_ = -1;
  std::vector<std::size_t> xcols_;
  std::size_t n_ = 0;
  Dataset D_;
};

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

std::string csv_line(const std::vector<std::string>& fields) {
  std::string out;
  for (std::size_t c = 0; c < fields.size(); ++c) {
    if (c) out += ',';
    out += csv_field(fields[c]);
  }
  return out + '\n';
}

std::string csv_table_text(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows) {
  std::string out = csv_line(header);
  for (const auto& r : rows) out += csv_line(r);
  return out;
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
  // Two streaming passes: count the lines (an upper bound on the rows), then
  // parse straight into X and y. Memory: the data's doubles and one line.
  std::size_t lines = 0;
  {
    std::ifstream in = open_text_file(path);
    std::vector<char> buf(1 << 16);
    char last = '\n';
    while (in.read(buf.data(), std::streamsize(buf.size())) || in.gcount() > 0) {
      lines += std::size_t(std::count(buf.data(), buf.data() + in.gcount(), '\n'));
      last = buf[std::size_t(in.gcount()) - 1];
    }
    if (in.bad()) throw InputError(path, 0, 0, "read error");
    if (last != '\n') ++lines;  // a last line without its newline
  }
  std::ifstream in = open_text_file(path);
  DatasetBuilder builder(path, opt, lines > 0 ? lines - 1 : 0);  // less the header
  parse_csv_rows([&](std::string& line) { return bool(std::getline(in, line)); }, path,
                 [&](std::vector<std::string>& row, std::size_t line) { builder.add(row, line); });
  if (in.bad()) throw InputError(path, 0, 0, "read error");
  return builder.finish();
}

Dataset read_csv_text(const std::string& text, const std::string& path, const CsvReadOptions& opt) {
  std::size_t lines = std::size_t(std::count(text.begin(), text.end(), '\n'));
  if (!text.empty() && text.back() != '\n') ++lines;
  DatasetBuilder builder(path, opt, lines > 0 ? lines - 1 : 0);  // less the header
  parse_csv_rows(TextLines{text}, path, [&](std::vector<std::string>& row, std::size_t line) { builder.add(row, line); });
  return builder.finish();
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
