// Convergence certificates, the score statistic, SQUAREM and the compact
// parameter space (models.md 9.3, 9.4).
#include <doctest/doctest.h>

#include <set>

#include "fixtures.hpp"
#include "moerate/core/error.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/estimators/certificate.hpp"
#include "moerate/estimators/em.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/estimators/mle.hpp"
#include "moerate/estimators/newton_polish.hpp"
#include "moerate/estimators/inference.hpp"
#include "moerate/model/design.hpp"

using namespace moerate;
using namespace moerate::fixtures;
using doctest::Approx;

namespace {


/// Experiment A's experts under another gate family (for the generic scores).
GaussianMoE with_gating(const json& gating) {
  json j = json::parse(kExperimentA);
  j["gating"] = gating;
  if (gating["family"] == "laplace") {
    j["experts"][0]["gate"] = {{"beta0", -1.0}, {"w", {0.2}}};
    j["experts"][1]["gate"] = {{"beta0", 0.0}, {"w", {0.8}}};
  }
  return GaussianMoE::from_json(j, "test");
}

/// A k-means start with k = 3 for experiment A's data (over-fitted by one; seed 22).
GaussianMoE overfitted_start(const Sim& s) {
  FitOptions fo;
  fo.n_experts = 3;
  Rng rng(22);  // seed 22
  return initial_model(s.X, s.y, fo, rng, nullptr);
}

}  // namespace

TEST_CASE("per-observation scores sum to the analytic gradient (softmax analytic, laplace by differences)") {
  for (const json& g : {json{{"family", "softmax"}}, json{{"family", "laplace"}}}) {
    CAPTURE(g.dump());
    const GaussianMoE m = with_gating(g);
    const Sim s = simulate(m, 300, 5);  // seed 5
    arma::vec grad;
    log_likelihood_gradient(m, s.X, s.y, grad);
    const arma::mat S = observation_scores(m, s.X, s.y, m.responsibilities(s.X, s.y));
    const arma::vec sum = arma::sum(S, 1);
    REQUIRE(sum.n_elem == grad.n_elem);
    const double scale = std::max(1.0, arma::abs(grad).max());
    CHECK(arma::abs(sum - grad).max() / scale < (g["family"] == "softmax" ? 1e-11 : 1e-6));
    // The summed form (no p x n matrix) and score() agree with the column sums
    // (laplace's per-observation gate part is by differences).
    const double tol = g["family"] == "softmax" ? 1e-12 : 1e-6;
    CHECK(arma::abs(observation_score_sum(m, s.X, s.y, m.responsibilities(s.X, s.y)) - sum).max() / scale < tol);
    CHECK(arma::abs(score(m, s.X, s.y) - sum).max() / scale < tol);
  }
}

TEST_CASE("score statistic: the remaining Newton step in standard errors (closed form for k = 1)") {
  // k = 1, linear expert: l is Gaussian regression. With the variance at its
  // MLE, the score in (a, b) is X'r/nu; lambda^2 = g^T (S S^T)^-1 g computed by hand.
  json j = json::parse(kExperimentA);
  j["experts"] = json::array({j["experts"][1]});
  GaussianMoE m = GaussianMoE::from_json(j, "k=1");
  const Sim s = simulate(m, 400, 6);  // seed 6
  m.eta()(0, 0) += 0.2;               // off the optimum in a
  const arma::rowvec r = s.y - m.expert_means(s.X).row(0);
  m.nu()[0] = arma::mean(arma::square(r));  // variance at its conditional optimum
  const double nu = m.nu()[0];
  arma::mat S(3, s.X.n_cols);
  S.row(0) = r % s.X.row(0) / nu;
  S.row(1) = r / nu;
  S.row(2) = 0.5 * (r % r / nu - 1.0);
  const arma::vec g = arma::sum(S, 1);
  const double expected = std::sqrt(arma::as_scalar(g.t() * arma::solve(S * S.t(), g)));
  CHECK(score_statistic(m, s.X, s.y) == Approx(expected).epsilon(1e-8));
  CHECK(expected > 1);  // 0.2 in a is several standard errors at n = 400
}

