// Tests of the numerical strong-identifiability check (models.md section 4).
// Every random setup states its seed; known answers are mathematical facts.
#include <doctest/doctest.h>

#include "fixtures.hpp"

#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/metrics/identifiability.hpp"
#include "moerate/core/rng.hpp"

using namespace moerate;
using namespace moerate::fixtures;

namespace {

/// A relation with exactly these terms and coefficients (full names).
bool has_relation(const IdentReport& r, const std::vector<std::pair<std::string, double>>& terms, double tol = 1e-6) {
  for (const auto& rel : r.relations) {
    if (rel.terms.size() != terms.size()) continue;
    bool ok = true;
    for (const auto& [name, c] : terms)
      if (std::abs(rel.coef_of(name) - c) > tol) ok = false;
    if (ok) return true;
  }
  return false;
}

/// An identically zero function, counted (relations) or excused (gaussian version: zero at the h level only).
bool has_zero(const IdentReport& r, const std::string& name) {
  for (const auto* list : {&r.relations, &r.excused})
    for (const auto& rel : *list)
      if (rel.zero_function && rel.terms[0].name == name) return true;
  return false;
}

bool has_note(const IdentReport& r, const std::string& prefix) {
  for (const auto& rel : r.relations)
    if (rel.note.rfind(prefix, 0) == 0) return true;
  return false;
}

bool gating_available(const std::string& name) {
  if (gating_registry().count(name)) return true;
  MESSAGE("gating family '" << name << "' is not in the registry yet: test skipped");
  return false;
}
bool expert_available(const std::string& name) {
  if (expert_registry().count(name)) return true;
  MESSAGE("expert family '" << name << "' is not in the registry yet: test skipped");
  return false;
}

IdentReport run(const std::string& expert, const std::string& gating, std::size_t d, std::size_t k, IdentVersion v,
                std::uint64_t seed, std::vector<std::string> free = {}) {
  IdentOptions o;
  o.seed = seed;
  o.free_blocks = std::move(free);
  const IdentSetup s = random_setup(parse_family_spec(expert), gating.empty() ? json() : parse_family_spec(gating), d, k,
                                    seed);
  return identify(s, v, o);
}

}  // namespace

TEST_CASE("sparse_basis: reduced row echelon form of a null basis reads as simple relations") {
  // Null space spanned by e0 - e2 and e1 + 2 e3, given through a rotated orthonormal basis.
  arma::mat N(4, 2);
  N.col(0) = arma::vec{1, 0, -1, 0};
  N.col(1) = arma::vec{0, 1, 0, 2};
  arma::mat Q, Rq;
  arma::qr_econ(Q, Rq, N);
  const arma::mat rot = {{0.6, -0.8}, {0.8, 0.6}};
  const arma::mat B = sparse_basis(Q * rot);
  REQUIRE(B.n_rows == 2);
  CHECK(B(0, 0) == doctest::Approx(1).epsilon(1e-12));
  CHECK(B(0, 2) == doctest::Approx(-1).epsilon(1e-12));
  CHECK(std::abs(B(0, 1)) < 1e-12);
  CHECK(B(1, 1) == doctest::Approx(1).epsilon(1e-12));
  CHECK(B(1, 3) == doctest::Approx(2).epsilon(1e-12));
  CHECK(std::abs(B(1, 0)) < 1e-12);
}

TEST_CASE("second derivatives: family hessian agrees with Richardson differences of the Jacobian") {
  Rng rng(11);  // seed 11
  const arma::mat X = draw_design("uniform:-2,2", 2, 50, rng);
  std::vector<std::string> specs = {"linear", "ffn:activation=sigmoid", "ffn:activation=tanh", "ffn:activation=gelu"};
  if (expert_registry().count("polynomial")) specs.push_back("polynomial:p=3");
  for (const auto& spec : specs) {
    CAPTURE(spec);
    const auto f = make_expert_family(parse_family_spec(spec), 2);
    const arma::vec eta = 0.7 * rng.normal_vec(f->n_params()) + 0.3;
    const arma::mat Hr = richardson_hessian(*f, X, eta);
    const arma::mat Hf = f->hessian(X, eta);
    const double scale = std::max(1.0, arma::abs(Hr).max());
    CHECK(arma::abs(Hf - Hr).max() / scale < 1e-8);
    std::string src;
    double acc = 0;
    checked_hessian(*f, X, eta, &src, &acc);
    CHECK(acc < 1e-8);
  }
}

