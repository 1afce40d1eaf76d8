#include <omp.h>

#include <atomic>

#include "tconv/kernels.hpp"

namespace tconv {
namespace {
// omp_set_num_threads() only sets the *calling* thread's ICV: a count set from Python's main
// thread would not reach kernels called from other Python threads (thread pools, dask).  So
// the count is kept process-wide here and applied by each kernel call (apply_num_threads).
std::atomic<int> requested_threads{0};  // 0: OpenMP's default (OMP_NUM_THREADS or all cores)
}  // namespace

int get_num_threads() {
  const int n = requested_threads.load();
  return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) {
  requested_threads.store(n < 1 ? 1 : n);
  omp_set_num_threads(n < 1 ? 1 : n);
}

void apply_num_threads() {
  const int n = requested_threads.load();
  if (n > 0 && omp_get_max_threads() != n) omp_set_num_threads(n);
}

}  // namespace tconv
