// Expert families: the conformance suite (tests/expert_conformance.hpp), one
// line per family, plus family-specific checks. Seeds are stated in the suite.
//
// Recovery truths (d = 1; expert 1 dominates x > 0.32, expert 2 x < 0.32):
// eta in the family's order ([a, b] linear/polynomial, [a, b, c] ffn,
// [c0, w1, u1, c1, ...] ffn with units).
#include "expert_conformance.hpp"
#include "moerate/core/parallel.hpp"
#include "moerate/experts/ffn_expert.hpp"
#include "moerate/experts/linear_expert.hpp"
#include "moerate/experts/polynomial_expert.hpp"

using moerate::test::Compare;

MOERATE_EXPERT_CONFORMANCE("linear", {-20, 15}, {20, -5}, 0.05);
MOERATE_EXPERT_CONFORMANCE("ffn:sigmoid", {10, -6, 4}, {-8, 2, -3}, 0.15);
MOERATE_EXPERT_CONFORMANCE("ffn:tanh", {6, -4, 3}, {-5, 1, 2}, 0.1);
// gelu with a bias inside the unit is weakly identified (dh/da = x dh/db): at n = 2000 the
// MLE (log-likelihood -1567.7 against -1569.45 at the truth) lies 18% from the truth.
MOERATE_EXPERT_CONFORMANCE("ffn:gelu", {6, -4, 3}, {-5, 1, 2}, 0.2);
MOERATE_EXPERT_CONFORMANCE("ffn:relu", {5, -1, 2}, {-10, 2, 2}, 0.1);
MOERATE_EXPERT_CONFORMANCE("ffn:tanh,units=3", {0.5, 6, -4, 2, -3, 1, 0.5, 10, -8, 1},
                           {1, -8, 1, 1.5, 4, 0, 0.5, -2, 0.5, 0.3}, 0.15, 0.09, 0.16, Compare::function);
// Bias-free experts c * phi(a^T x) ([a, c]; models.md section 9.1). On x in [0, 1]
// relu(a x) = a x for a > 0, so the relu truths are lines through 0, compared in
// canonical form (|a| = 1).
MOERATE_EXPERT_CONFORMANCE("ffn:sigmoid,bias=false", {3, 4}, {-6, -3}, 0.1);
MOERATE_EXPERT_CONFORMANCE("ffn:tanh,bias=false", {2, 3}, {-5, 2}, 0.1);
// gelu without bias. Expert 2 lives on x < 0.32 only; with truth {4, -2} (z = a x up to
// 1.28, where gelu is nearly a parabola) its (a, c) are weakly identified: the MLE at
// n = 5000 (log-likelihood -2174.65 against -2178.63 at the truth) has {2.69, -3.33}. With
// {10, -1} the unit bends inside the interval and the MLE is within 3% (seed 13). Rounds 2-3
// found the fit in the valley a -> 0, c -> inf (c gelu(a x) tends to a line; -2266 nats):
// a local M-step never crosses from a < 0 to a > 0; the family's M-step now also tries the
// scale profile (FfnExpert::m_step; the test case below). Round 3's "order dependence" was
// a doctest filter artefact: -tc splits on commas, so "*gelu,bias=false*" selected other
// cases; escape the comma: -tc='*gelu\,bias=false recovery'.
MOERATE_EXPERT_CONFORMANCE("ffn:gelu,bias=false", {3, 2}, {10, -1}, 0.1);
// relu without bias on x in [0, 1]: with truth {1, -4} for expert 2 the fit ends with a dead
// unit (a < 0, h = 0 on the data; log-likelihood -3405 against -2179); with {1, -10} the
// zero function is clearly worse and the fit recovers the truth.
MOERATE_EXPERT_CONFORMANCE("ffn:relu,bias=false", {3, 2}, {1, -10}, 0.1);
MOERATE_EXPERT_CONFORMANCE("ffn:tanh,bias=false,units=2", {0.5, 6, 2, -3, 1}, {1, -8, 1.5, 2, 0.5}, 0.15, 0.09,
                           0.16, Compare::function);
MOERATE_EXPERT_CONFORMANCE("polynomial:p=2", {3, -1}, {-4, 2}, 0.05);
MOERATE_EXPERT_CONFORMANCE("polynomial:p=3", {3, -1.5}, {-3, 2}, 0.1);

