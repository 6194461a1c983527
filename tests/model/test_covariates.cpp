// Gate covariates (model/covariates.hpp): the gate reads other columns of X than
// the experts. Independent checks: densities by hand, gradients against finite
// differences, EM monotonicity, recovery on simulated data, and agreement with
// the shared model where the two must agree.
#include <doctest/doctest.h>

#include <cmath>

#include "fixtures.hpp"

#include "moerate/core/error.hpp"
#include "moerate/estimators/em.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/estimators/inference.hpp"
#include "moerate/estimators/lse.hpp"
#include "moerate/estimators/mle.hpp"
#include "moerate/estimators/selection.hpp"
#include "moerate/metrics/dendrogram.hpp"
#include "moerate/metrics/voronoi.hpp"

using namespace moerate;
using doctest::Approx;

namespace {

// Gate on z (softmax, expert 1 against the reference expert 2), linear experts on x.
constexpr const char* kGateZ = R"({
  "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
  "covariates": {"experts": ["x"], "gate": ["z"]},
  "experts": [
    {"gate": {"beta0": -3, "beta1": [6]}, "expert": {"a": [-4], "b": 2}, "variance": 0.04},
    {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [3], "b": -1}, "variance": 0.09} ] })";

GaussianMoE gate_z_truth() { return GaussianMoE::from_json(json::parse(kGateZ), "gate-z truth"); }

// X = [x; z] (rows in the order of covariates.columns), both U[0, 1]; y from m.
fixtures::Sim simulate2(const GaussianMoE& m, std::size_t n, std::uint64_t seed) {
  Rng rng(seed);
  fixtures::Sim s;
  s.X = draw_design("uniform:0,1", 2, n, rng);
  s.y = m.simulate(s.X, rng);
  return s;
}

FitOptions gate_z_options(std::size_t k) {
  FitOptions fo;
  fo.n_experts = k;
  fo.n_starts = 4;
  fo.seed = 7;
  fo.threads = 1;
  fo.covariates = Covariates::from_names({"x"}, {"z"});
  return fo;
}

}  // namespace

TEST_CASE("Covariates: layout from names, the shared map, and bad maps") {
  const Covariates c = Covariates::from_names({"x"}, {"z"});
  CHECK_FALSE(c.shared());
  CHECK(c.columns() == std::vector<std::string>{"x", "z"});
  CHECK(c.expert_rows()[0] == 0);
  CHECK(c.gate_rows()[0] == 1);
  const Covariates sup = Covariates::from_names({"x"}, {"z", "x"});  // the gate reads more than the experts
  CHECK(sup.columns() == std::vector<std::string>{"x", "z"});
  CHECK(sup.gate_rows().n_elem == 2);
  CHECK(sup.gate_rows()[0] == 1);
  CHECK(Covariates::from_names({"a", "b"}, {"a", "b"}).shared());
  CHECK(Covariates::from_rows({"a", "b"}, {0, 1}, {0, 1}).shared());
  CHECK_THROWS_AS(Covariates::from_names({"x"}, {}), InvalidArgument);
  CHECK_THROWS_AS(Covariates::from_names({"x"}, {"z", "z"}), InvalidArgument);
  CHECK_THROWS_AS(Covariates::from_names({"x"}, {""}), InvalidArgument);
  CHECK_THROWS_AS(Covariates::from_rows({"a", "b", "c"}, {0}, {1}), InvalidArgument);  // c read by nobody
  CHECK_THROWS_AS(Covariates::from_json(json::parse(R"({"experts": ["x"]})"), "covariates"), InvalidArgument);
  CHECK_THROWS_AS(Covariates::from_json(json::parse(R"({"experts": ["x"], "gate": ["z"], "colums": ["x"]})"),
                                        "covariates"),
                  InvalidArgument);
  CHECK_THROWS_AS(Covariates::from_json(json::parse(R"({"columns": ["x"], "experts": ["x"], "gate": ["z"]})"),
                                        "covariates"),
                  InvalidArgument);
  // Rows of X: the whole X when shared (no copy), the named rows otherwise.
  const arma::mat X = {{1, 2, 3}, {4, 5, 6}};
  const Covariates::Rows all = Covariates().gate_x(X);
  CHECK(&all.mat() == &X);
  const Covariates::Rows zr = c.gate_x(X);
  CHECK(zr.mat().n_rows == 1);
  CHECK(zr.mat()(0, 2) == 6);
  CHECK_THROWS_AS(c.gate_x(arma::mat(3, 2, arma::fill::zeros)), InvalidArgument);
}

