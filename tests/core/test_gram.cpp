// The lane kernels of core/gram.hpp against a scalar emulation of their
// summation order (the same bits: no fused multiply-adds on either side), and
// against long double sums; the instruction sets against each other; the
// feature-major copy against the matrix it copies.
#include <doctest/doctest.h>

#include <armadillo>
#include <cmath>
#include <cstring>
#include <vector>

#include "moerate/core/gram.hpp"
#include "moerate/core/rng.hpp"

using namespace moerate;

namespace {

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

/// Feature-major rows (q x ld) and weights of S observations, the tail beyond
/// S (up to a multiple of kLanes) zero.
struct Block {
  std::size_t q, S, P, ld;
  std::vector<double> V, c;
  Block(std::size_t q_, std::size_t S_, Rng& rng) : q(q_), S(S_), P(GramRows::padded(S_)), ld(P + 4), V(q * ld, 0.0), c(ld, 0.0) {
    for (std::size_t u = 0; u < q; ++u)
      for (std::size_t i = 0; i < S; ++i) V[u * ld + i] = rng.normal(0.5, 2.0);
    for (std::size_t i = 0; i < S; ++i) c[i] = rng.uniform();
  }
};

/// The kernel's order by hand: lane l sums the observations l, l + 4, ... in order.
double emulated_moment(const Block& b, std::size_t u, std::size_t w) {
  double lane[kLanes] = {};
  for (std::size_t i = 0; i < b.P; ++i) lane[i % kLanes] += (b.c[i] * b.V[u * b.ld + i]) * b.V[w * b.ld + i];
  return lane_sum(lane);
}

}  // namespace

TEST_CASE("gram_add_lanes: every moment has the bits of its lane order, on every instruction set") {
  Rng rng(7);
  const VmathIsa all[] = {VmathIsa::sse2, VmathIsa::avx2, VmathIsa::avx512f};
  for (std::size_t q : {1, 2, 3, 5, 8, 9, 10, 12, 13, 17}) {      // the unrolled kernels and the general loop
    for (std::size_t S : {1, 4, 7, 128}) {
      const Block b(q, S, rng);
      for (const VmathIsa isa : all) {
        if (!vmath_supported(isa)) continue;
        INFO("q = " << q << ", S = " << S << ", " << vmath_isa_name(isa));
        std::vector<double> acc(gram_pairs(q) * kLanes, 0.0);
        gram_add_lanes_with(isa, b.V.data(), b.ld, q, b.c.data(), b.P, acc.data());
        std::size_t differ = 0;
        for (std::size_t w = 0; w < q; ++w)
          for (std::size_t u = 0; u <= w; ++u) {
            const double got = lane_sum(acc.data() + gram_index(u, w) * kLanes);
            long double exact = 0;
            for (std::size_t i = 0; i < S; ++i)
              exact += (long double)b.c[i] * b.V[u * b.ld + i] * b.V[w * b.ld + i];
            differ += !same_bits(got, emulated_moment(b, u, w));
            CHECK(std::abs(got - (double)exact) <= 1e-13 * (1 + std::abs((double)exact)) * S);
          }
        CHECK(differ == 0);
      }
    }
  }
}

TEST_CASE("gram_add_lanes: a block cut in two gives the bits of the whole block") {
  Rng rng(8);
  for (std::size_t q : {4, 10, 15}) {
    const Block b(q, 256, rng);
    std::vector<double> whole(gram_pairs(q) * kLanes, 0.0), parts = whole;
    gram_add_lanes(b.V.data(), b.ld, q, b.c.data(), 256, whole.data());
    gram_add_lanes(b.V.data(), b.ld, q, b.c.data(), 100, parts.data());
    std::vector<double> V2(q * 156), c2(b.c.begin() + 100, b.c.begin() + 256);
    for (std::size_t u = 0; u < q; ++u) std::copy_n(b.V.begin() + u * b.ld + 100, 156, V2.begin() + u * 156);
    gram_add_lanes(V2.data(), 156, q, c2.data(), 156, parts.data());
    CHECK(std::memcmp(whole.data(), parts.data(), whole.size() * sizeof(double)) == 0);
  }
}

