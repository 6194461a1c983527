// Kernels against hand values and Boost.Math (relative ~1e-13), with extreme inputs.
#include <doctest/doctest.h>

#include <boost/math/distributions/normal.hpp>
#include <boost/math/special_functions/erf.hpp>
#include <limits>

#include "moerate/core/error.hpp"
#include "moerate/model/gating.hpp"
#include "moerate/core/numerics.hpp"
#include "moerate/core/rng.hpp"

using namespace moerate;
using doctest::Approx;

TEST_CASE("log_sum_exp: hand values and extreme inputs") {
  CHECK(log_sum_exp(arma::vec{0.0, 0.0}) == Approx(std::log(2.0)).epsilon(1e-15));
  CHECK(log_sum_exp(arma::vec{1000.0, 1000.0}) == Approx(1000 + std::log(2.0)).epsilon(1e-15));
  CHECK(log_sum_exp(arma::vec{-1000.0, -1000.0}) == Approx(-1000 + std::log(2.0)).epsilon(1e-15));
  CHECK(log_sum_exp(arma::vec{-kInf, 3.0}) == 3.0);
  CHECK(log_sum_exp(arma::vec{-kInf, -kInf}) == -kInf);
  CHECK(log_sum_exp(arma::vec()) == -kInf);
  CHECK(log_sum_exp(arma::vec{kInf, 1.0}) == kInf);
  CHECK(log_sum_exp(1e308, 1e308) == Approx(1e308).epsilon(1e-15));
  CHECK(log_sum_exp(-kInf, 2.5) == 2.5);
  // log(e^1 + e^2 + e^3) by hand: 3 + log(1 + e^-1 + e^-2)
  CHECK(log_sum_exp(arma::vec{1, 2, 3}) == Approx(3 + std::log(1 + std::exp(-1.0) + std::exp(-2.0))).epsilon(1e-15));
}

TEST_CASE("log_sum_exp_cols and normalise_log_cols") {
  arma::mat M = {{0.0, -kInf, 800.0}, {0.0, -kInf, 800.0}};
  const arma::rowvec l = log_sum_exp_cols(M);
  CHECK(l[0] == Approx(std::log(2.0)).epsilon(1e-15));
  CHECK(l[1] == -kInf);
  CHECK(l[2] == Approx(800 + std::log(2.0)).epsilon(1e-15));
  normalise_log_cols(M);
  CHECK(M(0, 0) == Approx(-std::log(2.0)).epsilon(1e-15));
  CHECK(M(1, 1) == -kInf);  // an all -inf column stays -inf, never NaN
  // 800 - (800 + log 2): the cancellation costs about 800 eps in absolute terms.
  CHECK(M(1, 2) == Approx(-std::log(2.0)).epsilon(1e-12));
}

namespace {
/// |got - exact| in units of the spacing of doubles at the exact value, the
/// exact value taken in long double (64-bit significand: 11 more bits).
double ulp_error(double got, long double exact) {
  const double r = static_cast<double>(exact);
  const double spacing = std::nextafter(std::fabs(r), kInf) - std::fabs(r);
  return static_cast<double>(std::fabs(static_cast<long double>(got) - exact) / spacing);
}

/// A value's result does not depend on its position in the array (vector body or
/// padded tail): arrays of 1 to 9 values a + b i against each value alone.
void check_position_independent(void (*fn)(double*, std::size_t), double a, double b) {
  for (std::size_t len = 1; len <= 9; ++len) {
    std::vector<double> v(len);
    for (std::size_t i = 0; i < len; ++i) v[i] = a + b * double(i);
    std::vector<double> w = v;
    fn(w.data(), len);
    for (std::size_t i = 0; i < len; ++i) {
      double one = v[i];
      fn(&one, 1);
      CHECK(w[i] == one);
    }
  }
}
}  // namespace

