#include "moerate/core/numerics.hpp"

#include <algorithm>
#include <boost/math/tools/roots.hpp>

#include "moerate/core/error.hpp"
#include "moerate/core/rng.hpp"

namespace moerate {

double log_sum_exp(const arma::vec& v) {
  if (v.is_empty()) return -kInf;
  const double m = v.max();
  if (m == -kInf) return -kInf;
  if (m == kInf) return kInf;
  if (std::isnan(m)) return m;
  double s = 0;
  for (double x : v) s += std::exp(x - m);
  return m + std::log(s);
}

double log_sum_exp(double a, double b) {
  if (a == -kInf) return b;
  if (b == -kInf) return a;
  const double m = std::max(a, b);
  return m + std::log1p(std::exp(-std::abs(a - b)));
}

namespace {

/// log_sum_exp_block with K = k when k is a compile-time constant (its short
/// loops unrolled), 0 otherwise.
template <std::size_t KC>
void log_sum_exp_block_k(const double* L, std::size_t k_run, std::size_t B, double* E, double* s, double* lse) {
  const std::size_t k = KC > 0 ? KC : k_run;
  for (std::size_t i = 0; i < B; ++i) {  // maxima first: E may alias L
    const double* c = L + i * k;
    double m = -kInf;
    for (std::size_t j = 0; j < k; ++j) m = std::max(m, c[j]);  // NaNs skipped here, they reach s
    lse[i] = m;
  }
  for (std::size_t i = 0; i < B; ++i) {
    const double m = lse[i];
    const double* c = L + i * k;
    double* e = E + i * k;
    for (std::size_t j = 0; j < k; ++j) e[j] = c[j] - m;  // NaN when m is not finite
  }
  exp_inplace(E, k * B);
  for (std::size_t i = 0; i < B; ++i) {
    const double* e = E + i * k;
    double t = 0;
    for (std::size_t j = 0; j < k; ++j) t += e[j];
    s[i] = t;
  }
  // lse = m + log s for the finite maxima (s in [1, k] there).
  std::vector<double> ls(s, s + B);
  log_inplace(ls.data(), B);
  for (std::size_t i = 0; i < B; ++i)
    if (std::isfinite(lse[i])) lse[i] += ls[i];
}

}  // namespace

void log_sum_exp_block(const double* L, std::size_t k, std::size_t B, double* E, double* s, double* lse) {
  switch (k) {
    case 2: return log_sum_exp_block_k<2>(L, k, B, E, s, lse);
    case 3: return log_sum_exp_block_k<3>(L, k, B, E, s, lse);
    case 4: return log_sum_exp_block_k<4>(L, k, B, E, s, lse);
    default: return log_sum_exp_block_k<0>(L, k, B, E, s, lse);
  }
}

arma::rowvec log_sum_exp_cols(const arma::mat& M) {
  arma::rowvec out(M.n_cols);
  const std::size_t k = M.n_rows, n = M.n_cols;
  if (k == 0) return out.fill(-kInf);
  constexpr std::size_t kBlock = 1024;
  std::vector<double> E(k * std::min(n, kBlock)), s(std::min(n, kBlock));
  for (std::size_t a = 0; a < n; a += kBlock) {
    const std::size_t B = std::min(kBlock, n - a);
    log_sum_exp_block(M.colptr(a), k, B, E.data(), s.data(), out.colptr(a));
  }
  return out;
}

void normalise_log_cols(arma::mat& M) {
  const arma::rowvec l = log_sum_exp_cols(M);
  const std::size_t k = M.n_rows;
  double* m = M.memptr();
  for (std::size_t i = 0; i < M.n_cols; ++i) {  // plain loops: a column view per observation cost more than its k subtractions
    const double li = l[i];
    if (li == -kInf) continue;
    for (std::size_t j = 0; j < k; ++j) m[i * k + j] -= li;
  }
}

arma::rowvec log_normal_pdf(const arma::rowvec& y, const arma::rowvec& mean, double variance) {
  const double c = -0.5 * (kLog2Pi + std::log(variance));
  arma::rowvec r = y - mean;
  return c - 0.5 * (r % r) / variance;
}

Activation parse_activation(const std::string& name) {
  if (name == "sigmoid") return Activation::sigmoid;
  if (name == "tanh") return Activation::tanh;
  if (name == "gelu") return Activation::gelu;
  if (name == "relu") return Activation::relu;
  throw InvalidArgument("activation: unknown name '" + name +
                        "'; expected one of sigmoid, tanh, gelu, relu");
}

std::string activation_name(Activation a) {
  switch (a) {
    case Activation::sigmoid: return "sigmoid";
    case Activation::tanh: return "tanh";
    case Activation::gelu: return "gelu";
    case Activation::relu: return "relu";
  }
  return "?";
}

static double sigmoid(double z) {
  // Stable in both tails.
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}

double activate(Activation a, double z) {
  switch (a) {
    case Activation::sigmoid: return sigmoid(z);
    case Activation::tanh: return std::tanh(z);
    case Activation::gelu: return z * std_normal_cdf(z);
    case Activation::relu: return z > 0 ? z : 0.0;
  }
  return 0;
}

double activate_d1(Activation a, double z) {
  switch (a) {
    case Activation::sigmoid: {
      const double s = sigmoid(z);
      return s * (1 - s);
    }
    case Activation::tanh: {
      const double t = std::tanh(z);
      return 1 - t * t;
    }
    case Activation::gelu: return std_normal_cdf(z) + z * std_normal_pdf(z);
    case Activation::relu: return z > 0 ? 1.0 : 0.0;
  }
  return 0;
}

double activate_d2(Activation a, double z) {
  switch (a) {
    case Activation::sigmoid: {
      const double s = sigmoid(z);
      return s * (1 - s) * (1 - 2 * s);
    }
    case Activation::tanh: {
      const double t = std::tanh(z);
      return -2 * t * (1 - t * t);
    }
    case Activation::gelu: return std_normal_pdf(z) * (2 - z * z);
    case Activation::relu: return 0.0;
  }
  return 0;
}

void activate_all(Activation a, const double* z, std::size_t n, double* phi, double* d1, double* d2) {
  // Chunks of kChunk values with a buffer on the stack: no allocation per call,
  // phi may be null (derivatives only) or alias z.
  constexpr std::size_t kChunk = 256;
  double buf[kChunk];
  for (std::size_t a0 = 0; a0 < n; a0 += kChunk) {
    const std::size_t m = std::min(kChunk, n - a0);
    const double* zc = z + a0;
    double* pc = phi ? phi + a0 : nullptr;
    double* g1 = d1 ? d1 + a0 : nullptr;
    double* g2 = d2 ? d2 + a0 : nullptr;
    switch (a) {
      case Activation::tanh: {
        double* t = pc ? pc : buf;
        if (t != zc) std::copy(zc, zc + m, t);
        tanh_inplace(t, m);
        for (std::size_t i = 0; i < m; ++i) {
          const double g = 1 - t[i] * t[i];
          if (g1) g1[i] = g;
          if (g2) g2[i] = -2 * t[i] * g;
        }
        break;
      }
      case Activation::sigmoid:
        // As the scalar sigmoid: with e = exp(-|z|), 1 / (1 + e) for z >= 0 and e / (1 + e) below.
        for (std::size_t i = 0; i < m; ++i) buf[i] = -std::abs(zc[i]);
        exp_inplace(buf, m);
        for (std::size_t i = 0; i < m; ++i) {
          const double e_i = buf[i];
          const double s = zc[i] >= 0 ? 1.0 / (1.0 + e_i) : e_i / (1.0 + e_i);  // NaN: e_i / (1 + e_i) = NaN
          if (pc) pc[i] = s;
          if (g1) g1[i] = s * (1 - s);
          if (g2) g2[i] = s * (1 - s) * (1 - 2 * s);
        }
        break;
      case Activation::gelu:
      case Activation::relu:
        for (std::size_t i = 0; i < m; ++i) {
          const double v = zc[i];
          if (g1) g1[i] = activate_d1(a, v);
          if (g2) g2[i] = activate_d2(a, v);
          if (pc) pc[i] = activate(a, v);
        }
        break;
    }
  }
}

arma::mat activate(Activation a, const arma::mat& z) {
  arma::mat out(arma::size(z));
  activate_all(a, z.memptr(), z.n_elem, out.memptr());
  return out;
}
arma::mat activate_d1(Activation a, const arma::mat& z) {
  arma::mat out(arma::size(z));
  activate_all(a, z.memptr(), z.n_elem, nullptr, out.memptr());
  return out;
}
arma::mat activate_d2(Activation a, const arma::mat& z) {
  arma::mat out(arma::size(z));
  activate_all(a, z.memptr(), z.n_elem, nullptr, nullptr, out.memptr());
  return out;
}

std::size_t Rng::categorical_log(const arma::vec& log_w) {
  const double l = log_sum_exp(log_w);
  double u = uniform();
  for (std::size_t j = 0; j < log_w.n_elem; ++j) {
    u -= std::exp(log_w[j] - l);
    if (u <= 0) return j;
  }
  // Round-off: the last index with positive weight.
  for (std::size_t j = log_w.n_elem; j-- > 0;)
    if (log_w[j] > -kInf) return j;
  return log_w.n_elem - 1;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) fail("quantile", "sample", "must not be empty", 0);
  if (!(q >= 0 && q <= 1)) fail("quantile", "q", "must be in [0, 1]", q);
  std::sort(v.begin(), v.end());
  const double h = (static_cast<double>(v.size()) - 1) * q;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  if (lo + 1 >= v.size()) return v.back();
  return v[lo] + (h - static_cast<double>(lo)) * (v[lo + 1] - v[lo]);
}

double mixture_quantile(const arma::vec& w, const arma::vec& m, const arma::vec& v, double p) {
  const arma::vec sd = arma::sqrt(v);
  auto cdf = [&](double q) {
    double s = 0;
    for (std::size_t j = 0; j < w.n_elem; ++j) s += w[j] * std_normal_cdf((q - m[j]) / sd[j]);
    return s - p;
  };
  double lo = arma::min(m - 40 * sd), hi = arma::max(m + 40 * sd);
  std::uintmax_t iters = 200;
  auto tol = boost::math::tools::eps_tolerance<double>(50);
  const auto r = boost::math::tools::toms748_solve(cdf, lo, hi, tol, iters);
  return 0.5 * (r.first + r.second);
}

double unit_diagonal_cond_bound(const arma::mat& As) {
  const std::size_t q = As.n_rows;
  double r = 0;
  for (std::size_t i = 0; i < q; ++i) {
    double s = 0;
    for (std::size_t j = 0; j < q; ++j)
      if (j != i) s += std::abs(As(i, j));
    r = std::max(r, s);
  }
  return r < 1 ? (1 + r) / (1 - r) : kInf;
}

}  // namespace moerate
