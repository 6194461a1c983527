// moerate/experts/ffn_expert.hpp -- feed-forward ("two-layer FFN") experts.
//
// One hidden unit (units = 1, the default; the literature's expert):
//   h(x; a, b, c) = c * phi(a^T x + b),   phi in {sigmoid, tanh, gelu, relu}
//   eta = [a_1..a_d, b, c] (blocks "a", "b", "c"); model file {"a":[..],"b":..,"c":..}.
//
// M hidden units (units = M >= 2), models.md section 4:
//   h(x; eta) = c0 + sum_{m=1..M} c_m * phi(w_m^T x + u_m)
//   eta = [c0, w_1 (d), u_1, c_1, w_2, u_2, c_2, ...]: one block "c0", then per
//   unit the blocks "w<m>" (d values), "u<m>", "c<m>" (so a Voronoi loss reports
//   one term per unit and block). Model file:
//   {"c0":.., "units":[{"w":[..],"u":..,"c":..}, ...]}.
//
// Bias-free (bias = false, CLI "ffn:tanh,bias=false", model file
// {"family":"ffn","activation":"tanh","bias":false}; models.md section 9.1):
//   one unit:  h(x; a, c) = c * phi(a^T x), eta = [a_1..a_d, c] (blocks "a", "c");
//              model file {"a":[..],"c":..}
//   M units:   h = c0 + sum_m c_m phi(w_m^T x), eta = [c0, w_1, c_1, w_2, c_2, ...]
//              (blocks "c0", "w<m>", "c<m>"); model file {"c0":.., "units":[{"w":[..],"c":..}]}.
//              c0 stays: without a bias no unit can carry the level, and the
//              sigmoid sign flip below needs it.
// A family without "bias" in its file has bias = true (files and results from
// before the option keep their meaning); family_json() writes "bias":false only.
//
// With a bias, dh/da = x dh/db for every phi, as for linear experts: the
// literature's strongly identifiable expert is the bias-free c * phi(a^T x) with
// phi in {sigmoid, tanh, gelu} (models.md sections 4, 9.1, 9.5); relu is not twice differentiable (its second derivative is taken
// as 0) and is positively homogeneous: c relu(z) = (c/s) relu(s z) for s > 0.
//
// Symmetries (equivalents() lists them, canonical() picks one representative):
//   - hidden units are exchangeable (M >= 2);
//   - tanh (odd): (w_m, u_m, c_m) ~ (-w_m, -u_m, -c_m), also for M = 1 and
//     without bias ((a, c) ~ (-a, -c));
//   - sigmoid, M >= 2: sigmoid(-z) = 1 - sigmoid(z), so
//     (w_m, u_m, c_m, c0) ~ (-w_m, -u_m, -c_m, c0 + c_m);
//   - relu (with or without bias): the positive scaling above, (c, w, u) ~
//     (c/s, s w, s u) (a continuum: only canonical() resolves it, by |w_m| = 1,
//     the Euclidean norm of a; equivalents() does not list scalings, so callers
//     that compare parameters (Voronoi losses, match_experts) compare canonical
//     forms: equivalents(canonical(fit)) against canonical(truth)).
// equivalents() returns every permutation x sign flip for M <= 5 (M! 2^M
// vectors, 3840 for M = 5); for M > 5 only {eta, canonical(eta)}.
// canonical(): flips resolved to c_m >= 0, relu scaled to |w_m| = 1 (w_m = 0
// left as is), then the units sorted by (c_m, u_m, w_m) ascending.
//
// M-step: Levenberg-Marquardt steps accepted only when they lower the weighted
// squared error (the ExpertFamily default). Analytic jacobian and hessian.
//
//   FfnExpert f(1, Activation::tanh);  f.mean(X, arma::vec{2, -1, 3});  // 3 tanh(2x - 1)
//   FfnExpert g(1, Activation::tanh, 2);  // eta = [c0, w1, u1, c1, w2, u2, c2]
//   FfnExpert h(1, Activation::tanh, 1, false);  h.mean(X, arma::vec{2, 3});  // 3 tanh(2x)
#pragma once

#include "moerate/model/expert_family.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

