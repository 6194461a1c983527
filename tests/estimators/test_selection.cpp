// Choosing k: range parsing, entropy and picks by hand, and a small
// selection on experiment A (k* = 2) checked against independent values.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "fixtures.hpp"
#include "moerate/core/error.hpp"
#include "moerate/estimators/selection.hpp"

using namespace moerate;
using namespace moerate::fixtures;
using doctest::Approx;

TEST_CASE("k ranges: A:B, K; empty, reversed and malformed ranges name the option") {
  CHECK(parse_k_range("1:6") == std::pair<std::size_t, std::size_t>{1, 6});
  CHECK(parse_k_range("3") == std::pair<std::size_t, std::size_t>{3, 3});
  CHECK(parse_k_range("2:2") == std::pair<std::size_t, std::size_t>{2, 2});
  for (const char* bad : {"", ":", "4:2", "0:3", "0", "a:b", "1:", ":4", "-1:3", "1:2:3", "1.5:3"}) {
    CAPTURE(bad);
    try {
      parse_k_range(bad, "--experts");
      FAIL("accepted");
    } catch (const InvalidArgument& e) {
      CHECK(std::string(e.what()).find("--experts") != std::string::npos);
    }
  }
  try {
    parse_k_range("6:1");
  } catch (const InvalidArgument& e) {
    CHECK(std::string(e.what()).find("reversed") != std::string::npos);
  }
}

TEST_CASE("classification entropy by hand (0 log 0 = 0)") {
  const arma::mat R{{1.0, 0.5, 0.25}, {0.0, 0.5, 0.75}};
  const double expected = std::log(2.0) - 0.25 * std::log(0.25) - 0.75 * std::log(0.75);
  CHECK(classification_entropy(R) == Approx(expected).epsilon(1e-14));
  arma::mat hard(2, 1, arma::fill::zeros);
  hard(0, 0) = 1.0;
  CHECK(classification_entropy(hard) == 0.0);
}

TEST_CASE("picks: the best non-degenerate fit; a better degenerate fit is recorded, never picked") {
  std::vector<SelectionRow> rows(3);
  for (std::size_t i = 0; i < 3; ++i) rows[i].k = i + 1;
  rows[0].aic = 10, rows[1].aic = 5, rows[2].aic = 7;
  rows[0].bic = 100, rows[1].bic = 90, rows[2].bic = 80;
  rows[0].icl = 100, rows[1].icl = 95, rows[2].icl = 98;
  rows[2].degenerate = true;
  const auto p = pick_criteria(rows);
  REQUIRE(p.size() == 3);
  CHECK(p[0].criterion == "aic");
  CHECK(p[0].k == 2);
  CHECK(p[0].overall_k == 2);
  CHECK(!p[0].overall_degenerate);
  CHECK(p[1].k == 2);
  CHECK(p[1].overall_k == 3);
  CHECK(p[1].overall_degenerate);
  CHECK(p[2].k == 2);
  for (auto& r : rows) r.degenerate = true;
  for (const auto& q : pick_criteria(rows)) CHECK(q.k == 0);
}

TEST_CASE("select on experiment A (n = 400, k = 1..3): criteria recomputed from the fitted models") {
  const Sim s = simulate(experiment_a(), 400, 21);
  SelectOptions o;
  o.k_min = 1;
  o.k_max = 3;
  o.fit.n_starts = 3;
  o.fit.seed = 5;
  const SelectionResult r = select_experts(s.X, s.y, o);
  REQUIRE(r.rows.size() == 3);
  const double n = 400;
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& row = r.rows[i];
    const auto& m = r.fits[i].model;
    CAPTURE(row.k);
    CHECK(m.n_experts() == row.k);
    const double ll = m.log_likelihood(s.X, s.y);
    CHECK(row.log_likelihood == Approx(ll).epsilon(1e-9));
    // Free parameters of softmax + linear experts, d = 1: 2 (k - 1) gate, 2 k expert, k variances.
    CHECK(row.n_params == 2 * (row.k - 1) + 3 * row.k);
    CHECK(row.bic == Approx(-2 * ll + std::log(n) * double(row.n_params)).epsilon(1e-9));
    CHECK(row.aic == Approx(-2 * ll + 2 * double(row.n_params)).epsilon(1e-9));
    const arma::mat R = m.responsibilities(s.X, s.y);
    double en = 0;
    for (double v : R) en -= v > 0 ? v * std::log(v) : 0.0;
    CHECK(row.icl == Approx(row.bic + 2 * en).epsilon(1e-9));
  }
  CHECK(r.rows[0].entropy == 0.0);  // one expert: every responsibility is 1
  CHECK(r.picks[1].criterion == "bic");
  CHECK(r.picks[1].k == 2);
  CHECK(r.picks[2].k == 2);
  CHECK(r.csv().find("k,log_likelihood,n_params,aic,bic,icl") == 0);
  CHECK(r.to_json()["picks"]["bic"]["k"] == 2);

  // Every variance is far below var(y) here: with tiny_variance = 1 every fit is
  // degenerate and nothing is picked.
  o.k_max = 2;
  o.tiny_variance = 1.0;
  const SelectionResult all_bad = select_experts(s.X, s.y, o);
  for (const auto& row : all_bad.rows) {
    CHECK(row.degenerate);
    CHECK(std::find(row.flags.begin(), row.flags.end(), "tiny_variance") != row.flags.end());
  }
  for (const auto& p : all_bad.picks) CHECK(p.k == 0);
  CHECK(all_bad.table().find("every fit is degenerate") != std::string::npos);
}

TEST_CASE("select: fewer observations than parameters is flagged; k above n is refused") {
  const Sim s = simulate(experiment_a(), 8, 2);
  SelectOptions o;
  o.k_min = 2;
  o.k_max = 2;  // 7 parameters, 8 observations: fine
  o.fit.n_starts = 1;
  const auto ok = select_experts(s.X, s.y, o);
  CHECK(std::find(ok.rows[0].flags.begin(), ok.rows[0].flags.end(), "underdetermined") == ok.rows[0].flags.end());
  o.k_min = o.k_max = 3;  // 12 parameters > 8 observations
  const auto r = select_experts(s.X, s.y, o);
  CHECK(r.rows[0].degenerate);
  CHECK(std::find(r.rows[0].flags.begin(), r.rows[0].flags.end(), "underdetermined") != r.rows[0].flags.end());
  o.k_min = 1;
  o.k_max = 9;
  CHECK_THROWS_AS(select_experts(s.X, s.y, o), InvalidArgument);
}

TEST_CASE("select: the same numbers with 1 and 2 threads") {
  const Sim s = simulate(experiment_a(), 300, 4);
  SelectOptions o;
  o.k_min = 2;
  o.k_max = 3;
  o.fit.n_starts = 4;
  o.fit.threads = 1;
  const auto a = select_experts(s.X, s.y, o);
  o.fit.threads = 2;
  const auto b = select_experts(s.X, s.y, o);
  for (std::size_t i = 0; i < a.rows.size(); ++i) CHECK(a.rows[i].log_likelihood == b.rows[i].log_likelihood);
}
