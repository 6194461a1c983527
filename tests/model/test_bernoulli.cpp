// Bernoulli experts (model/response.hpp, estimators/em_bernoulli.hpp): the
// log-likelihood against a hand computation, stable log-sigmoid, the logistic
// M-step's gradient against finite differences and its monotonicity, EM never
// lowering the log-likelihood, recovery of P(y = 1 | x) on simulated data,
// model files.
#include <doctest/doctest.h>

#include <cmath>

#include "fixtures.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/model/response.hpp"

using namespace moerate;

namespace {

// Two linear Bernoulli experts on U[-1, 1]: the gate sends x > 0 to expert 1
// (logit 4x + 1), x < 0 to expert 2 (logit -3x - 0.5).
const char* kBernoulliLinear = R"({
  "model": "bernoulli",
  "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
  "experts": [
    {"gate": {"beta0": 0, "beta1": [6]}, "expert": {"a": [4], "b": 1}},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [-3], "b": -0.5}} ] })";

GaussianMoE bernoulli_linear() { return GaussianMoE::from_json(json::parse(kBernoulliLinear), "bernoulli"); }

double hand_sigmoid(double z) { return 1 / (1 + std::exp(-z)); }

}  // namespace

TEST_CASE("log_sigmoid is stable and matches log(1/(1+e^-z))") {
  for (double z : {-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 30.0})
    CHECK(log_sigmoid(z) == doctest::Approx(std::log(hand_sigmoid(z))).epsilon(1e-13));
  // Far tails: log s(-800) = -800 - log1p(e^-800) = -800 exactly in doubles; never -inf.
  CHECK(log_sigmoid(-800.0) == doctest::Approx(-800.0).epsilon(1e-15));
  CHECK(log_sigmoid(800.0) == 0.0);
  const arma::rowvec s = sigmoid(arma::rowvec{-800.0, 0.0, 800.0});
  CHECK(s[0] >= 0.0);
  CHECK(s[0] < 1e-300);
  CHECK(s[1] == 0.5);
  CHECK(s[2] == 1.0);
  const arma::rowvec lp = bernoulli_log_pmf(arma::rowvec{1, 0}, arma::rowvec{-800.0, 800.0});
  CHECK(lp[0] == doctest::Approx(-800.0).epsilon(1e-15));
  CHECK(lp[1] == doctest::Approx(-800.0).epsilon(1e-15));
}

TEST_CASE("Bernoulli MoE log-likelihood against a hand computation") {
  const GaussianMoE m = bernoulli_linear();
  CHECK(m.kind() == ModelKind::bernoulli);
  const arma::mat X = {{0.3, -0.6, 0.0}};
  const arma::rowvec y = {1, 1, 0};
  double total = 0;
  for (std::size_t i = 0; i < 3; ++i) {
    const double x = X(0, i);
    const double pi1 = hand_sigmoid(6 * x);  // softmax with the second gate as reference
    const double p1 = hand_sigmoid(4 * x + 1), p2 = hand_sigmoid(-3 * x - 0.5);
    const double py1 = pi1 * p1 + (1 - pi1) * p2;
    const double li = std::log(y[i] == 1 ? py1 : 1 - py1);
    CHECK(m.log_likelihood_obs(X, y)[i] == doctest::Approx(li).epsilon(1e-13));
    CHECK(m.regression_function(X)[i] == doctest::Approx(py1).epsilon(1e-13));
    CHECK(m.predictive_variance(X)[i] == doctest::Approx(py1 * (1 - py1)).epsilon(1e-12));
    total += li;
  }
  CHECK(m.log_likelihood(X, y) == doctest::Approx(total).epsilon(1e-13));
  // Responsibilities are posterior expert probabilities: columns sum to one.
  const arma::mat R = m.responsibilities(X, y);
  for (std::size_t i = 0; i < 3; ++i) CHECK(arma::accu(R.col(i)) == doctest::Approx(1.0).epsilon(1e-14));
}

TEST_CASE("Bernoulli model files: round trip, no variance, old files unchanged") {
  const GaussianMoE m = bernoulli_linear();
  const json j = m.to_json();
  CHECK(j["model"] == "bernoulli");
  CHECK_FALSE(j["experts"][0].contains("variance"));
  const GaussianMoE back = GaussianMoE::from_json(j, "round trip");
  CHECK(back.kind() == ModelKind::bernoulli);
  CHECK(arma::approx_equal(back.eta(), m.eta(), "absdiff", 0.0));
  // Flat parameters: gate and experts only.
  CHECK(m.flat_params().n_elem == m.gating().n_params() + m.eta().n_elem);
  // A file without "model" is still a Gaussian MoE.
  CHECK(fixtures::experiment_a().kind() == ModelKind::gaussian);
  CHECK(fixtures::experiment_a().to_json()["model"] == "gaussian");
  json bad = json::parse(kBernoulliLinear);
  bad["model"] = "binomial";
  CHECK_THROWS_AS(GaussianMoE::from_json(bad, "bad.json"), InputError);
}

TEST_CASE("simulated Bernoulli responses are 0/1 with the model's probabilities") {
  const GaussianMoE m = bernoulli_linear();
  const auto s = fixtures::simulate(m, 20000, 7, "uniform:-1,1");
  for (double v : s.y) REQUIRE((v == 0 || v == 1));
  // Mean of y against the mean of P(y = 1 | x): within 4 standard errors.
  const double p = arma::mean(m.regression_function(s.X));
  CHECK(std::abs(arma::mean(s.y) - p) < 4 * std::sqrt(0.25 / 20000));
}