TEST_CASE("gate on z, experts on x: log-likelihood by hand at a few points") {
  const GaussianMoE m = gate_z_truth();
  CHECK(m.dim() == 2);
  CHECK(m.gate_dim() == 1);
  CHECK(m.expert_dim() == 1);
  const arma::mat X = {{0.1, 0.5, 0.9, -2.0}, {0.8, 0.2, 0.5, 3.0}};  // rows x, z
  const arma::rowvec y = {1.0, -0.3, 2.1, 0.4};
  const arma::rowvec ll = m.log_likelihood_obs(X, y);
  for (std::size_t i = 0; i < X.n_cols; ++i) {
    const double x = X(0, i), z = X(1, i);
    const double e1 = std::exp(-3 + 6 * z);
    const double p1 = e1 / (e1 + 1), p2 = 1 / (e1 + 1);
    auto dens = [](double v, double mean, double var) {
      return std::exp(-0.5 * (v - mean) * (v - mean) / var) / std::sqrt(2 * M_PI * var);
    };
    const double hand = std::log(p1 * dens(y[i], -4 * x + 2, 0.04) + p2 * dens(y[i], 3 * x - 1, 0.09));
    CAPTURE(i);
    CHECK(ll[i] == Approx(hand).epsilon(1e-12));
  }
  // Predictive mean by hand at the first point.
  const double e1 = std::exp(-3 + 6 * 0.8);
  CHECK(m.regression_function(X)[0] == Approx((e1 * (-4 * 0.1 + 2) + (3 * 0.1 - 1)) / (e1 + 1)).epsilon(1e-13));
  // The file round trip keeps the map; a model without it writes no key.
  const json j = m.to_json();
  REQUIRE(j.contains("covariates"));
  CHECK(j["covariates"]["gate"] == json::array({"z"}));
  const GaussianMoE back = GaussianMoE::from_json(j, "round trip");
  CHECK(back.log_likelihood(X, y) == m.log_likelihood(X, y));
  CHECK_FALSE(fixtures::experiment_a().to_json().contains("covariates"));
  // Data with the wrong number of rows is refused, not misread.
  CHECK_THROWS_AS(m.log_likelihood(X.rows(0, 0), y), InvalidArgument);
}

TEST_CASE("a gate on a subset of the columns equals the shared model with zero slopes on the others") {
  // Experts on (x, z), gate on z only, against the shared model whose gate has slope 0 on x.
  const json j = json::parse(R"({
    "gating": {"family": "softmax"}, "expert_family": {"family": "linear"},
    "covariates": {"experts": ["x", "z"], "gate": ["z"]},
    "experts": [
      {"gate": {"beta0": -1, "beta1": [2.5]}, "expert": {"a": [1, -2], "b": 0.5}, "variance": 0.2},
      {"gate": {"beta0": 0.4, "beta1": [-1]}, "expert": {"a": [-1, 0.5], "b": 1}, "variance": 0.3},
      {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [0, 1], "b": -1}, "variance": 0.1} ] })");
  const GaussianMoE sub = GaussianMoE::from_json(j, "subset");
  json jf = j;
  jf.erase("covariates");
  for (auto& e : jf["experts"]) e["gate"]["beta1"] = json::array({0.0, e["gate"]["beta1"][0]});
  const GaussianMoE full = GaussianMoE::from_json(jf, "full");
  Rng rng(11);
  const arma::mat X = draw_design("normal:0,1", 2, 300, rng);
  const arma::rowvec y = full.simulate(X, rng);
  const arma::rowvec a = sub.log_likelihood_obs(X, y), b = full.log_likelihood_obs(X, y);
  CHECK(arma::max(arma::abs(a - b)) <= 1e-13 * arma::max(arma::abs(b)));
  CHECK(arma::approx_equal(sub.regression_function(X), full.regression_function(X), "absdiff", 1e-13));
}

