// Estimators: direct MLE (L-BFGS) and least squares (regression model).
// Every randomised test states its seed.
#include <doctest/doctest.h>

#include "fixtures.hpp"

#include <atomic>
#include <iostream>

#include "moerate/estimators/em.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/estimators/lse.hpp"
#include "moerate/estimators/mle.hpp"

namespace moerate {
using namespace fixtures;
namespace {

/// A model with random parameters (seeded) for gradient checks.
GaussianMoE random_model(const json& gating, const json& expert, std::size_t k, std::size_t d, ModelKind kind,
                         Rng& rng) {
  auto g = make_gating(gating, k, d);
  auto f = make_expert_family(expert, d);
  g->set_params(rng.normal_vec(g->n_params()));
  arma::mat eta(f->n_params(), k);
  for (auto& v : eta) v = rng.normal(0, 1);
  arma::vec nu(k);
  for (auto& v : nu) v = rng.uniform(0.2, 1.0);
  GaussianMoE m(std::move(g), f, eta, nu, kind);
  if (kind == ModelKind::regression) m.set_noise_variance(0.1);
  return m;
}

/// Central differences of `value` over flat_params, step 1e-6 max(1, |theta_u|).
arma::vec fd_gradient(GaussianMoE m, const std::function<double(const GaussianMoE&)>& value) {
  const arma::vec theta = m.flat_params();
  arma::vec g(theta.n_elem);
  for (std::size_t u = 0; u < theta.n_elem; ++u) {
    const double h = 1e-6 * std::max(1.0, std::abs(theta[u]));
    arma::vec tp = theta, tm = theta;
    tp[u] += h;
    tm[u] -= h;
    m.set_flat_params(tp);
    const double fp = value(m);
    m.set_flat_params(tm);
    const double fm = value(m);
    g[u] = (fp - fm) / (2 * h);
  }
  return g;
}

double rel_error(const arma::vec& g, const arma::vec& ref) {
  return arma::abs(g - ref).max() / std::max(1.0, arma::abs(ref).max());
}

bool has_gating(const std::string& name) { return gating_registry().count(name) > 0; }

void uniform_design(arma::mat& X, Rng& rng) {
  for (auto& v : X) v = rng.uniform();
}

}  // namespace

TEST_CASE("mle: analytic log-likelihood gradient matches finite differences") {
  struct Case {
    json gating, expert;
    std::size_t k, d;
  };
  std::vector<Case> cases{{json{{"family", "softmax"}}, json{{"family", "linear"}}, 3, 2},
                          {json{{"family", "softmax"}}, parse_family_spec("ffn:tanh,units=2"), 2, 1},
                          {json{{"family", "softmax"}}, parse_family_spec("ffn:gelu"), 2, 2},
                          {json{{"family", "softmax"}}, parse_family_spec("polynomial:p=3"), 2, 1}};
  if (has_gating("laplace")) cases.push_back({json{{"family", "laplace"}}, json{{"family", "linear"}}, 3, 2});
  for (const auto& c : cases) {
    Rng rng(31);  // seed 31
    GaussianMoE m = random_model(c.gating, c.expert, c.k, c.d, ModelKind::gaussian, rng);
    arma::mat X(c.d, 200);
    for (auto& v : X) v = rng.uniform(-1, 1);
    const arma::rowvec y = m.simulate(X, rng);
    arma::vec g;
    const double ll = log_likelihood_gradient(m, X, y, g);
    INFO("gating " << c.gating.dump() << ", experts " << c.expert.dump());
    CHECK(ll == doctest::Approx(m.log_likelihood(X, y)).epsilon(1e-13));
    REQUIRE(g.n_elem == m.flat_params().n_elem);
    const arma::vec gfd = fd_gradient(m, [&](const GaussianMoE& mm) { return mm.log_likelihood(X, y); });
    CHECK(rel_error(g, gfd) < 1e-6);
  }
}

TEST_CASE("lse: analytic RSS gradient matches finite differences") {
  std::vector<json> gatings{json{{"family", "softmax"}}};
  if (has_gating("sigmoid")) gatings.push_back(json{{"family", "sigmoid"}});
  for (const auto& gj : gatings) {
    for (const json& ej : {json{{"family", "linear"}}, parse_family_spec("ffn:tanh"), parse_family_spec("polynomial:p=2")}) {
      Rng rng(32);  // seed 32
      GaussianMoE m = random_model(gj, ej, 3, 2, ModelKind::regression, rng);
      arma::mat X(2, 150);
      for (auto& v : X) v = rng.uniform(-1, 1);
      const arma::rowvec y = m.simulate(X, rng);
      arma::vec g;
      const double rss = rss_gradient(m, X, y, g);
      INFO("gating " << gj.dump() << ", experts " << ej.dump());
      CHECK(rss == doctest::Approx(arma::accu(arma::square(y - m.regression_function(X)))).epsilon(1e-13));
      REQUIRE(g.n_elem == m.flat_params().n_elem);
      const arma::vec gfd = fd_gradient(
          m, [&](const GaussianMoE& mm) { return arma::accu(arma::square(y - mm.regression_function(X))); });
      CHECK(rel_error(g, gfd) < 1e-6);
    }
  }
}

TEST_CASE("mle: at the optimum it agrees with EM") {
  Rng rng(33);  // seed 33
  const GaussianMoE truth = experiment_a(ModelKind::gaussian);
  arma::mat X(1, 2000);
  uniform_design(X, rng);
  const arma::rowvec y = truth.simulate(X, rng);
  FitOptions opt;
  opt.n_experts = 2;
  opt.n_starts = 4;
  opt.seed = 34;  // seed 34
  opt.em.max_iter = 20000;
  opt.em.score_tol = 1e-5;  // tighter than the default, for a close comparison
  const FitResult em = fit(X, y, opt);
  opt.estimator = "mle";
  const FitResult mle = fit(X, y, opt);
  CHECK(em.stop_reason == StopReason::converged);
  CHECK(mle.stop_reason == StopReason::converged);
  const double rel_ll = std::abs(mle.log_likelihood - em.log_likelihood) / std::abs(em.log_likelihood);
  GaussianMoE m = mle.model;
  m.permute(match_experts(m, em.model));
  const double rel_par = rel_error(m.flat_params(), em.model.flat_params());
  MESSAGE("EM vs MLE (independent fits, 4 kmeans starts): log-likelihood " << em.log_likelihood << " vs "
          << mle.log_likelihood << ", relative difference " << rel_ll << "; max relative parameter difference "
          << rel_par << " (EM " << em.iterations << " iterations, MLE " << mle.iterations << ")");
  CHECK(rel_ll < 1e-6);
  CHECK(rel_par < 1e-3);

  // EM's optimum is a stationary point of the likelihood: the MLE started there barely moves.
  GaussianMoE start = em.model;
  arma::vec g;
  log_likelihood_gradient(start, X, y, g);
  const double grad_at_em = arma::abs(g).max() / X.n_cols;
  MleOptions mo;
  mo.tol = 1e-14;
  const MleResult r = run_mle(start, X, y, mo);
  const double moved = rel_error(start.flat_params(), em.model.flat_params());
  MESSAGE("MLE from EM's optimum: |grad l|_inf / n = " << grad_at_em << ", log-likelihood change "
          << r.log_likelihood - em.log_likelihood << ", max relative parameter change " << moved << " ("
          << stop_reason_name(r.stop_reason) << ", " << r.message << ")");
  CHECK(grad_at_em < 1e-6);
  CHECK(r.log_likelihood >= em.log_likelihood - 1e-9 * std::abs(em.log_likelihood));
  CHECK(std::abs(r.log_likelihood - em.log_likelihood) < 1e-8 * std::abs(em.log_likelihood));
  CHECK(moved < 1e-3);
}

TEST_CASE("mle: stop reasons are honest") {
  Rng rng(35);  // seed 35
  const GaussianMoE truth = experiment_a(ModelKind::gaussian);
  arma::mat X(1, 500);
  uniform_design(X, rng);
  const arma::rowvec y = truth.simulate(X, rng);
  GaussianMoE start = truth;
  start.eta() += 0.5;
  SUBCASE("iteration cap") {
    MleOptions o;
    o.max_iter = 2;
    o.tol = 0;
    const MleResult r = run_mle(start, X, y, o);
    CHECK(r.stop_reason == StopReason::max_iter);
    CHECK(r.iterations == 2);
    CHECK(r.log_likelihood > r.log_likelihood_initial);
  }
  SUBCASE("no iteration") {
    MleOptions o;
    o.max_iter = 0;
    CHECK(run_mle(start, X, y, o).stop_reason == StopReason::not_run);
  }
  SUBCASE("non-finite start") {
    arma::rowvec ybad = y;
    ybad[3] = arma::datum::nan;
    const MleResult r = run_mle(start, X, ybad, MleOptions{});
    CHECK(r.stop_reason == StopReason::non_finite);
  }
  SUBCASE("converged, and the log-likelihood rises") {
    const MleResult r = run_mle(start, X, y, MleOptions{});
    CHECK(r.stop_reason == StopReason::converged);
    CHECK(r.log_likelihood > r.log_likelihood_initial);
    CHECK(r.log_likelihood >= truth.log_likelihood(X, y));
  }
  SUBCASE("a regression model is refused") {
    GaussianMoE reg = experiment_a(ModelKind::regression);
    CHECK_THROWS_AS(run_mle(reg, X, y, MleOptions{}), InvalidArgument);
  }
}

TEST_CASE("lse: fit recovers the regression model (softmax gate, experiment A experts)") {
  Rng rng(36);  // seed 36
  const GaussianMoE truth = experiment_a(ModelKind::regression);
  arma::mat X(1, 5000);
  uniform_design(X, rng);
  const arma::rowvec y = truth.simulate(X, rng);
  FitOptions opt;
  opt.n_experts = 2;
  opt.n_starts = 5;
  opt.seed = 37;  // seed 37
  opt.estimator = "lse";
  opt.em.tol = 1e-12;
  opt.em.max_iter = 5000;
  const FitResult r = fit(X, y, opt);
  CHECK(r.model.kind() == ModelKind::regression);
  CHECK(r.estimator == "lse");
  const double rss_truth = arma::accu(arma::square(y - truth.regression_function(X)));
  CHECK(r.rss <= rss_truth);
  CHECK(r.starts[r.best_start].objective == doctest::Approx(-r.rss).epsilon(1e-12));
  for (const auto& s : r.starts) CHECK(s.objective >= s.objective_initial);
  CHECK(r.stop_reason == StopReason::converged);
  CHECK(r.model.noise_variance() == doctest::Approx(r.rss / 5000).epsilon(1e-12));
  GaussianMoE m = r.model;
  m.permute(match_experts(m, truth));
  const arma::vec gate = m.gating().params();
  MESSAGE("lse fit: gate " << gate.t() << " eta " << m.eta() << " RSS " << r.rss << " (truth " << rss_truth << ")");
  CHECK(std::abs(gate[0] + 8) <= 0.3 * 8);
  CHECK(std::abs(gate[1] - 25) <= 0.3 * 25);
  CHECK(rel_error(arma::vectorise(m.eta()), arma::vectorise(truth.eta())) < 0.05);
  // The model file says "regression" and has no variances.
  const json j = r.model.to_json();
  CHECK(j["model"] == "regression");
  CHECK(!j["experts"][0].contains("variance"));
}

TEST_CASE("lse: run_lse converts a Gaussian start and lowers the RSS") {
  Rng rng(38);  // seed 38
  const GaussianMoE truth = experiment_a(ModelKind::gaussian);
  arma::mat X(1, 1000);
  uniform_design(X, rng);
  const arma::rowvec y = truth.simulate(X, rng);
  GaussianMoE m = truth;
  m.eta() *= 0.8;
  const LseResult r = run_lse(m, X, y, LseOptions{});
  CHECK(m.kind() == ModelKind::regression);
  CHECK(r.rss < r.rss_initial);
  CHECK(r.stop_reason == StopReason::converged);
  const GaussianMoE conv = as_regression_model(truth, X, y);
  CHECK(conv.noise_variance() ==
        doctest::Approx(arma::accu(arma::square(y - truth.regression_function(X))) / 1000).epsilon(1e-12));
  CHECK(arma::approx_equal(conv.eta(), truth.eta(), "absdiff", 0.0));
}

TEST_CASE("lse: sigmoid gating (regression model only), when registered") {
  if (!has_gating("sigmoid")) return;
  Rng rng(39);  // seed 39
  auto g = make_gating(json{{"family", "sigmoid"}}, 2, 1);
  g->set_params(arma::vec{-8, 25, 8, -25});  // sigmoid(25x - 8), sigmoid(8 - 25x)
  GaussianMoE truth(std::move(g), make_expert_family(json{{"family", "linear"}}, 1),
                    arma::mat{{-20, 20}, {15, -5}}, arma::vec{1, 1}, ModelKind::regression);
  truth.set_noise_variance(0.09);
  arma::mat X(1, 3000);
  uniform_design(X, rng);
  const arma::rowvec y = truth.simulate(X, rng);
  FitOptions opt;
  opt.n_experts = 2;
  opt.gating = json{{"family", "sigmoid"}};
  opt.n_starts = 5;
  opt.seed = 40;  // seed 40
  opt.estimator = "lse";
  opt.em.tol = 1e-12;
  opt.em.max_iter = 5000;
  const FitResult r = fit(X, y, opt);
  const double rss_truth = arma::accu(arma::square(y - truth.regression_function(X)));
  MESSAGE("lse with sigmoid gate: RSS " << r.rss << " (truth " << rss_truth << "), " << stop_reason_name(r.stop_reason));
  CHECK(r.model.kind() == ModelKind::regression);
  CHECK(r.rss <= rss_truth * 1.001);
  const arma::rowvec grid = arma::linspace<arma::rowvec>(0.05, 0.95, 91);
  CHECK(arma::abs(r.model.regression_function(grid) - truth.regression_function(grid)).max() < 0.3);
}


TEST_CASE("fit: a cancel hook that says no changes nothing; one that says yes stops every estimator") {
  Rng rng(41);  // seed 41
  const GaussianMoE truth = experiment_a(ModelKind::gaussian);
  arma::mat X(1, 500);
  uniform_design(X, rng);
  const arma::rowvec y = truth.simulate(X, rng);
  for (const char* estimator : {"em", "mle", "lse"}) {
    CAPTURE(estimator);
    FitOptions opt;
    opt.n_experts = 2;
    opt.n_starts = 3;
    opt.seed = 42;  // seed 42
    opt.estimator = estimator;
    const FitResult plain = fit(X, y, opt);
    std::atomic<int> calls{0};
    opt.em.cancel = [&] {
      ++calls;
      return false;
    };
    const FitResult hooked = fit(X, y, opt);
    CHECK(calls.load() >= plain.iterations);  // polled at every iteration (and start)
    CHECK(hooked.log_likelihood == plain.log_likelihood);
    CHECK(arma::approx_equal(hooked.model.flat_params(), plain.model.flat_params(), "absdiff", 0.0));
    // Cancel after a few polls: inside an estimator's loop, not only between starts.
    calls = 0;
    opt.em.cancel = [&] { return ++calls > 4; };
    CHECK_THROWS_AS(fit(X, y, opt), Cancelled);
  }
}

}  // namespace moerate
