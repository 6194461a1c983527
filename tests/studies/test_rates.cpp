// Tests of convergence-rate fitting (moerate/rates.hpp): synthetic loss tables
// of known exponent, with noise, must give back the exponent inside its
// bootstrap interval; accounting of failed and capped rows; results tables.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <map>

#include "moerate/core/error.hpp"
#include "moerate/studies/rates.hpp"
#include "moerate/studies/best_of.hpp"
#include "moerate/core/rng.hpp"

using namespace moerate;

namespace {

// log-spaced grid of n_sizes sizes in [lo, hi], rounded to integers.
std::vector<double> log_grid(double lo, double hi, int n_sizes) {
  std::vector<double> out;
  for (int i = 0; i < n_sizes; ++i)
    out.push_back(std::round(std::exp(std::log(lo) + (std::log(hi) - std::log(lo)) * i / (n_sizes - 1))));
  return out;
}

// L = C rate(n) exp(sigma z): multiplicative log-normal noise.
template <class Rate>
LossTable synthetic(std::uint64_t seed, const std::vector<double>& sizes, int n_reps, double c,
                    double sigma, Rate rate) {
  Rng rng(seed);
  LossTable t;
  for (double n : sizes)
    for (int r = 0; r < n_reps; ++r) {
      t.n.push_back(n);
      t.rep.push_back(r);
      t.loss.push_back(c * rate(n) * std::exp(sigma * rng.normal()));
      t.status.push_back(RowStatus::ok);
    }
  return t;
}

LossTable power_table(std::uint64_t seed, double e, double sigma = 0.5, int n_reps = 20) {
  return synthetic(seed, log_grid(100, 1e5, 12), n_reps, 3.0, sigma,
                   [e](double n) { return std::pow(n, -e); });
}

}  // namespace

TEST_CASE("fit_line recovers an exact line and its residual sum of squares") {
  const std::vector<double> x = {1, 2, 3, 5, 8};
  std::vector<double> y;
  for (double v : x) y.push_back(2.5 - 0.75 * v);
  const LineFit f = fit_line(x, y);
  CHECK(f.exponent == doctest::Approx(0.75).epsilon(1e-12));
  CHECK(f.intercept == doctest::Approx(2.5).epsilon(1e-12));
  CHECK(f.rss < 1e-24);
  // Known residuals: y = (0, 0, 3) at x = (0, 1, 2): line 0.5 x - 0.5... fitted slope 1.5,
  // intercept -0.5, residuals (0.5, -1, 0.5), rss 1.5.
  const LineFit g = fit_line({0, 1, 2}, {0, 0, 3});
  CHECK(g.exponent == doctest::Approx(-1.5).epsilon(1e-12));
  CHECK(g.intercept == doctest::Approx(-0.5).epsilon(1e-12));
  CHECK(g.rss == doctest::Approx(1.5).epsilon(1e-12));
  CHECK_THROWS_AS(fit_line({1, 1, 1}, {1, 2, 3}), InvalidArgument);
  CHECK_THROWS_AS(fit_line({1, 2}, {1}), InvalidArgument);
}

TEST_CASE("quantile uses linear interpolation (type 7)") {
  const std::vector<double> v = {4, 1, 3, 2};
  CHECK(quantile(v, 0.5) == doctest::Approx(2.5).epsilon(1e-15));
  CHECK(quantile(v, 0.0) == doctest::Approx(1.0).epsilon(1e-15));
  CHECK(quantile(v, 1.0) == doctest::Approx(4.0).epsilon(1e-15));
  CHECK(quantile(v, 0.1) == doctest::Approx(1.3).epsilon(1e-14));
  CHECK_THROWS_AS(quantile({}, 0.5), InvalidArgument);
  CHECK_THROWS_AS(quantile(v, 1.5), InvalidArgument);
}