namespace moerate {

TEST_CASE("ffn: units=1 keeps the one-unit representation") {
  const auto f = make_expert_family(parse_family_spec("ffn:tanh"), 1);
  CHECK(f->family_json() == json{{"family", "ffn"}, {"activation", "tanh"}});
  CHECK(f->n_params() == 3);
  CHECK(f->param_names() == std::vector<std::string>{"a", "b", "c"});
  CHECK(f->to_json(arma::vec{2, -1, 3}) == json{{"a", {2.0}}, {"b", -1.0}, {"c", 3.0}});
  const arma::mat X(1, 1, arma::fill::value(0.25));
  CHECK(f->mean(X, arma::vec{2, -1, 3})[0] == doctest::Approx(3 * std::tanh(-0.5)).epsilon(1e-15));
  // units=1 given explicitly is the same family.
  CHECK(make_expert_family(parse_family_spec("ffn:tanh,units=1"), 1)->family_json() == f->family_json());
}

TEST_CASE("ffn: units=M layout, option syntax and model file") {
  const json spec = parse_family_spec("ffn:tanh,units=3");
  CHECK(spec == json{{"family", "ffn"}, {"_", "tanh"}, {"units", 3}});
  const auto f = make_expert_family(spec, 2);
  CHECK(f->family_json() == json{{"family", "ffn"}, {"activation", "tanh"}, {"units", 3}});
  CHECK(f->n_params() == 1 + 3 * 4);
  const auto names = f->param_names();
  CHECK(names.front() == "c0");
  CHECK(names[1] == "w1_1");
  CHECK(names[2] == "w1_2");
  CHECK(names[3] == "u1");
  CHECK(names[4] == "c1");
  CHECK(names.back() == "c3");
  // h = c0 + sum_m c_m tanh(w_m^T x + u_m), checked by hand at one point.
  const arma::vec eta{0.5, 1, 2, -1, 3, /**/ -2, 0, 0.5, -1, /**/ 0, 1, 0, 2};
  const arma::mat X = arma::vec{0.3, -0.2};
  const double h = 0.5 + 3 * std::tanh(0.3 - 0.4 - 1) - std::tanh(-0.6 + 0.5) + 2 * std::tanh(-0.2);
  CHECK(f->mean(X, eta)[0] == doctest::Approx(h).epsilon(1e-14));
  const json j = f->to_json(eta);
  CHECK(j["c0"] == 0.5);
  CHECK(j["units"].size() == 3);
  CHECK(j["units"][1] == json{{"w", {-2.0, 0.0}}, {"u", 0.5}, {"c", -1.0}});
  // Equivalents: 3! permutations x 2^3 sign flips for tanh; 3! only for gelu.
  CHECK(f->equivalents(eta).size() == 48);
  CHECK(make_expert_family(parse_family_spec("ffn:gelu,units=3"), 2)->equivalents(eta).size() == 6);
  CHECK(make_expert_family(parse_family_spec("ffn:sigmoid,units=3"), 2)->equivalents(eta).size() == 48);
  CHECK(make_expert_family(parse_family_spec("ffn:tanh,units=5"), 1)->equivalents(arma::vec(16, arma::fill::ones)).size() == 3840);
  // canonical: c_m >= 0, units sorted by c.
  const arma::vec can = f->canonical(eta);
  CHECK(can[4] <= can[8]);
  CHECK(can[8] <= can[12]);
  CHECK(can[4] >= 0);
  // Bad options.
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("ffn:tanh,units=0"), 1), InvalidArgument);
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("ffn:tanh,units=2.5"), 1), InvalidArgument);
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("ffn:tanh,unit=3"), 1), InvalidArgument);
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("linear:degree=2"), 1), InvalidArgument);
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("ffn:softplus"), 1), InvalidArgument);
}

