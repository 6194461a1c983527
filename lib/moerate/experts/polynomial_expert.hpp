// moerate/experts/polynomial_expert.hpp -- polynomial experts (models.md section 4).
//
//   h(x; a, b) = (a^T x + b)^p,   integer p >= 2 fixed by the family (option p)
//
// eta = [a_1..a_d, b] (blocks "a", "b"); model file {"a":[..],"b":..};
// family {"family":"polynomial","p":P}. Not strongly identifiable (models.md
// section 4; in the regression model the literature finds no polynomial rate).
// For even p, (a, b) and (-a, -b) give the same function: equivalents() lists
// both and canonical() picks b > 0 (or, if b = 0, the first non-zero a_s > 0).
// Analytic jacobian p z^(p-1) (x, 1) and hessian p (p-1) z^(p-2) (x, 1)(x, 1)^T,
// z = a^T x + b. M-step: the Levenberg-Marquardt default of ExpertFamily.
// initial(): a weighted linear fit of the root sign(y) |y|^(1/p) (and its
// negation and random starts), each refined by LM; the best is kept.
//
//   PolynomialExpert f(1, 2);  f.mean(X, arma::vec{2, -1});   // (2x - 1)^2
#pragma once

#include "moerate/model/expert_family.hpp"

namespace moerate {

class PolynomialExpert : public ExpertFamily {
public:
  PolynomialExpert(std::size_t d, int degree);
  std::string family() const override { return "polynomial"; }
  json family_json() const override { return json{{"family", "polynomial"}, {"p", p_}}; }
  std::string description() const override {
    return "polynomial experts (a^T x + b)^p; option p=P (integer >= 2, default 2; LM M-step)";
  }
  int degree() const { return p_; }
  std::size_t n_params() const override { return d_ + 1; }
  std::vector<ParamBlock> blocks() const override { return {{"a", 0, d_}, {"b", d_, 1}}; }
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
  arma::rowvec z(const arma::mat& X, const arma::vec& eta) const;
  int p_;
};

}  // namespace moerate