TEST_CASE("linear experts (Gaussian version): dh/da - x_1*dh/db = 0 for every expert") {
  const IdentReport r = run("linear", "softmax", 1, 2, IdentVersion::gaussian, 1);  // seed 1
  CHECK_FALSE(r.strongly_identifiable);
  for (const char* j : {"1", "2"}) {
    const std::string J = std::string("[") + j + "]";
    CHECK(has_relation(r, {{"dh/da" + J, 1.0}, {"x_1*dh/db" + J, -1.0}}));
    CHECK(has_zero(r, "d2h/da2" + J));
    CHECK(has_zero(r, "d2h/db2" + J));
  }
  // The grouped output lists the per-expert relation once for both experts.
  bool grouped = false;
  for (const auto& g : r.grouped) grouped |= g == "experts 1, 2: dh/da - x_1*dh/db = 0";
  CHECK(grouped);
  CHECK(r.rank == 3);  // span{1, x, x^2}
  CHECK(r.rank_gap == r.rank);
}

TEST_CASE("linear experts in d = 2: one relation per coordinate and expert") {
  const IdentReport r = run("linear", "", 2, 1, IdentVersion::gaussian, 2);  // seed 2
  CHECK(has_relation(r, {{"dh/da_1[1]", 1.0}, {"x_1*dh/db[1]", -1.0}}));
  CHECK(has_relation(r, {{"dh/da_2[1]", 1.0}, {"x_2*dh/db[1]", -1.0}}));
  CHECK_FALSE(r.strongly_identifiable);
}

TEST_CASE("linear experts (gate-expert version): du/da = d2u/(dbeta1 db) and the heat equation") {
  const IdentReport r = run("linear", "softmax", 1, 2, IdentVersion::gate_expert, 3);  // seed 3
  CHECK_FALSE(r.strongly_identifiable);
  for (const char* j : {"1", "2"}) {
    const std::string J = std::string("[") + j + "]";
    CHECK(has_relation(r, {{"du/da" + J, 1.0}, {"d2u/(dbeta1 db)" + J, -1.0}}));
    // heat equation d2u/db2 = 2 du/dnu, normalised with the largest coefficient 1
    CHECK(has_relation(r, {{"du/dnu" + J, 1.0}, {"d2u/db2" + J, -0.5}}));
  }
  bool heat_note = false;
  for (const auto& rel : r.relations) heat_note |= rel.note.rfind("heat equation", 0) == 0;
  CHECK(heat_note);
}

TEST_CASE("ffn experts: sigmoid, tanh and gelu are full rank in the literature's parametrisation") {
  // phi(a^T x) with b and c held fixed (--params a): every version is full rank.
  for (const char* act : {"sigmoid", "tanh", "gelu"}) {
    CAPTURE(act);
    const std::string spec = std::string("ffn:activation=") + act;
    for (auto v : {IdentVersion::gaussian, IdentVersion::lse, IdentVersion::gate_expert}) {
      CAPTURE(ident_version_name(v));
      const IdentReport r = run(spec, "softmax", 1, 2, v, 4, {"a"});  // seed 4
      CHECK(r.strongly_identifiable);
      CHECK(r.rank == r.n_functions);
      if (!r.strongly_identifiable) MESSAGE(r.text());
    }
    // With (a, c) free the gate-expert expansion is still full rank: no heat equation.
    const IdentReport rc = run(spec, "softmax", 1, 2, IdentVersion::gate_expert, 4, {"a", "c"});  // seed 4
    CHECK(rc.strongly_identifiable);
  }
}

