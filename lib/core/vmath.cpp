// Vectorised exp, log and tanh by SLEEF (Debian's libsleef3). exp and log are
// the u10 functions (a documented maximum error of 1.0 ulp, measured below
// 0.86 ulp in tests/core/test_numerics.cpp); tanh is the u35 function (3.5 ulp
// documented, 2.54 ulp measured), 2.0x faster than u10 (3.76 -> 1.84 ns per
// value with 8 lanes) and a quarter of the time of a tanh-expert fit
// (docs/performance.md, round 15). AVX-512F (8 lanes) when the CPU has it, else
// AVX2 (4 lanes), checked once; otherwise SLEEF's 2-lane SSE2 dispatcher. The
// three give the same bits for every input (SLEEF evaluates the same
// polynomials with the same FMAs; the test compares them on 200,000 values),
// so the choice changes speed only: log is 2.0x and exp and tanh 1.3x faster
// with 8 lanes than with 4 (docs/performance.md, round 11). Every value goes
// through the same vector function (the tail is padded), so a result never
// depends on its position in the array or on the block size.
//
// This file is compiled on its own (not in a unity group): the AVX2 and
// AVX-512 code is confined to the functions marked with the target attribute,
// and SLEEF's declarations for them, which its header shows only under
// __AVX2__ and __AVX512F__, are declared here.
#include "moerate/core/numerics.hpp"

#include <immintrin.h>
#include <sleef.h>

#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
extern "C" {
__m256d Sleef_expd4_u10avx2(__m256d);
__m256d Sleef_logd4_u10avx2(__m256d);
__m256d Sleef_tanhd4_u35avx2(__m256d);
__m512d Sleef_expd8_u10avx512f(__m512d);
__m512d Sleef_logd8_u10avx512f(__m512d);
__m512d Sleef_tanhd8_u35avx512f(__m512d);
}
#pragma GCC diagnostic pop

namespace moerate {

namespace {

VmathIsa best_isa() {
  static const VmathIsa isa = [] {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return VmathIsa::avx512f;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return VmathIsa::avx2;
    return VmathIsa::sse2;
  }();
  return isa;
}

// The loops differ only in the vector function: a macro writes them once.
#define MOERATE_VMATH_AVX2(name, fn)                                          \
  __attribute__((target("avx2,fma"))) void name(double* x, std::size_t n) { \
    std::size_t i = 0;                                                      \
    for (; i + 4 <= n; i += 4) _mm256_storeu_pd(x + i, fn(_mm256_loadu_pd(x + i))); \
    if (i < n) {                                                            \
      alignas(32) double t[4] = {1, 1, 1, 1};                               \
      std::memcpy(t, x + i, (n - i) * sizeof(double));                      \
      _mm256_store_pd(t, fn(_mm256_load_pd(t)));                            \
      std::memcpy(x + i, t, (n - i) * sizeof(double));                      \
    }                                                                       \
  }
#define MOERATE_VMATH_AVX512(name, fn)                                        \
  __attribute__((target("avx512f"))) void name(double* x, std::size_t n) {  \
    std::size_t i = 0;                                                      \
    for (; i + 8 <= n; i += 8) _mm512_storeu_pd(x + i, fn(_mm512_loadu_pd(x + i))); \
    if (i < n) {                                                            \
      alignas(64) double t[8] = {1, 1, 1, 1, 1, 1, 1, 1};                   \
      std::memcpy(t, x + i, (n - i) * sizeof(double));                      \
      _mm512_store_pd(t, fn(_mm512_load_pd(t)));                            \
      std::memcpy(x + i, t, (n - i) * sizeof(double));                      \
    }                                                                       \
  }
#define MOERATE_VMATH_SSE2(name, fn)                                          \
  void name(double* x, std::size_t n) {                                     \
    std::size_t i = 0;                                                      \
    for (; i + 2 <= n; i += 2) _mm_storeu_pd(x + i, fn(_mm_loadu_pd(x + i))); \
    if (i < n) {                                                            \
      alignas(16) double t[2] = {x[i], 1};                                  \
      _mm_store_pd(t, fn(_mm_load_pd(t)));                                  \
      x[i] = t[0];                                                          \
    }                                                                       \
  }
MOERATE_VMATH_AVX512(exp_avx512, Sleef_expd8_u10avx512f)
MOERATE_VMATH_AVX512(log_avx512, Sleef_logd8_u10avx512f)
MOERATE_VMATH_AVX512(tanh_avx512, Sleef_tanhd8_u35avx512f)
MOERATE_VMATH_AVX2(exp_avx2, Sleef_expd4_u10avx2)
MOERATE_VMATH_AVX2(log_avx2, Sleef_logd4_u10avx2)
MOERATE_VMATH_AVX2(tanh_avx2, Sleef_tanhd4_u35avx2)
MOERATE_VMATH_SSE2(exp_sse2, Sleef_expd2_u10)
MOERATE_VMATH_SSE2(log_sse2, Sleef_logd2_u10)
MOERATE_VMATH_SSE2(tanh_sse2, Sleef_tanhd2_u35)
#undef MOERATE_VMATH_AVX512
#undef MOERATE_VMATH_AVX2
#undef MOERATE_VMATH_SSE2

}  // namespace

VmathIsa vmath_isa() { return best_isa(); }

bool vmath_supported(VmathIsa isa) {
  switch (isa) {
    case VmathIsa::sse2: return true;
    case VmathIsa::avx2: return best_isa() != VmathIsa::sse2;
    case VmathIsa::avx512f: return best_isa() == VmathIsa::avx512f;
  }
  return false;
}

const char* vmath_isa_name(VmathIsa isa) {
  switch (isa) {
    case VmathIsa::sse2: return "sse2";
    case VmathIsa::avx2: return "avx2";
    case VmathIsa::avx512f: return "avx512f";
  }
  return "?";
}

// One dispatcher per function; `isa` must be supported (vmath_supported).
#define MOERATE_VMATH_DISPATCH(name)                                  \
  void name##_inplace_with(VmathIsa isa, double* x, std::size_t n) {  \
    switch (isa) {                                                    \
      case VmathIsa::avx512f: name##_avx512(x, n); return;            \
      case VmathIsa::avx2: name##_avx2(x, n); return;                 \
      case VmathIsa::sse2: name##_sse2(x, n); return;                 \
    }                                                                 \
  }                                                                   \
  void name##_inplace(double* x, std::size_t n) { name##_inplace_with(best_isa(), x, n); }
MOERATE_VMATH_DISPATCH(exp)
MOERATE_VMATH_DISPATCH(log)
MOERATE_VMATH_DISPATCH(tanh)
#undef MOERATE_VMATH_DISPATCH

}  // namespace moerate
