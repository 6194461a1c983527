// moerate/model/model.hpp -- a mixture of experts: one gating, one expert family.
//
// Gaussian MoE (models.md section 2), kind "gaussian":
//     p_G(y | x) = sum_i pi_i(x) N(y; h(x; eta_i), nu_i),   nu_i a VARIANCE.
// Regression model (section 5.3), kind "regression":
//     Y = f_G(X) + e,  f_G(x) = sum_i pi_i(x) h(x; eta_i),  e ~ N(0, noise_variance);
//     nu is unused there (noise_variance is used only to simulate).
// Bernoulli MoE (model/response.hpp), kind "bernoulli", y in {0, 1}:
//     p_G(y | x) = sum_i pi_i(x) Bern(y; sigmoid(h(x; eta_i))),  no variance;
//     regression_function is then P(y = 1 | x) and expert_means are logits.
//
// Parameters: gating (its own flat vector), eta (q x k, one column per
// expert), nu (k). The flat vector of the whole model, used by the direct
// MLE and by standard errors, is [gating params, eta_1, ..., eta_k, log nu_1..k]
// (log nu so that it is unconstrained); flat_names() names every entry.
//
// Everything is computed in log space on whole matrices (X is d x n,
// per-expert quantities k x n).
//
// Gate covariates (model/covariates.hpp): the gate may read other columns of X
// than the experts, pi_i(x_g) and h(x_e; eta_i). X is then the union of the
// columns (dim() rows); gate_dim() and expert_dim() are the families' own
// dimensions, and every method takes the rows each part reads (gate_x, expert_x).
// By default both read all of X (covariates().shared()).
//
//   GaussianMoE m = GaussianMoE::from_json(j, "truth.json");
//   double ll = m.log_likelihood(X, y);
#pragma once

#include <armadillo>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "moerate/model/covariates.hpp"
#include "moerate/model/expert_family.hpp"
#include "moerate/model/gating.hpp"
#include "moerate/core/rng.hpp"

namespace moerate {

enum class ModelKind { gaussian, regression, bernoulli };
/// "gaussian" | "regression" | "bernoulli" (the \"model\" key of a model file).
std::string model_kind_name(ModelKind k);
ModelKind parse_model_kind(const std::string& text);  // InvalidArgument otherwise

/// One atom of the mixing measure G = sum_i exp(beta0_i) delta_(beta1_i, eta_i, nu_i).
struct Atom {
  double beta0 = 0;     // log weight
  arma::vec location;   // beta1 (or w for Laplace gates)
  arma::vec eta;        // expert parameters, blocks as in ExpertFamily::blocks()
  double nu = 0;        // variance (0 in the regression model)
};

class GaussianMoE {
public:
  GaussianMoE(std::unique_ptr<Gating> gating, std::shared_ptr<const ExpertFamily> experts,
              arma::mat eta, arma::vec nu, ModelKind kind = ModelKind::gaussian, Covariates covariates = {});
  GaussianMoE(const GaussianMoE& o);
  GaussianMoE& operator=(const GaussianMoE& o);
  GaussianMoE(GaussianMoE&&) noexcept = default;
  GaussianMoE& operator=(GaussianMoE&&) noexcept = default;

  /// Read a model file (validated; `source` names it in errors).
  static GaussianMoE from_json(const json& j, const std::string& source);
  static GaussianMoE load(const std::string& path);
  json to_json() const;

  ModelKind kind() const { return kind_; }
  std::size_t n_experts() const { return gating_->n_experts(); }
  /// Rows of the data matrix X (the union of the gate and expert columns).
  std::size_t dim() const { return covariates_.shared() ? gating_->dim() : covariates_.dim(); }
  std::size_t gate_dim() const { return gating_->dim(); }
  std::size_t expert_dim() const { return experts_->dim(); }
  const Covariates& covariates() const { return covariates_; }
  /// Replace the map (validated against the families' dimensions).
  void set_covariates(Covariates c);
  /// The rows of X the gating / the expert family read (X itself when shared).
  Covariates::Rows gate_x(const arma::mat& X) const { return covariates_.gate_x(X); }
  Covariates::Rows expert_x(const arma::mat& X) const { return covariates_.expert_x(X); }
  const Gating& gating() const { return *gating_; }
  Gating& gating() { return *gating_; }
  const ExpertFamily& experts() const { return *experts_; }
  std::shared_ptr<const ExpertFamily> expert_family_ptr() const { return experts_; }
  const arma::mat& eta() const { return eta_; }
  arma::mat& eta() { return eta_; }
  const arma::vec& nu() const { return nu_; }
  arma::vec& nu() { return nu_; }
  double noise_variance() const { return noise_variance_; }
  void set_noise_variance(double v);

  arma::mat log_weights(const arma::mat& X) const {
    const Covariates::Rows xg = gate_x(X);
    return gating_->log_weights(xg.mat());
  }
  /// k x n expert means h(x_i; eta_j).
  arma::mat expert_means(const arma::mat& X) const;
  /// k x n log pi_j(x_i) + log N(y_i; h_ij, nu_j)  (gaussian kind);
  /// log pi_j(x_i) + log Bern(y_i; sigmoid(h_ij))   (bernoulli kind).
  arma::mat log_joint(const arma::mat& X, const arma::rowvec& y) const;
  /// Per-observation log p(y_i | x_i) (gaussian and bernoulli kinds).
  arma::rowvec log_likelihood_obs(const arma::mat& X, const arma::rowvec& y) const;
  double log_likelihood(const arma::mat& X, const arma::rowvec& y) const;
  /// Posterior expert probabilities, k x n (columns sum to one).
  arma::mat responsibilities(const arma::mat& X, const arma::rowvec& y) const;
  /// Regression function f_G(x) = sum_j pi_j(x) h_j(x) (both kinds), 1 x n.
  arma::rowvec regression_function(const arma::mat& X) const;
  /// Predictive variance of y given x (gaussian: mixture variance; regression: noise).
  arma::rowvec predictive_variance(const arma::mat& X) const;
  /// Predictive quantiles of y given x, one row per probability in (0, 1): len(probs) x n
  /// (gaussian: of the mixture; regression: of N(f_G(x), noise_variance)).
  arma::mat predictive_quantiles(const arma::mat& X, const std::vector<double>& probs) const;

  /// Draw y given X.
  arma::rowvec simulate(const arma::mat& X, Rng& rng) const;

  /// Whole-model flat parameter vector (see file header) and its names.
  arma::vec flat_params() const;
  void set_flat_params(const arma::vec& theta);
  std::vector<std::string> flat_names() const;

  /// Atoms of the mixing measure (for Voronoi losses).
  std::vector<Atom> atoms() const;
  /// Reorder experts: new expert i is old expert order[i].
  void permute(const std::vector<std::size_t>& order);
  void validate() const;

private:
  std::unique_ptr<Gating> gating_;
  std::shared_ptr<const ExpertFamily> experts_;
  arma::mat eta_;
  arma::vec nu_;
  ModelKind kind_;
  double noise_variance_ = 0;
  Covariates covariates_;
};

}  // namespace moerate