TEST_CASE("ffn experts with a bias: only the affine-argument relation, never the heat equation") {
  // h = c phi(a x + b): dh/da = x dh/db whatever phi, so du/da = d2u/(dbeta1 db);
  // unlike linear experts there is no heat equation.
  const IdentReport r = run("ffn:activation=tanh", "softmax", 1, 2, IdentVersion::gate_expert, 5);  // seed 5
  CHECK(has_relation(r, {{"du/da[1]", 1.0}, {"d2u/(dbeta1 db)[1]", -1.0}}));
  CHECK(has_relation(r, {{"du/da[2]", 1.0}, {"d2u/(dbeta1 db)[2]", -1.0}}));
  CHECK(r.relations.size() == 2);
  for (const auto& rel : r.relations) CHECK(rel.note.find("heat") == std::string::npos);
}

TEST_CASE("polynomial experts give relations") {
  if (!expert_available("polynomial")) return;
  for (int p : {2, 3}) {
    CAPTURE(p);
    const std::string spec = "polynomial:p=" + std::to_string(p);
    const IdentReport g = run(spec, "softmax", 1, 2, IdentVersion::gaussian, 6);  // seed 6
    CHECK_FALSE(g.strongly_identifiable);
    CHECK(has_relation(g, {{"dh/da[1]", 1.0}, {"x_1*dh/db[1]", -1.0}}));
    const IdentReport l = run(spec, "softmax", 1, 2, IdentVersion::lse, 6);  // seed 6
    CHECK_FALSE(l.strongly_identifiable);
    // With only a free (b fixed), enough experts exhaust the polynomials of degree <= p + 1:
    // cross-expert relations at the h level. They do not lift to the density (each expert's
    // functions carry its own factor exp(beta1 x) N(y; h_j, nu_j)), so they are excused and
    // the verdict is the density version's.
    const IdentReport a = run(spec, "softmax", 1, p + 2, IdentVersion::gaussian, 6, {"a"});  // seed 6
    CHECK(a.n_h_relations > 0);
    CHECK_FALSE(a.excused.empty());
    const IdentReport ad = run(spec, "softmax", 1, p + 2, IdentVersion::density, 6, {"a"});  // seed 6
    CHECK(a.strongly_identifiable == ad.strongly_identifiable);
  }
}

TEST_CASE("gate version: softmax is full rank; temperature with a linear router has the scale relation") {
  const IdentReport s = run("linear", "softmax", 1, 3, IdentVersion::gate, 7);  // seed 7
  CHECK(s.strongly_identifiable);
  if (gating_available("temperature")) {
    const IdentReport t = run("linear", "temperature:tau=estimate,norm=none", 1, 2, IdentVersion::gate, 7);  // seed 7
    CHECK_FALSE(t.strongly_identifiable);
    REQUIRE(t.relations.size() == 1);
    CHECK(t.relations[0].note.rfind("scale invariance", 0) == 0);
    // Normalised (norm=beta1) or fixed tau: no relation.
    const IdentReport tn = run("linear", "temperature:tau=estimate,norm=beta1", 1, 2, IdentVersion::gate, 7);
    CHECK(tn.strongly_identifiable);
    const IdentReport tf = run("linear", "temperature:tau=0.5", 1, 2, IdentVersion::gate, 7);
    CHECK(tf.strongly_identifiable);
  }
  if (gating_available("activated-temperature")) {
    for (const char* act : {"sigmoid", "tanh", "gelu"}) {
      CAPTURE(act);
      const IdentReport a = run("linear", std::string("activated-temperature:act=") + act + ",tau=estimate", 1, 2,
                                IdentVersion::gate, 7);  // seed 7
      CHECK(a.strongly_identifiable);
      if (!a.strongly_identifiable) MESSAGE(a.text());
    }
  }
}

