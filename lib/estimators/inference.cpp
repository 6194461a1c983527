#include "moerate/estimators/inference.hpp"

#include "moerate/io/csv.hpp"

#include <algorithm>
#include <boost/math/distributions/normal.hpp>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "moerate/core/error.hpp"
#include "moerate/estimators/certificate.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/core/gram.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/parallel.hpp"
#include "moerate/core/rng.hpp"
#include "moerate/gating/softmax_gating.hpp"
#include <typeinfo>

namespace moerate {

namespace {

void check_gaussian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, const std::string& fn) {
  if (m.kind() != ModelKind::gaussian)
    throw InvalidArgument(fn + ": standard errors need a Gaussian MoE (kind gaussian); the regression model has no "
                               "likelihood for its mixing measure");
  if (X.n_cols != y.n_elem) throw InvalidArgument(fn + ": X and y have different numbers of observations");
  if (X.n_rows != m.dim()) fail(fn, "dimension of x", "must be " + std::to_string(m.dim()), X.n_rows);
}

}  // namespace

arma::mat score_obs(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  check_gaussian(m, X, y, "score_obs");
  return observation_scores(m, X, y, m.responsibilities(X, y));
}

arma::vec score(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  check_gaussian(m, X, y, "score");
  const std::size_t p = m.gating().n_params() + (m.experts().n_params() + 1) * m.n_experts();
  // Over blocks of observations (memory: no n-long temporaries; the same sum
  // for every thread count).
  return reduce_blocks<arma::vec>(X.n_cols, arma::vec(p, arma::fill::zeros),
                                  [&](arma::vec& acc, std::size_t a, std::size_t b) {
    const arma::mat Xb = X.cols(a, b - 1);
    const arma::rowvec yb = y.cols(a, b - 1);
    acc += observation_score_sum(m, Xb, yb, m.responsibilities(Xb, yb));
  });
}

