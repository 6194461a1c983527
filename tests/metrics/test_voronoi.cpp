// Voronoi losses (models.md section 6) and density distances: hand values,
// invariances (labels, translations, ffn symmetries), options and errors.
#include <doctest/doctest.h>

#include "fixtures.hpp"

#include <cmath>
#include <set>

#include "moerate/io/csv.hpp"
#include "moerate/model/design.hpp"
#include "moerate/metrics/distances.hpp"
#include "moerate/core/error.hpp"
#include "moerate/model/model.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/rng.hpp"
#include "moerate/metrics/voronoi.hpp"

using namespace moerate;
using namespace moerate::fixtures;
using doctest::Approx;

namespace {

// One linear expert of d = 1 with its gate: {beta0, beta1, a, b, nu}.
json lin(double beta0, double beta1, double a, double b, double nu) {
  return json{{"gate", {{"beta0", beta0}, {"beta1", {beta1}}}},
              {"expert", {{"a", {a}}, {"b", b}}},
              {"variance", nu}};
}

GaussianMoE linear_model(const std::vector<json>& experts) {
  json j{{"gating", {{"family", "softmax"}}}, {"expert_family", {{"family", "linear"}}}};
  j["experts"] = experts;
  return GaussianMoE::from_json(j, "test");
}

json ffn(double beta0, double beta1, double a, double b, double c, double nu) {
  return json{{"gate", {{"beta0", beta0}, {"beta1", {beta1}}}},
              {"expert", {{"a", {a}}, {"b", b}, {"c", c}}},
              {"variance", nu}};
}

GaussianMoE ffn_model(const std::vector<json>& experts, const std::string& act = "tanh") {
  json j{{"gating", {{"family", "softmax"}}}, {"expert_family", {{"family", "ffn"}, {"activation", act}}}};
  j["experts"] = experts;
  return GaussianMoE::from_json(j, "test");
}


std::set<std::string> names_of(const VoronoiLoss& L) {
  std::set<std::string> s;
  for (const auto& kv : L.terms) s.insert(kv.first);
  return s;
}

}  // namespace

TEST_CASE("voronoi: zero for the truth itself, after relabelling and after translating the gates") {
  const GaussianMoE truth = experiment_a();
  SUBCASE("identical") {
    const auto L = voronoi_loss(truth, truth);
    CHECK(L.kind == "D1");
    CHECK(L.convention == "reference-atoms");
    CHECK(L.total == Approx(0.0).epsilon(1e-15).scale(1.0));
    CHECK(L.terms.at("weights") == Approx(0.0).epsilon(1e-15).scale(1.0));
    CHECK(L.terms.at("cell1.size") == 1.0);
    CHECK(L.terms.at("cell2.size") == 1.0);
  }
  SUBCASE("experts permuted: the fit's last expert is not the true reference") {
    GaussianMoE fit = truth;
    fit.permute({1, 0});  // stored with old expert 1 as reference: beta0 = (8, 0), beta1 = (-25, 0)
    CHECK(fit.gating().atom_log_weight(0) == Approx(8.0).epsilon(1e-15));
    const auto L = voronoi_loss(truth, fit);
    CHECK(L.total == Approx(0.0).epsilon(1e-12).scale(1.0));
    CHECK(L.to_json()["cells"][0]["fitted_atoms"][0] == 2);
  }
  SUBCASE("gates translated by (t0, t1) = (1.3, 0.7)") {
    GaussianMoE fit = truth;
    fit.gating().translate(1.3, arma::vec{0.7});
    const auto L = voronoi_loss(truth, fit);
    CHECK(L.total == Approx(0.0).epsilon(1e-12).scale(1.0));
    // Also the truth translated (step 0 re-expresses it relative to its last expert).
    GaussianMoE t2 = truth;
    t2.gating().translate(-2.0, arma::vec{5.0});
    CHECK(voronoi_loss(t2, fit).total == Approx(0.0).epsilon(1e-12).scale(1.0));
  }
  SUBCASE("over-fitted copy: the reference expert split in two halves") {
    // Fit (k = 3): expert 2 of the truth split into two atoms of weight 1/2 each.
    const GaussianMoE fit = linear_model({lin(-8, 25, -20, 15, 0.09), lin(-std::log(2.0), 0, 20, -5, 0.16),
                                          lin(-std::log(2.0), 0, 20, -5, 0.16)});
    const auto L = voronoi_loss(truth, fit);
    CHECK(L.kind == "D2");
    CHECK(L.total == Approx(0.0).epsilon(1e-14).scale(1.0));
    CHECK(L.terms.at("cell2.size") == 2.0);
    CHECK(L.terms.at("atommax.beta1") == Approx(0.0).epsilon(1e-14).scale(1.0));
    CHECK(L.terms.at("cell.beta1") == Approx(0.0).epsilon(1e-14).scale(1.0));
  }
}

