// moerate/studies/scenarios.hpp -- the seeds' scenarios (experiments.md E) as
// built-in studies whose data do not come from a mixture-of-experts truth.
//
// A scenario study is a list of data models (generators, below) and fit
// settings; a task (setting, n, replication) draws a training sample of size n
// and a test sample of size n_test from its setting's data model, fits, and
// measures the fit on the test sample and against the data model's structure.
// Seeds: data derive_seed(seed, {n, rep, data_index}) (settings with the
// same data model see the same data: paired comparisons), fit
// derive_seed(seed, {n, rep, setting, 1}); the fixed structure of a data
// model (directions, centres, embeddings) comes from its own structure_seed.
// Results are identical whatever the thread count.
//
// Data models ("model" of a data spec):
//   latent-clusters  Kawata et al. 2025: cluster c ~ U{1..C}; x ~ N(rho v_c, I_d);
//                    y = f(<w_c, x>) + s_c g(<w_g, x>) + noise N(0, sigma^2),
//                    f = g = He_3 / sqrt(6) (information exponent 3),
//                    s_c = s cos(2 pi c / C) (sum_c s_c = 0); v_c, w_c, w_g orthonormal.
//   cluster-centres  Chen et al. 2022, patches summed: K clusters, orthonormal
//                    features v_k and centres c_k; x = alpha y' v_k + beta c_k +
//                    gamma eps v_k' + N(0, sigma^2 I), y' = +-1, eps = +-1, k' != k,
//                    alpha, gamma ~ U(0.5, 2), beta ~ U(1, 2); label y = (y' + 1) / 2.
//   manifold         Wang and E 2025: t ~ U[0, 1]^m (m the manifold dimension),
//                    x = Q phi(t) in R^D, phi(t) = (cos(pi j t_u) / j, sin(pi j t_u) / j)
//                    for u = 1..m, j = 1..D/(2m) (a curved embedding that no affine
//                    subspace holds), Q a fixed D x D orthogonal matrix;
//                    f(t) = sin(2 pi t_1) prod_{i>1} cos(pi t_i) + 1{t_1 > 0.6};
//                    y = f + N(0, sigma^2).
//   product          E^2 pieces in product structure on x ~ U[-1, 1]^2:
//                    f(x) = p_i(x_1) + q_j(x_2) on the cell (i, j) of the E x E grid,
//                    p_i, q_j linear with random slopes and intercepts (jumps at
//                    the cell edges); y = f + N(0, sigma^2).
//
// Metrics (results columns m.NAME, one per fit):
//   test_mse        mean (f_hat(x) - f(x))^2 over the test sample (noiseless f)
//   test_rmse       its square root (the approximation error of expressive-power)
//   test_error      misclassification rate of 1{P_hat(y = 1 | x) > 1/2} (Bernoulli)
//   cosine          latent-clusters: mean over clusters c of the largest
//                   |<a, w_c>| / |a| over the first-layer weight vectors a of the
//                   expert routed to cluster c (most gate weight on its test
//                   points); for one expert, over all its hidden units
//   centre_distance cluster-centres: || G / |G|_F - C / |C|_F ||_F minimised over
//                   the matchings of experts to clusters, G the gate slopes beta1
//                   centred over experts (softmax is invariant to a common shift),
//                   C the true centres c_k centred likewise (nan for k = 1)
//   routing_accuracy cluster models: the share of test points whose most weighted
//                   expert is their cluster's, under the best matching of experts
//                   to clusters (nan unless k = the number of clusters)
//
//   ScenarioStudy s = scenario_study("latent-clusters", "quick");
//   run_scenario_study(s, "out/results.csv", SweepOptions{});
#pragma once

#include <map>
#include <string>
#include <vector>

#include "moerate/estimators/fit.hpp"
#include "moerate/io/csv.hpp"
#include "moerate/studies/rates.hpp"
#include "moerate/studies/sweep.hpp"

namespace moerate {

struct ScenarioSetting {
  std::string label;        // "setting" column
  std::string series;       // figure series (settings of one series differ in n or k)
  std::string panel;        // figure / table group
  std::string x_axis = "n"; // "n" (sample size) or "k" (number of experts)
  std::size_t data_index = 0;
  std::vector<std::size_t> n_values;  // sample sizes (empty: the study's n_grid)
  FitOptions fit;
};

struct ScenarioStudy {
  std::string name, scale;
  std::vector<json> data;                 // data-model specs
  std::vector<std::size_t> n_grid;
  int replications = 3;
  std::size_t n_test = 2000;
  std::uint64_t seed = 1;
  std::vector<ScenarioSetting> settings;
  std::vector<std::string> metrics;       // names without "m."
  json to_json() const;                   // the study as run (study.json)
};

bool is_scenario_study(const std::string& name);
/// The built-in scenario studies latent-clusters, cluster-centres,
/// expressive-power at scale "smoke" (tests), "quick" or "paper".
ScenarioStudy scenario_study(const std::string& name, const std::string& scale);

struct ScenarioData {
  arma::mat X, X_test;
  arma::rowvec y, y_test;
  arma::rowvec f_test;          // noiseless target on the test sample (regression models)
  arma::uvec cluster_test;      // latent cluster of each test point (cluster models)
  arma::mat directions;         // latent-clusters: w_c as columns
  arma::mat centres;            // cluster-centres: c_k as columns
  bool binary = false;          // y in {0, 1}
};
/// Draw n training and n_test test observations from a data model.
ScenarioData scenario_data(const json& spec, std::size_t n, std::size_t n_test, Rng& rng);

/// The metrics of a fitted model on a sample (names without "m."; nan where undefined).
std::map<std::string, double> scenario_metrics(const ScenarioData& D, const GaussianMoE& fit);

/// The sizes a setting runs at.
const std::vector<std::size_t>& setting_sizes(const ScenarioStudy& s, const ScenarioSetting& st);

/// Per (setting, n): the mean of a metric over replications with a bootstrap
/// percentile interval of the mean (resampling replications).
struct ScenarioCell {
  std::string setting, metric;
  double n = 0, k = 0;
  int reps = 0;                 // finite values used
  double mean = 0, ci_low = 0, ci_high = 0;
  double median = 0;            // (test errors have outliers: a diverged fit)
};
std::vector<ScenarioCell> scenario_cells(const ScenarioStudy& s, const CsvTable& results, int bootstrap,
                                         double level = 0.95, std::uint64_t seed = 1);

/// The replicates of one series and metric as a LossTable whose "n" is the
/// series' x axis (n, or k for x_axis "k"); every finite value is usable.
LossTable scenario_series_table(const ScenarioStudy& s, const CsvTable& results, const std::string& series,
                                const std::string& metric);

/// Run every task (parallel over tasks) and write the results table (the
/// sweep's fixed columns, then m.<metric>); an existing file of the same
/// study is resumed when opt.resume.
SweepSummary run_scenario_study(const ScenarioStudy& s, const std::string& out_csv, const SweepOptions& opt);

}  // namespace moerate
