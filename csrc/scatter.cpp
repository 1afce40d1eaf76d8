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
// only M <= 4 rows; columns_suit then routes the call to columns.cpp instead, and few input
// channels per group too (depthwise) to depthwise.cpp, which vectorises over pixels.
#include "tconv/columns.hpp"
#include "tconv/depthwise.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/subconv.hpp"

namespace tconv {

std::vector<SubAxis> output_phases(int64_t fine, int64_t kernel, int64_t stride, int64_t pad,
                                   int64_t dilation) {
  std::vector<SubAxis> out;
  for (int64_t rho = 0; rho < stride && rho < fine; ++rho) {
    SubAxis a;
    a.extent = (fine - rho + stride - 1) / stride;
    a.src_step = 1;
    a.dst_step = stride;
    a.dst_base = rho;
    a.tap_kernel.clear();
    a.tap_offset.clear();
    for (int64_t k = 0; k < kernel; ++k) {
      const int64_t shifted = rho + pad - k * dilation;
      if (shifted - floor_div(shifted, stride) * stride == 0) {
        a.tap_kernel.push_back(k);
        a.tap_offset.push_back(floor_div(shifted, stride));
      }
    }
    out.push_back(std::move(a));
  }
  return out;
}

namespace {

// With `check`, returns false when some output is Inf or NaN (see tconv/nonfinite.hpp).
template <typename T>
bool scatter_fast(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool check) {
  if (depthwise_suits(g)) return scatter_depthwise(g, x, w, bias, y, check);
  if (columns_suit(g)) return scatter_columns(g, x, w, bias, y, check);
  const SubConv base = subconv_base(g, /*transposed=*/true);
  std::array<std::vector<SubAxis>, kMaxDims> axis_phases;
  for (int d = 0; d < kMaxDims; ++d)
    axis_phases[d] = output_phases(g.fine[d], g.kernel[d], g.stride[d], g.pad[d], g.dilation[d]);
  std::vector<SubConv> subs;
  for (const SubAxis& az : axis_phases[0])
    for (const SubAxis& ay : axis_phases[1])
      for (const SubAxis& ax : axis_phases[2]) {
        SubConv s = base;
        s.axes = {az, ay, ax};
        subs.push_back(std::move(s));
      }
  return run_subconvs<T>(subs, x, w, bias, y, check);
}

}  // namespace

template <typename T>
void scatter(const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  run_checked(
      x, g.batch * g.coarse_channels * g.coarse_pixels(), w,
      g.coarse_channels * g.fine_per_group() * g.taps(),
      g.batch * g.fine_channels * g.fine_pixels(),
      [&](bool check) { return scatter_fast(g, x, w, bias, y, check); },
      [&] { scatter_repair(g, x, w, bias, y); });
}

template void scatter<float>(const Geometry&, const float*, const float*, const float*, float*);
template void scatter<double>(const Geometry&, const double*, const double*, const double*,
                              double*);

}  // namespace tconv
