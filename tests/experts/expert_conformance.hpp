// tests/expert_conformance.hpp -- the conformance suite every expert family runs.
//
// One line per family (in tests/test_experts.cpp):
//   MOERATE_EXPERT_CONFORMANCE("polynomial:p=2", {3, -1}, {-4, 2}, 0.05);
// i.e. the family in the CLI form of --expert, then the recovery truth: the
// parameters eta (d = 1, in the family's eta order) of expert 1 (gate beta0 = -8,
// beta1 = 25: it dominates x > 0.32) and expert 2 (the reference, x < 0.32),
// and the recovery tolerance. Optional trailing fields of ExpertCase: the
// variances (default 0.09, 0.16, experiment A) and the comparison mode.
//
// Two test cases per family:
//   "experts: SPEC"            derivatives, round trips, M-step, symmetries, bad JSON
//     - jacobian == central differences of mean (relative 1e-6, d = 2, seed 11)
//     - hessian == central differences of jacobian (relative 1e-6; skipped for relu)
//     - eta round-trips through to_json/from_json (also via text) and through a
//       whole GaussianMoE::to_json/from_json
//     - m_step never raises the weighted SSE (5 random starts and weights, seed 12)
//     - every equivalents() vector gives the same mean() (1e-10 relative) and the
//       same canonical(); canonical() gives the same mean()
//     - malformed expert objects (each key removed, each value of the wrong type,
//       arrays of the wrong length, nested too) throw InvalidArgument naming the
//       object (unknown family options: family-specific tests; linear ignores them)
//   "experts: SPEC recovery"   exact-fitted recovery: n = 5000, x ~ U[0, 1] (seed 13),
//     softmax gate of experiment A, moerate::fit with init kmeans, 5 starts (seed 14),
//     labels matched with match_experts, then
//       canonical(eta): |fit - truth| <= tol * max(1, |truth|) entry-wise
//         (mode function: sup over the expert's region of |h_fit - h_true| <= tol)
//       gate (beta0, beta1): within 30% relative (a sharp gate is weakly determined
//         in its scale; its switch point -beta0/beta1 within 0.02)
//       variances: within 15% relative
//       log-likelihood of the fit >= the truth's (mode function: within 3%)
//     (EM: tol 1e-6, at most 200 iterations per start)
#pragma once

#include <doctest/doctest.h>

#include <armadillo>
#include <cmath>
#include <string>
#include <vector>

#include "moerate/core/error.hpp"
#include "moerate/model/expert_family.hpp"
#include "moerate/estimators/fit.hpp"
#include "moerate/model/gating.hpp"
#include "moerate/model/model.hpp"
#include "moerate/core/rng.hpp"

