#include "moerate/experts/ffn_expert.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "moerate/core/error.hpp"
#include "moerate/core/gram.hpp"
#include "moerate/experts/linear_expert.hpp"

namespace moerate {

FfnExpert::FfnExpert(std::size_t d, Activation act, std::size_t units, bool bias)
    : ExpertFamily(d), act_(act), units_(units), bias_(bias) {
  if (units < 1) fail("FfnExpert", "number of hidden units", "must be >= 1", units);
}

json FfnExpert::family_json() const {
  json j{{"family", "ffn"}, {"activation", activation_name(act_)}};
  if (!bias_) j["bias"] = false;  // absent means bias = true (files written before the option)
  if (units_ > 1) j["units"] = units_;
  return j;
}

std::vector<ParamBlock> FfnExpert::blocks() const {
  if (units_ == 1) {
    if (!bias_) return {{"a", 0, d_}, {"c", d_, 1}};
    return {{"a", 0, d_}, {"b", d_, 1}, {"c", d_ + 1, 1}};
  }
  std::vector<ParamBlock> b{{"c0", 0, 1}};
  for (std::size_t m = 0; m < units_; ++m) {
    const std::string s = std::to_string(m + 1);
    b.push_back({"w" + s, wo(m), d_});
    if (bias_) b.push_back({"u" + s, wo(m) + d_, 1});
    b.push_back({"c" + s, co(m), 1});
  }
  return b;
}

arma::rowvec FfnExpert::mean(const arma::mat& X, const arma::vec& eta) const {
  arma::rowvec h(X.n_cols, arma::fill::value(c0(eta)));
  for (std::size_t m = 0; m < units_; ++m) {
    arma::rowvec z = pre(X, eta, m);
    activate_all(act_, z.memptr(), z.n_elem, z.memptr());
    h += eta[co(m)] * z;
  }
  return h;
}

void FfnExpert::mean_and_jacobian(const arma::mat& X, const arma::vec& eta, arma::rowvec& h, arma::mat& J) const {
  const std::size_t n = X.n_cols;
  if (units_ == 1) {
    // One unit, one pass writing each observation's column of J: h = c phi(z),
    // J = (c phi'(z) x, [c phi'(z)], phi(z)) (the same arithmetic as below).
    const std::size_t p = n_params(), d = d_;
    const double c = eta[co(0)];
    arma::rowvec z = pre(X, eta, 0);
    h.set_size(n);
    J.set_size(p, n);
    arma::rowvec p1(n);
    activate_all(act_, z.memptr(), n, z.memptr(), p1.memptr());  // z now holds phi(z)
    for (std::size_t i = 0; i < n; ++i) {
      const double pc = p1[i] * c;
      const double* x = X.colptr(i);
      double* Ji = J.colptr(i);
      for (std::size_t u = 0; u < d; ++u) Ji[u] = x[u] * pc;
      if (bias_) Ji[d] = pc;
      Ji[p - 1] = z[i];
      h[i] = 0.0 + c * z[i];
    }
    return;
  }
  h.set_size(n);
  h.fill(c0(eta));
  J.set_size(n_params(), n);
  if (units_ > 1) J.row(0).ones();
  arma::rowvec p1(n);
  for (std::size_t m = 0; m < units_; ++m) {
    const std::size_t o = wo(m);
    arma::rowvec z = pre(X, eta, m);
    const double c = eta[co(m)];
    activate_all(act_, z.memptr(), n, z.memptr(), p1.memptr());  // z now holds phi(z)
    p1 *= c;
    J.rows(o, o + d_ - 1) = X.each_row() % p1;
    if (bias_) J.row(o + d_) = p1;
    J.row(co(m)) = z;
    h += c * z;
  }
}

namespace {

/// FfnExpert::gauss_newton_block for one unit on d = 1: J = (c phi' x, [c phi'], phi)
/// (P = 3 with the bias, 2 without), h = c phi, summed in lanes across
/// observations (core/gram.hpp: observation i in lane i mod 4, the lanes added
/// in a fixed order; the same bits on every instruction set).
void gauss_newton_one_unit(bool bias, const double* x, const double* phi, const double* d1, double c,
                           const double* y, const double* w, std::size_t n, arma::mat& A, arma::vec& g, double& sse) {
  const std::size_t P = bias ? 3 : 2, T = gram_pairs(P);
  double acc[(gram_pairs(3) + 3 + 1) * kLanes] = {};  // room for P = 3
  const std::size_t S = n / kLanes * kLanes;
  gauss_newton_lanes(x, phi, d1, c, y, w, S, bias, acc);
  if (S < n) {  // the tail padded with zero weights
    double xt[kLanes] = {}, pt[kLanes] = {}, dt[kLanes] = {}, yt[kLanes] = {}, wt[kLanes] = {};
    for (std::size_t i = S; i < n; ++i) {
      xt[i - S] = x[i], pt[i - S] = phi[i], dt[i - S] = d1[i], yt[i - S] = y[i], wt[i - S] = w[i];
    }
    gauss_newton_lanes(xt, pt, dt, c, yt, wt, kLanes, bias, acc);
  }
  for (std::size_t v = 0; v < P; ++v) {
    g[v] += lane_sum(acc + (T + v) * kLanes);
    for (std::size_t u = 0; u <= v; ++u) A(u, v) += lane_sum(acc + gram_index(u, v) * kLanes);
  }
  sse += lane_sum(acc + (T + P) * kLanes);
}

}  // namespace

bool FfnExpert::gauss_newton_block(const arma::mat& Xb, const double* y, const double* w, const arma::vec& eta,
                                   arma::mat& A, arma::vec& g, double& sse) const {
  if (units_ != 1 || d_ != 1) return false;
  const std::size_t n = Xb.n_cols;
  arma::rowvec z = pre(Xb, eta, 0);
  arma::rowvec p1(n, arma::fill::none);
  activate_all(act_, z.memptr(), n, z.memptr(), p1.memptr());  // z now holds phi(z)
  const double c = eta[co(0)];
  gauss_newton_one_unit(bias_, Xb.memptr(), z.memptr(), p1.memptr(), c, y, w, n, A, g, sse);
  return true;
}

arma::mat FfnExpert::jacobian(const arma::mat& X, const arma::vec& eta) const {
  arma::rowvec h;
  arma::mat J;
  mean_and_jacobian(X, eta, h, J);
  return J;
}

arma::mat FfnExpert::hessian(const arma::mat& X, const arma::vec& eta) const {
  const std::size_t q = n_params(), n = X.n_cols;
  // Per unit, with the extended covariate v = (x, 1) (v = x without bias) and z = w^T x + u:
  //   d2h/dv_s dv_t = c phi''(z) v_s v_t,   d2h/dv_s dc = phi'(z) v_s,   d2h/dc2 = 0.
  // Different units (and c0) do not interact.
  const std::size_t nv = d_ + (bias_ ? 1 : 0);  // entries of v (the unit's inner parameters)
  arma::mat V(nv, n);
  V.rows(0, d_ - 1) = X;
  if (bias_) V.row(d_).ones();
  arma::mat H(q * q, n, arma::fill::zeros);
  for (std::size_t m = 0; m < units_; ++m) {
    const std::size_t o = wo(m), oc = co(m);
    const arma::rowvec z = pre(X, eta, m);
    const double c = eta[oc];
    arma::rowvec p1(n), p2(n);
    activate_all(act_, z.memptr(), n, nullptr, p1.memptr(), p2.memptr());
    for (std::size_t s = 0; s < nv; ++s) {
      for (std::size_t t = 0; t < nv; ++t) H.row((o + s) * q + o + t) = c * p2 % V.row(s) % V.row(t);
      H.row((o + s) * q + oc) = p1 % V.row(s);
      H.row(oc * q + o + s) = p1 % V.row(s);
    }
  }
  return H;
}

void FfnExpert::add_weighted_hessian(const arma::mat& X, const arma::vec& eta, const arma::rowvec& w,
                                     arma::mat& A) const {
  // hessian()'s entries summed with the weights in one pass per unit (v = (x, 1),
  // or x without bias): sum_i w_i c phi''(z_i) v_s v_t and sum_i w_i phi'(z_i) v_s.
  const std::size_t n = X.n_cols, nv = d_ + (bias_ ? 1 : 0);
  arma::rowvec p1(n, arma::fill::none), p2(n, arma::fill::none);
  std::vector<double> ss(nv * nv), sc(nv), v(nv);
  for (std::size_t m = 0; m < units_; ++m) {
    const std::size_t o = wo(m), oc = co(m);
    const arma::rowvec z = pre(X, eta, m);
    activate_all(act_, z.memptr(), n, nullptr, p1.memptr(), p2.memptr());
    std::fill(ss.begin(), ss.end(), 0.0);
    std::fill(sc.begin(), sc.end(), 0.0);
    for (std::size_t i = 0; i < n; ++i) {
      const double* x = X.colptr(i);
      for (std::size_t s = 0; s < d_; ++s) v[s] = x[s];
      if (bias_) v[d_] = 1.0;
      const double a2 = w[i] * p2[i], a1 = w[i] * p1[i];
      for (std::size_t s = 0; s < nv; ++s) {
        sc[s] += a1 * v[s];
        const double as = a2 * v[s];
        for (std::size_t t = 0; t <= s; ++t) ss[s * nv + t] += as * v[t];
      }
    }
    const double c = eta[oc];
    for (std::size_t s = 0; s < nv; ++s) {
      for (std::size_t t = 0; t <= s; ++t) {
        const double h = c * ss[s * nv + t];
        A(o + s, o + t) += h;
        if (s != t) A(o + t, o + s) += h;
      }
      A(o + s, oc) += sc[s];
      A(oc, o + s) += sc[s];
    }
  }
}

json FfnExpert::to_json(const arma::vec& eta) const {
  if (units_ == 1) {
    json j{{"a", arma::conv_to<std::vector<double>>::from(eta.head(d_))}, {"c", eta[co(0)]}};
    if (bias_) j["b"] = eta[d_];
    return j;
  }
  json u = json::array();
  for (std::size_t m = 0; m < units_; ++m) {
    const std::size_t o = wo(m);
    json uj{{"w", arma::conv_to<std::vector<double>>::from(eta.subvec(o, o + d_ - 1))}, {"c", eta[co(m)]}};
    if (bias_) uj["u"] = eta[o + d_];
    u.push_back(uj);
  }
  return json{{"c0", eta[0]}, {"units", u}};
}

arma::vec FfnExpert::from_json(const json& j, const std::string& where) const {
  arma::vec eta(n_params());
  if (units_ == 1) {
    if (!bias_ && j.is_object() && j.contains("b"))
      throw InvalidArgument(where + ".b: the family has bias=false (h = c * phi(a^T x)), so an expert has "
                            "no \"b\"; remove it or use an ffn family with bias");
    eta.head(d_) = json_vector(j, "a", d_, where);
    if (bias_) eta[d_] = json_number(j, "b", where);
    eta[co(0)] = json_number(j, "c", where);
    return eta;
  }
  eta[0] = json_number(j, "c0", where);
  if (!j.contains("units") || !j["units"].is_array() || j["units"].size() != units_)
    throw InvalidArgument(where + ".units: expected an array of " + std::to_string(units_) +
                          (bias_ ? " hidden units {\"w\":[..],\"u\":..,\"c\":..}" : " hidden units {\"w\":[..],\"c\":..}") +
                          " (the family has units=" +
                          std::to_string(units_) + "); got " + (j.contains("units") ? j["units"].dump() : "nothing"));
  for (std::size_t m = 0; m < units_; ++m) {
    const std::string wm = where + ".units[" + std::to_string(m) + "]";
    const json& uj = j["units"][m];
    const std::size_t o = wo(m);
    if (!bias_ && uj.is_object() && uj.contains("u"))
      throw InvalidArgument(wm + ".u: the family has bias=false (units c_m phi(w_m^T x)), so a unit has "
                            "no \"u\"; remove it or use an ffn family with bias");
    eta.subvec(o, o + d_ - 1) = json_vector(uj, "w", d_, wm);
    if (bias_) eta[o + d_] = json_number(uj, "u", wm);
    eta[co(m)] = json_number(uj, "c", wm);
  }
  return eta;
}

bool FfnExpert::has_sign_symmetry() const {
  return act_ == Activation::tanh || (act_ == Activation::sigmoid && units_ > 1);
}

void FfnExpert::flip_unit(arma::vec& eta, std::size_t m) const {
  const std::size_t o = wo(m), oc = co(m);
  if (act_ == Activation::sigmoid) eta[0] += eta[oc];  // c sig(z) = c - c sig(-z)
  eta.subvec(o, oc) *= -1.0;
}

arma::vec FfnExpert::canonical(const arma::vec& eta) const {
  arma::vec e = eta;
  for (std::size_t m = 0; m < units_; ++m) {
    const std::size_t o = wo(m), oc = co(m);
    if (has_sign_symmetry() && e[oc] < 0) flip_unit(e, m);
    if (act_ == Activation::relu) {
      // c relu(z) = (c/s) relu(s z), s > 0: scale to |w_m| = 1 (Euclidean norm of a).
      const double s = arma::norm(e.subvec(o, o + d_ - 1));
      if (s > 0 && std::isfinite(s)) {
        if (oc > o + d_) e.subvec(o + d_, oc - 1) /= s;  // the bias u_m
        e.subvec(o, o + d_ - 1) /= s;
        e[oc] *= s;
      }
    }
  }
  if (units_ == 1) return e;
  // Sort the units by (c, u, w) ascending.
  std::vector<std::size_t> order(units_);
  std::iota(order.begin(), order.end(), 0);
  auto key = [&](std::size_t m) {
    std::vector<double> k{e[co(m)]};
    if (bias_) k.push_back(e[wo(m) + d_]);
    for (std::size_t s = 0; s < d_; ++s) k.push_back(e[wo(m) + s]);
    return k;
  };
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return key(a) < key(b); });
  arma::vec out = e;
  for (std::size_t m = 0; m < units_; ++m) out.subvec(wo(m), co(m)) = e.subvec(wo(order[m]), co(order[m]));
  return out;
}