TEST_CASE("noise-free power law: every estimator gives the exponent exactly") {
  // seed 7 unused in the values (sigma = 0).
  const LossTable t = power_table(7, 0.5, 0.0, 3);
  RateFitOptions o;
  o.bootstrap = 50;
  const RateFit f = fit_rate(t, o);
  REQUIRE(f.fitted);
  CHECK(f.exponent == doctest::Approx(0.5).epsilon(1e-10));
  CHECK(f.intercept == doctest::Approx(std::log(3.0)).epsilon(1e-10));
  CHECK(f.exponent_mean == doctest::Approx(0.5).epsilon(1e-10));
  CHECK(f.exponent_median == doctest::Approx(0.5).epsilon(1e-10));
  CHECK(f.ci_low == doctest::Approx(0.5).epsilon(1e-10));
  CHECK(f.ci_high == doctest::Approx(0.5).epsilon(1e-10));
  CHECK(f.preferred_model == "power");
  CHECK(f.n_used == 36);
}

TEST_CASE("noisy power laws of known exponent: the exponent lies inside its interval") {
  // seeds 11, 12, 13 for e = 1/2, 1/4, 1/8; sigma = 0.5 on log L, 20 replicates, 12 sizes.
  const double exps[] = {0.5, 0.25, 0.125};
  for (int i = 0; i < 3; ++i) {
    CAPTURE(exps[i]);
    const LossTable t = power_table(11 + i, exps[i]);
    RateFitOptions o;
    o.bootstrap = 1000;
    const RateFit f = fit_rate(t, o);
    REQUIRE(f.fitted);
    CHECK(f.ci_low < exps[i]);
    CHECK(exps[i] < f.ci_high);
    CHECK(f.ci_low < f.exponent);
    CHECK(f.exponent < f.ci_high);
    // Width: sd of the slope is about 0.5 / sqrt(240 * var(log n)) ~ 0.016.
    CHECK(f.ci_high - f.ci_low < 0.12);
    CHECK(f.ci_high - f.ci_low > 0.02);
    CHECK(f.exponent_median == doctest::Approx(exps[i]).epsilon(0.1 / exps[i]));
    CHECK(f.exponent_mean == doctest::Approx(exps[i]).epsilon(0.1 / exps[i]));
    CHECK(f.ci_median.low < f.exponent_median);
    CHECK(f.exponent_median < f.ci_median.high);
    // Windows: start at q = 0 (the full fit), then drop the smallest sizes.
    REQUIRE(f.window.size() >= 5);
    CHECK(f.window[0].n_min == doctest::Approx(100).epsilon(1e-15));
    CHECK(f.window[0].exponent == doctest::Approx(f.exponent).epsilon(1e-12));
    for (std::size_t w = 1; w < f.window.size(); ++w) {
      CHECK(f.window[w].n_min > f.window[w - 1].n_min);
      CHECK(f.window[w].n_sizes >= 3);
      CHECK(f.window[w].ci_high - f.window[w].ci_low > f.ci_high - f.ci_low);  // less data
    }
    REQUIRE(f.band.size() == 41);
    CHECK(f.band.front().n == doctest::Approx(100).epsilon(1e-12));
    CHECK(f.band.back().n == doctest::Approx(1e5).epsilon(1e-12));
    for (const auto& b : f.band) {
      CHECK(b.low <= b.fit);
      CHECK(b.fit <= b.high);
    }
  }
}

TEST_CASE("the bootstrap interval has roughly its nominal coverage") {
  // 60 datasets with seeds 1000..1059, e = 0.25, 10 replicates; 90% intervals.
  int covered = 0;
  for (int s = 0; s < 60; ++s) {
    const LossTable t = power_table(1000 + s, 0.25, 0.7, 10);
    RateFitOptions o;
    o.bootstrap = 400;
    o.level = 0.90;
    o.seed = 5;
    o.window_starts = {0.0};
    const RateFit f = fit_rate(t, o);
    if (f.ci_low < 0.25 && 0.25 < f.ci_high) ++covered;
  }
  CHECK(covered >= 48);  // nominal 54 of 60
  CHECK(covered <= 59);  // an interval that always covers is too wide
}

