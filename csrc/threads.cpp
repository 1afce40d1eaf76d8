// Thread count for every kernel, process-wide.
//
// omp_set_num_threads only sets the *calling* thread's nthreads ICV, so a limit set from
// Python's main thread would not reach kernels started from other Python threads (a thread
// pool, dask's scheduler).  We therefore keep the user's choice in one process-wide atomic
// and re-apply it on the calling thread right before each kernel (apply_num_threads).
// 0 means "never set": OpenMP's own default, which honours OMP_NUM_THREADS.
//
// Fork.  libgomp's worker threads do not survive fork(), but its thread pool's bookkeeping
// does: a child that opens a parallel region of two or more threads waits forever for the
// workers of its parent.  A team of one never touches the pool (gomp_team_start returns
// before it), so a child forked after a kernel ran multi-threaded runs every kernel on one
// thread (as PyTorch's DataLoader workers do); a child forked before that keeps the count.
#include <omp.h>
#include <pthread.h>

#include <atomic>
#include <stdexcept>

#include "tconv/kernels.hpp"

namespace tconv {

namespace {
std::atomic<int> g_num_threads{0};
// A kernel has run with a team of more than one thread: libgomp's pool may exist.
std::atomic<bool> g_pool_used{false};
// This process was forked after g_pool_used: one thread only, for good.
std::atomic<bool> g_forked_single{false};

void after_fork_in_child() {
  if (!g_pool_used.load(std::memory_order_relaxed)) return;
  g_forked_single.store(true, std::memory_order_relaxed);
  g_num_threads.store(1, std::memory_order_relaxed);
}

[[maybe_unused]] const int g_atfork = pthread_atfork(nullptr, nullptr, after_fork_in_child);
}  // namespace

int get_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  return n > 0 ? n : omp_get_max_threads();
}

void set_num_threads(int n) {
  if (n > 1 && g_forked_single.load(std::memory_order_relaxed))
    throw std::runtime_error(
        "tconv runs on one thread in this process: it was forked after tconv had used several "
        "threads, and OpenMP's thread pool does not survive fork(). Start worker processes "
        "with the 'spawn' or 'forkserver' method to use several threads in them.");
  g_num_threads.store(n < 1 ? 1 : n, std::memory_order_relaxed);
}

void apply_num_threads() {
  const int n = g_num_threads.load(std::memory_order_relaxed);
  if (n > 0) omp_set_num_threads(n);
  // Conservative: any call allowed more than one thread counts as having started the pool.
  if (omp_get_max_threads() > 1 && !g_pool_used.load(std::memory_order_relaxed))
    g_pool_used.store(true, std::memory_order_relaxed);
}

}  // namespace tconv
