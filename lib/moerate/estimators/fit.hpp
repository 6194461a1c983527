// moerate/estimators/fit.hpp -- initialisations, restarts and the estimator driver.
//
// fit() runs n_starts starts of an estimator (EM by default) and keeps the one
// with the best objective (log-likelihood; for least squares, minus the
// residual sum of squares), reporting every start. Starts run in parallel
// (OpenMP) with seeds derived from (seed, start index): the result does not
// depend on the thread count.
//
// Initialisations (models.md section 5.1):
//   random      responsibilities drawn at random (Dirichlet-like), then one M-step
//   kmeans      k-means++ on standardised (x, y); hard responsibilities, one M-step
//   model       the parameters of a model file
//   near-truth  each fitted atom assigned to a true atom (every true atom covered),
//               perturbed by N(0, (s n^-g)^2) with s = 0.005 for gates, 0.05 for
//               experts and g = 0.083 (the literature's schedule; it depends on n
//               and on the truth: labelled as such in every output)
//   split       truth-free: fit k-1 experts (the best of k-means starts), then
//               start r splits one fitted atom
//               into two by the r-th split pattern, with the near-truth schedule's
//               perturbation (the near-truth start with the (k-1)-expert MLE in
//               place of the truth; models.md 5.1)
//   A+B         starts cycle through random, kmeans and split ("kmeans+split":
//               starts 0, 2, ... k-means, 1, 3, ... split by patterns 0, 1, ...)
//
//   FitOptions o;  o.n_experts = 2;  o.n_starts = 10;  o.seed = 1;
//   FitResult r = fit(D.X, D.y, o);
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "moerate/estimators/certificate.hpp"
#include "moerate/estimators/em.hpp"
#include "moerate/model/model.hpp"

