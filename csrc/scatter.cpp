// Forward transposed convolution, y = C^T x, by polyphase (sub-convolution) decomposition.
//
// Per axis, y[o] receives x[i] * W[k] for o = i*s - p + k*d.  Write o = j*s + rho with the
// output phase rho in [0, s): the taps reaching phase rho are exactly the k with
// (rho + p - k*d) = 0 (mod s), and they read x[j + (rho + p - k*d)/s].  So each of the
// prod(min(s, fine)) phases is a dense stride-1 correlation of x with a sub-kernel:
//
//   y[n][f][j*s + rho] = bias[f] + sum_c sum_{k in taps(rho)} W[c][f][k] * x[n][c][j + off(rho, k)]
//
// an implicit GEMM (M = C_out/groups, N = batch x phase pixels, K = C_in/groups x taps(rho))
// run by run_subconvs.  No multiplication by an inserted zero, no column buffer, no atomics;
// every y element is written once.  A phase with no taps receives the bias only.
// Few output channels per group (an RGB output layer) would give every phase a GEMM of
// only M <= 4 rows; columns_suit then routes the call to columns.cpp instead, and one channel
// per group on both sides (depthwise) goes to depthwise.cpp, which vectorises over pixels.
// The planner (tconv/plan.hpp) makes the choice.
#include "gemm/engine.hpp"
#include "tconv/columns.hpp"
#include "tconv/depthwise.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/plan.hpp"
#include "tconv/subconv.hpp"

namespace tconv {
namespace {

// With `check`, returns false when some output is Inf or NaN (see tconv/nonfinite.hpp).
template <typename T>
bool scatter_fast(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool check) {
  switch (forward_algorithm(g)) {
    case Algorithm::kGemm:
      return run_gemm(g, /*transposed=*/true, x, w, bias, y, check);
    case Algorithm::kDepthwise:
      return scatter_depthwise(g, x, w, bias, y, check);
    case Algorithm::kPhaseGemm:
      return run_phase_gemm(g, /*transposed=*/true, x, w, bias, y, check);
    case Algorithm::kColumns:
      return scatter_columns(g, x, w, bias, y, check);
    case Algorithm::kBatchInner:
      return run_batch_inner(g, /*transposed=*/true, x, w, bias, y, check);
    case Algorithm::kSubconv:
      break;
  }
  return run_subconvs<T>(scatter_subconvs(g), x, w, bias, y, check);
}

}  // namespace

template <typename T>
void scatter(const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  // The depthwise rows test their outputs as they store them (in registers, or one row in
  // L1): cheaper than a serial scan of x and w before the call, whatever the sizes.  So do
  // the sub-convolutions (store_tile in registers, the kernels' own stores tile by tile in
  // L1), whose scan would read all of x and w once more (docs/perf-log.md, 2026-12-03).
  const Algorithm algorithm = forward_algorithm(g);
  const bool test_after = algorithm == Algorithm::kDepthwise ||
                          algorithm == Algorithm::kSubconv || algorithm == Algorithm::kBatchInner;
  run_checked(
      x, g.batch * g.coarse_channels * g.coarse_pixels(), w,
      g.coarse_channels * g.fine_per_group() * g.taps(),
      test_after ? 0 : g.batch * g.fine_channels * g.fine_pixels(),
      [&](bool check) { return scatter_fast(g, x, w, bias, y, check); },
      [&] { scatter_repair(g, x, w, bias, y); });
}

template void scatter<float>(const Geometry&, const float*, const float*, const float*, float*);
template void scatter<double>(const Geometry&, const double*, const double*, const double*,
                              double*);

}  // namespace tconv