TEST_CASE("the bootstrap is deterministic for a seed and changes with it") {
  const LossTable t = power_table(21, 0.5);  // seed 21
  RateFitOptions o;
  o.bootstrap = 300;
  o.seed = 3;
  const RateFit a = fit_rate(t, o);
  const RateFit b = fit_rate(t, o);
  CHECK(a.ci_low == b.ci_low);
  CHECK(a.ci_high == b.ci_high);
  CHECK(a.window.back().ci_low == b.window.back().ci_low);
  CHECK(a.to_json().dump() == b.to_json().dump());
  o.seed = 4;
  const RateFit c = fit_rate(t, o);
  CHECK(c.exponent == a.exponent);
  CHECK(c.ci_low != a.ci_low);
}

TEST_CASE("model comparison: the generating family is preferred") {
  RateFitOptions o;
  o.bootstrap = 300;
  o.window_starts = {0.0};
  const auto sizes = log_grid(100, 1e6, 15);
  SUBCASE("power law n^(-1/2) (seed 31)") {
    const LossTable t = synthetic(31, sizes, 20, 1.0, 0.3, [](double n) { return std::pow(n, -0.5); });
    const RateFit f = fit_rate(t, o);
    CHECK(f.preferred_model == "power");
    CHECK(f.models[0].bootstrap_support > 0.5);  // log_power is a close rival
    CHECK(f.models[2].bootstrap_support < 0.01);
    CHECK(f.models[2].delta_bic > 10);
  }
  SUBCASE("slow rate (log n)^(-2) (seed 32)") {
    const LossTable t = synthetic(32, sizes, 20, 1.0, 0.1, [](double n) { return std::pow(std::log(n), -2.0); });
    const RateFit f = fit_rate(t, o);
    CHECK(f.preferred_model == "slow");
    CHECK(f.slow_rate_exponent == doctest::Approx(2.0).epsilon(0.05));
    CHECK(f.models[0].delta_bic > 10);
  }
  SUBCASE("(log n / n)^(1/2) (seed 33)") {
    const LossTable t = synthetic(33, sizes, 40, 1.0, 0.05,
                                  [](double n) { return std::pow(std::log(n) / n, 0.5); });
    const RateFit f = fit_rate(t, o);
    CHECK(f.preferred_model == "log_power");
    CHECK(f.exponent_logn_over_n == doctest::Approx(0.5).epsilon(0.02));
    // The plain power fit is biased low by the log factor.
    CHECK(f.exponent < 0.49);
  }
}

TEST_CASE("failed, capped, missing and non-positive rows are counted, not averaged in") {
  LossTable t = power_table(41, 0.5);  // seed 41
  RateFitOptions o;
  o.bootstrap = 200;
  const RateFit clean = fit_rate(t, o);
  LossTable dirty = t;
  auto add = [&](double n, double loss, RowStatus st) {
    dirty.n.push_back(n);
    dirty.rep.push_back(99);
    dirty.loss.push_back(loss);
    dirty.status.push_back(st);
  };
  add(100, 1e12, RowStatus::failed);
  add(100, std::numeric_limits<double>::quiet_NaN(), RowStatus::failed);
  add(1e5, std::numeric_limits<double>::quiet_NaN(), RowStatus::ok);
  add(1e5, 0.0, RowStatus::ok);
  add(1e5, -1.0, RowStatus::ok);
  add(1e5, std::numeric_limits<double>::infinity(), RowStatus::ok);
  const RateFit d = fit_rate(dirty, o);
  CHECK(d.n_failed == 2);
  CHECK(d.n_missing == 1);
  CHECK(d.n_nonpositive == 3);
  CHECK(d.n_used == clean.n_used);
  CHECK(d.n_rows == clean.n_rows + 6);
  CHECK(d.exponent == clean.exponent);
  CHECK(d.ci_low == clean.ci_low);

  // A capped row with a huge loss at large n: included (and counted) by default.
  add(1e5, 1e3, RowStatus::capped);
  const RateFit inc = fit_rate(dirty, o);
  CHECK(inc.n_capped == 1);
  CHECK(inc.n_used == clean.n_used + 1);
  CHECK(inc.exponent < clean.exponent - 0.01);
  o.exclude_capped = true;
  const RateFit exc = fit_rate(dirty, o);
  CHECK(exc.n_capped == 1);
  CHECK(exc.capped_excluded);
  CHECK(exc.n_used == clean.n_used);
  CHECK(exc.exponent == clean.exponent);

  const auto sum = summarise_by_n(dirty, false);
  REQUIRE(sum.size() == 12);
  CHECK(sum.back().n_reps == 21);
  CHECK(sum.front().n_reps == 20);
  CHECK(sum.front().q_low <= sum.front().median);
  CHECK(sum.front().median <= sum.front().q_high);
}