TEST_CASE("gradients with gate covariates agree with central differences (score, MLE, LSE)") {
  const GaussianMoE m0 = gate_z_truth();
  const fixtures::Sim s = simulate2(m0, 200, 3);
  GaussianMoE m = m0;
  arma::vec th = m.flat_params();
  th += 0.1 * arma::regspace(0, th.n_elem - 1) / double(th.n_elem);  // away from the truth
  m.set_flat_params(th);
  arma::vec g_mle;
  log_likelihood_gradient(m, s.X, s.y, g_mle);
  const arma::vec g_score = score(m, s.X, s.y);
  const arma::mat S = score_obs(m, s.X, s.y);
  GaussianMoE w = m;
  for (std::size_t i = 0; i < th.n_elem; ++i) {
    const double h = 1e-5 * std::max(1.0, std::abs(th[i]));
    arma::vec tp = th, tm = th;
    tp[i] += h;
    tm[i] -= h;
    w.set_flat_params(tp);
    const double lp = w.log_likelihood(s.X, s.y);
    w.set_flat_params(tm);
    const double lm = w.log_likelihood(s.X, s.y);
    const double fd = (lp - lm) / (2 * h);
    CAPTURE(i);
    CHECK(g_mle[i] == Approx(fd).epsilon(1e-6).scale(1.0));
    CHECK(g_score[i] == Approx(fd).epsilon(1e-6).scale(1.0));
    CHECK(arma::accu(S.row(i)) == Approx(fd).epsilon(1e-6).scale(1.0));
  }
  // Least squares: the RSS gradient of the regression model.
  GaussianMoE r = as_regression_model(m, s.X, s.y);
  CHECK_FALSE(r.covariates().shared());
  const arma::vec tr = r.flat_params();
  arma::vec g_rss;
  rss_gradient(r, s.X, s.y, g_rss);
  GaussianMoE wr = r;
  for (std::size_t i = 0; i < tr.n_elem; ++i) {
    const double h = 1e-5 * std::max(1.0, std::abs(tr[i]));
    arma::vec tp = tr, tm = tr;
    tp[i] += h;
    tm[i] -= h;
    wr.set_flat_params(tp);
    const double rp = arma::accu(arma::square(s.y - wr.regression_function(s.X)));
    wr.set_flat_params(tm);
    const double rm = arma::accu(arma::square(s.y - wr.regression_function(s.X)));
    CAPTURE(i);
    CHECK(g_rss[i] == Approx((rp - rm) / (2 * h)).epsilon(1e-6).scale(1.0));
  }
}

TEST_CASE("EM with gate covariates: the log-likelihood never decreases (seeds 1..6, k = 2, 3)") {
  const GaussianMoE truth = gate_z_truth();
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    const fixtures::Sim s = simulate2(truth, 500, seed);
    for (std::size_t k : {2u, 3u}) {
      FitOptions fo = gate_z_options(k);
      fo.init.kind = seed % 2 ? InitKind::random : InitKind::kmeans;
      Rng rng(derive_seed(seed, {k}));
      const GaussianMoE m = initial_model(s.X, s.y, fo, rng, nullptr);
      CHECK(m.covariates() == fo.covariates);
      CHECK(m.gate_dim() == 1);
      for (Acceleration acc : {Acceleration::none, Acceleration::squarem}) {
        GaussianMoE mm = m;
        EMOptions eo;
        eo.max_iter = 120;
        eo.abs_tol = 0;
        eo.accelerate = acc;
        const EMResult r = run_em(mm, s.X, s.y, eo);
        CAPTURE(seed);
        CAPTURE(k);
        CAPTURE(acceleration_name(acc));
        REQUIRE(r.trace.size() >= 2);
        for (std::size_t t = 1; t < r.trace.size(); ++t)
          CHECK(r.trace[t] >= r.trace[t - 1] - 1e-8 * std::abs(r.trace[t - 1]));
        CHECK(r.log_likelihood == Approx(mm.log_likelihood(s.X, s.y)).epsilon(1e-12));
      }
    }
  }
}

TEST_CASE("recovery: gate on z, experts on x, n = 5000 (seed 5): estimates within 4 standard errors") {
  const GaussianMoE truth = gate_z_truth();
  const fixtures::Sim s = simulate2(truth, 5000, 5);
  const FitResult r = fit(s.X, s.y, gate_z_options(2));
  CHECK(r.certificate.certified);
  GaussianMoE m = r.model;
  m.permute(match_experts(m, truth));
  const StandardErrors se = standard_errors(m, s.X, s.y);
  REQUIRE_FALSE(se.near_singular);
  const arma::vec est = m.flat_params(), tru = truth.flat_params();
  REQUIRE(est.n_elem == tru.n_elem);
  for (std::size_t i = 0; i < est.n_elem; ++i) {
    CAPTURE(se.names[i]);
    CAPTURE(est[i]);
    CAPTURE(tru[i]);
    CHECK(std::abs(est[i] - tru[i]) < 4 * se.se[i]);
    CHECK(se.se[i] < 0.2);  // informative at n = 5000
  }
  // The Voronoi loss of the fit against the truth is small and reads the same map.
  const VoronoiLoss L = voronoi_loss(truth, m, VoronoiOptions{});
  CHECK(L.total < 0.1);
}

