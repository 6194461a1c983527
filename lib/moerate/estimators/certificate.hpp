// moerate/estimators/certificate.hpp -- what a fit can honestly claim
// (models.md section 9.3): the score statistic that decides convergence, and
// the certificate every fit carries.
//
// Score statistic. With S the p x n matrix of per-observation scores (the
// gradient of log p(y_i | x_i) with respect to GaussianMoE::flat_params()),
// g = S 1 the total score and J = S S^T its outer-product (empirical Fisher)
// information,
//     lambda = sqrt( g^T J^-1 g )
// is the length of the Newton step that remains, measured in standard errors
// of the estimate (J^-1 estimates the covariance of the MLE). It is scale-free:
// lambda < 1e-3 means the optimisation error is a thousandth of the
// statistical error, at every n. Coordinates at a bound whose score points out
// of the box are left out (the constrained optimum has a non-zero score there);
// J gets a ridge of 1e-12 trace(J)/p so that singular (over-fitted) problems
// stay solvable.
//
// Certificate: stop reason, iterations, the last change of the log-likelihood,
// lambda, the largest decrease (must be round-off), coordinates on a bound,
// near-empty atoms (responsibility mass / n below near_empty_mass), variances
// on the floor, gates that are saturating (|gate parameter| * (1 + max|x|) > 100)
// and fewer observations than parameters; `certified` is true when the fit
// stopped on the convergence criteria with lambda <= score_tol and no
// decrease. Each finding is a JSON field and a warning line.
//
//   FitCertificate c = certify(model, X, y, run, CertifyOptions{...});
//   if (!c.certified) for (auto& w : c.warnings) std::cerr << w << "\n";
#pragma once

#include <armadillo>
#include <string>
#include <vector>

#include "moerate/estimators/em.hpp"
#include "moerate/model/bounds.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

/// lambda above for a Gaussian MoE at its current parameters, given its
/// responsibilities R (k x n, model.responsibilities). Observations are
/// processed in blocks (memory O(p^2 + p * block)).
double score_statistic(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const arma::mat& R,
                       const Box& box = {});
/// Convenience form that computes R itself.
double score_statistic(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const Box& box = {});

/// Per-observation scores (p x n) given responsibilities R (k x n).
arma::mat observation_scores(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                             const arma::mat& R);
/// Their sum over observations (p), without the p x n matrix: the score at the
/// model when R are its responsibilities.
arma::vec observation_score_sum(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                                const arma::mat& R);

struct CertifyOptions {
  double score_tol = 1e-3;          // lambda threshold (standard errors); EMOptions.score_tol
  double near_empty_mass = 1e-3;    // an atom whose responsibility mass / n is below this is near-empty
  double decrease_tol = 1e-8;       // a decrease of l beyond decrease_tol * max(1, |l|) is reported
  double saturation = 100;          // |gate parameter| * (1 + max|x|) beyond this: the gate saturates
  double variance_floor_abs = 0;    // the floor EM applied (variances at it are reported)
  Box box;                          // the parameter box (empty = none)
};

struct FitCertificate {
  StopReason stop_reason = StopReason::not_run;
  int iterations = 0;
  double ll_change = arma::datum::nan;  // |l_T - l_(T-1)| at the end (nan: not iterative)
  double score_norm = arma::datum::nan; // lambda (nan for the regression model)
  double score_tol = 1e-3;
  double max_decrease = 0;
  std::vector<std::string> at_bound;    // flat parameter names on a bound
  arma::vec atom_mass;                  // responsibility mass / n of each atom
  std::vector<std::size_t> near_empty;  // atoms (0-based) below near_empty_mass
  std::vector<std::size_t> floored;     // atoms whose variance is on the floor
  std::vector<std::string> saturated;   // gate parameters beyond the saturation level
  bool underdetermined = false;         // fewer observations than free parameters
  bool certified = false;
  std::vector<std::string> warnings;    // one human-readable line per finding
  json to_json() const;
  /// Compact flags for a results row: e.g. "near_empty;at_bound" ("" = none).
  std::string flags() const;
};

/// The certificate of a fitted model (stop_reason, iterations, ll_change and
/// max_decrease come from the estimator run).
FitCertificate certify(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, StopReason stop_reason,
                       int iterations, double ll_change, double max_decrease, std::size_t n_params,
                       const CertifyOptions& opt);

}  // namespace moerate