TEST_CASE("too little data is a status, malformed input an exception") {
  LossTable one;
  one.n = {100, 100, 200};
  one.loss = {1, 2, std::numeric_limits<double>::quiet_NaN()};
  const RateFit f = fit_rate(one);
  CHECK_FALSE(f.fitted);
  CHECK(f.note.find("fewer than 2") != std::string::npos);
  CHECK(f.n_missing == 1);

  LossTable bad;
  bad.n = {100, 1};
  bad.loss = {1, 2};
  CHECK_THROWS_AS(fit_rate(bad), InvalidArgument);
  bad.n = {100};
  CHECK_THROWS_AS(fit_rate(bad), InvalidArgument);

  RateFitOptions o;
  o.level = 1.0;
  CHECK_THROWS_AS(o.validate(), InvalidArgument);
  o = {};
  o.bootstrap = -1;
  CHECK_THROWS_AS(o.validate(), InvalidArgument);
  o = {};
  o.window_starts = {0.0, 1.0};
  CHECK_THROWS_AS(o.validate(), InvalidArgument);
  CHECK_NOTHROW(RateFitOptions{}.validate());
}

TEST_CASE("results tables: metric columns, settings and stop reasons") {
  CsvTable t;
  t.header = {"setting", "n", "rep", "k", "seed", "estimator", "init", "stop_reason", "iterations",
              "log_likelihood", "seconds", "m.loss", "m.cell2.beta1"};
  auto row = [&](std::string s, std::string n, std::string rep, std::string stop, std::string loss,
                 std::string b1) {
    t.rows.push_back({s, n, rep, "3", "1", "em", "kmeans", stop, "10", "-1", "0.1", loss, b1});
  };
  row("linear k=3", "100", "0", "converged", "0.5", "0.9");
  row("linear k=3", "1000", "0", "max_iter", "0.1", "nan");
  row("linear k=3", "1000", "1", "failed", "", "");
  row("ffn k=3", "100", "0", "non_finite", "nan", "");
  row("ffn k=3", "1000", "0", "converged", "2.5e-2", "");
  CHECK(metric_columns(t) == std::vector<std::string>{"m.loss", "m.cell2.beta1"});
  CHECK(settings_of(t) == std::vector<std::string>{"linear k=3", "ffn k=3"});
  const LossTable lin = loss_table_from_results(t, "m.loss", "linear k=3");
  REQUIRE(lin.size() == 3);
  CHECK(lin.n[1] == 1000);
  CHECK(lin.rep[2] == 1);
  CHECK(lin.status[0] == RowStatus::ok);
  CHECK(lin.status[1] == RowStatus::capped);
  CHECK(lin.status[2] == RowStatus::failed);
  CHECK(std::isnan(lin.loss[2]));
  const LossTable ffn = loss_table_from_results(t, "m.loss", "ffn k=3");
  REQUIRE(ffn.size() == 2);
  CHECK(ffn.loss[1] == doctest::Approx(0.025).epsilon(1e-15));
  const LossTable b1 = loss_table_from_results(t, "m.cell2.beta1", "linear k=3");
  CHECK(std::isnan(b1.loss[1]));

  CHECK_THROWS_AS(loss_table_from_results(t, "m.nope", "linear k=3"), InputError);
  t.rows[0][7] = "exploded";
  try {
    loss_table_from_results(t, "m.loss", "linear k=3", "res.csv");
    FAIL("expected InputError");
  } catch (const InputError& e) {
    CHECK(e.line() == 2);
    CHECK(e.column() == 8);
    CHECK(std::string(e.what()).find("exploded") != std::string::npos);
  }
  t.rows[0][7] = "converged";
  t.rows[0][11] = "abc";
  CHECK_THROWS_AS(loss_table_from_results(t, "m.loss", "linear k=3"), InputError);
  t.rows[0][11] = "0.5";
  t.rows[0][1] = "1";
  CHECK_THROWS_AS(loss_table_from_results(t, "m.loss", "linear k=3"), InputError);
}

