#include "moerate/estimators/lse.hpp"

#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

GaussianMoE as_regression_model(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  if (m.kind() == ModelKind::regression) return m;
  GaussianMoE r(m.gating().clone(), m.expert_family_ptr(), m.eta(), m.nu(), ModelKind::regression, m.covariates());
  const double rss = arma::accu(arma::square(y - r.regression_function(X)));
  r.set_noise_variance(std::isfinite(rss) && X.n_cols > 0 ? rss / static_cast<double>(X.n_cols) : 0.0);
  return r;
}

double rss_gradient(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, arma::vec& grad) {
  if (model.kind() != ModelKind::regression)
    throw InvalidArgument("rss_gradient: needs a regression model (\"model\": \"regression\")");
  const std::size_t k = model.n_experts();
  const arma::mat P = exp_entries(model.log_weights(X));  // k x n
  const arma::mat H = model.expert_means(X);           // k x n
  const arma::rowvec f = arma::sum(P % H, 0);
  const arma::rowvec r = y - f;
  const double rss = arma::dot(r, r);
  arma::mat C = P % H;
  C.each_row() %= -2.0 * r;
  const Covariates::Rows xg = model.gate_x(X), xe = model.expert_x(X);  // X itself when shared
  const arma::vec g_gate = model.gating().log_weights_vjp(xg.mat(), C);
  const std::size_t q = model.experts().n_params();
  arma::vec g_eta(q * k);
  for (std::size_t j = 0; j < k; ++j) {
    const arma::rowvec wr = -2.0 * r % P.row(j);
    g_eta.subvec(j * q, j * q + q - 1) = model.experts().jacobian(xe.mat(), model.eta().col(j)) * wr.t();
  }
  grad = arma::join_cols(g_gate, g_eta);
  return rss;
}

LseResult run_lse(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const LseOptions& opt) {
  opt.validate();
  if (X.n_cols != y.n_elem) throw InvalidArgument("run_lse: X and y have different numbers of observations");
  if (X.n_rows != model.dim())
    fail("run_lse", "data dimension", "must equal the model dimension " + std::to_string(model.dim()), X.n_rows);
  if (model.kind() != ModelKind::regression) model = as_regression_model(model, X, y);
  const double n = static_cast<double>(std::max<std::size_t>(X.n_cols, 1));
  GaussianMoE work = model;
  auto objective = [&](const arma::vec& theta, arma::vec& g) {
    work.set_flat_params(theta);
    const double rss = rss_gradient(work, X, y, g);
    g /= n;
    return std::isfinite(rss) ? rss / n : kInf;
  };
  LseResult res;
  res.rss_initial = arma::accu(arma::square(y - model.regression_function(X)));
  arma::vec theta = model.flat_params();
  const LbfgsOutcome o = minimise_lbfgs(objective, theta, opt);
  if (o.stop_reason != StopReason::non_finite) model.set_flat_params(theta);
  res.take(o);
  res.rss = arma::accu(arma::square(y - model.regression_function(X)));
  if (std::isfinite(res.rss)) model.set_noise_variance(res.rss / n);
  return res;
}

MOERATE_REGISTER_ESTIMATOR("lse", "least squares for the regression model Y = f_G(X) + noise by L-BFGS (objective -RSS)",
                           [](GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, const FitOptions& opt) {
                             LseOptions o;
                             o.max_iter = opt.em.max_iter;
                             o.tol = opt.em.tol;
                             o.cancel = opt.em.cancel;
                             const LseResult r = run_lse(m, X, y, o);
                             return quasi_newton_run(std::isfinite(r.rss) ? -r.rss : -kInf, r.iterations,
                                                     r.stop_reason);
                           });

}  // namespace moerate