TEST_CASE("voronoi: hand values, exact-fitted fit with an empty cell") {
  // Truth: T1 = (beta0 log 2, beta1 1, a 1, b 0, nu 1), T2 = (0, 0, -1, 0, 1) the reference.
  // Fit (k = 2): F1 = (0, 0.1, -1, 0.2, 1), F2 = (0, 0, -1, 0, 1): both next to T2.
  // Step 1: both are nearest to T2 on (eta, nu) (0.04 and 0 against 4.04 and 4), R = {1, 2}.
  // Step 2: beta0 -= log(1 + 1), beta1 -= (0.1 + 0) / 2: F1 = (-log 2, 0.05, ...), F2 = (-log 2, -0.05, ...).
  // Cells: A1 = {} (T1 empty), A2 = {1, 2}. D1 (k = k*), every cell unpowered:
  //   W = |0 - 2| + |1/2 + 1/2 - 1| = 2
  //   multi = 1/2 (0.05 + 0 + 0.2 + 0) + 1/2 (0.05 + 0 + 0 + 0) = 0.125 + 0.025 = 0.15
  //   total = 2.15
  const GaussianMoE truth = linear_model({lin(std::log(2.0), 1, 1, 0, 1), lin(0, 0, -1, 0, 1)});
  const GaussianMoE fit = linear_model({lin(0, 0.1, -1, 0.2, 1), lin(0, 0, -1, 0, 1)});
  const auto L = voronoi_loss(truth, fit);
  CHECK(L.kind == "D1");
  CHECK(L.terms.at("weights") == Approx(2.0).epsilon(1e-14));
  CHECK(L.terms.at("singleton") == Approx(0.0).epsilon(1e-14).scale(1.0));
  CHECK(L.terms.at("multi") == Approx(0.15).epsilon(1e-13));
  CHECK(L.total == Approx(2.15).epsilon(1e-13));
  CHECK(L.terms.at("cell1.size") == 0.0);
  CHECK(L.terms.at("cell1.weight") == Approx(2.0).epsilon(1e-14));
  CHECK(std::isnan(L.terms.at("cell1.beta1")));
  CHECK(std::isnan(L.terms.at("cell1.nu")));
  CHECK(L.terms.at("cell2.size") == 2.0);
  CHECK(L.terms.at("cell2.beta1") == Approx(0.05).epsilon(1e-13));
  // Cell of two, D1 (exponent 1): weighted means (1/2 0.2 + 1/2 0) / 1 = 0.1; the
  // unweighted atom maximum is 0.2.
  CHECK(L.terms.at("cell2.b") == Approx(0.1).epsilon(1e-13));
  CHECK(L.terms.at("cell.b") == Approx(0.1).epsilon(1e-13));
  CHECK(L.terms.at("cell2.atommax.b") == Approx(0.2).epsilon(1e-13));
  CHECK(L.terms.at("atommax.b") == Approx(0.2).epsilon(1e-13));
  CHECK(L.terms.at("exact.b") == 0.0);
  const json j = L.to_json();
  CHECK(j["loss"].get<double>() == Approx(2.15).epsilon(1e-13));
  CHECK(j["cells"][0]["size"] == 0);
  CHECK(j["cells"][0]["errors"]["beta1"].is_null());
  CHECK(j["terms"]["cell1.a"].is_null());
  CHECK(j["translation"]["reference_atoms"] == json::array({1, 2}));
}