TEST_CASE("ffn: sigmoid sign flip moves the constant") {
  // c sigmoid(z) = c - c sigmoid(-z): (w, u, c, c0) ~ (-w, -u, -c, c0 + c).
  const auto f = make_expert_family(parse_family_spec("ffn:sigmoid,units=2"), 1);
  const arma::vec eta{0.2, 3, -1, -2, 1, 0.5, 1};
  const arma::vec can = f->canonical(eta);
  CHECK(can[0] == doctest::Approx(0.2 - 2).epsilon(1e-15));
  const arma::mat X = arma::linspace<arma::rowvec>(-2, 2, 9);
  CHECK(arma::approx_equal(f->mean(X, can), f->mean(X, eta), "absdiff", 1e-14));
}

TEST_CASE("ffn: relu canonical form resolves the positive scaling") {
  const auto f = make_expert_family(parse_family_spec("ffn:relu"), 1);
  const arma::vec a{5, -2, 2}, b{2.5, -1, 4};  // the same function: 2 relu(5x - 2) = 4 relu(2.5x - 1)
  CHECK(arma::approx_equal(f->canonical(a), f->canonical(b), "absdiff", 1e-14));
  CHECK(arma::approx_equal(f->canonical(a), arma::vec{1, -0.4, 10}, "absdiff", 1e-14));  // |a| = 1
  // d = 2, bias-free: c relu(a^T x) = (c/s) relu(s a^T x); canonical |a| = 1.
  const auto g = make_expert_family(parse_family_spec("ffn:relu,bias=false"), 2);
  const arma::vec p{3, 4, 2}, r{0.6, 0.8, 10};  // 2 relu(3 x1 + 4 x2) = 10 relu(0.6 x1 + 0.8 x2)
  CHECK(arma::approx_equal(g->canonical(p), r, "absdiff", 1e-14));
  CHECK(arma::approx_equal(g->canonical(arma::vec{1.5, 2, 4}), r, "absdiff", 1e-14));
  // a = 0 (the zero function) is left as it is.
  CHECK(arma::approx_equal(g->canonical(arma::vec{0, 0, 3}), arma::vec{0, 0, 3}, "absdiff", 0.0));
  // units: each unit scaled to |w_m| = 1, then sorted by c_m.
  const auto u = make_expert_family(parse_family_spec("ffn:relu,bias=false,units=2"), 1);
  const arma::vec e{0.1, 2, 3, -4, 0.5};  // 0.1 + 3 relu(2x) + 0.5 relu(-4x)
  CHECK(arma::approx_equal(u->canonical(e), arma::vec{0.1, -1, 2, 1, 6}, "absdiff", 1e-14));
}

TEST_CASE("ffn: a bias-free gelu M-step started on the wrong side of a = 0 reaches the right side") {
  // y = -gelu(10 x) + noise on [0, 0.32]: concave and falling. From a < 0 (c gelu(a x) is convex
  // for c > 0 and rises for c < 0) Levenberg-Marquardt alone ends in the valley a -> 0, c -> inf.
  const auto f = make_expert_family(parse_family_spec("ffn:gelu,bias=false"), 1);
  Rng rng(31);  // seed 31
  const std::size_t n = 1500;
  arma::mat X(1, n);
  for (auto& v : X) v = 0.32 * rng.uniform();
  const arma::vec truth{10, -1};
  arma::rowvec y = f->mean(X, truth);
  for (auto& v : y) v += rng.normal(0, 0.4);
  const arma::rowvec w(n, arma::fill::ones);
  const double sse_truth = f->weighted_sse(X, y, w, truth);
  arma::vec eta{-0.5, 1.0};
  ExpertMStepOptions opt;
  opt.lm_steps = 50;
  const double before = f->weighted_sse(X, y, w, eta);
  const ExpertMStepResult r = f->m_step(X, y, w, eta, opt);
  INFO("eta after " << eta.t());
  CHECK(r.sse_after <= before);
  CHECK(r.sse_after == doctest::Approx(f->weighted_sse(X, y, w, eta)).epsilon(1e-12));
  CHECK(eta[0] > 1);                   // the concave side
  CHECK(r.sse_after <= sse_truth);     // at least as good as the truth: the least-squares optimum
  arma::vec lm{-0.5, 1.0};             // what this guards against: LM alone stays on a < 0
  f->ExpertFamily::m_step(X, y, w, lm, opt);
  CHECK(lm[0] < 0);
  CHECK(f->weighted_sse(X, y, w, lm) > sse_truth);
  // tanh is odd (a sign flip is an equivalence): its M-step is Levenberg-Marquardt alone.
  const auto t = make_expert_family(parse_family_spec("ffn:tanh,bias=false"), 1);
  arma::vec e1{-0.5, 1.0}, e2 = e1;
  t->m_step(X, y, w, e1, opt);
  t->ExpertFamily::m_step(X, y, w, e2, opt);
  CHECK(arma::approx_equal(e1, e2, "absdiff", 0.0));
}

