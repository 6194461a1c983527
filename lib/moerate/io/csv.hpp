// moerate/io/csv.hpp -- datasets and CSV files.
//
// A CSV file has a header; one row per observation. The response is the
// column named "y" unless y_column is given, and the covariates are every
// other column unless x_columns is given. Quoted and unquoted fields both
// work (R writes quoted headers). Parsing uses libcsv; a missing, non-numeric
// or non-finite value is an InputError naming the file, line and column.
// In memory X is d x n (one observation per column); y is 1 x n.
//
//   Dataset D = read_csv("data/tone.csv");
//   D.X.n_rows == 1; D.y.n_elem == 150;
#pragma once

#include <armadillo>
#include <optional>
#include <string>
#include <vector>

namespace moerate {

struct Dataset {
  arma::mat X;                        // d x n
  arma::rowvec y;                     // 1 x n (empty when the file has no response)
  std::vector<std::string> x_names;   // d names
  std::string y_name;                 // "" when absent
  std::string source;                 // file name, for messages
  std::vector<std::size_t> lines;     // file line of each observation (for messages); empty when
                                      // observation i is on line i + 2 (the usual case)
  std::size_t n_obs() const { return X.n_cols; }
  std::size_t dim() const { return X.n_rows; }
  bool has_y() const { return !y_name.empty(); }
};

struct CsvReadOptions {
  std::optional<std::string> y_column;            // default "y"
  std::optional<std::vector<std::string>> x_columns;  // default: all but y
  bool require_y = true;                          // false: y may be absent (predict)
};

/// Read a numeric table; throws InputError (file, line, column) on bad input.
Dataset read_csv(const std::string& path, const CsvReadOptions& opt = {});

/// A generic CSV table of strings (header + rows), for results files.
struct CsvTable {
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
  std::size_t column(const std::string& name) const;  // throws if missing
  bool has_column(const std::string& name) const;
};
CsvTable read_csv_table(const std::string& path);
/// The same from text in memory (`name` is used in messages; nothing is noted as an input).
CsvTable read_csv_table_text(const std::string& text, const std::string& name);
Dataset read_csv_text(const std::string& text, const std::string& name, const CsvReadOptions& opt = {});

/// Quote a CSV field if needed (RFC 4180).
std::string csv_field(const std::string& s);
/// One CSV line: the fields quoted by csv_field, joined by ',', ended by '\n'.
std::string csv_line(const std::vector<std::string>& fields);
/// CSV text of a header and rows (fields quoted by csv_field, lines ended by '\n').
std::string csv_table_text(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);
/// Format a double with full precision (17 significant digits, "nan"/"inf" spelled out).
std::string format_double(double v);

/// Write X (d x n) and y as CSV with columns names..., y_name (atomically).
void write_dataset_csv(const std::string& path, const arma::mat& X, const arma::rowvec& y,
                       const std::vector<std::string>& x_names, const std::string& y_name = "y");

}  // namespace moerate
