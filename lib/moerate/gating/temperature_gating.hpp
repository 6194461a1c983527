// moerate/gating/temperature_gating.hpp -- temperature ("dense-to-sparse") and
// activated-temperature softmax gating (models.md section 3).
//
//   temperature            pi_i(x) = Softmax_i((beta1_i^T x + beta0_i) / tau)
//   activated-temperature  pi_i(x) = Softmax_i((phi(beta1_i^T x) + beta0_i) / tau),
//                          phi in {sigmoid, tanh, gelu}
//
// tau > 0 is fixed by the spec (tau=0.5) or estimated (tau=estimate); an
// estimated tau is stored in the flat vector as log tau (first entry) and in
// the model file as "gating_state": {"tau": value}.
//
// temperature (linear router): adding a common (t0, t1) to every expert and
// scaling (beta, tau) -> (c beta, c tau) leave the gate unchanged. The stored
// convention is the last expert at 0 (as softmax) and, when tau is estimated,
// the scale is fixed by the option norm:
//   norm=beta1  beta1 of expert 1 (first coordinate, relative to the reference)
//               is fixed at +1 or -1 (its sign is kept from the start); then
//               tau = 1/|gamma1_1[0]| with gamma = beta/tau the identified
//               softmax parameters. The model is exactly softmax re-parametrised;
//               tau inherits the rate of that coordinate. Needs gamma1_1[0] != 0.
//   norm=none   nothing fixed: the flat vector has a flat direction and tau is
//               not identified (for studying that interaction; do not report tau).
// Flat parameters: [log tau (if estimated)], then for i = 1..k-1:
// [beta0_i, beta1_i (d values; without beta1_1[0] under norm=beta1)].
// Atoms are the identified softmax parameters (beta0_i / tau, beta1_i / tau);
// translate() shifts those atoms by (t0, t1).
//
// activated-temperature: only a common shift of beta0 is an invariance (phi is
// nonlinear, so scaling is not one either and tau is identified). Stored with
// beta0_k = 0; every beta1_i is free. Flat parameters: [log tau (if estimated)],
// then for i = 1..k: [beta0_i (i < k only), beta1_i (d values)]. Atoms:
// (beta0_i / tau, beta1_i); translate() accepts t0 only.
//
// Model file gate (both): {"beta0": b, "beta1": [..]}, the raw beta (not divided
// by tau). M-step: linear router with fixed tau, or norm=beta1 without ridge:
// Newton/IRLS of the equivalent softmax gate (mapped back exactly); otherwise
// the default L-BFGS ascent. Either way only increases of Q are accepted.
//
//   auto g = make_gating(parse_family_spec("temperature:tau=estimate,norm=beta1"), 3, 1);
//   auto a = make_gating(parse_family_spec("activated-temperature:act=tanh,tau=0.5"), 2, 1);
#pragma once

#include <optional>

#include "moerate/model/gating.hpp"
#include "moerate/core/numerics.hpp"

namespace moerate {

class TemperatureGating : public Gating {
public:
  enum class Norm { none, beta1 };
  /// act empty: linear router ("temperature"); else "activated-temperature".
  TemperatureGating(std::size_t k, std::size_t d, std::optional<Activation> act, double tau,
                    bool estimate_tau, Norm norm);

  std::string family() const override { return act_ ? "activated-temperature" : "temperature"; }
  json family_json() const override;
  std::unique_ptr<Gating> clone() const override { return std::make_unique<TemperatureGating>(*this); }
  std::string description() const override;

  arma::mat log_weights(const arma::mat& X) const override;
  arma::vec log_weights_vjp(const arma::mat& X, const arma::mat& C) const override;

  std::size_t n_params() const override { return slots_.size(); }
  arma::vec params() const override;
  void set_params(const arma::vec& theta) override;
  std::vector<std::string> param_names() const override;

  GateMStepResult m_step(const arma::mat& X, const arma::mat& R, const GateMStepOptions& opt) override;
  void init_from_responsibilities(const arma::mat& X, const arma::mat& R) override;

  json gate_json(std::size_t i) const override;
  void set_gate_json(std::size_t i, const json& gate, const std::string& where) override;
  json extra_json() const override;
  void set_extra_json(const json& j, const std::string& where) override;
  void normalise() override;
  void permute(const std::vector<std::size_t>& order) override;
  bool translation_invariant() const override { return !act_.has_value(); }
  void translate(double t0, const arma::vec& t1) override;

  double atom_log_weight(std::size_t i) const override { return beta0_[i] / tau_; }
  arma::vec atom_location(std::size_t i) const override;

  double tau() const { return tau_; }
  bool estimates_tau() const { return estimate_; }
  const arma::vec& beta0() const { return beta0_; }
  const arma::mat& beta1() const { return beta1_; }

private:
  struct Slot {
    enum Kind { log_tau, beta0, beta1 } kind;
    std::size_t expert = 0, coord = 0;
  };
  void build_slots();
  /// k x n: (phi(beta1^T x) + beta0) / tau; also returns Z = beta1^T x.
  arma::mat scores(const arma::mat& X, arma::mat* Z = nullptr) const;
  /// Set the fixed entries (reference expert, normalised coordinate).
  void apply_fixed();
  bool newton_applicable(const GateMStepOptions& opt) const;

  std::optional<Activation> act_;
  double tau_;
  bool estimate_;
  Norm norm_;
  double sign_ = 1.0;  // norm=beta1: beta1_1[0] = sign_
  arma::vec beta0_;    // k
  arma::mat beta1_;    // d x k
  std::vector<Slot> slots_;
};

}  // namespace moerate
