#include "moerate/experts/linear_expert.hpp"

#include "moerate/core/error.hpp"
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

}  // namespace

arma::rowvec LinearExpert::mean(const arma::mat& X, const arma::vec& eta) const {
  if (d_ > kLoopAffineMaxD) {
    arma::rowvec h = eta.head(d_).t() * X;
    h += eta[d_];
    return h;
  }
  const std::size_t n = X.n_cols, d = d_;
  arma::rowvec h(n, arma::fill::none);
  for (std::size_t i = 0; i < n; ++i) h[i] = affine_value(eta.memptr(), X.colptr(i), d);
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
/// sum_i w_i y_i u_i over the columns a..b-1, u_i = (x_i, 1), Q = d + 1.
template <std::size_t Q>
void add_normal_equations(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w, std::size_t a,
                          std::size_t b, double* A, double* rhs) {
  constexpr std::size_t d = Q - 1;
  double Al[Q * Q] = {}, bl[Q] = {}, u[Q];
  u[d] = 1;
  for (std::size_t i = a; i < b; ++i) {
    const double wi = w[i];
    const double* x = X.colptr(i);
    for (std::size_t t = 0; t < d; ++t) u[t] = x[t];
    const double wy = wi * y[i];
    for (std::size_t c = 0; c < Q; ++c) {
      const double wc = wi * u[c];
      for (std::size_t r = 0; r <= c; ++r) Al[c * Q + r] += wc * u[r];
      bl[c] += wy * u[c];
    }
  }
  for (std::size_t t = 0; t < Q * Q; ++t) A[t] += Al[t];
  for (std::size_t t = 0; t < Q; ++t) rhs[t] += bl[t];
}

}  // namespace

arma::vec weighted_least_squares(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w) {
  const std::size_t d = X.n_rows, q = d + 1;
  // One pass over blocks of observations builds the normal equations ((d+1)^2 / 2
  // multiply-adds per observation, against ~15x that for QR of a weighted copy).
  const NormalEquations zero{arma::mat(q, q, arma::fill::zeros), arma::vec(q, arma::fill::zeros)};
  NormalEquations ne = reduce_blocks<NormalEquations>(X.n_cols, zero, [&](NormalEquations& acc, std::size_t a,
                                                                           std::size_t b) {
    switch (q) {  // plain loops (BLAS wins above d = 3), unrolled for a fixed q
      case 2: return add_normal_equations<2>(X, y, w, a, b, acc.A.memptr(), acc.b.memptr());
      case 3: return add_normal_equations<3>(X, y, w, a, b, acc.A.memptr(), acc.b.memptr());
      case 4: return add_normal_equations<4>(X, y, w, a, b, acc.A.memptr(), acc.b.memptr());
      default: break;
    }
    arma::mat U(q, b - a);
    U.rows(0, d - 1) = X.cols(a, b - 1);
    U.row(d).ones();
    const arma::rowvec sw = arma::sqrt(w.cols(a, b - 1));
    U.each_row() %= sw;
    acc.A += U * U.t();
    acc.b += U * (y.cols(a, b - 1) % sw).t();
  });
  ne.A = arma::symmatu(ne.A);
  // Conditioning check on the equilibrated system D A D, D = diag(A)^(-1/2):
  // the error of beta grows like cond(A) eps, so above 1e8 (half the digits)
  // the QR of the weighted design decides instead.
  const arma::vec diag = ne.A.diag();
  if (diag.is_finite() && arma::all(diag > 0)) {
    const arma::vec dsc = 1 / arma::sqrt(diag);
    const arma::mat As = ne.A % (dsc * dsc.t());
    arma::mat C;
    if (arma::chol(C, As, "lower") && arma::rcond(arma::trimatl(C)) > 1e-4) {  // cond(As) = cond(C)^2 < 1e8
      const arma::vec z = arma::solve(arma::trimatl(C), dsc % ne.b);
      const arma::vec beta = dsc % arma::solve(arma::trimatu(C.t()), z);
      if (beta.is_finite()) return beta;
    }
  }
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
    const std::size_t d = d_;
    double s0 = 0, s1 = 0;
    for (std::size_t i = a; i < b; ++i) {
      const double r0 = y[i] - affine_value(eta.memptr(), X.colptr(i), d);
      const double r1 = y[i] - affine_value(cand.memptr(), X.colptr(i), d);
      s0 += w[i] * r0 * r0;
      s1 += w[i] * r1 * r1;
    }
    acc[0] += s0;
    acc[1] += s1;
  });
  res.sse_before = res.sse_after = sse[0];
  if (sse[1] <= sse[0]) {
    eta = cand;
    res.sse_after = sse[1];
    res.accepted_steps = 1;
  }
  return res;
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
