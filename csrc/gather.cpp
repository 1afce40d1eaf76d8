// Ordinary convolution, x = C y, as a gather (the adjoint of scatter.cpp; also grad_input of
// conv_transpose):
//
//   x[n][c][i] = bias[c] + sum_{f in group(c)} sum_k W[c][f][k] * y[n][f][i*s - p + k*d]
//
// A strided convolution reads only real data, so it needs no phase split: it is one
// sub-convolution (M = C_coarse/groups, N = batch x coarse pixels, K = C_fine/groups x taps)
// whose source index per axis is i*s + (k*d - p); taps reading outside [0, fine) read zeros.
// Few channels per group on both sides (depthwise) run in depthwise.cpp instead.
#include "gemm/engine.hpp"
#include "tconv/depthwise.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/plan.hpp"
#include "tconv/subconv.hpp"

namespace tconv {
namespace {

// With `check`, returns false when some output is Inf or NaN (see tconv/nonfinite.hpp).
template <typename T>
bool gather_fast(const Geometry& g, const T* y, const T* w, const T* bias, T* x, bool check) {
  switch (gather_algorithm(g)) {
    case Algorithm::kGemm:
      return run_gemm(g, /*transposed=*/false, y, w, bias, x, check);
    case Algorithm::kDepthwise:
      return gather_depthwise(g, y, w, bias, x, check);
    case Algorithm::kPhaseGemm:
      return run_phase_gemm(g, /*transposed=*/false, y, w, bias, x, check);
    case Algorithm::kBatchInner:
      return run_batch_inner(g, /*transposed=*/false, y, w, bias, x, check);
    default:
      break;
  }
  return run_subconvs<T>({gather_subconv(g)}, y, w, bias, x, check);
}

}  // namespace

template <typename T>
void gather(const Geometry& g, const T* y, const T* w, const T* bias, T* x) {
  run_checked(
      y, g.batch * g.fine_channels * g.fine_pixels(), w,
      g.coarse_channels * g.fine_per_group() * g.taps(),
      g.batch * g.coarse_channels * g.coarse_pixels(),
      [&](bool check) { return gather_fast(g, y, w, bias, x, check); },
      [&] { gather_repair(g, y, w, bias, x); });
}

template void gather<float>(const Geometry&, const float*, const float*, const float*, float*);
template void gather<double>(const Geometry&, const double*, const double*, const double*,
                             double*);

}  // namespace tconv
