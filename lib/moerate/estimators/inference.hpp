// moerate/estimators/inference.hpp -- standard errors, sandwich and bootstrap intervals.
//
// Parameters are GaussianMoE::flat_params(): [gating params, eta_1..eta_k,
// log nu_1..k] (models.md section 2; the softmax reference expert is not free).
//
// Per-observation score of l_i = log p(y_i | x_i) (analytic), with R the
// posterior responsibilities R_ij = pi_j N_ij / p_i:
//   gating      d l_i / d theta = log_weights_vjp(x_i, R_.i)
//   expert j    R_ij (y_i - h_ij) / nu_j * J_j(x_i)          (J = dh/deta)
//   log nu_j    R_ij * 0.5 * ((y_i - h_ij)^2 / nu_j - 1)
// Observed information I = -d2 l / dtheta2 by central differences of the
// analytic total score (symmetrised); numerical_hessian() differentiates l
// twice numerically (a cross-check for tests).
// Standard errors: sqrt(diag(I^-1)) from a Cholesky factor of I (no explicit
// inverse); sandwich I^-1 B I^-1 with B = sum_i s_i s_i^T. When I is not
// positive definite or cond(I) > cond_threshold (over-fitted or
// near-singular fits) no standard errors are reported, only the condition
// number and the weakest parameter direction.
//
// Bootstrap: resample rows with replacement; refit each replicate from the
// given model and from k-means starts (the best log-likelihood is kept);
// relabel to the original with match_experts; percentile intervals per named
// parameter. Replicate b uses seed derive_seed(seed, {b}): results do not
// depend on the thread count.
//
//   StandardErrors se = standard_errors(fit.model, D.X, D.y);
//   BootstrapResult b = bootstrap(fit.model, D.X, D.y, BootstrapOptions{.replicates = 200});
#pragma once

#include <armadillo>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "moerate/estimators/em.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

/// Per-observation analytic scores of log p(y_i | x_i): p x n (gaussian kind).
arma::mat score_obs(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y);
/// Total analytic score (p), computed without per-observation gating calls.
arma::vec score(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y);
/// Hessian of the log-likelihood by central differences of the analytic score
/// (step rel_step * max(1, |theta_p|)), symmetrised.
arma::mat score_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, double rel_step = 1e-5);
/// The same by forward differences from g0 = score(m, X, y) (p score evaluations
/// instead of 2p; error O(rel_step) instead of O(rel_step^2)), symmetrised: for
/// Newton steps, where an error of 1e-6 relative costs nothing.
arma::mat score_hessian_forward(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, const arma::vec& g0,
                                double rel_step = 1e-7);
/// Analytic Hessian of the log-likelihood (the observed information with its
/// sign), symmetrised: with a_ij = log pi_j(x_i) + log N(y_i; h_j(x_i), nu_j)
/// and r_ij the responsibilities,
///   H = sum_i [ sum_j r_ij (d2 a_ij + d a_ij d a_ij^T) - g_i g_i^T ],  g_i = sum_j r_ij d a_ij
/// (Louis's identity). The gate's part of sum_j r_ij d2 a_ij is the family's
/// q_hessian(X, R); the experts' needs their Jacobian and Hessian in eta.
/// Returns an empty matrix when the gating family has no analytic q_hessian
/// (callers fall back to score_hessian_forward).
/// For softmax gates the pass is loglik_score_hessian's; loglik_hessian_general
/// is the family-generic pass (every gate with a q_hessian; tests compare them).
arma::mat loglik_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y);
arma::mat loglik_hessian_general(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y);

