// moerate/ffn_expert.hpp -- one-hidden-unit ("two-layer FFN") experts.
//
//   h(x; a, b, c) = c * phi(a^T x + b),   phi in {sigmoid, tanh, gelu, relu}
//
// eta = [a_1..a_d, b, c] (blocks "a", "b", "c"). Strongly identifiable for
// sigmoid, tanh and gelu (models.md section 4); relu is not twice
// differentiable (its second derivative is taken as 0). For tanh (odd),
// (a, b, c) and (-a, -b, -c) give the same function: equivalents() returns
// both and canonical() picks c > 0. M-step: Levenberg-Marquardt steps that
// are accepted only when they lower the weighted squared error.
//
//   FfnExpert f(1, Activation::tanh);  f.mean(X, arma::vec{2, -1, 3});  // 3 tanh(2x - 1)
#pragma once

#include "moerate/expert_family.hpp"
#include "moerate/numerics.hpp"

namespace moerate {

class FfnExpert : public ExpertFamily {
public:
  FfnExpert(std::size_t d, Activation act) : ExpertFamily(d), act_(act) {}
  std::string family() const override { return "ffn"; }
  json family_json() const override;
  std::string description() const override {
    return "one-hidden-unit experts c * phi(a^T x + b), phi = sigmoid|tanh|gelu|relu (LM M-step)";
  }
  Activation activation() const { return act_; }
  std::size_t n_params() const override { return d_ + 2; }
  std::vector<ParamBlock> blocks() const override { return {{"a", 0, d_}, {"b", d_, 1}, {"c", d_ + 1, 1}}; }
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
  Activation act_;
};

}  // namespace moerate
