// moerate/metrics/truth_check.hpp -- does a true model satisfy the assumptions
// of the rate theorems on a design? (experiments.md D)
//
// Truths taken from the literature can violate the theory's own assumptions
// (two gates with equal slopes, so the gate is constant on the design; Laplace
// centres outside the design; experiments A's beta1 = 25, which saturates the
// gate on [0, 1]). check_truth() draws x from the design and reports, each
// finding naming the experts and the measured quantity:
//   gate_constant      every gate weight varies by less than gate_range over the design
//   gate_pair_constant pi_i / pi_j is constant on the design (equal slopes): the sd of
//                      log pi_i - log pi_j is below gate_range
//   gate_saturated     an expert's average gate weight is below negligible (it owns almost nothing)
//   laplace_outside    a Laplace centre w_i lies outside the range of the design
//   experts_equal      two experts' means differ by an RMS below expert_gap * sqrt(min variance)
//   expert_degenerate  an expert's mean is constant on the design (ffn a = 0 or c = 0, ...)
//
//   for (const auto& f : check_truth(truth, "uniform:-1,1")) std::cerr << f.message << "\n";
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "moerate/model/model.hpp"

namespace moerate {

struct TruthCheckOptions {
  std::size_t n_mc = 4000;       // draws of x
  std::uint64_t seed = 1;
  double gate_range = 0.05;      // a gate weight moving less than this over the design is constant
  double negligible = 1e-3;      // average gate weight below this: the expert owns almost nothing
  double expert_gap = 0.5;       // RMS difference of two experts' means, in noise sd, below which they are "equal"
  void validate() const;
};

struct TruthFinding {
  std::string kind;              // see the file header
  std::vector<std::size_t> experts;  // 1-based
  double value = 0;              // the measured quantity
  std::string message;           // one readable line
};

std::vector<TruthFinding> check_truth(const GaussianMoE& truth, const std::string& design,
                                      const TruthCheckOptions& opt = {});

}  // namespace moerate
