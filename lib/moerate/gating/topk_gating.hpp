// moerate/gating/topk_gating.hpp -- top-K sparse softmax gating (models.md section 3).
//
//   S_i(x)   = beta1_i^T x + beta0_i                       (scores)
//   T_i(x)   = beta1_i^T x          (select=beta1x, default: the literature's choice)
//            = S_i(x)               (select=score: beta0 takes part in the selection)
//   K(x)     = the K experts with the largest T_i(x) (ties: the smaller index wins)
//   pi_i(x)  = exp(S_i) / sum_{l in K(x)} exp(S_l) for i in K(x), 0 (log weight -inf) otherwise.
//
// Parameters, reference (last expert at 0), flat vector and model-file gates are
// those of softmax (this class reuses SoftmaxGating's); a common shift leaves
// both the selection and the weights unchanged. K = k is plain softmax.
//
// EM. The selection is piecewise constant in the parameters, so gradients
// (log_weights_vjp) ignore it: C_ij is taken as 0 where expert i is not
// selected for x_j. The M-step is the default L-BFGS ascent accepting only
// increases of Q = sum R_ij log pi_ij with 0 * log 0 = 0. Because the E-step
// gives R_ij = 0 exactly to unselected experts and R_ij > 0 to selected ones
// (unless a density underflows), any step that drops a selected expert of an
// observation makes Q = -inf and is refused: the observed log-likelihood is
// still monotone (the EM inequality holds since supp R(theta) is contained in
// the support of pi(theta')), but the selection pattern of every observation
// is frozen at the start; boundaries move only between observations. The fit
// therefore depends on the start (use restarts or near-truth starts), and
// with K = 1 EM cannot move the gate at all. docs/gating-families.md.
//
//   auto g = make_gating(parse_family_spec("topk:K=2"), 3, 1);
#pragma once

#include "moerate/gating/softmax_gating.hpp"

namespace moerate {

class TopKGating : public SoftmaxGating {
public:
  enum class Selection { beta1x, score };
  TopKGating(std::size_t k, std::size_t d, std::size_t top_k, Selection select);

  std::string family() const override { return "topk"; }
  json family_json() const override;
  std::unique_ptr<Gating> clone() const override { return std::make_unique<TopKGating>(*this); }
  std::string description() const override;

  arma::mat log_weights(const arma::mat& X) const override;
  arma::vec log_weights_vjp(const arma::mat& X, const arma::mat& C) const override;
  /// None: softmax's would ignore the selection.
  arma::mat q_hessian(const arma::mat&, const arma::mat&) const override { return {}; }
  /// The default ascent (Gating::m_step): softmax's Newton step ignores the selection.
  GateMStepResult m_step(const arma::mat& X, const arma::mat& R, const GateMStepOptions& opt) override;
  /// Fit a dense softmax gate to R (Newton), then use its parameters: the
  /// all-zero start would select experts by index only.
  void init_from_responsibilities(const arma::mat& X, const arma::mat& R) override;

  /// k x n 0/1 matrix: 1 where expert i is selected for x_j.
  arma::umat selected(const arma::mat& X) const;
  std::size_t top_k() const { return top_k_; }
  Selection selection() const { return select_; }

private:
  std::size_t top_k_;
  Selection select_;
};

}  // namespace moerate