namespace moerate {

enum class InitKind { random, kmeans, model, near_truth, split };
std::string init_kind_name(InitKind k);

struct InitSpec {
  InitKind kind = InitKind::kmeans;       // a start that does not use the truth
  std::string model_path;                 // for model / near-truth (the truth's file)
  double gate_scale = 0.005;              // near-truth: literature value
  double expert_scale = 0.05;             // near-truth: literature value
  double exponent = 0.083;                // near-truth: noise s * n^(-g), literature g
  /// Starts cycle through these kinds (random, kmeans, split; "A+B"); empty: every start is `kind`.
  std::vector<InitKind> cycle;
  /// Parse "random" | "kmeans" | "split" | "model:PATH" | "near-truth:PATH" | "A+B[+C]" (A, B, C among
  /// random, kmeans, split).
  static InitSpec parse(const std::string& text);
  std::string label() const;              // e.g. "near-truth(s=0.005/0.05,g=0.083)", "kmeans+split"
  InitKind kind_of_start(std::size_t s) const;
  /// Which split pattern start s takes: its rank among the starts of its kind.
  std::size_t pattern_of_start(std::size_t s) const;
  bool uses(InitKind k) const;
  std::string start_label(std::size_t s) const;  // the label of start s's kind
};

struct FitOptions {
  std::size_t n_experts = 2;
  json gating = json{{"family", "softmax"}};
  json expert = json{{"family", "linear"}};
  std::string estimator = "em";           // em | mle | lse (see estimator registry)
  ModelKind response = ModelKind::gaussian;  // gaussian | bernoulli (y in {0, 1}; em only)
  Covariates covariates{};                // which rows of X the gate and the experts read
                                          // (model/covariates.hpp); default: all, shared
  int n_starts = 10;                      // restarts; the best objective is kept
  InitSpec init{};
  std::uint64_t seed = 1;
  EMOptions em{};
  int threads = 0;                        // 0 = OpenMP default; results do not depend on it
  double prune_factor = 30;               // EM with several starts: stop a start at a checkpoint
                                          // (EM steps 15, 30, 60, ...) when it trails the best start
                                          // by more than kPruneMinGap nats and by more than
                                          // prune_factor times its own gain since the last
                                          // checkpoint (stop reason dominated); 0 = every start
                                          // runs to its end. The other starts' numbers are the same
                                          // in every bit (docs/estimators.md)
  void validate() const;
};
inline constexpr int kFirstCheckpoint = 15;     // EM steps: prune_factor's first checkpoint
inline constexpr double kPruneMinGap = 0.1;     // nats: a start this close to the best is never pruned

struct StartSummary {
  int index = 0;
  std::string init;
  double objective_initial = 0;   // log-likelihood (or -RSS) at the start
  double objective = 0;           // at the end
  int iterations = 0;
  StopReason stop_reason = StopReason::not_run;
  double seconds = 0;
  double max_decrease = 0;        // EM monotonicity check
  int same_as = -1;               // a start equal in every bit to start same_as's (e.g. the same
                                  // k-means partition): not run again, its results copied
};

struct FitResult {
  GaussianMoE model;
  std::string estimator;
  double log_likelihood = 0;      // total (gaussian kind); for lse: -0.5 n log(RSS/n) profile
  double rss = 0;                 // residual sum of squares of the regression function
  std::size_t n_obs = 0;
  std::size_t n_params = 0;       // free parameters
  double aic = 0, bic = 0;
  int iterations = 0;
  StopReason stop_reason = StopReason::not_run;
  std::vector<StartSummary> starts;
  int best_start = 0;
  double prune_factor = 0;       // the fit's FitOptions::prune_factor (recorded in the fit JSON)
  double seconds = 0;
  EMResult em;                    // the best start's EM details (trace, floor)
  FitCertificate certificate;     // of the best start (estimators/certificate.hpp)
  json to_json() const;           // the model file plus fit information
};

/// Starting model for one start (family objects from opt, data-driven values).
/// `start_index` picks, for near-truth starts of an over-fitted model, which
/// true atoms the extra atoms copy (start r: the r-th split pattern after the
/// cyclic one; the fit's start s passes s). For split starts, `split_base` is
/// the (k-1)-expert fit they split (split_base_model; fitted here when null).
GaussianMoE initial_model(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt,
                          Rng& rng, const GaussianMoE* truth, std::size_t start_index = 0,
                          const GaussianMoE* split_base = nullptr);

/// The model that split starts split: the best of a (k-1)-expert fit from
/// k-means starts, one per split start of opt and at least two (one when
/// k-1 = 1), seeds derived from opt.seed.
GaussianMoE split_base_model(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt);

/// Multi-start fit; `truth` is needed for near-truth starts (else loaded from init.model_path).
FitResult fit(const arma::mat& X, const arma::rowvec& y, const FitOptions& opt,
              const GaussianMoE* truth = nullptr);

/// One estimator run from a given start (model updated in place).
struct EstimatorRun {
  double objective = 0;
  int iterations = 0;
  StopReason stop_reason = StopReason::not_run;
  double max_decrease = 0;
  EMResult em;
};
/// The record of a quasi-Newton estimator (mle, lse) that maximised `objective`:
/// no EM trace; the Wolfe line search accepts only improving steps, so
/// max_decrease = 0.
EstimatorRun quasi_newton_run(double objective, int iterations, StopReason stop_reason);
using EstimatorFn = std::function<EstimatorRun(GaussianMoE&, const arma::mat&, const arma::rowvec&,
                                               const FitOptions&)>;
struct EstimatorInfo {
  std::string name, description;
  EstimatorFn run;
};
std::map<std::string, EstimatorInfo>& estimator_registry();
bool register_estimator(const std::string& name, const std::string& description, EstimatorFn f);
#define MOERATE_REGISTER_ESTIMATOR(NAME, DESCRIPTION, FN) \
  static const bool MOERATE_CONCAT(moerate_estimator_reg_, __LINE__) = \
      ::moerate::register_estimator(NAME, DESCRIPTION, FN)

/// Match fitted experts to reference experts (min total distance over
/// permutations for k <= 8, greedy otherwise) on (location, eta, nu); returns
/// order with fitted expert order[j] matched to reference j (k_fit == k_ref).
std::vector<std::size_t> match_experts(const GaussianMoE& fitted, const GaussianMoE& reference);

}  // namespace moerate
