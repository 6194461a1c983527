#include "moerate/experts/linear_expert.hpp"

#include "moerate/core/error.hpp"
#include "moerate/core/gram.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/parallel.hpp"

namespace moerate {

namespace {

/// a^T x + b for eta = (a, b) of length d + 1: the one order of operations of
/// mean() and of the M-step's sums of squares, so both give the same bits.
inline double affine_value(const double* eta, const double* x, std::size_t d) {
  double v = 0;
  for (std::size_t u = 0; u < d; ++u) v += eta[u] * x[u];
  return v + eta[d];
}

/// h_i = affine_value(eta, x_i, d) for the n columns of X; D > 0: d known at
/// compile time (the inner loop unrolled, the outer one vectorised; the same
/// operations, so the same bits).
template <std::size_t D>
void affine_values(const double* __restrict eta, const double* __restrict X, std::size_t d_run, std::size_t n,
                   double* __restrict h) {
  const std::size_t d = D > 0 ? D : d_run;
  for (std::size_t i = 0; i < n; ++i) h[i] = affine_value(eta, X + i * d, d);
}

void affine_values(const double* eta, const double* X, std::size_t d, std::size_t n, double* h) {
  switch (d) {
    case 1: return affine_values<1>(eta, X, d, n, h);
    case 2: return affine_values<2>(eta, X, d, n, h);
    case 3: return affine_values<3>(eta, X, d, n, h);
    default: return affine_values<0>(eta, X, d, n, h);
  }
}

}  // namespace

arma::rowvec LinearExpert::mean(const arma::mat& X, const arma::vec& eta) const {
  arma::rowvec h(X.n_cols, arma::fill::none);
  if (d_ <= 3) {
    affine_values(eta.memptr(), X.memptr(), d_, X.n_cols, h.memptr());
    return h;
  }
  // Feature-major blocks, lanes across observations: the operations of
  // affine_value, so the same bits as the M-step's sums of squares.
  for_blocks(X.n_cols, [&](std::size_t a, std::size_t b) {
    GramRows rows(d_);
    alignas(32) double hb[GramRows::kCap];
    for (std::size_t s = a; s < b; s += GramRows::kCap) {
      const std::size_t e = std::min(b, s + GramRows::kCap), S = e - s;
      rows.copy_columns(X.memptr(), d_, s, e, 0);
      affine_rows(rows.data(), rows.ld(), d_, eta.memptr(), rows.pad(S), hb);
      std::copy(hb, hb + S, h.memptr() + s);
    }
  });
  return h;
}

arma::mat LinearExpert::jacobian(const arma::mat& X, const arma::vec&) const {
  arma::mat J(d_ + 1, X.n_cols);
  J.rows(0, d_ - 1) = X;
  J.row(d_).ones();
  return J;
}

arma::mat LinearExpert::hessian(const arma::mat& X, const arma::vec&) const {
  return arma::zeros((d_ + 1) * (d_ + 1), X.n_cols);
}

namespace {

/// Weighted least squares by QR of the weighted design (n x (d+1)): the
/// fallback when the normal equations are ill-conditioned.
arma::vec weighted_least_squares_qr(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w) {
  const std::size_t d = X.n_rows, n = X.n_cols;
  const arma::rowvec sw = arma::sqrt(w);
  arma::mat Z(n, d + 1);
  Z.cols(0, d - 1) = (X.each_row() % sw).t();
  Z.col(d) = sw.t();
  const arma::vec ys = (y % sw).t();
  arma::vec beta;
  if (!arma::solve(beta, Z, ys, arma::solve_opts::no_approx)) beta.reset();
  return beta;
}

/// The normal equations sum_i w_i u_i u_i^T beta = sum_i w_i y_i u_i, u_i = (x_i, 1).
struct NormalEquations {
  arma::mat A;
  arma::vec b;
  NormalEquations& operator+=(const NormalEquations& o) {
    A += o.A;
    b += o.b;
    return *this;
  }
};

/// Adds the upper triangle of sum_i w_i u_i u_i^T (Q x Q, column-major) and
/// sum_i w_i y_i u_i over the columns a..b-1, u_i = (x_i, 1), Q = d + 1. The
/// weight of observation i is w[i * ws] (ws = k: a row of a k x n matrix).
template <std::size_t Q>
void add_normal_equations(const arma::mat& X, const arma::rowvec& y, const double* w, std::size_t ws, std::size_t a,
                          std::size_t b, double* A, double* rhs) {
  constexpr std::size_t d = Q - 1;
  // Even and odd observations in separate accumulators, added at the end (a
  // running sum waits for the previous add's latency every second observation).
  // Raw pointers: through arma's accessors the loop stayed scalar, with its
  // sums in memory.
  const double* __restrict xp = X.memptr();
  const double* __restrict yp = y.memptr();
  double Al[2][Q * Q] = {}, bl[2][Q] = {};
  auto one = [&](std::size_t i, double* __restrict Ah, double* __restrict bh) {
    const double wi = w[i * ws];
    const double* x = xp + i * d;
    // u = (x, 1) read in place: a copy into a local array was stored as
    // scalars and reloaded as a vector, which stalls store forwarding.
    auto u = [x](std::size_t t) -> double { return t + 1 < Q ? x[t] : 1.0; };
    const double wy = wi * yp[i];
    for (std::size_t c = 0; c < Q; ++c) {
      const double wc = wi * u(c);
      for (std::size_t r = 0; r <= c; ++r) Ah[c * Q + r] += wc * u(r);
      bh[c] += wy * u(c);
    }
  };
  std::size_t i = a;
  for (; i + 1 < b; i += 2) {
    one(i, Al[0], bl[0]);
    one(i + 1, Al[1], bl[1]);
  }
  if (i < b) one(i, Al[0], bl[0]);
  for (std::size_t t = 0; t < Q * Q; ++t) A[t] += Al[0][t] + Al[1][t];
  for (std::size_t t = 0; t < Q; ++t) rhs[t] += bl[0][t] + bl[1][t];
}

template <std::size_t D>
void add_sse_pair_d(const arma::mat& X, const arma::rowvec& y, const double* w, std::size_t ws, const double* e0,
                    const double* e1, std::size_t a, std::size_t b, double& s0, double& s1) {
  const std::size_t d = D > 0 ? D : X.n_rows;
  const double* __restrict xp = X.memptr();
  const double* __restrict yp = y.memptr();
  double t00 = 0, t01 = 0, t10 = 0, t11 = 0;
  auto one = [&](std::size_t i, double& u0, double& u1) {
    const double wi = w[i * ws];
    const double r0 = yp[i] - affine_value(e0, xp + i * d, d);
    const double r1 = yp[i] - affine_value(e1, xp + i * d, d);
    u0 += wi * r0 * r0;
    u1 += wi * r1 * r1;
  };
  std::size_t i = a;
  for (; i + 1 < b; i += 2) {
    one(i, t00, t10);
    one(i + 1, t01, t11);
  }
  if (i < b) one(i, t00, t10);
  s0 += t00 + t01;
  s1 += t10 + t11;
}

/// One expert's share of add_sse_pairs: weights w[i * ws], coefficients e0
/// and e1, sums added to s0 and s1.
struct SsePair {
  const double* w;
  const double* e0;
  const double* e1;
  double* s0;
  double* s1;
};

/// The sums of squares of several experts over the columns a..b-1 for d > 3,
/// in lanes over feature-major blocks, each block copied once for all of them
/// (per expert the same operations in the same order whatever the others).
void add_sse_pairs_lanes(const arma::mat& X, const arma::rowvec& y, std::size_t ws, const std::vector<SsePair>& pairs,
                         std::size_t a, std::size_t b) {
  const std::size_t d = X.n_rows, m = pairs.size();
  GramRows rows(d);
  alignas(32) double c[GramRows::kCap], r[GramRows::kCap];
  thread_local std::vector<double> lanes;  // two sums of kLanes per expert, reused
  lanes.assign(2 * kLanes * m, 0.0);
  for (std::size_t s = a; s < b; s += GramRows::kCap) {
    const std::size_t e = std::min(b, s + GramRows::kCap), S = e - s, P = GramRows::padded(S);
    rows.copy_columns(X.memptr(), d, s, e, 0);
    rows.pad(S);
    std::fill(c + S, c + P, 0.0);
    for (std::size_t j = 0; j < m; ++j) {
      for (std::size_t i = 0; i < S; ++i) c[i] = pairs[j].w[(s + i) * ws];
      for (std::size_t t = 0; t < 2; ++t) {
        affine_rows(rows.data(), rows.ld(), d, t == 0 ? pairs[j].e0 : pairs[j].e1, P, r);
        for (std::size_t i = 0; i < S; ++i) r[i] = y[s + i] - r[i];
        weighted_squares_add_lanes(c, r, P, lanes.data() + (2 * j + t) * kLanes);
      }
    }
  }
  for (std::size_t j = 0; j < m; ++j) {
    *pairs[j].s0 += lane_sum(lanes.data() + 2 * j * kLanes);
    *pairs[j].s1 += lane_sum(lanes.data() + (2 * j + 1) * kLanes);
  }
}

/// The weighted sums of squares at two coefficient vectors e0 and e1 over the
/// columns a..b-1, weights w[i * ws], added to s0 and s1 (for d <= 3 even and
/// odd observations summed apart, then together; lanes above; m_step and
/// m_step_all share it).
void add_sse_pair(const arma::mat& X, const arma::rowvec& y, const double* w, std::size_t ws, const double* e0,
                  const double* e1, std::size_t a, std::size_t b, double& s0, double& s1) {
  switch (X.n_rows) {
    case 1: return add_sse_pair_d<1>(X, y, w, ws, e0, e1, a, b, s0, s1);
    case 2: return add_sse_pair_d<2>(X, y, w, ws, e0, e1, a, b, s0, s1);
    case 3: return add_sse_pair_d<3>(X, y, w, ws, e0, e1, a, b, s0, s1);
    default: return add_sse_pairs_lanes(X, y, ws, {SsePair{w, e0, e1, &s0, &s1}}, a, b);
  }
}

/// The normal equations of m experts over the columns a..b-1 (d > 3), expert
/// j's weight of observation i at w[j + i * ws]: the moments of (x_i, 1, y_i)
/// summed in lanes over feature-major blocks (core/gram.hpp), each block
/// copied once for all m experts.
void add_normal_equations_lanes(const arma::mat& X, const arma::rowvec& y, const double* w, std::size_t ws,
                                std::size_t m, std::size_t a, std::size_t b, NormalEquations* out) {
  const std::size_t d = X.n_rows, q = d + 1, qa = d + 2, np = gram_pairs(qa) * kLanes;
  GramRows rows(qa);
  thread_local std::vector<double> lanes;  // reused: no allocation per block
  lanes.assign(m * np, 0.0);
  alignas(32) double c[GramRows::kCap];
  for (std::size_t s = a; s < b; s += GramRows::kCap) {
    const std::size_t e = std::min(b, s + GramRows::kCap), S = e - s, P = GramRows::padded(S);
    rows.copy_columns(X.memptr(), d, s, e, 0);
    rows.fill_row(d, 1.0, S);
    std::copy(y.memptr() + s, y.memptr() + e, rows.row(d + 1));
    rows.pad(S);
    std::fill(c + S, c + P, 0.0);
    for (std::size_t j = 0; j < m; ++j) {
      for (std::size_t i = 0; i < S; ++i) c[i] = w[j + (s + i) * ws];
      gram_add_lanes(rows.data(), rows.ld(), qa, c, P, lanes.data() + j * np);
    }
  }
  for (std::size_t j = 0; j < m; ++j) {
    const double* l = lanes.data() + j * np;
    double* A = out[j].A.memptr();
    for (std::size_t v = 0; v < q; ++v) {
      for (std::size_t u = 0; u <= v; ++u) A[v * q + u] += lane_sum(l + gram_index(u, v) * kLanes);
      out[j].b[v] += lane_sum(l + gram_index(v, q) * kLanes);
    }
  }
}

/// The normal equations of the columns a..b-1 into ne, weights w[i * ws]:
/// plain loops unrolled for q = d + 1 <= 4, lanes over feature-major blocks
/// above (add_normal_equations_lanes).
void add_normal_equations_block(const arma::mat& X, const arma::rowvec& y, const double* w, std::size_t ws,
                                std::size_t a, std::size_t b, NormalEquations& ne) {
  switch (X.n_rows + 1) {
    case 2: return add_normal_equations<2>(X, y, w, ws, a, b, ne.A.memptr(), ne.b.memptr());
    case 3: return add_normal_equations<3>(X, y, w, ws, a, b, ne.A.memptr(), ne.b.memptr());
    case 4: return add_normal_equations<4>(X, y, w, ws, a, b, ne.A.memptr(), ne.b.memptr());
    default: return add_normal_equations_lanes(X, y, w, ws, 1, a, b, &ne);
  }
}

/// Whether LAPACK's estimate rcond(C) > 1e-4 (C: the Cholesky factor of As,
/// which has a unit diagonal) surely holds: cond_2(C) = sqrt(cond_2(As)) is at
/// most the square root of Gershgorin's bound, the 1-norm condition at most q
/// times that, and rcond's estimate of |C^-1|_1 is a lower bound (the norm of
/// C^-1 at one vector), so the estimate is at least 1 / cond_1(C). A factor 10
/// of margin keeps round-off away. The estimate (a LAPACK call that costs more
/// than the solve for small q) is then skipped, and every decision is the one
/// it would have made (test: "unit_diagonal_cond_bound ...").
bool surely_conditioned(const arma::mat& As) {
  return double(As.n_rows) * std::sqrt(unit_diagonal_cond_bound(As)) < 1e3;
}

/// beta from the normal equations (A: upper triangle filled), after a
/// conditioning check on the equilibrated system D A D, D = diag(A)^(-1/2):
/// the error of beta grows like cond(A) eps, so above 1e8 (half the digits)
/// it is left to the QR of the weighted design (empty result).
arma::vec solve_normal_equations(NormalEquations ne) {
  ne.A = arma::symmatu(ne.A);
  const arma::vec diag = ne.A.diag();
  if (diag.is_finite() && arma::all(diag > 0)) {
    const arma::vec dsc = 1 / arma::sqrt(diag);
    const arma::mat As = ne.A % (dsc * dsc.t());
    arma::mat C;
    if (arma::chol(C, As, "lower") && (surely_conditioned(As) || arma::rcond(arma::trimatl(C)) > 1e-4)) {
      const arma::vec z = arma::solve(arma::trimatl(C), dsc % ne.b);
      const arma::vec beta = dsc % arma::solve(arma::trimatu(C.t()), z);
      if (beta.is_finite()) return beta;
    }
  }
  return {};
}

}  // namespace

arma::vec weighted_least_squares(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w) {
  const std::size_t q = X.n_rows + 1;
  // One pass over blocks of observations builds the normal equations ((d+1)^2 / 2
  // multiply-adds per observation, against ~15x that for QR of a weighted copy).
  const NormalEquations zero{arma::mat(q, q, arma::fill::zeros), arma::vec(q, arma::fill::zeros)};
  const NormalEquations ne = reduce_blocks<NormalEquations>(X.n_cols, zero, [&](NormalEquations& acc, std::size_t a,
                                                                                 std::size_t b) {
    add_normal_equations_block(X, y, w.memptr(), 1, a, b, acc);
  });
  const arma::vec beta = solve_normal_equations(ne);
  if (!beta.is_empty()) return beta;
  return weighted_least_squares_qr(X, y, w);
}

ExpertMStepResult LinearExpert::m_step(const arma::mat& X, const arma::rowvec& y,
                                       const arma::rowvec& w, arma::vec& eta,
                                       const ExpertMStepOptions&) const {
  ExpertMStepResult res;
  if (arma::accu(w) <= 0) {
    res.sse_before = res.sse_after = weighted_sse(X, y, w, eta);
    return res;
  }
  const arma::vec cand = weighted_least_squares(X, y, w);
  if (cand.n_elem != eta.n_elem || !cand.is_finite()) {
    res.sse_before = res.sse_after = weighted_sse(X, y, w, eta);
    return res;
  }
  // The sums of squares at the old and the new coefficients in one pass.
  const arma::vec2 sse = reduce_blocks<arma::vec2>(X.n_cols, arma::vec2(arma::fill::zeros),
                                                   [&](arma::vec2& acc, std::size_t a, std::size_t b) {
    add_sse_pair(X, y, w.memptr(), 1, eta.memptr(), cand.memptr(), a, b, acc[0], acc[1]);
  });
  res.sse_before = res.sse_after = sse[0];
  if (sse[1] <= sse[0]) {
    eta = cand;
    res.sse_after = sse[1];
    res.accepted_steps = 1;
  }
  return res;
}

namespace {

/// Pass 1 of m_step_all: every expert's normal equations and weight.
struct AllNormalEquations {
  std::vector<NormalEquations> ne;
  arma::vec weight;
  AllNormalEquations& operator+=(const AllNormalEquations& o) {
    for (std::size_t j = 0; j < ne.size(); ++j) ne[j] += o.ne[j];
    weight += o.weight;
    return *this;
  }
};

/// The chunk of each block of reduce_blocks over n observations (the chunks
/// its parallel loop gives to threads; blocks of one chunk run in order).
std::vector<std::uint32_t> chunks_of_blocks(std::size_t n) {
  const std::size_t nb = std::max<std::size_t>(1, (n + kObsBlock - 1) / kObsBlock);
  std::vector<std::uint32_t> chunk(nb, 0);
  if (nb <= 1) return chunk;
  const std::size_t nc = std::min(nb, kMaxChunks);
  for (std::size_t c = 0; c < nc; ++c)
    for (std::size_t bl = nb * c / nc; bl < nb * (c + 1) / nc; ++bl) chunk[bl] = static_cast<std::uint32_t>(c);
  return chunk;
}

/// LinearExpert's M-step of all experts (m_step_all, plan_m_step_all). Each
/// chunk's sums are kept apart and added in chunk order, block by block as
/// reduce_blocks adds them: the numbers are the same whether the gate's passes
/// carry the hooks or run_remaining runs them, for every thread count.
class LinearMStepPlan final : public ExpertMStepPlan {
public:
  LinearMStepPlan(std::size_t d, const arma::mat& X, const arma::rowvec& y, const arma::mat& R, arma::mat& eta)
      : d_(d), q_(d + 1), k_(R.n_rows), X_(X), y_(y), R_(R), eta_(eta), chunk_(chunks_of_blocks(X.n_cols)) {
    const std::size_t nc = std::size_t(chunk_.back()) + 1;
    parts_.assign(nc, AllNormalEquations{std::vector<NormalEquations>(k_, NormalEquations{arma::mat(q_, q_, arma::fill::zeros),
                                                                                           arma::vec(q_, arma::fill::zeros)}),
                                         arma::vec(k_, arma::fill::zeros)});
    sse_parts_.assign(nc, arma::mat(2, k_, arma::fill::zeros));
  }