std::vector<arma::vec> FfnExpert::equivalents(const arma::vec& eta) const {
  if (units_ == 1) {
    if (act_ == Activation::tanh) return {eta, arma::vec(-eta)};
    return {eta};
  }
  if (units_ > 5) {
    const arma::vec c = canonical(eta);
    if (arma::approx_equal(c, eta, "absdiff", 0.0)) return {eta};
    return {eta, c};
  }
  std::vector<arma::vec> out;
  std::vector<std::size_t> perm(units_);
  std::iota(perm.begin(), perm.end(), 0);
  const std::size_t n_flips = has_sign_symmetry() ? (std::size_t{1} << units_) : 1;
  do {
    arma::vec p = eta;
    for (std::size_t m = 0; m < units_; ++m) p.subvec(wo(m), co(m)) = eta.subvec(wo(perm[m]), co(perm[m]));
    for (std::size_t mask = 0; mask < n_flips; ++mask) {
      arma::vec e = p;
      for (std::size_t m = 0; m < units_; ++m)
        if (mask & (std::size_t{1} << m)) flip_unit(e, m);
      out.push_back(std::move(e));
    }
  } while (std::next_permutation(perm.begin(), perm.end()));
  return out;
}

arma::vec FfnExpert::initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                             Rng& rng) const {
  if (units_ > 1) return initial_units(X, y, w, rng);
  // Candidates: the local linearisation of a weighted linear fit (the unit
  // works in its near-linear range), plus random starts; each refined by LM,
  // the lowest weighted squared error kept.
  ExpertMStepOptions opt;
  opt.lm_steps = 50;
  std::vector<arma::vec> cands;
  const arma::vec lin = weighted_least_squares(X, y, w);
  if (lin.n_elem == d_ + 1 && lin.is_finite()) {
    const arma::rowvec fit = lin.head(d_).t() * X + lin[d_];
    const double range = std::max(arma::abs(fit).max(), 1e-3);
    arma::vec e(d_ + 2);
    switch (act_) {
      case Activation::tanh: {
        const double c = 2 * range;  // z stays in [-0.5, 0.5]
        e.head(d_ + 1) = lin / c;
        e[d_ + 1] = c;
        break;
      }
      case Activation::sigmoid: {
        // c sigmoid(z) ~ c/2 + c z / 4 near 0: match slope and level roughly.
        const double c = 2 * range;
        e.head(d_) = 4 * lin.head(d_) / c;
        e[d_] = 4 * (lin[d_] - c / 2) / c;
        e[d_ + 1] = c;
        break;
      }
      default: {  // gelu, relu: positive part ~ z for z > 0
        const double shift = 2 * range;
        e.head(d_) = lin.head(d_);
        e[d_] = lin[d_] + shift;
        e[d_ + 1] = 1.0;
        break;
      }
    }
    if (!bias_) e.shed_row(d_);  // no bias: keep the slopes (the level is left to LM and the other experts)
    cands.push_back(e);
    if (!bias_ && (act_ == Activation::gelu || act_ == Activation::relu)) {
      // Without a bias the unit's active side is fixed by the sign of a: c relu(a^T x) and
      // -relu(-a^T x) have the same slope where each is active; try both (a start on the
      // inactive side is a dead relu unit, and gelu's is nearly dead).
      arma::vec f = -e;
      cands.push_back(f);
    }
    if (!bias_) {
      // Without this, gelu starts whose scale is off slide into the valley a -> 0,
      // c -> inf where c gelu(a^T x) tends to a line.
      const auto prof = scale_profile(X, y, w, lin.head(d_), /*both_signs=*/true);
      for (std::size_t i = 0; i < std::min<std::size_t>(2, prof.size()); ++i) cands.push_back(prof[i].second);
    }
  }
  for (int t = 0; t < 4; ++t) {
    arma::vec e(n_params());
    for (auto& v : e) v = rng.normal(0, 1);
    e[co(0)] = rng.normal(0, 1) * std::sqrt(arma::accu(w % y % y) / std::max(arma::accu(w), 1e-300));
    cands.push_back(e);
  }
  return best_refined(X, y, w, std::move(cands), opt, arma::vec(n_params(), arma::fill::ones));
}

