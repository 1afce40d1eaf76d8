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
  bool pipelined = false;  // each thread packs its next B block while the kernels run
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

// Phase GEMMs: kernel = stride on every axis, padding 0 and no dilation (the k2 s2 upsamplers
// of U-Net and V-Net).  Every output pixel then receives exactly one tap, so per image and group
// the forward is one GEMM whose rows are (output channel, phase):
//
//   y[f][p * s + t] = bias[f] + sum_c W[c][f][t] * x[c][p]       rows (f, t), K = C_in/groups
//
// stored with the phases interleaved (a pixel shuffle; outputs past coarse * stride, the
// output_padding border, receive their bias only), and the gather (conv with kernel = stride,
// conv_transpose's grad_input) is one GEMM that reads the phases as its K rows:
//
//   x[c][p] = bias[c] + sum_{f, t} W[c][f][t] * y[f][p * s + t]     K = (C_fine/groups) x taps
//
// with B packed straight from the strided pixels.  Both sum each output in the subconv
// driver's order (K blocks of k_block<T>(), k increasing: channels, then for the gather the
// taps within a channel; then the bias), so choosing them changes no result bit.
inline bool phase_gemm_suits(const Geometry& g) {
  for (int d = 0; d < kMaxDims; ++d)
    if (g.kernel[d] != g.stride[d] || g.pad[d] != 0 ||
        (g.dilation[d] != 1 && g.kernel[d] != 1) || g.fine[d] < g.coarse[d] * g.stride[d])
      return false;
  return true;
}

// As plan_gemm and run_gemm, for a g with phase_gemm_suits(g).
template <typename T>
GemmPlan plan_phase_gemm(const Geometry& g, bool transposed, int threads);
template <typename T>
bool run_phase_gemm(const Geometry& g, bool transposed, const T* src, const T* w, const T* bias,
                    T* dst, bool check);

}  // namespace tconv
