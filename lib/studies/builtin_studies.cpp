#include "moerate/studies/builtin_studies.hpp"

#include <algorithm>
#include <cmath>

#include "moerate/core/error.hpp"
#include "moerate/studies/rates.hpp"

namespace moerate {

namespace {

// Experiment A (spec experiments.md): softmax gate, linear experts, variances.
const json kTruthLinear = json::parse(R"({
  "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
  "experts": [
    {"gate": {"beta0": -8, "beta1": [25]}, "expert": {"a": [-20], "b": 15}, "variance": 0.09},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [20], "b": -5}, "variance": 0.16} ] })");
// The headline truths (experiments.md D): a soft gate on the centred design
// U[-1, 1] (pi_1(x) = sigmoid(3x), from 0.05 to 0.95), experts that differ
// clearly on it. Both pass `moerate check-truth`.
const json kHeadlineLinear = json::parse(R"({
  "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
  "experts": [
    {"gate": {"beta0": 0, "beta1": [3]}, "expert": {"a": [2], "b": 1}, "variance": 0.09},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [-1.5], "b": -0.5}, "variance": 0.16} ] })");
// Bias-free one-hidden-unit tanh experts c tanh(a x) (strongly identifiable,
// models.md 9.1): 2 tanh(3x) and -1.5 tanh(x).
const json kHeadlineTanh = json::parse(R"({
  "gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh", "bias": false},
  "experts": [
    {"gate": {"beta0": 0, "beta1": [3]}, "expert": {"a": [3], "c": 2}, "variance": 0.09},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [1], "c": -1.5}, "variance": 0.16} ] })");

// A compact parameter space for over-fitted fits (models.md 9.4), generous
// against the truths: |beta0| <= 30, |beta1| <= 50, |eta| <= 50, nu in [1e-4, 100].
const json kOverBounds = json{{"gate_intercept", 30}, {"gate_slope", 50}, {"expert", 50}, {"nu_min", 1e-4},
                              {"nu_max", 100}};

struct Scale {
  json n;
  int reps;
};

Scale scale_of(const std::string& scale, bool over) {
  if (scale == "paper") return {json{{"min", 100}, {"max", 100000}, {"count", 200}}, 40};
  if (scale == "medium")
    // Over-fitted: the largest grid that runs in well under an hour on 2 cores
    // with certified fits (docs/results.md).
    return over ? Scale{json{{"min", 200}, {"max", 30000}, {"count", 10}}, 12}
                : Scale{json{{"min", 100}, {"max", 100000}, {"count", 20}}, 20};
  if (scale == "quick")
    return over ? Scale{json{{"min", 200}, {"max", 3000}, {"count", 5}}, 4}
                : Scale{json{{"min", 200}, {"max", 50000}, {"count", 10}}, 10};
  throw InvalidArgument("--scale: expected quick, medium or paper; got '" + scale + "'");
}

}  // namespace

json builtin_study_config(const std::string& name, const std::string& scale) {
  json s;
  s["name"] = name;
  s["scale"] = scale;
  s["design"] = "uniform:0,1";
  s["seed"] = 20240101;
  // Every setting uses the default stopping rule (|dl| < 1e-6 and score
  // statistic < 1e-3 standard errors, SQUAREM; models.md 9.3).
  auto setting = [](const std::string& label, const std::string& truth, int k, const std::string& init,
                    int starts) {
    return json{{"label", label}, {"truth", truth}, {"k", k}, {"init", init}, {"starts", starts},
                {"estimator", "em"}};
  };
  auto over = [&](const std::string& label, const std::string& truth, int k, const std::string& init, int starts) {
    json st = setting(label, truth, k, init, starts);
    st["bounds"] = kOverBounds;
    return st;
  };
  if (name == "softmax-linear-exact") {
    const Scale sc = scale_of(scale, false);
    s["truths"] = {{"linear", kTruthLinear}};
    s["n"] = sc.n;
    s["replications"] = sc.reps;
    s["settings"] = json::array({setting("linear k=2", "linear", 2, "kmeans", 2)});
  } else if (name == "softmax-linear-over" || name == "softmax-linear-over3") {
    // A2 (k = 3, a cell of two) and A3 (k = 4, a cell of three): experiment A's truth.
    // Near-truth settings: one start per way of splitting the two true atoms
    // (2 for k = 3, 2^2 = 4 for k = 4; fit.cpp, near_truth_model). Truth-free
    // settings: k-1 k-means starts and k-1 split starts (each atom of the best
    // (k-1)-expert fit split in turn): k-means alone misses the maximum the
    // split starts find on most data sets at n >= 3e4 (docs/results.md B round 7).
    const Scale sc = scale_of(scale, true);
    const int k = name == "softmax-linear-over" ? 3 : 4;
    const std::string kk = "k=" + std::to_string(k);
    s["truths"] = {{"linear", kTruthLinear}};
    s["n"] = sc.n;
    s["replications"] = sc.reps;
    s["settings"] = json::array({over("linear " + kk, "linear", k, "kmeans+split", 2 * (k - 1)),
                                 over("linear " + kk + " near-truth", "linear", k, "near-truth", k == 3 ? 2 : 4)});
  } else if (name == "linear-vs-ffn") {
    const Scale sc = scale_of(scale, true);
    s["design"] = "uniform:-1,1";
    s["truths"] = {{"linear", kHeadlineLinear}, {"tanh", kHeadlineTanh}};
    s["n"] = sc.n;
    s["replications"] = sc.reps;
    s["settings"] = json::array({over("linear k=3", "linear", 3, "kmeans+split", 4),
                                 over("linear k=3 near-truth", "linear", 3, "near-truth", 2),
                                 over("tanh k=3", "tanh", 3, "kmeans+split", 4),
                                 over("tanh k=3 near-truth", "tanh", 3, "near-truth", 2)});
  } else {
    throw InvalidArgument("unknown study '" + name +
                          "'; built-in studies: softmax-linear-exact (A1), softmax-linear-over (A2), "
                          "softmax-linear-over3 (A3), linear-vs-ffn (B); scenario studies (experiments.md E): "
                          "latent-clusters, cluster-centres, expressive-power");
  }
  return s;
}

/// Metrics reported for a setting: the loss and the per-block errors that the
/// theory speaks of (exact.* for exact-fitted, over.* for over-fitted fits).

std::vector<std::string> report_metrics(const CsvTable& t, const Study& study, const StudySetting& st) {
  const bool over = st.fit.n_experts > study.truths[st.truth_index].n_experts();
  std::vector<std::string> out = {"m.loss"};
  for (const auto& m : metric_columns(t)) {
    if (m.rfind(over ? "m.cell." : "m.exact.", 0) != 0) continue;
    // Only the blocks this setting's family has (the results table holds the
    // union over settings).
    const auto lt = loss_table_from_results(t, m, st.label);
    if (std::any_of(lt.loss.begin(), lt.loss.end(), [](double v) { return std::isfinite(v); })) out.push_back(m);
  }
  return out;
}

}  // namespace moerate
