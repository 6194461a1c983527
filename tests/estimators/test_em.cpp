// EM properties: monotone log-likelihood, k = 1 equals weighted least squares,
// the MLE is a fixed point, stop reasons are honest.
#include <doctest/doctest.h>

#include "fixtures.hpp"

#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/estimators/em.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/experts/linear_expert.hpp"

using namespace moerate;
using namespace moerate::fixtures;
using doctest::Approx;


TEST_CASE("EM log-likelihood never decreases (seeds 1..12, linear and tanh experts, k = 2 and 3)") {
  for (const bool use_tanh : {false, true}) {
    const GaussianMoE truth = use_tanh ? tanh_model() : experiment_a();
    for (std::uint64_t seed = 1; seed <= 12; ++seed) {
      const Sim s = simulate(truth, 400, seed);
      for (std::size_t k : {2u, 3u}) {
        FitOptions fo;
        fo.n_experts = k;
        fo.expert = truth.experts().family_json();
        fo.init.kind = seed % 2 ? InitKind::random : InitKind::kmeans;
        Rng rng(derive_seed(seed, {k}));
        GaussianMoE m = initial_model(s.X, s.y, fo, rng, nullptr);
        for (Acceleration acc : {Acceleration::none, Acceleration::squarem}) {
          GaussianMoE mm = m;
          EMOptions eo;
          eo.max_iter = 150;
          eo.abs_tol = 0;  // never converged: run every iteration
          eo.accelerate = acc;
          const EMResult r = run_em(mm, s.X, s.y, eo);
          CAPTURE(seed);
          CAPTURE(k);
          CAPTURE(use_tanh);
          CAPTURE(acceleration_name(acc));
          REQUIRE(r.trace.size() >= 2);
          for (std::size_t t = 1; t < r.trace.size(); ++t)
            CHECK(r.trace[t] >= r.trace[t - 1] - 1e-8 * std::abs(r.trace[t - 1]));
          CHECK(r.max_decrease <= 1e-8 * std::abs(r.trace.back()));
          CHECK(r.stop_reason == StopReason::max_iter);
          CHECK(r.iterations == 150);
        }
      }
    }
  }
}

TEST_CASE("k = 1: EM equals closed-form least squares in one iteration (seed 3)") {
  const Sim s = simulate(experiment_a(), 500, 3);
  FitOptions fo;
  fo.n_experts = 1;
  fo.n_starts = 1;
  const FitResult r = fit(s.X, s.y, fo);
  const arma::vec ols = weighted_least_squares(s.X, s.y, arma::rowvec(s.y.n_elem, arma::fill::ones));
  CHECK(r.model.eta()(0, 0) == Approx(ols[0]).epsilon(1e-10));
  CHECK(r.model.eta()(1, 0) == Approx(ols[1]).epsilon(1e-10));
  const arma::rowvec res = s.y - (ols[0] * s.X.row(0) + ols[1]);
  CHECK(r.model.nu()[0] == Approx(arma::mean(arma::square(res))).epsilon(1e-10));
  CHECK(r.stop_reason == StopReason::converged);
}

TEST_CASE("the MLE is a fixed point of EM; the truth nearly is at large n (seed 8)") {
  const GaussianMoE truth = experiment_a();
  const Sim s = simulate(truth, 20000, 8);
  GaussianMoE m = truth;
  EMOptions eo;
  eo.tol = 1e-13;
  eo.max_iter = 5000;
  const EMResult r = run_em(m, s.X, s.y, eo);
  CHECK(r.stop_reason == StopReason::converged);
  // Truth close to the MLE: within a few standard errors (~1/sqrt(n) scaled).
  CHECK(std::abs(m.eta()(0, 0) - (-20)) < 0.5);
  CHECK(std::abs(m.nu()[1] - 0.16) < 0.02);
  // One more iteration from the MLE changes nothing.
  GaussianMoE again = m;
  EMOptions one;
  one.max_iter = 1;
  one.tol = 0;
  run_em(again, s.X, s.y, one);
  CHECK(arma::approx_equal(again.flat_params(), m.flat_params(), "reldiff", 1e-5));
}

TEST_CASE("stop reasons are honest") {
  const Sim s = simulate(experiment_a(), 300, 4);
  FitOptions fo;
  fo.n_starts = 1;
  fo.em.max_iter = 2;
  fo.em.tol = 0;
  const FitResult capped = fit(s.X, s.y, fo);
  CHECK(capped.stop_reason == StopReason::max_iter);
  CHECK(capped.iterations == 2);
  fo.em.max_iter = 0;
  CHECK(fit(s.X, s.y, fo).stop_reason == StopReason::not_run);
}

TEST_CASE("restarts: same seed, same result, whatever the thread count (seed 21)") {
  const Sim s = simulate(experiment_a(), 1000, 21);
  FitOptions fo;
  fo.n_starts = 4;
  fo.seed = 21;
  fo.threads = 1;
  const FitResult a = fit(s.X, s.y, fo);
  fo.threads = 2;
  const FitResult b = fit(s.X, s.y, fo);
  CHECK(arma::approx_equal(a.model.flat_params(), b.model.flat_params(), "absdiff", 0.0));
  CHECK(a.log_likelihood == b.log_likelihood);
  REQUIRE(a.starts.size() == 4);
  for (std::size_t i = 0; i < 4; ++i) CHECK(a.starts[i].objective == b.starts[i].objective);
}