  /// Pass 1: the normal equations of all experts, reading each block of X once
  /// (per expert the same operations, in the same order, as weighted_least_squares).
  void first_block(std::size_t a, std::size_t b) override {
    AllNormalEquations& acc = parts_[chunk_[a / kObsBlock]];
    for (std::size_t j = 0; j < k_; ++j) {
      const double* w = R_.memptr() + j;
      double s = 0;
      for (std::size_t i = a; i < b; ++i) s += w[i * k_];
      acc.weight[j] += s;
      if (q_ <= 4) add_normal_equations_block(X_, y_, w, k_, a, b, acc.ne[j]);
    }
    if (q_ > 4) add_normal_equations_lanes(X_, y_, R_.memptr(), k_, k_, a, b, acc.ne.data());
  }

  void first_done() override {
    AllNormalEquations all = std::move(parts_[0]);
    for (std::size_t c = 1; c < parts_.size(); ++c) all += parts_[c];
    parts_.clear();
    weight_ = all.weight;
    cand_.assign(k_, arma::vec());
    active_.assign(k_, 0);
    for (std::size_t j = 0; j < k_; ++j) {
      if (!(weight_[j] > kEmptyExpertWeight)) continue;
      active_[j] = 1;
      cand_[j] = solve_normal_equations(all.ne[j]);
      if (cand_[j].is_empty()) cand_[j] = weighted_least_squares_qr(X_, y_, R_.row(j));  // ill-conditioned: rare
      if (cand_[j].n_elem != q_ || !cand_[j].is_finite()) cand_[j] = eta_.col(j);       // keep the old coefficients
    }
    stage_ = 1;
  }