class FfnExpert : public ExpertFamily {
public:
  FfnExpert(std::size_t d, Activation act, std::size_t units = 1, bool bias = true);
  std::string family() const override { return "ffn"; }
  /// {"family":"ffn","activation":ACT} for one unit (as before), plus "units":M for M >= 2
  /// and "bias":false without bias.
  json family_json() const override;
  std::string description() const override {
    return bias_ ? "feed-forward experts c * phi(a^T x + b), or c0 + sum_m c_m phi(w_m^T x + u_m) with units=M "
                   "(phi = sigmoid|tanh|gelu|relu; LM M-step)"
                 : "bias-free feed-forward experts c * phi(a^T x), or c0 + sum_m c_m phi(w_m^T x) with units=M "
                   "(phi = sigmoid|tanh|gelu|relu; LM M-step)";
  }
  Activation activation() const { return act_; }
  std::size_t units() const { return units_; }
  bool bias() const { return bias_; }
  std::size_t n_params() const override { return units_ == 1 ? stride() : 1 + units_ * stride(); }
  std::vector<ParamBlock> blocks() const override;
  arma::rowvec mean(const arma::mat& X, const arma::vec& eta) const override;
  arma::mat jacobian(const arma::mat& X, const arma::vec& eta) const override;
  void mean_and_jacobian(const arma::mat& X, const arma::vec& eta, arma::rowvec& h, arma::mat& J) const override;
  /// One unit on one covariate: J_i and h_i formed in registers (no Jacobian
  /// matrix); otherwise false (the generic pass).
  bool gauss_newton_block(const arma::mat& Xb, const double* y, const double* w, const arma::vec& eta, arma::mat& A,
                          arma::vec& g, double& sse) const override;
  arma::mat hessian(const arma::mat& X, const arma::vec& eta) const override;
  void add_weighted_hessian(const arma::mat& X, const arma::vec& eta, const arma::rowvec& w,
                            arma::mat& A) const override;
  json to_json(const arma::vec& eta) const override;
  arma::vec from_json(const json& j, const std::string& where) const override;
  arma::vec canonical(const arma::vec& eta) const override;
  std::vector<arma::vec> equivalents(const arma::vec& eta) const override;
  arma::vec initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                    Rng& rng) const override;
  /// Levenberg-Marquardt from eta (the default); for one bias-free gelu or relu unit,
  /// also the best point of the scale profile on the other side of a = 0 (scale_profile
  /// along -a) when its weighted sum of squares is lower, refined the same way. The two sides a > 0 and a < 0 of such a
  /// unit meet only at a -> 0, c -> inf (a line), so a local step started on the wrong
  /// side never crosses; the M-step still never raises the sum of squares.
  ExpertMStepResult m_step(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w, arma::vec& eta,
                           const ExpertMStepOptions& opt) const override;

private:
  // Offsets of unit m (0-based) in eta: w at wo(m) (d values), u at wo(m)+d (with bias),
  // c at co(m) (the unit's last entry). With one unit the layout [a, b, c] ([a, c]
  // without bias) is the same with no c0 (wo(0) = 0).
  std::size_t stride() const { return d_ + (bias_ ? 2 : 1); }
  std::size_t wo(std::size_t m) const { return units_ == 1 ? 0 : 1 + m * stride(); }
  std::size_t co(std::size_t m) const { return wo(m) + stride() - 1; }
  /// The pre-activation z = w_m^T x (+ u_m) of unit m at every column of X.
  arma::rowvec pre(const arma::mat& X, const arma::vec& eta, std::size_t m) const {
    if (d_ == 1) {  // one product per column: a plain loop (BLAS's call cost was 5% of a tanh fit), the same bits
      const double a = eta[wo(m)], u = bias_ ? eta[wo(m) + 1] : 0.0;
      arma::rowvec z(X.n_cols, arma::fill::none);
      const double* x = X.memptr();
      if (bias_)
        for (std::size_t i = 0; i < X.n_cols; ++i) z[i] = a * x[i] + u;
      else
        for (std::size_t i = 0; i < X.n_cols; ++i) z[i] = a * x[i];
      return z;
    }
    arma::rowvec z = eta.subvec(wo(m), wo(m) + d_ - 1).t() * X;
    if (bias_) z += eta[wo(m) + d_];
    return z;
  }
  double c0(const arma::vec& eta) const { return units_ == 1 ? 0.0 : eta[0]; }
  /// Flip unit m's sign (tanh, sigmoid) in place.
  void flip_unit(arma::vec& eta, std::size_t m) const;
  bool has_sign_symmetry() const;
  arma::vec initial_units(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w, Rng& rng) const;
  /// One bias-free unit: along direction u, a = s u for scales s on a log-grid (s u^T x
  /// spanning [-2^k, 2^k], k = -4..5; s > 0 only, or both signs) with c profiled out by
  /// weighted least squares (c enters linearly). Returns (weighted SSE, eta), best first.
  std::vector<std::pair<double, arma::vec>> scale_profile(const arma::mat& X, const arma::rowvec& y,
                                                          const arma::rowvec& w, const arma::vec& u,
                                                          bool both_signs) const;

  Activation act_;
  std::size_t units_;
  bool bias_;
};

}  // namespace moerate