namespace {

/// Parameters of the softmax score-and-Hessian pass up to which its products
/// are summed as moments in lanes (core/gram.hpp) rather than by BLAS: the
/// dense C C^T has p(p + 1)/2 moments per observation.
constexpr std::size_t kLanesMaxP = 24;

/// The block's share of softmax_score_hessian (its notation; z order) from
/// moments in lanes across observations, in sub-blocks of GramRows::kCap:
/// the same terms as the BLAS products of the caller's other branch, without
/// the matrices C, W and Pv of the whole block. Pi holds pi (not log pi), Rr
/// the responsibilities. The experts' second derivatives of h (curved
/// families) are added by the caller.
void score_hessian_block_lanes(const arma::mat& Xg, const arma::mat& Pi, const arma::mat& Rr, const arma::mat& Res,
                               const std::vector<arma::mat>& J, const arma::vec& nu, std::size_t q, ScoreHessian& acc) {
  const std::size_t B = Pi.n_cols, k = Pi.n_rows, kf = k - 1, dg = Xg.n_rows, qd = dg + 1, ke = q + 1;
  const std::size_t pg = kf * qd, p = pg + k * ke;
  // Lanes of every sum of the block.
  std::vector<double> cc(gram_pairs(p) * kLanes, 0.0), cs(p * kLanes, 0.0), pp(gram_pairs(pg) * kLanes, 0.0),
      ps(pg * kLanes, 0.0);
  std::vector<std::vector<double>> ww(k), vv(kf), jj(k), bev(k), rr(k);
  for (std::size_t j = 0; j < k; ++j) {
    ww[j].assign(gram_pairs((j < kf ? qd : 0) + ke) * kLanes, 0.0);
    jj[j].assign(gram_pairs(q) * kLanes, 0.0);
    bev[j].assign(q * kLanes, 0.0);
    rr[j].assign(kLanes, 0.0);
  }
  for (std::size_t l = 0; l < kf; ++l) vv[l].assign(gram_pairs(qd) * kLanes, 0.0);
  // Rows: C (p), pi (x) v (pg), [v; e_j] (qd + ke), J_j (q); weights: r_j, pi_l,
  // r_j / nu_j, (r_j / nu_j) res_j, res_j, ones.
  GramRows C(p), P(std::max<std::size_t>(pg, 1)), E(qd + ke), Jr(q), Wt(4 * k + kf + 1);
  const std::size_t wr_row = k, wres_row = 2 * k, res_row = 3 * k, pi_row = 4 * k, ones_row = 4 * k + kf;
  for (std::size_t s0 = 0; s0 < B; s0 += GramRows::kCap) {
    const std::size_t S = std::min(GramRows::kCap, B - s0);
    E.fill_row(0, 1.0, S);
    if (dg > 0) E.copy_columns(Xg.memptr(), dg, s0, s0 + S, 1);
    Wt.fill_row(ones_row, 1.0, S);
    for (std::size_t i = 0; i < S; ++i) {
      const double* rc = Rr.colptr(s0 + i);
      const double* pc = Pi.colptr(s0 + i);
      const double* res = Res.colptr(s0 + i);
      for (std::size_t j = 0; j < k; ++j) {
        const double wr = rc[j] / nu[j];
        Wt.row(j)[i] = rc[j];
        Wt.row(wr_row + j)[i] = wr;
        Wt.row(wres_row + j)[i] = wr * res[j];
        Wt.row(res_row + j)[i] = res[j];
      }
      for (std::size_t l = 0; l < kf; ++l) {
        Wt.row(pi_row + l)[i] = pc[l];
        for (std::size_t u = 0; u < qd; ++u) {
          const double v = E.row(u)[i];
          C.row(l * qd + u)[i] = rc[l] * v;
          P.row(l * qd + u)[i] = pc[l] * v;
        }
      }
    }
    // The padding columns S..Sp-1 of every row: zeros, never written below.
    const std::size_t Sp = C.pad(S);
    P.pad(S);
    E.pad(S);
    Jr.pad(S);
    Wt.pad(S);
    // C's expert rows r_ij e_ij and E's rows e_ij of each expert: e = (J res / nu, (res^2 / nu - 1) / 2).
    for (std::size_t j = 0; j < k; ++j) {
      const double nj = nu[j];
      const std::size_t o = pg + j * ke;
      for (std::size_t i = 0; i < S; ++i) {
        const double r = Res(j, s0 + i), rn = r / nj, rj = Rr(j, s0 + i);
        const double* Jc = J[j].colptr(s0 + i);
        for (std::size_t t = 0; t < q; ++t) {
          const double e = Jc[t] * rn;
          C.row(o + t)[i] = rj * e;
          E.row(qd + t)[i] = e;
        }
        const double e = 0.5 * (r * rn - 1.0);
        C.row(o + q)[i] = rj * e;
        E.row(qd + q)[i] = e;
      }
      Jr.copy_columns(J[j].memptr(), q, s0, s0 + S, 0);
      if (j < kf)
        gram_add_lanes(E.data(), GramRows::ld(), qd + ke, Wt.row(j), Sp, ww[j].data());
      else
        gram_add_lanes(E.row(qd), GramRows::ld(), ke, Wt.row(j), Sp, ww[j].data());
      gram_add_lanes(Jr.data(), GramRows::ld(), q, Wt.row(wr_row + j), Sp, jj[j].data());
      rowsum_add_lanes(Jr.data(), GramRows::ld(), q, Wt.row(wres_row + j), Sp, bev[j].data());
      weighted_squares_add_lanes(Wt.row(wr_row + j), Wt.row(res_row + j), Sp, rr[j].data());
    }
    gram_add_lanes(C.data(), GramRows::ld(), p, Wt.row(ones_row), Sp, cc.data());
    rowsum_add_lanes(C.data(), GramRows::ld(), p, Wt.row(ones_row), Sp, cs.data());
    for (std::size_t l = 0; l < kf; ++l)
      gram_add_lanes(E.data(), GramRows::ld(), qd, Wt.row(pi_row + l), Sp, vv[l].data());
    if (pg > 0) {
      gram_add_lanes(P.data(), GramRows::ld(), pg, Wt.row(ones_row), Sp, pp.data());
      rowsum_add_lanes(P.data(), GramRows::ld(), pg, Wt.row(ones_row), Sp, ps.data());
    }
  }
  // Into the accumulator (z order), both triangles.
  arma::mat& H = acc.H;
  auto add_sym = [&](const std::vector<double>& lanes, std::size_t n, auto&& index, double sign) {
    for (std::size_t w = 0; w < n; ++w)
      for (std::size_t u = 0; u <= w; ++u) {
        const double v = sign * lane_sum(lanes.data() + gram_index(u, w) * kLanes);
        const std::size_t a = index(u), b = index(w);
        H(a, b) += v;
        if (a != b) H(b, a) += v;
      }
  };
  for (std::size_t t = 0; t < p; ++t) acc.g[t] += lane_sum(cs.data() + t * kLanes);
  for (std::size_t t = 0; t < pg; ++t) acc.g[t] -= lane_sum(ps.data() + t * kLanes);
  add_sym(cc, p, [](std::size_t u) { return u; }, -1.0);
  if (pg > 0) add_sym(pp, pg, [](std::size_t u) { return u; }, 1.0);
  for (std::size_t l = 0; l < kf; ++l) add_sym(vv[l], qd, [&](std::size_t u) { return l * qd + u; }, -1.0);
  for (std::size_t j = 0; j < k; ++j) {
    const std::size_t o = pg + j * ke, ng = j < kf ? qd : 0;
    add_sym(ww[j], ng + ke, [&](std::size_t u) { return u < ng ? j * qd + u : o + (u - ng); }, 1.0);
    add_sym(jj[j], q, [&](std::size_t u) { return o + u; }, -1.0);
    for (std::size_t t = 0; t < q; ++t) {
      const double b = -lane_sum(bev[j].data() + t * kLanes);
      H(o + t, o + q) += b;
      H(o + q, o + t) += b;
    }
    H(o + q, o + q) -= 0.5 * lane_sum(rr[j].data());
  }
}


/// loglik_score_hessian for a softmax gate (see the header). In the order
/// z = (gate rows, e_1, ..., e_k) (e_j: expert j's eta_j then its log nu_j),
/// let w_ij be v_i in gate block j (none for the reference expert k) and e_ij
/// in expert block j. Then d a_ij = w_ij - (pi_i (x) v_i) and
///   sum_j r_ij d_ij d_ij^T = sum_j r_ij w_ij w_ij^T - c_i c_i^T,   c_i = sum_j r_ij w_ij,
///   -(diag(pi_i) - pi_i pi_i^T) (x) v_i v_i^T = -blockdiag_l(pi_il v_i v_i^T) + (pi_i (x) v_i)(pi_i (x) v_i)^T,
/// each a symmetric product over a block of observations (dsyrk): the dense
/// ones have p and (k - 1)(d + 1) rows, the others d + 1 + ke. The score is
/// sum_i c_i - (pi_i (x) v_i) (gate rows).
ScoreHessian softmax_score_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  const std::size_t n = X.n_cols, k = m.n_experts(), pg = m.gating().n_params(), q = m.experts().n_params();
  const std::size_t p = pg + q * k + k, ke = q + 1;
  const Covariates::Rows xg = m.gate_x(X), xe = m.expert_x(X);  // X itself when shared
  const std::size_t dg = xg.mat().n_rows, qd = dg + 1, kf = k - 1;
  const ExpertFamily& fam = m.experts();
  const bool curved = !fam.linear_in_params();
  arma::vec lognorm(k);
  for (std::size_t j = 0; j < k; ++j) lognorm[j] = -0.5 * (kLog2Pi + std::log(m.nu()[j]));
  // z index -> flat index; expert j's z indices (its gate block, then e_j).
  arma::uvec zf(p);
  for (std::size_t t = 0; t < pg; ++t) zf[t] = t;
  for (std::size_t j = 0; j < k; ++j) {
    for (std::size_t t = 0; t < q; ++t) zf[pg + j * ke + t] = pg + j * q + t;
    zf[pg + j * ke + q] = pg + q * k + j;
  }
  std::vector<arma::uvec> zj(k);
  for (std::size_t j = 0; j < k; ++j) {
    const std::size_t ng = j < kf ? qd : 0;
    zj[j].set_size(ng + ke);
    for (std::size_t u = 0; u < ng; ++u) zj[j][u] = j * qd + u;
    for (std::size_t t = 0; t < ke; ++t) zj[j][ng + t] = pg + j * ke + t;
  }
  // Accumulated in z order, moved to the flat order at the end.
  const ScoreHessian zero{arma::vec(p, arma::fill::zeros), arma::mat(p, p, arma::fill::zeros)};
  ScoreHessian total = reduce_blocks<ScoreHessian>(n, zero, [&](ScoreHessian& acc, std::size_t a, std::size_t b) {
    const std::size_t B = b - a;
    const arma::mat Xg = column_view(xg.mat(), a, b), Xe = column_view(xe.mat(), a, b);
    arma::mat Pi = m.gating().log_weights(Xg);  // k x B: log pi, then pi
    arma::mat Res(k, B, arma::fill::none), Rr(k, B, arma::fill::none);
    std::vector<arma::mat> J(k);  // q x B per expert
    for (std::size_t j = 0; j < k; ++j) {
      arma::rowvec h;
      fam.mean_and_jacobian(Xe, m.eta().col(j), h, J[j]);
      const double nu = m.nu()[j];
      for (std::size_t i = 0; i < B; ++i) {
        const double r = y[a + i] - h[i];
        Res(j, i) = r;
        Rr(j, i) = Pi(j, i) + lognorm[j] - 0.5 * (r * r) / nu;
      }
    }
    arma::vec sum(B, arma::fill::none), lse(B, arma::fill::none);
    log_sum_exp_block(Rr.memptr(), k, B, Rr.memptr(), sum.memptr(), lse.memptr());
    Rr.each_row() /= sum.t();  // responsibilities
    exp_inplace(Pi.memptr(), Pi.n_elem);
    // Expert j's residual-weighted second derivatives of h, sum_i wres_i d2h_i, into its block.
    auto add_curvature = [&](std::size_t j, const arma::rowvec& wres) {
      const std::size_t o = pg + j * ke;
      arma::mat Hj(q, q, arma::fill::zeros);
      fam.add_weighted_hessian(Xe, m.eta().col(j), wres, Hj);
      acc.H.submat(o, o, o + q - 1, o + q - 1) += Hj;
    };
    if (p <= kLanesMaxP) {
      score_hessian_block_lanes(Xg, Pi, Rr, Res, J, m.nu(), q, acc);
      if (curved)
        for (std::size_t j = 0; j < k; ++j) add_curvature(j, (Rr.row(j) / m.nu()[j]) % Res.row(j));
      return;
    }
    arma::mat V(qd, B, arma::fill::none);
    V.row(0).ones();
    if (dg > 0) V.rows(1, dg) = Xg;
    // C: columns c_i; Pv: columns pi_i (x) v_i; W: one expert's sqrt(r_ij) w_ij.
    arma::mat C(p, B, arma::fill::none), Pv(pg, B, arma::fill::none);
    for (std::size_t l = 0; l < kf; ++l) {
      C.rows(l * qd, l * qd + qd - 1) = V.each_row() % Rr.row(l);
      Pv.rows(l * qd, l * qd + qd - 1) = V.each_row() % Pi.row(l);
    }
    for (std::size_t j = 0; j < k; ++j) {
      const double nu = m.nu()[j];
      arma::mat W(zj[j].n_elem, B, arma::fill::none);
      const std::size_t ng = j < kf ? qd : 0;
      for (std::size_t i = 0; i < B; ++i) {
        const double r = Res(j, i), rn = r / nu, rj = Rr(j, i), w = std::sqrt(rj);
        const double* Jc = J[j].colptr(i);
        double* c = C.colptr(i) + pg + j * ke;
        double* wc = W.colptr(i);
        const double* vc = V.colptr(i);
        for (std::size_t u = 0; u < ng; ++u) wc[u] = w * vc[u];
        for (std::size_t t = 0; t < q; ++t) {
          const double e = Jc[t] * rn;
          c[t] = rj * e;
          wc[ng + t] = w * e;
        }
        const double e = 0.5 * (r * rn - 1.0);
        c[q] = rj * e;
        wc[ng + q] = w * e;
      }
      acc.H.submat(zj[j], zj[j]) += W * W.t();
      if (j < kf) acc.H.submat(j * qd, j * qd, j * qd + qd - 1, j * qd + qd - 1) -= (V.each_row() % Pi.row(j)) * V.t();
    }
    acc.g += arma::sum(C, 1);
    if (pg > 0) {
      acc.g.head(pg) -= arma::sum(Pv, 1);
      acc.H.submat(0, 0, pg - 1, pg - 1) += Pv * Pv.t();
    }
    acc.H -= C * C.t();
    // Expert j's second derivatives in (eta_j, log nu_j), weighted by r_ij:
    //   (-J J^T + res d2h) / nu, -res J / nu, -res^2 / (2 nu).
    for (std::size_t j = 0; j < k; ++j) {
      const std::size_t o = pg + j * ke, vi = o + q;
      const arma::rowvec wr = Rr.row(j) / m.nu()[j];
      const arma::rowvec wres = wr % Res.row(j);
      acc.H.submat(o, o, o + q - 1, o + q - 1) -= (J[j].each_row() % wr) * J[j].t();
      if (curved) add_curvature(j, wres);
      const arma::vec Bev = -J[j] * wres.t();
      acc.H.submat(o, vi, o + q - 1, vi) += Bev;
      acc.H.submat(vi, o, vi, o + q - 1) += Bev.t();
      acc.H(vi, vi) -= 0.5 * arma::dot(wres, Res.row(j));
    }
  });
  ScoreHessian out{arma::vec(p), arma::mat(p, p)};
  out.g.elem(zf) = total.g;
  out.H.submat(zf, zf) = 0.5 * (total.H + total.H.t());
  return out;
}

