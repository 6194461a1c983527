// moerate/model/expert_family.hpp -- the interface every expert family implements.
//
// An expert family is the mean function h(x; eta) of models.md section 4 for a
// fixed covariate dimension d. It is stateless apart from its options (d,
// activation, units, degree): the parameters eta of each expert are a flat
// vector of length n_params(), in the order of blocks() (named blocks such as
// "a" (d values), "b", "c"; Voronoi losses report one term per block).
//
//   mean(X, eta)          1 x n, h(x_i; eta)
//   jacobian(X, eta)      q x n, dh/deta_u at each x_i (analytic)
//   hessian_vec(...)      optional second derivatives (identifiability)
//   m_step(X, y, w, eta)  lower S(eta) = sum_i w_i (y_i - h(x_i; eta))^2; never
//                         raises it. Linear families solve it in closed form
//                         (weighted least squares by QR); the default is a few
//                         Levenberg-Marquardt steps accepted only if S decreases.
//
//   auto f = moerate::make_expert_family(json{{"family","ffn"},{"activation","tanh"}}, 1);
//   arma::rowvec h = f->mean(X, eta);
#pragma once

#include <armadillo>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moerate/core/rng.hpp"
#include "moerate/model/m_step_companion.hpp"

#ifndef MOERATE_CONCAT
#define MOERATE_CONCAT2(a, b) a##b
#define MOERATE_CONCAT(a, b) MOERATE_CONCAT2(a, b)
#endif

namespace moerate {

using json = nlohmann::json;

struct ParamBlock {
  std::string name;    // "a", "b", "c", "w1", ...
  std::size_t offset;  // first index in eta
  std::size_t size;    // number of entries
};

struct ExpertMStepOptions {
  int lm_steps = 5;        // Levenberg-Marquardt steps per M-step (generalised EM)
  double lm_lambda0 = 1e-3;  // initial damping, relative to the mean diagonal of J^T W J
  int lm_max_tries = 30;   // damping increases (x10) before a step is given up
  void validate() const;
};

struct ExpertMStepResult {
  double sse_before = 0, sse_after = 0;  // weighted sums of squares (after <= before)
  int accepted_steps = 0;
};

/// The M-step of all k experts (m_step_all): per expert its result and its
/// weight sum_i R_ij. Experts with weight <= kEmptyExpertWeight are skipped
/// (their parameters and result untouched).
struct ExpertMStepAll {
  std::vector<ExpertMStepResult> results;
  arma::vec weight;
};
inline constexpr double kEmptyExpertWeight = 1e-12;

/// The M-step of all experts as passes a gate's M-step can carry
/// (m_step_companion.hpp): EM hands it to the gate, then calls
/// run_remaining (the passes the gate did not carry) and finish.
class ExpertMStepPlan : public MStepCompanion {
public:
  /// Runs the hooks not yet run, over the n observations, in the same blocks
  /// and chunks as the gate's passes (reduce_blocks).
  void run_remaining(std::size_t n);
  /// Applies the M-step to the eta it was planned on; returns what m_step_all returns.
  virtual ExpertMStepAll finish() = 0;
};

class ExpertFamily {
public:
  explicit ExpertFamily(std::size_t dim) : d_(dim) {}
  virtual ~ExpertFamily() = default;
  std::size_t dim() const { return d_; }

  virtual std::string family() const = 0;
  /// The "expert_family" object of the model file ({"family":..., options}).
  virtual json family_json() const = 0;
  virtual std::string description() const = 0;

  virtual std::size_t n_params() const = 0;
  virtual std::vector<ParamBlock> blocks() const = 0;
  /// Scalar names in eta order: "a_1", ..., "b" (derived from blocks()).
  std::vector<std::string> param_names() const;
  /// True when h is linear in eta (closed-form M-step, e.g. linear experts).
  virtual bool linear_in_params() const { return false; }

  virtual arma::rowvec mean(const arma::mat& X, const arma::vec& eta) const = 0;
  virtual arma::mat jacobian(const arma::mat& X, const arma::vec& eta) const = 0;
  /// h = mean(X, eta) and J = jacobian(X, eta) in one call (a family whose two
  /// share their expensive part, as ffn's activations, overrides it).
  virtual void mean_and_jacobian(const arma::mat& X, const arma::vec& eta, arma::rowvec& h, arma::mat& J) const {
    h = mean(X, eta);
    J = jacobian(X, eta);
  }
  /// The Gauss-Newton sums of the weighted least-squares M-step over the
  /// columns of the block Xb (y and w point at its responses and weights):
  /// A += sum_i w_i J_i J_i^T (upper triangle), g += sum_i w_i r_i J_i and
  /// sse += sum_i w_i r_i^2, r = y - h, in the order of the M-step's own loop
  /// (even and odd observations apart; model/expert_family.cpp). A family that
  /// forms J_i and h_i on the fly overrides it; the default returns false and
  /// the M-step builds the block's Jacobian with mean_and_jacobian instead.
  virtual bool gauss_newton_block(const arma::mat& Xb, const double* y, const double* w, const arma::vec& eta,
                                  arma::mat& A, arma::vec& g, double& sse) const {
    (void)Xb, (void)y, (void)w, (void)eta, (void)A, (void)g, (void)sse;
    return false;
  }
  /// d^2 h / (d eta_u d eta_v) at every x: returns a q*q x n matrix, row u*q+v.
  /// Default: central differences of jacobian() (accuracy ~1e-7 relative).
  virtual arma::mat hessian(const arma::mat& X, const arma::vec& eta) const;
  /// A += sum_i w_i d^2 h(x_i) / (d eta d eta^T) (q x q) over the columns of X,
  /// w of length X.n_cols. Default: from hessian() (a q*q x n matrix); a
  /// family that knows its second derivatives in closed form overrides it
  /// with one pass and no such matrix (ffn).
  virtual void add_weighted_hessian(const arma::mat& X, const arma::vec& eta, const arma::rowvec& w,
                                    arma::mat& A) const {
    const std::size_t q = n_params();
    A += arma::reshape(hessian(X, eta) * w.t(), q, q);
  }

