// moerate/core/error.hpp -- the toolkit's exception types and argument checks.
//
// Malformed input is an exception; non-convergence never is (it is a status
// in the result of an estimator). Messages follow one shape, as in Stan Math:
//   "<function>: <what> <problem>; got <value>"
// Input errors that come from a file carry its name, line and column so the
// command line can print "FILE:LINE:COL: message".
//
//   moerate::check_positive("GaussianMoE", "variance of expert 2", -0.1);
//   // throws InvalidArgument("GaussianMoE: variance of expert 2 must be > 0; got -0.1")
#pragma once

#include <cmath>
#include <cstddef>
#include <sstream>
#include <stdexcept>
#include <string>

namespace moerate {

/// A parameter or option has an invalid value (a programming or user error).
class InvalidArgument : public std::invalid_argument {
public:
  using std::invalid_argument::invalid_argument;
};

/// Malformed input read from a file: names the file, line and column (1-based;
/// 0 means "not applicable", e.g. the JSON path is given in the message).
class InputError : public std::runtime_error {
public:
  InputError(std::string file, std::size_t line, std::size_t column, const std::string& what)
      : std::runtime_error(format(file, line, column, what)), file_(std::move(file)),
        line_(line), column_(column) {}
  const std::string& file() const { return file_; }
  std::size_t line() const { return line_; }
  std::size_t column() const { return column_; }

private:
  static std::string format(const std::string& f, std::size_t l, std::size_t c,
                            const std::string& w) {
    std::ostringstream s;
    s << f;
    if (l > 0) s << ':' << l;
    if (c > 0) s << ':' << c;
    s << ": " << w;
    return s.str();
  }
  std::string file_;
  std::size_t line_, column_;
};

template <class T>
std::string to_text(const T& v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

/// Throws InvalidArgument "<fn>: <what> <problem>; got <value>".
template <class T>
[[noreturn]] void fail(const std::string& fn, const std::string& what, const std::string& problem,
                       const T& value) {
  throw InvalidArgument(fn + ": " + what + " " + problem + "; got " + to_text(value));
}

inline void check_finite(const std::string& fn, const std::string& what, double v) {
  if (!std::isfinite(v)) fail(fn, what, "must be finite", v);
}
inline void check_positive(const std::string& fn, const std::string& what, double v) {
  if (!(v > 0) || !std::isfinite(v)) fail(fn, what, "must be finite and > 0", v);
}

/// Largest problem sizes accepted anywhere (checked before any allocation).
inline constexpr unsigned long long kMaxObservations = 100000000ULL;  // n
inline constexpr unsigned long long kMaxDimension = 10000ULL;         // d, k
inline constexpr unsigned long long kMaxCount = 1000000ULL;           // replications, grid sizes, Monte Carlo draws

/// Human-readable byte count ("1.5 GB").
inline std::string format_bytes(long double b) {
  const char* units[] = {"bytes", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"};
  int u = 0;
  while (b >= 1000 && u < 8) b /= 1000, ++u;
  std::ostringstream s;
  s.precision(u == 0 ? 0 : 3);
  s << std::fixed << b << ' ' << units[u];
  return s.str();
}

/// Throws InvalidArgument unless 1 <= n <= kMaxObservations and 1 <= d <= kMaxDimension;
/// the message says how much memory n observations of dimension d would take.
inline void check_problem_size(const std::string& fn, unsigned long long n, unsigned long long d) {
  if (n < 1) fail(fn, "number of observations n", "must be >= 1", n);
  if (d < 1 || d > kMaxDimension)
    fail(fn, "dimension d", "must be between 1 and " + std::to_string(kMaxDimension), d);
  if (n > kMaxObservations) {
    const long double bytes = (long double)n * (long double)(d + 1) * 8.0L;
    throw InvalidArgument(fn + ": n = " + std::to_string(n) + " observations would take at least " +
                          format_bytes(bytes) + " of memory; the maximum is n = " + std::to_string(kMaxObservations));
  }
}

}  // namespace moerate