TEST_CASE("m_step_all: every expert's M-step in shared passes gives each expert's own m_step, bit for bit") {
  // LinearExpert shares its passes among the experts (loops for d <= 3, BLAS
  // products above); the default (ffn) calls m_step per expert. An expert
  // whose weights are all zero is left alone.
  Rng rng(61);  // seed 61
  const std::size_t n = 7000, k = 4;  // four blocks, the last one partial
  for (const char* spec : {"linear", "ffn:tanh"}) {
    for (const std::size_t d : {std::size_t(1), std::size_t(5)}) {
      INFO("family " << std::string(spec) << ", d = " << d);
      const auto f = make_expert_family(parse_family_spec(spec), d);
      arma::mat X(d, n), R(k, n), eta(f->n_params(), k);
      arma::rowvec y(n);
      for (auto& v : X) v = rng.normal(0, 1);
      for (auto& v : y) v = rng.normal(0, 2);
      for (auto& v : R) v = rng.uniform();
      R.row(2).zeros();
      for (auto& v : eta) v = rng.normal(0, 0.5);
      arma::mat eta_all = eta;
      const ExpertMStepOptions opt;
      const ExpertMStepAll all = f->m_step_all(X, y, R, eta_all, opt);
      REQUIRE(all.results.size() == k);
      for (std::size_t j = 0; j < k; ++j) {
        const arma::rowvec w = R.row(j);
        CHECK(all.weight[j] == doctest::Approx(arma::accu(w)).epsilon(1e-13));
        if (j == 2) {
          CHECK(all.weight[j] == 0.0);
          CHECK(arma::approx_equal(eta_all.col(j), eta.col(j), "absdiff", 0.0));
          CHECK(all.results[j].accepted_steps == 0);
          continue;
        }
        arma::vec e = eta.col(j);
        const ExpertMStepResult r = f->m_step(X, y, w, e, opt);
        CHECK(arma::approx_equal(eta_all.col(j), e, "absdiff", 0.0));
        CHECK(all.results[j].sse_before == r.sse_before);
        CHECK(all.results[j].sse_after == r.sse_after);
        CHECK(all.results[j].sse_after < all.results[j].sse_before);
      }
    }
  }
}