TEST_CASE("exp_inplace and log_inplace: within 1 ulp of long double over the whole range; IEEE special values") {
  Rng rng(7);
  const std::size_t n = 200001;  // odd: the padded tail is exercised
  std::vector<double> x(n), e(n), l(n);
  for (std::size_t i = 0; i < n; ++i) x[i] = -745.0 + 1454.0 * rng.uniform();  // exp from subnormal to 1e308
  e = x;
  exp_inplace(e.data(), n);
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (e[i] >= std::numeric_limits<double>::min()) worst = std::max(worst, ulp_error(e[i], std::exp((long double)x[i])));
  CHECK(worst <= 1.0);
  CHECK(worst > 0.3);  // the measure can see an error at all
  for (std::size_t i = 0; i < n; ++i) x[i] = std::exp(-700.0 + 1400.0 * rng.uniform());  // log over 600 decades
  l = x;
  log_inplace(l.data(), n);
  worst = 0;
  for (std::size_t i = 0; i < n; ++i) worst = std::max(worst, ulp_error(l[i], std::log((long double)x[i])));
  CHECK(worst <= 1.0);
  // Special values as std::exp and std::log.
  std::vector<double> s = {-kInf, kInf, -1000.0, 1000.0, 0.0, kNaN};
  exp_inplace(s.data(), s.size());
  CHECK(s[0] == 0.0);
  CHECK(s[1] == kInf);
  CHECK(s[2] == 0.0);
  CHECK(s[3] == kInf);
  CHECK(s[4] == 1.0);
  CHECK(std::isnan(s[5]));
  s = {0.0, -1.0, kInf, 1.0, kNaN, 1e-310};
  log_inplace(s.data(), s.size());
  CHECK(s[0] == -kInf);
  CHECK(std::isnan(s[1]));
  CHECK(s[2] == kInf);
  CHECK(s[3] == 0.0);
  CHECK(std::isnan(s[4]));
  CHECK(s[5] == Approx(std::log(1e-310)).epsilon(1e-15));
  check_position_independent(exp_inplace, -3.3, 0.71);
}

TEST_CASE("log_sum_exp_block: hand values, non-finite columns, agreement with log_sum_exp") {
  // Columns (k = 3): {log 1, log 2, log 3} -> log 6; all -inf; a +inf; a NaN; large equal values.
  const std::vector<double> L = {0.0, std::log(2.0), std::log(3.0), -kInf, -kInf, -kInf, 1.0, kInf, 2.0,
                                 1.0, kNaN, 2.0, 800.0, 800.0, 800.0};
  std::vector<double> E(15), s(5), lse(5);
  log_sum_exp_block(L.data(), 3, 5, E.data(), s.data(), lse.data());
  CHECK(lse[0] == Approx(std::log(6.0)).epsilon(1e-15));
  CHECK(s[0] == Approx(2.0).epsilon(1e-15));  // exp(L - log 3) summed: (1 + 2 + 3) / 3
  CHECK(E[1] == Approx(2.0 / 3.0).epsilon(1e-15));
  CHECK(lse[1] == -kInf);
  CHECK(lse[2] == kInf);
  CHECK(std::isnan(lse[3]));
  CHECK(lse[4] == Approx(800 + std::log(3.0)).epsilon(1e-15));
  // In place (E aliasing L), over many columns, against the scalar log_sum_exp.
  Rng rng(3);
  arma::mat M(4, 1000);
  for (double& v : M) v = -50 + 100 * rng.uniform();
  arma::mat W = M;
  std::vector<double> s2(1000), l2(1000);
  log_sum_exp_block(W.memptr(), 4, 1000, W.memptr(), s2.data(), l2.data());
  for (std::size_t i = 0; i < 1000; ++i) {
    CHECK(l2[i] == Approx(log_sum_exp(arma::vec(M.col(i)))).epsilon(1e-15));
    CHECK(W(1, i) == Approx(std::exp(M(1, i) - M.col(i).max())).epsilon(1e-15));
  }
}

TEST_CASE("log_normal_pdf against Boost.Math") {
  const double cases[][3] = {{0, 0, 1}, {1.5, -0.3, 0.09}, {-7, 2, 4}, {3, 3, 1e-8}, {1e3, 0, 1e4}, {0.1, 0.2, 2.5}};
  for (const auto& c : cases) {
    boost::math::normal_distribution<double> nd(c[1], std::sqrt(c[2]));
    const double ref = std::log(boost::math::pdf(nd, c[0]));
    CHECK(log_normal_pdf(c[0], c[1], c[2]) == Approx(ref).epsilon(1e-13));
  }
  // Far tail: Boost's pdf underflows; the closed form -0.5(log 2pi + z^2) is exact.
  CHECK(log_normal_pdf(1e3, 0, 1) == Approx(-0.5 * (kLog2Pi + 1e6)).epsilon(1e-15));
  const arma::rowvec y = {0, 1}, m = {0, 0};
  const arma::rowvec v = log_normal_pdf(y, m, 0.16);
  CHECK(v[1] == Approx(log_normal_pdf(1.0, 0.0, 0.16)).epsilon(1e-15));
}

