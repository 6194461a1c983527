// Tests of standard errors (analytic scores, observed information, sandwich),
// Wald coverage in experiment A, and the bootstrap. Every random test states its seed.
#include <doctest/doctest.h>

#include "fixtures.hpp"

#include <chrono>

#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/estimators/em.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/inference.hpp"
#include "moerate/core/rng.hpp"

using namespace moerate;
using namespace moerate::fixtures;

namespace {

GaussianMoE ffn_model() {
  return GaussianMoE::from_json(json::parse(R"({
    "gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh"},
    "experts": [
      {"gate": {"beta0": 0.5, "beta1": [-1.5, 0.7]}, "expert": {"a": [1.2, -0.4], "b": 0.3, "c": 2.0}, "variance": 0.2},
      {"gate": {"beta0": -0.3, "beta1": [0.8, 0.2]}, "expert": {"a": [-0.6, 1.1], "b": -0.5, "c": -1.0}, "variance": 0.4},
      {"gate": {"beta0": 0, "beta1": [0, 0]}, "expert": {"a": [0.3, 0.9], "b": 1.0, "c": 1.5}, "variance": 0.3}]})"),
                                "ffn-model");
}


}  // namespace

TEST_CASE("normal quantile") {
  CHECK(normal_two_sided_quantile(0.95) == doctest::Approx(1.959963984540054).epsilon(1e-12));
  CHECK(normal_two_sided_quantile(0.9) == doctest::Approx(1.6448536269514722).epsilon(1e-12));
  CHECK_THROWS_AS(normal_two_sided_quantile(1.0), InvalidArgument);
}

TEST_CASE("analytic scores match finite differences of the log-likelihood") {
  std::vector<GaussianMoE> models = {experiment_a(), ffn_model()};
  if (gating_registry().count("laplace")) {
    GaussianMoE m = ffn_model();
    json j = m.to_json();
    j["gating"] = {{"family", "laplace"}};
    for (auto& e : j["experts"]) e["gate"] = {{"beta0", e["gate"]["beta0"]}, {"w", e["gate"]["beta1"]}};
    j["experts"][2]["gate"]["beta0"] = 0;
    try {
      models.push_back(GaussianMoE::from_json(j, "laplace-model"));
    } catch (const std::exception& e) {
      MESSAGE("laplace model not built (" << e.what() << "): skipped");
    }
  }
  for (std::size_t mi = 0; mi < models.size(); ++mi) {
    CAPTURE(mi);
    GaussianMoE m = models[mi];
    const Sim s = simulate(m, 200, 21 + mi, "uniform:-1,1");  // seeds 21, 22, ...
    // Evaluate away from the truth too.
    Rng rng(31);  // seed 31
    arma::vec theta = m.flat_params();
    theta += 0.05 * rng.normal_vec(theta.n_elem);
    m.set_flat_params(theta);
    const arma::vec g = score(m, s.X, s.y);
    const arma::mat S = score_obs(m, s.X, s.y);
    CHECK(arma::abs(arma::sum(S, 1) - g).max() <= 1e-9 * std::max(1.0, arma::abs(g).max()));
    GaussianMoE w = m;
    for (std::size_t p = 0; p < theta.n_elem; ++p) {
      const double h = 1e-6 * std::max(1.0, std::abs(theta[p]));
      arma::vec tp = theta, tm = theta;
      tp[p] += h;
      tm[p] -= h;
      w.set_flat_params(tp);
      const arma::rowvec lp = w.log_likelihood_obs(s.X, s.y);
      w.set_flat_params(tm);
      const arma::rowvec lm = w.log_likelihood_obs(s.X, s.y);
      const arma::rowvec fd = (lp - lm) / (2 * h);
      CAPTURE(p);
      CHECK(arma::accu(fd) == doctest::Approx(g[p]).epsilon(1e-6).scale(std::max(1.0, arma::abs(g).max())));
      CHECK(arma::abs(fd - S.row(p)).max() <= 1e-5 * std::max(1.0, arma::abs(S).max()));
    }
  }
}

