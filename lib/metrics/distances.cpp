#include "moerate/metrics/distances.hpp"

#include <algorithm>
#include <boost/math/quadrature/gauss_kronrod.hpp>
#include <cmath>
#include <limits>
#include <vector>

#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/rng.hpp"

namespace moerate {

namespace {

// Quadrature: 31-point Gauss-Kronrod panels (Boost.Math, used non-adaptively)
// refined globally, QUADPACK-QAG style: the panel with the largest error
// estimate is halved until the summed error is below
// max(kRelTol * |integral|, kAbsTol) or kMaxPanels panels exist. A global (not
// per-panel) criterion matters: tail panels whose integrand is round-off noise
// would otherwise be refined forever.
constexpr double kRelTol = 1e-10;
constexpr double kAbsTol = 1e-20;  // integrals of squared differences: h^2 below 1e-20 is "0"
constexpr std::size_t kMaxPanels = 2000;
// Break points at the component means +- these multiples of the sd; the outer
// limits +-40 sd leave a mass below exp(-800) outside.
constexpr double kBreaks[] = {0.0, 1.0, 3.0, 6.0};
constexpr double kOuter = 40.0;

template <class F>
double integrate_panels(const F& f, const std::vector<double>& breaks) {
  using GK = boost::math::quadrature::gauss_kronrod<double, 31>;
  struct Panel {
    double a, b, value, error;
    bool operator<(const Panel& o) const { return error < o.error; }
  };
  auto panel = [&](double a, double b) {
    double err = 0;
    const double v = GK::integrate(f, a, b, 0, 0.0, &err);  // max_depth 0: one panel
    return Panel{a, b, v, std::abs(err) * 0.5 * (b - a)};    // Boost's error is on [-1, 1]
  };
  std::vector<Panel> heap;
  for (std::size_t s = 0; s + 1 < breaks.size(); ++s)
    if (breaks[s + 1] > breaks[s]) heap.push_back(panel(breaks[s], breaks[s + 1]));
  std::make_heap(heap.begin(), heap.end());
  auto totals = [&](double& value, double& error) {
    value = 0, error = 0;
    for (const auto& p : heap) value += p.value, error += p.error;
  };
  double value = 0, error = 0;
  totals(value, error);
  while (error > std::max(kRelTol * std::abs(value), kAbsTol) && heap.size() < kMaxPanels) {
    std::pop_heap(heap.begin(), heap.end());
    const Panel worst = heap.back();
    heap.pop_back();
    const double mid = 0.5 * (worst.a + worst.b);
    if (!(mid > worst.a && mid < worst.b)) {  // cannot split further
      heap.push_back(Panel{worst.a, worst.b, worst.value, 0.0});
      std::push_heap(heap.begin(), heap.end());
      totals(value, error);
      continue;
    }
    const Panel left = panel(worst.a, mid), right = panel(mid, worst.b);
    heap.push_back(left);
    std::push_heap(heap.begin(), heap.end());
    heap.push_back(right);
    std::push_heap(heap.begin(), heap.end());
    value += left.value + right.value - worst.value;
    error += left.error + right.error - worst.error;
  }
  totals(value, error);
  return value;
}

struct Mixture {
  std::vector<double> log_w, mean, var;
  // Streaming log-sum-exp (no allocation: called millions of times).
  double log_density(double y) const {
    double mx = -kInf, s = 0;
    for (std::size_t j = 0; j < log_w.size(); ++j) {
      const double t = log_w[j] + log_normal_pdf(y, mean[j], var[j]);
      if (t == -kInf) continue;
      if (t > mx) {
        s = s * std::exp(mx - t) + 1.0;
        mx = t;
      } else {
        s += std::exp(t - mx);
      }
    }
    return mx == -kInf ? -kInf : mx + std::log(s);
  }
};

Mixture make_mixture(const arma::vec& log_w, const arma::vec& m, const arma::vec& v,
                     const char* which) {
  if (log_w.n_elem != m.n_elem || m.n_elem != v.n_elem)
    fail("hellinger_tv_mixtures", std::string("sizes of mixture ") + which, "must agree",
         log_w.n_elem);
  Mixture out;
  for (std::size_t j = 0; j < log_w.n_elem; ++j) {
    if (log_w[j] == -kInf) continue;  // a component with weight 0
    check_finite("hellinger_tv_mixtures", std::string("mean of mixture ") + which, m[j]);
    check_positive("hellinger_tv_mixtures", std::string("variance of mixture ") + which, v[j]);
    out.log_w.push_back(log_w[j]);
    out.mean.push_back(m[j]);
    out.var.push_back(v[j]);
  }
  if (out.log_w.empty())
    fail("hellinger_tv_mixtures", std::string("mixture ") + which, "needs a component of positive weight",
         log_w.n_elem);
  return out;
}

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / double(v.size());
}

double se_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1) / double(v.size()));
}

}  // namespace

