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