TEST_CASE("gate version: the analytic vjp rows match finite differences of log_weights") {
  const IdentSetup s = random_setup(json{{"family", "linear"}}, json{{"family", "softmax"}}, 2, 3, 8);  // seed 8
  Rng rng(8);
  const arma::mat X = draw_design("uniform:-2,2", 2, 20, rng);
  IdentOptions o;
  const FunctionSet fs = function_set(s, IdentVersion::gate, X, arma::rowvec(), o);
  const arma::vec theta = s.gating->params();
  auto g = s.gating->clone();
  for (std::size_t p = 0; p < theta.n_elem; ++p) {
    const double h = 1e-6;
    arma::vec tp = theta, tm = theta;
    tp[p] += h;
    tm[p] -= h;
    g->set_params(tp);
    const arma::mat Lp = g->log_weights(X);
    g->set_params(tm);
    const arma::mat Lm = g->log_weights(X);
    const arma::mat D = (Lp - Lm) / (2 * h);  // k x n; rows of fs.F are (i, j) = i * k + j
    for (std::size_t i = 0; i < X.n_cols; ++i)
      for (std::size_t j = 0; j < 3; ++j) CHECK(fs.F(i * 3 + j, p) == doctest::Approx(D(j, i)).epsilon(1e-6));
  }
}

TEST_CASE("--model: experiment A's linear experts give the linear relation") {
  const GaussianMoE m = experiment_a();
  const IdentSetup s = setup_from_model(m, "experiment-a");
  IdentOptions o;
  o.seed = 9;  // seed 9
  o.design = "uniform:0,1";
  const IdentReport r = identify(s, IdentVersion::gaussian, o);
  CHECK(has_relation(r, {{"dh/da[1]", 1.0}, {"x_1*dh/db[1]", -1.0}}));
  const IdentReport ge = identify(s, IdentVersion::gate_expert, o);
  CHECK(has_relation(ge, {{"du/dnu[2]", 1.0}, {"d2u/db2[2]", -0.5}}));
}

// ---------------------------------------------------------------------------
// Density level (models.md 9.5) and the h level read through it.

TEST_CASE("density version: linear experts give du/da = d2u/(dbeta1 db) and the heat equation") {
  const IdentReport r = run("linear", "softmax", 1, 2, IdentVersion::density, 3);  // seed 3
  CHECK(ident_version_name(r.version) == "density");
  CHECK_FALSE(r.strongly_identifiable);
  for (const char* j : {"1", "2"}) {
    const std::string J = std::string("[") + j + "]";
    CHECK(has_relation(r, {{"du/da" + J, 1.0}, {"d2u/(dbeta1 db)" + J, -1.0}}));
    CHECK(has_relation(r, {{"du/dnu" + J, 1.0}, {"d2u/db2" + J, -0.5}}));
  }
  CHECK(has_note(r, "heat equation"));
  CHECK(parse_ident_version("density") == IdentVersion::density);
}

TEST_CASE("density version: polynomial and ffn with a bias are NOT strongly identifiable") {
  for (const char* spec : {"polynomial:p=2", "polynomial:p=3", "ffn:sigmoid", "ffn:tanh", "ffn:gelu"}) {
    CAPTURE(spec);
    const IdentReport r = run(spec, "softmax", 1, 2, IdentVersion::density, 5);  // seed 5
    CHECK_FALSE(r.strongly_identifiable);
    // the a-b relation: du/da = d2u/(dbeta1 db)
    CHECK(has_relation(r, {{"du/da[1]", 1.0}, {"d2u/(dbeta1 db)[1]", -1.0}}));
    CHECK(has_relation(r, {{"du/da[2]", 1.0}, {"d2u/(dbeta1 db)[2]", -1.0}}));
  }
}

TEST_CASE("density version: bias-free ffn with sigmoid, tanh, gelu is strongly identifiable") {
  for (const char* act : {"sigmoid", "tanh", "gelu"}) {
    for (std::size_t k : {1, 2, 3}) {
      CAPTURE(act);
      CAPTURE(k);
      const IdentReport r = run(std::string("ffn:") + act + ",bias=false", "softmax", 1, k, IdentVersion::density, 10);
      CHECK(r.strongly_identifiable);  // seed 10
      CHECK(r.rank == r.n_functions);
      if (!r.strongly_identifiable) MESSAGE(r.text());
    }
  }
  // d = 2: the literal condition has one relation per expert, shared by every
  // ridge function h(a^T x): x_1 dh/da_2 = x_2 dh/da_1, i.e.
  // d2u/(dbeta1_1 da_2) = d2u/(dbeta1_2 da_1) (docs/identifiability.md).
  const IdentReport r2 = run("ffn:tanh,bias=false", "softmax", 2, 2, IdentVersion::density, 11);  // seed 11
  CHECK(r2.relations.size() == 2);
  CHECK(has_relation(r2, {{"d2u/(dbeta1_1 da_2)[1]", 1.0}, {"d2u/(dbeta1_2 da_1)[1]", -1.0}}));
}

