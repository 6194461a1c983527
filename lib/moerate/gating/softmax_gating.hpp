// moerate/gating/softmax_gating.hpp -- softmax gating (models.md section 3).
//
//   pi_i(x) = exp(beta1_i^T x + beta0_i) / sum_l exp(beta1_l^T x + beta0_l)
//
// Stored with the last expert as reference, (beta0_k, beta1_k) = (0, 0).
// Flat parameters: for i = 1..k-1 in order, [beta0_i, beta1_i (d values)].
// The M-step is Newton/IRLS on Q(beta) = sum_ij R_ij log pi_ij - ridge/2 |beta|^2:
// gradient sum_i (R_ij - s_i pi_ij) v_i, v_i = (1, x_i), s_i = sum_j R_ij;
// Hessian blocks -sum_i s_i pi_ij (delta_jl - pi_il) v_i v_i^T (minus ridge I),
// solved by Cholesky; steps are halved until Q increases (warm start).
//
//   SoftmaxGating g(2, 1);  g.set_params({-8, 25});   // experiment A's gate
#pragma once

#include "moerate/model/gating.hpp"

namespace moerate {

class SoftmaxGating : public Gating {
public:
  SoftmaxGating(std::size_t k, std::size_t d);

  std::string family() const override { return "softmax"; }
  json family_json() const override { return json{{"family", "softmax"}}; }
  std::unique_ptr<Gating> clone() const override { return std::make_unique<SoftmaxGating>(*this); }
  std::string description() const override {
    return "softmax gate Softmax(beta1^T x + beta0), last expert the reference (Newton M-step)";
  }

  arma::mat log_weights(const arma::mat& X) const override;
  arma::vec log_weights_vjp(const arma::mat& X, const arma::mat& C) const override;
  arma::mat log_weights_vjp_obs(const arma::mat& X, const arma::mat& C) const override;
  /// Hessian of sum_ij C_ij log pi_ij for C with column sums s (tests, Newton).
  arma::mat q_hessian(const arma::mat& X, const arma::mat& C) const override;
  std::vector<arma::mat> log_weight_gradients_obs(const arma::mat& X) const override;

  std::size_t n_params() const override { return (k_ - 1) * (d_ + 1); }
  arma::vec params() const override;
  void set_params(const arma::vec& theta) override;
  std::vector<std::string> param_names() const override;

  GateMStepResult m_step(const arma::mat& X, const arma::mat& R,
                         const GateMStepOptions& opt) override;

  json gate_json(std::size_t i) const override;
  void set_gate_json(std::size_t i, const json& gate, const std::string& where) override;
  void normalise() override;
  void permute(const std::vector<std::size_t>& order) override;

  double atom_log_weight(std::size_t i) const override { return beta0_[i]; }
  arma::vec atom_location(std::size_t i) const override { return beta1_.col(i); }
  void translate(double t0, const arma::vec& t1) override;

  const arma::vec& beta0() const { return beta0_; }
  const arma::mat& beta1() const { return beta1_; }

private:
  arma::vec beta0_;  // k
  arma::mat beta1_;  // d x k
};

}  // namespace moerate
