#include "moerate/estimators/em.hpp"

#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

std::string stop_reason_name(StopReason r) {
  switch (r) {
    case StopReason::converged: return "converged";
    case StopReason::max_iter: return "max_iter";
    case StopReason::non_finite: return "non_finite";
    case StopReason::not_run: return "not_run";
  }
  return "?";
}

void EMOptions::validate() const {
  if (max_iter < 0) fail("EMOptions", "max_iter", "must be >= 0", max_iter);
  if (!(tol >= 0)) fail("EMOptions", "tol", "must be >= 0", tol);
  if (!(variance_floor > 0)) fail("EMOptions", "variance_floor", "must be > 0", variance_floor);
  gate.validate();
  expert.validate();
}

EMResult run_em(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const EMOptions& opt) {
  opt.validate();
  if (model.kind() != ModelKind::gaussian)
    throw InvalidArgument("run_em: EM needs a Gaussian MoE (\"model\": \"gaussian\"); use --estimator lse");
  if (X.n_cols != y.n_elem) throw InvalidArgument("run_em: X and y have different numbers of observations");
  if (X.n_rows != model.dim())
    fail("run_em", "data dimension", "must equal the model dimension " + std::to_string(model.dim()), X.n_rows);
  EMResult res;
  const std::size_t k = model.n_experts();
  const double var_y = y.n_elem > 1 ? arma::var(y) : 1.0;
  res.variance_floor_abs = opt.variance_floor * (var_y > 0 ? var_y : 1.0);

  arma::mat L = model.log_joint(X, y);
  arma::rowvec ll_obs = log_sum_exp_cols(L);
  double ll = arma::accu(ll_obs);
  res.log_likelihood = ll;
  if (opt.keep_trace) res.trace.push_back(ll);
  if (!std::isfinite(ll)) {
    res.stop_reason = StopReason::non_finite;
    return res;
  }
  for (int it = 1; it <= opt.max_iter; ++it) {
    throw_if_cancelled(opt.cancel);
    const GaussianMoE previous = model;
    // E-step (log space).
    L.each_row() -= ll_obs;
    const arma::mat R = arma::exp(L);
    // M-step: gate, experts, variances; each raises Q.
    model.gating().m_step(X, R, opt.gate);
    for (std::size_t j = 0; j < k; ++j) {
      const arma::rowvec w = R.row(j);
      const double wsum = arma::accu(w);
      if (!(wsum > 1e-12)) continue;  // empty component: keep its expert
      arma::vec eta = model.eta().col(j);
      model.experts().m_step(X, y, w, eta, opt.expert);
      model.eta().col(j) = eta;
      const arma::rowvec r = y - model.experts().mean(X, eta);
      const double nu = arma::accu(w % r % r) / wsum;
      model.nu()[j] = std::max(nu, res.variance_floor_abs);
    }
    L = model.log_joint(X, y);
    ll_obs = log_sum_exp_cols(L);
    const double ll_new = arma::accu(ll_obs);
    res.iterations = it;
    if (!std::isfinite(ll_new)) {
      model = previous;  // keep the last finite parameters
      res.stop_reason = StopReason::non_finite;
      return res;
    }
    res.max_decrease = std::max(res.max_decrease, ll - ll_new);
    const double rel = std::abs(ll_new - ll) / std::max(std::abs(ll), 1e-300);
    ll = ll_new;
    res.log_likelihood = ll;
    if (opt.keep_trace) res.trace.push_back(ll);
    if (rel < opt.tol) {
      res.stop_reason = StopReason::converged;
      break;
    }
    if (it == opt.max_iter) res.stop_reason = StopReason::max_iter;
  }
  for (std::size_t j = 0; j < k; ++j)
    if (model.nu()[j] <= res.variance_floor_abs) res.floored_variances++;
  return res;
}

}  // namespace moerate