TEST_CASE("voronoi: hand values, over-fitted fit with a cell of three (rbar(3) = 6)") {
  // Truth: T1 = (0, 2, 3, 1, 0.5), T2 = (0, 0, -1, 0, 1) the reference; fit k = 4:
  //   F1 = (log 0.5,  2.1, 3,   1,   0.5)  D beta1 = 0.1
  //   F2 = (log 0.25, 2,   3.2, 1,   0.5)  D a = 0.2
  //   F3 = (log 0.5,  2,   3,   0.9, 0.7)  D b = 0.1, D nu = 0.2
  //   F4 = T2 exactly (R = {4}, no shift)
  // A1 = {1, 2, 3}, A2 = {4}. W = |1.25 - 1| + 0 = 0.25, S = 0.
  // Cell of 3, linear experts: r = 6, exponents beta1 6, b 6, a 3, nu 3:
  //   F1: 0.5 * 0.1^6 = 5e-7;  F2: 0.25 * 0.2^3 = 0.002;  F3: 0.5 (0.1^6 + 0.2^3) = 0.0040005
  //   multi = 0.006001, total = 0.256001
  const GaussianMoE truth = linear_model({lin(0, 2, 3, 1, 0.5), lin(0, 0, -1, 0, 1)});
  const GaussianMoE fit = linear_model({lin(std::log(0.5), 2.1, 3, 1, 0.5), lin(std::log(0.25), 2, 3.2, 1, 0.5),
                                        lin(std::log(0.5), 2, 3, 0.9, 0.7), lin(0, 0, -1, 0, 1)});
  const auto L = voronoi_loss(truth, fit);
  CHECK(L.kind == "D2");
  CHECK(L.terms.at("weights") == Approx(0.25).epsilon(1e-14));
  CHECK(L.terms.at("singleton") == Approx(0.0).epsilon(1e-14).scale(1.0));
  CHECK(L.terms.at("multi") == Approx(0.006001).epsilon(1e-12));
  CHECK(L.total == Approx(0.256001).epsilon(1e-13));
  CHECK(L.terms.at("cell1.size") == 3.0);
  CHECK(L.terms.at("atommax.beta1") == Approx(0.1).epsilon(1e-12));
  CHECK(L.terms.at("atommax.a") == Approx(0.2).epsilon(1e-12));
  CHECK(L.terms.at("atommax.b") == Approx(0.1).epsilon(1e-12));
  CHECK(L.terms.at("atommax.nu") == Approx(0.2).epsilon(1e-12));
  // Weighted power means over the cell (total weight 1.25), models.md 9.2:
  //   beta1, b: (0.5 0.1^6 / 1.25)^(1/6);  a: (0.25 0.2^3 / 1.25)^(1/3);  nu: (0.5 0.2^3 / 1.25)^(1/3)
  CHECK(L.terms.at("cell.beta1") == Approx(std::pow(0.5 * 1e-6 / 1.25, 1.0 / 6)).epsilon(1e-12));
  CHECK(L.terms.at("cell.b") == Approx(std::pow(0.5 * 1e-6 / 1.25, 1.0 / 6)).epsilon(1e-12));
  CHECK(L.terms.at("cell.a") == Approx(std::pow(0.25 * 0.008 / 1.25, 1.0 / 3)).epsilon(1e-12));
  CHECK(L.terms.at("cell.nu") == Approx(std::pow(0.5 * 0.008 / 1.25, 1.0 / 3)).epsilon(1e-12));
  CHECK(L.terms.at("cell1.a") == L.terms.at("cell.a"));
  CHECK(L.terms.at("exact.beta1") == Approx(0.0).epsilon(1e-14).scale(1.0));
  CHECK(L.to_json()["exponents"]["by_cell_size"]["3"]["a"] == 3.0);

  SUBCASE("a user rbar(3) changes the exponents") {
    // r = 8 (exponents beta1 8, b 8, a 4, nu 4): F1 0.5 * 0.1^8 = 5e-9; F2 0.25 * 0.2^4 = 4e-4;
    // F3 0.5 (0.1^8 + 0.2^4) = 8.00005e-4 -> multi = 1.20001e-3.
    VoronoiOptions opt;
    opt.rbar[3] = 8;
    CHECK(voronoi_loss(truth, fit, opt).terms.at("multi") == Approx(1.20001e-3).epsilon(1e-12));
  }
  SUBCASE("a cell of four needs a user rbar(4)") {
    // Add F5 = (log 0.25, 2, 3, 1, 0.5) (exact) to cell 1: weight 1.5, W = 0.5; with rbar(4) = 8
    // (exponents 8 and 4) multi = 5e-9 + 0.25 * 0.2^4 + 0.5 (1e-8 + 0.2^4) + 0 = 1.20001e-3.
    const GaussianMoE fit5 = linear_model({lin(std::log(0.5), 2.1, 3, 1, 0.5), lin(std::log(0.25), 2, 3.2, 1, 0.5),
                                           lin(std::log(0.5), 2, 3, 0.9, 0.7), lin(std::log(0.25), 2, 3, 1, 0.5),
                                           lin(0, 0, -1, 0, 1)});
    CHECK_THROWS_WITH_AS(voronoi_loss(truth, fit5), doctest::Contains("no rbar known for a Voronoi cell of 4"),
                         InvalidArgument);
    VoronoiOptions opt;
    opt.rbar[4] = 8;
    const auto L5 = voronoi_loss(truth, fit5, opt);
    CHECK(L5.terms.at("weights") == Approx(0.5).epsilon(1e-14));
    CHECK(L5.terms.at("multi") == Approx(1.20001e-3).epsilon(1e-12));
  }
}