  /// Pass 2: every active expert's sums of squares at the old and the new coefficients.
  void trial_block(std::size_t a, std::size_t b) override {
    arma::mat& acc = sse_parts_[chunk_[a / kObsBlock]];
    if (d_ > 3) {  // one copy of the block for all experts
      std::vector<SsePair> pairs;
      for (std::size_t j = 0; j < k_; ++j)
        if (active_[j]) pairs.push_back({R_.memptr() + j, eta_.colptr(j), cand_[j].memptr(), &acc(0, j), &acc(1, j)});
      add_sse_pairs_lanes(X_, y_, k_, pairs, a, b);
      return;
    }
    for (std::size_t j = 0; j < k_; ++j) {
      if (!active_[j]) continue;
      add_sse_pair(X_, y_, R_.memptr() + j, k_, eta_.colptr(j), cand_[j].memptr(), a, b, acc(0, j), acc(1, j));
    }
  }

  void trial_done() override { stage_ = 2; }

  ExpertMStepAll finish() override {
    run_remaining(X_.n_cols);
    arma::mat sse = std::move(sse_parts_[0]);
    for (std::size_t c = 1; c < sse_parts_.size(); ++c) sse += sse_parts_[c];
    ExpertMStepAll out{std::vector<ExpertMStepResult>(k_), weight_};
    for (std::size_t j = 0; j < k_; ++j) {
      if (!active_[j]) continue;
      ExpertMStepResult& r = out.results[j];
      r.sse_before = r.sse_after = sse(0, j);
      if (sse(1, j) <= sse(0, j)) {
        eta_.col(j) = cand_[j];
        r.sse_after = sse(1, j);
        r.accepted_steps = 1;
      }
    }
    return out;
  }

private:
  std::size_t d_, q_, k_;
  const arma::mat& X_;
  const arma::rowvec& y_;
  const arma::mat& R_;
  arma::mat& eta_;
  std::vector<std::uint32_t> chunk_;
  std::vector<AllNormalEquations> parts_;
  std::vector<arma::mat> sse_parts_;
  arma::vec weight_;
  std::vector<arma::vec> cand_;
  std::vector<char> active_;
};

}  // namespace

std::unique_ptr<ExpertMStepPlan> LinearExpert::plan_m_step_all(const arma::mat& X, const arma::rowvec& y,
                                                               const arma::mat& R, arma::mat& eta,
                                                               const ExpertMStepOptions&) const {
  return std::make_unique<LinearMStepPlan>(d_, X, y, R, eta);
}

ExpertMStepAll LinearExpert::m_step_all(const arma::mat& X, const arma::rowvec& y, const arma::mat& R, arma::mat& eta,
                                        const ExpertMStepOptions& opt) const {
  return plan_m_step_all(X, y, R, eta, opt)->finish();
}

json LinearExpert::to_json(const arma::vec& eta) const {
  return json{{"a", arma::conv_to<std::vector<double>>::from(eta.head(d_))}, {"b", eta[d_]}};
}

arma::vec LinearExpert::from_json(const json& j, const std::string& where) const {
  arma::vec eta(d_ + 1);
  eta.head(d_) = json_vector(j, "a", d_, where);
  eta[d_] = json_number(j, "b", where);
  return eta;
}

arma::vec LinearExpert::initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                Rng&) const {
  arma::vec eta = weighted_least_squares(X, y, w);
  if (eta.n_elem != d_ + 1 || !eta.is_finite()) {
    eta.zeros(d_ + 1);
    eta[d_] = arma::accu(w % y) / std::max(arma::accu(w), 1e-300);
  }
  return eta;
}

MOERATE_REGISTER_EXPERT("linear", "linear experts a^T x + b (weighted least squares M-step)",
                        [](const json& spec, std::size_t d) -> std::shared_ptr<ExpertFamily> {
                          check_spec_keys(spec, {}, "linear");
                          return std::make_shared<LinearExpert>(d);
                        });

}  // namespace moerate
