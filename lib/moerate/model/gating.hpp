// moerate/model/gating.hpp -- the interface every gating family implements.
//
// A gating family gives, for k experts and covariates x in R^d, the log
// weights log pi_i(x) (models.md section 3). Data layout: X is d x n (one
// observation per column); log weights are k x n.
//
// Parameters live in a flat vector in an order the family documents in
// param_names(); reference experts (fixed at 0 for identifiability) are NOT
// in the flat vector. Estimators only use this interface:
//   log_weights(X)              k x n log pi (for gates of the regression
//                               model, e.g. sigmoid, the columns need not
//                               sum to one in probability space)
//   log_weights_vjp(X, C)       d/dtheta sum_ij C_ij log pi_ij(theta), for ANY
//                               k x n matrix C (vector-Jacobian product). With C
//                               the EM responsibilities it is the gradient of
//                               EM's Q; with C = posterior probabilities it is the
//                               gating part of the log-likelihood's gradient.
//   m_step(X, R, options)       raise Q(theta) = sum_ij R_ij log pi_ij - ridge/2 |theta|^2;
//                               never lowers it. The default is gradient ascent
//                               with backtracking (GatingAscent in gating.cpp);
//                               softmax overrides it with Newton/IRLS.
//
// Atoms (for Voronoi losses, models.md section 6): each expert i has a log
// weight beta0_i and a location (beta1_i, or w_i for Laplace gates).
//
// Adding a family: one new source file that subclasses Gating and registers
// a factory with MOERATE_REGISTER_GATING (see docs/adding-a-family.md).
//
//   auto g = moerate::make_gating(json{{"family","softmax"}}, /*k=*/2, /*d=*/1);
//   arma::mat log_pi = g->log_weights(X);
#pragma once

#include <armadillo>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moerate/model/m_step_companion.hpp"

namespace moerate {

using json = nlohmann::json;

struct GateMStepOptions {
  double ridge = 0.0;          // L2 penalty on free gate parameters; keeps gates finite
                               // when a component empties (over-fitted fits). Default
                               // 0 = plain MLE, as in the literature.
  int max_steps = 0;           // steps per M-step; 0 = the family's default (steps_or): one Newton step
                               // for Newton families (a generalised EM with the same fixed points; EM's
                               // acceleration does the rest, and each EM step is cheaper), 20 L-BFGS
                               // iterations for ascent families
  double tol = 1e-10;          // ascent families (L-BFGS): stop when the relative increase of Q falls below this
  double newton_tol = 1e-12;   // Newton families: stop when the Newton decrement (predicted increase of Q,
                               // nats; scale-free) falls below this
  int max_halvings = 40;       // step halvings before a step is rejected
  arma::vec lower, upper;      // box on params() (empty = none). Softmax-type Newton steps
                               // respect it by projected Newton (active set); other
                               // families are projected by EM afterwards
  MStepCompanion* companion = nullptr;  // work done in this M-step's passes (m_step_companion.hpp);
                                        // gate families that do not support it ignore it
  void validate() const;
  /// The cap on steps per M-step: max_steps, or the family's default when it is 0.
  int steps_or(int family_default) const { return max_steps > 0 ? max_steps : family_default; }
};

/// Outcome of a gating M-step: Q before and after (after >= before always).
struct GateMStepResult {
  double q_before = 0, q_after = 0;
  int steps = 0;
};

class Gating {
public:
  Gating(std::size_t n_experts, std::size_t dim) : k_(n_experts), d_(dim) {}
  virtual ~Gating() = default;

  std::size_t n_experts() const { return k_; }
  std::size_t dim() const { return d_; }

  /// Registry name ("softmax", "laplace", ...).
  virtual std::string family() const = 0;
  /// {"family": ..., options...}: the "gating" object of the model file.
  virtual json family_json() const = 0;
  virtual std::unique_ptr<Gating> clone() const = 0;
  /// One line for `moerate list`.
  virtual std::string description() const = 0;
  /// True for gates whose weights need not sum to one (regression model only).
  virtual bool regression_only() const { return false; }

