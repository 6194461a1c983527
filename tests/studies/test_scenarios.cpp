// The scenario studies' data models and metrics (studies/scenarios.hpp) against
// values known by construction: a model built from the true structure scores
// cosine 1, centre distance 0 and routing accuracy ~1; samples are reproducible.
#include <doctest/doctest.h>

#include <cmath>

#include "moerate/core/error.hpp"
#include "moerate/studies/scenarios.hpp"

using namespace moerate;

TEST_CASE("scenario data: shapes, reproducibility, binary labels") {
  const json lc = {{"model", "latent-clusters"}, {"C", 2}, {"d", 6}, {"rho", 3}, {"structure_seed", 4}};
  Rng a(9), b(9);
  const ScenarioData A = scenario_data(lc, 50, 30, a), B = scenario_data(lc, 50, 30, b);
  CHECK(A.X.n_rows == 6);
  CHECK(A.X.n_cols == 50);
  CHECK(A.X_test.n_cols == 30);
  CHECK(arma::approx_equal(A.X, B.X, "absdiff", 0.0));
  CHECK(arma::approx_equal(A.y_test, B.y_test, "absdiff", 0.0));
  // The directions are orthonormal.
  CHECK(arma::norm(A.directions.t() * A.directions - arma::eye(2, 2)) < 1e-12);
  Rng c(1);
  const ScenarioData C = scenario_data({{"model", "cluster-centres"}, {"K", 4}, {"d", 8}}, 40, 10, c);
  for (double v : C.y) CHECK((v == 0 || v == 1));
  CHECK_THROWS_AS(scenario_data({{"model", "nope"}}, 10, 10, c), InvalidArgument);
  CHECK_THROWS_AS(scenario_data({{"model", "latent-clusters"}, {"C", 3}, {"d", 6}}, 10, 10, c), InvalidArgument);
}

TEST_CASE("scenario metrics: a model built from the true structure") {
  // cluster-centres: gate slopes s * c_k (s large), linear Bernoulli experts 8 * v_k.
  const std::size_t K = 4, d = 8;
  Rng rng(3);
  const ScenarioData D = scenario_data({{"model", "cluster-centres"}, {"K", K}, {"d", d}, {"noise", 0.1}}, 10, 4000, rng);
  // The features v_k are not exposed: estimate them from the test sample,
  // E[x (2y - 1) | cluster k] = E[alpha] v_k.
  arma::mat V(d, K, arma::fill::zeros);
  for (std::size_t i = 0; i < D.X_test.n_cols; ++i) V.col(D.cluster_test[i]) += D.X_test.col(i) * (2 * D.y_test[i] - 1);
  json j = {{"model", "bernoulli"}, {"gating", {{"family", "softmax"}}}, {"expert_family", {{"family", "linear"}}}};
  j["experts"] = json::array();
  for (std::size_t k = 0; k < K; ++k) {
    const arma::vec g = 20 * D.centres.col(k), a = 8 * arma::normalise(V.col(k));
    j["experts"].push_back({{"gate", {{"beta0", 0}, {"beta1", arma::conv_to<std::vector<double>>::from(g)}}},
                            {"expert", {{"a", arma::conv_to<std::vector<double>>::from(a)}, {"b", 0}}}});
  }
  const GaussianMoE m = GaussianMoE::from_json(j, "oracle");
  const auto r = scenario_metrics(D, m);
  CHECK(r.at("centre_distance") < 1e-9);
  CHECK(r.at("routing_accuracy") > 0.99);
  CHECK(r.at("test_error") < 0.05);
  // A permutation of the experts changes nothing (best matching).
  GaussianMoE p = m;
  p.permute({2, 0, 3, 1});
  CHECK(scenario_metrics(D, p).at("centre_distance") < 1e-9);
  CHECK(scenario_metrics(D, p).at("routing_accuracy") == doctest::Approx(r.at("routing_accuracy")).epsilon(1e-15));
  // One expert: no routing, no centres.
  json one = j;
  one["experts"] = json::array({j["experts"][0]});
  const auto r1 = scenario_metrics(D, GaussianMoE::from_json(one, "one"));
  CHECK(std::isnan(r1.at("centre_distance")));
  CHECK(std::isnan(r1.at("routing_accuracy")));
}

TEST_CASE("scenario metrics: cosine of experts aligned with the true directions") {
  Rng rng(5);
  const ScenarioData D =
      scenario_data({{"model", "latent-clusters"}, {"C", 2}, {"d", 6}, {"rho", 4}, {"structure_seed", 2}}, 10, 2000, rng);
  // Gate: the cluster means rho v_c are where the data are; route by the sign of
  // the difference of the cluster means of the test sample.
  arma::vec m0(6, arma::fill::zeros), m1(6, arma::fill::zeros);
  double n0 = 0, n1 = 0;
  for (std::size_t i = 0; i < D.X_test.n_cols; ++i)
    (D.cluster_test[i] == 0 ? m0 : m1) += D.X_test.col(i), (D.cluster_test[i] == 0 ? n0 : n1) += 1;
  const arma::vec g = 5 * arma::normalise(m0 / n0 - m1 / n1);
  json j = {{"gating", {{"family", "softmax"}}}, {"expert_family", {{"family", "ffn"}, {"activation", "tanh"}}}};
  j["experts"] = json::array();
  for (std::size_t c = 0; c < 2; ++c) {
    const arma::vec a = (c == 0 ? 1.5 : -0.7) * D.directions.col(c);
    j["experts"].push_back({{"gate", {{"beta0", 0}, {"beta1", arma::conv_to<std::vector<double>>::from(c == 0 ? g : arma::vec(6, arma::fill::zeros))}}},
                            {"expert", {{"a", arma::conv_to<std::vector<double>>::from(a)}, {"b", 0}, {"c", 1}}},
                            {"variance", 1}});
  }
  const auto r = scenario_metrics(D, GaussianMoE::from_json(j, "aligned"));
  CHECK(r.at("cosine") == doctest::Approx(1.0).epsilon(1e-12));
  CHECK(r.at("routing_accuracy") > 0.99);
  CHECK(r.at("test_mse") >= 0);
  CHECK(std::sqrt(r.at("test_mse")) == doctest::Approx(r.at("test_rmse")).epsilon(1e-12));
}

TEST_CASE("scenario studies: scales and names") {
  for (const char* name : {"latent-clusters", "cluster-centres", "expressive-power"})
    for (const char* scale : {"smoke", "quick", "paper"}) {
      const ScenarioStudy s = scenario_study(name, scale);
      CHECK(!s.settings.empty());
      CHECK(s.to_json()["settings"].size() == s.settings.size());
    }
  CHECK_THROWS_AS(scenario_study("latent-clusters", "medium"), InvalidArgument);
  CHECK(is_scenario_study("cluster-centres"));
  CHECK_FALSE(is_scenario_study("linear-vs-ffn"));
}
