// moerate/gating/sigmoid_gating.hpp -- unnormalised sigmoid gates (models.md sections 3, 5.3).
//
//   pi_i(x) = sigmoid(beta1_i^T x + beta0_i),   log pi_i = -log1p(exp(-z)) (stable form)
//
// The weights do not sum to one, so the gate is only meaningful in the
// least-squares regression model f_G(x) = sum_i pi_i(x) h(x; eta_i)
// (regression_only() is true; the model loader rejects it for "gaussian").
// No invariance, hence no reference expert: every (beta0_i, beta1_i) is free.
// Flat parameters: for i = 1..k in order, [beta0_i, beta1_i (d values)].
// d log sigmoid(z)/dz = sigmoid(-z). Model file gate: {"beta0", "beta1"}.
//
//   SigmoidGating g(2, 1);  g.set_params({0, 1, 0, -1});   // sigmoid(x), sigmoid(-x)
#pragma once

#include "moerate/model/gating.hpp"

namespace moerate {

class SigmoidGating : public Gating {
public:
  SigmoidGating(std::size_t k, std::size_t d);

  std::string family() const override { return "sigmoid"; }
  json family_json() const override { return json{{"family", "sigmoid"}}; }
  std::unique_ptr<Gating> clone() const override { return std::make_unique<SigmoidGating>(*this); }
  std::string description() const override;
  bool regression_only() const override { return true; }

  arma::mat log_weights(const arma::mat& X) const override;
  arma::vec log_weights_vjp(const arma::mat& X, const arma::mat& C) const override;

  std::size_t n_params() const override { return k_ * (d_ + 1); }
  arma::vec params() const override;
  void set_params(const arma::vec& theta) override;
  std::vector<std::string> param_names() const override;

  json gate_json(std::size_t i) const override;
  void set_gate_json(std::size_t i, const json& gate, const std::string& where) override;
  void permute(const std::vector<std::size_t>& order) override;
  bool translation_invariant() const override { return false; }

  double atom_log_weight(std::size_t i) const override { return beta0_[i]; }
  arma::vec atom_location(std::size_t i) const override { return beta1_.col(i); }

  const arma::vec& beta0() const { return beta0_; }
  const arma::mat& beta1() const { return beta1_; }

private:
  arma::vec beta0_;  // k
  arma::mat beta1_;  // d x k
};

}  // namespace moerate