  virtual arma::mat log_weights(const arma::mat& X) const = 0;
  virtual arma::vec log_weights_vjp(const arma::mat& X, const arma::mat& C) const = 0;
  /// The same per observation: column i is d/dtheta sum_j C_ji log pi_j(x_i)
  /// (n_params x n; used for score statistics). Default: central finite
  /// differences of log_weights (relative step 1e-6); families override with
  /// the analytic form where it is cheap.
  virtual arma::mat log_weights_vjp_obs(const arma::mat& X, const arma::mat& C) const;
  /// Hessian of sum_ij C_ij log pi_j(x_i) in the gate's parameters for a fixed
  /// C (k x n), analytic; empty (the default) where a family has none, and then
  /// for every input (callers probe with one observation). Used by the analytic
  /// Hessian of the log-likelihood (estimators/inference.hpp), per block of
  /// observations.
  virtual arma::mat q_hessian(const arma::mat& /*X*/, const arma::mat& /*C*/) const { return {}; }
  /// Per expert j, the n_params x n matrix of d log pi_j(x_i) / d theta (the
  /// rows of log_weights_vjp_obs with C the indicator of row j). Default: k
  /// calls of log_weights_vjp_obs; a family overrides it to evaluate its
  /// weights once (softmax).
  virtual std::vector<arma::mat> log_weight_gradients_obs(const arma::mat& X) const;

  virtual std::size_t n_params() const = 0;
  virtual arma::vec params() const = 0;
  virtual void set_params(const arma::vec& theta) = 0;  // throws InvalidArgument on bad values
  virtual std::vector<std::string> param_names() const = 0;

  /// Q(theta) = sum_ij R_ij log pi_ij - ridge/2 |theta|^2 at the current parameters.
  double q_value(const arma::mat& X, const arma::mat& R, double ridge) const;
  /// Raise Q; default: gradient ascent with backtracking using log_weights_vjp.
  virtual GateMStepResult m_step(const arma::mat& X, const arma::mat& R,
                                 const GateMStepOptions& opt);

  /// The "gate" object of expert i in the model file, e.g. {"beta0":..,"beta1":[..]}.
  virtual json gate_json(std::size_t i) const = 0;
  /// Set expert i's gate from its model-file object; `where` names it in errors
  /// (e.g. "experts[1].gate"). Call normalise() after setting all experts.
  virtual void set_gate_json(std::size_t i, const json& gate, const std::string& where) = 0;
  /// Extra family-level state written beside the experts (e.g. hierarchical
  /// group gates, an estimated temperature). Default: none.
  virtual json extra_json() const { return json::object(); }
  virtual void set_extra_json(const json&, const std::string& /*where*/) {}

  /// Re-express parameters in the stored convention (e.g. reference expert at 0).
  virtual void normalise() {}
  /// Reorder experts: new expert i is old expert order[i]. Calls normalise().
  virtual void permute(const std::vector<std::size_t>& order) = 0;
  /// Whether adding a common (t0, t1) to all experts leaves the gate unchanged.
  virtual bool translation_invariant() const { return true; }

  // Atoms for Voronoi losses.
  virtual double atom_log_weight(std::size_t i) const = 0;   // beta0_i
  virtual arma::vec atom_location(std::size_t i) const = 0;  // beta1_i (or w_i)
  virtual std::string location_name() const { return "beta1"; }
  /// Shift every expert's gate by (t0, t1) (translation-invariant gates only;
  /// the reference is then no longer at 0, which losses rely on).
  virtual void translate(double t0, const arma::vec& t1);

  /// Start values from responsibilities R (k x n): default sets all params to
  /// zero and runs m_step.
  virtual void init_from_responsibilities(const arma::mat& X, const arma::mat& R);

protected:
  std::size_t k_, d_;
};

/// Throws InvalidArgument unless order is a permutation of 0..k-1 (fn names the caller).
void check_order(const std::vector<std::size_t>& order, std::size_t k, const std::string& fn);

/// Factory: spec is the "gating" object ({"family": NAME, options...}).
using GatingFactory =
    std::function<std::unique_ptr<Gating>(const json& spec, std::size_t k, std::size_t d)>;

struct GatingInfo {
  std::string name, description;
  GatingFactory make;
};

/// The registry of gating families (name -> factory), filled at static init.
std::map<std::string, GatingInfo>& gating_registry();
bool register_gating(const std::string& name, const std::string& description, GatingFactory f);
std::unique_ptr<Gating> make_gating(const json& spec, std::size_t k, std::size_t d);
/// Parse "NAME[:key=value,key=value]" (the CLI form) into a spec object;
/// values that parse as numbers become numbers.
json parse_family_spec(const std::string& text);

#ifndef MOERATE_CONCAT
#define MOERATE_CONCAT2(a, b) a##b
#define MOERATE_CONCAT(a, b) MOERATE_CONCAT2(a, b)
#endif
#define MOERATE_REGISTER_GATING(NAME, DESCRIPTION, FACTORY) \
  static const bool MOERATE_CONCAT(moerate_gating_reg_, __LINE__) = \
      ::moerate::register_gating(NAME, DESCRIPTION, FACTORY)

}  // namespace moerate