TEST_CASE("rowsum, affine rows and weighted squares: the bits of their plain loops") {
  Rng rng(9);
  for (std::size_t d : {1, 4, 8, 11}) {
    const Block b(d, 61, rng);
    std::vector<double> acc(d * kLanes, 0.0);
    rowsum_add_lanes(b.V.data(), b.ld, d, b.c.data(), b.P, acc.data());
    for (std::size_t u = 0; u < d; ++u) {
      double lane[kLanes] = {};
      for (std::size_t i = 0; i < b.P; ++i) lane[i % kLanes] += b.c[i] * b.V[u * b.ld + i];
      CHECK(same_bits(lane_sum(acc.data() + u * kLanes), lane_sum(lane)));
    }
    arma::vec eta(d + 1, arma::fill::randn);
    std::vector<double> h(b.P);
    affine_rows(b.V.data(), b.ld, d, eta.memptr(), b.P, h.data());
    std::size_t differ = 0;
    for (std::size_t i = 0; i < b.S; ++i) {
      double v = 0;  // affine_value's loop
      for (std::size_t u = 0; u < d; ++u) v += eta[u] * b.V[u * b.ld + i];
      differ += !same_bits(h[i], v + eta[d]);
    }
    CHECK(differ == 0);
    double sq[kLanes] = {}, lane[kLanes] = {};
    weighted_squares_add_lanes(b.c.data(), h.data(), b.P, sq);
    for (std::size_t i = 0; i < b.P; ++i) lane[i % kLanes] += (b.c[i] * h[i]) * h[i];
    CHECK(same_bits(lane_sum(sq), lane_sum(lane)));
  }
}

TEST_CASE("GramRows: feature-major copies of any block, padded with zeros") {
  Rng rng(10);
  for (std::size_t d : {1, 3, 4, 5, 8, 9, 13}) {
    arma::mat X(d, 300, arma::fill::randn);
    for (auto [a, b] : {std::pair<std::size_t, std::size_t>{0, 128}, {5, 12}, {290, 300}, {17, 18}}) {
      GramRows rows(d + 2);
      rows.fill_row(0, 1.0, b - a);
      rows.copy_columns(X.memptr(), d, a, b, 1);
      rows.fill_row(d + 1, -3.0, b - a);
      const std::size_t P = rows.pad(b - a);
      CHECK(P % kLanes == 0);
      CHECK(P >= b - a);
      std::size_t wrong = 0;
      for (std::size_t i = 0; i < P; ++i) {
        const bool in = i < b - a;
        wrong += rows.row(0)[i] != (in ? 1.0 : 0.0);
        wrong += rows.row(d + 1)[i] != (in ? -3.0 : 0.0);
        for (std::size_t u = 0; u < d; ++u) wrong += rows.row(u + 1)[i] != (in ? X(u, a + i) : 0.0);
      }
      INFO("d = " << d << ", columns " << a << ".." << b);
      CHECK(wrong == 0);
    }
  }
}

TEST_CASE("gauss_newton_lanes: a one-unit expert's sums have the bits of their lane order, on every instruction set") {
  Rng rng(9);  // seed 9
  const VmathIsa all[] = {VmathIsa::sse2, VmathIsa::avx2, VmathIsa::avx512f};
  const std::size_t S = 132;
  std::vector<double> x(S), phi(S), d1(S), y(S), w(S);
  for (std::size_t i = 0; i < S; ++i) {
    x[i] = rng.normal(0, 1);
    phi[i] = std::tanh(rng.normal(0, 1.5));
    d1[i] = 1 - phi[i] * phi[i];
    y[i] = rng.normal(0.3, 1);
    w[i] = rng.uniform();
  }
  const double c = -1.7;
  for (const bool bias : {true, false}) {
    const std::size_t P = bias ? 3 : 2, T = gram_pairs(P), nsum = T + P + 1;
    // The scalar emulation: observation i into lane i mod 4, the kernel's operations in order.
    std::vector<double> lanes(nsum * kLanes, 0.0);
    for (std::size_t i = 0; i < S; ++i) {
      const double pc = d1[i] * c;
      double J[3];
      J[0] = x[i] * pc;
      if (bias) J[1] = pc;
      J[P - 1] = phi[i];
      const double r = y[i] - c * phi[i], wr = w[i] * r;
      double* l = lanes.data() + i % kLanes;
      l[(T + P) * kLanes] += wr * r;
      for (std::size_t v = 0; v < P; ++v) {
        const double wj = w[i] * J[v];
        l[(T + v) * kLanes] += wr * J[v];
        for (std::size_t u = 0; u <= v; ++u) l[gram_index(u, v) * kLanes] += wj * J[u];
      }
    }
    for (const VmathIsa isa : all) {
      if (!vmath_supported(isa)) continue;
      INFO("bias " << bias << ", " << vmath_isa_name(isa));
      std::vector<double> acc(nsum * kLanes, 0.0);
      gauss_newton_lanes_with(isa, x.data(), phi.data(), d1.data(), c, y.data(), w.data(), S, bias, acc.data());
      for (std::size_t t = 0; t < nsum; ++t) CHECK(same_bits(lane_sum(acc.data() + t * kLanes), lane_sum(lanes.data() + t * kLanes)));
      // Against long double: sum w r^2.
      long double ss = 0;
      for (std::size_t i = 0; i < S; ++i) {
        const long double r = (long double)y[i] - (long double)c * phi[i];
        ss += w[i] * r * r;
      }
      CHECK(std::abs(lane_sum(acc.data() + (T + P) * kLanes) - (double)ss) <= 1e-13 * (double)ss);
    }
  }
}
