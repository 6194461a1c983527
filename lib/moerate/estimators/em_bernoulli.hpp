// moerate/estimators/em_bernoulli.hpp -- EM for a Bernoulli MoE (model/response.hpp).
//
// One iteration:
//   E-step   R = responsibilities in log space (log_joint minus its column log_sum_exp)
//   M-step   gating: Gating::m_step on R (as for Gaussian experts);
//            experts: logistic_m_step with weights R_j (IRLS for linear h,
//            damped Fisher scoring for ffn), each step accepted only if it
//            raises the weighted Bernoulli log-likelihood.
// Every part raises Q, so the observed log-likelihood never decreases; the
// result records the trace and the largest decrease, as for Gaussian EM.
//
// Departures from Gaussian EM (run_em dispatches here for "model": "bernoulli"):
// plain EM (no SQUAREM), no parameter bounds (refused), and the stopping rule
// is |change of l| < abs_tol over `patience` = 3 consecutive steps (or the
// relative rule when tol > 0): the score statistic of the certificate is
// defined for the Gaussian likelihood only, so a certificate (estimators/certificate)
// rests on the stopping rule and monotonicity alone.
#pragma once

#include "moerate/estimators/em.hpp"

namespace moerate {

EMResult run_em_bernoulli(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const EMOptions& opt);

}  // namespace moerate