bool softmax_gate(const GaussianMoE& m) { return typeid(m.gating()) == typeid(SoftmaxGating); }

}  // namespace

ScoreHessian loglik_score_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  check_gaussian(m, X, y, "loglik_score_hessian");
  if (softmax_gate(m)) return softmax_score_hessian(m, X, y);
  return ScoreHessian{score(m, X, y), loglik_hessian_general(m, X, y)};
}

arma::mat loglik_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  check_gaussian(m, X, y, "loglik_hessian");
  if (softmax_gate(m)) return softmax_score_hessian(m, X, y).H;
  return loglik_hessian_general(m, X, y);
}

arma::mat loglik_hessian_general(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  check_gaussian(m, X, y, "loglik_hessian");
  const std::size_t n = X.n_cols, k = m.n_experts(), pg = m.gating().n_params(), q = m.experts().n_params();
  const std::size_t p = pg + q * k + k;
  const Covariates::Rows xg = m.gate_x(X), xe = m.expert_x(X);  // X itself when shared
  // One pass over blocks: per block the responsibilities (memory: no k x n
  // matrix), the gate's part sum_ij r_ij d2 log pi_ij, the outer products and
  // the experts' second derivatives.
  // Gates without an analytic q_hessian return an empty matrix (for every input:
  // the Gating contract): one observation tells, before the pass.
  if (pg > 0 && n > 0) {
    const arma::mat H1 = m.gating().q_hessian(xg.mat().cols(0, 0), m.responsibilities(X.cols(0, 0), y.cols(0, 0)));
    if (H1.n_rows != pg || H1.n_cols != pg) return {};
  }
  arma::mat H = reduce_blocks<arma::mat>(n, arma::mat(p, p, arma::fill::zeros), [&](arma::mat& acc, std::size_t a,
                                                                                       std::size_t b) {
    const std::size_t B = b - a;
    const arma::mat Xb = X.cols(a, b - 1);
    const arma::rowvec yb = y.cols(a, b - 1);
    const arma::mat R = m.responsibilities(Xb, yb);  // k x B
    const arma::mat Xg = xg.mat().cols(a, b - 1), Xe = xe.mat().cols(a, b - 1);
    if (pg > 0) acc.submat(0, 0, pg - 1, pg - 1) += m.gating().q_hessian(Xg, R);
    arma::mat G(p, B, arma::fill::zeros);  // columns g_i
    std::vector<arma::mat> gate_grad;      // per expert j: d log pi_j / d theta_gate (pg x B)
    if (pg > 0) gate_grad = m.gating().log_weight_gradients_obs(Xg);
    for (std::size_t j = 0; j < k; ++j) {
      const arma::rowvec rj = R.row(j);
      const double nu = m.nu()[j];
      const arma::vec eta = m.eta().col(j);
      const arma::rowvec res = yb - m.experts().mean(Xe, eta);
      const arma::mat J = m.experts().jacobian(Xe, eta);  // q x B
      const std::size_t o = pg + j * q, v = pg + q * k + j;
      arma::mat A(p, B, arma::fill::zeros);  // columns d a_ij
      if (pg > 0) {
        A.rows(0, pg - 1) = gate_grad[j];
        // log pi_ij = -inf (a top-K gate's unselected expert) has r_ij = 0: no contribution.
        A.elem(arma::find_nonfinite(A)).zeros();
      }
      A.rows(o, o + q - 1) = J.each_row() % (res / nu);
      A.row(v) = 0.5 * (res % res / nu - 1.0);
      const arma::mat Ar = A.each_row() % rj;
      acc += Ar * A.t();
      G += Ar;
      // d2 a_ij in expert j's (eta_j, log nu_j): (-J J^T + res d2h) / nu, -res J / nu, -res^2 / (2 nu).
      const arma::rowvec wr = rj / nu;
      const arma::mat Hh = m.experts().hessian(Xe, eta);  // q*q x B, row u*q+w = d2h / deta_u deta_w
      arma::mat Bee = -(J.each_row() % wr) * J.t();
      Bee += arma::reshape(Hh * (wr % res).t(), q, q);
      acc.submat(o, o, o + q - 1, o + q - 1) += Bee;
      const arma::vec Bev = -J * (wr % res).t();
      acc.submat(o, v, o + q - 1, v) += Bev;
      acc.submat(v, o, v, o + q - 1) += Bev.t();
      acc(v, v) -= 0.5 * arma::accu(wr % res % res);
    }
    acc -= G * G.t();
  });
  return 0.5 * (H + H.t());
}

