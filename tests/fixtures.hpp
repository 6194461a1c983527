// tests/fixtures.hpp -- models shared by the test suites, written once.
//
// experiment_a(): experiments.md A, the classic truth: softmax gate with
//   (beta0, beta1) = (-8, 25) for expert 1 and the reference (0, 0) for expert 2,
//   linear experts (a, b) = (-20, 15) and (20, -5), variances 0.09 and 0.16
//   (data/experiment-a.json, inline so that tests do not depend on the
//   working directory). With ModelKind::regression it is the least-squares
//   model with noise variance 0.09.
// tanh_model(): the same gate with one-hidden-unit tanh experts
//   3 tanh(4x - 1) and -2 tanh(-3x + 2).
// simulate(m, n, seed[, design]): data from a model (default design U[0, 1]^d).
#pragma once

#include <nlohmann/json.hpp>

#include "moerate/model/design.hpp"
#include "moerate/model/model.hpp"

namespace moerate::fixtures {

inline constexpr const char* kExperimentA = R"({
  "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
  "experts": [
    {"gate": {"beta0": -8, "beta1": [25]}, "expert": {"a": [-20], "b": 15}, "variance": 0.09},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [20], "b": -5}, "variance": 0.16} ] })";

inline constexpr const char* kTanhModel = R"({
  "gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh"},
  "experts": [
    {"gate": {"beta0": -8, "beta1": [25]}, "expert": {"a": [4], "b": -1, "c": 3}, "variance": 0.09},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [-3], "b": 2, "c": -2}, "variance": 0.16} ] })";

inline GaussianMoE experiment_a(ModelKind kind = ModelKind::gaussian) {
  nlohmann::json j = nlohmann::json::parse(kExperimentA);
  if (kind == ModelKind::regression) {
    j["model"] = "regression";
    j["noise_variance"] = 0.09;
  }
  return GaussianMoE::from_json(j, "experiment A");
}

inline GaussianMoE tanh_model() { return GaussianMoE::from_json(nlohmann::json::parse(kTanhModel), "tanh model"); }

/// Data drawn from m: x from the design (default U[0, 1]^d), y from the model (seeded).
struct Sim {
  arma::mat X;
  arma::rowvec y;
};

inline Sim simulate(const GaussianMoE& m, std::size_t n, std::uint64_t seed,
                    const std::string& design = "uniform:0,1") {
  Rng rng(seed);
  Sim s;
  s.X = draw_design(design, m.dim(), n, rng);
  s.y = m.simulate(s.X, rng);
  return s;
}

}  // namespace moerate::fixtures