TEST_CASE("restarts: a start equal to an earlier one is run once, and its copied result is what running it gives (seed 22)") {
  // Experiment A over-fitted (k = 3), linear experts: k-means from different
  // seeds ends in few partitions, numbered by first observation, and a linear
  // family draws nothing after them, so several of 6 starts coincide.
  const Sim s = simulate(experiment_a(), 2000, 22);
  FitOptions fo;
  fo.n_experts = 3;
  fo.n_starts = 6;
  fo.seed = 22;
  fo.init.kind = InitKind::kmeans;
  const FitResult r = fit(s.X, s.y, fo);
  REQUIRE(r.starts.size() == 6);
  int same = 0;
  for (const auto& st : r.starts) {
    if (st.same_as < 0) continue;
    ++same;
    INFO("start " << st.index << " = start " << st.same_as);
    REQUIRE(st.same_as < st.index);
    const StartSummary& t = r.starts[static_cast<std::size_t>(st.same_as)];
    CHECK(t.same_as < 0);
    CHECK(st.objective == t.objective);
    CHECK(st.iterations == t.iterations);
    // Independently: build start st.index's own initial model and run it.
    Rng rng(derive_seed(fo.seed, {static_cast<std::uint64_t>(st.index)}));
    GaussianMoE m = initial_model(s.X, s.y, fo, rng, nullptr, static_cast<std::size_t>(st.index));
    CHECK(m.log_likelihood(s.X, s.y) == st.objective_initial);
    const EMResult e = run_em(m, s.X, s.y, fo.em);
    CHECK(e.log_likelihood == st.objective);
    CHECK(e.iterations == st.iterations);
  }
  MESSAGE(same << " of 6 k-means starts were the same as an earlier one");
  CHECK(same >= 1);
  // Starts that differ are not merged: every start not copied has its own initial point.
  for (std::size_t a = 0; a < 6; ++a)
    for (std::size_t b = a + 1; b < 6; ++b)
      if (r.starts[a].same_as < 0 && r.starts[b].same_as < 0)
        CHECK(r.starts[a].objective_initial != r.starts[b].objective_initial);
}

namespace {

/// The headline study's two-layer truth (tanh experts without bias; x ~ U[-1, 1]).
GaussianMoE headline_tanh_truth() {
  return GaussianMoE::from_json(nlohmann::json::parse(R"({
    "gating": {"family": "softmax"}, "expert_family": {"family": "ffn", "activation": "tanh", "bias": false},
    "experts": [{"gate": {"beta0": 0, "beta1": [3]}, "expert": {"a": [3], "c": 2}, "variance": 0.09},
                {"gate": {"beta0": 0, "beta1": [0]}, "expert": {"a": [1], "c": -1.5}, "variance": 0.16}]})"),
                                "headline tanh truth");
}

/// The headline study's bounds (its over-fitted settings).
ParameterBounds headline_bounds() {
  return ParameterBounds::from_json(
      nlohmann::json::parse(R"({"gate_intercept": 30, "gate_slope": 50, "expert": 50, "nu_min": 1e-4, "nu_max": 100})"),
      "headline bounds");
}

}  // namespace

TEST_CASE("run_em_until: a run paused at any EM steps ends in every bit as run_em (tanh, k = 3 over-fitted, seeds 6 and 23)") {
  // An over-fitted two-layer fit: SQUAREM extrapolations, Newton polishes and
  // many steps, so the pauses fall inside every part of the acceleration's state.
  const GaussianMoE truth = headline_tanh_truth();
  const Sim s = simulate(truth, 2000, 6, "uniform:-1,1");
  FitOptions fo;
  fo.n_experts = 3;
  fo.expert = truth.experts().family_json();
  fo.init.kind = InitKind::kmeans;
  fo.em.bounds = headline_bounds();
  Rng rng(derive_seed(23, {0}));
  const GaussianMoE start = initial_model(s.X, s.y, fo, rng, nullptr);
  GaussianMoE whole = start;
  const EMResult ref = run_em(whole, s.X, s.y, fo.em);
  REQUIRE(ref.iterations > 40);
  REQUIRE(ref.newton_calls > 1);
  for (const int every : {1, 4, 7, 15, 32}) {
    CAPTURE(every);
    GaussianMoE m = start;
    EMRunState state;
    int calls = 0;
    for (int pause = every; !run_em_until(m, s.X, s.y, fo.em, state, pause); pause += every) ++calls;
    CHECK(calls >= ref.iterations / std::max(every, 3) - 1);  // a SQUAREM cycle makes 3 steps
    const EMResult& r = state.res;
    CHECK(r.stop_reason == ref.stop_reason);
    CHECK(r.iterations == ref.iterations);
    CHECK(r.cycles == ref.cycles);
    CHECK(r.newton_steps == ref.newton_steps);
    CHECK(r.newton_calls == ref.newton_calls);
    CHECK(r.log_likelihood == ref.log_likelihood);
    CHECK(r.trace == ref.trace);
    CHECK(r.floored_variances == ref.floored_variances);
    CHECK(arma::approx_equal(m.flat_params(), whole.flat_params(), "absdiff", 0.0));
    CHECK(run_em_until(m, s.X, s.y, fo.em, state, 0));  // finished: stays finished
  }
}

