#include "moerate/metrics/truth_check.hpp"

#include <cmath>
#include <sstream>

#include "moerate/core/error.hpp"
#include "moerate/model/design.hpp"

namespace moerate {

void TruthCheckOptions::validate() const {
  if (n_mc < 10) fail("TruthCheckOptions", "n_mc", "must be >= 10", n_mc);
  if (!(gate_range > 0 && gate_range < 1)) fail("TruthCheckOptions", "gate_range", "must be in (0, 1)", gate_range);
  if (!(negligible >= 0 && negligible < 1)) fail("TruthCheckOptions", "negligible", "must be in [0, 1)", negligible);
  if (!(expert_gap > 0)) fail("TruthCheckOptions", "expert_gap", "must be > 0", expert_gap);
}

std::vector<TruthFinding> check_truth(const GaussianMoE& truth, const std::string& design,
                                      const TruthCheckOptions& opt) {
  opt.validate();
  std::vector<TruthFinding> out;
  Rng rng(opt.seed);
  const arma::mat X = draw_design(design, truth.dim(), opt.n_mc, rng);
  const arma::mat LW = truth.log_weights(X);
  const arma::mat P = arma::exp(LW);
  const arma::mat H = truth.expert_means(X);
  const std::size_t k = truth.n_experts();
  auto num = [](double v) {
    std::ostringstream s;
    s.precision(3);
    s << v;
    return s.str();
  };
  auto add = [&](std::string kind, std::vector<std::size_t> ex, double v, std::string msg) {
    out.push_back({std::move(kind), std::move(ex), v, std::move(msg)});
  };
  if (k >= 2) {
    double widest = 0;
    for (std::size_t i = 0; i < k; ++i) widest = std::max(widest, P.row(i).max() - P.row(i).min());
    if (widest < opt.gate_range)
      add("gate_constant", {}, widest,
          "the gate is nearly constant on " + design + ": no gate weight moves by more than " + num(widest) +
              " (the gate slopes are not identified from such data)");
    for (std::size_t i = 0; i < k; ++i)
      for (std::size_t j = i + 1; j < k; ++j) {
        const arma::rowvec diff = LW.row(i) - LW.row(j);
        const double sd = diff.n_elem > 1 ? arma::stddev(diff) : 0.0;
        if (std::isfinite(sd) && sd < opt.gate_range)
          add("gate_pair_constant", {i + 1, j + 1}, sd,
              "experts " + std::to_string(i + 1) + " and " + std::to_string(j + 1) +
                  " have gates with equal slopes on " + design + ": sd of log(pi_" + std::to_string(i + 1) +
                  "/pi_" + std::to_string(j + 1) + ") = " + num(sd));
      }
    for (std::size_t i = 0; i < k; ++i) {
      const double m = arma::mean(P.row(i));
      if (m < opt.negligible)
        add("gate_saturated", {i + 1}, m,
            "expert " + std::to_string(i + 1) + " has average gate weight " + num(m) + " on " + design +
                " (below " + num(opt.negligible) + "): it owns almost no data");
    }
  }
  if (truth.gating().family() == "laplace") {
    const arma::vec lo = arma::min(X, 1), hi = arma::max(X, 1);
    for (std::size_t i = 0; i < k; ++i) {
      const arma::vec w = truth.gating().atom_location(i);
      for (std::size_t u = 0; u < w.n_elem; ++u)
        if (w[u] < lo[u] || w[u] > hi[u])
          add("laplace_outside", {i + 1}, w[u],
              "the Laplace centre of expert " + std::to_string(i + 1) + " (w_" + std::to_string(u + 1) + " = " +
                  num(w[u]) + ") lies outside the design's range [" + num(lo[u]) + ", " + num(hi[u]) + "]");
    }
  }
  const bool gaussian = truth.kind() == ModelKind::gaussian;
  for (std::size_t i = 0; i < k; ++i) {
    const double sd = arma::stddev(H.row(i));
    if (sd < 1e-8 * std::max(1.0, arma::abs(H.row(i)).max()) && truth.experts().family() != "linear")
      add("expert_degenerate", {i + 1}, sd,
          "expert " + std::to_string(i + 1) + " (" + truth.experts().family() + ") is constant on " + design +
              " (sd of its mean " + num(sd) + "): its parameters are not identifiable (e.g. ffn a = 0 or c = 0)");
    for (std::size_t j = i + 1; j < k; ++j) {
      const double rms = std::sqrt(arma::mean(arma::square(H.row(i) - H.row(j))));
      const double noise = gaussian ? std::sqrt(std::min(truth.nu()[i], truth.nu()[j]))
                                    : std::sqrt(std::max(truth.noise_variance(), 1e-300));
      if (rms < opt.expert_gap * noise)
        add("experts_equal", {i + 1, j + 1}, rms / noise,
            "experts " + std::to_string(i + 1) + " and " + std::to_string(j + 1) + " are nearly equal on " + design +
                ": RMS difference of their means " + num(rms) + " = " + num(rms / noise) + " noise sd");
    }
  }
  return out;
}

}  // namespace moerate
