#include "moerate/model/design.hpp"

#include <cmath>

#include "moerate/core/error.hpp"

namespace moerate {

arma::mat draw_design(const std::string& spec, std::size_t d, std::size_t n, Rng& rng) {
  std::string kind = spec;
  double p1 = 0, p2 = 1;
  const auto colon = spec.find(':');
  bool has_params = false;
  if (colon != std::string::npos) {
    kind = spec.substr(0, colon);
    const std::string rest = spec.substr(colon + 1);
    const auto comma = rest.find(',');
    if (comma == std::string::npos)
      throw InvalidArgument("design: expected KIND:A,B (e.g. uniform:0,1); got '" + spec + "'");
    try {
      std::size_t used1 = 0, used2 = 0;
      p1 = std::stod(rest.substr(0, comma), &used1);
      p2 = std::stod(rest.substr(comma + 1), &used2);
      if (used1 != comma || used2 != rest.size() - comma - 1) throw std::invalid_argument("");
    } catch (const std::exception&) {
      throw InvalidArgument("design: parameters must be numbers in '" + spec + "'");
    }
    has_params = true;
  }
  if (has_params && (!std::isfinite(p1) || !std::isfinite(p2)))
    throw InvalidArgument("design: parameters must be finite numbers; got '" + spec + "'");
  if (has_params && std::isfinite(p1) && std::isfinite(p2) && !std::isfinite(p2 - p1))
    throw InvalidArgument("design: the range is too wide for a double; got '" + spec + "'");
  if (kind != "uniform" && kind != "normal" && kind != "grid")
    throw InvalidArgument("design: unknown kind '" + kind + "'; expected uniform, normal or grid");
  check_problem_size("design", n, d);
  arma::mat X(d, n);
  if (kind == "uniform") {
    if (!has_params) p1 = 0, p2 = 1;
    if (!(p2 > p1)) throw InvalidArgument("design: uniform needs LO < HI; got '" + spec + "'");
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t u = 0; u < d; ++u) X(u, i) = rng.uniform(p1, p2);
  } else if (kind == "normal") {
    if (!has_params) p1 = 0, p2 = 1;
    if (!(p2 > 0)) throw InvalidArgument("design: normal needs SD > 0; got '" + spec + "'");
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t u = 0; u < d; ++u) X(u, i) = rng.normal(p1, p2);
  } else if (kind == "grid") {
    if (!has_params) p1 = 0, p2 = 1;
    if (!(p2 > p1)) throw InvalidArgument("design: grid needs LO < HI; got '" + spec + "'");
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t u = 0; u < d; ++u) X(u, i) = n == 1 ? p1 : p1 + (p2 - p1) * double(i) / double(n - 1);
  } else {
    throw InvalidArgument("design: unknown kind '" + kind + "'; expected uniform, normal or grid");
  }
  if (!X.is_finite()) throw InvalidArgument("design: draws overflow a double; use smaller parameters than '" + spec + "'");
  return X;
}

}  // namespace moerate
