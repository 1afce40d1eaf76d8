// Thread count for every kernel, process-wide.
//
// omp_set_num_threads only sets the *calling* thread's nthreads ICV, so a limit set from
// Python's main thread would not reach kernels started from other Python threads (a thread
// pool, dask's scheduler).  We therefore keep the user's choice in one process-wide atomic
// and re-apply it on the calling thread right before each kernel (apply_num_threads).
// 0 means "never set": OpenMP's own default, which honours OMP_NUM_THREADS.
#include <omp.h>

#include <atomic>

#include "tconv/kernels.hpp"

namespace tconv {

namespace {
std::atomic<int> g_num_threads{0};
}

int get_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) { g_num_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

void apply_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) omp_set_num_threads(n);
}

}  // namespace tconv