TEST_CASE("observed information: differentiated scores agree with a fully numerical Hessian") {
  for (int mi = 0; mi < 2; ++mi) {
    CAPTURE(mi);
    const GaussianMoE m = mi == 0 ? experiment_a() : ffn_model();
    const Sim s = simulate(m, 500, 41 + mi, mi == 0 ? "uniform:0,1" : "uniform:-1,1");  // seeds 41, 42
    const arma::mat H1 = score_hessian(m, s.X, s.y);
    const arma::mat H2 = numerical_hessian(m, s.X, s.y);
    const double scale = arma::abs(H1).max();
    CHECK(arma::abs(H1 - H2).max() <= 1e-4 * scale);
    CHECK(arma::abs(H1 - H1.t()).max() == 0.0);
  }
}

TEST_CASE("analytic Hessian of the log-likelihood (Louis) matches central differences of the analytic score") {
  std::vector<GaussianMoE> models = {experiment_a(), ffn_model()};
  for (const char* fam : {R"({"family": "ffn", "activation": "tanh", "bias": false})",
                          R"({"family": "ffn", "activation": "gelu", "bias": false})",
                          R"({"family": "polynomial", "p": 2})"}) {
    json j = ffn_model().to_json();
    j["expert_family"] = json::parse(fam);
    for (auto& e : j["experts"]) {
      if (j["expert_family"]["family"] == "polynomial") e["expert"] = {{"a", e["expert"]["a"]}, {"b", e["expert"]["b"]}};
      else e["expert"].erase("b");
    }
    models.push_back(GaussianMoE::from_json(j, fam));
  }
  for (std::size_t mi = 0; mi < models.size(); ++mi) {
    CAPTURE(mi);
    GaussianMoE m = models[mi];
    const Sim s = simulate(m, 400, 61 + mi, mi == 0 ? "uniform:0,1" : "uniform:-1,1");  // seeds 61, 62, ...
    for (int away = 0; away < 2; ++away) {  // at the truth, and away from it (gradient far from 0)
      CAPTURE(away);
      if (away == 1) {
        Rng rng(71 + mi);  // seeds 71, 72, ...
        arma::vec theta = m.flat_params();
        for (double& t : theta) t += 0.2 * (rng.uniform() - 0.5);
        m.set_flat_params(theta);
      }
      const arma::mat Ha = loglik_hessian(m, s.X, s.y);
      const arma::mat Hf = score_hessian(m, s.X, s.y);
      REQUIRE(Ha.n_rows == Hf.n_rows);
      const double scale = arma::abs(Hf).max();
      CHECK(arma::abs(Ha - Hf).max() <= 1e-6 * scale);
      CHECK(arma::abs(Ha - Ha.t()).max() == 0.0);
    }
  }
  // Gates without an analytic q_hessian: empty (Newton falls back to differences).
  json j = experiment_a().to_json();
  j["gating"] = {{"family", "topk"}, {"K", 1}};
  const GaussianMoE topk = GaussianMoE::from_json(j, "topk-model");
  const Sim s = simulate(experiment_a(), 50, 81);  // seed 81
  CHECK(loglik_hessian(topk, s.X, s.y).is_empty());
}

