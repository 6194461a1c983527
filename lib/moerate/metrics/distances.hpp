// moerate/metrics/distances.hpp -- distances between the conditional densities of two models.
//
// models.md section 6, "Other distances", over a design distribution of x:
//   hellinger = E_x h(x),   h(x)^2 = 1/2 int (sqrt p_G(y|x) - sqrt p_G*(y|x))^2 dy
//   tv        = E_x t(x),   t(x)   = 1/2 int |p_G(y|x) - p_G*(y|x)| dy
//   l2        = sqrt( E_x (f_G(x) - f_G*(x))^2 )     (regression functions)
// E_x by Monte Carlo over n_mc draws of moerate::draw_design(design) with
// Rng(seed); each *_se is the Monte Carlo standard error (l2_se by the delta
// method). The integral over y is adaptive Gauss-Kronrod (Boost.Math, 31
// points) between break points at the component means +- 0, 1, 3, 6 sd and
// +- 40 sd: error far below the Monte Carlo error (docs/losses.md).
// Regression model (kind "regression"): p(y|x) = N(f(x), s2) with s2 the
// truth's noise_variance for both models (closed forms); hellinger and tv are
// NaN when that variance is 0.
//
//   auto D = moerate::density_distances(truth, fit, "uniform:0,1", 2000, 1);
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "moerate/model/model.hpp"

namespace moerate {

struct DensityDistances {
  double hellinger, hellinger_se, tv, tv_se, l2, l2_se;
};

DensityDistances density_distances(const GaussianMoE& truth, const GaussianMoE& fit,
                                   const std::string& design, std::size_t n_mc,
                                   std::uint64_t seed);

/// Hellinger distance h and total variation t between two finite Gaussian
/// mixtures in y, given log weights (summing to one in probability space),
/// means and variances; numerical integration as above. Returns {h, t}.
std::pair<double, double> hellinger_tv_mixtures(const arma::vec& log_w1, const arma::vec& m1,
                                                const arma::vec& v1, const arma::vec& log_w2,
                                                const arma::vec& m2, const arma::vec& v2);

}  // namespace moerate
