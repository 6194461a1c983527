// The dendrogram of mixing measures: merge cost by hand, exact merges of
// duplicated atoms, and the selected k on experiment A.
#include <doctest/doctest.h>

#include <cmath>

#include "fixtures.hpp"
#include "moerate/core/error.hpp"
#include "moerate/metrics/dendrogram.hpp"

using namespace moerate;
using namespace moerate::fixtures;
using doctest::Approx;

namespace {

/// Experiment A with its reference expert split into two identical copies of
/// weights 0.3 and 0.7 (the same conditional density).
GaussianMoE experiment_a_split() {
  json j = json::parse(kExperimentA);
  json copy = j["experts"][1];
  j["experts"][1]["gate"]["beta0"] = std::log(0.3);
  copy["gate"]["beta0"] = std::log(0.7);
  j["experts"].push_back(copy);
  return GaussianMoE::from_json(j, "split");
}

}  // namespace

TEST_CASE("merge dissimilarity: p_i p_j / (p_i + p_j) |theta_i - theta_j|^r by hand") {
  const arma::vec a{0.0, 0.0}, b{3.0, 4.0};  // distance 5
  CHECK(merge_dissimilarity(0.2, a, 0.3, b) == Approx(0.2 * 0.3 / 0.5 * 25).epsilon(1e-14));
  CHECK(merge_dissimilarity(0.2, a, 0.3, b, 1.0) == Approx(0.12 * 5).epsilon(1e-14));
  CHECK(merge_dissimilarity(0.5, a, 0.5, a) == 0.0);
  CHECK(merge_dissimilarity(0.0, a, 0.3, b) == 0.0);
  CHECK_THROWS_AS(merge_dissimilarity(-0.1, a, 0.3, b), InvalidArgument);
  // Weights that underflow a double: log form, p_i p_j / (p_i + p_j) ~ p_i when p_i << p_j.
  CHECK(log_merge_dissimilarity_weights(-700.0, a, 0.0, b) == Approx(std::exp(-700.0) * 25).epsilon(1e-12));
  CHECK(log_merge_dissimilarity_weights(-700.0, a, std::log(0.5), b) ==
        Approx(std::exp(-700.0 + std::log(0.5) - std::log(0.5 + std::exp(-700.0))) * 25).epsilon(1e-12));
}

TEST_CASE("atoms: normalised weights and (beta1, eta, nu) columns") {
  const GaussianMoE m = experiment_a();
  const arma::vec p = atom_weights(m);
  const double e = std::exp(-8.0);
  CHECK(p[0] == Approx(e / (1 + e)).epsilon(1e-14));
  CHECK(p[1] == Approx(1 / (1 + e)).epsilon(1e-14));
  const arma::mat T = atom_parameters(m);
  REQUIRE(T.n_rows == 4);  // beta1, a, b, nu (linear expert blocks in family order)
  CHECK(T(0, 0) == 25.0);
  CHECK(T(3, 0) == 0.09);
  CHECK(T(3, 1) == 0.16);
}

TEST_CASE("merging two identical atoms gives back the same density") {
  const GaussianMoE split = experiment_a_split(), truth = experiment_a();
  const Sim s = simulate(truth, 500, 11);
  REQUIRE(split.log_likelihood(s.X, s.y) == Approx(truth.log_likelihood(s.X, s.y)).epsilon(1e-12));
  const GaussianMoE merged = merge_experts(split, 1, 2);
  REQUIRE(merged.n_experts() == 2);
  CHECK(merged.log_likelihood(s.X, s.y) == Approx(truth.log_likelihood(s.X, s.y)).epsilon(1e-12));
  // Summed weight: 0.3 + 0.7 = 1 = exp(0), the reference again.
  CHECK(std::abs(merged.gating().atom_log_weight(1)) < 1e-12);
  CHECK(merged.gating().atom_log_weight(0) == Approx(-8).epsilon(1e-12));
}

TEST_CASE("merging different atoms averages their parameters with the weights") {
  const GaussianMoE m = experiment_a();
  const GaussianMoE merged = merge_experts(m, 0, 1);
  REQUIRE(merged.n_experts() == 1);
  const double w0 = std::exp(-8.0) / (1 + std::exp(-8.0)), w1 = 1 - w0;
  // nu and the slope a (first block of the linear expert) by hand.
  CHECK(merged.nu()[0] == Approx(w0 * 0.09 + w1 * 0.16).epsilon(1e-12));
  CHECK(merged.eta()(0, 0) == Approx(w0 * -20 + w1 * 20).epsilon(1e-12));
  CHECK_THROWS_AS(merge_experts(m, 1, 1), InvalidArgument);
  CHECK_THROWS_AS(merge_experts(m, 0, 2), InvalidArgument);
}