TEST_CASE("density version: relu is positively homogeneous, so NOT strongly identifiable") {
  // c relu(a x) = (c/s) relu(s a x): a du/da - c du/dc = 0 for every expert.
  // d = 1: h = c relu(a x) depends on c |a| only, so there are several relations per expert.
  const IdentReport r = run("ffn:relu,bias=false", "softmax", 1, 2, IdentVersion::density, 10);  // seed 10
  CHECK_FALSE(r.strongly_identifiable);
  // d = 2: the homogeneity combination a_1 du/da_1 + a_2 du/da_2 - c du/dc vanishes.
  IdentOptions o;
  o.seed = 12;  // seed 12
  const IdentSetup s = random_setup(parse_family_spec("ffn:relu,bias=false"), parse_family_spec("softmax"), 2, 2, 12);
  const IdentReport r2 = identify(s, IdentVersion::density, o);
  CHECK_FALSE(r2.strongly_identifiable);
  Rng rng(12);
  const arma::mat X = draw_design("uniform:-2,2", 2, 200, rng);
  arma::rowvec y(200);
  for (auto& v : y) v = rng.normal();
  const FunctionSet fs = function_set(s, IdentVersion::density, X, y, o);
  for (std::size_t j = 0; j < 2; ++j) {
    auto col = [&](const std::string& name) -> arma::vec {
      for (std::size_t c = 0; c < fs.F.n_cols; ++c)
        if (fs.full_name(c) == name + "[" + std::to_string(j + 1) + "]") return fs.F.col(c);
      FAIL("no column " << name);
      return arma::vec();
    };
    const arma::vec e = s.eta(0, j) * col("du/da_1") + s.eta(1, j) * col("du/da_2") - s.eta(2, j) * col("du/dc");
    CHECK(arma::norm(e) <= 1e-12 * arma::norm(col("du/dc")) * 10);
  }
}

TEST_CASE("gaussian version: zero functions and parameterisation relations are excused, real ones kept") {
  // Bias-free sigmoid, tanh, gelu: d2h/dc2 = 0 and dh/da = c d2h/(da dc) hold at the h level
  // but not for the density: excused, and the verdict agrees with the density version.
  for (const char* act : {"sigmoid", "tanh", "gelu"}) {
    CAPTURE(act);
    const IdentReport r = run(std::string("ffn:") + act + ",bias=false", "softmax", 1, 2, IdentVersion::gaussian, 10);
    CHECK(r.strongly_identifiable);  // seed 10
    CHECK(has_zero(r, "d2h/dc2[1]"));
    CHECK(r.n_h_relations > 0);
    CHECK(r.relations.empty());
    if (!r.strongly_identifiable) MESSAGE(r.text());
  }
  // Linear, polynomial, ffn with a bias: dh/da = x dh/db lifts (du/da = d2u/(dbeta1 db)).
  for (const char* spec : {"linear", "polynomial:p=2", "ffn:tanh", "ffn:sigmoid"}) {
    CAPTURE(spec);
    const IdentReport r = run(spec, "softmax", 1, 2, IdentVersion::gaussian, 5);  // seed 5
    CHECK_FALSE(r.strongly_identifiable);
    CHECK(has_relation(r, {{"dh/da[1]", 1.0}, {"x_1*dh/db[1]", -1.0}}));
    CHECK(has_relation(r, {{"dh/da[2]", 1.0}, {"x_1*dh/db[2]", -1.0}}));
  }
  // relu: the homogeneity relation lifts.
  const IdentReport relu = run("ffn:relu,bias=false", "softmax", 1, 2, IdentVersion::gaussian, 10);  // seed 10
  CHECK_FALSE(relu.strongly_identifiable);
}
