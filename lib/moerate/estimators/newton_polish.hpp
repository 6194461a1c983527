// moerate/estimators/newton_polish.hpp -- safeguarded Newton steps on the
// observed log-likelihood, used by EM (--accelerate squarem-newton) where EM
// crawls: over-fitted (singular) fits, whose EM rate tends to 1 as n grows.
//
// One step at theta (GaussianMoE::flat_params):
//   g = analytic score (inference.hpp score()), H = forward differences of g
//   (score_hessian_forward, symmetrised; relative error about 1e-7, which
//   changes a Newton step's length, not its fixed point), A = -H on the free coordinates (those not on
//   a bound of the box with g pointing out of it); A is factorised by Cholesky,
//   with a Levenberg-Marquardt shift mu I (mu from 1e-10 max diag A, x10) when
//   it is not positive definite; delta = A^-1 g; theta' = clamp(theta + t delta)
//   for t = 1, 1/2, ... (at most 30 halvings), the first theta' whose
//   log-likelihood is not lower than l(theta) is kept. Otherwise the model is
//   unchanged: the log-likelihood never decreases.
// Steps repeat until the Newton decrement g' delta falls below decrement_tol
// (nats), a step gains nothing, or max_steps. Near a non-degenerate maximum the
// convergence is quadratic, where EM's is linear with a rate that tends to 1
// in the singular regime. EM still certifies the result (the polish only
// moves the iterate; em.hpp's stopping rule decides convergence).
//
// Cost of a step: p + 1 score evaluations (p = number of parameters) and
// line-search log-likelihoods, against one E- and M-step for EM.
//
//   PolishResult r = newton_polish(model, X, y, box, PolishOptions{});
#pragma once

#include <armadillo>

#include "moerate/model/bounds.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

struct PolishOptions {
  int max_steps = 10;            // Newton steps per call
  double decrement_tol = 1e-10;  // stop when g' delta (about twice the gain still available) is below this
  double rel_step = 1e-7;        // forward-difference step of the Hessian (gates without an analytic
                                 // q_hessian), relative to max(1, |theta_i|)
};

struct PolishResult {
  int steps = 0;                 // Newton steps kept
  int score_evaluations = 0;     // analytic scores evaluated (gradients, and finite-difference Hessians)
  double gain = 0;               // l(after) - l(before) >= 0
  double log_likelihood = 0;     // l(after)
  double decrement = arma::datum::nan;  // g' delta at the last step computed
};

/// Newton steps from the model's current parameters (updated in place; never
/// a lower log-likelihood). `ll` is the log-likelihood at the start. Gaussian
/// kind only. A family that rejects a trial point (InvalidArgument) ends the
/// polish at the last accepted point.
PolishResult newton_polish(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const Box& box, double ll,
                           const PolishOptions& opt = {});

}  // namespace moerate
