#include "moerate/gating/softmax_gating.hpp"

#include "moerate/core/error.hpp"
#include "moerate/core/gram.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/parallel.hpp"

#include <limits>
#include <optional>
#include <utility>
#include <vector>

namespace moerate {

namespace {

/// For d <= 3: the largest number of free gate parameters whose gradient and
/// Hessian are accumulated by a plain loop over observations (above it, by
/// BLAS products over blocks). For d > 3 the moments are summed in lanes over
/// feature-major blocks (core/gram.hpp) for every k: against the loop and the
/// BLAS products, an EM iteration was 1.7x to 2.3x faster (`bench`, one
/// thread: d = 8 with k = 2, 4, 8; d = 4, k = 16; d = 16, k = 4).
constexpr std::size_t kLoopDerivativesMaxP = 48;

/// D, K: the dimension and the number of experts when compile-time constants
/// (loops unrolled), else 0. With K fixed the k scores of an observation are
/// summed side by side (independent chains; the coordinates in the outer
/// loop), each in the same order as with K = 0, so the bits are the same.
template <std::size_t D, std::size_t K>
void gate_scores_dk(const arma::vec& beta0, const arma::mat& beta1, const arma::mat& X, std::size_t a, std::size_t b,
                    arma::mat& S) {
  const std::size_t k = K > 0 ? K : beta0.n_elem, d = D > 0 ? D : X.n_rows, B = b - a;
  S.set_size(k, B);
  const double* b1 = beta1.memptr();
  const double* b0 = beta0.memptr();
  for (std::size_t i = 0; i < B; ++i) {
    const double* x = X.colptr(a + i);
    double* sc = S.colptr(i);
    if constexpr (K > 0) {
      double v[K];
      for (std::size_t j = 0; j < K; ++j) v[j] = b0[j];
      for (std::size_t u = 0; u < d; ++u) {
        const double xu = x[u];
        for (std::size_t j = 0; j < K; ++j) v[j] += b1[j * d + u] * xu;
      }
      for (std::size_t j = 0; j < K; ++j) sc[j] = v[j];
    } else {
      for (std::size_t j = 0; j < k; ++j) {
        const double* c = b1 + j * d;
        double v = b0[j];
        for (std::size_t u = 0; u < d; ++u) v += c[u] * x[u];
        sc[j] = v;
      }
    }
  }
}

template <std::size_t D>
void gate_scores_d(const arma::vec& beta0, const arma::mat& beta1, const arma::mat& X, std::size_t a, std::size_t b,
                   arma::mat& S) {
  switch (beta0.n_elem) {
    case 2: return gate_scores_dk<D, 2>(beta0, beta1, X, a, b, S);
    case 3: return gate_scores_dk<D, 3>(beta0, beta1, X, a, b, S);
    case 4: return gate_scores_dk<D, 4>(beta0, beta1, X, a, b, S);
    default: return gate_scores_dk<D, 0>(beta0, beta1, X, a, b, S);
  }
}

/// Scores beta1^T x_i + beta0 of the columns a..b-1 of X into S (k x (b-a)).
void gate_scores(const arma::vec& beta0, const arma::mat& beta1, const arma::mat& X, std::size_t a, std::size_t b,
                 arma::mat& S) {
  switch (X.n_rows) {
    case 1: return gate_scores_d<1>(beta0, beta1, X, a, b, S);
    case 2: return gate_scores_d<2>(beta0, beta1, X, a, b, S);
    default:
      if (X.n_rows <= kLoopAffineMaxD) return gate_scores_d<0>(beta0, beta1, X, a, b, S);
      S = beta1.t() * X.cols(a, b - 1);
      S.each_col() += beta0;
  }
}

}  // namespace

SoftmaxGating::SoftmaxGating(std::size_t k, std::size_t d)
    : Gating(k, d), beta0_(k, arma::fill::zeros), beta1_(d, k, arma::fill::zeros) {}

arma::mat SoftmaxGating::log_weights(const arma::mat& X) const {
  arma::mat S(k_, X.n_cols, arma::fill::none);
  for_blocks(X.n_cols, [&](std::size_t a, std::size_t b) {
    arma::mat Sb;  // k x B
    gate_scores(beta0_, beta1_, X, a, b, Sb);
    normalise_log_cols(Sb);
    S.cols(a, b - 1) = Sb;
  });
  return S;
}

arma::vec SoftmaxGating::log_weights_vjp(const arma::mat& X, const arma::mat& C) const {
  const arma::mat P = exp_entries(log_weights(X));
  const arma::rowvec s = arma::sum(C, 0);
  arma::mat D = C - P.each_row() % s;          // k x n
  arma::mat G0 = arma::sum(D, 1);              // k x 1 (beta0)
  arma::mat G1 = D * X.t();                    // k x d (beta1)
  arma::vec g(n_params());
  for (std::size_t j = 0; j + 1 < k_; ++j) {
    g[j * (d_ + 1)] = G0(j, 0);
    g.subvec(j * (d_ + 1) + 1, j * (d_ + 1) + d_) = G1.row(j).t();
  }
  return g;
}

/// Fills the d + 1 rows of gate l's parameters in `out` (from row l (d + 1)) with
/// D (1, x): the per-observation gradient rows of a softmax gate whose log-weight
/// derivative along the score of gate l is D.
static void fill_gate_rows(arma::mat& out, std::size_t l, const arma::rowvec& D, const arma::mat& X) {
  const std::size_t q = X.n_rows + 1;
  out.row(l * q) = D;
  for (std::size_t u = 0; u + 1 < q; ++u) out.row(l * q + 1 + u) = D % X.row(u);
}

arma::mat SoftmaxGating::log_weights_vjp_obs(const arma::mat& X, const arma::mat& C) const {
  const arma::mat P = exp_entries(log_weights(X));
  const arma::rowvec s = arma::sum(C, 0);
  const arma::mat D = C - P.each_row() % s;  // k x n
  arma::mat out(n_params(), X.n_cols);
  for (std::size_t j = 0; j + 1 < k_; ++j) fill_gate_rows(out, j, D.row(j), X);
  return out;
}

std::vector<arma::mat> SoftmaxGating::log_weight_gradients_obs(const arma::mat& X) const {
  // d log pi_j / d beta_l = (1[j = l] - pi_l) (1, x): the weights evaluated once for all j.
  const arma::mat P = exp_entries(log_weights(X));
  std::vector<arma::mat> out(k_, arma::mat(n_params(), X.n_cols));
  for (std::size_t j = 0; j < k_; ++j) {
    for (std::size_t l = 0; l + 1 < k_; ++l) {
      arma::rowvec D = -P.row(l);
      if (l == j) D += 1.0;
      fill_gate_rows(out[j], l, D, X);
    }
  }
  return out;
}

arma::vec SoftmaxGating::params() const {
  arma::vec t(n_params());
  for (std::size_t j = 0; j + 1 < k_; ++j) {
    t[j * (d_ + 1)] = beta0_[j];
    t.subvec(j * (d_ + 1) + 1, j * (d_ + 1) + d_) = beta1_.col(j);
  }
  return t;
}

void SoftmaxGating::set_params(const arma::vec& theta) {
  if (theta.n_elem != n_params())
    fail("SoftmaxGating::set_params", "parameter vector length", "must be " + std::to_string(n_params()),
         theta.n_elem);
  if (!theta.is_finite()) throw InvalidArgument("SoftmaxGating::set_params: parameters must be finite");
  for (std::size_t j = 0; j + 1 < k_; ++j) {
    beta0_[j] = theta[j * (d_ + 1)];
    beta1_.col(j) = theta.subvec(j * (d_ + 1) + 1, j * (d_ + 1) + d_);
  }
  beta0_[k_ - 1] = 0;
  beta1_.col(k_ - 1).zeros();
}

std::vector<std::string> SoftmaxGating::param_names() const {
  std::vector<std::string> names;
  for (std::size_t j = 0; j + 1 < k_; ++j) {
    const std::string e = "expert" + std::to_string(j + 1) + ".";
    names.push_back(e + "beta0");
    for (std::size_t u = 0; u < d_; ++u) names.push_back(e + "beta1_" + std::to_string(u + 1));
  }
  return names;
}

namespace {

/// Q = sum_ij R_ij L_ij - ridge/2 |theta|^2 (0 * -inf counts as 0), and the
/// scale sum_ij |R_ij L_ij| of its round-off.
struct QValue {
  double q = 0, scale = 0;
};

/// The gate at (beta0, beta1) over the columns a..b-1: the weights into Pb
/// (k x (b - a), column-major) and Q's part sum R log P (ridge excluded, from
/// the same exponentials) with its round-off scale added to acc.
void gate_weights_block(const arma::vec& beta0, const arma::mat& beta1, const arma::mat& X, const arma::mat& R,
                        std::size_t a, std::size_t b, double* Pb, arma::vec2& acc) {
  const std::size_t k = beta0.n_elem, B = b - a;
  arma::mat S;  // k x B scores
  gate_scores(beta0, beta1, X, a, b, S);
  arma::vec sums(B, arma::fill::none), lses(B, arma::fill::none);
  log_sum_exp_block(S.memptr(), k, B, Pb, sums.memptr(), lses.memptr());
  for (std::size_t i = 0; i < B; ++i) {
    double* pr = Pb + i * k;
    const double sum = sums[i];
    for (std::size_t j = 0; j < k; ++j) pr[j] /= sum;
  }
  // Q and its scale in four running sums (observation i into sum i mod 4, in
  // registers), added at the end: one sum would wait for the previous add at
  // every term.
  double q0 = 0, q1 = 0, q2 = 0, q3 = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  auto add = [&](std::size_t i, double& q, double& qa) {
    const double* sc = S.colptr(i);
    const double* r = R.colptr(a + i);
    const double lse = lses[i];
    for (std::size_t j = 0; j < k; ++j) {
      if (r[j] != 0) {  // 0 * log 0 counts as 0
        const double rl = r[j] * (sc[j] - lse);
        q += rl;
        qa += std::abs(rl);
      }
    }
  };
  std::size_t i = 0;
  for (; i + 3 < B; i += 4) {
    add(i, q0, a0);
    add(i + 1, q1, a1);
    add(i + 2, q2, a2);
    add(i + 3, q3, a3);
  }
  if (i < B) add(i++, q0, a0);
  if (i < B) add(i++, q1, a1);
  if (i < B) add(i++, q2, a2);
  acc[0] += (q0 + q1) + (q2 + q3);
  acc[1] += (a0 + a1) + (a2 + a3);
}

/// Q at (beta0, beta1) in one pass over blocks (ridge excluded), with its
/// round-off scale. The weights live one block at a time: no k x n matrix.
/// `companion`: its trial_block runs on each block as well (m_step_companion.hpp).
QValue evaluate_gate(const arma::vec& beta0, const arma::mat& beta1, const arma::mat& X, const arma::mat& R,
                     MStepCompanion* companion = nullptr) {
  const std::size_t k = beta0.n_elem;
  const arma::vec2 qs = reduce_blocks<arma::vec2>(X.n_cols, arma::vec2(arma::fill::zeros),
                                                  [&](arma::vec2& acc, std::size_t a, std::size_t b) {
    arma::mat Pb(k, b - a, arma::fill::none);
    gate_weights_block(beta0, beta1, X, R, a, b, Pb.memptr(), acc);
    if (companion != nullptr) companion->trial_block(a, b);
  });
  if (companion != nullptr) companion->trial_done();
  return QValue{qs[0], qs[1]};
}

/// Gradient and negative Hessian of Q (ridge excluded) for the free experts.
struct GateDerivatives {
  arma::vec g;
  arma::mat H;
  arma::vec2 q{arma::fill::zeros};  // Q (ridge excluded) and its round-off scale, when the pass computes them
  GateDerivatives& operator+=(const GateDerivatives& o) {
    g += o.g;
    H += o.H;
    q += o.q;
    return *this;
  }
};

/// Plain-loop accumulation over the columns a..b-1 (d <= 3 and few parameters,
/// p = (k-1)(d+1) <= kLoopDerivativesMaxP), v_i = (1, x_i), experts j, l < k:
///   g += sum_i (R_ij - s_i pi_ij) v_i
///   H += sum_i s_i pi_ij (delta_jl - pi_il) v_i v_i^T   (upper triangle only;
///        skipped when H is null)
/// Each block (j, l) of H is c_jl-weighted sums of the moments v_iu v_iw
/// (u <= w), so the loop accumulates, per pair j <= l, those moments in local
/// arrays and writes H once per call.
/// QD = d + 1, a compile-time constant: the loops over it are unrolled (for
/// d = 1 they have two or three trips, and a general loop's set-up costs more
/// than its work) and the moments stay in registers.
template <std::size_t QD>
[[gnu::always_inline]] inline void add_gate_derivatives_qd(const arma::mat& X, const arma::mat& R, const double* Pb,
                                                          std::size_t a, std::size_t b, double* g, double* H) {
  constexpr std::size_t kMax = kLoopDerivativesMaxP;
  constexpr std::size_t qd = QD;
  const std::size_t kf = R.n_rows - 1, p = kf * qd;
  constexpr std::size_t nm = qd * (qd + 1) / 2;
  double m[nm], gl[kMax] = {}, acc[kMax * (kMax + 1) / 2] = {};  // pairs x moments <= p(p+1)/2
  for (std::size_t i = a; i < b; ++i) {
    const double* x = X.colptr(i);
    const double* pr = Pb + (i - a) * (kf + 1);
    const double* r = R.colptr(i);
    const double si = arma::arrayops::accumulate(r, kf + 1);  // s_i = sum_j R_ij, as arma::sum(R, 0)
    // v = (1, x) read in place (a copy into a local array is stored as scalars
    // and may be reloaded as a vector, which stalls store forwarding).
    auto v = [x](std::size_t u) -> double { return u == 0 ? 1.0 : x[u - 1]; };
    for (std::size_t w = 0, t = 0; w < qd; ++w)
      for (std::size_t u = 0; u <= w; ++u, ++t) m[t] = v(u) * v(w);
    for (std::size_t j = 0, pair = 0; j < kf; ++j) {
      const double dj = r[j] - si * pr[j];
      for (std::size_t u = 0; u < qd; ++u) gl[j * qd + u] += dj * v(u);
      if (H == nullptr) continue;
      for (std::size_t l = j; l < kf; ++l, ++pair) {
        const double c = si * pr[j] * ((j == l ? 1.0 : 0.0) - pr[l]);
        double* ac = acc + pair * nm;
        for (std::size_t t = 0; t < nm; ++t) ac[t] += c * m[t];
      }
    }
  }
  for (std::size_t t = 0; t < p; ++t) g[t] += gl[t];
  if (H == nullptr) return;
  for (std::size_t j = 0, pair = 0; j < kf; ++j)
    for (std::size_t l = j; l < kf; ++l, ++pair)
      for (std::size_t w = 0, t = 0; w < qd; ++w)
        for (std::size_t u = 0; u <= w; ++u, ++t) {
          const double val = acc[pair * nm + t];
          H[(l * qd + w) * p + j * qd + u] += val;                     // row j*qd+u <= column l*qd+w
          if (j != l && u != w) H[(l * qd + u) * p + j * qd + w] += val;  // the symmetric moment
        }
}

/// The sums of add_gate_derivatives_qd for d > 3, in lanes over feature-major
/// blocks of v_i = (1, x_i) (core/gram.hpp): per pair j <= l the moments
/// weighted by c_i = s_i pi_ij (delta_jl - pi_il), per expert j the gradient
/// weighted by R_ij - s_i pi_ij.
void add_gate_derivatives_lanes(const arma::mat& X, const arma::mat& R, const double* Pb, std::size_t a,
                                std::size_t b, double* g, double* H) {
  const std::size_t d = X.n_rows, qd = d + 1, k = R.n_rows, kf = k - 1, p = kf * qd;
  const std::size_t np = gram_pairs(qd) * kLanes;
  GramRows rows(qd);
  thread_local std::vector<double> gl, hl;  // reused: no allocation per block
  gl.assign(p * kLanes, 0.0);
  hl.assign(H != nullptr ? kf * (kf + 1) / 2 * np : 0, 0.0);
  alignas(32) double si[GramRows::kCap], c[GramRows::kCap];
  for (std::size_t s = a; s < b; s += GramRows::kCap) {
    const std::size_t e = std::min(b, s + GramRows::kCap), S = e - s;
    rows.fill_row(0, 1.0, S);
    rows.copy_columns(X.memptr(), d, s, e, 1);
    const std::size_t P = rows.pad(S);
    std::fill(c + S, c + P, 0.0);
    for (std::size_t i = 0; i < S; ++i) si[i] = arma::arrayops::accumulate(R.colptr(s + i), k);  // as arma::sum(R, 0)
    const double* pb = Pb + (s - a) * k;
    for (std::size_t j = 0, pair = 0; j < kf; ++j) {
      for (std::size_t i = 0; i < S; ++i) c[i] = R.at(j, s + i) - si[i] * pb[i * k + j];
      rowsum_add_lanes(rows.data(), rows.ld(), qd, c, P, gl.data() + j * qd * kLanes);
      if (H == nullptr) continue;
      for (std::size_t l = j; l < kf; ++l, ++pair) {
        const double delta = j == l ? 1.0 : 0.0;
        for (std::size_t i = 0; i < S; ++i) c[i] = si[i] * pb[i * k + j] * (delta - pb[i * k + l]);
        gram_add_lanes(rows.data(), rows.ld(), qd, c, P, hl.data() + pair * np);
      }
    }
  }
  for (std::size_t t = 0; t < p; ++t) g[t] += lane_sum(gl.data() + t * kLanes);
  if (H == nullptr) return;
  for (std::size_t j = 0, pair = 0; j < kf; ++j)
    for (std::size_t l = j; l < kf; ++l, ++pair)
      for (std::size_t w = 0; w < qd; ++w)
        for (std::size_t u = 0; u <= w; ++u) {
          const double val = lane_sum(hl.data() + pair * np + gram_index(u, w) * kLanes);
          H[(l * qd + w) * p + j * qd + u] += val;                     // row j*qd+u <= column l*qd+w
          if (j != l && u != w) H[(l * qd + u) * p + j * qd + w] += val;  // the symmetric moment
        }
}

/// Pb: the gate's weights at the columns a..b-1 (k x (b - a), column-major).
/// Unrolled loops for d <= 3 (there lanes over observations were slower:
/// bench, d = 1 and 2, k = 2 and 3, 4% to 20%), lanes above.
void add_gate_derivatives(const arma::mat& X, const arma::mat& R, const double* Pb, std::size_t a, std::size_t b,
                          double* g, double* H) {
  switch (X.n_rows) {
    case 1: return add_gate_derivatives_qd<2>(X, R, Pb, a, b, g, H);
    case 2: return add_gate_derivatives_qd<3>(X, R, Pb, a, b, g, H);
    case 3: return add_gate_derivatives_qd<4>(X, R, Pb, a, b, g, H);
    default: return add_gate_derivatives_lanes(X, R, Pb, a, b, g, H);
  }
}

/// The gradient and negative Hessian of Q over the columns a..b-1 into acc
/// (H: upper triangle), v_i = (1, x_i), the free experts j < k:
///   gradient      sum_i (R_ij - s_i pi_ij) v_i
///   -Hessian      sum_i s_i pi_ij (delta_jl - pi_il) v_i v_i^T
///               = blockdiag_j sum_i a_ij v_i v_i^T - Z Z^T,
/// with a_ij = s_i pi_ij and the rows of Z the vectors sqrt(s_i) pi_ij v_i.
/// Lanes for d > 3 (add_gate_derivatives_lanes); for d <= 3 plain loops for few
/// parameters and BLAS products over the block above.
void add_gate_derivatives_block(const arma::mat& X, const arma::mat& R, const double* Pw, std::size_t a,
                                std::size_t b, GateDerivatives& acc) {
  const std::size_t k = R.n_rows, qd = X.n_rows + 1, d = X.n_rows, p = (k - 1) * qd;
  if (p <= kLoopDerivativesMaxP || d > 3) {
    add_gate_derivatives(X, R, Pw, a, b, acc.g.memptr(), acc.H.memptr());
    return;
  }
  const std::size_t B = b - a;
  const arma::mat Pb(const_cast<double*>(Pw), k, B, false, true);  // k x B, read only
  const arma::mat Rb = R.cols(a, b - 1);
  const arma::rowvec sb = arma::sum(Rb, 0);  // s_i = sum_j R_ij
  arma::mat V(qd, B);
  V.row(0).ones();
  V.rows(1, d) = X.cols(a, b - 1);
  arma::mat D = Rb.rows(0, k - 2);
  D -= Pb.rows(0, k - 2).eval().each_row() % sb;
  acc.g += arma::vectorise(V * D.t());  // column j = expert j's (beta0, beta1)
  const arma::rowvec rs = arma::sqrt(sb);
  arma::mat Z(p, B);
  for (std::size_t j = 0; j + 1 < k; ++j) {
    Z.rows(j * qd, j * qd + qd - 1) = V.each_row() % (rs % Pb.row(j));
    acc.H.submat(j * qd, j * qd, j * qd + qd - 1, j * qd + qd - 1) += (V.each_row() % (sb % Pb.row(j))) * V.t();
  }
  acc.H -= Z * Z.t();
}

}  // namespace

arma::mat SoftmaxGating::q_hessian(const arma::mat& X, const arma::mat& C) const {
  // The M-step's blocked derivative pass (its gradient is a by-product): no
  // n-long temporaries beyond the weights.
  const std::size_t p = n_params();
  if (p == 0) return arma::mat(0, 0);
  const arma::mat P = exp_entries(log_weights(X));
  const GateDerivatives zero{arma::vec(p, arma::fill::zeros), arma::mat(p, p, arma::fill::zeros)};
  const GateDerivatives der = reduce_blocks<GateDerivatives>(
      X.n_cols, zero, [&](GateDerivatives& acc, std::size_t a, std::size_t b) {
        add_gate_derivatives_block(X, C, P.colptr(a), a, b, acc);
      });
  return -arma::symmatu(der.H);
}

GateMStepResult SoftmaxGating::m_step(const arma::mat& X, const arma::mat& R,
                                      const GateMStepOptions& opt) {
  // Newton/IRLS. Each step makes one pass over the data that computes the
  // gate's weights block by block and from them Q, its gradient and Hessian
  // (the weights are never stored: no k x n matrix), and one evaluation of Q
  // per trial point.
  GateMStepResult res;
  auto with_ridge = [&](QValue v) {
    if (opt.ridge > 0) v.q -= 0.5 * opt.ridge * arma::dot(params(), params());
    return v;
  };
  auto evaluate = [&]() { return with_ridge(evaluate_gate(beta0_, beta1_, X, R)); };
  if (k_ == 1) {
    res.q_before = res.q_after = evaluate().q;
    return res;
  }
  const std::size_t n = X.n_cols, qd = d_ + 1, p = n_params();
  // The companion's passes ride along with the first derivative pass and the
  // first trial evaluation (m_step_companion.hpp), and only a companion whose
  // passes have not run yet (a hierarchical gate calls several M-steps with
  // the same options).
  MStepCompanion* first_companion = opt.companion != nullptr && opt.companion->stage() == 0 ? opt.companion : nullptr;
  MStepCompanion* trial_companion = nullptr;
  // One pass at the current parameters: Q, the gradient and (with `hessian`)
  // the negative Hessian's upper triangle. s_i = sum_j R_ij is summed per block
  // where it is needed (memory: no n-vector).
  auto derivative_pass = [&](bool hessian) {
    const GateDerivatives zero{arma::vec(p, arma::fill::zeros),
                               hessian ? arma::mat(p, p, arma::fill::zeros) : arma::mat()};
    MStepCompanion* const c = std::exchange(first_companion, nullptr);
    GateDerivatives der = reduce_blocks<GateDerivatives>(n, zero, [&](GateDerivatives& acc, std::size_t a, std::size_t b) {
      if (c != nullptr) c->first_block(a, b);
      arma::mat Pb(k_, b - a, arma::fill::none);
      gate_weights_block(beta0_, beta1_, X, R, a, b, Pb.memptr(), acc.q);
      if (hessian) {
        add_gate_derivatives_block(X, R, Pb.memptr(), a, b, acc);
      } else if (p <= kLoopDerivativesMaxP || d_ > 3) {
        add_gate_derivatives(X, R, Pb.memptr(), a, b, acc.g.memptr(), nullptr);
      } else {
        arma::mat V(qd, b - a);
        V.row(0).ones();
        V.rows(1, d_) = X.cols(a, b - 1);
        const arma::mat Rb = R.cols(a, b - 1);
        arma::mat D = Rb.rows(0, k_ - 2);
        D -= Pb.rows(0, k_ - 2).eval().each_row() % arma::sum(Rb, 0);
        acc.g += arma::vectorise(V * D.t());
      }
    });
    if (c != nullptr) {
      c->first_done();
      trial_companion = c;
    }
    return der;
  };
  QValue qv;
  const arma::vec theta_start = params();
  const bool boxed = !opt.lower.is_empty();
  // Cholesky factor of the last full Hessian and the decrement it gave, for
  // the cheap convergence check below.
  arma::mat C_prev;
  double decrement_prev = arma::datum::inf;
  const int max_steps = opt.steps_or(1);
  // When another step may follow, a trial point's pass computes the
  // derivatives as well as Q (the same pass, the same Q); if the point is
  // accepted they are the next step's, which then needs no pass of its own.
  // Without a companion only (its passes ride on the first trial's).
  std::optional<GateDerivatives> next_der;
  for (int step = 0; step < max_steps; ++step) {
    const arma::vec theta = params();
    // Near the optimum (the previous decrement small, a full step taken, no
    // box) Newton's quadratic convergence makes the new decrement tiny; it is
    // checked with the gradient alone and the previous Hessian, which changes
    // little over such a step, saving the Hessian pass that would only confirm
    // convergence.
    if (!boxed && !C_prev.is_empty() && decrement_prev < 1e-4) {
      arma::vec gr = next_der ? next_der->g : derivative_pass(false).g;
      if (opt.ridge > 0) gr -= opt.ridge * theta;
      const arma::vec z = arma::solve(arma::trimatl(C_prev), gr);
      if (0.5 * arma::dot(z, z) <= opt.newton_tol) break;
    }
    GateDerivatives der = next_der ? std::move(*next_der) : derivative_pass(true);
    next_der.reset();
    if (step == 0) {  // Q at the start, from the same pass
      qv = with_ridge(QValue{der.q[0], der.q[1]});
      res.q_before = res.q_after = qv.q;
    }
    arma::vec g = std::move(der.g);
    arma::mat Hn = arma::symmatu(der.H);
    if (opt.ridge > 0) {
      g -= opt.ridge * theta;
      Hn.diag() += opt.ridge;
    }
    // With a box: projected Newton. Coordinates on a bound whose gradient points
    // out of the box are held fixed; Newton runs on the others and the trial
    // points are clamped to the box.
    std::vector<arma::uword> free_ix;
    for (std::size_t i = 0; i < g.n_elem; ++i) {
      if (boxed) {
        const double tl = 1e-12 * std::max(1.0, std::abs(opt.lower[i]));
        const double tu = 1e-12 * std::max(1.0, std::abs(opt.upper[i]));
        if (theta[i] >= opt.upper[i] - tu && g[i] > 0) continue;
        if (theta[i] <= opt.lower[i] + tl && g[i] < 0) continue;
      }
      free_ix.push_back(i);
    }
    if (free_ix.empty()) break;
    const arma::uvec F(free_ix);
    if (free_ix.size() < g.n_elem) {
      const arma::mat HF = Hn.submat(F, F);
      const arma::vec gF = g.elem(F);
      Hn = HF;
      g = gF;
    }
    // Newton direction by Cholesky, with jitter if the Hessian is singular
    // (separable data or an empty component); gradient direction as a last resort.
    arma::mat C;
    double jitter = 0;
    const double scale = std::max(1e-300, arma::mean(Hn.diag()));
    bool factored = false;
    while (!(factored = arma::chol(C, Hn + jitter * arma::eye(arma::size(Hn)), "lower"))) {
      jitter = (jitter == 0) ? 1e-10 * scale : jitter * 10;
      if (jitter > 1e6 * scale) break;
    }
    arma::vec delta_f = g;
    if (factored) delta_f = arma::solve(arma::trimatu(C.t()), arma::solve(arma::trimatl(C), g));
    arma::vec delta(theta.n_elem, arma::fill::zeros);
    delta.elem(F) = delta_f;
    // Newton decrement: the predicted increase g^T delta / 2, in nats. It is
    // scale-free (the remaining step is sqrt(2 decrement) standard errors), so
    // the threshold is absolute: a relative one loosens with n and leaves EM a
    // fixed point away from the MLE (models.md 9.3). The decrement is computed
    // from g and H to far below 1e-12 at any n, unlike Q itself.
    const double decrement = 0.5 * arma::dot(g, delta_f);
    if (factored && decrement <= opt.newton_tol) break;
    C_prev.reset();
    decrement_prev = arma::datum::inf;
    // Step halving until Q does not decrease. Q is a sum of n terms whose
    // round-off is about eps * sum |R_ij L_ij|; differences below that cannot
    // be resolved, so a trial point counts as not lower when it is within it
    // (otherwise a Newton step whose true gain is below the round-off would be
    // halved 40 times and rejected, at one gate evaluation per halving).
    const double q_noise = 64 * std::numeric_limits<double>::epsilon() * qv.scale;
    bool accepted = false;
    double t = 1.0;
    for (int h = 0; h < opt.max_halvings; ++h, t *= 0.5) {
      arma::vec cand = theta + t * delta;
      if (boxed) cand = arma::min(arma::max(cand, opt.lower), opt.upper);
      if (!cand.is_finite()) continue;
      set_params(cand);
      std::optional<GateDerivatives> dc;
      QValue qc;
      if (step + 1 < max_steps && trial_companion == nullptr) {
        dc = derivative_pass(true);
        qc = with_ridge(QValue{dc->q[0], dc->q[1]});
      } else {
        qc = with_ridge(evaluate_gate(beta0_, beta1_, X, R, std::exchange(trial_companion, nullptr)));
      }
      if (std::isfinite(qc.q) && qc.q >= qv.q - q_noise) {
        qv = qc;
        next_der = std::move(dc);
        res.steps++;
        accepted = true;
        if (factored && h == 0 && free_ix.size() == p) {
          C_prev = C;
          decrement_prev = decrement;
        }
        break;
      }
      if (factored && t * decrement < q_noise) break;  // smaller steps are below the resolution of Q
    }
    if (!accepted) {
      set_params(theta);
      break;
    }
  }
  // Steps accepted within the round-off of Q may add up to a computed Q below
  // the start's: then the start is kept, so the M-step never lowers Q.
  if (qv.q < res.q_before) {
    set_params(theta_start);
    qv.q = res.q_before;
  }
  res.q_after = qv.q;
  return res;
}

json SoftmaxGating::gate_json(std::size_t i) const {
  return json{{"beta0", beta0_[i]}, {"beta1", arma::conv_to<std::vector<double>>::from(beta1_.col(i))}};
}

static double finite_number(const json& j, const std::string& where) {
  if (!j.is_number()) throw InvalidArgument(where + ": expected a number; got " + j.dump());
  const double v = j.get<double>();
  if (!std::isfinite(v)) throw InvalidArgument(where + ": must be finite; got " + j.dump());
  return v;
}

void SoftmaxGating::set_gate_json(std::size_t i, const json& gate, const std::string& where) {
  if (!gate.is_object()) throw InvalidArgument(where + ": expected an object {\"beta0\", \"beta1\"}");
  if (!gate.contains("beta0")) throw InvalidArgument(where + ": missing \"beta0\"");
  if (!gate.contains("beta1")) throw InvalidArgument(where + ": missing \"beta1\"");
  beta0_[i] = finite_number(gate["beta0"], where + ".beta0");
  const json& b1 = gate["beta1"];
  if (!b1.is_array() || b1.size() != d_)
    throw InvalidArgument(where + ".beta1: expected an array of " + std::to_string(d_) +
                          " numbers (the data dimension); got " + b1.dump());
  for (std::size_t u = 0; u < d_; ++u)
    beta1_(u, i) = finite_number(b1[u], where + ".beta1[" + std::to_string(u) + "]");
}

void SoftmaxGating::normalise() {
  const double r0 = beta0_[k_ - 1];
  const arma::vec r1 = beta1_.col(k_ - 1);
  beta0_ -= r0;
  beta1_.each_col() -= r1;
}

void SoftmaxGating::permute(const std::vector<std::size_t>& order) {
  if (order.size() != k_) throw InvalidArgument("SoftmaxGating::permute: wrong order length");
  arma::vec b0(k_);
  arma::mat b1(d_, k_);
  for (std::size_t i = 0; i < k_; ++i) {
    b0[i] = beta0_[order[i]];
    b1.col(i) = beta1_.col(order[i]);
  }
  beta0_ = b0;
  beta1_ = b1;
  normalise();
}

void SoftmaxGating::translate(double t0, const arma::vec& t1) {
  beta0_ += t0;
  beta1_.each_col() += t1;
}

MOERATE_REGISTER_GATING("softmax",
                        "softmax gate Softmax(beta1^T x + beta0), last expert the reference",
                        [](const json& spec, std::size_t k, std::size_t d) -> std::unique_ptr<Gating> {
                          for (const auto& [key, v] : spec.items())
                            if (key != "family")
                              throw InvalidArgument("softmax: unknown option '" + key + "' (softmax has no options)");
                          return std::make_unique<SoftmaxGating>(k, d);
                        });

}  // namespace moerate