TEST_CASE("over-fitted EM: SQUAREM is certified where plain EM with the same steps is not yet (seed 21)") {
  const Sim s = simulate(experiment_a(), 2000, 21);
  const GaussianMoE start = overfitted_start(s);
  EMOptions sq;
  sq.max_iter = 20000;
  sq.accelerate = Acceleration::squarem;
  GaussianMoE b = start;
  const EMResult rb = run_em(b, s.X, s.y, sq);
  CHECK(rb.stop_reason == StopReason::converged);
  CHECK(rb.score_norm < 1e-3);
  for (std::size_t t = 1; t < rb.trace.size(); ++t) CHECK(rb.trace[t] >= rb.trace[t - 1] - 1e-9);
  EMOptions plain = sq;
  plain.accelerate = Acceleration::none;
  plain.max_iter = rb.iterations;
  GaussianMoE a = start;
  const EMResult ra = run_em(a, s.X, s.y, plain);
  CHECK(ra.log_likelihood <= rb.log_likelihood + 1e-6);
  MESSAGE("SQUAREM: " << rb.iterations << " EM steps (" << rb.cycles << " cycles, " << rb.extrapolations_kept
                      << " extrapolations kept), l = " << rb.log_likelihood << "; plain EM after as many steps: l = "
                      << ra.log_likelihood << ", " << stop_reason_name(ra.stop_reason));
}

TEST_CASE("Newton polish: never lowers l, reaches a zero score from a perturbed optimum (seed 41)") {
  const Sim s = simulate(experiment_a(), 2000, 41);
  GaussianMoE m = experiment_a();
  const EMResult ref = run_em(m, s.X, s.y, EMOptions{});
  REQUIRE(ref.stop_reason == StopReason::converged);
  const arma::vec theta_hat = m.flat_params();
  // Perturb every parameter by 0.05 and polish: Newton converges back.
  GaussianMoE p = m;
  p.set_flat_params(theta_hat + 0.05);
  const double l0 = p.log_likelihood(s.X, s.y);
  REQUIRE(l0 < ref.log_likelihood - 1);
  PolishOptions po;
  po.max_steps = 30;
  const PolishResult r = newton_polish(p, s.X, s.y, Box{}, l0, po);
  CHECK(r.gain >= 0);
  CHECK(r.log_likelihood == Approx(p.log_likelihood(s.X, s.y)).epsilon(1e-14));
  // EM stopped within 1e-3 standard errors; Newton goes to the zero of the score.
  CHECK(r.log_likelihood >= ref.log_likelihood - 1e-9);
  CHECK(r.log_likelihood - ref.log_likelihood < 1e-6);
  CHECK(arma::abs(p.flat_params() - theta_hat).max() < 1e-3);
  CHECK(arma::norm(score(p, s.X, s.y)) < 1e-4);  // from about 1e3 at the perturbed point
  CHECK(score_statistic(p, s.X, s.y) < 1e-6);
  // At the optimum a polish keeps the model (no step raises l).
  GaussianMoE q = m;
  const PolishResult r2 = newton_polish(q, s.X, s.y, Box{}, ref.log_likelihood);
  CHECK(r2.gain >= 0);
  CHECK(r2.gain < 1e-6);
}

