// moerate/studies/theory.hpp -- the theoretical convergence exponents of models.md
// section 7, as data for tables and plots.
//
// For a fit setting (truth, fitted k and families) returns metric -> e such
// that the metric should fall like n^(-e) (up to log factors). Metric names
// are the sweep's: "m.loss", "m.exact.B", "m.over.B" (B a parameter block).
// Settings the theory does not cover get no entry (never a guess):
//   exact-fitted, any gate/expert: loss and every exact.B -> 1/2
//   softmax, over-fitted by one (a cell of 2, rbar = 4):
//     linear / polynomial experts: beta1, b -> 1/8; a, nu -> 1/4; loss -> 1/2
//     strongly identifiable experts (ffn): every block -> 1/4; loss -> 1/2
//   laplace, linear, over-fitted by one: w, a -> 1/4; b -> 1/(2 rbar); nu -> 1/rbar
//
//   auto th = theory_exponents(truth, setting.fit);   // th["m.over.beta1"] == 0.125
#pragma once

#include <map>
#include <string>

#include "moerate/estimators/fit.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

std::map<std::string, double> theory_exponents(const GaussianMoE& truth, const FitOptions& fit,
                                               const std::map<int, double>& rbar = {{2, 4.0}, {3, 6.0}});

}  // namespace moerate