TEST_CASE("voronoi: singleton cells and strongly identifiable experts, hand values") {
  // ffn tanh truth T1 = (0, 1, a 2, b 0, c 1, nu 0.5), T2 = (0, 0, -1, 1, 2, 1).
  // Fit: F1 = T1 with D a = 0.3 and beta0 = log 1.5; F2, F3 = T2 split, F3 with D c = 0.4 and
  // sign-flipped (a, b, c) -> (1, -1, -2.4): equivalent to (-1, 1, 2.4).
  // R = {2, 3}: weights 1/2 + 1/2 = 1, locations 0: no shift.
  // W = |1.5 - 1| + 0 = 0.5;  S = 1.5 * 0.3 = 0.45;  multi (exponent 2) = 0.5 * 0.4^2 = 0.08.
  const GaussianMoE truth = ffn_model({ffn(0, 1, 2, 0, 1, 0.5), ffn(0, 0, -1, 1, 2, 1)});
  const GaussianMoE fit = ffn_model({ffn(std::log(1.5), 1, 2.3, 0, 1, 0.5), ffn(-std::log(2.0), 0, -1, 1, 2, 1),
                                     ffn(-std::log(2.0), 0, 1, -1, -2.4, 1)});
  const auto L = voronoi_loss(truth, fit);
  CHECK(L.kind == "D2");
  CHECK(L.terms.at("weights") == Approx(0.5).epsilon(1e-14));
  CHECK(L.terms.at("singleton") == Approx(0.45).epsilon(1e-13));
  CHECK(L.terms.at("multi") == Approx(0.08).epsilon(1e-13));
  CHECK(L.terms.at("exact.a") == Approx(0.3).epsilon(1e-13));
  CHECK(L.terms.at("atommax.c") == Approx(0.4).epsilon(1e-13));
  CHECK(L.terms.at("atommax.a") == Approx(0.0).epsilon(1e-14).scale(1.0));
  CHECK(L.terms.at("cell.c") == Approx(std::sqrt(0.5 * 0.16)).epsilon(1e-13));  // (1/2 0.4^2 / 1)^(1/2)
  CHECK(L.to_json()["exponents"]["by_cell_size"]["2"]["b"] == 2.0);
}