namespace moerate::test {

enum class Compare { params, function };

struct ExpertCase {
  std::string spec;         // --expert form, e.g. "ffn:tanh,units=3"
  std::vector<double> eta1; // recovery truth, expert 1 (d = 1)
  std::vector<double> eta2; // recovery truth, expert 2 (reference)
  double tol = 0.05;        // recovery tolerance (see the file header)
  double nu1 = 0.09, nu2 = 0.16;
  Compare compare = Compare::params;
};

inline std::shared_ptr<ExpertFamily> family_of(const std::string& spec, std::size_t d) {
  return make_expert_family(parse_family_spec(spec), d);
}

inline bool is_relu(const ExpertFamily& f) {
  const json j = f.family_json();
  return j.contains("activation") && j["activation"] == "relu";
}

/// Max over entries of |a - b| / max(1, |b|).
inline double max_rel_diff(const arma::mat& a, const arma::mat& b) {
  REQUIRE(a.n_rows == b.n_rows);
  REQUIRE(a.n_cols == b.n_cols);
  double m = 0;
  for (std::size_t i = 0; i < a.n_elem; ++i) m = std::max(m, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  return m;
}

/// Every way of breaking one field of a JSON object (recursively).
inline void collect_mutations(const json& root, const json::json_pointer& at, std::vector<json>& out) {
  const json& node = root[at];
  if (node.is_object()) {
    for (const auto& [key, val] : node.items()) {
      json erased = root;
      erased[at].erase(key);
      out.push_back(erased);
      collect_mutations(root, at / key, out);
    }
  } else if (node.is_array()) {
    json longer = root;
    longer[at].push_back(node.empty() || node[0].is_number() ? json(1.0) : node[0]);
    out.push_back(longer);
    json shorter = root;
    shorter[at].erase(shorter[at].size() - 1);
    out.push_back(shorter);
    json wrong = root;
    wrong[at] = "text";
    out.push_back(wrong);
    for (std::size_t i = 0; i < node.size(); ++i) collect_mutations(root, at / i, out);
  } else {
    json wrong = root;
    wrong[at] = "text";
    out.push_back(wrong);
    json null = root;
    null[at] = nullptr;
    out.push_back(null);
  }
}

inline void run_expert_conformance(const ExpertCase& c) {
  const std::size_t d = 2, n = 40;
  const auto fam = family_of(c.spec, d);
  const std::size_t q = fam->n_params();
  INFO("family " << c.spec << " -> " << fam->family_json().dump());
  Rng rng(11);  // seed 11
  arma::mat X(d, n);
  for (auto& v : X) v = rng.uniform(-1, 1);
  arma::vec eta(q);
  for (auto& v : eta) v = rng.normal(0, 1);
  REQUIRE(fam->param_names().size() == q);
  std::size_t covered = 0;
  for (const auto& b : fam->blocks()) covered += b.size;
  CHECK(covered == q);

  SUBCASE("jacobian matches central differences of mean") {
    const arma::mat J = fam->jacobian(X, eta);
    REQUIRE(J.n_rows == q);
    REQUIRE(J.n_cols == n);
    arma::mat Jfd(q, n);
    for (std::size_t u = 0; u < q; ++u) {
      const double h = 1e-5 * std::max(1.0, std::abs(eta[u]));
      arma::vec ep = eta, em = eta;
      ep[u] += h;
      em[u] -= h;
      Jfd.row(u) = (fam->mean(X, ep) - fam->mean(X, em)) / (2 * h);
    }
    CHECK(max_rel_diff(J, Jfd) < 1e-6);
  }
  SUBCASE("hessian matches central differences of jacobian") {
    if (is_relu(*fam)) return;  // not twice differentiable
    const arma::mat H = fam->hessian(X, eta);
    REQUIRE(H.n_rows == q * q);
    arma::mat Hfd(q * q, n);
    for (std::size_t v = 0; v < q; ++v) {
      const double h = 1e-5 * std::max(1.0, std::abs(eta[v]));
      arma::vec ep = eta, em = eta;
      ep[v] += h;
      em[v] -= h;
      const arma::mat D = (fam->jacobian(X, ep) - fam->jacobian(X, em)) / (2 * h);
      for (std::size_t u = 0; u < q; ++u) Hfd.row(u * q + v) = D.row(u);
    }
    CHECK(max_rel_diff(H, Hfd) < 1e-6);
    // Symmetric in (u, v).
    for (std::size_t u = 0; u < q; ++u)
      for (std::size_t v = 0; v < u; ++v) CHECK(arma::approx_equal(H.row(u * q + v), H.row(v * q + u), "absdiff", 1e-12));
    // add_weighted_hessian (a family's one-pass override, or the default) adds
    // sum_i w_i H_i, the weights of both signs as the score pass's residuals.
    arma::rowvec w(n);
    for (std::size_t i = 0; i < n; ++i) w[i] = std::sin(1.7 * double(i) + 0.3);
    arma::mat A(q, q, arma::fill::value(0.25));
    fam->add_weighted_hessian(X, eta, w, A);
    const arma::mat want = 0.25 + arma::reshape(H * w.t(), q, q);
    CHECK(max_rel_diff(A, want) < 1e-12);
  }
  SUBCASE("parameters round-trip through JSON") {
    const json j = fam->to_json(eta);
    const arma::vec back = fam->from_json(j, "expert");
    CHECK(arma::approx_equal(back, eta, "absdiff", 0.0));
    const arma::vec back_text = fam->from_json(json::parse(j.dump()), "expert");
    CHECK(arma::approx_equal(back_text, eta, "absdiff", 0.0));
    // The family object rebuilds the same family.
    const auto fam2 = make_expert_family(fam->family_json(), d);
    CHECK(fam2->family_json() == fam->family_json());
    CHECK(fam2->n_params() == q);
    // A whole model.
    arma::mat E(q, 2);
    E.col(0) = eta;
    for (auto& v : E.col(1)) v = rng.normal(0, 1);
    auto g = make_gating(json{{"family", "softmax"}}, 2, d);
    g->set_params(arma::vec{0.5, -1.0, 2.0});
    GaussianMoE m(std::move(g), fam, E, arma::vec{0.3, 0.7});
    const json mj = m.to_json();
    CHECK(mj["expert_family"] == fam->family_json());
    const GaussianMoE m2 = GaussianMoE::from_json(json::parse(mj.dump()), "model");
    CHECK(arma::approx_equal(m2.eta(), E, "absdiff", 0.0));
    CHECK(m2.experts().family_json() == fam->family_json());
    CHECK(m2.log_likelihood(X, arma::rowvec(n, arma::fill::zeros)) ==
          doctest::Approx(m.log_likelihood(X, arma::rowvec(n, arma::fill::zeros))).epsilon(1e-14));
  }
  SUBCASE("m_step never raises the weighted SSE") {
    Rng r2(12);  // seed 12
    const arma::vec truth = eta;
    arma::rowvec y = fam->mean(X, truth);
    for (auto& v : y) v += r2.normal(0, 0.1);
    ExpertMStepOptions opt;
    for (int t = 0; t < 5; ++t) {
      arma::rowvec w(n);
      for (auto& v : w) v = r2.uniform();
      arma::vec e = truth + r2.normal_vec(q) * 0.5;
      const arma::rowvec r0 = y - fam->mean(X, e);
      const double before = arma::accu(w % r0 % r0);
      const ExpertMStepResult res = fam->m_step(X, y, w, e, opt);
      const arma::rowvec r1 = y - fam->mean(X, e);
      const double after = arma::accu(w % r1 % r1);
      CHECK(res.sse_before == doctest::Approx(before).epsilon(1e-12));
      CHECK(res.sse_after == doctest::Approx(after).epsilon(1e-12));
      CHECK(after <= before);
    }
  }
  SUBCASE("equivalents give the same function and the same canonical form") {
    const auto eq = fam->equivalents(eta);
    REQUIRE(!eq.empty());
    CHECK(arma::approx_equal(eq[0], eta, "absdiff", 0.0));
    const arma::rowvec h = fam->mean(X, eta);
    const arma::vec can = fam->canonical(eta);
    CHECK(max_rel_diff(fam->mean(X, can), h) < 1e-10);
    for (const auto& e : eq) {
      CHECK(max_rel_diff(fam->mean(X, e), h) < 1e-10);
      CHECK(max_rel_diff(fam->canonical(e), can) < 1e-12);
    }
  }
  SUBCASE("invalid JSON is rejected with a clear error") {
    const json j = fam->to_json(eta);
    std::vector<json> bad{json::array(), json(nullptr), json(1.0), json::object()};
    collect_mutations(j, json::json_pointer(), bad);
    for (const auto& b : bad) {
      INFO("bad expert object " << b.dump());
      bool threw = false;
      try {
        fam->from_json(b, "experts[0].expert");
      } catch (const InvalidArgument& e) {
        threw = true;
        CHECK(std::string(e.what()).find("experts[0].expert") != std::string::npos);
      }
      CHECK(threw);
    }
  }
}

inline void run_expert_recovery(const ExpertCase& c) {
  const std::size_t n = 5000;
  const auto fam = family_of(c.spec, 1);
  INFO("family " << c.spec);
  REQUIRE(c.eta1.size() == fam->n_params());
  REQUIRE(c.eta2.size() == fam->n_params());
  const arma::vec e1(c.eta1), e2(c.eta2);
  const json tj{{"model", "gaussian"},
                {"gating", {{"family", "softmax"}}},
                {"expert_family", fam->family_json()},
                {"experts",
                 {{{"gate", {{"beta0", -8.0}, {"beta1", {25.0}}}}, {"expert", fam->to_json(e1)}, {"variance", c.nu1}},
                  {{"gate", {{"beta0", 0.0}, {"beta1", {0.0}}}}, {"expert", fam->to_json(e2)}, {"variance", c.nu2}}}}};
  const GaussianMoE truth = GaussianMoE::from_json(tj, "truth");
  Rng rng(13);  // seed 13
  arma::mat X(1, n);
  for (auto& v : X) v = rng.uniform();
  const arma::rowvec y = truth.simulate(X, rng);

  FitOptions opt;
  opt.n_experts = 2;
  opt.expert = parse_family_spec(c.spec);
  opt.n_starts = 5;
  opt.seed = 14;  // seed 14
  opt.init.kind = InitKind::kmeans;
  opt.em.max_iter = 200;
  opt.em.tol = 1e-6;
  FitResult r = fit(X, y, opt);
  GaussianMoE m = r.model;
  m.permute(match_experts(m, truth));
  INFO("fit: " << m.to_json().dump());
  INFO("log-likelihood fit " << r.log_likelihood << ", truth " << truth.log_likelihood(X, y));
  // The fit is at least as likely as the truth (function mode: within 3%, the
  // several-unit likelihood is multimodal and 5 k-means starts may stop short).
  const double ll_slack = c.compare == Compare::params ? 1e-6 : 0.03;
  CHECK(r.log_likelihood >= truth.log_likelihood(X, y) - ll_slack * std::abs(truth.log_likelihood(X, y)));

  const arma::vec gate = m.gating().params();  // [beta0_1, beta1_1]
  CHECK(std::abs(gate[0] + 8.0) <= 0.3 * 8.0);
  CHECK(std::abs(gate[1] - 25.0) <= 0.3 * 25.0);
  CHECK(std::abs(-gate[0] / gate[1] - 0.32) <= 0.02);
  for (std::size_t j = 0; j < 2; ++j) {
    const arma::vec te = truth.eta().col(j), fe = m.eta().col(j);
    INFO("expert " << j + 1 << " truth " << fam->to_json(fam->canonical(te)).dump() << " fit "
                   << fam->to_json(fam->canonical(fe)).dump());
    CHECK(std::abs(m.nu()[j] - truth.nu()[j]) <= 0.15 * truth.nu()[j]);
    if (c.compare == Compare::params) {
      CHECK(max_rel_diff(fam->canonical(fe), fam->canonical(te)) <= c.tol);
    } else {
      // The expert's own region: x > 0.32 for expert 1, x < 0.32 for expert 2.
      const arma::rowvec grid = j == 0 ? arma::linspace<arma::rowvec>(0.36, 1, 200)
                                       : arma::linspace<arma::rowvec>(0, 0.28, 200);
      const double sup = arma::abs(fam->mean(grid, fe) - fam->mean(grid, te)).max();
      CHECK(sup <= c.tol);
    }
  }
}

}  // namespace moerate::test

#define MOERATE_EXPERT_CONFORMANCE(SPEC, ...)                                                      \
  TEST_CASE("experts: " SPEC) { moerate::test::run_expert_conformance(moerate::test::ExpertCase{SPEC, __VA_ARGS__}); } \
  TEST_CASE("experts: " SPEC " recovery") {                                                      \
    moerate::test::run_expert_recovery(moerate::test::ExpertCase{SPEC, __VA_ARGS__});            \
  }
