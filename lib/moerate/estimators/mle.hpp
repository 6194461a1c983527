// moerate/estimators/mle.hpp -- direct maximum likelihood by L-BFGS (models.md section 5.2).
//
// Maximises the observed log-likelihood of a Gaussian MoE
//     l(theta) = sum_i log sum_j pi_j(x_i) N(y_i; h(x_i; eta_j), nu_j)
// over the model's flat vector theta = [gating params, eta_1..eta_k, log nu_1..k]
// (GaussianMoE::flat_params) with liblbfgs and the ANALYTIC gradient: with R the
// posterior responsibilities (R_ij = pi_ij N_ij / p_i) and r_ij = y_i - h_ij,
//     dl/d gate    = gating().log_weights_vjp(X, R)
//     dl/d eta_j   = sum_i R_ij r_ij / nu_j * jacobian_j(:, i)
//     dl/d log nu_j = sum_i R_ij * 0.5 (r_ij^2 / nu_j - 1)
// L-BFGS minimises -l / n (the mean, so that its gradient test is independent
// of n); the line search is backtracking with the Wolfe conditions, and an
// evaluation outside the parameter space (non-finite l, or gate parameters the
// family rejects) returns +inf so the line search backs off.
//
// Stopping (every way is reported): converged when the relative change of l
// over one iteration falls below tol (the EM criterion) or the gradient test
// ||g|| < grad_tol max(1, ||theta||) holds; max_iter at the iteration cap;
// non_finite if the start has a non-finite l. A line search that cannot make
// progress (liblbfgs rounding / step-size errors) restarts L-BFGS from the
// current point with a fresh memory, up to max_restarts times; if it still
// fails, the run is "converged" when the relative gradient is below
// stall_grad_tol (stationary up to round-off) and otherwise max_iter
// (stopped before convergence); MleResult.message keeps liblbfgs's status.
// No variance floor: a collapsing variance shows as a diverging l.
//
// Registered as estimator "mle" (max_iter and tol from FitOptions.em).
//
//   MleOptions o;  o.tol = 1e-10;
//   MleResult r = run_mle(model, X, y, o);   // model updated in place
#pragma once

#include <armadillo>
#include <functional>
#include <string>

#include "moerate/estimators/em.hpp"
#include "moerate/model/bounds.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

/// Options of the L-BFGS driver shared by the direct MLE and least squares.
struct LbfgsOptions {
  int max_iter = 1000;          // iteration cap (FitOptions.em.max_iter for the estimators)
  double tol = 1e-6;            // relative change of the objective per iteration (em.tol)
  double grad_tol = 1e-9;       // liblbfgs gradient test ||g|| < grad_tol max(1, ||x||)
  double stall_grad_tol = 1e-5; // after a failed line search: converged if ||g||/max(1,||x||) below this
  int memory = 10;              // L-BFGS corrections kept (liblbfgs default 6)
  int max_linesearch = 40;      // function evaluations per line search (liblbfgs default)
  int max_restarts = 3;         // fresh-memory restarts after a failed line search
  CancelHook cancel{};          // polled every iteration (em.cancel for the estimators); empty: never
  void validate() const;
};

struct LbfgsOutcome {
  StopReason stop_reason = StopReason::not_run;
  int iterations = 0;           // L-BFGS iterations over all restarts
  int evaluations = 0;          // objective/gradient evaluations
  double value = 0;             // final objective (minimised)
  double grad_norm = 0;         // ||g|| / max(1, ||x||) at the end
  int status = 0;               // last liblbfgs return code
  std::string message;          // liblbfgs status in words
};

/// Minimise f over x (updated in place). f(x, g) returns the value and writes
/// the gradient into g (sized like x); it returns +inf (or NaN) outside the
/// domain. The objective's relative change is measured as |f_old - f|/max(|f|, 1e-300).
LbfgsOutcome minimise_lbfgs(const std::function<double(const arma::vec&, arma::vec&)>& f, arma::vec& x,
                            const LbfgsOptions& opt);
std::string lbfgs_status_message(int status);

using MleOptions = LbfgsOptions;

/// What the MLE and least-squares results share: how L-BFGS ended.
struct LbfgsRunInfo {
  StopReason stop_reason = StopReason::not_run;
  int iterations = 0;
  int evaluations = 0;
  double grad_norm = 0;         // of the objective / n, relative as in LbfgsOutcome
  std::string message;
  void take(const LbfgsOutcome& o);
};

struct MleResult : LbfgsRunInfo {
  double log_likelihood = 0;
  double log_likelihood_initial = 0;
};

/// Log-likelihood and its analytic gradient with respect to flat_params()
/// (gaussian kind). Returns l; writes the gradient into grad.
double log_likelihood_gradient(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                               arma::vec& grad);

/// Direct MLE from the model's current parameters (updated in place; the
/// returned model is the best point L-BFGS reached).
/// With bounds, bounded coordinates are optimised through a smooth bijection
/// onto their interval (two-sided: lo + (hi - lo) sigmoid(u); one-sided:
/// lo + exp(u) or hi - exp(u)), so every iterate lies in the box; a start on
/// the boundary is moved inside by 1e-9 of the interval.
MleResult run_mle(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const MleOptions& opt,
                  const ParameterBounds& bounds = {});

}  // namespace moerate