TEST_CASE("tanh_inplace: within 3.5 ulp of long double; special values; position-independent") {
  Rng rng(11);
  const std::size_t n = 200001;
  std::vector<double> x(n), t(n);
  // Half near 0 (tanh's relative accuracy there matters), half over [-25, 25].
  for (std::size_t i = 0; i < n; ++i)
    x[i] = (i % 2) ? std::ldexp(rng.uniform() - 0.5, -int(rng.integer(0, 60))) : -25.0 + 50.0 * rng.uniform();
  t = x;
  tanh_inplace(t.data(), n);
  double worst = 0;
  for (std::size_t i = 0; i < n; ++i)
    if (x[i] != 0) worst = std::max(worst, ulp_error(t[i], std::tanh((long double)x[i])));
  MESSAGE("tanh: worst error " << worst << " ulp");
  CHECK(worst <= 3.501);  // SLEEF's u35 tanh: 3.5 ulp; the long double reference itself is off by up to ~2^-11 ulp
  CHECK(worst > 0.3);
  std::vector<double> s = {-kInf, kInf, 0.0, -0.0, 1000.0, kNaN};
  tanh_inplace(s.data(), s.size());
  CHECK(s[0] == -1.0);
  CHECK(s[1] == 1.0);
  CHECK(s[2] == 0.0);
  CHECK(std::signbit(s[3]));
  CHECK(s[4] == 1.0);
  CHECK(std::isnan(s[5]));
  check_position_independent(tanh_inplace, -2.3, 0.61);
}

TEST_CASE("exp, log and tanh give the same bits on every instruction set the CPU has") {
  Rng rng(23);
  const std::size_t n = 200003;  // not a multiple of 8: every padded tail is exercised
  std::vector<double> xe(n), xl(n), xt(n);
  for (std::size_t i = 0; i < n; ++i) {
    xe[i] = -745.0 + 1454.0 * rng.uniform();
    xl[i] = std::exp(-700.0 + 1400.0 * rng.uniform());
    xt[i] = (i % 2) ? std::ldexp(rng.uniform() - 0.5, -int(rng.integer(0, 60))) : -25.0 + 50.0 * rng.uniform();
  }
  xe.insert(xe.end(), {-kInf, kInf, 0.0, kNaN, 709.78, -708.4});
  xl.insert(xl.end(), {0.0, kInf, 1.0, 1e-310, kNaN, -1.0});
  xt.insert(xt.end(), {-kInf, kInf, 0.0, -0.0, 1000.0, kNaN});
  const VmathIsa all[] = {VmathIsa::sse2, VmathIsa::avx2, VmathIsa::avx512f};
  CHECK(vmath_supported(VmathIsa::sse2));
  CHECK(vmath_supported(vmath_isa()));
  auto run = [](void (*fn)(VmathIsa, double*, std::size_t), VmathIsa isa, std::vector<double> v) {
    fn(isa, v.data(), v.size());
    return v;
  };
  int compared = 0;
  for (const VmathIsa isa : all) {
    if (!vmath_supported(isa) || isa == VmathIsa::sse2) continue;
    INFO("instruction set " << std::string(vmath_isa_name(isa)));
    for (auto fn : {exp_inplace_with, log_inplace_with, tanh_inplace_with}) {
      const std::vector<double>& x = fn == exp_inplace_with ? xe : fn == log_inplace_with ? xl : xt;
      const std::vector<double> a = run(fn, VmathIsa::sse2, x), b = run(fn, isa, x);
      REQUIRE(a.size() == b.size());
      std::size_t differ = 0;
      for (std::size_t i = 0; i < a.size(); ++i) {
        if (std::isnan(a[i]) && std::isnan(b[i])) continue;  // NaN payloads may differ
        if (std::memcmp(&a[i], &b[i], sizeof(double)) != 0) {
          differ++;
          INFO("x = " << x[i] << ": " << a[i] << " and " << b[i]);
          CHECK(a[i] == b[i]);
        }
      }
      CHECK(differ == 0);
      compared++;
    }
  }
  MESSAGE("vectorised math: " << std::string(vmath_isa_name(vmath_isa())) << ", " << compared << " comparisons with SSE2");
  // The default entry points are the widest instruction set's.
  std::vector<double> d = xl;
  log_inplace(d.data(), d.size());
  const std::vector<double> w = run(log_inplace_with, vmath_isa(), xl);
  CHECK(std::memcmp(d.data(), w.data(), d.size() * sizeof(double)) == 0);
}

TEST_CASE("activate_all agrees with the scalar activations, with and without aliasing") {
  std::vector<double> z;
  for (double v = -40.0; v <= 40.0; v += 0.173) z.push_back(v);
  z.push_back(0.0);
  z.push_back(-800.0);
  z.push_back(800.0);
  const std::size_t n = z.size();
  for (Activation a : {Activation::sigmoid, Activation::tanh, Activation::gelu, Activation::relu}) {
    CAPTURE(activation_name(a));
    std::vector<double> phi(n), d1(n), d2(n), alias = z;
    activate_all(a, z.data(), n, phi.data(), d1.data(), d2.data());
    activate_all(a, alias.data(), n, alias.data());
    for (std::size_t i = 0; i < n; ++i) {
      CAPTURE(z[i]);
      CHECK(phi[i] == Approx(activate(a, z[i])).epsilon(4e-16).scale(1e-300));
      CHECK(d1[i] == Approx(activate_d1(a, z[i])).epsilon(1e-15).scale(1.0));  // 1 - t^2 cancels: absolute
      CHECK(d2[i] == Approx(activate_d2(a, z[i])).epsilon(1e-15).scale(1.0));
      CHECK(alias[i] == phi[i]);
    }
  }
}

