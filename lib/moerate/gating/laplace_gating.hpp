// moerate/gating/laplace_gating.hpp -- Laplace gating (models.md section 3).
//
//   pi_i(x) = exp(-|x - w_i| + beta0_i) / sum_l exp(-|x - w_l| + beta0_l),  |.| Euclidean
//
// Only a common shift of beta0 leaves the gate unchanged (w has no translation
// invariance): stored with beta0_k = 0 for the last expert, every w_i free.
// Flat parameters: for i = 1..k in order, [beta0_i (i < k only), w_i (d values)].
// Gradient of -|x - w| in w is (x - w)/|x - w|, taken as 0 at x = w.
// Model file gate: {"beta0": b, "w": [..]}. Atoms: (beta0_i, w_i), location "w".
// M-step: the default L-BFGS ascent of Gating::m_step (accepts only increases of Q).
//
//   LaplaceGating g(2, 1);  g.set_params({0.5, -1.0, 1.0});   // beta0_1, w_1, w_2
#pragma once

#include "moerate/model/gating.hpp"

namespace moerate {

class LaplaceGating : public Gating {
public:
  LaplaceGating(std::size_t k, std::size_t d);

  std::string family() const override { return "laplace"; }
  json family_json() const override { return json{{"family", "laplace"}}; }
  std::unique_ptr<Gating> clone() const override { return std::make_unique<LaplaceGating>(*this); }
  std::string description() const override;

  arma::mat log_weights(const arma::mat& X) const override;
  arma::vec log_weights_vjp(const arma::mat& X, const arma::mat& C) const override;

  std::size_t n_params() const override { return k_ * (d_ + 1) - 1; }
  arma::vec params() const override;
  void set_params(const arma::vec& theta) override;
  std::vector<std::string> param_names() const override;

  json gate_json(std::size_t i) const override;
  void set_gate_json(std::size_t i, const json& gate, const std::string& where) override;
  void normalise() override { beta0_ -= beta0_[k_ - 1]; }
  void permute(const std::vector<std::size_t>& order) override;
  bool translation_invariant() const override { return false; }
  /// Shifts beta0 by t0; t1 must be zero (w has no translation invariance).
  void translate(double t0, const arma::vec& t1) override;

  double atom_log_weight(std::size_t i) const override { return beta0_[i]; }
  arma::vec atom_location(std::size_t i) const override { return w_.col(i); }
  std::string location_name() const override { return "w"; }

  const arma::vec& beta0() const { return beta0_; }
  const arma::mat& w() const { return w_; }

private:
  arma::mat scores(const arma::mat& X) const;  // k x n: -|x - w_i| + beta0_i
  arma::vec beta0_;  // k
  arma::mat w_;      // d x k
};

}  // namespace moerate