TEST_CASE("Newton polish hands back to EM after a full Newton step that gains less than min_gain (seed 41)") {
  const Sim s = simulate(experiment_a(), 2000, 41);
  GaussianMoE m = experiment_a();
  REQUIRE(run_em(m, s.X, s.y, EMOptions{}).stop_reason == StopReason::converged);
  const arma::vec start = m.flat_params() + 0.05;
  PolishOptions po;
  po.max_steps = 30;
  po.initial_radius = 1e6;  // every step a full Newton step
  GaussianMoE a = m, b = m;
  a.set_flat_params(start);
  b.set_flat_params(start);
  const double l0 = a.log_likelihood(s.X, s.y);
  const PolishResult full = newton_polish(a, s.X, s.y, Box{}, l0, po);
  po.min_gain = arma::datum::inf;  // no Newton step gains that much: stop after the first
  const PolishResult first = newton_polish(b, s.X, s.y, Box{}, l0, po);
  CHECK(full.steps > 2);
  CHECK(first.steps == 1);
  CHECK(first.gain > 0);
  CHECK(first.gain <= full.gain);
}

TEST_CASE("Newton polish respects the box: a bounded coordinate stays inside (seed 42)") {
  const Sim s = simulate(experiment_a(), 1000, 42);
  GaussianMoE m = experiment_a();
  ParameterBounds b;
  b.gate_slope = 1.0;  // the truth's gate slope lies outside: the optimum is on the bound
  Box box = b.box(m);
  m.set_flat_params(box.clamp(m.flat_params()));
  const double l0 = m.log_likelihood(s.X, s.y);
  const PolishResult r = newton_polish(m, s.X, s.y, box, l0);
  CHECK(r.gain >= 0);
  CHECK(box.contains(m.flat_params()));
}

TEST_CASE("trust-region step: Moré-Sorensen optimality for a convex, an indefinite and a hard-case model") {
  // Optimality (Moré and Sorensen 1983): (A + mu I) e = g with A + mu I positive
  // semidefinite, mu >= 0, |e| <= radius and mu (radius - |e|) = 0.
  auto check = [](const arma::mat& A, const arma::vec& g, double radius, bool expect_newton) {
    arma::vec lam;
    arma::mat Q;
    REQUIRE(arma::eig_sym(lam, Q, A));
    bool newton = false;
    const arma::vec e = trust_region_step(lam, Q, Q.t() * g, radius, newton);
    CHECK(newton == expect_newton);
    CHECK(arma::norm(e) <= radius * (1 + 1e-10));
    // mu from the step: (A + mu I) e = g, least squares over the coordinates.
    const arma::vec r = g - A * e;
    const double mu = arma::dot(r, e) / std::max(arma::dot(e, e), 1e-300);
    CHECK(mu >= -1e-9);
    CHECK(arma::norm(g - (A + mu * arma::eye(A.n_rows, A.n_rows)) * e) <= 1e-8 * (1 + arma::norm(g)));
    CHECK(lam.min() + mu >= -1e-9);
    if (!newton) CHECK(arma::norm(e) == Approx(radius).epsilon(1e-9));
    // No point of the ball does better: random points on and inside the sphere.
    const double m = arma::dot(g, e) - 0.5 * arma::dot(e, A * e);
    Rng rng(5);
    for (int t = 0; t < 2000; ++t) {
      arma::vec z(A.n_rows);
      for (auto& v : z) v = rng.normal();
      z *= radius * (t % 2 ? 1.0 : rng.uniform()) / arma::norm(z);
      CHECK(arma::dot(g, z) - 0.5 * arma::dot(z, A * z) <= m + 1e-12 * (1 + std::abs(m)));
    }
  };
  const arma::mat A = {{4, 1, 0}, {1, 3, 0.5}, {0, 0.5, 2}};
  const arma::vec g = {1, -2, 0.5};
  check(A, g, 10.0, true);    // the Newton step A^-1 g lies inside
  check(A, g, 0.1, false);    // on the boundary, mu > 0
  const arma::mat B = {{2, 0.3, 0}, {0.3, -1, 0.2}, {0, 0.2, 0.5}};  // indefinite
  check(B, g, 0.7, false);
  check(B, g, 5.0, false);
  // Hard case: g orthogonal to the lowest eigenvector (-1 along e_3).
  const arma::mat C = arma::diagmat(arma::vec{2, 1, -1});
  check(C, arma::vec{1, 1, 0}, 3.0, false);
}