/// The score and the Hessian of the log-likelihood in one pass over blocks of
/// observations (Newton steps need both). For softmax gates (flat parameters
/// v = (1, x) per free expert l < k) Louis's identity takes a closed form per
/// observation: with d_ij = d a_ij - g_i,
///   sum_j r_ij d a_ij d a_ij^T - g_i g_i^T = sum_j r_ij d_ij d_ij^T,
///   gate rows of d_ij: (delta_jl - r_il) v_i, expert j' rows: (delta_jj' - r_ij') e_ij'
///   (e_ij = (J_ij res_ij / nu_j, (res_ij^2 / nu_j - 1) / 2), the complete-data score),
/// so the outer products are one symmetric rank-k update per observation (dsyrk
/// over a block), and the gate's curvature is
///   -(diag(pi_i) - pi_i pi_i^T) (x) v_i v_i^T = -sum_j pi_ij u_ij u_ij^T,  u_ij = (delta_jl - pi_il) v_i,
/// another update; the experts' second derivatives are added per expert. The
/// same numbers as score() and loglik_hessian_general() up to round-off, at a
/// fraction of their cost (no per-expert p x n products). Other gates: score()
/// and loglik_hessian_general() (H empty without an analytic gate Hessian).
struct ScoreHessian {
  arma::vec g;
  arma::mat H;
  ScoreHessian& operator+=(const ScoreHessian& o) {
    g += o.g;
    H += o.H;
    return *this;
  }
};
ScoreHessian loglik_score_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y);
/// Fully numerical Hessian of the log-likelihood (second differences of l; tests only).
arma::mat numerical_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, double rel_step = 1e-4);

/// Two-sided standard normal quantile for a confidence level (0.95 -> 1.959964).
double normal_two_sided_quantile(double level);

struct SeOptions {
  double level = 0.95;             // Wald interval level
  double cond_threshold = 1e10;    // above this the information is reported as near singular
  double rel_step = 1e-5;          // score differencing step (relative), for gates without an analytic Hessian
  void validate() const;
};

struct StandardErrors {
  std::vector<std::string> names;
  arma::vec estimate;
  arma::vec se;                    // observed information (empty when near singular)
  arma::vec se_sandwich;           // I^-1 B I^-1 (empty when near singular)
  arma::mat cov, cov_sandwich;
  arma::mat information;           // observed information I (p x p)
  bool analytic_hessian = false;   // I from loglik_hessian (else central differences of the score)
  double condition_number = 0;     // lambda_max / lambda_min of I (inf if not positive definite)
  double min_eigenvalue = 0;
  bool near_singular = false;
  std::string weakest_direction;   // the eigenvector of the smallest eigenvalue, in names
  double level = 0.95, z = 0;
  std::size_t n_obs = 0;
  json to_json() const;
  std::string table() const;       // human table (or the near-singular message)
  /// z = estimate / se (NaN when near singular); the test of estimate = 0. For
  /// log-variance entries that is log nu = 0 (nu = 1), rarely a useful null.
  arma::vec z_values() const;
  /// Two-sided normal p-values 2 (1 - Phi(|z|)) (Boost.Math; NaN when near singular).
  arma::vec p_values() const;
  /// parameter,estimate,se,z,p_value,lower,upper,se_sandwich,level (NaN fields when near singular).
  std::string coefficients_csv() const;
};

StandardErrors standard_errors(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y,
                               const SeOptions& opt = {});
/// The "standard_errors" object added by `moerate fit --se`.
json standard_errors_json(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y);

struct BootstrapOptions {
  int replicates = 200;            // number of bootstrap samples
  std::uint64_t seed = 1;
  int threads = 0;                 // 0 = OpenMP default; results do not depend on it
  double level = 0.95;             // percentile interval level
  int kmeans_starts = 2;           // k-means starts per replicate besides the model start
  std::string estimator = "em";    // estimator registry name
  EMOptions em{};                  // estimator options
  void validate() const;
};

struct BootstrapResult {
  std::vector<std::string> names;
  arma::vec estimate;              // the original model's parameters, experts in canonical form (ExpertFamily::canonical)
  arma::mat draws;                 // replicates x p (NaN rows for failed replicates)
  std::vector<std::string> errors; // per replicate ("" when it succeeded)
  std::vector<int> from_model;     // 1 when the kept refit started from the model
  arma::vec lower, upper, se, mean;
  int n_failed = 0;
  double level = 0.95;
  std::uint64_t seed = 1;
  int kmeans_starts = 0;
  std::string estimator;
  double seconds = 0;
  json to_json(bool with_draws = true) const;
  std::string table() const;
};

/// progress(done, total) is called (serialised) after each replicate.
BootstrapResult bootstrap(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                          const BootstrapOptions& opt,
                          const std::function<void(int, int)>& progress = {});

}  // namespace moerate
