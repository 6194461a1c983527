// tests/gating_conformance.hpp -- the conformance suite every gating family passes.
//
// One call per family and configuration:
//   MOERATE_GATING_CONFORMANCE("topk:K=2", /*k=*/3, /*d=*/2, /*seed=*/103);
// expands to a doctest TEST_CASE that checks, on random parameters and data
// drawn from the stated seed:
//   - the spec round-trips through family_json() and the registry describes it;
//   - log weights have no NaN/+inf and are normalised per observation
//     (regression-only gates such as sigmoid: log weights <= 0 instead);
//   - translation invariance when translation_invariant() (else a nonzero t1 is
//     refused), permute() reorders the rows of the log weights;
//   - parameters round-trip through the flat vector, through gate_json /
//     set_gate_json / extra_json, and through a whole GaussianMoE to_json /
//     from_json (also through the JSON text);
//   - log_weight_gradients_obs equals log_weights_vjp_obs with indicator C's;
//   - log_weights_vjp equals central finite differences of sum C log pi for a
//     random C (zero where log pi = -inf), relative 1e-6;
//   - m_step never lowers Q (with and without ridge) and q_after is Q at the result;
//   - invalid parameters, gate JSON and options throw InvalidArgument naming the problem.
// gating_recovery() is the exact-fitted recovery check used per Gaussian family.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <set>
#include <string>

#include "moerate/core/error.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/model/gating.hpp"
#include "moerate/gating/hierarchical_gating.hpp"
#include "moerate/model/model.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/rng.hpp"