arma::mat score_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, double rel_step) {
  const arma::vec theta = m.flat_params();
  const std::size_t p = theta.n_elem;
  arma::mat H(p, p);
  GaussianMoE w = m;
  for (std::size_t a = 0; a < p; ++a) {
    const double h = rel_step * std::max(1.0, std::abs(theta[a]));
    arma::vec tp = theta, tm = theta;
    tp[a] += h;
    tm[a] -= h;
    w.set_flat_params(tp);
    const arma::vec gp = score(w, X, y);
    w.set_flat_params(tm);
    const arma::vec gm = score(w, X, y);
    H.col(a) = (gp - gm) / (2 * h);
  }
  return 0.5 * (H + H.t());
}

arma::mat score_hessian_forward(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, const arma::vec& g0,
                                double rel_step) {
  const arma::vec theta = m.flat_params();
  const std::size_t p = theta.n_elem;
  if (g0.n_elem != p) throw InvalidArgument("score_hessian_forward: g0 has the wrong length");
  arma::mat H(p, p);
  GaussianMoE w = m;
  for (std::size_t a = 0; a < p; ++a) {
    arma::vec tp = theta;
    tp[a] += rel_step * std::max(1.0, std::abs(theta[a]));
    const double h = tp[a] - theta[a];  // the step actually taken (exact in floating point)
    w.set_flat_params(tp);
    H.col(a) = (score(w, X, y) - g0) / h;
  }
  return 0.5 * (H + H.t());
}