TEST_CASE("a gate-only covariate changes the fit: gate on z against gate on x (same data, seed 9)") {
  const GaussianMoE truth = gate_z_truth();
  const fixtures::Sim s = simulate2(truth, 3000, 9);
  const FitResult rz = fit(s.X, s.y, gate_z_options(2));
  FitOptions fx = gate_z_options(2);
  fx.covariates = Covariates();  // gate and experts on x only
  const arma::mat Xx = s.X.rows(0, 0);
  const FitResult rx = fit(Xx, s.y, fx);
  CHECK(rx.model.covariates().shared());
  CHECK(rz.n_params == rx.n_params);  // same number of parameters: only the gate's covariate differs
  // The truth's gate depends on z: reading it gains hundreds of nats on n = 3000.
  CHECK(rz.log_likelihood > rx.log_likelihood + 100);
}

TEST_CASE("the other estimators and tools accept gate covariates") {
  const GaussianMoE truth = gate_z_truth();
  const fixtures::Sim s = simulate2(truth, 800, 2);
  SUBCASE("direct MLE and least squares from the truth do not lose objective") {
    for (const std::string est : {"mle", "lse"}) {
      FitOptions fo = gate_z_options(2);
      fo.estimator = est;
      fo.n_starts = 2;
      const FitResult r = fit(s.X, s.y, fo);
      CAPTURE(est);
      CHECK(r.model.covariates() == fo.covariates);
      CHECK(std::isfinite(r.log_likelihood));
      for (const auto& st : r.starts) CHECK(st.objective >= st.objective_initial - 1e-9 * std::abs(st.objective_initial));
    }
  }
  SUBCASE("selection, dendrogram and bootstrap keep the map") {
    SelectOptions so;
    so.k_min = 1;
    so.k_max = 3;
    so.fit = gate_z_options(1);
    so.fit.n_starts = 2;
    const SelectionResult sel = select_experts(s.X, s.y, so);
    for (const auto& f : sel.fits) CHECK(f.model.covariates() == so.fit.covariates);
    const GaussianMoE& over = sel.fits.back().model;  // k = 3
    const Dendrogram d = build_dendrogram(over, s.X, s.y, DendrogramOptions{});
    REQUIRE(d.levels.size() == 3);
    CHECK(d.levels[0].log_likelihood == Approx(over.log_likelihood(s.X, s.y)).epsilon(1e-12));
    for (const auto& lev : d.levels) {
      CHECK(lev.model.covariates() == so.fit.covariates);
      CHECK(std::isfinite(lev.log_likelihood));
    }
    BootstrapOptions bo;
    bo.replicates = 4;
    bo.threads = 1;
    bo.kmeans_starts = 1;
    bo.em.max_iter = 200;
    const BootstrapResult b = bootstrap(sel.fits[1].model, s.X, s.y, bo);
    CHECK(b.n_failed == 0);
    CHECK(b.draws.is_finite());
  }
  SUBCASE("a gate that reads more columns than the experts; data with the wrong rows refused") {
    FitOptions fo = gate_z_options(2);
    fo.covariates = Covariates::from_names({"x"}, {"x", "z"});
    fo.n_starts = 2;
    const FitResult r = fit(s.X, s.y, fo);
    CHECK(r.model.gate_dim() == 2);
    CHECK(r.model.expert_dim() == 1);
    CHECK(r.em.max_decrease <= 1e-8 * std::abs(r.log_likelihood));
    CHECK_THROWS_AS(fit(s.X.rows(0, 0), s.y, fo), InvalidArgument);  // one row; the map names two
  }
}

TEST_CASE("Bernoulli experts with gate covariates: EM never decreases the log-likelihood (seed 4)") {
  json j = json::parse(kGateZ);
  j["model"] = "bernoulli";
  for (auto& e : j["experts"]) e.erase("variance");
  j["experts"][0]["expert"] = json{{"a", json::array({-6})}, {"b", 3}};
  j["experts"][1]["expert"] = json{{"a", json::array({5})}, {"b", -2}};
  const GaussianMoE truth = GaussianMoE::from_json(j, "bernoulli gate-z");
  const fixtures::Sim s = simulate2(truth, 1500, 4);
  FitOptions fo = gate_z_options(2);
  fo.response = ModelKind::bernoulli;
  fo.n_starts = 2;
  fo.em.max_iter = 200;
  const FitResult r = fit(s.X, s.y, fo);
  CHECK(r.model.covariates() == fo.covariates);
  CHECK(r.em.max_decrease <= 1e-8 * std::abs(r.log_likelihood));
  CHECK(r.log_likelihood >= truth.log_likelihood(s.X, s.y) - 5);  // the MLE is at least near the truth's value
}
