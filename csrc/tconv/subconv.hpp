// Sub-convolutions: the implicit GEMM shared by the forward (scatter) and gather operators.
//
// A SubConv computes, for every batch image n, group g, output channel m < M and grid point
// j = (jz, jy, jx) < (J_z, J_y, J_x):
//
//   dst[n][g*M + m][dst(j)] = bias[g*M + m]
//       + sum_{c < Kc} sum_{taps t} W[g*w_group + m*w_m + c*w_c + koff(t)] * src[n][g*Kc + c][src(j, t)]
//
//   per axis:  src(j, t) = j * src_step + tap_offset[t]   (reads outside [0, src_size) are 0)
//              dst(j)    = j * dst_step + dst_base
//
// i.e. a GEMM with M rows (output channels), N = batch * J_z * J_y * J_x columns (pixels) and
// K = Kc * taps (input channel x tap).  The forward transposed convolution is prod(stride) of
// these, one per output phase (scatter.cpp); the gather (conv, grad_input) is one (gather.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tconv/geometry.hpp"

namespace tconv {

struct SubAxis {
  int64_t extent = 1;    // J: grid points along this axis
  int64_t src_step = 1;  // source index = j * src_step + tap_offset[t]
  int64_t dst_step = 1;  // destination index = j * dst_step + dst_base
  int64_t dst_base = 0;
  std::vector<int64_t> tap_kernel{0};  // kernel index of each tap of this axis
  std::vector<int64_t> tap_offset{0};
};

struct SubConv {
  int64_t batch = 0, groups = 1;
  int64_t M = 0;   // output channels per group
  int64_t Kc = 0;  // input channels per group
  int64_t src_channels = 0, dst_channels = 0;
  Dims src_dims{1, 1, 1}, dst_dims{1, 1, 1}, kernel{1, 1, 1};
  int64_t w_group = 0, w_m = 0, w_c = 0;  // weight strides (elements)
  std::array<SubAxis, kMaxDims> axes;

  int64_t taps() const {
    return static_cast<int64_t>(axes[0].tap_kernel.size() * axes[1].tap_kernel.size() *
                                axes[2].tap_kernel.size());
  }
  int64_t pixels() const { return axes[0].extent * axes[1].extent * axes[2].extent; }
  // Tap t's index on each axis (z, y, x): the taps run x fastest, then y, then z.
  std::array<int64_t, kMaxDims> tap_axes(int64_t t) const {
    const auto tx_n = static_cast<int64_t>(axes[2].tap_kernel.size());
    const auto ty_n = static_cast<int64_t>(axes[1].tap_kernel.size());
    return {t / (tx_n * ty_n), (t / tx_n) % ty_n, t % tx_n};
  }
};

// The output phases of one axis of a transposed convolution (scatter.cpp): phase rho (dst_base,
// rho < min(stride, fine)) holds the outputs j * stride + rho, j < extent, and receives the
// taps tap_kernel[t] reading input j + tap_offset[t] (the k with rho + pad - k * dilation a
// multiple of the stride, in increasing k).
std::vector<SubAxis> output_phases(int64_t fine, int64_t kernel, int64_t stride, int64_t pad,
                                   int64_t dilation);

// The forward's sub-convolutions of g, one per output phase (scatter.cpp), and the gather's
// one (gather.cpp: the source read at i * stride + k * dilation - pad).
std::vector<SubConv> scatter_subconvs(const Geometry& g);
SubConv gather_subconv(const Geometry& g);

// The channel, size and weight-stride fields of the SubConv for one direction of Geometry g
// (axes left at their defaults): transposed = true maps coarse -> fine (scatter, M = fine
// channels per group), false maps fine -> coarse (gather, M = coarse channels per group).
// Weight layout W[c_coarse][f_local][taps] gives the strides of each direction.
inline SubConv subconv_base(const Geometry& g, bool transposed) {
  SubConv s;
  s.batch = g.batch;
  s.groups = g.groups;
  s.kernel = g.kernel;
  const int64_t taps = g.taps();
  if (transposed) {
    s.M = g.fine_per_group();
    s.Kc = g.coarse_per_group();
    s.src_channels = g.coarse_channels;
    s.dst_channels = g.fine_channels;
    s.src_dims = g.coarse;
    s.dst_dims = g.fine;
    s.w_m = taps;
    s.w_c = g.fine_per_group() * taps;
    s.w_group = g.coarse_per_group() * s.w_c;
  } else {
    s.M = g.coarse_per_group();
    s.Kc = g.fine_per_group();
    s.src_channels = g.fine_channels;
    s.dst_channels = g.coarse_channels;
    s.src_dims = g.fine;
    s.dst_dims = g.coarse;
    s.w_c = taps;
    s.w_m = g.fine_per_group() * taps;
    s.w_group = g.coarse_per_group() * s.w_m;
  }
  return s;
}

// Runs every SubConv of one operator call in a single parallel region (tasks = sub-convolution
// x group x channel block x pixel block).  Every dst element is written by exactly one task,
// summed in the fixed order of K blocks (see ukernels.hpp): deterministic for any thread count.
// The SubConvs of one call are the phases of one operator: they share batch, groups, M, Kc,
// the source and the destination (scatter.cpp, gather.cpp).
// With `check`, every dst value is tested as it is stored and the result is false when one is
// Inf or NaN (tconv/nonfinite.hpp); without, the result is true.
// The weights are packed slab by slab of output channels, each slab's packed copy no larger
// than dst, or with whole_weights all at once (a copy the size of w).
template <typename T>
bool run_subconvs(const std::vector<SubConv>& subs, const T* src, const T* w, const T* bias,
                  T* dst, bool check, bool whole_weights = false);

}  // namespace tconv