TEST_CASE("activations and their derivatives") {
  for (double z : {-30.0, -3.0, -0.5, 0.0, 0.7, 4.0, 40.0}) {
    CHECK(activate(Activation::sigmoid, z) == Approx(1 / (1 + std::exp(-z))).epsilon(1e-14));
    CHECK(activate(Activation::gelu, z) == Approx(z * 0.5 * boost::math::erfc(-z / std::sqrt(2.0))).epsilon(1e-14));
    CHECK(activate(Activation::relu, z) == (z > 0 ? z : 0.0));
    for (Activation a : {Activation::sigmoid, Activation::tanh, Activation::gelu}) {
      const double h = 1e-5;
      const double d1 = (activate(a, z + h) - activate(a, z - h)) / (2 * h);
      const double d2 = (activate_d1(a, z + h) - activate_d1(a, z - h)) / (2 * h);
      CHECK(activate_d1(a, z) == Approx(d1).epsilon(1e-7).scale(1e-3));
      CHECK(activate_d2(a, z) == Approx(d2).epsilon(1e-7).scale(1e-3));
    }
  }
  CHECK(activate(Activation::sigmoid, -800.0) >= 0.0);
  CHECK(std::isfinite(activate_d1(Activation::sigmoid, -800.0)));
  CHECK_THROWS_AS(parse_activation("softplus"), InvalidArgument);
}

TEST_CASE("family spec parsing") {
  const json j = parse_family_spec("ffn:tanh,units=3");
  CHECK(j["family"] == "ffn");
  CHECK(j["_"] == "tanh");
  CHECK(j["units"].get<double>() == 3.0);
  CHECK(parse_family_spec("softmax") == json{{"family", "softmax"}});
  CHECK_THROWS_AS(parse_family_spec(":x"), InvalidArgument);
}

TEST_CASE("derive_seed is a pure function of its inputs; Rng is reproducible") {
  CHECK(derive_seed(7, {1, 2}) == derive_seed(7, {1, 2}));
  CHECK(derive_seed(7, {1, 2}) != derive_seed(7, {2, 1}));
  CHECK(derive_seed(7, {1}) != derive_seed(8, {1}));
  Rng a(42), b(42);
  for (int i = 0; i < 100; ++i) CHECK(a.normal() == b.normal());
  // categorical_log never returns an index of weight zero.
  Rng r(3);
  for (int i = 0; i < 1000; ++i) CHECK(r.categorical_log(arma::vec{-kInf, 0.0, -kInf}) == 1);
}

TEST_CASE("unit_diagonal_cond_bound: above the true condition number; where it vouches, LAPACK's rcond agrees") {
  // Equilibrated Gram matrices of correlated designs, from nearly orthogonal to
  // nearly singular: the bound is never below cond_2 (from the eigenvalues), and
  // whenever q sqrt(bound) < 1e3 (the shortcut of the experts' normal
  // equations) the Cholesky factor's rcond estimate is above 1e-4.
  Rng rng(11);
  int vouched = 0, total = 0;
  for (int t = 0; t < 400; ++t) {
    const std::size_t q = 2 + t % 9;
    const double mix = std::pow(10.0, -3.0 * rng.uniform());  // the weight of a shared column
    arma::mat Z(50, q);
    const arma::vec common = arma::randn(50);
    for (std::size_t j = 0; j < q; ++j)
      for (std::size_t i = 0; i < 50; ++i) Z(i, j) = (1 - mix) * common[i] + mix * rng.normal();
    if (t % 3 == 0) Z.col(0).ones();  // an intercept, as in (x, 1)
    arma::mat A = Z.t() * Z;
    const arma::vec dsc = 1 / arma::sqrt(A.diag());
    const arma::mat As = A % (dsc * dsc.t());
    const double bound = unit_diagonal_cond_bound(As);
    const arma::vec ev = arma::eig_sym(As);
    ++total;
    CHECK(bound >= ev.max() / ev.min() * (1 - 1e-12));
    if (double(q) * std::sqrt(bound) < 1e3) {
      ++vouched;
      arma::mat C;
      REQUIRE(arma::chol(C, As, "lower"));
      CHECK(arma::rcond(arma::trimatl(C)) > 1e-4);
    }
  }
  CHECK(vouched > 20);          // the shortcut is exercised
  CHECK(vouched < total - 20);  // and so is the estimate
  CHECK(unit_diagonal_cond_bound(arma::mat{{1, 0.999}, {0.999, 1}}) == doctest::Approx(1999.0));
  CHECK(unit_diagonal_cond_bound(arma::mat{{1, 1}, {1, 1}}) == kInf);
}