TEST_CASE("pruning: dominated starts stop early, the fit and every other start are the same in every bit (seeds 6, 1)") {
  // The headline study's two-layer truth (tanh experts without bias), k = 3
  // fitted, x ~ U[-1, 1]: starts often crawl to worse maxima.
  const GaussianMoE truth = headline_tanh_truth();
  int pruned = 0;
  for (const std::uint64_t seed : {6u, 1u}) {
    CAPTURE(seed);
    const Sim s = simulate(truth, 2000, seed, "uniform:-1,1");
    FitOptions fo;
    fo.n_experts = 3;
    fo.expert = truth.experts().family_json();
    fo.init = InitSpec::parse("kmeans+split");
    fo.n_starts = 4;
    fo.seed = seed;
    fo.threads = 1;
    fo.em.bounds = headline_bounds();
    REQUIRE(fo.prune_factor == 30);  // the default
    const FitResult p = fit(s.X, s.y, fo);
    fo.prune_factor = 0;
    const FitResult all = fit(s.X, s.y, fo);
    CHECK(p.log_likelihood == all.log_likelihood);
    CHECK(p.best_start == all.best_start);
    CHECK(arma::approx_equal(p.model.flat_params(), all.model.flat_params(), "absdiff", 0.0));
    REQUIRE(p.starts.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
      CAPTURE(i);
      const StartSummary &a = p.starts[i], &b = all.starts[i];
      CHECK(b.stop_reason != StopReason::dominated);
      if (a.stop_reason != StopReason::dominated) {
        CHECK(a.objective == b.objective);
        CHECK(a.iterations == b.iterations);
        continue;
      }
      ++pruned;
      CHECK(a.objective < p.log_likelihood - kPruneMinGap);  // trailed the best at its checkpoint
      CHECK(a.objective <= b.objective);                      // EM would only have climbed further
      CHECK(a.iterations >= 2 * kFirstCheckpoint);            // never at the first checkpoint
      CHECK(a.iterations < b.iterations);
    }
    // The decisions are made at the checkpoints, not by timing: two threads give the same fit.
    fo.prune_factor = 30;
    fo.threads = 2;
    const FitResult p2 = fit(s.X, s.y, fo);
    CHECK(p2.log_likelihood == p.log_likelihood);
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(p2.starts[i].objective == p.starts[i].objective);
      CHECK(p2.starts[i].stop_reason == p.starts[i].stop_reason);
    }
  }
  MESSAGE(pruned << " of 8 starts stopped early as dominated");
  CHECK(pruned >= 2);
}

TEST_CASE("gate steps: one Newton step per M-step (the default) and Newton to convergence reach the same certified MLE (seeds 1..4)") {
  // A generalised EM has the fixed points of EM; at an exact-fitted optimum both
  // stop at the same point, to far below the statistical error.
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    CAPTURE(seed);
    const Sim s = simulate(experiment_a(), 2000, seed);
    FitOptions fo;
    fo.n_starts = 2;
    fo.seed = seed;
    fo.threads = 1;
    REQUIRE(fo.em.gate.max_steps == 0);
    const FitResult one = fit(s.X, s.y, fo);
    fo.em.gate.max_steps = 20;
    const FitResult full = fit(s.X, s.y, fo);
    CHECK(one.certificate.certified);
    CHECK(full.certificate.certified);
    CHECK(one.log_likelihood == Approx(full.log_likelihood).epsilon(1e-12));
    // The same fitted density (labels may differ): per-observation log densities
    // and the regression function agree.
    const double dl = arma::abs(one.model.log_likelihood_obs(s.X, s.y) - full.model.log_likelihood_obs(s.X, s.y)).max();
    const double dm = arma::abs(one.model.regression_function(s.X) - full.model.regression_function(s.X)).max();
    MESSAGE("max |log density difference| " << dl << ", max |regression function difference| " << dm);
    CHECK(dl < 1e-5);
    CHECK(dm < 1e-4);
    for (std::size_t t = 1; t < one.em.trace.size(); ++t) CHECK(one.em.trace[t] >= one.em.trace[t - 1] - 1e-9);
  }
  GateMStepOptions bad;
  bad.max_steps = -1;
  CHECK_THROWS_AS(bad.validate(), InvalidArgument);
}

TEST_CASE("bad configurations are errors, not crashes") {
  const Sim s = simulate(experiment_a(), 5, 1);
  FitOptions fo;
  fo.n_experts = 6;  // k > n
  CHECK_THROWS_AS(fit(s.X, s.y, fo), InvalidArgument);
  fo.n_experts = 2;
  fo.n_starts = 0;
  CHECK_THROWS_AS(fit(s.X, s.y, fo), InvalidArgument);
}