TEST_CASE("voronoi: ffn tanh with sign-flipped experts gives 0") {
  const GaussianMoE truth = ffn_model({ffn(-1, 3, 2, -1, 1.5, 0.2), ffn(0, 0, -1, 0.5, 2, 0.3)});
  const GaussianMoE flipped = ffn_model({ffn(-1, 3, -2, 1, -1.5, 0.2), ffn(0, 0, 1, -0.5, -2, 0.3)});
  CHECK(voronoi_loss(truth, flipped).total == Approx(0.0).epsilon(1e-14).scale(1.0));
  GaussianMoE perm = flipped;
  perm.permute({1, 0});
  CHECK(voronoi_loss(truth, perm).total == Approx(0.0).epsilon(1e-12).scale(1.0));
  // sigmoid has no sign symmetry: the same flip is a real error.
  const GaussianMoE ts = ffn_model({ffn(-1, 3, 2, -1, 1.5, 0.2), ffn(0, 0, -1, 0.5, 2, 0.3)}, "sigmoid");
  const GaussianMoE fs = ffn_model({ffn(-1, 3, -2, 1, -1.5, 0.2), ffn(0, 0, 1, -0.5, -2, 0.3)}, "sigmoid");
  CHECK(voronoi_loss(ts, fs).total > 1.0);
}

TEST_CASE("voronoi: the loss grows as a parameter moves away") {
  const GaussianMoE truth = experiment_a();
  double prev_d1 = -1, prev_d2 = -1;
  for (double delta : {0.0, 0.01, 0.05, 0.2, 1.0}) {
    // Exact-fitted: move b of expert 1.
    const GaussianMoE f1 = linear_model({lin(-8, 25, -20, 15 + delta, 0.09), lin(0, 0, 20, -5, 0.16)});
    const double d1 = voronoi_loss(truth, f1).total;
    CHECK(d1 > prev_d1);
    prev_d1 = d1;
    // Over-fitted: split expert 1 and move beta1 of one half.
    const double h = std::log(0.5) - 8;
    const GaussianMoE f2 = linear_model({lin(h, 25 + delta, -20, 15, 0.09), lin(h, 25, -20, 15, 0.09),
                                         lin(0, 0, 20, -5, 0.16)});
    const auto L2 = voronoi_loss(truth, f2);
    CHECK(L2.total > prev_d2);
    CHECK(L2.terms.at("atommax.beta1") == Approx(delta).epsilon(1e-10).scale(1.0));
    prev_d2 = L2.total;
  }
}

TEST_CASE("voronoi: infimum over translations is never above the default (seed 3)") {
  const GaussianMoE truth = experiment_a();
  Rng rng(3);
  VoronoiOptions inf;
  inf.infimum_translation = true;
  for (int rep = 0; rep < 5; ++rep) {
    // Perturbed over-fitted fits.
    const GaussianMoE fit = linear_model(
        {lin(-8 + 0.3 * rng.normal(), 25 + rng.normal(), -20 + 0.5 * rng.normal(), 15 + 0.5 * rng.normal(), 0.09),
         lin(-1 + 0.3 * rng.normal(), 0.5 * rng.normal(), 20 + 0.5 * rng.normal(), -5 + 0.3 * rng.normal(), 0.16),
         lin(-1 + 0.3 * rng.normal(), 0.5 * rng.normal(), 20 + 0.5 * rng.normal(), -5 + 0.3 * rng.normal(), 0.16)});
    const auto Ld = voronoi_loss(truth, fit);
    const auto Li = voronoi_loss(truth, fit, inf);
    CHECK(Li.convention == "infimum");
    CHECK(Li.total <= Ld.total);
    CHECK(names_of(Li) == names_of(Ld));
    CHECK(Li.to_json()["translation"].contains("method"));
  }
  // A case where the default is not optimal. Truth T1 = (2, 1, a 1, b 0, nu 1) (weight e^2),
  // T2 = (0, 0, -1, 0, 1). Fit: T2 exactly and T1 with beta1 = 0.9. Default (no shift, R = {2}):
  // S = e^2 * 0.1. Translating beta1 by t1 costs e^2 |0.1 - t1| + 1 |t1|: infimum 0.1 at t1 = 0.1.
  const GaussianMoE t3 = linear_model({lin(2, 1, 1, 0, 1), lin(0, 0, -1, 0, 1)});
  const GaussianMoE f3 = linear_model({lin(2, 0.9, 1, 0, 1), lin(0, 0, -1, 0, 1)});
  CHECK(voronoi_loss(t3, f3).total == Approx(std::exp(2.0) * 0.1).epsilon(1e-12));
  const auto L3 = voronoi_loss(t3, f3, inf);
  CHECK(L3.total == Approx(0.1).epsilon(1e-6));
  CHECK(L3.to_json()["translation"]["t1"][0].get<double>() == Approx(0.1).epsilon(1e-6));
}