TEST_CASE("logistic gradient against finite differences (linear and ffn)") {
  Rng rng(3);
  const arma::mat X = draw_design("uniform:-1,1", 2, 60, rng);
  arma::rowvec y(60), w(60);
  for (std::size_t i = 0; i < 60; ++i) y[i] = rng.uniform() < 0.4 ? 1 : 0, w[i] = rng.uniform();
  for (const char* spec : {R"({"family":"linear"})", R"({"family":"ffn","activation":"tanh","units":2})",
                           R"({"family":"ffn","activation":"tanh","bias":false})"}) {
    CAPTURE(spec);
    const auto f = make_expert_family(json::parse(spec), 2);
    arma::vec eta(f->n_params());
    for (auto& v : eta) v = rng.normal(0, 0.7);
    const arma::vec g = logistic_gradient(*f, X, y, w, eta);
    for (std::size_t u = 0; u < eta.n_elem; ++u) {
      const double h = 1e-6;
      arma::vec ep = eta, em = eta;
      ep[u] += h;
      em[u] -= h;
      const double fd = (logistic_objective(*f, X, y, w, ep) - logistic_objective(*f, X, y, w, em)) / (2 * h);
      CHECK(g[u] == doctest::Approx(fd).epsilon(1e-6));
    }
  }
}

TEST_CASE("logistic M-step: IRLS reaches the weighted optimum; ffn steps never lower Q") {
  Rng rng(5);
  const arma::mat X = draw_design("uniform:-1,1", 1, 400, rng);
  arma::rowvec y(400), w(400);
  for (std::size_t i = 0; i < 400; ++i) {
    y[i] = rng.uniform() < hand_sigmoid(2 * X(0, i) - 0.5) ? 1 : 0;
    w[i] = 0.2 + rng.uniform();
  }
  const auto lin = make_expert_family(json{{"family", "linear"}}, 1);
  arma::vec eta(2, arma::fill::zeros);
  ExpertMStepOptions irls;
  irls.lm_steps = 50;
  const auto r = logistic_m_step(*lin, X, y, w, eta, irls);
  CHECK(r.q_after > r.q_before);
  // At the optimum the gradient vanishes (relative to its size at the start).
  const double g0 = arma::norm(logistic_gradient(*lin, X, y, w, arma::vec(2, arma::fill::zeros)));
  CHECK(arma::norm(logistic_gradient(*lin, X, y, w, eta)) < 1e-8 * g0);
  const auto ffn = make_expert_family(json{{"family", "ffn"}, {"activation", "tanh"}, {"units", 2}}, 1);
  arma::vec e2 = {0.3, -0.2, 0.1, 0.4, 0.5, -0.3, 0.0};
  e2.resize(ffn->n_params());
  double q = logistic_objective(*ffn, X, y, w, e2);
  for (int t = 0; t < 5; ++t) {
    const auto rr = logistic_m_step(*ffn, X, y, w, e2, ExpertMStepOptions{});
    CHECK(rr.q_after >= rr.q_before);
    CHECK(rr.q_before == doctest::Approx(q).epsilon(1e-12));
    q = rr.q_after;
  }
}

TEST_CASE("Bernoulli EM: the log-likelihood never decreases; recovery on simulated data") {
  const GaussianMoE truth = bernoulli_linear();
  const auto s = fixtures::simulate(truth, 1500, 11, "uniform:-1,1");
  FitOptions o;
  o.n_experts = 2;
  o.response = ModelKind::bernoulli;
  o.n_starts = 2;
  o.seed = 2;
  o.threads = 1;
  // EM crawls along the weakly identified directions (thousands of steps to
  // |dl| < 1e-6): 200 steps are enough for P(y = 1 | x) and keep the test fast.
  o.em.max_iter = 200;
  const FitResult r = fit(s.X, s.y, o);
  CHECK(r.model.kind() == ModelKind::bernoulli);
  CHECK(r.iterations > 10);
  REQUIRE(r.em.trace.size() > 2);
  for (std::size_t t = 1; t < r.em.trace.size(); ++t)
    CHECK(r.em.trace[t] >= r.em.trace[t - 1] - 1e-9 * std::abs(r.em.trace[t - 1]));
  // The fit is at least as likely as the truth on its own data.
  CHECK(r.log_likelihood >= truth.log_likelihood(s.X, s.y) - 1e-6);
  // P(y = 1 | x) recovered: mean absolute difference on a grid.
  const arma::mat G = arma::linspace<arma::rowvec>(-1, 1, 201);
  const double err = arma::mean(arma::abs(r.model.regression_function(G) - truth.regression_function(G)));
  CHECK(err < 0.03);
  // The parameters themselves are only weakly identified (at each x the data
  // show one probability, sum_i pi_i(x) sigmoid(h_i(x))): no check on eta here.
}

TEST_CASE("bad Bernoulli responses name the file and line") {
  CHECK_THROWS_WITH_AS(check_binary_response(arma::rowvec{0, 1, 0.5}, "d.csv", {2, 3, 5}),
                       doctest::Contains("d.csv:5"), InputError);
  CHECK_NOTHROW(check_binary_response(arma::rowvec{0, 1, 1}, "d.csv"));
  FitOptions o;
  o.response = ModelKind::bernoulli;
  o.estimator = "lse";
  CHECK_THROWS_AS(o.validate(), InvalidArgument);
}