TEST_CASE("linear experts' M-step plan: hooks carried in any chunk order give m_step_all's numbers, bit for bit") {
  // A gate's M-step calls the plan's hooks from its own passes, chunks of
  // blocks in parallel (reduce_blocks); here the chunks run in reverse order,
  // the blocks of a chunk in order, as one thread runs them. n spans more
  // blocks than there are chunks, so some chunks hold two blocks.
  Rng rng(67);  // seed 67
  const std::size_t n = 70 * kObsBlock + 123, k = 3, nb = (n + kObsBlock - 1) / kObsBlock, nc = kMaxChunks;
  REQUIRE(nb > nc);
  for (const std::size_t d : {std::size_t(1), std::size_t(6)}) {
    INFO("d = " << d);
    const auto f = make_expert_family(parse_family_spec("linear"), d);
    arma::mat X(d, n), R(k, n), eta(d + 1, k);
    arma::rowvec y(n);
    for (auto& v : X) v = rng.normal(0, 1);
    for (auto& v : y) v = rng.normal(0, 2);
    for (auto& v : R) v = rng.uniform();
    for (auto& v : eta) v = rng.normal(0, 0.5);
    arma::mat eta_ref = eta, eta_plan = eta;
    const ExpertMStepOptions opt;
    const ExpertMStepAll ref = f->m_step_all(X, y, R, eta_ref, opt);
    auto plan = f->plan_m_step_all(X, y, R, eta_plan, opt);
    REQUIRE(plan != nullptr);
    auto run = [&](bool trial) {
      for (std::size_t c = nc; c-- > 0;)
        for (std::size_t bl = nb * c / nc; bl < nb * (c + 1) / nc; ++bl) {
          const std::size_t a = bl * kObsBlock, b = std::min(n, a + kObsBlock);
          if (trial) plan->trial_block(a, b);
          else plan->first_block(a, b);
        }
    };
    CHECK(plan->stage() == 0);
    run(false);
    plan->first_done();
    CHECK(plan->stage() == 1);
    run(true);
    plan->trial_done();
    CHECK(plan->stage() == 2);
    const ExpertMStepAll got = plan->finish();
    CHECK(arma::approx_equal(eta_plan, eta_ref, "absdiff", 0.0));
    CHECK(arma::approx_equal(got.weight, ref.weight, "absdiff", 0.0));
    for (std::size_t j = 0; j < k; ++j) {
      CHECK(got.results[j].sse_after == ref.results[j].sse_after);
      CHECK(got.results[j].sse_before == ref.results[j].sse_before);
    }
    // A plan whose hooks no gate ran does all of it in finish().
    arma::mat eta_idle = eta;
    const ExpertMStepAll idle = f->plan_m_step_all(X, y, R, eta_idle, opt)->finish();
    CHECK(arma::approx_equal(eta_idle, eta_ref, "absdiff", 0.0));
    CHECK(idle.results[1].sse_after == ref.results[1].sse_after);
  }
  // Families without a plan: EM calls m_step_all.
  const auto ffn = make_expert_family(parse_family_spec("ffn:tanh"), 1);
  const arma::mat X1(1, 5, arma::fill::zeros), R1(2, 5, arma::fill::ones);
  const arma::rowvec y1(5, arma::fill::zeros);
  arma::mat e1(ffn->n_params(), 2, arma::fill::zeros);
  CHECK(ffn->plan_m_step_all(X1, y1, R1, e1, ExpertMStepOptions{}) == nullptr);
}

TEST_CASE("Levenberg-Marquardt M-step over several blocks reaches the weighted least-squares optimum") {
  // The M-step sums its Gauss-Newton system block by block (2048 observations).
  // Checked against a dense, unblocked computation: at the end the Gauss-Newton
  // step from the full Jacobian is negligible and the reported sum of squares
  // is the plain sum. p = 4, 9 (plain loops) and 25 (BLAS products).
  Rng rng(57);  // seed 57
  const std::size_t n = 9000;  // five blocks, the last one partial
  for (const char* spec : {"ffn:tanh", "ffn:sigmoid,units=2", "ffn:tanh,units=6"}) {
    INFO("family " << std::string(spec));
    const auto f = make_expert_family(parse_family_spec(spec), 2);
    arma::mat X(2, n);
    for (auto& v : X) v = rng.normal(0, 1);
    arma::vec truth(f->n_params());
    for (auto& v : truth) v = rng.normal(0, 1);
    arma::rowvec y = f->mean(X, truth), w(n);
    for (auto& v : y) v += rng.normal(0, 0.3);
    for (auto& v : w) v = 0.05 + rng.uniform();
    arma::vec eta = truth;
    for (auto& v : eta) v += rng.normal(0, 0.05);
    ExpertMStepOptions opt;
    opt.lm_steps = 200;
    const ExpertMStepResult r = f->m_step(X, y, w, eta, opt);
    CHECK(r.sse_after < r.sse_before);
    const arma::rowvec res = y - f->mean(X, eta);
    double plain = 0;
    for (std::size_t i = 0; i < n; ++i) plain += w[i] * res[i] * res[i];
    CHECK(r.sse_after == doctest::Approx(plain).epsilon(1e-12));
    const arma::mat J = f->jacobian(X, eta);
    const arma::mat A = (J.each_row() % w) * J.t();
    const arma::vec g = J * (w % res).t();
    // The Gauss-Newton decrement g^T A^-1 g: the decrease of the sum of squares
    // a further step would give (scale-free against the sum itself).
    const double decrement = arma::dot(g, arma::solve(A, g));
    MESSAGE(std::string(spec) << ": p = " << f->n_params() << ", decrement / sse = " << decrement / plain);
    CHECK(decrement < 1e-10 * plain);
  }
}

