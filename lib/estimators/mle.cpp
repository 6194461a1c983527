#include "moerate/estimators/mle.hpp"

#include <algorithm>

#include <lbfgs.h>

#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

void LbfgsOptions::validate() const {
  if (max_iter < 0) fail("LbfgsOptions", "max_iter", "must be >= 0", max_iter);
  if (!(tol >= 0)) fail("LbfgsOptions", "tol", "must be >= 0", tol);
  if (!(grad_tol >= 0)) fail("LbfgsOptions", "grad_tol", "must be >= 0", grad_tol);
  if (!(stall_grad_tol >= 0)) fail("LbfgsOptions", "stall_grad_tol", "must be >= 0", stall_grad_tol);
  if (memory < 1) fail("LbfgsOptions", "memory", "must be >= 1", memory);
  if (max_linesearch < 1) fail("LbfgsOptions", "max_linesearch", "must be >= 1", max_linesearch);
  if (max_restarts < 0) fail("LbfgsOptions", "max_restarts", "must be >= 0", max_restarts);
}

std::string lbfgs_status_message(int status) {
  switch (status) {
    case LBFGS_SUCCESS: return "gradient test satisfied";
    case LBFGS_STOP: return "stopped by the objective-change test";
    case LBFGS_ALREADY_MINIMIZED: return "the start is already a minimiser (zero gradient)";
    case LBFGSERR_ROUNDING_ERROR: return "line search: rounding error (no step satisfies the Wolfe conditions)";
    case LBFGSERR_MINIMUMSTEP: return "line search: step below the minimum";
    case LBFGSERR_MAXIMUMSTEP: return "line search: step above the maximum";
    case LBFGSERR_MAXIMUMLINESEARCH: return "line search: evaluation limit reached";
    case LBFGSERR_MAXIMUMITERATION: return "iteration cap reached";
    case LBFGSERR_WIDTHTOOSMALL: return "line search: interval too small";
    case LBFGSERR_INVALIDPARAMETERS: return "line search: invalid parameters";
    case LBFGSERR_INCREASEGRADIENT: return "line search: not a descent direction";
    default: return "liblbfgs status " + std::to_string(status);
  }
}

namespace {

struct DriverContext {
  const std::function<double(const arma::vec&, arma::vec&)>* f;
  double tol;
  int iterations = 0;
  int evaluations = 0;
  bool have_prev = false;
  double f_prev = 0;
  bool small_change = false;
  const CancelHook* cancel = nullptr;
  bool cancelled = false;
};

lbfgsfloatval_t driver_evaluate(void* instance, const lbfgsfloatval_t* x, lbfgsfloatval_t* g, const int n,
                                const lbfgsfloatval_t /*step*/) {
  auto* c = static_cast<DriverContext*>(instance);
  c->evaluations++;
  const arma::vec xv(const_cast<double*>(x), n, /*copy_aux_mem=*/true);
  arma::vec gv(n, arma::fill::zeros);
  double v = kInf;
  try {
    v = (*c->f)(xv, gv);
  } catch (const InvalidArgument&) {
    v = kInf;  // outside the parameter space
  }
  if (!std::isfinite(v) || gv.n_elem != static_cast<std::size_t>(n) || !gv.is_finite()) {
    for (int i = 0; i < n; ++i) g[i] = 0;
    return kInf;  // the line search backs off
  }
  for (int i = 0; i < n; ++i) g[i] = gv[i];
  return v;
}

int driver_progress(void* instance, const lbfgsfloatval_t*, const lbfgsfloatval_t*, const lbfgsfloatval_t fx,
                    const lbfgsfloatval_t, const lbfgsfloatval_t, const lbfgsfloatval_t, int, int, int) {
  auto* c = static_cast<DriverContext*>(instance);
  c->iterations++;
  if (c->cancel && *c->cancel && (*c->cancel)()) {
    c->cancelled = true;
    return 1;  // stop; minimise_lbfgs throws Cancelled (never through liblbfgs's C frames)
  }
  if (c->have_prev) {
    const double rel = std::abs(c->f_prev - fx) / std::max(std::abs(fx), 1e-300);
    if (rel < c->tol) {
      c->small_change = true;
      c->f_prev = fx;
      return 1;  // cancel: our own relative-change test (the EM criterion)
    }
  }
  c->have_prev = true;
  c->f_prev = fx;
  return 0;
}

bool is_line_search_failure(int ret) {
  return ret == LBFGSERR_ROUNDING_ERROR || ret == LBFGSERR_MINIMUMSTEP || ret == LBFGSERR_MAXIMUMSTEP ||
         ret == LBFGSERR_MAXIMUMLINESEARCH || ret == LBFGSERR_WIDTHTOOSMALL ||
         ret == LBFGSERR_INVALIDPARAMETERS || ret == LBFGSERR_INCREASEGRADIENT;
}

}  // namespace