arma::mat numerical_hessian(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, double rel_step) {
  check_gaussian(m, X, y, "numerical_hessian");
  const arma::vec theta = m.flat_params();
  const std::size_t p = theta.n_elem;
  GaussianMoE w = m;
  auto ll = [&](const arma::vec& t) {
    w.set_flat_params(t);
    return w.log_likelihood(X, y);
  };
  arma::vec h(p);
  for (std::size_t a = 0; a < p; ++a) h[a] = rel_step * std::max(1.0, std::abs(theta[a]));
  const double l0 = ll(theta);
  arma::mat H(p, p);
  for (std::size_t a = 0; a < p; ++a) {
    arma::vec t = theta;
    t[a] = theta[a] + 2 * h[a];
    const double lp = ll(t);
    t[a] = theta[a] - 2 * h[a];
    const double lm = ll(t);
    H(a, a) = (lp - 2 * l0 + lm) / (4 * h[a] * h[a]);
    for (std::size_t b = a + 1; b < p; ++b) {
      double acc = 0;
      for (int sa : {1, -1})
        for (int sb : {1, -1}) {
          arma::vec u = theta;
          u[a] += sa * h[a];
          u[b] += sb * h[b];
          acc += sa * sb * ll(u);
        }
      H(a, b) = H(b, a) = acc / (4 * h[a] * h[b]);
    }
  }
  return H;
}

double normal_two_sided_quantile(double level) {
  if (!(level > 0 && level < 1)) fail("normal_two_sided_quantile", "level", "must be in (0, 1)", level);
  return boost::math::quantile(boost::math::normal_distribution<double>(0.0, 1.0), 0.5 + 0.5 * level);
}

void SeOptions::validate() const {
  if (!(level > 0 && level < 1)) fail("SeOptions", "level", "must be in (0, 1)", level);
  if (!(cond_threshold > 1)) fail("SeOptions", "cond_threshold", "must be > 1", cond_threshold);
  if (!(rel_step > 0 && rel_step < 0.1)) fail("SeOptions", "rel_step", "must be in (0, 0.1)", rel_step);
}

namespace {

/// Solve A Z = B with the Cholesky factor L of A (A = L L^T).
arma::mat chol_solve(const arma::mat& L, const arma::mat& B) {
  const arma::mat Z = arma::solve(arma::trimatl(L), B);
  return arma::solve(arma::trimatu(L.t()), Z);
}

std::string direction_text(const arma::vec& v, const std::vector<std::string>& names) {
  const double mx = arma::abs(v).max();
  std::ostringstream os;
  os << std::setprecision(3);
  bool first = true;
  const arma::uvec order = arma::sort_index(arma::abs(v), "descend");
  for (auto c : order) {
    if (std::abs(v[c]) < 0.1 * mx) break;
    const double coef = v[c] / mx;
    os << (first ? (coef < 0 ? "-" : "") : (coef < 0 ? " - " : " + ")) << std::abs(coef) << "*" << names[c];
    first = false;
  }
  return os.str();
}

json vec_or_null(const arma::vec& v, std::size_t i) {
  if (v.n_elem <= i || !std::isfinite(v[i])) return nullptr;
  return v[i];
}

}  // namespace