TEST_CASE("exponents and theory specs") {
  CHECK(parse_exponent("1/8") == doctest::Approx(0.125).epsilon(1e-15));
  CHECK(parse_exponent(" 0.5 ") == doctest::Approx(0.5).epsilon(1e-15));
  CHECK(parse_exponent("-1/4") == doctest::Approx(-0.25).epsilon(1e-15));
  CHECK_THROWS_AS(parse_exponent("1/0"), InvalidArgument);
  CHECK_THROWS_AS(parse_exponent("half"), InvalidArgument);
  CHECK_THROWS_AS(parse_exponent(""), InvalidArgument);

  const std::vector<std::string> metrics = {"m.loss", "m.a", "m.beta1"};
  auto one = parse_theory({"1/2"}, metrics);
  CHECK(one.size() == 3);
  CHECK(one["m.a"] == doctest::Approx(0.5).epsilon(1e-15));
  auto each = parse_theory({"1/2", "1/4", "1/8"}, metrics);
  CHECK(each["m.beta1"] == doctest::Approx(0.125).epsilon(1e-15));
  auto named = parse_theory({"m.a=1/4", "1/2"}, metrics);
  CHECK(named["m.a"] == doctest::Approx(0.25).epsilon(1e-15));
  CHECK(named["m.loss"] == doctest::Approx(0.5).epsilon(1e-15));
  CHECK_THROWS_AS(parse_theory({"1/2", "1/4"}, metrics), InvalidArgument);
  CHECK_THROWS_AS(parse_theory({"=1/2"}, metrics), InvalidArgument);
}

TEST_CASE("to_json carries the interval, the accounting and the criterion") {
  const LossTable t = power_table(51, 0.5);  // seed 51
  RateFitOptions o;
  o.bootstrap = 100;
  const RateFit f = fit_rate(t, o);
  const json j = f.to_json();
  CHECK(j["fitted"].get<bool>());
  CHECK(j["ci"][0].get<double>() == f.ci_low);
  CHECK(j["counts"]["used"].get<int>() == 240);
  CHECK(j["models"].size() == 3);
  CHECK(j["criterion"].get<std::string>().find("BIC") != std::string::npos);
  CHECK(j["window"].size() == f.window.size());
  CHECK(j["seed"].get<std::uint64_t>() == 1);
}

TEST_CASE("resolve_metrics and short theory names") {
  CsvTable t;
  t.header = {"setting", "n", "m.loss", "m.a"};
  CHECK(resolve_metrics(t, {}) == std::vector<std::string>{"m.loss", "m.a"});
  CHECK(resolve_metrics(t, {"a", "m.loss", "a"}) == std::vector<std::string>{"m.a", "m.loss"});
  CHECK_THROWS_AS(resolve_metrics(t, {"beta1"}), InvalidArgument);
  auto th = parse_theory({"a=1/4"}, {"m.loss", "m.a"});
  CHECK(th.count("m.a") == 1);
  CHECK_THROWS_AS(parse_theory({"beta1=1/4"}, {"m.loss", "m.a"}), InvalidArgument);
}

