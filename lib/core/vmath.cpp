// Vectorised exp, log and tanh by SLEEF (Debian's libsleef3; the u10 functions
// have a documented maximum error of 1.0 ulp, measured below 0.86 ulp in
// tests/core/test_numerics.cpp). AVX2 (4 lanes) when the CPU has it, checked
// once; otherwise SLEEF's 2-lane SSE2 dispatcher. Every value goes through the
// same vector function (the tail is padded), so a result never depends on its
// position in the array or on the block size.
//
// This file is compiled on its own (not in a unity group): the AVX2 code is
// confined to the functions marked with the target attribute, and SLEEF's
// AVX2 declarations, which its header shows only under __AVX2__, are declared
// here for them.
#include "moerate/core/numerics.hpp"

#include <immintrin.h>
#include <sleef.h>

#include <cstring>

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
extern "C" {
__m256d Sleef_expd4_u10avx2(__m256d);
__m256d Sleef_logd4_u10avx2(__m256d);
__m256d Sleef_tanhd4_u10avx2(__m256d);
}
#pragma GCC diagnostic pop

namespace moerate {

namespace {

bool cpu_has_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return yes;
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
MOERATE_VMATH_AVX2(exp_avx2, Sleef_expd4_u10avx2)
MOERATE_VMATH_AVX2(log_avx2, Sleef_logd4_u10avx2)
MOERATE_VMATH_AVX2(tanh_avx2, Sleef_tanhd4_u10avx2)
MOERATE_VMATH_SSE2(exp_sse2, Sleef_expd2_u10)
MOERATE_VMATH_SSE2(log_sse2, Sleef_logd2_u10)
MOERATE_VMATH_SSE2(tanh_sse2, Sleef_tanhd2_u10)
#undef MOERATE_VMATH_AVX2
#undef MOERATE_VMATH_SSE2

}  // namespace

void exp_inplace(double* x, std::size_t n) {
  if (cpu_has_avx2())
    exp_avx2(x, n);
  else
    exp_sse2(x, n);
}

void log_inplace(double* x, std::size_t n) {
  if (cpu_has_avx2())
    log_avx2(x, n);
  else
    log_sse2(x, n);
}

void tanh_inplace(double* x, std::size_t n) {
  if (cpu_has_avx2())
    tanh_avx2(x, n);
  else
    tanh_sse2(x, n);
}

}  // namespace moerate