namespace moerate_test {

using moerate::json;

inline arma::mat random_design(std::size_t d, std::size_t n, moerate::Rng& rng, double sd = 1.5) {
  arma::mat X(d, n);
  for (auto& v : X) v = rng.normal(0, sd);
  return X;
}

/// sum_ij C_ij log pi_ij with 0 * (-inf) = 0.
/// Central-difference points for coordinate q: {theta - h e_q, theta + h e_q, h}, with
/// h = 1e-5 max(1, |theta_q|).
struct CentralPair {
  arma::vec minus, plus;
  double step;
};
inline CentralPair central_pair(const arma::vec& theta, std::size_t q) {
  CentralPair c{theta, theta, 1e-5 * std::max(1.0, std::abs(theta[q]))};
  c.minus[q] -= c.step;
  c.plus[q] += c.step;
  return c;
}

inline double weighted_log_weights(const moerate::Gating& g, const arma::mat& X, const arma::mat& C) {
  const arma::mat L = g.log_weights(X);
  double s = 0;
  for (std::size_t i = 0; i < L.n_elem; ++i)
    if (C[i] != 0) s += C[i] * L[i];
  return s;
}

/// Entries where log pi = -inf zeroed (they carry no gradient and make Q -inf).
inline arma::mat mask_impossible(const arma::mat& C, const arma::mat& L) {
  arma::mat M = C;
  for (std::size_t i = 0; i < L.n_elem; ++i)
    if (!std::isfinite(L[i])) M[i] = 0;
  return M;
}

/// Largest absolute difference between two log-weight matrices; equal -inf counts as 0.
inline double log_weight_gap(const arma::mat& A, const arma::mat& B) {
  REQUIRE(arma::size(A) == arma::size(B));
  double m = 0;
  for (std::size_t i = 0; i < A.n_elem; ++i) {
    if (std::isinf(A[i]) || std::isinf(B[i])) {
      if (A[i] != B[i]) return moerate::kInf;
      continue;
    }
    m = std::max(m, std::abs(A[i] - B[i]));
  }
  return m;
}

/// A random permutation of k experts; for hierarchical gates one that maps groups to groups.
inline std::vector<std::size_t> random_order(const moerate::Gating& g, moerate::Rng& rng) {
  const std::size_t k = g.n_experts();
  std::size_t m = 1;
  if (auto* h = dynamic_cast<const moerate::HierarchicalGating*>(&g)) m = h->group_size();
  std::vector<std::size_t> groups(k / m), within(m), order(k);
  std::iota(groups.begin(), groups.end(), 0);
  std::iota(within.begin(), within.end(), 0);
  std::shuffle(groups.begin(), groups.end(), rng.engine());
  for (std::size_t q = 0; q < k / m; ++q) {
    std::shuffle(within.begin(), within.end(), rng.engine());
    for (std::size_t j = 0; j < m; ++j) order[q * m + j] = groups[q] * m + within[j];
  }
  return order;
}

/// A random model using gating g (linear experts); regression kind for regression-only gates.
inline moerate::GaussianMoE random_model(const moerate::Gating& g, moerate::Rng& rng) {
  auto fam = moerate::make_expert_family(json{{"family", "linear"}}, g.dim());
  arma::mat eta(fam->n_params(), g.n_experts());
  for (auto& v : eta) v = rng.normal();
  arma::vec nu(g.n_experts());
  for (auto& v : nu) v = 0.1 + rng.uniform();
  moerate::GaussianMoE m(g.clone(), fam, eta, nu,
                         g.regression_only() ? moerate::ModelKind::regression : moerate::ModelKind::gaussian);
  if (g.regression_only()) m.set_noise_variance(0.25);
  return m;
}

/// Runs every conformance check on gating `spec_text` with k experts in dimension d.
inline void gating_conformance(const std::string& spec_text, std::size_t k, std::size_t d, std::uint64_t seed) {
  using namespace moerate;
  using doctest::Approx;
  INFO("gating " << spec_text << ", k = " << k << ", d = " << d << ", seed " << seed);
  Rng rng(seed);
  const json spec = parse_family_spec(spec_text);
  auto g = make_gating(spec, k, d);
  const std::size_t n = 40, p = g->n_params();
  const arma::mat X = random_design(d, n, rng);
  arma::vec theta(p);
  for (auto& v : theta) v = rng.normal(0, 0.8);
  g->set_params(theta);

  SUBCASE("spec, registry and names") {
    CHECK(g->n_experts() == k);
    CHECK(g->dim() == d);
    CHECK(gating_registry().count(g->family()) == 1);
    CHECK_FALSE(gating_registry().at(g->family()).description.empty());
    CHECK_FALSE(g->description().empty());
    CHECK(make_gating(g->family_json(), k, d)->family_json() == g->family_json());
    const auto names = g->param_names();
    CHECK(names.size() == p);
    CHECK(std::set<std::string>(names.begin(), names.end()).size() == p);
  }

  SUBCASE("log weights are finite or -inf and normalised per observation") {
    const arma::mat L = g->log_weights(X);
    REQUIRE(L.n_rows == k);
    REQUIRE(L.n_cols == n);
    CHECK_FALSE(L.has_nan());
    CHECK(arma::all(arma::vectorise(L) < kInf));
    if (g->regression_only()) {
      CHECK(arma::all(arma::vectorise(L) <= 0));
    } else {
      const arma::rowvec lse = log_sum_exp_cols(L);
      for (std::size_t j = 0; j < n; ++j) CHECK(lse[j] == Approx(0.0).epsilon(1e-12).scale(1.0));
    }
  }

  SUBCASE("translation invariance where it holds") {
    const arma::mat L = g->log_weights(X);
    arma::vec t1(d);
    for (auto& v : t1) v = rng.normal();
    const double t0 = rng.normal();
    auto h = g->clone();
    if (g->translation_invariant()) {
      h->translate(t0, t1);
      CHECK(log_weight_gap(h->log_weights(X), L) < 1e-10);
    } else {
      CHECK_THROWS_AS(h->translate(t0, t1), InvalidArgument);
    }
  }

  SUBCASE("flat vector round trip") {
    CHECK(arma::approx_equal(g->params(), theta, "absdiff", 1e-13));  // log(exp(log tau))
    auto h = make_gating(spec, k, d);
    h->set_params(g->params());
    CHECK(log_weight_gap(h->log_weights(X), g->log_weights(X)) == 0.0);
    auto c = g->clone();
    CHECK(arma::approx_equal(c->params(), theta, "absdiff", 1e-13));
  }

  SUBCASE("gate_json / extra_json round trip") {
    auto h = make_gating(spec, k, d);
    const json extra = g->extra_json();
    if (!extra.empty()) h->set_extra_json(extra, "gating_state");
    for (std::size_t i = 0; i < k; ++i) h->set_gate_json(i, g->gate_json(i), "experts[" + std::to_string(i) + "].gate");
    h->normalise();
    CHECK(log_weight_gap(h->log_weights(X), g->log_weights(X)) < 1e-12);
    CHECK(arma::approx_equal(h->params(), g->params(), "absdiff", 1e-12));
    for (std::size_t i = 0; i < k; ++i) {
      CHECK(h->atom_log_weight(i) == Approx(g->atom_log_weight(i)).epsilon(1e-12));
      CHECK(arma::approx_equal(h->atom_location(i), g->atom_location(i), "absdiff", 1e-12));
    }
  }

  SUBCASE("whole model to_json / from_json round trip") {
    const GaussianMoE m = random_model(*g, rng);
    const json j = m.to_json();
    const GaussianMoE back = GaussianMoE::from_json(json::parse(j.dump()), "round trip");
    CHECK(back.gating().family_json() == g->family_json());
    CHECK(arma::approx_equal(back.flat_params(), m.flat_params(), "absdiff", 1e-12));
    CHECK(log_weight_gap(back.log_weights(X), m.log_weights(X)) < 1e-12);
    CHECK(back.to_json().dump() == j.dump());
  }

  SUBCASE("permute reorders the experts") {
    const arma::mat L = g->log_weights(X);
    const auto order = random_order(*g, rng);
    auto h = g->clone();
    h->permute(order);
    const arma::mat Lp = h->log_weights(X);
    arma::mat expect(k, n);
    for (std::size_t i = 0; i < k; ++i) expect.row(i) = L.row(order[i]);
    CHECK(log_weight_gap(Lp, expect) < 1e-10);
    CHECK_THROWS_AS(h->permute(std::vector<std::size_t>(k + 1, 0)), InvalidArgument);
  }

  SUBCASE("log_weights_vjp matches central differences for a random C") {
    arma::mat C(k, n);
    for (auto& v : C) v = rng.uniform(-1, 2);  // any C, not only responsibilities
    C = mask_impossible(C, g->log_weights(X));
    const arma::vec grad = g->log_weights_vjp(X, C);
    REQUIRE(grad.n_elem == p);
    auto h = g->clone();
    for (std::size_t q = 0; q < p; ++q) {
      const CentralPair c = central_pair(theta, q);
      h->set_params(c.plus);
      const double fp = weighted_log_weights(*h, X, C);
      h->set_params(c.minus);
      const double fm = weighted_log_weights(*h, X, C);
      INFO("parameter " << g->param_names()[q]);
      CHECK(grad[q] == Approx((fp - fm) / (2 * c.step)).epsilon(1e-6));
    }
  }

  SUBCASE("log_weight_gradients_obs matches central differences of log pi_j(x_i)") {
    const auto G = g->log_weight_gradients_obs(X);
    REQUIRE(G.size() == k);
    for (const auto& Gj : G) {
      REQUIRE(Gj.n_rows == p);
      REQUIRE(Gj.n_cols == n);
    }
    const arma::mat L = g->log_weights(X);
    auto h = g->clone();
    for (std::size_t q = 0; q < p; ++q) {
      const CentralPair c = central_pair(theta, q);
      h->set_params(c.plus);
      const arma::mat Lp = h->log_weights(X);
      h->set_params(c.minus);
      const arma::mat D = (Lp - h->log_weights(X)) / (2 * c.step);
      INFO("parameter " << g->param_names()[q]);
      // Where pi_j = 0 (a top-K gate's unselected expert), or a selection changes within
      // the step, there is no derivative to compare.
      for (std::size_t j = 0; j < k; ++j)
        for (std::size_t i = 0; i < n; ++i)
          if (std::isfinite(L(j, i)) && std::isfinite(D(j, i)) && std::isfinite(Lp(j, i)))
            CHECK(G[j](q, i) == Approx(D(j, i)).epsilon(1e-6).scale(1.0));
    }
  }

  SUBCASE("m_step never lowers Q") {
    arma::mat R(k, n);
    for (auto& v : R) v = rng.uniform();
    R = mask_impossible(R, g->log_weights(X));
    if (!g->regression_only()) R.each_row() /= arma::sum(R, 0);
    for (double ridge : {0.0, 0.1}) {
      auto h = g->clone();
      GateMStepOptions opt;
      opt.ridge = ridge;
      const double q0 = h->q_value(X, R, ridge);
      const GateMStepResult r1 = h->m_step(X, R, opt);
      CHECK(r1.q_before == Approx(q0).epsilon(1e-14));
      CHECK(r1.q_after >= r1.q_before);
      CHECK(h->q_value(X, R, ridge) == Approx(r1.q_after).epsilon(1e-12));
      const GateMStepResult r2 = h->m_step(X, R, opt);
      CHECK(r2.q_after >= r2.q_before);
      CHECK(r2.q_before >= r1.q_after - 1e-12 * std::abs(r1.q_after));
      CHECK(h->params().is_finite());
    }
    auto h = g->clone();
    h->init_from_responsibilities(X, R);
    CHECK(h->params().is_finite());
  }

  SUBCASE("invalid parameters, JSON and options are rejected") {
    auto h = g->clone();
    CHECK_THROWS_AS(h->set_params(arma::vec(p + 1, arma::fill::zeros)), InvalidArgument);
    if (p > 0) {
      arma::vec bad = theta;
      bad[p - 1] = arma::datum::nan;
      CHECK_THROWS_AS(h->set_params(bad), InvalidArgument);
      bad[p - 1] = kInf;
      CHECK_THROWS_AS(h->set_params(bad), InvalidArgument);
    }
    const std::string where = "experts[0].gate";
    auto expect_error = [&](const json& gate, const std::string& needle) {
      INFO("gate " << gate.dump());
      try {
        h->set_gate_json(0, gate, where);
        FAIL("accepted an invalid gate");
      } catch (const InvalidArgument& e) {
        const std::string msg = e.what();
        CHECK(msg.find(where) != std::string::npos);
        CHECK(msg.find(needle) != std::string::npos);
      }
    };
    const json good = g->gate_json(0);
    expect_error(json::array(), where);
    expect_error(json::object(), "beta0");
    json g1 = good;
    g1["beta0"] = "zero";
    expect_error(g1, where + ".beta0");
    for (const auto& [key, v] : good.items()) {
      if (!v.is_array()) continue;
      json g2 = good;
      g2[key].push_back(1.0);  // wrong dimension
      expect_error(g2, where + "." + key);
      json g3 = good;
      g3[key][0] = nullptr;
      expect_error(g3, where + "." + key + "[0]");
      json g4 = good;
      g4.erase(key);
      expect_error(g4, key);
    }
    // Unknown options must be refused.
    {
      json bad_spec = spec;
      bad_spec["no_such_option"] = 1;
      CHECK_THROWS_AS(make_gating(bad_spec, k, d), InvalidArgument);
    }
    if (!g->extra_json().empty()) {
      CHECK_THROWS_AS(h->set_extra_json(json::array(), "gating_state"), InvalidArgument);
      json extra = g->extra_json();
      extra["no_such_key"] = 1;
      CHECK_THROWS_AS(h->set_extra_json(extra, "gating_state"), InvalidArgument);
    }
  }
}

/// All numbers of a JSON value in document order (gate objects, gating_state).
inline void collect_numbers(const json& j, std::vector<double>& out) {
  if (j.is_number()) out.push_back(j.get<double>());
  else if (j.is_array() || j.is_object())
    for (const auto& v : j) collect_numbers(v, out);
}

struct RecoveryTolerance {
  double gate = 0.3;      // absolute, every gate number (gate JSON and gating_state)
  double expert = 0.1;    // absolute, every expert parameter
  double variance = 0.2;  // relative
};

/// Order of fitted experts matching the truth: match_experts, or for hierarchical
/// gates the best group-respecting permutation on (eta, nu).
inline std::vector<std::size_t> match_for_recovery(const moerate::GaussianMoE& fit, const moerate::GaussianMoE& truth) {
  using namespace moerate;
  auto* h = dynamic_cast<const HierarchicalGating*>(&fit.gating());
  if (!h) return match_experts(fit, truth);
  const std::size_t k = truth.n_experts();
  std::vector<std::size_t> perm(k), best;
  std::iota(perm.begin(), perm.end(), 0);
  double best_cost = kInf;
  do {
    bool ok = true;
    for (std::size_t i = 0; i < k && ok; ++i)
      ok = perm[i] / h->group_size() == perm[(i / h->group_size()) * h->group_size()] / h->group_size();
    if (!ok) continue;
    double c = 0;
    for (std::size_t i = 0; i < k; ++i)
      c += arma::accu(arma::square(fit.eta().col(perm[i]) - truth.eta().col(i))) +
           std::pow(fit.nu()[perm[i]] - truth.nu()[i], 2);
    if (c < best_cost) best_cost = c, best = perm;
  } while (std::next_permutation(perm.begin(), perm.end()));
  return best;
}

/// Simulate n observations (design N(0, x_sd^2) in d dimensions) from `truth_json`,
/// fit with `opt` (gating spec and k from the truth), match labels and check every
/// parameter against the truth within `tol`. Returns the fit for further checks.
inline moerate::FitResult gating_recovery(const json& truth_json, std::size_t n, std::uint64_t seed,
                                          moerate::FitOptions opt, const RecoveryTolerance& tol,
                                          double x_sd = 1.0) {
  using namespace moerate;
  const GaussianMoE truth = GaussianMoE::from_json(truth_json, "recovery truth");
  INFO("recovery of " << truth.gating().family_json().dump() << ", n = " << n << ", seed " << seed);
  Rng rng(seed);
  const arma::mat X = random_design(truth.dim(), n, rng, x_sd);
  const arma::rowvec y = truth.simulate(X, rng);
  opt.n_experts = truth.n_experts();
  opt.gating = truth.gating().family_json();
  opt.seed = seed;
  FitResult r = fit(X, y, opt, &truth);
  CHECK(r.em.max_decrease <= 1e-8 * std::abs(r.log_likelihood));
  CHECK(r.log_likelihood >= truth.log_likelihood(X, y) - 1e-6);  // the MLE beats the truth
  GaussianMoE m = r.model;
  m.permute(match_for_recovery(m, truth));
  const json fj = m.to_json(), tj = truth.to_json();
  for (std::size_t i = 0; i < truth.n_experts(); ++i) {
    INFO("expert " << i << ": fitted " << fj["experts"][i].dump() << " vs true " << tj["experts"][i].dump());
    std::vector<double> fg, tg, fe, te;
    collect_numbers(fj["experts"][i]["gate"], fg);
    collect_numbers(tj["experts"][i]["gate"], tg);
    REQUIRE(fg.size() == tg.size());
    for (std::size_t u = 0; u < fg.size(); ++u) CHECK(std::abs(fg[u] - tg[u]) < tol.gate);
    for (std::size_t u = 0; u < truth.eta().n_rows; ++u)
      CHECK(std::abs(m.eta()(u, i) - truth.eta()(u, i)) < tol.expert);
    CHECK(std::abs(m.nu()[i] / truth.nu()[i] - 1) < tol.variance);
  }
  if (tj.contains("gating_state")) {
    INFO("gating_state: fitted " << fj["gating_state"].dump() << " vs true " << tj["gating_state"].dump());
    std::vector<double> fs, ts;
    collect_numbers(fj["gating_state"], fs);
    collect_numbers(tj["gating_state"], ts);
    REQUIRE(fs.size() == ts.size());
    for (std::size_t u = 0; u < fs.size(); ++u) CHECK(std::abs(fs[u] - ts[u]) < tol.gate);
  }
  return r;
}

}  // namespace moerate_test

#define MOERATE_GATING_CONFORMANCE(SPEC, K, D, SEED)                                          \
  TEST_CASE("gating conformance: " SPEC " (k = " #K ", d = " #D ", seed " #SEED ")") {      \
    ::moerate_test::gating_conformance(SPEC, K, D, SEED);                                    \
  }
