// moerate/experts/linear_expert.hpp -- linear experts h(x; a, b) = a^T x + b.
//
// eta = [a_1..a_d, b] (blocks "a", "b"). Not strongly identifiable:
// x_w dh/db = dh/da_w (models.md section 4). The M-step is weighted least
// squares solved by QR of the sqrt(w)-scaled design (LAPACK gels), never by
// normal equations or an inverse.
//
//   LinearExpert f(1);  f.mean(X, arma::vec{-20, 15});   // -20 x + 15
#pragma once

#include "moerate/core/json_fields.hpp"
#include "moerate/model/expert_family.hpp"

namespace moerate {

class LinearExpert : public ExpertFamily {
public:
  explicit LinearExpert(std::size_t d) : ExpertFamily(d) {}
  std::string family() const override { return "linear"; }
  json family_json() const override { return json{{"family", "linear"}}; }
  std::string description() const override { return "linear experts a^T x + b (weighted least squares M-step)"; }
  std::size_t n_params() const override { return d_ + 1; }
  std::vector<ParamBlock> blocks() const override { return {{"a", 0, d_}, {"b", d_, 1}}; }
  bool linear_in_params() const override { return true; }
  arma::rowvec mean(const arma::mat& X, const arma::vec& eta) const override;
  arma::mat jacobian(const arma::mat& X, const arma::vec& eta) const override;
  arma::mat hessian(const arma::mat& X, const arma::vec& eta) const override;
  ExpertMStepResult m_step(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                           arma::vec& eta, const ExpertMStepOptions& opt) const override;
  /// All experts in two passes over the data (normal equations of every expert,
  /// then every expert's sums of squares at the old and new coefficients):
  /// each expert's numbers are those of m_step, except the weight sums.
  ExpertMStepAll m_step_all(const arma::mat& X, const arma::rowvec& y, const arma::mat& R, arma::mat& eta,
                            const ExpertMStepOptions& opt) const override;
  /// m_step_all as a plan whose two passes a softmax gate's M-step carries (EM).
  std::unique_ptr<ExpertMStepPlan> plan_m_step_all(const arma::mat& X, const arma::rowvec& y, const arma::mat& R,
                                                   arma::mat& eta, const ExpertMStepOptions& opt) const override;
  json to_json(const arma::vec& eta) const override;
  arma::vec from_json(const json& j, const std::string& where) const override;
  arma::vec initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                    Rng& rng) const override;
  bool initial_draws() const override { return false; }  // weighted least squares
};

/// Weighted least squares of y on [X; 1] (returns [a; b]); QR-based.
arma::vec weighted_least_squares(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w);


}  // namespace moerate
