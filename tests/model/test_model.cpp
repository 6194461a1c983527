// Softmax gate derivatives, model files, likelihood by hand, CSV reading.
#include <doctest/doctest.h>

#include "fixtures.hpp"

#include <cstdio>
#include <fstream>

#include "moerate/io/csv.hpp"
#include "moerate/core/error.hpp"
#include "moerate/experts/linear_expert.hpp"
#include "moerate/model/model.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/gating/softmax_gating.hpp"

using namespace moerate;
using namespace moerate::fixtures;
using doctest::Approx;

namespace {

double q_of(const SoftmaxGating& g, const arma::mat& X, const arma::mat& C) {
  return arma::accu(C % g.log_weights(X));
}

std::string write_temp(const std::string& name, const std::string& text) {
  const std::string path = "moerate_test_" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST_CASE("softmax gate: gradient and Hessian against finite differences (seed 11)") {
  // p = (k-1)(d+1) = 6 and 27 take the plain-loop pass (unrolled and general),
  // p = 82 the BLAS products (above kLoopDerivativesMaxP = 48).
  std::size_t k = 3, d = 2;
  SUBCASE("k = 3, d = 2") {}
  SUBCASE("k = 4, d = 8") { k = 4, d = 8; }
  SUBCASE("k = 3, d = 40") { k = 3, d = 40; }
  CAPTURE(k);
  CAPTURE(d);
  Rng rng(11);
  const std::size_t n = 50;
  SoftmaxGating g(k, d);
  g.set_params(rng.normal_vec(g.n_params()));
  arma::mat X(d, n);
  for (auto& v : X) v = rng.normal();
  arma::mat C(k, n);
  for (auto& v : C) v = rng.uniform();  // any C, not only responsibilities
  const arma::vec grad = g.log_weights_vjp(X, C);
  const arma::mat H = g.q_hessian(X, C);
  const arma::vec t0 = g.params();
  for (std::size_t p = 0; p < t0.n_elem; ++p) {
    const double h = 1e-5;
    SoftmaxGating gp = g, gm = g;
    arma::vec tp = t0, tm = t0;
    tp[p] += h;
    tm[p] -= h;
    gp.set_params(tp);
    gm.set_params(tm);
    CHECK(grad[p] == Approx((q_of(gp, X, C) - q_of(gm, X, C)) / (2 * h)).epsilon(1e-7));
    const arma::vec dg = (gp.log_weights_vjp(X, C) - gm.log_weights_vjp(X, C)) / (2 * h);
    for (std::size_t r = 0; r < t0.n_elem; ++r) CHECK(H(r, p) == Approx(dg[r]).epsilon(1e-6).scale(1.0));
  }
}

TEST_CASE("softmax gate: weights normalised, translation invariant, reference fixed") {
  SoftmaxGating g(3, 1);
  g.set_params(arma::vec{1.0, 2.0, -0.5, 3.0});
  const arma::mat X = {{-1.0, 0.0, 0.5, 2.0}};
  const arma::mat L = g.log_weights(X);
  for (std::size_t i = 0; i < X.n_cols; ++i) CHECK(log_sum_exp(arma::vec(L.col(i))) == Approx(0.0).scale(1.0).epsilon(1e-14));
  SoftmaxGating t = g;
  t.translate(0.7, arma::vec{-1.3});
  CHECK(arma::approx_equal(t.log_weights(X), L, "absdiff", 1e-12));
  t.normalise();
  CHECK(arma::approx_equal(t.params(), g.params(), "absdiff", 1e-12));
  // Hand value at x = 0: scores (1, -0.5, 0) -> pi_1 = e / (e + e^-0.5 + 1).
  CHECK(std::exp(L(0, 1)) == Approx(std::exp(1.0) / (std::exp(1.0) + std::exp(-0.5) + 1)).epsilon(1e-14));
}

TEST_CASE("model file: read, validate, round trip") {
  const GaussianMoE m = GaussianMoE::from_json(json::parse(kExperimentA), "a.json");
  CHECK(m.n_experts() == 2);
  CHECK(m.dim() == 1);
  CHECK(m.nu()[0] == 0.09);
  const GaussianMoE r = GaussianMoE::from_json(m.to_json(), "round-trip");
  CHECK(arma::approx_equal(r.flat_params(), m.flat_params(), "absdiff", 0.0));
  CHECK(r.flat_names().size() == r.flat_params().n_elem);

  json bad = json::parse(kExperimentA);
  bad["experts"][1]["variance"] = -0.1;
  CHECK_THROWS_WITH_AS(GaussianMoE::from_json(bad, "bad.json"),
                       doctest::Contains("experts[1].variance"), InputError);
  bad = json::parse(kExperimentA);
  bad["expert_family"]["family"] = "quadratic";
  CHECK_THROWS_WITH_AS(GaussianMoE::from_json(bad, "bad.json"), doctest::Contains("unknown family 'quadratic'"),
                       InputError);
  bad = json::parse(kExperimentA);
  bad["experts"][0]["gate"]["beta1"] = json::array({1, 2});
  CHECK_THROWS_AS(GaussianMoE::from_json(bad, "bad.json"), InputError);
  bad = json::parse(kExperimentA);
  bad["experts"][0].erase("expert");
  CHECK_THROWS_WITH_AS(GaussianMoE::from_json(bad, "bad.json"), doctest::Contains("missing \"expert\""), InputError);
}

TEST_CASE("log-likelihood by hand for one observation") {
  const GaussianMoE m = GaussianMoE::from_json(json::parse(kExperimentA), "a.json");
  const arma::mat X(1, 1, arma::fill::value(0.4));
  const arma::rowvec y = {2.0};
  // Scores: -8 + 25*0.4 = 2 and 0; means -20*0.4+15 = 7 and 20*0.4-5 = 3.
  const double p1 = std::exp(2.0) / (std::exp(2.0) + 1), p2 = 1 - p1;
  auto npdf = [](double y, double m, double v) { return std::exp(-0.5 * (y - m) * (y - m) / v) / std::sqrt(2 * M_PI * v); };
  const double ref = std::log(p1 * npdf(2, 7, 0.09) + p2 * npdf(2, 3, 0.16));
  CHECK(m.log_likelihood(X, y) == Approx(ref).epsilon(1e-13));
  const arma::mat R = m.responsibilities(X, y);
  CHECK(R(1, 0) == Approx(p2 * npdf(2, 3, 0.16) / std::exp(ref)).epsilon(1e-12));
  CHECK(m.regression_function(X)[0] == Approx(p1 * 7 + p2 * 3).epsilon(1e-14));
  CHECK(m.predictive_variance(X)[0] ==
        Approx(p1 * (0.09 + 49) + p2 * (0.16 + 9) - std::pow(p1 * 7 + p2 * 3, 2)).epsilon(1e-12));
}

TEST_CASE("simulate: expert frequencies follow the gate (seed 5)") {
  const GaussianMoE m = GaussianMoE::from_json(json::parse(kExperimentA), "a.json");
  Rng rng(5);
  const std::size_t n = 200000;
  const arma::mat X(1, n, arma::fill::value(0.32));  // score 0: equal weights
  const arma::rowvec y = m.simulate(X, rng);
  // Means 8.6 and 1.4 (far apart): classify by y > 5.
  const double frac = arma::accu(y > 5.0) / double(n);
  CHECK(frac == Approx(1.0 / (1.0 + std::exp(0.0))).epsilon(0.01));
}

TEST_CASE("CSV reading: quoted headers, errors with line and column") {
  SUBCASE("quoted header and fields") {
    const auto p = write_temp("q.csv", "\"x\",\"y\"\n1,2\n\"3\",4\n");
    const Dataset D = read_csv(p);
    CHECK(D.n_obs() == 2);
    CHECK(D.X(0, 1) == 3.0);
    CHECK(D.y[1] == 4.0);
    std::remove(p.c_str());
  }
  SUBCASE("response chosen by name, covariates subset") {
    const auto p = write_temp("c.csv", "a,b,c\n1,2,3\n4,5,6\n");
    CsvReadOptions o;
    o.y_column = "b";
    o.x_columns = std::vector<std::string>{"c"};
    const Dataset D = read_csv(p, o);
    CHECK(D.dim() == 1);
    CHECK(D.X(0, 1) == 6.0);
    CHECK(D.y[0] == 2.0);
    std::remove(p.c_str());
  }
  struct Bad {
    const char* text;
    const char* where;
  };
  const Bad bad[] = {{"", "empty"},
                     {"x,y\n", "no data rows"},
                     {"x,y\n1,2\n3\n", ":3:2:"},
                     {"x,y\n1,2\n3,abc\n", ":3:2: non-numeric value 'abc'"},
                     {"x,y\n1,nan\n", ":2:2: non-finite"},
                     {"x,y\n1,\n", ":2:2: missing value"},
                     {"x,z\n1,2\n", "no response column 'y'"}};
  for (const auto& b : bad) {
    const auto p = write_temp("bad.csv", b.text);
    CHECK_THROWS_WITH_AS(read_csv(p), doctest::Contains(b.where), InputError);
    std::remove(p.c_str());
  }
  CHECK_THROWS_WITH_AS(read_csv("does-not-exist.csv"), doctest::Contains("cannot open"), InputError);
}

TEST_CASE("weighted least squares equals the closed form") {
  const arma::mat X = arma::rowvec{0.0, 1.0, 2.0, 3.0};
  const arma::rowvec y = {1.0, 3.1, 4.9, 7.2};
  const arma::rowvec w = {1.0, 2.0, 1.0, 0.5};
  const arma::vec beta = weighted_least_squares(X, y, w);
  // Closed form for a line: slope = sum w (x - xb)(y - yb) / sum w (x - xb)^2.
  const double W = arma::accu(w), xb = arma::accu(w % X.row(0)) / W, yb = arma::accu(w % y) / W;
  const double slope = arma::accu(w % (X.row(0) - xb) % (y - yb)) / arma::accu(w % arma::square(X.row(0) - xb));
  CHECK(beta[0] == Approx(slope).epsilon(1e-13));
  CHECK(beta[1] == Approx(yb - slope * xb).epsilon(1e-13));
}