StandardErrors standard_errors(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y, const SeOptions& opt) {
  opt.validate();
  check_gaussian(m, X, y, "standard_errors");
  StandardErrors r;
  r.names = m.flat_names();
  r.estimate = m.flat_params();
  r.level = opt.level;
  r.z = normal_two_sided_quantile(opt.level);
  r.n_obs = X.n_cols;
  // The analytic Hessian (Louis's identity) where the gate has one; else central differences of the score.
  r.information = -loglik_hessian(m, X, y);
  r.analytic_hessian = !r.information.is_empty();
  if (!r.analytic_hessian) r.information = -score_hessian(m, X, y, opt.rel_step);
  arma::vec lambda;
  arma::mat evec;
  if (!arma::eig_sym(lambda, evec, r.information)) throw std::runtime_error("standard_errors: eigen-decomposition failed");
  r.min_eigenvalue = lambda[0];
  r.condition_number = lambda[0] > 0 ? lambda[lambda.n_elem - 1] / lambda[0] : kInf;
  r.weakest_direction = direction_text(evec.col(0), r.names);
  arma::mat L;
  r.near_singular = !(r.condition_number <= opt.cond_threshold) || !arma::chol(L, r.information, "lower");
  if (r.near_singular) return r;
  const std::size_t p = r.estimate.n_elem;
  r.cov = chol_solve(L, arma::eye(p, p));
  r.cov = 0.5 * (r.cov + r.cov.t());
  r.se = arma::sqrt(r.cov.diag());
  const arma::mat S = score_obs(m, X, y);
  const arma::mat B = S * S.t();
  const arma::mat IB = chol_solve(L, B);              // I^-1 B
  r.cov_sandwich = chol_solve(L, IB.t());            // I^-1 B I^-1
  r.cov_sandwich = 0.5 * (r.cov_sandwich + r.cov_sandwich.t());
  r.se_sandwich = arma::sqrt(arma::clamp(r.cov_sandwich.diag(), 0.0, kInf));
  return r;
}

json StandardErrors::to_json() const {
  json j;
  j["method"] = std::string("observed information: ") +
                (analytic_hessian ? "the analytic Hessian of the log-likelihood (Louis's identity)"
                                  : "central differences of the analytic score (Hessian of the log-likelihood)") +
                "; sandwich I^-1 B I^-1 with B = sum of outer products of per-observation scores";
  j["parameterisation"] = "flat parameters: gating, expert parameters, log variances";
  j["level"] = level;
  j["z"] = z;
  j["n_obs"] = n_obs;
  j["condition_number"] = std::isfinite(condition_number) ? json(condition_number) : json("inf");
  j["min_eigenvalue"] = min_eigenvalue;
  j["near_singular"] = near_singular;
  j["weakest_direction"] = weakest_direction;
  if (near_singular)
    j["message"] = "the observed information is near singular (condition number above the threshold or not positive "
                   "definite; typical of over-fitted models): standard errors are not meaningful and are not reported";
  json ps = json::array();
  for (std::size_t i = 0; i < names.size(); ++i) {
    json e{{"name", names[i]}, {"estimate", estimate[i]}};
    e["se"] = vec_or_null(se, i);
    e["se_sandwich"] = vec_or_null(se_sandwich, i);
    if (!near_singular) {
      e["lower"] = estimate[i] - z * se[i];
      e["upper"] = estimate[i] + z * se[i];
    } else {
      e["lower"] = nullptr;
      e["upper"] = nullptr;
    }
    ps.push_back(e);
  }
  j["parameters"] = ps;
  return j;
}

std::string StandardErrors::table() const {
  std::ostringstream os;
  os << std::setprecision(4);
  if (near_singular) {
    os << "standard errors: not reported: the observed information is near singular (condition number "
       << condition_number << ", smallest eigenvalue " << min_eigenvalue << ");\n  weakest direction: "
       << weakest_direction << "\n";
    return os.str();
  }
  os << "standard errors (observed information; condition number " << condition_number << "), z = estimate / se, "
     << "two-sided p-values of estimate = 0, " << 100 * level << "% Wald intervals:\n";
  std::size_t w = 9;
  for (const auto& n : names) w = std::max(w, n.size());
  os << "  " << std::left << std::setw(static_cast<int>(w)) << "parameter" << std::right << std::setw(13) << "estimate"
     << std::setw(12) << "se" << std::setw(10) << "z" << std::setw(12) << "p-value" << std::setw(13) << "lower"
     << std::setw(13) << "upper" << std::setw(12) << "se(sandw)" << "\n";
  const arma::vec zv = z_values(), pv = p_values();
  for (std::size_t i = 0; i < names.size(); ++i)
    os << "  " << std::left << std::setw(static_cast<int>(w)) << names[i] << std::right << std::setw(13) << estimate[i]
       << std::setw(12) << se[i] << std::setw(10) << zv[i] << std::setw(12) << pv[i] << std::setw(13)
       << estimate[i] - z * se[i] << std::setw(13) << estimate[i] + z * se[i] << std::setw(12) << se_sandwich[i]
       << "\n";
  return os.str();
}