TEST_CASE("best of starts: per data set the certified fit with the larger log-likelihood, and how often starts agree") {
  const moerate::CsvTable t = moerate::read_csv_table_text(
      "setting,n,rep,log_likelihood,certified,m.x\n"
      "a,100,0,-10.0,1,1\n"
      "b,100,0,-9.0,1,2\n"      // b larger
      "a,100,1,-5.0,1,3\n"
      "b,100,1,-5.0004,1,4\n"   // agree within 1e-3; a larger
      "a,200,0,-3.0,0,5\n"      // a uncertified: b taken, not counted as a comparison
      "b,200,0,-4.0,1,6\n"
      "c,100,0,0.0,1,7\n",      // another setting: ignored
      "t.csv");
  moerate::StartAgreement a;
  const moerate::CsvTable out = moerate::with_best_of(t, {"a", "b"}, "a best", 1e-3, &a);
  REQUIRE(out.rows.size() == t.rows.size() + 3);
  std::map<std::string, std::string> best;  // "n/rep" -> m.x of the best row
  for (std::size_t r = t.rows.size(); r < out.rows.size(); ++r) {
    CHECK(out.rows[r][0] == "a best");
    best[out.rows[r][1] + "/" + out.rows[r][2]] = out.rows[r][5];
  }
  CHECK(best["100/0"] == "2");
  CHECK(best["100/1"] == "3");
  CHECK(best["200/0"] == "6");
  CHECK(a.datasets == 2);
  CHECK(a.agree == 1);
  CHECK(a.best_count == std::vector<std::size_t>{1, 2});
  CHECK(a.max_gap == doctest::Approx(1.0));
  CHECK(a.median_gap == doctest::Approx(0.5002));
  CHECK_THROWS_AS(moerate::with_best_of(moerate::read_csv_table_text("setting,n\na,1\n", "u.csv"), {"a"}, "x", 1e-3),
                  moerate::InputError);
}

TEST_CASE("exponent_difference: a paired bootstrap of two settings from the same seeds") {
  RateFitOptions o;
  o.bootstrap = 400;
  // Same noise (seed 21), exponents 0.125 and 0.25: every draw resamples both alike, so
  // each draw's difference is exactly 0.125 (the noise cancels) although each
  // exponent's own interval is wide.
  const RateFit a = fit_rate(power_table(21, 0.125, 1.0, 6), o);
  const RateFit b = fit_rate(power_table(21, 0.25, 1.0, 6), o);
  REQUIRE(a.boot_exponents.size() == 400);
  const auto d = exponent_difference(a, b, 0.95);
  REQUIRE(d.has_value());
  CHECK(d->difference == doctest::Approx(0.125).epsilon(1e-9));
  CHECK(d->ci.low == doctest::Approx(0.125).epsilon(1e-9));
  CHECK(d->ci.high == doctest::Approx(0.125).epsilon(1e-9));
  CHECK(a.ci_high - a.ci_low > 0.05);  // the separate intervals are wide
  // Independent noise (seeds 22, 23): the interval holds the point difference and is
  // wider than one exponent's (about sqrt(2) times).
  const RateFit c = fit_rate(power_table(22, 0.125, 1.0, 6), o);
  const RateFit e = fit_rate(power_table(23, 0.25, 1.0, 6), o);
  const auto d2 = exponent_difference(c, e, 0.95);
  REQUIRE(d2.has_value());
  CHECK(d2->ci.low < e.exponent - c.exponent);
  CHECK(d2->ci.high > e.exponent - c.exponent);
  CHECK(d2->ci.high - d2->ci.low > c.ci_high - c.ci_low);
  // No draws: no difference.
  o.bootstrap = 0;
  CHECK_FALSE(exponent_difference(fit_rate(power_table(21, 0.125, 1.0, 6), o), b, 0.95).has_value());
}