TEST_CASE("Newton polish puts a coordinate the step crosses on its bound and then certifies (seed 43)") {
  const Sim s = simulate(experiment_a(), 2000, 43);
  GaussianMoE m = experiment_a();
  ParameterBounds b;
  b.gate_slope = 1.0;  // the truth's gate slope lies outside: the constrained optimum is on the bound
  const Box box = b.box(m);
  // Start just inside the bound: Newton's step crosses it.
  arma::vec theta = box.clamp(m.flat_params());
  std::size_t on = theta.n_elem;
  for (std::size_t i = 0; i < theta.n_elem; ++i)
    if (std::isfinite(box.upper[i]) && theta[i] >= box.upper[i]) on = i;
  REQUIRE(on < theta.n_elem);
  theta[on] = box.upper[on] - 0.05;
  m.set_flat_params(theta);
  const double l0 = m.log_likelihood(s.X, s.y);
  PolishOptions po;
  po.max_steps = 30;
  const PolishResult r = newton_polish(m, s.X, s.y, box, l0, po);
  CHECK(r.gain > 0);
  CHECK(box.contains(m.flat_params()));
  CHECK(m.flat_params()[on] == box.upper[on]);  // on the bound exactly, not held short of it
  // The constrained optimum: the score statistic with the box's active set is zero.
  CHECK(score_statistic(m, s.X, s.y, box) < 1e-6);
}

TEST_CASE("over-fitted EM: squarem-newton is certified at the same optimum as SQUAREM, in fewer EM steps (seed 21)") {
  const Sim s = simulate(experiment_a(), 2000, 21);
  const GaussianMoE start = overfitted_start(s);
  EMOptions sq;
  sq.max_iter = 20000;
  sq.accelerate = Acceleration::squarem;
  // Newton to convergence in every gate M-step (the default before round 10): with one
  // step, the two accelerations leave this over-fitted start for different maxima.
  sq.gate.max_steps = 20;
  GaussianMoE a = start, b = start;
  const EMResult ra = run_em(a, s.X, s.y, sq);
  EMOptions sn = sq;
  sn.accelerate = Acceleration::squarem_newton;
  const EMResult rb = run_em(b, s.X, s.y, sn);
  REQUIRE(ra.stop_reason == StopReason::converged);
  REQUIRE(rb.stop_reason == StopReason::converged);
  CHECK(rb.score_norm < 1e-3);
  CHECK(rb.newton_steps > 0);
  for (std::size_t t = 1; t < rb.trace.size(); ++t) CHECK(rb.trace[t] >= rb.trace[t - 1] - 1e-9);
  CHECK(std::abs(ra.log_likelihood - rb.log_likelihood) < 1e-3);
  CHECK(rb.iterations < ra.iterations);
  MESSAGE("SQUAREM: " << ra.iterations << " EM steps, l = " << ra.log_likelihood << "; squarem-newton: "
                      << rb.iterations << " EM steps + " << rb.newton_steps << " Newton steps, l = "
                      << rb.log_likelihood);
}

TEST_CASE("bounds: EM and the direct MLE stay in the box, the fit is flagged at the bound (seed 31)") {
  const Sim s = simulate(experiment_a(), 1000, 31);
  for (const char* est : {"em", "mle"}) {
    CAPTURE(est);
    FitOptions fo;
    fo.n_experts = 2;
    fo.n_starts = 2;
    fo.estimator = est;
    fo.em.bounds.gate_slope = 10;  // the truth has beta1 = 25: the bound binds
    fo.em.bounds.nu_max = 1;
    const FitResult r = fit(s.X, s.y, fo);
    const Box box = fo.em.bounds.box(r.model);
    CHECK(box.contains(r.model.flat_params()));
    CHECK(arma::abs(r.model.gating().params()).max() <= 10 + 1e-9);
    bool slope_at_bound = false;
    for (const auto& name : r.certificate.at_bound) slope_at_bound |= name.find("beta1") != std::string::npos;
    CHECK(slope_at_bound);
    if (std::string(est) == "em") {
      CHECK(r.em.max_decrease <= 1e-9 * std::abs(r.log_likelihood));
      CHECK(r.certificate.certified);  // the constrained optimum: projected score
    }
  }
}