std::vector<std::pair<double, arma::vec>> FfnExpert::scale_profile(const arma::mat& X, const arma::rowvec& y,
                                                                   const arma::rowvec& w, const arma::vec& u,
                                                                   bool both_signs) const {
  std::vector<std::pair<double, arma::vec>> out;
  const arma::rowvec z = u.t() * X;
  const double zs = arma::abs(z).max();
  if (!(zs > 0) || !std::isfinite(zs)) return out;
  for (int sign = both_signs ? -1 : 1; sign <= 1; sign += 2) {
    for (int k = -4; k <= 5; ++k) {
      const double s = sign * std::ldexp(1.0, k) / zs;
      arma::vec g(d_ + 1);
      g.head(d_) = s * u;
      g[d_] = 1.0;
      const arma::rowvec p = mean(X, g);  // phi(s u^T x)
      const double pp = arma::accu(w % p % p);
      if (!(pp > 0) || !std::isfinite(pp)) continue;
      g[d_] = arma::accu(w % p % y) / pp;
      const double sse = arma::accu(w % arma::square(y - g[d_] * p));
      if (std::isfinite(sse) && g.is_finite()) out.emplace_back(sse, std::move(g));
    }
  }
  std::sort(out.begin(), out.end(), [](const auto& l, const auto& r) { return l.first < r.first; });
  return out;
}

