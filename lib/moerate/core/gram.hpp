// moerate/core/gram.hpp -- weighted moments of a block of observations, in
// lanes across observations.
//
// EM's heaviest sums are weighted moments of small vectors: the gate's
// Hessian sum_i c_i v_i v_i^T with v_i = (1, x_i), the experts' normal
// equations sum_i w_i u_i u_i^T with u_i = (x_i, 1, y_i). Stored as X is
// (one observation per column), the products of one observation are a short
// triangular loop that vectorises poorly. Here a block of observations is
// first copied feature-major ("rows": row u holds feature u of S consecutive
// observations), and every moment is summed in kLanes lanes, lane l taking the
// observations l, l + kLanes, l + 2 kLanes, ... in order; lane_sum adds the
// lanes in a fixed order. The sums therefore depend on neither the instruction
// set (the AVX-512, AVX2 and SSE2 builds of the kernels do the same
// multiplications and additions, without fused multiply-adds), nor the
// grouping of moments inside the kernel, nor the block size of the caller as
// long as the lanes see the observations in order.
//
//   GramRows rows(q);                       // q feature rows, S columns at most
//   rows.fill(...);                         // the caller writes rows.row(u)[0..S)
//   gram_add_lanes(rows.data(), rows.ld(), q, c, rows.padded(S), acc);
//   double m = lane_sum(acc + gram_index(u, w) * kLanes);
//
// The tail of a block (S not a multiple of kLanes) is padded with zero weights
// and zero features (GramRows::pad), which add exact zeros.
#pragma once

#include <cstddef>
#include <vector>

#include "moerate/core/numerics.hpp"

namespace moerate {

/// Lanes of every moment sum (4 doubles: one AVX2 register).
inline constexpr std::size_t kLanes = 4;

/// The number of moments of q features, u <= w.
constexpr std::size_t gram_pairs(std::size_t q) { return q * (q + 1) / 2; }
/// The packed index of the moment (u, w), u <= w (column-major upper triangle).
constexpr std::size_t gram_index(std::size_t u, std::size_t w) { return w * (w + 1) / 2 + u; }

/// The lanes of one sum added in the fixed order ((l0 + l1) + (l2 + l3)).
inline double lane_sum(const double* l) { return (l[0] + l[1]) + (l[2] + l[3]); }

/// acc[gram_index(u, w) * kLanes + l] += sum over the lane's observations of
/// (c_i V_u,i) V_w,i, for u <= w < q. V: row u at V + u * ld; S a multiple of
/// kLanes. `with`: the instruction set (tests); the other uses the best one.
void gram_add_lanes(const double* V, std::size_t ld, std::size_t q, const double* c, std::size_t S, double* acc);
void gram_add_lanes_with(VmathIsa isa, const double* V, std::size_t ld, std::size_t q, const double* c,
                         std::size_t S, double* acc);

/// acc[u * kLanes + l] += sum over the lane's observations of c_i V_u,i, u < q.
void rowsum_add_lanes(const double* V, std::size_t ld, std::size_t q, const double* c, std::size_t S, double* acc);

/// h_i = sum_{u < d} eta_u V_u,i + eta_d for i < S (S a multiple of kLanes):
/// per observation the operations of a plain loop over u, in that order, so
/// the same bits as that loop.
void affine_rows(const double* V, std::size_t ld, std::size_t d, const double* eta, std::size_t S, double* h);

/// acc[l] += sum over the lane's observations of (c_i r_i) r_i.
void weighted_squares_add_lanes(const double* c, const double* r, std::size_t S, double* acc);

/// The Gauss-Newton sums of a one-unit two-layer expert on one covariate,
/// h = c phi(z), J = (c phi'(z) x, [c phi'(z)], phi(z)) (the middle entry with
/// a bias), P = 3 with the bias and 2 without: acc[t * kLanes + l] += the
/// lane's sum of w J_u J_v for t = gram_index(u, v) < P(P + 1)/2, then
/// w r J_v (P sums), then w r^2, r = y - c phi. S a multiple of kLanes (pad
/// with zero weights and finite values).
void gauss_newton_lanes(const double* x, const double* phi, const double* d1, double c, const double* y,
                        const double* w, std::size_t S, bool bias, double* acc);
void gauss_newton_lanes_with(VmathIsa isa, const double* x, const double* phi, const double* d1, double c,
                             const double* y, const double* w, std::size_t S, bool bias, double* acc);

/// Feature-major copies of blocks of observations: q rows of up to `cap`
/// columns (cap a multiple of kLanes), row u at data() + u * ld().
class GramRows {
public:
  static constexpr std::size_t kCap = 128;
  /// Rows held inside the object (on the stack: no allocation per block) up to
  /// kLocalRows, on the heap above.
  static constexpr std::size_t kLocalRows = 20;
  explicit GramRows(std::size_t q) : q_(q), heap_(q > kLocalRows ? q * kCap : 0), buf_(q > kLocalRows ? heap_.data() : local_) {}
  GramRows(const GramRows&) = delete;
  GramRows& operator=(const GramRows&) = delete;
  double* row(std::size_t u) { return buf_ + u * kCap; }
  const double* row(std::size_t u) const { return buf_ + u * kCap; }
  const double* data() const { return buf_; }
  static constexpr std::size_t ld() { return kCap; }
  /// Copies the columns a..b-1 (b - a <= kCap) of the d x n matrix at X (column
  /// i at X + i * d) into rows r0..r0+d-1.
  void copy_columns(const double* X, std::size_t d, std::size_t a, std::size_t b, std::size_t r0);
  /// Sets row u to v in the columns 0..S-1.
  void fill_row(std::size_t u, double v, std::size_t S);
  /// Zeroes every row's columns S..padded(S)-1; returns padded(S).
  std::size_t pad(std::size_t S);
  static constexpr std::size_t padded(std::size_t S) { return (S + kLanes - 1) / kLanes * kLanes; }
  std::size_t q() const { return q_; }

private:
  std::size_t q_;
  std::vector<double> heap_;
  double* buf_;
  alignas(64) double local_[kLocalRows * kCap];
};

}  // namespace moerate
