#include "moerate/core/parallel.hpp"

#include <unistd.h>

#include <cstdlib>

namespace moerate {

void prefer_passive_openmp(char** argv) {
#ifdef _OPENMP
  if (std::getenv("OMP_WAIT_POLICY") != nullptr || std::getenv("GOMP_SPINCOUNT") != nullptr) return;
  if (argv == nullptr || argv[0] == nullptr) return;
  // libgomp reads its wait policy once, when it is loaded: the only way to
  // change the default is to start again with the variable set.
  if (setenv("OMP_WAIT_POLICY", "PASSIVE", 1) != 0) return;
  // BLAS runs single-threaded (see apps/cli_common.cpp): with this set before
  // OpenBLAS loads, its thread pool is never started.
  setenv("OPENBLAS_NUM_THREADS", "1", 1);
  execv("/proc/self/exe", argv);
  // execv returned: it failed; carry on with the active policy.
#else
  (void)argv;
#endif
}

}  // namespace moerate
