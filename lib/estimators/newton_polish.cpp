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

/// The log-likelihood's quadratic model on the free coordinates F:
/// m(d) = g_F'd - d'A d/2 with A = -H_FF, in scaled coordinates e = D d,
/// D = sqrt|diag A| (floored), where A = D Q diag(lam) Q' D. The trust region's
/// radius is then in units of the curvature's own scale, about standard errors.
struct QuadraticModel {
  arma::uvec F;
  arma::mat A;
  arma::vec gF, D, lam, gq;
  arma::mat Q;
  bool ok = false;
  QuadraticModel(const arma::mat& H, const arma::vec& g, const arma::uvec& free) : F(free) {
    A = -H.submat(F, F);
    gF = g.elem(F);
    D = arma::sqrt(arma::abs(A.diag()));
    D = arma::clamp(D, std::max(D.max(), 1e-300) * 1e-8, arma::datum::inf);
    arma::mat S = A.each_col() / D;
    S.each_row() /= D.t();
    S = 0.5 * (S + S.t());
    ok = S.is_finite() && arma::eig_sym(lam, Q, S);
    if (ok) gq = Q.t() * (gF / D);
  }
  /// The step in the flat parameters for a scaled step e (zero off F).
  arma::vec displacement(const arma::vec& e, std::size_t p) const {
    arma::vec d(p, arma::fill::zeros);
    d.elem(F) = e / D;
    return d;
  }
  /// m(d) for a displacement d of the flat parameters (only its F part counts).
  double gain(const arma::vec& d) const {
    const arma::vec dF = d.elem(F);
    return arma::dot(gF, dF) - 0.5 * arma::dot(dF, A * dF);
  }
};

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

// Moré and Sorensen (1983): the Newton step when A is positive definite and the
// step is inside; otherwise e(mu) = (A + mu I)^-1 g with mu > max(0, -lam_min) and
// |e(mu)| = radius, by bisection on the secular equation (|e(mu)| decreases in mu),
// plus a multiple of the lowest eigenvector in the "hard case" (g orthogonal to it).
arma::vec trust_region_step(const arma::vec& lam, const arma::mat& Q, const arma::vec& gq, double radius,
                            bool& newton) {
  const std::size_t p = lam.n_elem;
  const double lmin = lam.min(), lscale = std::max(arma::abs(lam).max(), 1e-300);
  auto coefficients = [&](double mu) {
    arma::vec c(p);
    for (std::size_t i = 0; i < p; ++i) c[i] = gq[i] / (lam[i] + mu);
    return c;
  };
  newton = false;
  if (lmin > 1e-14 * lscale) {
    const arma::vec c = coefficients(0);
    if (arma::norm(c) <= radius) {
      newton = true;
      return Q * c;
    }
  }
  // |e(mu)| decreases from +inf (or the hard case's finite limit) at mu = lo to 0.
  const double lo = std::max(0.0, -lmin);
  const double gnorm = arma::norm(gq);
  double a = lo, b = lo + gnorm / radius + 1e-300;  // |e(b)| <= |g| / (lam_min + b) <= radius
  // Hard case: without g's component along the lowest eigenvectors, |e| stays
  // below the radius as mu falls to lo.
  const double tiny = lo + 1e-12 * lscale;
  arma::vec c = coefficients(tiny);
  bool hard = true;
  for (std::size_t i = 0; i < p; ++i)
    if (lam[i] <= lmin + 1e-10 * lscale && std::abs(gq[i]) > 1e-12 * (gnorm + 1e-300)) hard = false;
  if (hard && lmin <= 0 && arma::norm(c) < radius) {
    for (std::size_t i = 0; i < p; ++i) c[i] = lam[i] <= lmin + 1e-10 * lscale ? 0.0 : gq[i] / (lam[i] - lmin);
    const double rest = radius * radius - arma::dot(c, c);
    c[lam.index_min()] += std::sqrt(std::max(rest, 0.0));
    return Q * c;
  }
  for (int it = 0; it < 200 && b - a > 1e-13 * std::max(b, lscale); ++it) {
    const double mid = 0.5 * (a + b);
    if (mid <= lo) break;
    (arma::norm(coefficients(mid)) > radius ? a : b) = mid;
  }
  return Q * coefficients(b);  // |e(b)| <= radius
}