arma::vec StandardErrors::z_values() const {
  if (near_singular || se.n_elem != estimate.n_elem) return arma::vec(estimate.n_elem, arma::fill::value(arma::datum::nan));
  return estimate / se;
}

arma::vec StandardErrors::p_values() const {
  const arma::vec zv = z_values();
  arma::vec p(zv.n_elem);
  const boost::math::normal_distribution<double> nd(0.0, 1.0);
  for (std::size_t i = 0; i < zv.n_elem; ++i)
    p[i] = std::isfinite(zv[i]) ? 2 * boost::math::cdf(boost::math::complement(nd, std::abs(zv[i]))) : arma::datum::nan;
  return p;
}

std::string StandardErrors::coefficients_csv() const {
  std::ostringstream os;
  os << "parameter,estimate,se,z,p_value,lower,upper,se_sandwich,level\n";
  const arma::vec zv = z_values(), pv = p_values();
  for (std::size_t i = 0; i < names.size(); ++i) {
    const bool ok = !near_singular && se.n_elem == estimate.n_elem;
    const double s_i = ok ? se[i] : arma::datum::nan;
    const double ss_i = !near_singular && se_sandwich.n_elem == estimate.n_elem ? se_sandwich[i] : arma::datum::nan;
    os << csv_field(names[i]) << ',' << format_double(estimate[i]) << ',' << format_double(s_i) << ','
       << format_double(zv[i]) << ',' << format_double(pv[i]) << ',' << format_double(estimate[i] - z * s_i) << ','
       << format_double(estimate[i] + z * s_i) << ',' << format_double(ss_i) << ',' << format_double(level) << '\n';
  }
  return os.str();
}

json standard_errors_json(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  return standard_errors(m, X, y).to_json();
}

// ---------------------------------------------------------------------------
// Bootstrap

void BootstrapOptions::validate() const {
  if (replicates < 1) fail("BootstrapOptions", "replicates", "must be >= 1", replicates);
  if (threads < 0) fail("BootstrapOptions", "threads", "must be >= 0", threads);
  if (!(level > 0 && level < 1)) fail("BootstrapOptions", "level", "must be in (0, 1)", level);
  if (kmeans_starts < 0) fail("BootstrapOptions", "kmeans_starts", "must be >= 0", kmeans_starts);
  if (!estimator_registry().count(estimator))
    throw InvalidArgument("BootstrapOptions: unknown estimator '" + estimator + "'");
  em.validate();
}

namespace {

/// Quantile of sorted values (R type 7), NaN for an empty sample.
double quantile_sorted(const arma::vec& s, double p) {
  if (s.is_empty()) return arma::datum::nan;
  return quantile(arma::conv_to<std::vector<double>>::from(s), p);
}

double objective(const GaussianMoE& m, const arma::mat& X, const arma::rowvec& y) {
  if (m.kind() == ModelKind::gaussian) return m.log_likelihood(X, y);
  return -arma::accu(arma::square(y - m.regression_function(X)));
}

}  // namespace

BootstrapResult bootstrap(const GaussianMoE& model, const arma::mat& X, const arma::rowvec& y,
                          const BootstrapOptions& opt, const std::function<void(int, int)>& progress) {
  opt.validate();
  if (X.n_cols != y.n_elem) throw InvalidArgument("bootstrap: X and y have different numbers of observations");
  if (X.n_rows != model.dim()) fail("bootstrap", "dimension of x", "must be " + std::to_string(model.dim()), X.n_rows);
  const auto t0 = std::chrono::steady_clock::now();
  const std::size_t n = X.n_cols, k = model.n_experts();
  BootstrapResult res;
  res.names = model.flat_names();
  // Expert parameters in canonical form (ExpertFamily::canonical: relu
  // rescaling, odd-activation sign flips, unit order), so that the estimate
  // and every replicate are points of the same chart.
  GaussianMoE ref = model;
  for (std::size_t j = 0; j < model.n_experts(); ++j) ref.eta().col(j) = model.experts().canonical(model.eta().col(j));
  res.estimate = ref.flat_params();
  res.level = opt.level;
  res.seed = opt.seed;
  res.kmeans_starts = opt.kmeans_starts;
  res.estimator = opt.estimator;
  const std::size_t p = res.estimate.n_elem;
  const int B = opt.replicates;
  res.draws.set_size(B, p);
  res.draws.fill(arma::datum::nan);
  res.errors.assign(B, "");
  res.from_model.assign(B, 0);
  const auto& est = estimator_registry().at(opt.estimator);
  FitOptions base;
  base.n_experts = k;
  base.gating = model.gating().family_json();
  base.expert = model.experts().family_json();
  base.covariates = model.covariates();
  base.estimator = opt.estimator;
  base.em = opt.em;
  base.threads = 1;
  base.n_starts = std::max(1, opt.kmeans_starts);
  base.init.kind = InitKind::kmeans;
  int done = 0;
#ifdef _OPENMP
  const int nthreads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic) num_threads(nthreads)