TEST_CASE("bad bounds and a start outside them are clear errors") {
  ParameterBounds b;
  b.nu_min = 2;
  b.nu_max = 1;
  CHECK_THROWS_WITH_AS(b.validate(), doctest::Contains("--nu-min"), InvalidArgument);
  b = {};
  b.gate_slope = -1;
  CHECK_THROWS_WITH_AS(b.validate(), doctest::Contains("--bound-gate-slope"), InvalidArgument);
  b = {};
  b.expert = std::nan("");
  CHECK_THROWS_AS(b.validate(), InvalidArgument);
  CHECK_THROWS_AS(ParameterBounds::from_json(json{{"gate_slop", 1}}, "settings[0].bounds"), InvalidArgument);

  const Sim s = simulate(experiment_a(), 200, 32);
  FitOptions fo;
  fo.n_experts = 2;
  fo.n_starts = 1;
  fo.init.kind = InitKind::near_truth;
  fo.em.bounds.gate_slope = 5;  // the truth's beta1 = 25 is outside
  const GaussianMoE truth = experiment_a();
  CHECK_THROWS_WITH_AS(fit(s.X, s.y, fo, &truth), doctest::Contains("the bounds exclude the start"), InvalidArgument);
}

TEST_CASE("constant response: the log-likelihood never decreases and the fit says what it found") {
  arma::mat X = arma::linspace<arma::rowvec>(0, 1, 50);
  arma::rowvec y(50, arma::fill::value(2.0));
  FitOptions fo;
  fo.n_experts = 2;
  fo.n_starts = 1;
  const FitResult r = fit(X, y, fo);
  CHECK(r.em.max_decrease <= 1e-9 * std::max(1.0, std::abs(r.log_likelihood)));
  CHECK(!r.certificate.floored.empty());
  CHECK(!r.certificate.warnings.empty());
}

TEST_CASE("fewer observations than parameters is flagged") {
  const Sim s = simulate(experiment_a(), 6, 33);  // k = 3: 3*2 gate - 2 + 3*2 + 3 = 13 parameters
  FitOptions fo;
  fo.n_experts = 3;
  fo.n_starts = 1;
  fo.em.max_iter = 50;
  const FitResult r = fit(s.X, s.y, fo);
  CHECK(r.certificate.underdetermined);
  CHECK(r.certificate.flags().find("underdetermined") != std::string::npos);
}

TEST_CASE("near-truth starts of an over-fitted model try every way of splitting the true atoms") {
  // Unperturbed near-truth starts (scales 0): each has the truth's density, and the
  // extra atoms copy the true atoms of the start's split pattern.
  const GaussianMoE truth = experiment_a();  // k* = 2
  const Sim s = simulate(truth, 300, 34);    // seed 34
  const double ll_truth = truth.log_likelihood(s.X, s.y);
  for (std::size_t k : {3, 4}) {
    FitOptions fo;
    fo.n_experts = k;
    fo.init.kind = InitKind::near_truth;
    fo.init.gate_scale = fo.init.expert_scale = 0;
    std::set<std::vector<std::size_t>> seen;
    const std::size_t patterns = k == 3 ? 2 : 4;
    for (std::size_t r = 0; r < patterns + 1; ++r) {
      CAPTURE(k);
      CAPTURE(r);
      Rng rng(35);
      const GaussianMoE m = initial_model(s.X, s.y, fo, rng, &truth, r);
      CHECK(m.log_likelihood(s.X, s.y) == Approx(ll_truth).epsilon(1e-7));
      std::vector<std::size_t> pattern;  // the true atom each extra atom copies
      for (std::size_t e = 2; e < k; ++e) {
        std::size_t which = 99;
        for (std::size_t j = 0; j < 2; ++j)
          if (arma::approx_equal(m.eta().col(e), truth.eta().col(j), "absdiff", 1e-12)) which = j;
        pattern.push_back(which);
      }
      if (r == 0) CHECK(pattern == (k == 3 ? std::vector<std::size_t>{0} : std::vector<std::size_t>{0, 1}));  // cyclic
      if (r < patterns) CHECK(seen.insert(pattern).second);  // a new pattern
      else CHECK(seen.count(pattern) == 1);                   // then they repeat
    }
    CHECK(seen.size() == patterns);
  }
}