LbfgsOutcome minimise_lbfgs(const std::function<double(const arma::vec&, arma::vec&)>& f, arma::vec& x,
                            const LbfgsOptions& opt) {
  opt.validate();
  LbfgsOutcome out;
  const int n = static_cast<int>(x.n_elem);
  arma::vec g(x.n_elem, arma::fill::zeros);
  double fx = kInf;
  try {
    fx = f(x, g);
  } catch (const InvalidArgument&) {
    fx = kInf;
  }
  out.evaluations = 1;
  out.value = fx;
  if (!std::isfinite(fx) || !g.is_finite()) {
    out.stop_reason = StopReason::non_finite;
    out.message = "the objective or its gradient is not finite at the start";
    return out;
  }
  auto rel_grad = [&](const arma::vec& gg, const arma::vec& xx) {
    return arma::norm(gg) / std::max(1.0, arma::norm(xx));
  };
  out.grad_norm = rel_grad(g, x);
  if (opt.max_iter == 0 || n == 0) {
    out.stop_reason = n == 0 ? StopReason::converged : StopReason::not_run;
    return out;
  }
  DriverContext ctx{&f, opt.tol};
  ctx.cancel = &opt.cancel;
  ctx.have_prev = true;
  ctx.f_prev = fx;
  lbfgs_parameter_t p;
  lbfgs_parameter_init(&p);
  p.m = opt.memory;
  p.epsilon = opt.grad_tol;
  p.past = 0;  // liblbfgs's delta test assumes f > 0; we test |df|/|f| ourselves
  p.linesearch = LBFGS_LINESEARCH_BACKTRACKING_WOLFE;
  p.max_linesearch = opt.max_linesearch;
  lbfgsfloatval_t* buf = lbfgs_malloc(n);
  if (!buf) throw std::bad_alloc();
  for (int i = 0; i < n; ++i) buf[i] = x[i];
  int restarts = 0;
  int ret = 0;
  for (;;) {
    const int remaining = opt.max_iter - ctx.iterations;
    if (remaining <= 0) {
      out.stop_reason = StopReason::max_iter;
      break;
    }
    p.max_iterations = remaining;
    lbfgsfloatval_t fbest = 0;
    ret = lbfgs(n, buf, &fbest, driver_evaluate, driver_progress, &ctx, &p);
    if (ctx.cancelled) {
      lbfgs_free(buf);
      throw Cancelled();
    }
    if (ctx.small_change || ret == LBFGS_SUCCESS || ret == LBFGS_ALREADY_MINIMIZED) {
      out.stop_reason = StopReason::converged;
      break;
    }
    if (ret == LBFGSERR_MAXIMUMITERATION) {
      out.stop_reason = StopReason::max_iter;
      break;
    }
    if (is_line_search_failure(ret)) {
      if (restarts < opt.max_restarts) {
        ++restarts;  // fresh memory from the current (last accepted) point
        continue;
      }
      arma::vec xx(buf, n, true), gg(n);
      const double v = f(xx, gg);
      ++ctx.evaluations;
      out.stop_reason = std::isfinite(v) && rel_grad(gg, xx) <= opt.stall_grad_tol ? StopReason::converged
                                                                                    : StopReason::max_iter;
      break;
    }
    lbfgs_free(buf);
    throw InvalidArgument("minimise_lbfgs: " + lbfgs_status_message(ret));
  }
  x = arma::vec(buf, n, true);
  lbfgs_free(buf);
  out.status = ret;
  out.message = lbfgs_status_message(ctx.small_change ? LBFGS_STOP : ret);
  if (restarts > 0) out.message += " (after " + std::to_string(restarts) + " restart(s))";
  out.iterations = ctx.iterations;
  out.evaluations += ctx.evaluations;
  out.value = f(x, g);
  out.grad_norm = rel_grad(g, x);
  return out;
}

double log_likelihood_gradient(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                               arma::vec& grad) {
  if (model.kind() != ModelKind::gaussian)
    throw InvalidArgument("log_likelihood_gradient: needs a Gaussian MoE (\"model\": \"gaussian\")");
  const std::size_t k = model.n_experts();
  arma::mat L = model.log_joint(X, y);
  const arma::rowvec ll_obs = log_sum_exp_cols(L);
  const double ll = arma::accu(ll_obs);
  L.each_row() -= ll_obs;
  const arma::mat R = exp_entries(std::move(L));  // posterior responsibilities
  const arma::mat H = model.expert_means(X);
  const Covariates::Rows xg = model.gate_x(X), xe = model.expert_x(X);  // X itself when shared
  const arma::vec g_gate = model.gating().log_weights_vjp(xg.mat(), R);
  const std::size_t q = model.experts().n_params();
  arma::vec g_eta(q * k), g_lognu(k);
  for (std::size_t j = 0; j < k; ++j) {
    const double nu = model.nu()[j];
    const arma::rowvec r = y - H.row(j);
    const arma::rowvec wr = R.row(j) % r / nu;
    g_eta.subvec(j * q, j * q + q - 1) = model.experts().jacobian(xe.mat(), model.eta().col(j)) * wr.t();
    g_lognu[j] = 0.5 * arma::accu(R.row(j) % (r % r / nu - 1.0));
  }
  grad = arma::join_cols(g_gate, g_eta, g_lognu);
  return ll;
}

