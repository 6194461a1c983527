// moerate/studies/theory.hpp -- the theoretical convergence exponents of models.md
// section 7, as data for tables and plots.
//
// For a fit setting (truth, fitted k and families) returns metric -> e such
// that the metric should fall like n^(-e) (up to log factors). Metric names
// are the sweep's: "m.loss", "m.exact.B", "m.over.B" (B a parameter block).
// Settings the theory does not cover get no entry (never a guess):
//   exact-fitted, any gate/expert: loss and every exact.B -> 1/2
//   over-fitted, the extra atoms in one cell of m = k - k* + 1 atoms, cell.B the
//   weighted power mean of models.md 9.2 with exponent p_B, rate 1/(2 p_B):
//     softmax, linear / polynomial experts: beta1, b -> 1/(2 rbar(m)); a, nu -> 1/rbar(m)
//       (m = 2: 1/8 and 1/4; m = 3: 1/12 and 1/6)
//     softmax, bias-free ffn experts (sigmoid, tanh, gelu): every block -> 1/4
//     laplace, linear: w, a -> 1/4; b -> 1/(2 rbar); nu -> 1/rbar
//   loss -> 1/2 always. ffn with a bias (not strongly identifiable) and relu: no claim.
//
//   auto th = theory_exponents(truth, setting.fit);   // th["m.cell.beta1"] == 0.125
#pragma once

#include <map>
#include <string>

#include "moerate/estimators/fit.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

std::map<std::string, double> theory_exponents(const GaussianMoE& truth, const FitOptions& fit,
                                               const std::map<int, double>& rbar = {{2, 4.0}, {3, 6.0}});

}  // namespace moerate
