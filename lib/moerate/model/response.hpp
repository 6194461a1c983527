// moerate/model/response.hpp -- the Bernoulli response: y in {0, 1} with
// P(y = 1 | x, expert i) = sigmoid(h(x; eta_i)) (models.md, "Bernoulli experts").
//
// A model's response distribution is its ModelKind (model/model.hpp):
// "gaussian" (default), "regression" or "bernoulli" ("model" in the model file;
// `moerate fit --response bernoulli`). Any expert family gives the logit h
// (linear, ffn with or without bias, polynomial); nothing in the family changes.
//
//   log_sigmoid(z)            log(1 / (1 + e^-z)) = -(max(-z, 0) + log1p(e^-|z|)):
//                             finite for every finite z, never log(0).
//   bernoulli_log_pmf(y, h)   y log s(h) + (1 - y) log s(-h), element-wise.
//   logistic_objective        Q(eta) = sum_i w_i log Bern(y_i; s(h(x_i; eta))),
//                             the expert part of EM's Q (to be maximised).
//   logistic_gradient         dQ/deta = J (w % (y - s(h)))^T, J the family's Jacobian.
//   logistic_m_step           raises Q, never lowers it: damped Fisher scoring
//                             (Levenberg-Marquardt on J diag(w s(1-s)) J^T), a step
//                             accepted only if Q increases. For h linear in eta this
//                             is IRLS (Newton) with a vanishing damping; for ffn it
//                             is the family's own LM machinery with the logistic loss.
//   logistic_initial          a start fitted to weighted data (zero and random
//                             starts refined by logistic_m_step, the best kept).
//   check_binary_response     InputError naming the file and line of the first y
//                             that is not 0 or 1.
#pragma once

#include <armadillo>
#include <string>
#include <vector>

#include "moerate/core/rng.hpp"
#include "moerate/model/expert_family.hpp"

namespace moerate {

inline double log_sigmoid(double z) { return -(std::max(-z, 0.0) + std::log1p(std::exp(-std::abs(z)))); }
arma::rowvec log_sigmoid(const arma::rowvec& z);
/// sigmoid(z) computed without overflow.
arma::rowvec sigmoid(const arma::rowvec& z);
arma::rowvec bernoulli_log_pmf(const arma::rowvec& y, const arma::rowvec& logit);

double logistic_objective(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                          const arma::vec& eta);
arma::vec logistic_gradient(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                            const arma::vec& eta);

struct LogisticMStepResult {
  double q_before = 0, q_after = 0;  // logistic_objective (after >= before)
  int accepted_steps = 0;
};
/// opt.lm_steps scoring steps at most (generalised EM needs only an increase;
/// IRLS from zero converges in about 5 to 10); stops early when the relative
/// gain is below 1e-12.
LogisticMStepResult logistic_m_step(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y,
                                    const arma::rowvec& w, arma::vec& eta, const ExpertMStepOptions& opt);

arma::vec logistic_initial(const ExpertFamily& f, const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                           Rng& rng);

/// Throws InputError(source, line, 0, ...) at the first y not in {0, 1};
/// `lines[i]` is the file line of observation i (empty: line = i + 2, a header
/// then one row per line).
void check_binary_response(const arma::rowvec& y, const std::string& source,
                           const std::vector<std::size_t>& lines = {});

}  // namespace moerate