TEST_CASE("voronoi: term names depend only on the truth, k and the families") {
  const GaussianMoE truth = experiment_a();
  const GaussianMoE a = linear_model({lin(-8, 25, -20, 15, 0.09), lin(-1, 0, 20, -5, 0.16), lin(-1, 0, 20, -5, 0.16)});
  const GaussianMoE b = linear_model({lin(-8, 25, -20, 15, 0.09), lin(-1, 25, -20, 15, 0.09), lin(0, 0, 20, -5, 0.16)});
  const auto La = voronoi_loss(truth, a), Lb = voronoi_loss(truth, b);
  CHECK(names_of(La) == names_of(Lb));
  for (const char* n : {"weights", "singleton", "multi", "exact.beta1", "exact.a", "exact.b", "exact.nu",
                        "atommax.beta1", "atommax.a", "atommax.b", "atommax.nu", "cell.beta1", "cell.a",
                        "cell.b", "cell.nu", "cell1.beta1", "cell2.nu", "cell1.atommax.b",
                        "cell1.size", "cell2.weight"})
    CHECK(La.terms.count(n) == 1);
  CHECK(std::isnan(voronoi_loss(truth, truth).terms.at("cell.b")));  // no cell of two or more
}

TEST_CASE("voronoi: invalid inputs") {
  const GaussianMoE truth = experiment_a();
  const GaussianMoE f = ffn_model({ffn(0, 1, 2, 0, 1, 0.5), ffn(0, 0, -1, 1, 2, 1)});
  CHECK_THROWS_WITH_AS(voronoi_loss(truth, f), doctest::Contains("same expert family"), InvalidArgument);
  VoronoiOptions bad;
  bad.rbar[1] = 3;
  CHECK_THROWS_AS(bad.validate(), InvalidArgument);
  bad.rbar = {{4, -1.0}};
  CHECK_THROWS_AS(voronoi_loss(truth, truth, bad), InvalidArgument);
}

TEST_CASE("density distances: zero for identical models (seed 7)") {
  const GaussianMoE m = experiment_a();
  const auto D = density_distances(m, m, "uniform:0,1", 200, 7);
  CHECK(D.hellinger == 0.0);
  CHECK(D.tv == 0.0);
  CHECK(D.l2 == 0.0);
  CHECK(D.hellinger_se == 0.0);
}

TEST_CASE("density distances: two single Gaussians against closed forms (seed 2)") {
  // k = 1, a = 0: p(y|x) = N(m, v) for every x, so every x gives the same value and the se is 0.
  SUBCASE("equal variances: h^2 = 1 - exp(-D^2 / (8 v)), TV = erf(|D| / (2 sqrt(2 v)))") {
    const GaussianMoE p = linear_model({lin(0, 0, 0, 1.0, 0.25)});
    const GaussianMoE q = linear_model({lin(0, 0, 0, 1.3, 0.25)});
    const auto D = density_distances(q, p, "uniform:0,1", 50, 2);
    const double dm = 0.3, v = 0.25;
    CHECK(D.hellinger == Approx(std::sqrt(-std::expm1(-dm * dm / (8 * v)))).epsilon(1e-9));
    CHECK(D.tv == Approx(std::erf(dm / (2 * std::sqrt(2 * v)))).epsilon(1e-9));
    CHECK(D.l2 == Approx(dm).epsilon(1e-12));
    CHECK(D.l2_se == Approx(0.0).epsilon(1e-12).scale(1.0));
    CHECK(D.hellinger_se == Approx(0.0).epsilon(1e-9).scale(1.0));
  }
  SUBCASE("different variances: h^2 = 1 - sqrt(2 s1 s2 / (s1^2 + s2^2)) exp(-D^2 / (4 (s1^2 + s2^2)))") {
    const GaussianMoE p = linear_model({lin(0, 0, 0, 0.0, 1.0)});
    const GaussianMoE q = linear_model({lin(0, 0, 0, 0.5, 4.0)});
    const auto D = density_distances(p, q, "normal:0,1", 20, 2);
    const double s1 = 1, s2 = 2, dm = 0.5;
    const double bc = std::sqrt(2 * s1 * s2 / (s1 * s1 + s2 * s2)) * std::exp(-dm * dm / (4 * (s1 * s1 + s2 * s2)));
    CHECK(D.hellinger == Approx(std::sqrt(1 - bc)).epsilon(1e-9));
  }
  SUBCASE("tiny distances keep their relative accuracy") {
    const GaussianMoE p = linear_model({lin(0, 0, 0, 1.0, 0.25)});
    const GaussianMoE q = linear_model({lin(0, 0, 0, 1.0 + 1e-6, 0.25)});
    const auto D = density_distances(q, p, "uniform:0,1", 10, 2);
    const double dm = 1e-6, v = 0.25;
    CHECK(D.hellinger == Approx(std::sqrt(-std::expm1(-dm * dm / (8 * v)))).epsilon(1e-6));
    CHECK(D.tv == Approx(std::erf(dm / (2 * std::sqrt(2 * v)))).epsilon(1e-6));
  }
}