std::pair<double, double> hellinger_tv_mixtures(const arma::vec& log_w1, const arma::vec& m1,
                                                const arma::vec& v1, const arma::vec& log_w2,
                                                const arma::vec& m2, const arma::vec& v2) {
  const Mixture p = make_mixture(log_w1, m1, v1, "1"), q = make_mixture(log_w2, m2, v2, "2");
  std::vector<double> breaks;
  double lo = kInf, hi = -kInf;
  for (const Mixture* mix : {&p, &q})
    for (std::size_t j = 0; j < mix->mean.size(); ++j) {
      const double sd = std::sqrt(mix->var[j]);
      lo = std::min(lo, mix->mean[j] - kOuter * sd);
      hi = std::max(hi, mix->mean[j] + kOuter * sd);
      for (double c : kBreaks) {
        breaks.push_back(mix->mean[j] - c * sd);
        breaks.push_back(mix->mean[j] + c * sd);
      }
    }
  breaks.push_back(lo);
  breaks.push_back(hi);
  std::sort(breaks.begin(), breaks.end());
  breaks.erase(std::unique(breaks.begin(), breaks.end()), breaks.end());

  auto sq_diff = [&](double y) {
    const double d = std::exp(0.5 * p.log_density(y)) - std::exp(0.5 * q.log_density(y));
    return d * d;
  };
  auto abs_diff = [&](double y) {
    return std::abs(std::exp(p.log_density(y)) - std::exp(q.log_density(y)));
  };
  const double h2 = integrate_panels(sq_diff, breaks);
  const double tv = integrate_panels(abs_diff, breaks);
  const double h = std::sqrt(std::clamp(0.5 * h2, 0.0, 1.0));
  const double t = std::clamp(0.5 * tv, 0.0, 1.0);
  return {h, t};
}

DensityDistances density_distances(const GaussianMoE& truth, const GaussianMoE& fit,
                                   const std::string& design, std::size_t n_mc,
                                   std::uint64_t seed) {
  const std::string fn = "density_distances";
  if (truth.dim() != fit.dim())
    fail(fn, "fit dimension", "must equal the truth's dimension " + std::to_string(truth.dim()),
         fit.dim());
  if (truth.covariates() != fit.covariates())
    throw InvalidArgument(fn + ": truth and fit must read the same covariates; the truth reads (" +
                          truth.covariates().describe() + "), the fit (" + fit.covariates().describe() + ")");
  if (truth.kind() != fit.kind())
    throw InvalidArgument(fn + ": truth and fit must be the same model kind (gaussian or regression)");
  if (n_mc < 2) fail(fn, "number of Monte Carlo draws", "must be >= 2", n_mc);

  Rng rng(seed);
  const arma::mat X = draw_design(design, truth.dim(), n_mc, rng);
  DensityDistances out{};

  // L2 between regression functions; se by the delta method on sqrt(mean).
  const arma::rowvec diff = fit.regression_function(X) - truth.regression_function(X);
  std::vector<double> sq(n_mc);
  for (std::size_t i = 0; i < n_mc; ++i) sq[i] = diff[i] * diff[i];
  const double msq = mean_of(sq);
  out.l2 = std::sqrt(msq);
  out.l2_se = msq > 0 ? se_of(sq) / (2 * out.l2) : 0.0;

  std::vector<double> h(n_mc), t(n_mc);
  if (truth.kind() == ModelKind::gaussian) {
    const arma::mat lw_t = truth.log_weights(X), lw_f = fit.log_weights(X);
    const arma::mat mu_t = truth.expert_means(X), mu_f = fit.expert_means(X);
    for (std::size_t i = 0; i < n_mc; ++i) {
      const auto ht = hellinger_tv_mixtures(lw_f.col(i), mu_f.col(i), fit.nu(), lw_t.col(i),
                                            mu_t.col(i), truth.nu());
      h[i] = ht.first;
      t[i] = ht.second;
    }
  } else {
    const double s2 = truth.noise_variance();
    if (!(s2 > 0)) {
      out.hellinger = out.hellinger_se = out.tv = out.tv_se = kNaN;
      return out;
    }
    // N(f, s2) against N(f*, s2): h^2 = 1 - exp(-D^2 / (8 s2)), t = erf(|D| / (2 sqrt(2 s2))).
    for (std::size_t i = 0; i < n_mc; ++i) {
      h[i] = std::sqrt(-std::expm1(-diff[i] * diff[i] / (8 * s2)));
      t[i] = std::erf(std::abs(diff[i]) / (2 * std::sqrt(2 * s2)));
    }
  }
  out.hellinger = mean_of(h);
  out.hellinger_se = se_of(h);
  out.tv = mean_of(t);
  out.tv_se = se_of(t);
  return out;
}

}  // namespace moerate
