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
// Strongly identifiable for sigmoid, tanh and gelu with one unit (models.md
// section 4); relu is not twice differentiable (its second derivative is taken
// as 0) and is positively homogeneous: c relu(z) = (c/s) relu(s z) for s > 0.
//
// Symmetries (equivalents() lists them, canonical() picks one representative):
//   - hidden units are exchangeable (M >= 2);
//   - tanh (odd): (w_m, u_m, c_m) ~ (-w_m, -u_m, -c_m), also for M = 1;
//   - sigmoid, M >= 2: sigmoid(-z) = 1 - sigmoid(z), so
//     (w_m, u_m, c_m, c0) ~ (-w_m, -u_m, -c_m, c0 + c_m);
//   - relu: the positive scaling above (a continuum: only canonical() resolves
//     it, by |c_m| = 1; equivalents() does not list scalings).
// equivalents() returns every permutation x sign flip for M <= 5 (M! 2^M
// vectors, 3840 for M = 5); for M > 5 only {eta, canonical(eta)}.
// canonical(): flips resolved to c_m >= 0, relu scaled to |c_m| = 1, then the
// units sorted by (c_m, u_m, w_m) ascending.
//
// M-step: Levenberg-Marquardt steps accepted only when they lower the weighted
// squared error (the ExpertFamily default). Analytic jacobian and hessian.
//
//   FfnExpert f(1, Activation::tanh);  f.mean(X, arma::vec{2, -1, 3});  // 3 tanh(2x - 1)
//   FfnExpert g(1, Activation::tanh, 2);  // eta = [c0, w1, u1, c1, w2, u2, c2]
#pragma once

#include "moerate/model/expert_family.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

class FfnExpert : public ExpertFamily {
public:
  FfnExpert(std::size_t d, Activation act, std::size_t units = 1);
  std::string family() const override { return "ffn"; }
  /// {"family":"ffn","activation":ACT} for one unit (as before), plus "units":M for M >= 2.
  json family_json() const override;
  std::string description() const override {
    return "feed-forward experts c * phi(a^T x + b), or c0 + sum_m c_m phi(w_m^T x + u_m) with units=M "
           "(phi = sigmoid|tanh|gelu|relu; LM M-step)";
  }
  Activation activation() const { return act_; }
  std::size_t units() const { return units_; }
  std::size_t n_params() const override { return units_ == 1 ? d_ + 2 : 1 + units_ * (d_ + 2); }
  std::vector<ParamBlock> blocks() const override;
  arma::rowvec mean(const arma::mat& X, const arma::vec& eta) const override;
  arma::mat jacobian(const arma::mat& X, const arma::vec& eta) const override;
  arma::mat hessian(const arma::mat& X, const arma::vec& eta) const override;
  json to_json(const arma::vec& eta) const override;
  arma::vec from_json(const json& j, const std::string& where) const override;
  arma::vec canonical(const arma::vec& eta) const override;
  std::vector<arma::vec> equivalents(const arma::vec& eta) const override;
  arma::vec initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                    Rng& rng) const override;

private:
  // Offsets of unit m (0-based) in eta: w at wo(m) (d values), u at wo(m)+d, c at wo(m)+d+1.
  // With one unit the layout [a, b, c] is the same with no c0 (wo(0) = 0).
  std::size_t wo(std::size_t m) const { return units_ == 1 ? 0 : 1 + m * (d_ + 2); }
  double c0(const arma::vec& eta) const { return units_ == 1 ? 0.0 : eta[0]; }
  /// Flip unit m's sign (tanh, sigmoid) in place.
  void flip_unit(arma::vec& eta, std::size_t m) const;
  bool has_sign_symmetry() const;
  arma::vec initial_units(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w, Rng& rng) const;

  Activation act_;
  std::size_t units_;
};

}  // namespace moerate