TEST_CASE("the softmax gate's one-pass score and Hessian equal the generic pass and score()") {
  // Models: d = 1, 2 and 4 gates, k = 2 to 4, linear, tanh (one and two units) and
  // polynomial experts, a gate reading other covariates than the experts, more than
  // one block of observations; at the truth and away from it.
  std::vector<GaussianMoE> models = {experiment_a(), ffn_model()};
  {
    json j = ffn_model().to_json();
    j["expert_family"] = json::parse(R"({"family": "polynomial", "p": 2})");
    for (auto& e : j["experts"]) e["expert"] = {{"a", e["expert"]["a"]}, {"b", e["expert"]["b"]}};
    models.push_back(GaussianMoE::from_json(j, "polynomial"));
  }
  models.push_back(GaussianMoE::from_json(json::parse(R"({
    "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
    "covariates": {"experts": ["x"], "gate": ["z1", "z2"]},
    "experts": [
      {"gate": {"beta0": -1, "beta1": [2, -1]}, "expert": {"a": [-4], "b": 2}, "variance": 0.04},
      {"gate": {"beta0": 0.5, "beta1": [-1, 1.5]}, "expert": {"a": [1], "b": 0}, "variance": 0.2},
      {"gate": {"beta0": 0, "beta1": [0, 0]}, "expert": {"a": [3], "b": -1}, "variance": 0.09} ] })"),
                                          "gate-z"));
  // Up to 24 parameters the pass sums moments in lanes, above it BLAS products:
  // a two-unit tanh model (p = 18) and d = 4, k = 4 linear experts (p = 39).
  models.push_back(GaussianMoE::from_json(json::parse(R"({
    "gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh", "units": 2},
    "experts": [
      {"gate": {"beta0": 1, "beta1": [3]}, "expert": {"c0": 0.5, "units": [{"w": [2], "u": -1, "c": 1.5}, {"w": [-3], "u": 0.5, "c": -1}]}, "variance": 0.05},
      {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"c0": -1, "units": [{"w": [1], "u": 0.2, "c": 2}, {"w": [4], "u": -2, "c": 0.7}]}, "variance": 0.1} ] })"),
                                          "ffn-units-2"));
  {
    json j = json::parse(R"({"gating": {"family": "softmax"}, "expert_family": {"family": "linear"}, "experts": []})");
    for (int e = 0; e < 4; ++e)
      j["experts"].push_back({{"gate", {{"beta0", e == 3 ? 0.0 : 0.3 * e - 0.2},
                                        {"beta1", e == 3 ? std::vector<double>(4, 0.0)
                                                         : std::vector<double>{1.0 - e, 0.5 * e, -1.0, 0.8}}}},
                              {"expert", {{"a", std::vector<double>{2.0 - e, 1.0, -0.5 * e, 0.3}}, {"b", e - 1.5}}},
                              {"variance", 0.05 + 0.03 * e}});
    models.push_back(GaussianMoE::from_json(j, "linear-d4-k4"));
  }
  for (std::size_t mi = 0; mi < models.size(); ++mi) {
    CAPTURE(mi);
    GaussianMoE m = models[mi];
    Rng rng(91 + mi);  // seeds 91, 92, ...
    Sim s;
    s.X = draw_design("uniform:-1,1", m.covariates().shared() ? m.dim() : 3, 5000, rng);
    s.y = m.simulate(s.X, rng);
    for (int away = 0; away < 2; ++away) {
      CAPTURE(away);
      if (away == 1) {
        arma::vec theta = m.flat_params();
        for (double& t : theta) t += 0.3 * (rng.uniform() - 0.5);
        m.set_flat_params(theta);
      }
      const ScoreHessian sh = loglik_score_hessian(m, s.X, s.y);
      const arma::mat Hg = loglik_hessian_general(m, s.X, s.y);
      const arma::vec g = score(m, s.X, s.y);
      REQUIRE(sh.H.n_rows == Hg.n_rows);
      CHECK(arma::abs(sh.H - Hg).max() <= 1e-11 * arma::abs(Hg).max());
      CHECK(arma::abs(sh.g - g).max() <= 1e-11 * std::max(1.0, arma::abs(g).max()));
      CHECK(arma::abs(sh.H - sh.H.t()).max() == 0.0);
      CHECK(arma::approx_equal(loglik_hessian(m, s.X, s.y), sh.H, "absdiff", 0.0));
    }
  }
}

