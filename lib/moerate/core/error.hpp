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

}  // namespace moerate