  virtual ExpertMStepResult m_step(const arma::mat& X, const arma::rowvec& y,
                                   const arma::rowvec& w, arma::vec& eta,
                                   const ExpertMStepOptions& opt) const;
  /// The M-step of every expert, expert j weighted by the row j of R (k x n),
  /// eta its column j. Default: m_step per expert on a copy of the row; a
  /// family may do all in shared passes over the data (LinearExpert).
  virtual ExpertMStepAll m_step_all(const arma::mat& X, const arma::rowvec& y, const arma::mat& R, arma::mat& eta,
                                    const ExpertMStepOptions& opt) const;
  /// The same as a plan whose passes a gate's M-step can carry; nullptr (the
  /// default) when the family has none. X, y, R and eta must outlive the plan.
  virtual std::unique_ptr<ExpertMStepPlan> plan_m_step_all(const arma::mat& X, const arma::rowvec& y,
                                                           const arma::mat& R, arma::mat& eta,
                                                           const ExpertMStepOptions& opt) const {
    (void)X, (void)y, (void)R, (void)eta, (void)opt;
    return nullptr;
  }

  /// Model-file object of one expert, e.g. {"a":[..],"b":..}.
  virtual json to_json(const arma::vec& eta) const = 0;
  /// Parse and validate; `where` names the object in errors ("experts[0].expert").
  virtual arma::vec from_json(const json& j, const std::string& where) const = 0;
  /// Throws InvalidArgument if eta is not a valid parameter (e.g. ffn a = 0 is allowed
  /// numerically but flagged by identifiability only; default checks size and finiteness).
  virtual void validate(const arma::vec& eta, const std::string& where) const;
  /// A canonical representative of eta's equivalence class (ffn: hidden units
  /// sorted, odd-activation sign flips resolved). Default: eta itself.
  virtual arma::vec canonical(const arma::vec& eta) const { return eta; }
  /// All parameter vectors that give the same function as eta (ffn symmetries);
  /// used by matching and losses (take the nearest). Default: {eta}.
  virtual std::vector<arma::vec> equivalents(const arma::vec& eta) const { return {eta}; }
  /// A start value fitted to weighted data (used by initialisations).
  /// Default: random small eta refined by m_step.
  virtual arma::vec initial(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                            Rng& rng) const;
  /// Whether initial() draws from rng (false: its start is a function of the
  /// weighted data alone, and fit runs starts with equal partitions once).
  virtual bool initial_draws() const { return true; }

  /// Weighted squared error sum_i w_i (y_i - h(x_i; eta))^2.
  double weighted_sse(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                      const arma::vec& eta) const;

protected:
  /// For initial(): refines each candidate by m_step(opt) and returns the one
  /// with the smallest weighted squared error (the first on ties), or
  /// `fallback` when none is finite.
  arma::vec best_refined(const arma::mat& X, const arma::rowvec& y, const arma::rowvec& w,
                         std::vector<arma::vec> candidates, const ExpertMStepOptions& opt,
                         arma::vec fallback) const;

  std::size_t d_;
};

using ExpertFactory = std::function<std::shared_ptr<ExpertFamily>(const json& spec, std::size_t d)>;
struct ExpertInfo {
  std::string name, description;
  ExpertFactory make;
};
std::map<std::string, ExpertInfo>& expert_registry();
bool register_expert(const std::string& name, const std::string& description, ExpertFactory f);
std::shared_ptr<ExpertFamily> make_expert_family(const json& spec, std::size_t d);

/// Option helpers for family factories (spec = the "expert_family" object or the
/// parsed CLI form, e.g. {"family":"ffn","_":"tanh","units":3}).
/// An integer option >= min_value (fallback when absent); throws InvalidArgument
/// "<family>: option <key> must be an integer >= <min>; got <value>".
std::size_t spec_integer(const json& spec, const std::string& key, std::size_t fallback,
                         std::size_t min_value, const std::string& family);
/// Throws InvalidArgument naming the first key of spec (other than "family")
/// that is not in `allowed` (catches typos such as "ffn:tanh,unit=3").
void check_spec_keys(const json& spec, const std::vector<std::string>& allowed, const std::string& family);

#define MOERATE_REGISTER_EXPERT(NAME, DESCRIPTION, FACTORY) \
  static const bool MOERATE_CONCAT(moerate_expert_reg_, __LINE__) = \
      ::moerate::register_expert(NAME, DESCRIPTION, FACTORY)

}  // namespace moerate
