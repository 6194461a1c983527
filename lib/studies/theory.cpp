#include "moerate/studies/theory.hpp"

namespace moerate {

std::map<std::string, double> theory_exponents(const GaussianMoE& truth, const FitOptions& fit,
                                               const std::map<int, double>& rbar) {
  std::map<std::string, double> th;
  const std::size_t ks = truth.n_experts(), k = fit.n_experts;
  const auto family = make_expert_family(fit.expert, truth.dim());
  const auto gating = make_gating(fit.gating, k, truth.dim());
  const std::string loc = gating->location_name();
  std::vector<std::string> blocks = {loc};
  for (const auto& b : family->blocks()) blocks.push_back(b.name);
  if (truth.kind() == ModelKind::gaussian) blocks.push_back("nu");
  th["m.loss"] = 0.5;
  if (k == ks) {
    for (const auto& b : blocks) th["m.exact." + b] = 0.5;
    return th;
  }
  if (k != ks + 1 || truth.kind() != ModelKind::gaussian) return {{"m.loss", 0.5}};
  const double r = rbar.count(2) ? rbar.at(2) : 4.0;
  const std::string ef = family->family(), gf = gating->family();
  const bool weak = ef == "linear" || ef == "polynomial";
  if (gf == "softmax") {
    for (const auto& b : blocks) {
      double e = 0.25;
      if (weak && (b == loc || b == "b")) e = 1.0 / (2 * r);
      else if (weak) e = 1.0 / r;
      th["m.over." + b] = e;
    }
  } else if (gf == "laplace" && ef == "linear") {
    th["m.over.w"] = 0.25;
    th["m.over.a"] = 0.25;
    th["m.over.b"] = 1.0 / (2 * r);
    th["m.over.nu"] = 1.0 / r;
  }
  return th;
}

}  // namespace moerate