TEST_CASE("density distances: mixtures against a fine independent trapezoid rule") {
  // One x: the experiment A truth against a perturbed fit, integrated on 400001 points.
  const GaussianMoE t = experiment_a();
  const GaussianMoE f = linear_model({lin(-7.5, 24, -19, 14.6, 0.12), lin(0, 0, 20.5, -5.2, 0.14)});
  const arma::mat X(1, 1, arma::fill::value(0.33));
  const arma::vec lwt = t.log_weights(X).col(0), lwf = f.log_weights(X).col(0);
  const arma::vec mt = t.expert_means(X).col(0), mf = f.expert_means(X).col(0);
  const auto ht = hellinger_tv_mixtures(lwf, mf, f.nu(), lwt, mt, t.nu());
  auto dens = [](const arma::vec& lw, const arma::vec& m, const arma::vec& v, double y) {
    double s = 0;
    for (std::size_t j = 0; j < m.n_elem; ++j) s += std::exp(lw[j] + log_normal_pdf(y, m[j], v[j]));
    return s;
  };
  const double lo = -20, hi = 20;
  const std::size_t n = 400001;
  const double dy = (hi - lo) / double(n - 1);
  double h2 = 0, tv = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const double y = lo + dy * double(i), w = (i == 0 || i + 1 == n) ? 0.5 : 1.0;
    const double p = dens(lwf, mf, f.nu(), y), q = dens(lwt, mt, t.nu(), y);
    h2 += w * (std::sqrt(p) - std::sqrt(q)) * (std::sqrt(p) - std::sqrt(q));
    tv += w * std::abs(p - q);
  }
  h2 *= 0.5 * dy;
  tv *= 0.5 * dy;
  CHECK(ht.first > 0.01);
  CHECK(ht.first == Approx(std::sqrt(h2)).epsilon(1e-7));
  CHECK(ht.second == Approx(tv).epsilon(1e-7));
}

TEST_CASE("density distances: regression model uses the truth's noise variance (seed 4)") {
  json j = json::parse(kExperimentA);
  j["model"] = "regression";
  for (auto& e : j["experts"]) e.erase("variance");
  j["noise_variance"] = 0.5;
  const GaussianMoE t = GaussianMoE::from_json(j, "t");
  j["experts"][0]["expert"]["b"] = 15.2;
  const GaussianMoE f = GaussianMoE::from_json(j, "f");
  const auto D = density_distances(t, f, "grid:0,1", 101, 4);
  // Independent: the same grid, closed forms per x.
  Rng rng(4);
  const arma::mat X = draw_design("grid:0,1", 1, 101, rng);
  const arma::rowvec dfx = f.regression_function(X) - t.regression_function(X);
  CHECK(D.l2 == Approx(std::sqrt(arma::mean(arma::square(dfx)))).epsilon(1e-13));
  double h = 0;
  for (double v : dfx) h += std::sqrt(1 - std::exp(-v * v / (8 * 0.5)));
  CHECK(D.hellinger == Approx(h / 101).epsilon(1e-9));
  const auto L = voronoi_loss(t, f);
  CHECK(L.terms.count("exact.nu") == 0);
  CHECK(L.terms.at("exact.b") == Approx(0.2).epsilon(1e-12));
}