TEST_CASE("ffn: one unit on one covariate sums its Gauss-Newton block without a Jacobian matrix") {
  // gauss_newton_block against the dense sums from jacobian() and mean():
  // A = J W J^T (upper triangle), g = J W r, sse = sum w r^2 (an odd n: the
  // parity split's last observation).
  Rng rng(58);  // seed 58
  const std::size_t n = 2047;
  for (const char* spec : {"ffn:tanh", "ffn:tanh,bias=false", "ffn:sigmoid", "ffn:gelu,bias=false"}) {
    INFO("family " << std::string(spec));
    const auto f = make_expert_family(parse_family_spec(spec), 1);
    arma::mat X(1, n);
    for (auto& v : X) v = rng.normal(0, 1);
    arma::vec eta(f->n_params());
    for (auto& v : eta) v = rng.normal(0, 1);
    arma::rowvec y(n), w(n);
    for (auto& v : y) v = rng.normal(0, 1);
    for (auto& v : w) v = rng.uniform();
    const std::size_t p = f->n_params();
    arma::mat A(p, p, arma::fill::zeros);
    arma::vec g(p, arma::fill::zeros);
    double sse = 0;
    REQUIRE(f->gauss_newton_block(X, y.memptr(), w.memptr(), eta, A, g, sse));
    const arma::mat J = f->jacobian(X, eta);
    const arma::rowvec r = y - f->mean(X, eta);
    const arma::mat Ad = (J.each_row() % w) * J.t();
    const arma::vec gd = J * (w % r).t();
    CHECK(arma::abs(arma::trimatu(A) - arma::trimatu(Ad)).max() <= 1e-12 * arma::abs(Ad).max());
    CHECK(arma::abs(g - gd).max() <= 1e-12 * std::max(1.0, arma::abs(gd).max()));
    CHECK(sse == doctest::Approx(arma::accu(w % r % r)).epsilon(1e-12));
  }
  // More units or covariates: the generic pass (false, nothing added).
  arma::mat A(3, 3, arma::fill::zeros);
  arma::vec g(3, arma::fill::zeros);
  double sse = 0;
  const arma::mat X2(2, 4, arma::fill::ones);
  const arma::rowvec y4(4, arma::fill::ones), w4(4, arma::fill::ones);
  const auto f2 = make_expert_family(parse_family_spec("ffn:tanh,bias=false"), 2);
  CHECK_FALSE(f2->gauss_newton_block(X2, y4.memptr(), w4.memptr(), arma::vec{1, 1, 1}, A, g, sse));
  CHECK(sse == 0.0);
}

