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
// Experiment B: the same gate and variances, one-hidden-unit tanh experts
// 3 tanh(4x - 1) and 2 tanh(3x - 2), which differ clearly on [0, 1].
const json kTruthTanh = json::parse(R"({
  "gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh"},
  "experts": [
    {"gate": {"beta0": -8, "beta1": [25]}, "expert": {"a": [4], "b": -1, "c": 3}, "variance": 0.09},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [3], "b": -2, "c": 2}, "variance": 0.16} ] })");

struct Scale {
  json n;
  int reps;
  int max_iter;
};

Scale scale_of(const std::string& scale, bool over) {
  if (scale == "paper") return {json{{"min", 100}, {"max", 100000}, {"count", 200}}, 40, 2000};
  if (scale == "quick")
    return over ? Scale{json{{"min", 200}, {"max", 20000}, {"count", 8}}, 6, 1000}
                : Scale{json{{"min", 200}, {"max", 50000}, {"count", 10}}, 10, 1000};
  throw InvalidArgument("--scale: expected quick or paper; got '" + scale + "'");
}

}  // namespace

json builtin_study_config(const std::string& name, const std::string& scale) {
  json s;
  s["name"] = name;
  s["scale"] = scale;
  s["design"] = "uniform:0,1";
  s["seed"] = 20240101;
  auto setting = [](const std::string& label, const std::string& truth, int k, const std::string& init, int starts,
                    int max_iter) {
    return json{{"label", label}, {"truth", truth}, {"k", k}, {"init", init}, {"starts", starts},
                {"max_iter", max_iter}, {"tol", 1e-6}, {"estimator", "em"}};
  };
  if (name == "softmax-linear-exact") {
    const Scale sc = scale_of(scale, false);
    s["truths"] = {{"linear", kTruthLinear}};
    s["n"] = sc.n;
    s["replications"] = sc.reps;
    s["settings"] = json::array({setting("linear k=2", "linear", 2, "kmeans", 2, sc.max_iter)});
  } else if (name == "softmax-linear-over") {
    const Scale sc = scale_of(scale, true);
    s["truths"] = {{"linear", kTruthLinear}};
    s["n"] = sc.n;
    s["replications"] = sc.reps;
    s["settings"] = json::array({setting("linear k=3", "linear", 3, "kmeans", 2, sc.max_iter)});
    if (scale == "paper")
      s["settings"].push_back(setting("linear k=3 near-truth", "linear", 3, "near-truth", 1, sc.max_iter));
  } else if (name == "linear-vs-ffn") {
    const Scale sc = scale_of(scale, true);
    s["truths"] = {{"linear", kTruthLinear}, {"tanh", kTruthTanh}};
    s["n"] = sc.n;
    s["replications"] = sc.reps;
    s["settings"] = json::array({setting("linear k=3", "linear", 3, "kmeans", 2, sc.max_iter),
                                 setting("tanh k=3", "tanh", 3, "kmeans", 2, sc.max_iter)});
  } else {
    throw InvalidArgument("unknown study '" + name +
                                   "'; built-in studies: softmax-linear-exact, softmax-linear-over, linear-vs-ffn");
  }
  return s;
}

/// Metrics reported for a setting: the loss and the per-block errors that the
/// theory speaks of (exact.* for exact-fitted, over.* for over-fitted fits).

std::vector<std::string> report_metrics(const CsvTable& t, const Study& study, const StudySetting& st) {
  const bool over = st.fit.n_experts > study.truths[st.truth_index].n_experts();
  std::vector<std::string> out = {"m.loss"};
  for (const auto& m : metric_columns(t)) {
    if (m.rfind(over ? "m.over." : "m.exact.", 0) != 0) continue;
    // Only the blocks this setting's family has (the results table holds the
    // union over settings).
    const auto lt = loss_table_from_results(t, m, st.label);
    if (std::any_of(lt.loss.begin(), lt.loss.end(), [](double v) { return std::isfinite(v); })) out.push_back(m);
  }
  return out;
}

}  // namespace moerate
