#include "moerate/estimators/em_bernoulli.hpp"

#include <cmath>

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/model/response.hpp"

namespace moerate {

EMResult run_em_bernoulli(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const EMOptions& opt) {
  opt.validate();
  if (model.kind() != ModelKind::bernoulli)
    throw InvalidArgument("run_em_bernoulli: needs a Bernoulli MoE (\"model\": \"bernoulli\")");
  if (X.n_cols != y.n_elem) throw InvalidArgument("run_em: X and y have different numbers of observations");
  if (X.n_rows != model.dim())
    fail("run_em", "data dimension", "must equal the model dimension " + std::to_string(model.dim()), X.n_rows);
  if (opt.bounds.any())
    throw InvalidArgument("run_em: parameter bounds are not supported for Bernoulli experts (use --ridge for the gate)");
  for (std::size_t i = 0; i < y.n_elem; ++i)
    if (y[i] != 0 && y[i] != 1)
      throw InvalidArgument("run_em: a Bernoulli response must be 0 or 1; got " + to_text(y[i]) + " at observation " +
                            std::to_string(i + 1));
  EMResult res;
  const std::size_t k = model.n_experts();
  auto evaluate = [&](arma::mat& L, arma::rowvec& ll_obs) {
    L = model.log_joint(X, y);
    ll_obs = log_sum_exp_cols(L);
    return arma::accu(ll_obs);
  };
  arma::mat L;
  arma::rowvec ll_obs;
  double ll = evaluate(L, ll_obs);
  res.log_likelihood = ll;
  if (opt.keep_trace) res.trace.push_back(ll);
  if (!std::isfinite(ll)) {
    res.stop_reason = StopReason::non_finite;
    return res;
  }
  const Covariates::Rows xg = model.gate_x(X), xe = model.expert_x(X);  // X itself when shared
  constexpr int kPatience = 3;
  int small_steps = 0;
  while (true) {
    throw_if_cancelled(opt.cancel);
    if (res.iterations >= opt.max_iter) {
      res.stop_reason = res.iterations == 0 ? StopReason::not_run : StopReason::max_iter;
      break;
    }
    const GaussianMoE previous = model;
    arma::mat R = L;
    R.each_row() -= ll_obs;
    exp_inplace(R.memptr(), R.n_elem);
    model.gating().m_step(xg.mat(), R, opt.gate);
    for (std::size_t j = 0; j < k; ++j) {
      const arma::rowvec w = R.row(j);
      if (!(arma::accu(w) > 1e-12)) continue;  // empty component: keep its expert
      arma::vec eta = model.eta().col(j);
      logistic_m_step(model.experts(), xe.mat(), y, w, eta, opt.expert);
      model.eta().col(j) = eta;
    }
    res.iterations++;
    const double ll_prev = ll;
    ll = evaluate(L, ll_obs);
    if (!std::isfinite(ll)) {
      model = previous;
      ll = evaluate(L, ll_obs);
      res.stop_reason = StopReason::non_finite;
      break;
    }
    res.max_decrease = std::max(res.max_decrease, ll_prev - ll);
    res.log_likelihood = ll;
    if (opt.keep_trace) res.trace.push_back(ll);
    const double change = ll - ll_prev;
    res.ll_change = std::abs(change);
    if (opt.tol > 0 && std::abs(change) < opt.tol * std::max(std::abs(ll_prev), 1e-300)) {
      res.stop_reason = StopReason::converged_relative;
      break;
    }
    small_steps = std::abs(change) < opt.abs_tol ? small_steps + 1 : 0;
    if (small_steps >= kPatience) {
      res.stop_reason = StopReason::converged;
      break;
    }
  }
  return res;
}

}  // namespace moerate
