// moerate/core/numerics.hpp -- log-space kernels used everywhere.
//
//   log_sum_exp(v)       = log sum_i exp(v_i), shifted by the max; -inf for an
//                          empty or all -inf input (never NaN), +inf if any +inf.
//   log_sum_exp_cols(M)  = row vector of log_sum_exp over each column of M
//                          (M is k x n: experts by observations).
//   log_normal_pdf(y, m, nu) = -0.5 (log(2 pi nu) + (y - m)^2 / nu), nu a VARIANCE.
//   Activations phi and their first two derivatives (gelu is exact: z Phi(z)).
//
//   arma::mat L = ...;                       // k x n log joint densities
//   arma::rowvec ll = log_sum_exp_cols(L);   // per-observation log-likelihood
#pragma once

#include <armadillo>
#include <vector>
#include <cmath>
#include <limits>
#include <string>

namespace moerate {

/// Columns a..b-1 of M as a read-only matrix, without a copy (a block of
/// observations handed to code that takes a matrix).
inline const arma::mat column_view(const arma::mat& M, std::size_t a, std::size_t b) {
  return arma::mat(const_cast<double*>(M.colptr(a)), M.n_rows, b - a, false, true);
}

/// Entries a..b-1 of a row vector, read-only, without a copy.
inline const arma::rowvec row_view(const arma::rowvec& v, std::size_t a, std::size_t b) {
  return arma::rowvec(const_cast<double*>(v.memptr() + a), b - a, false, true);
}

constexpr double kLog2Pi = 1.8378770664093454835606594728112;
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

/// Largest covariate dimension d for which per-observation affine forms
/// (b + a^T x: gate scores, linear expert means) are plain loops over the
/// observations; above it a BLAS product over the block pays for its call.
inline constexpr std::size_t kLoopAffineMaxD = 16;

/// exp and log of n contiguous doubles in place, vectorised (SLEEF, at most
/// 1.0 ulp from the exact value; core/vmath.cpp). IEEE special values as
/// std::exp and std::log: exp(-inf) = 0, log(0) = -inf, NaN stays NaN.
void exp_inplace(double* x, std::size_t n);
void log_inplace(double* x, std::size_t n);
/// exp of every entry of M (exp_inplace: vectorised, at most 1.0 ulp).
inline arma::mat exp_entries(arma::mat M) {
  exp_inplace(M.memptr(), M.n_elem);
  return M;
}
/// tanh in place, vectorised (SLEEF u35, at most 3.5 ulp, 2.54 measured; tanh(+-inf) = +-1).
void tanh_inplace(double* x, std::size_t n);
/// The instruction sets of the vectorised functions: the widest the CPU has is
/// used; all give the same bits (tested).
enum class VmathIsa { sse2, avx2, avx512f };
VmathIsa vmath_isa();
bool vmath_supported(VmathIsa isa);
const char* vmath_isa_name(VmathIsa isa);
/// The same functions on a given (supported) instruction set: for tests and benchmarks.
void exp_inplace_with(VmathIsa isa, double* x, std::size_t n);
void log_inplace_with(VmathIsa isa, double* x, std::size_t n);
void tanh_inplace_with(VmathIsa isa, double* x, std::size_t n);

/// Column-wise log-sum-exp of the k x B column-major array L (vectorised):
/// E (k x B) = exp(L - m) with m the column's maximum, s = sum_j E_j and
/// lse = m + log s (NaN if the column has a NaN). A column whose maximum is
/// not finite (all -inf, or a +inf) gets lse = m and unspecified E and s.
/// E may alias L.
void log_sum_exp_block(const double* L, std::size_t k, std::size_t B, double* E, double* s, double* lse);

double log_sum_exp(const arma::vec& v);
double log_sum_exp(double a, double b);
arma::rowvec log_sum_exp_cols(const arma::mat& M);

/// Subtract each column's log_sum_exp (normalise log weights per observation).
/// A column that is all -inf stays all -inf.
void normalise_log_cols(arma::mat& M);

inline double log_normal_pdf(double y, double mean, double variance) {
  const double r = y - mean;
  return -0.5 * (kLog2Pi + std::log(variance) + r * r / variance);
}
/// Element-wise log N(y; mean, variance) for a row of means.
arma::rowvec log_normal_pdf(const arma::rowvec& y, const arma::rowvec& mean, double variance);

/// Standard normal CDF Phi and density phi (via erfc: accurate in the tails).
inline double std_normal_cdf(double z) { return 0.5 * std::erfc(-z / std::sqrt(2.0)); }
inline double std_normal_pdf(double z) { return std::exp(-0.5 * z * z - 0.5 * kLog2Pi); }

enum class Activation { sigmoid, tanh, gelu, relu };

Activation parse_activation(const std::string& name);  // throws InvalidArgument
std::string activation_name(Activation a);

/// phi(z), phi'(z), phi''(z), element-wise. relu: derivative 1{z>0}, second 0.
/// phi of the n values z into phi and, when d1 (d2) is not null, phi' (phi'')
/// into d1 (d2). tanh and sigmoid take one vectorised tanh or exp per value
/// (at most about 1 ulp from the scalar forms below); phi may alias z, or be null
/// when only derivatives are wanted.
void activate_all(Activation a, const double* z, std::size_t n, double* phi, double* d1 = nullptr,
                  double* d2 = nullptr);
arma::mat activate(Activation a, const arma::mat& z);
arma::mat activate_d1(Activation a, const arma::mat& z);
arma::mat activate_d2(Activation a, const arma::mat& z);
double activate(Activation a, double z);
double activate_d1(Activation a, double z);
double activate_d2(Activation a, double z);

/// Quantile q in [0, 1] of a sample, linear interpolation between order statistics
/// (R type 7); throws InvalidArgument on an empty sample.
double quantile(std::vector<double> v, double q);

/// An upper bound on the 2-norm condition number of a symmetric matrix with a
/// unit diagonal, from Gershgorin's circles: its eigenvalues lie in
/// [1 - r, 1 + r], r the largest off-diagonal absolute row sum, so the bound is
/// (1 + r) / (1 - r); infinity when r >= 1 (no bound).
double unit_diagonal_cond_bound(const arma::mat& As);

/// Quantile p in (0, 1) of the Gaussian mixture sum_j w_j N(m_j, v_j) (weights summing
/// to one, variances > 0): TOMS 748 on the mixture CDF, to about 50 bits.
double mixture_quantile(const arma::vec& w, const arma::vec& m, const arma::vec& v, double p);

}  // namespace moerate
