// moerate/estimators/lse.hpp -- least-squares estimation of the regression model (models.md section 5.3).
//
//     Y = f_G(X) + noise,   f_G(x) = sum_j pi_j(x) h(x; eta_j)
//     minimise RSS(theta) = sum_i (y_i - f_G(x_i))^2
// over theta = [gating params, eta_1..eta_k] (GaussianMoE::flat_params of a
// model of kind regression; no variances). Any gating family is allowed,
// including the unnormalised sigmoid gate. Analytic gradient, with
// r_i = y_i - f_i, pi_ij = exp(log_weights)_ij and h_ij the expert means:
//     df_i/d gate = sum_j pi_ij h_ij d log pi_ij / d gate, so
//     dRSS/d gate  = gating().log_weights_vjp(X, C),  C_ij = -2 r_i pi_ij h_ij
//     dRSS/d eta_j = -2 sum_i r_i pi_ij jacobian_j(:, i)
// minimised by L-BFGS (minimise_lbfgs of mle.hpp) on RSS / n; the same stop
// rules as the direct MLE (relative change of RSS below tol, iteration cap).
// Afterwards noise_variance = RSS / n (used by simulate and predict).
//
// Registered as estimator "lse"; its objective is -RSS. moerate::fit turns
// every start into a regression model with as_regression_model (same gating
// and eta, noise_variance = RSS/n); run_lse does the same for a Gaussian start.
//
//   LseResult r = run_lse(model, X, y, LseOptions{});   // model updated in place
#pragma once

#include <armadillo>

#include "moerate/estimators/mle.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

using LseOptions = LbfgsOptions;

struct LseResult : LbfgsRunInfo {
  double rss = 0;
  double rss_initial = 0;
};

/// The regression model with the same gating and expert parameters as m and
/// noise_variance = RSS/n of its regression function on (X, y). A model that
/// is already of kind regression is returned unchanged.
GaussianMoE as_regression_model(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y);

/// RSS and its analytic gradient with respect to flat_params() (regression kind).
double rss_gradient(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, arma::vec& grad);

/// Least squares from the model's current parameters (converted to the
/// regression kind if needed; updated in place).
LseResult run_lse(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const LseOptions& opt);

}  // namespace moerate