TEST_CASE("split starts: truth-free, each splits another atom of the (k-1)-expert fit; kmeans+split cycles") {
  const InitSpec c = InitSpec::parse("kmeans+split");
  CHECK(c.label() == "kmeans+split");
  CHECK(c.uses(InitKind::split));
  CHECK_FALSE(c.uses(InitKind::random));
  CHECK(c.kind_of_start(0) == InitKind::kmeans);
  CHECK(c.kind_of_start(3) == InitKind::split);
  CHECK(c.pattern_of_start(1) == 0);
  CHECK(c.pattern_of_start(3) == 1);
  CHECK(c.start_label(2) == "kmeans");
  CHECK(InitSpec::parse("split").kind == InitKind::split);
  CHECK_THROWS_AS(InitSpec::parse("kmeans+near-truth"), InvalidArgument);
  CHECK_THROWS_AS(InitSpec::parse("split+"), InvalidArgument);

  const GaussianMoE truth = experiment_a();  // k* = 2
  const Sim s = simulate(truth, 400, 36);    // seed 36
  FitOptions fo;
  fo.n_experts = 3;
  fo.n_starts = 2;
  fo.threads = 1;
  fo.init = InitSpec::parse("split");
  fo.init.gate_scale = fo.init.expert_scale = 0;  // unperturbed: the base's density exactly
  const GaussianMoE base = split_base_model(s.X, s.y, fo);
  REQUIRE(base.n_experts() == 2);
  // The base is the best of a 2-expert fit with one k-means start per split start (at least two).
  FitOptions bo = fo;
  bo.n_experts = 2;
  bo.init = InitSpec{};
  bo.seed = derive_seed(fo.seed, {0x5b117ULL, 2});
  CHECK(base.log_likelihood(s.X, s.y) == fit(s.X, s.y, bo).log_likelihood);
  const double ll_base = base.log_likelihood(s.X, s.y);
  for (std::size_t r = 0; r < 2; ++r) {
    CAPTURE(r);
    Rng rng(37);
    const GaussianMoE m = initial_model(s.X, s.y, fo, rng, nullptr, r, &base);
    CHECK(m.log_likelihood(s.X, s.y) == Approx(ll_base).epsilon(1e-9));
    CHECK(arma::approx_equal(m.eta().col(2), base.eta().col(r), "absdiff", 1e-12));  // start r doubles atom r
    Rng rng2(37);
    const GaussianMoE own = initial_model(s.X, s.y, fo, rng2, nullptr, r);  // fits its own base
    CHECK(arma::approx_equal(own.flat_params(), m.flat_params(), "absdiff", 0.0));
  }
  {  // a base of the wrong size is refused
    Rng rng(37);
    FitOptions f4 = fo;
    f4.n_experts = 4;
    CHECK_THROWS_AS(initial_model(s.X, s.y, f4, rng, nullptr, 0, &base), InvalidArgument);
  }
  // A fit with kmeans+split starts: the same numbers for 1 and 2 threads, each start labelled by its kind.
  fo.init = InitSpec::parse("kmeans+split");
  fo.n_starts = 4;
  const FitResult r1 = fit(s.X, s.y, fo);
  fo.threads = 2;
  const FitResult r2 = fit(s.X, s.y, fo);
  CHECK(r1.log_likelihood == r2.log_likelihood);
  CHECK(arma::approx_equal(r1.model.flat_params(), r2.model.flat_params(), "absdiff", 0.0));
  CHECK(r1.starts[1].init == "split");
  CHECK(r1.starts[2].init == "kmeans");
  for (const auto& st : r1.starts) CHECK(st.max_decrease <= 1e-8);
  fo.n_experts = 1;
  CHECK_THROWS_AS(fit(s.X, s.y, fo), InvalidArgument);
}

