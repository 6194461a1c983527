// moerate/estimators/newton_polish.hpp -- safeguarded Newton steps on the
// observed log-likelihood, used by EM (--accelerate squarem-newton) where EM
// crawls: over-fitted (singular) fits, whose EM rate tends to 1 as n grows.
//
// A trust-region Newton method (round 13; before it, Levenberg-Marquardt with
// backtracking). One step at theta (GaussianMoE::flat_params):
//   g = analytic score and H = analytic Hessian in one pass
//   (loglik_score_hessian) where the gate has one, otherwise forward differences
//   of g (score_hessian_forward, symmetrised; relative error about 1e-7);
//   A = -H on the free coordinates F (those not on a bound of the box with g
//   pointing out of it); scaled coordinates e = D d with D = sqrt|diag A|, so the
//   radius is in units of the curvature's own scale (about standard errors);
//   e maximises the model g'd - d'A d/2 within the radius (trust_region_step,
//   exact via the eigen-decomposition: p is small), which follows directions of
//   negative curvature instead of damping them away. Coordinates the step would
//   push out of the box are put on that bound and the step is recomputed on the
//   others (an active set), so a clamp never spoils the step.
//   The trial point is kept when its log-likelihood is higher and the ratio rho
//   of the actual to the predicted gain exceeds 1e-4; the radius shrinks to a
//   quarter of the step when rho < 1/4 and doubles when rho > 3/4 on the
//   boundary. A rejected trial costs one log-likelihood, not a new Hessian. The
//   log-likelihood never decreases.
// Steps repeat until twice the predicted gain (the Newton decrement g'A^-1 g
// for a full step) falls below decrement_tol (nats), max_steps, or
// max_rejections, or a full Newton step gains less than min_gain (EM passes a
// third of its last cycle's gain: Newton crawls along a curved valley there). EM passes the last radius to the next polish. Near a
// non-degenerate maximum the convergence is quadratic, where EM's is linear with
// a rate that tends to 1 in the singular regime. EM still certifies the result
// (the polish only moves the iterate; em.hpp's stopping rule decides).
//
//   PolishResult r = newton_polish(model, X, y, box, PolishOptions{});
#pragma once

#include <armadillo>

#include "moerate/model/bounds.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

struct PolishOptions {
  int max_steps = 50;            // Newton steps (score and Hessian evaluations) per call
  int max_rejections = 30;       // trial points rejected per call before giving up
  double min_gain = 0;           // stop after a full Newton step that gained less than this (nats)
  double initial_radius = 1;     // trust region's radius at the first step (scaled coordinates)
  double max_radius = 1e10;       // and its largest value
  double decrement_tol = 1e-10;  // stop when g' delta (about twice the gain still available) is below this
  double rel_step = 1e-7;        // forward-difference step of the Hessian (gates without an analytic
                                 // q_hessian), relative to max(1, |theta_i|)
};

struct PolishResult {
  int steps = 0;                 // Newton steps kept
  int score_evaluations = 0;     // analytic scores evaluated (gradients, and finite-difference Hessians)
  int trials = 0;                // trial points whose log-likelihood was evaluated (kept or rejected)
  double gain = 0;               // l(after) - l(before) >= 0
  double log_likelihood = 0;     // l(after)
  double decrement = arma::datum::nan;  // twice the model's predicted gain at the last step computed
  double radius = 0;             // trust region's radius at the end (to start the next call)
};

/// The trust-region subproblem: the maximiser of m(e) = g'e - e'Ae/2 over
/// |e| <= radius, for A = Q diag(lam) Q' (eigen-decomposed, lam ascending as
/// arma::eig_sym gives it) and gq = Q'g. `newton` is set when the step is the
/// unconstrained Newton step A^-1 g (A positive definite, step inside).
arma::vec trust_region_step(const arma::vec& lam, const arma::mat& Q, const arma::vec& gq, double radius,
                            bool& newton);

/// Newton steps from the model's current parameters (updated in place; never
/// a lower log-likelihood). `ll` is the log-likelihood at the start. Gaussian
/// kind only. A family that rejects a trial point (InvalidArgument) ends the
/// polish at the last accepted point.
PolishResult newton_polish(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const Box& box, double ll,
                           const PolishOptions& opt = {});

}  // namespace moerate