#endif
  for (int b = 0; b < B; ++b) {
    try {
      Rng rng(derive_seed(opt.seed, {static_cast<std::uint64_t>(b)}));
      arma::uvec idx(n);
      for (auto& v : idx) v = rng.integer(0, n - 1);
      const arma::mat Xb = X.cols(idx);
      const arma::rowvec yb = y.cols(idx);
      FitOptions fo = base;
      fo.seed = derive_seed(opt.seed, {static_cast<std::uint64_t>(b), 1});
      GaussianMoE best = model;
      est.run(best, Xb, yb, fo);
      double best_obj = objective(best, Xb, yb);
      int from_model = 1;
      if (!std::isfinite(best_obj)) best_obj = -kInf;
      if (opt.kmeans_starts > 0) {
        try {
          FitResult fr = fit(Xb, yb, fo);
          const double o = objective(fr.model, Xb, yb);
          if (std::isfinite(o) && o > best_obj) best = fr.model, best_obj = o, from_model = 0;
        } catch (const std::exception&) {
          // k-means starts may fail on a degenerate resample; the model start stands.
        }
      }
      if (!std::isfinite(best_obj)) throw std::runtime_error("non-finite objective");
      best.permute(match_experts(best, model));
      // Resolve parameter symmetries (ffn sign flips, unit order, relu scale)
      // towards the estimate, in canonical form like it.
      const auto& fam = best.experts();
      for (std::size_t j = 0; j < k; ++j) {
        const arma::vec target = ref.eta().col(j);
        arma::vec pick = fam.canonical(best.eta().col(j));
        double dist = arma::norm(pick - target);
        for (const auto& e : fam.equivalents(best.eta().col(j))) {
          const arma::vec c = fam.canonical(e);
          if (arma::norm(c - target) < dist) dist = arma::norm(c - target), pick = c;
        }
        best.eta().col(j) = pick;
      }
      res.draws.row(b) = best.flat_params().t();
      res.from_model[b] = from_model;
    } catch (const std::exception& e) {
      res.errors[b] = e.what();
    }
#ifdef _OPENMP
#pragma omp critical(moerate_bootstrap_progress)
#endif
    {
      ++done;
      if (progress) progress(done, B);
    }
  }
  res.lower.set_size(p);
  res.upper.set_size(p);
  res.se.set_size(p);
  res.mean.set_size(p);
  std::vector<arma::uword> good;
  for (int b = 0; b < B; ++b)
    if (res.errors[b].empty() && res.draws.row(b).is_finite()) good.push_back(b);
    else ++res.n_failed;
  const arma::uvec g(good);
  for (std::size_t c = 0; c < p; ++c) {
    const arma::vec v = arma::sort(arma::vec(res.draws.col(c)).elem(g));
    const double a = 0.5 * (1 - opt.level);
    res.lower[c] = quantile_sorted(v, a);
    res.upper[c] = quantile_sorted(v, 1 - a);
    res.mean[c] = v.is_empty() ? arma::datum::nan : arma::mean(v);
    res.se[c] = v.n_elem > 1 ? arma::stddev(v) : arma::datum::nan;
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

json BootstrapResult::to_json(bool with_draws) const {
  json j;
  j["method"] = "nonparametric bootstrap: rows resampled with replacement; each replicate refitted from the given "
                "model and from k-means starts (best objective kept), relabelled with match_experts; percentile "
                "intervals";
  j["replicates"] = draws.n_rows;
  j["failed"] = n_failed;
  j["seed"] = seed;
  j["level"] = level;
  j["kmeans_starts"] = kmeans_starts;
  j["estimator"] = estimator;
  int fm = 0;
  for (int v : from_model) fm += v;
  j["kept_model_start"] = fm;
  j["seconds"] = seconds;
  json ps = json::array();
  for (std::size_t c = 0; c < names.size(); ++c) {
    auto num = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    ps.push_back({{"name", names[c]},
                  {"estimate", estimate[c]},
                  {"lower", num(lower[c])},
                  {"upper", num(upper[c])},
                  {"se", num(se[c])},
                  {"mean", num(mean[c])}});
  }
  j["parameters"] = ps;
  if (with_draws) {
    json d = json::array();
    for (std::size_t b = 0; b < draws.n_rows; ++b) {
      json row = json::array();
      for (std::size_t c = 0; c < draws.n_cols; ++c)
        row.push_back(std::isfinite(draws(b, c)) ? json(draws(b, c)) : json(nullptr));
      d.push_back(row);
    }
    j["draws"] = d;
    json errs = json::array();
    for (std::size_t b = 0; b < errors.size(); ++b)
      if (!errors[b].empty()) errs.push_back({{"replicate", b}, {"error", errors[b]}});
    j["errors"] = errs;
  }
  return j;
}

std::string BootstrapResult::table() const {
  std::ostringstream os;
  os << std::setprecision(4);
  os << "bootstrap: " << draws.n_rows << " replicates (" << n_failed << " failed), seed " << seed << ", "
     << 100 * level << "% percentile intervals:\n";
  std::size_t w = 9;
  for (const auto& n : names) w = std::max(w, n.size());
  os << "  " << std::left << std::setw(static_cast<int>(w)) << "parameter" << std::right << std::setw(13) << "estimate"
     << std::setw(12) << "boot se" << std::setw(13) << "lower" << std::setw(13) << "upper" << "\n";
  for (std::size_t c = 0; c < names.size(); ++c)
    os << "  " << std::left << std::setw(static_cast<int>(w)) << names[c] << std::right << std::setw(13) << estimate[c]
       << std::setw(12) << se[c] << std::setw(13) << lower[c] << std::setw(13) << upper[c] << "\n";
  return os.str();
}

}  // namespace moerate