void LbfgsRunInfo::take(const LbfgsOutcome& o) {
  stop_reason = o.stop_reason;
  iterations = o.iterations;
  evaluations = o.evaluations;
  grad_norm = o.grad_norm;
  message = o.message;
}

namespace {

/// The bijection between unconstrained u and theta in a box (see run_mle).
struct BoxMap {
  Box box;
  arma::vec to_theta(const arma::vec& u, arma::vec& dtheta_du) const {
    arma::vec th = u;
    dtheta_du.ones(u.n_elem);
    if (box.empty()) return th;
    for (std::size_t i = 0; i < u.n_elem; ++i) {
      const double lo = box.lower[i], hi = box.upper[i];
      if (std::isfinite(lo) && std::isfinite(hi)) {
        const double s = 1 / (1 + std::exp(-u[i]));
        th[i] = lo + (hi - lo) * s;
        dtheta_du[i] = (hi - lo) * s * (1 - s);
      } else if (std::isfinite(lo)) {
        th[i] = lo + std::exp(u[i]);
        dtheta_du[i] = std::exp(u[i]);
      } else if (std::isfinite(hi)) {
        th[i] = hi - std::exp(u[i]);
        dtheta_du[i] = -std::exp(u[i]);
      }
    }
    return th;
  }
  arma::vec to_u(const arma::vec& theta) const {
    arma::vec u = theta;
    if (box.empty()) return u;
    for (std::size_t i = 0; i < u.n_elem; ++i) {
      const double lo = box.lower[i], hi = box.upper[i];
      if (std::isfinite(lo) && std::isfinite(hi)) {
        const double m = 1e-9 * (hi - lo);
        const double p = (std::clamp(theta[i], lo + m, hi - m) - lo) / (hi - lo);
        u[i] = std::log(p / (1 - p));
      } else if (std::isfinite(lo)) {
        u[i] = std::log(std::max(theta[i] - lo, 1e-9 * std::max(1.0, std::abs(lo))));
      } else if (std::isfinite(hi)) {
        u[i] = std::log(std::max(hi - theta[i], 1e-9 * std::max(1.0, std::abs(hi))));
      }
    }
    return u;
  }
};

}  // namespace

MleResult run_mle(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const MleOptions& opt,
                  const ParameterBounds& bounds) {
  opt.validate();
  bounds.validate();
  if (model.kind() != ModelKind::gaussian)
    throw InvalidArgument("run_mle: the direct MLE needs a Gaussian MoE (\"model\": \"gaussian\"); use --estimator lse");
  if (X.n_cols != y.n_elem) throw InvalidArgument("run_mle: X and y have different numbers of observations");
  if (X.n_rows != model.dim())
    fail("run_mle", "data dimension", "must equal the model dimension " + std::to_string(model.dim()), X.n_rows);
  const double n = static_cast<double>(std::max<std::size_t>(X.n_cols, 1));
  GaussianMoE work = model;
  const BoxMap map{bounds.any() ? bounds.box(model) : Box{}};
  arma::vec jac;
  auto objective = [&](const arma::vec& u, arma::vec& g) {
    work.set_flat_params(map.to_theta(u, jac));
    const double ll = log_likelihood_gradient(work, X, y, g);
    g %= jac;
    g *= -1.0 / n;
    return std::isfinite(ll) ? -ll / n : kInf;
  };
  MleResult res;
  res.log_likelihood_initial = model.log_likelihood(X, y);
  arma::vec u = map.to_u(model.flat_params());
  const LbfgsOutcome o = minimise_lbfgs(objective, u, opt);
  if (o.stop_reason != StopReason::non_finite) model.set_flat_params(map.to_theta(u, jac));
  res.take(o);
  res.log_likelihood = model.log_likelihood(X, y);
  return res;
}

MOERATE_REGISTER_ESTIMATOR("mle", "direct maximum likelihood by L-BFGS with analytic gradients (max_iter, tol as for EM)",
                           [](GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, const FitOptions& opt) {
                             MleOptions o;
                             o.max_iter = opt.em.max_iter;
                             o.tol = opt.em.tol;
                             o.cancel = opt.em.cancel;
                             const MleResult r = run_mle(m, X, y, o, opt.em.bounds);
                             EstimatorRun e = quasi_newton_run(r.log_likelihood, r.iterations, r.stop_reason);
                             e.em.trace.push_back(r.log_likelihood_initial);
                             e.em.trace.push_back(r.log_likelihood);
                             return e;
                           });

}  // namespace moerate
