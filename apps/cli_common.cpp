#include "cli_common.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

extern "C" void openblas_set_num_threads(int);

namespace moerate::cli {

void configure_threads(int threads) {
  // Parallelism is at the level of starts, tasks and bootstrap replicates
  // (OpenMP); BLAS runs single-threaded so that results do not depend on the
  // thread count and threads are not oversubscribed.
  openblas_set_num_threads(1);
#ifdef _OPENMP
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

}  // namespace moerate::cli