TEST_CASE("sandwich and observed-information standard errors agree at the truth of a well-specified model") {
  const GaussianMoE m = experiment_a();
  const Sim s = simulate(m, 20000, 51);  // seed 51
  const StandardErrors se = standard_errors(m, s.X, s.y);
  REQUIRE_FALSE(se.near_singular);
  for (std::size_t p = 0; p < se.names.size(); ++p) {
    CAPTURE(se.names[p]);
    CHECK(se.se_sandwich[p] / se.se[p] > 0.85);
    CHECK(se.se_sandwich[p] / se.se[p] < 1.15);
  }
  // Softmax has an analytic gate Hessian: the information is loglik_hessian's, and it
  // agrees with central differences of the score (the former method).
  CHECK(se.analytic_hessian);
  const arma::mat I_fd = -score_hessian(m, s.X, s.y, 1e-5);
  CHECK(arma::abs(se.information - I_fd).max() <= 1e-6 * arma::abs(I_fd).max());
  const json j = se.to_json();
  CHECK(j["method"].get<std::string>().find("Louis") != std::string::npos);
  CHECK(j["parameters"].size() == se.names.size());
  CHECK(j["near_singular"] == false);
  CHECK(se.table().find("Wald intervals") != std::string::npos);
}

TEST_CASE("a singular information is reported as such, with its condition number") {
  // x = 0 everywhere: beta1 and a have no effect, the information has zero rows.
  const GaussianMoE m = experiment_a();
  Rng rng(61);  // seed 61
  arma::mat X(1, 300, arma::fill::zeros);
  const arma::rowvec y = m.simulate(X, rng);
  const StandardErrors se = standard_errors(m, X, y);
  CHECK(se.near_singular);
  CHECK(se.se.is_empty());
  const json j = se.to_json();
  CHECK(j["near_singular"] == true);
  CHECK(j["parameters"][0]["se"].is_null());
  CHECK(se.table().find("near singular") != std::string::npos);
}

TEST_CASE("Wald intervals cover in experiment A (n = 2000, 100 simulations)") {
  // Seeds 1000..1099; EM from the truth to the MLE, then observed-information
  // intervals. Stated range: mean coverage over parameters in [0.88, 0.99],
  // every parameter in [0.80, 1.0] (binomial sd at 0.95 and 100 runs: 0.022).
  const auto t0 = std::chrono::steady_clock::now();
  const GaussianMoE truth = experiment_a();
  const arma::vec theta0 = truth.flat_params();
  const std::size_t p = theta0.n_elem;
  const int runs = 100;
  arma::vec covered(p, arma::fill::zeros);
  arma::vec covered_sandwich(p, arma::fill::zeros);
  int used = 0;
  EMOptions eo;
  eo.tol = 1e-10;
  eo.max_iter = 3000;
  eo.keep_trace = false;
  for (int r = 0; r < runs; ++r) {
    const Sim s = simulate(truth, 2000, 1000 + r);
    GaussianMoE m = truth;
    run_em(m, s.X, s.y, eo);
    const StandardErrors se = standard_errors(m, s.X, s.y);
    if (se.near_singular) continue;
    ++used;
    for (std::size_t q = 0; q < p; ++q) {
      covered[q] += std::abs(se.estimate[q] - theta0[q]) <= se.z * se.se[q];
      covered_sandwich[q] += std::abs(se.estimate[q] - theta0[q]) <= se.z * se.se_sandwich[q];
    }
  }
  REQUIRE(used >= 95);
  covered /= used;
  covered_sandwich /= used;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  MESSAGE("coverage per parameter (observed): " << covered.t() << "sandwich: " << covered_sandwich.t()
                                                << "runs used " << used << ", " << seconds << " s");
  CHECK(arma::mean(covered) >= 0.88);
  CHECK(arma::mean(covered) <= 0.99);
  CHECK(covered.min() >= 0.80);
  CHECK(arma::mean(covered_sandwich) >= 0.85);
}

