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
  if (k < ks || truth.kind() != ModelKind::gaussian) return {{"m.loss", 0.5}};
  // Over-fitted: the cell that receives every extra atom has m = k - k* + 1
  // atoms; the weighted power mean of block B with exponent p_B converges like
  // n^(-1/(2 p_B)) (models.md 9.2).
  const int m = int(k - ks) + 1;
  if (!rbar.count(m)) return th;  // rbar(m) unknown: no claim
  const double r = rbar.at(m);
  const std::string ef = family->family(), gf = gating->family();
  const bool weak = ef == "linear" || ef == "polynomial";
  // Strongly identifiable: ffn without a bias inside the activation (with a bias,
  // dh/da = x dh/db as for linear experts: models.md 9.1; no claim).
  const bool strong = ef == "ffn" && !fit.expert.value("bias", true) &&
                      fit.expert.value("activation", fit.expert.value("_", std::string())) != "relu";
  auto put = [&](const std::string& b, double p) { th["m.cell." + b] = 1.0 / (2 * p); };
  if (gf == "softmax" && (weak || strong)) {
    for (const auto& b : blocks) put(b, strong ? 2.0 : (b == loc || b == "b") ? r : r / 2);
  } else if (gf == "laplace" && ef == "linear") {
    put("w", 2);
    put("a", 2);
    put("b", r);
    put("nu", r / 2);
  }
  return th;
}

}  // namespace moerate
