// moerate/core/parallel.hpp -- deterministic parallel loops over observations.
//
// EM's passes over the data (log joint densities, the gate's gradient and
// Hessian, the experts' normal equations) run over blocks of observations on
// all threads of the current OpenMP team, with results that do not depend on
// the thread count: the observations are cut into chunks whose boundaries
// depend only on n, each chunk accumulates its own partial sum in order, and
// the partial sums are added in chunk order.
//
//   for_blocks(n, [&](std::size_t a, std::size_t b) { ... columns a..b-1 ... });
//   arma::mat H = reduce_blocks<arma::mat>(n, arma::zeros(p, p),
//       [&](arma::mat& acc, std::size_t a, std::size_t b) { acc += ...; });
//
// Inside an active parallel region (parallel starts, sweep tasks) the loops
// run serially in the calling thread, so parallelism is never nested; small
// problems (fewer than kMinParallelBlocks blocks) run serially too.
//
// Waiting threads: libgomp's default lets idle threads spin for a while after
// each parallel region. Between EM's many short regions that burns a core
// (measured: a test binary took 47 s of CPU instead of 4.5 s on a busy 2-core
// machine). Programs call prefer_passive_openmp(argv) first thing in main.
#pragma once

#include <algorithm>
#include <cstddef>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace moerate {

/// Observations per block: a block's k x B and (d+1) x B working sets stay in
/// the L2 cache.
constexpr std::size_t kObsBlock = 2048;
/// Most chunks a reduction is cut into (bounds the memory of partial sums).
constexpr std::size_t kMaxChunks = 64;

/// Fewest blocks worth splitting across threads.
constexpr std::size_t kMinParallelBlocks = 8;

/// If neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is set, sets
/// OMP_WAIT_POLICY=PASSIVE and re-executes the program (/proc/self/exe) with
/// the same arguments, so idle OpenMP threads sleep instead of spinning.
/// Returns (doing nothing) when a variable is set or the re-execution fails.
void prefer_passive_openmp(char** argv);

/// Whether loops started here may use several threads (not inside an active
/// parallel region, more than one thread available, enough work).
inline bool parallel_worthwhile(std::size_t n_blocks) {
#ifdef _OPENMP
  return n_blocks >= kMinParallelBlocks && !omp_in_parallel() && omp_get_max_threads() > 1;
#else
  (void)n_blocks;
  return false;
#endif
}

/// Calls fn(a, b) for the blocks [a, b) of [0, n), in parallel; fn must only
/// write to the columns a..b-1 of its outputs.
template <class Fn>
void for_blocks(std::size_t n, Fn&& fn, std::size_t block = kObsBlock) {
  const std::size_t nb = (n + block - 1) / block;
  const long nbl = static_cast<long>(nb);
#pragma omp parallel for schedule(static) if (parallel_worthwhile(nb))
  for (long i = 0; i < nbl; ++i) {
    const std::size_t a = std::size_t(i) * block;
    fn(a, std::min(n, a + block));
  }
}

/// Sum over [0, n) of fn's contributions, deterministic for every thread count:
/// the range is cut into at most kMaxChunks chunks of whole blocks (boundaries
/// depend on n only); chunk c starts from `zero` and calls fn(acc, a, b) on its
/// blocks in order; the chunks' sums are then added in chunk order.
template <class Acc, class Fn>
Acc reduce_blocks(std::size_t n, const Acc& zero, Fn&& fn, std::size_t block = kObsBlock) {
  const std::size_t nb = (n + block - 1) / block;
  if (nb <= 1) {
    Acc acc = zero;
    if (n > 0) fn(acc, std::size_t(0), n);
    return acc;
  }
  const std::size_t nc = std::min(nb, kMaxChunks);
  std::vector<Acc> part(nc, zero);
  const long ncl = static_cast<long>(nc);
#pragma omp parallel for schedule(static) if (parallel_worthwhile(nc))
  for (long c = 0; c < ncl; ++c) {
    const std::size_t b0 = nb * std::size_t(c) / nc, b1 = nb * (std::size_t(c) + 1) / nc;
    for (std::size_t bl = b0; bl < b1; ++bl) {
      const std::size_t a = bl * block;
      fn(part[std::size_t(c)], a, std::min(n, a + block));
    }
  }
  Acc total = std::move(part[0]);
  for (std::size_t c = 1; c < nc; ++c) total += part[c];
  return total;
}

/// The sum of n per-observation values: fill(a, b, out) writes those of
/// observations a..b-1 to out[0..b-a); each block is summed in order, then the
/// blocks (reduce_blocks). GaussianMoE::log_likelihood and EM's evaluation both
/// sum this way, so they agree to the last bit for every thread count.
template <class Fill>
double sum_over_blocks(std::size_t n, Fill&& fill) {
  return reduce_blocks<double>(n, 0.0, [&](double& acc, std::size_t a, std::size_t b) {
    std::vector<double> v(b - a);
    fill(a, b, v.data());
    double block_sum = 0;
    for (const double x : v) block_sum += x;
    acc += block_sum;
  });
}

}  // namespace moerate
