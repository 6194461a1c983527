#include "moerate/estimators/newton_polish.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

#include "moerate/core/error.hpp"
#include "moerate/estimators/inference.hpp"

namespace moerate {

namespace {

/// Coordinates Newton may move: not on a bound with the score pointing out.
arma::uvec free_coordinates(const arma::vec& theta, const arma::vec& g, const Box& box) {
  std::vector<arma::uword> f;
  for (std::size_t i = 0; i < theta.n_elem; ++i) {
    if (!box.empty()) {
      const double tl = 1e-8 * std::max(1.0, std::abs(box.lower[i]));
      const double tu = 1e-8 * std::max(1.0, std::abs(box.upper[i]));
      if (std::isfinite(box.upper[i]) && theta[i] >= box.upper[i] - tu && g[i] >= 0) continue;
      if (std::isfinite(box.lower[i]) && theta[i] <= box.lower[i] + tl && g[i] <= 0) continue;
    }
    f.push_back(i);
  }
  return arma::uvec(f);
}

/// delta solving (A + mu I) delta = g with the smallest mu >= 0 tried that
/// makes the matrix positive definite; empty when none does.
arma::vec damped_newton_direction(const arma::mat& A, const arma::vec& g) {
  const double scale = std::max(arma::abs(A.diag()).max(), 1e-300);
  arma::mat C;
  double mu = 0;
  for (int attempt = 0; attempt < 40; ++attempt) {
    arma::mat M = A;
    M.diag() += mu;
    if (M.is_finite() && arma::chol(C, M, "lower")) {
      const arma::vec z = arma::solve(arma::trimatl(C), g);
      return arma::solve(arma::trimatu(C.t()), z);
    }
    mu = mu == 0 ? 1e-10 * scale : 10 * mu;
  }
  return {};
}

double log_likelihood_at(GaussianMoE& trial, const arma::vec& theta, const arma::mat& X, const arma::rowvec& y) {
  try {
    trial.set_flat_params(theta);
  } catch (const InvalidArgument&) {
    return -arma::datum::inf;
  }
  const double l = trial.log_likelihood(X, y);
  return std::isnan(l) ? -arma::datum::inf : l;
}

}  // namespace

PolishResult newton_polish(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const Box& box, double ll,
                           const PolishOptions& opt) {
  if (model.kind() != ModelKind::gaussian) throw InvalidArgument("newton_polish: needs a Gaussian MoE");
  PolishResult res;
  res.log_likelihood = ll;
  const double ll0 = ll;
  GaussianMoE trial = model;
  for (int s = 0; s < opt.max_steps; ++s) {
    const arma::vec theta = model.flat_params();
    arma::vec g;
    arma::mat H;
    try {
      ScoreHessian sh = loglik_score_hessian(model, X, y);  // H empty without an analytic gate Hessian
      g = std::move(sh.g);
      H = std::move(sh.H);
      res.score_evaluations += 1;
      if (H.is_empty()) {
        H = score_hessian_forward(model, X, y, g, opt.rel_step);
        res.score_evaluations += int(theta.n_elem);
      }
    } catch (const InvalidArgument&) {
      break;  // a finite-difference point outside a family's domain
    }
    if (!g.is_finite() || !H.is_finite()) break;
    const arma::uvec F = free_coordinates(theta, g, box);
    if (F.is_empty()) break;
    const arma::vec gF = g.elem(F);
    const arma::vec dF = damped_newton_direction(-H.submat(F, F), gF);
    if (dF.is_empty() || !dF.is_finite()) break;
    res.decrement = arma::dot(gF, dF);
    if (!(res.decrement > opt.decrement_tol)) break;
    arma::vec delta(theta.n_elem, arma::fill::zeros);
    delta.elem(F) = dF;
    bool kept = false;
    double t = 1;
    for (int h = 0; h <= 30; ++h, t *= 0.5) {
      const arma::vec cand = box.empty() ? arma::vec(theta + t * delta) : box.clamp(theta + t * delta);
      const double lc = log_likelihood_at(trial, cand, X, y);
      if (lc >= ll) {
        kept = lc > ll;
        if (kept) {
          model.set_flat_params(cand);
          ll = lc;
        }
        break;
      }
    }
    if (!kept) break;
    res.steps++;
  }
  res.log_likelihood = ll;
  res.gain = ll - ll0;
  return res;
}

}  // namespace moerate