TEST_CASE("split starts of k >= 4 split a base fitted with kmeans+split itself, down to a two-expert base") {
  const GaussianMoE truth = experiment_a();  // k* = 2
  const Sim s = simulate(truth, 400, 40);    // seed 40
  FitOptions fo;
  fo.n_experts = 4;
  fo.n_starts = 6;  // 3 k-means, 3 split
  fo.threads = 1;
  fo.init = InitSpec::parse("kmeans+split");
  const GaussianMoE base = split_base_model(s.X, s.y, fo);
  REQUIRE(base.n_experts() == 3);
  // The documented options: kmeans+split with one split start per atom of its own
  // (two-expert) base, as many k-means starts, and the derived seed.
  FitOptions bo = fo;
  bo.n_experts = 3;
  bo.n_starts = 4;
  bo.seed = derive_seed(fo.seed, {0x5b117ULL, 3});
  const FitResult rb = fit(s.X, s.y, bo);
  CHECK(base.log_likelihood(s.X, s.y) == rb.log_likelihood);
  REQUIRE(rb.starts.size() == 4);
  CHECK(rb.starts[1].init == "split");
  CHECK(rb.starts[3].init == "split");
  // Its split starts split the best of two k-means starts of a two-expert fit.
  FitOptions b2 = bo;
  b2.n_experts = 2;
  b2.n_starts = 2;
  b2.init = InitSpec{};
  b2.seed = derive_seed(bo.seed, {0x5b117ULL, 2});
  const GaussianMoE base2 = split_base_model(s.X, s.y, bo);
  CHECK(base2.log_likelihood(s.X, s.y) == fit(s.X, s.y, b2).log_likelihood);
  // Each start of the base climbs from its start to no more than the base's maximum.
  for (const auto& st : rb.starts) {
    CHECK(st.objective >= st.objective_initial - 1e-8);
    CHECK(st.objective <= rb.log_likelihood + 1e-8);
  }
  // The fit itself: thread-count independent, EM monotone.
  const FitResult r1 = fit(s.X, s.y, fo);
  fo.threads = 2;
  const FitResult r2 = fit(s.X, s.y, fo);
  CHECK(arma::approx_equal(r1.model.flat_params(), r2.model.flat_params(), "absdiff", 0.0));
  for (const auto& st : r1.starts) CHECK(st.max_decrease <= 1e-8);
}

TEST_CASE("fit's k-means phase (one shared standardised copy) gives each start the start initial_model gives") {
  const GaussianMoE truth = experiment_a();
  const Sim s = simulate(truth, 500, 38);  // seed 38
  for (const char* init : {"kmeans", "random", "kmeans+split"}) {
    CAPTURE(init);
    FitOptions fo;
    fo.n_experts = 3;
    fo.n_starts = 4;
    fo.seed = 39;
    fo.threads = 2;
    fo.init = InitSpec::parse(init);
    fo.em.max_iter = 2;
    const FitResult r = fit(s.X, s.y, fo);
    const GaussianMoE base = split_base_model(s.X, s.y, fo);
    for (int st = 0; st < fo.n_starts; ++st) {
      CAPTURE(st);
      Rng rng(derive_seed(fo.seed, {static_cast<std::uint64_t>(st)}));
      const GaussianMoE m = initial_model(s.X, s.y, fo, rng, nullptr, static_cast<std::size_t>(st), &base);
      CHECK(r.starts[st].objective_initial == m.log_likelihood(s.X, s.y));
    }
  }
}