TEST_CASE("bootstrap: deterministic for a seed whatever the thread count; intervals bracket the estimate") {
  const GaussianMoE truth = experiment_a();
  const Sim s = simulate(truth, 300, 71);  // seed 71
  GaussianMoE m = truth;
  EMOptions eo;
  run_em(m, s.X, s.y, eo);
  BootstrapOptions bo;
  bo.replicates = 8;
  bo.seed = 5;
  bo.kmeans_starts = 1;
  bo.threads = 1;
  int calls = 0;
  const BootstrapResult b1 = bootstrap(m, s.X, s.y, bo, [&](int, int) { ++calls; });
  CHECK(calls == 8);
  bo.threads = 2;
  const BootstrapResult b2 = bootstrap(m, s.X, s.y, bo);
  CHECK(b1.n_failed == 0);
  CHECK(arma::approx_equal(b1.draws, b2.draws, "absdiff", 0.0));
  for (std::size_t c = 0; c < b1.names.size(); ++c) {
    CAPTURE(b1.names[c]);
    CHECK(b1.lower[c] <= b1.upper[c]);
    // Relabelled to the original: no label switching (switched slopes a = -20 / 20
    // would differ by 40; the gate slope keeps its sign).
    const std::string& nm = b1.names[c];
    const std::string tail = nm.substr(nm.find('.') + 1);
    if (tail == "a" || tail == "b")
      CHECK(arma::abs(b1.draws.col(c) - b1.estimate[c]).max() < 5.0);
    if (b1.names[c] == "expert1.beta1_1") CHECK(b1.draws.col(c).min() > 0);
  }
  const json j = b1.to_json();
  CHECK(j["draws"].size() == 8);
  CHECK(j["parameters"].size() == b1.names.size());
  // Percentile interval of the gate slope contains the estimate here.
  CHECK(b1.lower[1] <= b1.estimate[1] + 1e-12);
  CHECK(b1.upper[1] >= b1.estimate[1] - 1e-12);
}

TEST_CASE("bootstrap of bias-free relu experts: estimate and draws in canonical form (relu rescaling quotiented out)") {
  const GaussianMoE truth = GaussianMoE::from_json(json::parse(R"({
    "gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "relu", "bias": false},
    "experts": [
      {"gate": {"beta0": 0, "beta1": [3]}, "expert": {"a": [2], "c": 1.5}, "variance": 0.05},
      {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [-1], "c": -2}, "variance": 0.05}]})"), "relu truth");
  Rng rng(81);  // seed 81
  const arma::mat X = draw_design("uniform:-1,1", 1, 400, rng);
  const arma::rowvec y = truth.simulate(X, rng);
  GaussianMoE m = truth;
  run_em(m, X, y, EMOptions{});
  // An exactly equivalent, non-canonical copy: c relu(a x) = (c / s) relu(s a x).
  GaussianMoE scaled = m;
  scaled.eta().col(0) = arma::vec{3 * m.eta()(0, 0), m.eta()(1, 0) / 3};
  CHECK(scaled.log_likelihood(X, y) == doctest::Approx(m.log_likelihood(X, y)).epsilon(1e-12));
  BootstrapOptions bo;
  bo.replicates = 6;
  bo.seed = 3;
  bo.kmeans_starts = 0;
  bo.threads = 1;
  const BootstrapResult b = bootstrap(scaled, X, y, bo);
  REQUIRE(b.n_failed == 0);
  for (std::size_t c = 0; c < b.names.size(); ++c) {
    CAPTURE(b.names[c]);
    const std::string tail = b.names[c].substr(b.names[c].find('.') + 1);
    if (tail.rfind("a", 0) == 0 && tail != "a") continue;
    if (tail == "a_1" || tail == "a") {
      CHECK(std::abs(b.estimate[c]) == doctest::Approx(1.0));
      for (std::size_t r = 0; r < b.draws.n_rows; ++r) CHECK(std::abs(b.draws(r, c)) == doctest::Approx(1.0));
    }
    if (tail == "c") CHECK(arma::abs(b.draws.col(c) - b.estimate[c]).max() < 1.0);
  }
}
