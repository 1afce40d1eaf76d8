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

// y = C^T x (transposed = true: x coarse, y fine) or x = C y (false: src fine, dst coarse) for
// a g with gemm_suits(g); arrays as in kernels.hpp.  With `check`, returns false when some
// output is Inf or NaN (tconv/nonfinite.hpp); without, true.
template <typename T>
bool run_gemm(const Geometry& g, bool transposed, const T* src, const T* w, const T* bias, T* dst,
              bool check);

}  // namespace tconv