TEST_CASE("ffn: bias-free layout, model file and options") {
  const auto f = make_expert_family(parse_family_spec("ffn:tanh,bias=false"), 2);
  CHECK(f->family_json() == json{{"family", "ffn"}, {"activation", "tanh"}, {"bias", false}});
  CHECK(f->param_names() == std::vector<std::string>{"a_1", "a_2", "c"});
  const arma::vec eta{2, -1, 3};
  CHECK(f->to_json(eta) == json{{"a", {2.0, -1.0}}, {"c", 3.0}});
  const arma::mat X = arma::vec{0.3, 0.2};
  CHECK(f->mean(X, eta)[0] == doctest::Approx(3 * std::tanh(0.4)).epsilon(1e-15));
  // Odd activation: (a, c) ~ (-a, -c); canonical c >= 0.
  CHECK(f->equivalents(eta).size() == 2);
  CHECK(arma::approx_equal(f->canonical(arma::vec{-2, 1, -3}), eta, "absdiff", 0.0));
  // sigmoid, gelu, relu without bias: no sign flip for one unit.
  CHECK(make_expert_family(parse_family_spec("ffn:sigmoid,bias=false"), 2)->equivalents(eta).size() == 1);
  CHECK(make_expert_family(parse_family_spec("ffn:gelu,bias=false"), 2)->equivalents(eta).size() == 1);
  // A model file's family object: boolean false, and no "bias" keeps today's meaning.
  CHECK(make_expert_family(json{{"family", "ffn"}, {"activation", "tanh"}, {"bias", false}}, 2)->n_params() == 3);
  CHECK(make_expert_family(json{{"family", "ffn"}, {"activation", "tanh"}}, 2)->n_params() == 4);
  CHECK(make_expert_family(json{{"family", "ffn"}, {"activation", "tanh"}, {"bias", true}}, 2)->family_json() ==
        json{{"family", "ffn"}, {"activation", "tanh"}});
  // An expert with "b" in a bias-free family is an error naming the key.
  try {
    f->from_json(json{{"a", {1.0, 2.0}}, {"b", 0.0}, {"c", 1.0}}, "experts[0].expert");
    FAIL("a \"b\" was accepted without bias");
  } catch (const InvalidArgument& e) {
    CHECK(std::string(e.what()).find("experts[0].expert.b") != std::string::npos);
  }
  // units=M without bias: [c0, w1, c1, ...]; blocks c0, w<m>, c<m>.
  const auto g = make_expert_family(parse_family_spec("ffn:tanh,bias=false,units=2"), 1);
  CHECK(g->param_names() == std::vector<std::string>{"c0", "w1", "c1", "w2", "c2"});
  const arma::vec e2{0.5, 2, 3, -1, 1};
  CHECK(g->to_json(e2) == json{{"c0", 0.5}, {"units", {json{{"w", {2.0}}, {"c", 3.0}}, json{{"w", {-1.0}}, {"c", 1.0}}}}});
  CHECK(g->equivalents(e2).size() == 8);
  CHECK(g->family_json() == json{{"family", "ffn"}, {"activation", "tanh"}, {"bias", false}, {"units", 2}});
  // Bad options name the option.
  for (const char* bad : {"ffn:tanh,bias=maybe", "ffn:tanh,bias=0", "ffn:tanh,bias=false,units=0"}) {
    try {
      make_expert_family(parse_family_spec(bad), 1);
      FAIL(bad);
    } catch (const InvalidArgument& e) {
      const std::string m = e.what();
      CHECK_MESSAGE((m.find("bias") != std::string::npos || m.find("units") != std::string::npos), m);
    }
  }
}

TEST_CASE("polynomial: option syntax, values and even-degree symmetry") {
  CHECK(parse_family_spec("polynomial:p=2") == json{{"family", "polynomial"}, {"p", 2}});
  const auto f = make_expert_family(parse_family_spec("polynomial:p=3"), 1);
  CHECK(f->family_json() == json{{"family", "polynomial"}, {"p", 3}});
  CHECK(make_expert_family(json{{"family", "polynomial"}}, 1)->family_json()["p"] == 2);
  const arma::mat X(1, 1, arma::fill::value(0.5));
  CHECK(f->mean(X, arma::vec{2, -3})[0] == doctest::Approx(-8.0).epsilon(1e-15));
  CHECK(f->equivalents(arma::vec{2, -3}).size() == 1);
  const auto g = make_expert_family(parse_family_spec("polynomial:p=2"), 1);
  CHECK(g->equivalents(arma::vec{2, -3}).size() == 2);
  CHECK(arma::approx_equal(g->canonical(arma::vec{2, -3}), arma::vec{-2, 3}, "absdiff", 0.0));
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("polynomial:p=1"), 1), InvalidArgument);
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("polynomial:p=2.5"), 1), InvalidArgument);
  CHECK_THROWS_AS(make_expert_family(parse_family_spec("polynomial:q=2"), 1), InvalidArgument);
}

TEST_CASE("polynomial: initial() fits a single expert") {
  Rng rng(21);  // seed 21
  const auto f = make_expert_family(parse_family_spec("polynomial:p=3"), 1);
  arma::mat X(1, 400);
  for (auto& v : X) v = rng.uniform(-1, 1);
  arma::rowvec y = f->mean(X, arma::vec{1.5, 0.5});
  for (auto& v : y) v += rng.normal(0, 0.05);
  const arma::vec e = f->initial(X, y, arma::rowvec(400, arma::fill::ones), rng);
  CHECK(e[0] == doctest::Approx(1.5).epsilon(0.02));
  CHECK(e[1] == doctest::Approx(0.5).epsilon(0.02));
}

}  // namespace moerate