ExpertMStepResult FfnExpert::m_step(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                    arma::vec& eta, const ExpertMStepOptions& opt) const {
  ExpertMStepResult res = ExpertFamily::m_step(X, y, w, eta, opt);
  if (bias_ || units_ != 1 || (act_ != Activation::gelu && act_ != Activation::relu)) return res;
  // Points on eta's own side are within reach of LM; the other side is not.
  const arma::vec u = -eta.head(d_);
  if (!(arma::norm(u) > 0)) return res;
  const auto prof = scale_profile(X, y, w, u, /*both_signs=*/false);
  if (prof.empty() || !(prof[0].first < res.sse_after)) return res;
  arma::vec alt = prof[0].second;
  ExpertMStepResult r2 = ExpertFamily::m_step(X, y, w, alt, opt);
  if (r2.sse_after < res.sse_after) {
    eta = alt;
    res.sse_after = r2.sse_after;
    res.accepted_steps += r2.accepted_steps;
  }
  return res;
}

arma::vec FfnExpert::initial_units(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                                   Rng& rng) const {
  // M >= 2 units. Candidates, each refined by LM and the lowest weighted
  // squared error kept: (1) c0 = weighted mean, unit 1 in its near-linear
  // range carrying a weighted linear fit, the other units small; (2) units
  // centred at random observations (u_m = -w_m^T x_r) with random slopes of
  // the scale of the data, c_m of the scale of y.
  ExpertMStepOptions opt;
  opt.lm_steps = 30;
  const double wsum = std::max(arma::accu(w), 1e-300);
  const double ybar = arma::accu(w % y) / wsum;
  const double ysd = std::sqrt(std::max(arma::accu(w % arma::square(y - ybar)) / wsum, 1e-12));
  const arma::vec xsd = arma::stddev(X, 0, 1) + 1e-12;  // d
  auto random_unit = [&](arma::vec& e, std::size_t m, double c_scale) {
    const std::size_t o = wo(m);
    const std::size_t r = rng.integer(0, X.n_cols - 1);
    for (std::size_t s = 0; s < d_; ++s) e[o + s] = rng.normal(0, 3.0) / xsd[s];
    if (bias_) e[o + d_] = -arma::dot(e.subvec(o, o + d_ - 1), X.col(r));
    e[co(m)] = rng.normal(0, c_scale);
  };
  std::vector<arma::vec> cands;
  const arma::vec lin = weighted_least_squares(X, y, w);
  if (lin.n_elem == d_ + 1 && lin.is_finite()) {
    arma::vec e(n_params());
    const arma::rowvec fit = lin.head(d_).t() * X + lin[d_];
    const double range = std::max(arma::abs(fit - ybar).max(), 1e-3);
    const double c = 2 * range;
    e[0] = ybar;
    for (std::size_t m = 1; m < units_; ++m) random_unit(e, m, 0.1 * ysd);
    const std::size_t o = wo(0);
    // Without bias the unit's level cannot shift: u_m is dropped and c0 carries the level.
    double u = (lin[d_] - ybar) / c;
    e.subvec(o, o + d_ - 1) = lin.head(d_) / c;
    e[co(0)] = c;
    if (act_ == Activation::sigmoid) {  // c sig(z) ~ c/2 + c z / 4
      e.subvec(o, o + d_ - 1) *= 4.0;
      u *= 4.0;
      e[0] -= c / 2;
    } else if (act_ == Activation::gelu || act_ == Activation::relu) {  // positive part ~ z
      e.subvec(o, o + d_ - 1) = lin.head(d_);
      u = lin[d_] - ybar + c;
      e[co(0)] = 1.0;
      e[0] = ybar - c;
    }
    if (bias_) e[o + d_] = u;
    cands.push_back(e);
  }
  for (int t = 0; t < 5; ++t) {
    arma::vec e(n_params());
    e[0] = ybar;
    for (std::size_t m = 0; m < units_; ++m) random_unit(e, m, ysd);
    cands.push_back(e);
  }
  arma::vec fallback(n_params(), arma::fill::ones);
  fallback[0] = ybar;
  return best_refined(X, y, w, std::move(cands), opt, std::move(fallback));
}

