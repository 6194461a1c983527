// moerate/estimators/em.hpp -- maximum likelihood by EM (models.md section 5.1).
//
// One EM iteration on a GaussianMoE:
//   E-step   R = responsibilities, in log space (log_joint minus its column log_sum_exp)
//   M-step   gating: Gating::m_step on R (Newton/IRLS for softmax; ascent otherwise),
//            experts: ExpertFamily::m_step with weights R_j (WLS or accepted LM steps),
//            variances nu_j = sum_i R_ij (y_i - h_ij)^2 / sum_i R_ij, floored at
//            variance_floor (reported in the result).
// Every part of the M-step raises Q, so the observed log-likelihood never
// decreases (up to round-off); the result records the whole trace and the
// largest decrease seen, so tests and users can check it.
//
// The loop stops for one of the StopReason values; non-convergence is a
// status, never an exception.
//
//   EMOptions opt;  opt.max_iter = 2000;
//   EMResult r = run_em(model, X, y, opt);   // model is updated in place
//   if (r.stop_reason == StopReason::max_iter) ...
#pragma once

#include <armadillo>
#include <string>
#include <vector>

#include "moerate/core/cancel.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

enum class StopReason {
  converged,        // relative change of the log-likelihood below tol
  max_iter,         // iteration cap reached
  non_finite,       // the log-likelihood became NaN/inf (degenerate start)
  not_run,          // no iteration was run (e.g. max_iter = 0)
};
std::string stop_reason_name(StopReason r);

struct EMOptions {
  int max_iter = 1000;            // literature: 1000-2000 iterations
  double tol = 1e-6;              // relative log-likelihood change (literature default 1e-6)
  double variance_floor = 1e-6;   // relative to var(y): nu_j >= floor * var(y)
  GateMStepOptions gate{};        // gating M-step (ridge 0 by default)
  ExpertMStepOptions expert{};    // expert M-step (LM steps for nonlinear experts)
  bool keep_trace = true;         // store the log-likelihood at every iteration
  CancelHook cancel{};            // polled every iteration (and by the other estimators); empty: never
  void validate() const;
};

struct EMResult {
  StopReason stop_reason = StopReason::not_run;
  int iterations = 0;
  double log_likelihood = -kInfDouble();
  std::vector<double> trace;      // log-likelihood after each iteration (index 0 = start)
  double max_decrease = 0;        // largest drop between iterations (>= 0; ~1e-12 is round-off)
  double variance_floor_abs = 0;  // the floor actually applied (absolute)
  int floored_variances = 0;      // how many variances sat on the floor at the end
  static constexpr double kInfDouble() { return __builtin_inf(); }
};

/// Run EM from the model's current parameters (updated in place).
EMResult run_em(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                const EMOptions& opt);

}  // namespace moerate