TEST_CASE("dendrogram of a split truth: the duplicate merges first at height 0 and k = 2 is chosen") {
  const GaussianMoE split = experiment_a_split();
  const Sim s = simulate(experiment_a(), 2000, 3);
  const Dendrogram d = build_dendrogram(split, s.X, s.y);
  REQUIRE(d.levels.size() == 3);
  CHECK(d.weights == "mass");
  REQUIRE(d.merges.size() == 2);
  CHECK(d.merges[0].height == 0.0);
  CHECK(d.merges[0].leaves == std::vector<std::size_t>{1, 2});
  CHECK(d.merges[1].leaves == std::vector<std::size_t>{0, 1, 2});
  CHECK(d.merges[1].node == 4);
  CHECK(d.omega == Approx(std::log(2000.0)).epsilon(1e-14));
  // Level 2 is the truth: its log-likelihood is the truth's.
  CHECK(d.levels[1].k == 2);
  CHECK(d.levels[1].log_likelihood == Approx(experiment_a().log_likelihood(s.X, s.y)).epsilon(1e-12));
  CHECK(d.levels[1].height > 0);
  CHECK(d.levels[2].height == 0.0);
  // The one-expert level fits much worse.
  CHECK(d.levels[2].mean_log_likelihood < d.levels[1].mean_log_likelihood - 0.5);
  CHECK(d.chosen_k == 2);
}

TEST_CASE("dendrogram: only softmax-gated Gaussian MoE") {
  json j = json::parse(kExperimentA);
  j["gating"] = {{"family", "laplace"}};
  j["experts"][0]["gate"] = {{"beta0", -1.0}, {"w", {0.2}}};
  j["experts"][1]["gate"] = {{"beta0", 0.0}, {"w", {0.8}}};
  const GaussianMoE lap = GaussianMoE::from_json(j, "laplace");
  const Sim s = simulate(lap, 50, 1);
  CHECK_THROWS_AS(build_dendrogram(lap, s.X, s.y), InvalidArgument);
  CHECK_THROWS_AS(build_dendrogram(experiment_a(ModelKind::regression), s.X, s.y), InvalidArgument);
  DendrogramOptions bad;
  bad.power = 0;
  CHECK_THROWS_AS(build_dendrogram(experiment_a(), s.X, s.y, bad), InvalidArgument);
}

TEST_CASE("gate masses: exp(beta0) weights when the gates do not depend on x; merged masses add up") {
  json j = json::parse(kExperimentA);
  j["experts"][0]["gate"]["beta1"] = {0.0};
  j["experts"][0]["gate"]["beta0"] = std::log(0.25 / 0.75);
  const GaussianMoE flat = GaussianMoE::from_json(j, "flat gates");
  const Sim s = simulate(flat, 200, 8);
  const arma::vec lm = atom_log_masses(flat, s.X);
  CHECK(std::exp(lm[0]) == Approx(0.25).epsilon(1e-12));
  CHECK(std::exp(lm[1]) == Approx(0.75).epsilon(1e-12));
  // Merging with the data: the merged atom carries the summed mass (the projected
  // gate reproduces pi_1 + pi_2 here, the merged gate being representable, up to the
  // gate fit's ridge of 1e-6 and its stopping rule).
  const GaussianMoE split = experiment_a_split();
  const Sim t = simulate(experiment_a(), 400, 9);
  const arma::vec before = arma::exp(atom_log_masses(split, t.X));
  const GaussianMoE merged = merge_experts(split, 1, 2, &t.X);
  const arma::vec after = arma::exp(atom_log_masses(merged, t.X));
  CHECK(after[1] == Approx(before[1] + before[2]).epsilon(1e-5));
  CHECK(merged.log_likelihood(t.X, t.y) == Approx(split.log_likelihood(t.X, t.y)).epsilon(1e-5));
}

TEST_CASE("dendrogram with the papers' exp(beta0) weights on the split truth also chooses k = 2") {
  const Sim s = simulate(experiment_a(), 2000, 3);
  DendrogramOptions o;
  o.weights = "beta0";
  const Dendrogram d = build_dendrogram(experiment_a_split(), s.X, s.y, o);
  CHECK(d.merges[0].height == 0.0);
  CHECK(d.chosen_k == 2);
  o.weights = "other";
  CHECK_THROWS_AS(build_dendrogram(experiment_a_split(), s.X, s.y, o), InvalidArgument);
}
