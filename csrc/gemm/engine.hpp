// The dense GEMM engine: the operators' calls that are plain matrix products.
//
// A 1x1 (every axis: kernel 1, stride 1, padding 0) transposed convolution or convolution
// reads no neighbourhood and inserts no zeros: per batch image n and group g it is
//
//   forward (scatter):  y[n][g] (M x P) = W_g^T (M x K) * x[n][g] (K x P),  M = C_out/groups
//   gather (conv):      x[n][g] (M x P) = W_g   (M x K) * y[n][g] (K x P),  M = C_in/groups
//
// with P the pixels, rows of x and y contiguous (stride P), plus the bias per output row.
// run_gemm computes it GotoBLAS / BLIS style (engine.cpp): the weights packed once into the
// micro-kernel's A panels, B packed per (K block, column block) into its panels, and the
// micro-kernel tables of active_gemm<T>() doing the arithmetic.
#pragma once

#include "tconv/geometry.hpp"

namespace tconv {

// Whether g is a pure GEMM that run_gemm takes (forward and gather alike).  Decided from the
// geometry's kernel, stride, padding and dilation only -- never from the batch, the sizes or
// the thread count -- and run_gemm sums every output in the subconv driver's order (K blocks
// of k_block<T>(), increasing k, then the bias), so choosing it changes no result bit.
inline bool gemm_suits(const Geometry& g) {
  for (int d = 0; d < kMaxDims; ++d)
    if (g.kernel[d] != 1 || g.stride[d] != 1 || g.pad[d] != 0 || g.coarse[d] != g.fine[d])
      return false;
  return true;
}

// How run_gemm will run one call (reported by tconv.plan): register tile, K block, the rows
// (panels of A) and columns (of B) of the largest task, the task count, whether the call runs
// in parallel, its flops and the scratch it allocates beyond the output (the packed weights,
// shared, plus per thread a packed B block and a partial-sum block or an mr x nr tile).
struct GemmPlan {
  int mr = 0, nr = 0;
  int64_t kc = 0, mc = 0, nc = 0, tasks = 0;
  bool parallel = false;
  double flops = 0;
  int64_t workspace_bytes = 0;
};

// The plan of run_gemm(g, transposed, ...) on `threads` threads; g as for run_gemm.
template <typename T>
GemmPlan plan_gemm(const Geometry& g, bool transposed, int threads);

// y = C^T x (transposed = true: x coarse, y fine) or x = C y (false: src fine, dst coarse) for
// a g with gemm_suits(g); arrays as in kernels.hpp.  With `check`, returns false when some
// output is Inf or NaN (tconv/nonfinite.hpp); without, true.
template <typename T>
bool run_gemm(const Geometry& g, bool transposed, const T* src, const T* w, const T* bias, T* dst,
              bool check);

}  // namespace tconv
