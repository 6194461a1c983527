// check_truth: findings on truths that violate the theory's assumptions.
#include <doctest/doctest.h>

#include <algorithm>

#include "fixtures.hpp"
#include "moerate/metrics/truth_check.hpp"

using namespace moerate;
using namespace moerate::fixtures;

namespace {

bool has(const std::vector<TruthFinding>& f, const std::string& kind) {
  return std::any_of(f.begin(), f.end(), [&](const TruthFinding& x) { return x.kind == kind; });
}

GaussianMoE linear2(double b0, double b1, double a1, double c1, double a2, double c2) {
  json j = json::parse(kExperimentA);
  j["experts"][0]["gate"] = {{"beta0", b0}, {"beta1", {b1}}};
  j["experts"][0]["expert"] = {{"a", {a1}}, {"b", c1}};
  j["experts"][1]["expert"] = {{"a", {a2}}, {"b", c2}};
  return GaussianMoE::from_json(j, "test");
}

}  // namespace

TEST_CASE("check_truth: a soft gate with distinct experts passes") {
  const auto f = check_truth(linear2(0, 3, 2, 1, -1.5, -0.5), "uniform:-1,1");
  CHECK(f.empty());
}

TEST_CASE("check_truth: equal gate slopes make the gate constant") {
  const auto f = check_truth(linear2(0.5, 0, 2, 1, -1.5, -0.5), "uniform:-1,1");
  CHECK(has(f, "gate_constant"));
  CHECK(has(f, "gate_pair_constant"));
}

TEST_CASE("check_truth: experiment A's gate saturates on [0, 1]? it does not, but a shifted design starves expert 1") {
  CHECK(!has(check_truth(experiment_a(), "uniform:0,1"), "gate_saturated"));
  const auto f = check_truth(experiment_a(), "uniform:-1,0");  // beta1 x - 8 < -8 everywhere
  REQUIRE(has(f, "gate_saturated"));
  CHECK(std::find_if(f.begin(), f.end(), [](const TruthFinding& x) { return x.kind == "gate_saturated"; })
            ->experts == std::vector<std::size_t>{1});
}

TEST_CASE("check_truth: nearly equal experts and Laplace centres outside the design") {
  CHECK(has(check_truth(linear2(0, 3, 2, 1, 2.01, 1.0), "uniform:-1,1"), "experts_equal"));
  json j = json::parse(kExperimentA);
  j["gating"] = {{"family", "laplace"}};
  j["experts"][0]["gate"] = {{"beta0", 0.0}, {"w", {3.0}}};
  j["experts"][1]["gate"] = {{"beta0", 0.0}, {"w", {0.5}}};
  const auto f = check_truth(GaussianMoE::from_json(j, "laplace"), "uniform:0,1");
  CHECK(has(f, "laplace_outside"));
}