PolishResult newton_polish(GaussianMoE& model, const arma::mat& X, const arma::rowvec& y, const Box& box, double ll,
                           const PolishOptions& opt) {
  if (model.kind() != ModelKind::gaussian) throw InvalidArgument("newton_polish: needs a Gaussian MoE");
  PolishResult res;
  res.log_likelihood = ll;
  const double ll0 = ll;
  double radius = std::min(opt.initial_radius > 0 ? opt.initial_radius : 1.0, opt.max_radius);
  GaussianMoE trial = model;
  int rejections = 0;
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
    const QuadraticModel full(H, g, F);
    if (!full.ok) break;
    QuadraticModel qm = full;
    bool moved = false, stop = false, crawling = false;
    while (true) {
      bool newton = false;
      arma::vec e = trust_region_step(qm.lam, qm.Q, qm.gq, radius, newton);
      arma::vec delta = qm.displacement(e, theta.n_elem);
      // Coordinates the step would push out of the box go to that bound and
      // stay there; the step is recomputed on the others with the gradient
      // the moved coordinates leave them (an active set, Lin and Moré 1999's
      // idea), so clamping never turns the model's step into a worse one.
      arma::vec fixed(theta.n_elem, arma::fill::zeros);  // displacement of the coordinates on a bound
      for (int round = 0; !box.empty() && round < 8; ++round) {
        std::vector<arma::uword> keep;
        bool hit = false;
        for (arma::uword i : qm.F) {
          if (theta[i] + delta[i] < box.lower[i]) {
            fixed[i] = box.lower[i] - theta[i];
            hit = true;
          } else if (theta[i] + delta[i] > box.upper[i]) {
            fixed[i] = box.upper[i] - theta[i];
            hit = true;
          } else {
            keep.push_back(i);
          }
        }
        if (!hit) break;
        if (keep.empty()) {
          delta = fixed;
          break;
        }
        qm = QuadraticModel(H, g + H * fixed, arma::uvec(keep));  // gradient at theta + fixed, on the rest
        if (!qm.ok) break;
        e = trust_region_step(qm.lam, qm.Q, qm.gq, radius, newton);
        delta = qm.displacement(e, theta.n_elem) + fixed;
      }
      if (!qm.ok || !delta.is_finite()) {
        stop = true;
        break;
      }
      const arma::vec cand = box.empty() ? arma::vec(theta + delta) : box.clamp(theta + delta);
      const arma::vec dc = cand - theta;
      const double predicted = full.gain(dc);
      res.decrement = 2 * predicted;  // g' A^-1 g for a full Newton step
      if (!(res.decrement > opt.decrement_tol)) {
        stop = true;
        break;
      }
      const double lc = log_likelihood_at(trial, cand, X, y);
      res.trials++;
      const double rho = (lc - ll) / predicted;
      const double step = arma::norm(e);
      if (!(rho >= 0.25)) {
        radius = 0.25 * step;
      } else if (rho > 0.75 && !newton) {
        radius = std::min(2 * radius, opt.max_radius);
      }
      if (lc > ll && rho > 1e-4) {
        model.set_flat_params(cand);
        crawling = newton && lc - ll < opt.min_gain;
        ll = lc;
        moved = true;
        break;
      }
      if (++rejections > opt.max_rejections || radius < 1e-12) {
        stop = true;
        break;
      }
      if (qm.F.n_elem != F.n_elem) qm = full;  // a smaller step may stay inside
    }
    if (stop || !moved) break;
    res.steps++;
    if (crawling) break;  // a full Newton step gained less than EM would: back to EM
  }
  res.radius = radius;
  res.log_likelihood = ll;
  res.gain = ll - ll0;
  return res;
}

}  // namespace moerate