MOERATE_REGISTER_EXPERT(
    "ffn",
    "feed-forward experts c * phi(a^T x + b); options: activation (first bare value) "
    "sigmoid|tanh|gelu|relu, units=M for c0 + sum_m c_m phi(w_m^T x + u_m), "
    "bias=false for c * phi(a^T x) (c0 + sum_m c_m phi(w_m^T x))",
    [](const json& spec, std::size_t d) -> std::shared_ptr<ExpertFamily> {
      check_spec_keys(spec, {"activation", "_", "units", "bias"}, "ffn");
      std::string act = "tanh";
      const char* key = spec.contains("activation") ? "activation" : (spec.contains("_") ? "_" : nullptr);
      if (key) {
        if (!spec[key].is_string())
          throw InvalidArgument("ffn: activation must be one of sigmoid, tanh, gelu, relu; got " + spec[key].dump());
        act = spec[key].get<std::string>();
      }
      const std::size_t units = spec_integer(spec, "units", 1, 1, "ffn");
      bool bias = true;  // absent: files written before the option keep their meaning
      if (spec.contains("bias")) {
        const json& b = spec["bias"];
        if (b.is_boolean()) {
          bias = b.get<bool>();
        } else if (b.is_string() && (b == "true" || b == "false")) {
          bias = b == "true";
        } else {
          throw InvalidArgument("ffn: option bias must be true or false; got " + b.dump());
        }
      }
      return std::make_shared<FfnExpert>(d, parse_activation(act), units, bias);
    });

}  // namespace moerate
