// Weighted moments in lanes across observations (moerate/core/gram.hpp).
//
// The kernel is written once with GCC's generic vectors of four doubles and
// compiled three times: for AVX-512 (AVX-512VL gives 32 vector registers, so
// more moments are summed per sweep over the block), for AVX2 (16 registers)
// and for the baseline SSE2 (each four-double vector is two registers). All
// three do the same multiplications and additions in the same order, and this
// file is compiled with -ffp-contract=off (lib/meson.build), so none fuses a
// multiply-add: the sums are bit-identical (tests/core/test_gram.cpp). It is
// compiled alone, never in a unity group, like core/vmath.cpp.
#include "moerate/core/gram.hpp"

#include <immintrin.h>

#include <algorithm>

#pragma GCC diagnostic ignored "-Wpsabi"  // four-double vectors passed between inlined helpers

namespace moerate {

namespace {

typedef double v4d __attribute__((vector_size(32)));

[[gnu::always_inline]] inline v4d load4(const double* p) {
  v4d v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
[[gnu::always_inline]] inline void store4(double* p, v4d v) { __builtin_memcpy(p, &v, sizeof v); }

/// The moments of the rows u in [u0, u1): (q - u) for each.
constexpr int group_size(int q, int u0, int u1) {
  int s = 0;
  for (int u = u0; u < u1; ++u) s += q - u;
  return s;
}

/// The end of the group of rows that starts at u0: as many rows as keep the
/// group's moments at most g (at least one row).
constexpr int group_end(int q, int u0, int g) {
  int u1 = u0 + 1;
  while (u1 < q && group_size(q, u0, u1 + 1) <= g) ++u1;
  return u1;
}

/// The moments (u, w), u in [U0, U1), w in [u, Q), held in registers while the
/// block is swept once.
template <int Q, int U0, int U1>
[[gnu::always_inline]] inline void gram_group(const double* V, std::size_t ld, const double* c, std::size_t S,
                                              double* acc) {
  constexpr int NA = group_size(Q, U0, U1);
  v4d a[NA];
  {
    int t = 0;
#pragma GCC unroll 32
    for (int u = U0; u < U1; ++u)
#pragma GCC unroll 32
      for (int w = u; w < Q; ++w) a[t++] = load4(acc + gram_index(u, w) * kLanes);
  }
  for (std::size_t i = 0; i < S; i += kLanes) {
    const v4d ci = load4(c + i);
    int t = 0;
#pragma GCC unroll 32
    for (int u = U0; u < U1; ++u) {
      const v4d cu = ci * load4(V + u * ld + i);
#pragma GCC unroll 32
      for (int w = u; w < Q; ++w) {
        a[t] += cu * load4(V + w * ld + i);
        ++t;
      }
    }
  }
  {
    int t = 0;
#pragma GCC unroll 32
    for (int u = U0; u < U1; ++u)
#pragma GCC unroll 32
      for (int w = u; w < Q; ++w) store4(acc + gram_index(u, w) * kLanes, a[t++]);
  }
}

template <int Q, int G, int U0>
[[gnu::always_inline]] inline void gram_groups(const double* V, std::size_t ld, const double* c, std::size_t S,
                                               double* acc) {
  if constexpr (U0 < Q) {
    constexpr int U1 = group_end(Q, U0, G);
    gram_group<Q, U0, U1>(V, ld, c, S, acc);
    gram_groups<Q, G, U1>(V, ld, c, S, acc);
  }
}

/// Any q: the same operations, one moment at a time.
[[gnu::always_inline]] inline void gram_general(const double* V, std::size_t ld, std::size_t q, const double* c,
                                                std::size_t S, double* acc) {
  for (std::size_t u = 0; u < q; ++u)
    for (std::size_t w = u; w < q; ++w) {
      v4d a = load4(acc + gram_index(u, w) * kLanes);
      for (std::size_t i = 0; i < S; i += kLanes) a += (load4(c + i) * load4(V + u * ld + i)) * load4(V + w * ld + i);
      store4(acc + gram_index(u, w) * kLanes, a);
    }
}

// G: moments per group (registers: G accumulators plus a few operands).
#define MOERATE_GRAM_BODY(G)                                          \
  switch (q) {                                                        \
    case 1: return gram_groups<1, G, 0>(V, ld, c, S, acc);            \
    case 2: return gram_groups<2, G, 0>(V, ld, c, S, acc);            \
    case 3: return gram_groups<3, G, 0>(V, ld, c, S, acc);            \
    case 4: return gram_groups<4, G, 0>(V, ld, c, S, acc);            \
    case 5: return gram_groups<5, G, 0>(V, ld, c, S, acc);            \
    case 6: return gram_groups<6, G, 0>(V, ld, c, S, acc);            \
    case 7: return gram_groups<7, G, 0>(V, ld, c, S, acc);            \
    case 8: return gram_groups<8, G, 0>(V, ld, c, S, acc);            \
    case 9: return gram_groups<9, G, 0>(V, ld, c, S, acc);            \
    case 10: return gram_groups<10, G, 0>(V, ld, c, S, acc);          \
    case 11: return gram_groups<11, G, 0>(V, ld, c, S, acc);          \
    case 12: return gram_groups<12, G, 0>(V, ld, c, S, acc);          \
    case 13: return gram_groups<13, G, 0>(V, ld, c, S, acc);          \
    case 14: return gram_groups<14, G, 0>(V, ld, c, S, acc);          \
    case 15: return gram_groups<15, G, 0>(V, ld, c, S, acc);          \
    case 16: return gram_groups<16, G, 0>(V, ld, c, S, acc);          \
    case 17: return gram_groups<17, G, 0>(V, ld, c, S, acc);          \
    case 18: return gram_groups<18, G, 0>(V, ld, c, S, acc);          \
    default: return gram_general(V, ld, q, c, S, acc);                \
  }

__attribute__((target("avx512f,avx512vl"))) void gram_avx512(const double* V, std::size_t ld, std::size_t q,
                                                              const double* c, std::size_t S, double* acc) {
  MOERATE_GRAM_BODY(24)
}
__attribute__((target("avx2"))) void gram_avx2(const double* V, std::size_t ld, std::size_t q, const double* c,
                                               std::size_t S, double* acc) {
  MOERATE_GRAM_BODY(10)
}
void gram_sse2(const double* V, std::size_t ld, std::size_t q, const double* c, std::size_t S, double* acc) {
  MOERATE_GRAM_BODY(5)
}
#undef MOERATE_GRAM_BODY

}  // namespace

void gram_add_lanes_with(VmathIsa isa, const double* V, std::size_t ld, std::size_t q, const double* c,
                         std::size_t S, double* acc) {
  switch (isa) {
    case VmathIsa::avx512f: return gram_avx512(V, ld, q, c, S, acc);
    case VmathIsa::avx2: return gram_avx2(V, ld, q, c, S, acc);
    case VmathIsa::sse2: return gram_sse2(V, ld, q, c, S, acc);
  }
}

void gram_add_lanes(const double* V, std::size_t ld, std::size_t q, const double* c, std::size_t S, double* acc) {
  gram_add_lanes_with(vmath_isa(), V, ld, q, c, S, acc);
}



namespace {

[[gnu::always_inline]] inline void affine_body(const double* V, std::size_t ld, std::size_t d, const double* eta,
                                               std::size_t S, double* h) {
  for (std::size_t i = 0; i < S; i += kLanes) {
    v4d v = {0, 0, 0, 0};
    for (std::size_t u = 0; u < d; ++u) v += eta[u] * load4(V + u * ld + i);
    store4(h + i, v + eta[d]);
  }
}

[[gnu::always_inline]] inline void rowsum_body(const double* V, std::size_t ld, std::size_t q, const double* c,
                                               std::size_t S, double* acc) {
  for (std::size_t u = 0; u < q; ++u) {
    v4d a = load4(acc + u * kLanes);
    for (std::size_t i = 0; i < S; i += kLanes) a += load4(c + i) * load4(V + u * ld + i);
    store4(acc + u * kLanes, a);
  }
}

[[gnu::always_inline]] inline void squares_body(const double* c, const double* r, std::size_t S, double* acc) {
  v4d a = load4(acc);
  for (std::size_t i = 0; i < S; i += kLanes) {
    const v4d ri = load4(r + i);
    a += (load4(c + i) * ri) * ri;
  }
  store4(acc, a);
}

/// One-unit expert on d = 1 (h = c phi, J = (c phi' x, [c phi'], phi)): the
/// Gauss-Newton moments of J, then w r J, then w r^2 (gauss_newton_lanes).
template <int P>
[[gnu::always_inline]] inline void gauss_newton_body(const double* x, const double* phi, const double* d1, double c,
                                                     const double* y, const double* w, std::size_t S, double* acc) {
  constexpr int T = P * (P + 1) / 2;
  v4d a[T], g[P], s = load4(acc + (T + P) * kLanes);
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) a[t] = load4(acc + t * kLanes);
#pragma GCC unroll 8
  for (int v = 0; v < P; ++v) g[v] = load4(acc + (T + v) * kLanes);
  const v4d cv = {c, c, c, c};
  for (std::size_t i = 0; i < S; i += kLanes) {
    const v4d pc = load4(d1 + i) * cv, ph = load4(phi + i);
    v4d J[P];
    J[0] = load4(x + i) * pc;
    if constexpr (P == 3) J[1] = pc;
    J[P - 1] = ph;
    const v4d r = load4(y + i) - cv * ph;
    const v4d wi = load4(w + i), wr = wi * r;
    s += wr * r;
#pragma GCC unroll 8
    for (int v = 0; v < P; ++v) {
      const v4d wj = wi * J[v];
      g[v] += wr * J[v];
#pragma GCC unroll 8
      for (int u = 0; u <= v; ++u) a[gram_index(u, v)] += wj * J[u];
    }
  }
#pragma GCC unroll 8
  for (int t = 0; t < T; ++t) store4(acc + t * kLanes, a[t]);
#pragma GCC unroll 8
  for (int v = 0; v < P; ++v) store4(acc + (T + v) * kLanes, g[v]);
  store4(acc + (T + P) * kLanes, s);
}

[[gnu::always_inline]] inline void gauss_newton_any(const double* x, const double* phi, const double* d1, double c,
                                                    const double* y, const double* w, std::size_t S, bool bias,
                                                    double* acc) {
  if (bias)
    gauss_newton_body<3>(x, phi, d1, c, y, w, S, acc);
  else
    gauss_newton_body<2>(x, phi, d1, c, y, w, S, acc);
}

// Each kernel compiled for the three instruction sets and dispatched on the best.
#define MOERATE_GRAM_DISPATCH(name, body, params, args)                                   \
  __attribute__((target("avx512f,avx512vl"))) void name##_avx512 params { body args; } \
  __attribute__((target("avx2"))) void name##_avx2 params { body args; }                \
  void name##_sse2 params { body args; }
MOERATE_GRAM_DISPATCH(affine, affine_body,
                      (const double* V, std::size_t ld, std::size_t d, const double* eta, std::size_t S, double* h),
                      (V, ld, d, eta, S, h))
MOERATE_GRAM_DISPATCH(rowsum, rowsum_body,
                      (const double* V, std::size_t ld, std::size_t q, const double* c, std::size_t S, double* acc),
                      (V, ld, q, c, S, acc))
MOERATE_GRAM_DISPATCH(squares, squares_body, (const double* c, const double* r, std::size_t S, double* acc),
                      (c, r, S, acc))
MOERATE_GRAM_DISPATCH(gauss_newton, gauss_newton_any,
                      (const double* x, const double* phi, const double* d1, double c, const double* y,
                       const double* w, std::size_t S, bool bias, double* acc),
                      (x, phi, d1, c, y, w, S, bias, acc))
#undef MOERATE_GRAM_DISPATCH

}  // namespace

#define MOERATE_GRAM_CALL(name, args)                     \
  switch (vmath_isa()) {                                  \
    case VmathIsa::avx512f: return name##_avx512 args;   \
    case VmathIsa::avx2: return name##_avx2 args;        \
    case VmathIsa::sse2: return name##_sse2 args;        \
  }

void affine_rows(const double* V, std::size_t ld, std::size_t d, const double* eta, std::size_t S, double* h) {
  MOERATE_GRAM_CALL(affine, (V, ld, d, eta, S, h))
}

void rowsum_add_lanes(const double* V, std::size_t ld, std::size_t q, const double* c, std::size_t S, double* acc) {
  MOERATE_GRAM_CALL(rowsum, (V, ld, q, c, S, acc))
}

void weighted_squares_add_lanes(const double* c, const double* r, std::size_t S, double* acc) {
  MOERATE_GRAM_CALL(squares, (c, r, S, acc))
}

void gauss_newton_lanes_with(VmathIsa isa, const double* x, const double* phi, const double* d1, double c,
                             const double* y, const double* w, std::size_t S, bool bias, double* acc) {
  switch (isa) {
    case VmathIsa::avx512f: return gauss_newton_avx512(x, phi, d1, c, y, w, S, bias, acc);
    case VmathIsa::avx2: return gauss_newton_avx2(x, phi, d1, c, y, w, S, bias, acc);
    case VmathIsa::sse2: return gauss_newton_sse2(x, phi, d1, c, y, w, S, bias, acc);
  }
}

void gauss_newton_lanes(const double* x, const double* phi, const double* d1, double c, const double* y,
                        const double* w, std::size_t S, bool bias, double* acc) {
  gauss_newton_lanes_with(vmath_isa(), x, phi, d1, c, y, w, S, bias, acc);
}
#undef MOERATE_GRAM_CALL



namespace {

/// Row u of the block: every d-th value from X + a * d + u (contiguous stores;
/// the loads of one observation share a cache line across the rows).
template <std::size_t D>
void copy_rows(const double* __restrict X, std::size_t d_run, std::size_t a, std::size_t S, double* __restrict out) {
  const std::size_t d = D > 0 ? D : d_run;
  const double* __restrict x0 = X + a * d;
  for (std::size_t u = 0; u < d; ++u) {
    double* __restrict dst = out + u * GramRows::kCap;
    const double* __restrict src = x0 + u;
    for (std::size_t i = 0; i < S; ++i) dst[i] = src[i * d];
  }
}

/// The same copy with 4 x 4 transposes in registers: four observations'
/// features u..u+3 loaded as four vectors, transposed, stored into four rows.
__attribute__((target("avx2"))) void copy_rows_avx2(const double* __restrict X, std::size_t d, std::size_t a,
                                                    std::size_t S, double* __restrict out) {
  const double* __restrict x0 = X + a * d;
  std::size_t i = 0;
  for (; i + 4 <= S; i += 4) {
    const double* x = x0 + i * d;
    std::size_t u = 0;
    for (; u + 4 <= d; u += 4) {
      const __m256d r0 = _mm256_loadu_pd(x + u), r1 = _mm256_loadu_pd(x + d + u);
      const __m256d r2 = _mm256_loadu_pd(x + 2 * d + u), r3 = _mm256_loadu_pd(x + 3 * d + u);
      const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
      const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
      double* o = out + u * GramRows::kCap + i;
      _mm256_storeu_pd(o, _mm256_permute2f128_pd(t0, t2, 0x20));
      _mm256_storeu_pd(o + GramRows::kCap, _mm256_permute2f128_pd(t1, t3, 0x20));
      _mm256_storeu_pd(o + 2 * GramRows::kCap, _mm256_permute2f128_pd(t0, t2, 0x31));
      _mm256_storeu_pd(o + 3 * GramRows::kCap, _mm256_permute2f128_pd(t1, t3, 0x31));
    }
    for (; u < d; ++u)
      for (std::size_t l = 0; l < 4; ++l) out[u * GramRows::kCap + i + l] = x[l * d + u];
  }
  for (; i < S; ++i)
    for (std::size_t u = 0; u < d; ++u) out[u * GramRows::kCap + i] = x0[i * d + u];
}

}  // namespace

void GramRows::copy_columns(const double* X, std::size_t d, std::size_t a, std::size_t b, std::size_t r0) {
  double* out = buf_ + r0 * kCap;
  if (d >= 4 && vmath_isa() != VmathIsa::sse2) return copy_rows_avx2(X, d, a, b - a, out);
  switch (d) {
    case 4: return copy_rows<4>(X, d, a, b - a, out);
    case 8: return copy_rows<8>(X, d, a, b - a, out);
    default: return copy_rows<0>(X, d, a, b - a, out);
  }
}

void GramRows::fill_row(std::size_t u, double v, std::size_t S) { std::fill_n(row(u), S, v); }

std::size_t GramRows::pad(std::size_t S) {
  const std::size_t P = padded(S);
  for (std::size_t u = 0; u < q_; ++u) std::fill(row(u) + S, row(u) + P, 0.0);
  return P;
}

}  // namespace moerate
