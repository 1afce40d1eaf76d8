// Integer-factor upsampling and its adjoint (see tconv/resize.hpp for the index formulas).
//
// Both directions run through `resample`, which applies a separable product of per-dim sparse
// matrices.  The parallel loop is over (plane, z, y) output rows, so every output element is
// owned by exactly one thread and summed in the fixed order of its row lists: the backward is a
// gather over U^T rather than a scatter over U, which is what keeps it free of races.
#include <algorithm>
#include <cmath>

#include "tconv/resize.hpp"

namespace tconv {

ResampleAxis upsample_axis(int64_t in_size, int64_t scale, ResizeMode mode) {
  ResampleAxis axis;
  axis.in_size = in_size;
  axis.out_size = in_size * scale;
  axis.start.assign(1, 0);
  axis.index.clear();
  axis.weight.clear();
  const bool identity = scale == 1;
  for (int64_t o = 0; o < axis.out_size; ++o) {
    if (identity || mode == ResizeMode::Nearest) {
      axis.index.push_back(o / scale);  // floor(o / s); o >= 0
      axis.weight.push_back(1.0);
    } else {
      // align_corners=False: output sample centres (o + 0.5) map to input coordinate
      // (o + 0.5) / s - 0.5, clamped at 0 on the low side (as PyTorch does).
      double src = (static_cast<double>(o) + 0.5) / static_cast<double>(scale) - 0.5;
      if (src < 0.0) src = 0.0;
      int64_t i0 = static_cast<int64_t>(std::floor(src));
      if (i0 > in_size - 1) i0 = in_size - 1;
      const int64_t i1 = std::min<int64_t>(i0 + 1, in_size - 1);
      const double lambda = src - static_cast<double>(i0);
      axis.index.push_back(i0);
      axis.weight.push_back(1.0 - lambda);
      axis.index.push_back(i1);
      axis.weight.push_back(lambda);
    }
    axis.start.push_back(static_cast<int64_t>(axis.index.size()));
  }
  return axis;
}

ResampleAxis transpose(const ResampleAxis& axis) {
  ResampleAxis t;
  t.in_size = axis.out_size;
  t.out_size = axis.in_size;
  t.start.assign(static_cast<size_t>(t.out_size + 1), 0);
  for (int64_t i : axis.index) ++t.start[static_cast<size_t>(i + 1)];
  for (size_t r = 0; r + 1 < t.start.size(); ++r) t.start[r + 1] += t.start[r];
  t.index.assign(axis.index.size(), 0);
  t.weight.assign(axis.weight.size(), 0.0);
  std::vector<int64_t> fill(t.start.begin(), t.start.end() - 1);
  // Walking the original rows in increasing order fills each transposed row in that order.
  for (int64_t o = 0; o < axis.out_size; ++o) {
    for (int64_t j = axis.start[static_cast<size_t>(o)]; j < axis.start[static_cast<size_t>(o + 1)];
         ++j) {
      const auto col = static_cast<size_t>(axis.index[static_cast<size_t>(j)]);
      const auto slot = static_cast<size_t>(fill[col]++);
      t.index[slot] = o;
      t.weight[slot] = axis.weight[static_cast<size_t>(j)];
    }
  }
  return t;
}

template <typename T>
void resample(int64_t planes, const std::array<ResampleAxis, kMaxDims>& axes, const T* in,
              T* out) {
  const ResampleAxis& az = axes[0];
  const ResampleAxis& ay = axes[1];
  const ResampleAxis& ax = axes[2];
  const int64_t in_plane = az.in_size * ay.in_size * ax.in_size;
  const int64_t out_plane = az.out_size * ay.out_size * ax.out_size;
  // Per-dim weights in the working precision, converted once.
  std::array<std::vector<T>, kMaxDims> w;
  for (size_t d = 0; d < kMaxDims; ++d) {
    w[d].resize(axes[d].weight.size());
    for (size_t j = 0; j < w[d].size(); ++j) w[d][j] = static_cast<T>(axes[d].weight[j]);
  }

#pragma omp parallel for collapse(3) schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    for (int64_t a = 0; a < az.out_size; ++a) {
      for (int64_t b = 0; b < ay.out_size; ++b) {
        const T* src = in + p * in_plane;
        T* dst = out + p * out_plane + (a * ay.out_size + b) * ax.out_size;
        for (int64_t c = 0; c < ax.out_size; ++c) {
          T acc_z = T(0);
          for (int64_t jz = az.start[a]; jz < az.start[a + 1]; ++jz) {
            T acc_y = T(0);
            for (int64_t jy = ay.start[b]; jy < ay.start[b + 1]; ++jy) {
              const T* row = src + (az.index[jz] * ay.in_size + ay.index[jy]) * ax.in_size;
              T acc_x = T(0);
              for (int64_t jx = ax.start[c]; jx < ax.start[c + 1]; ++jx) {
                acc_x += w[2][jx] * row[ax.index[jx]];
              }
              acc_y += w[1][jy] * acc_x;
            }
            acc_z += w[0][jz] * acc_y;
          }
          dst[c] = acc_z;
        }
      }
    }
  }
}

namespace {

std::array<ResampleAxis, kMaxDims> upsample_axes(const Dims& in, const Dims& scale,
                                                 ResizeMode mode) {
  std::array<ResampleAxis, kMaxDims> axes;
  for (size_t d = 0; d < kMaxDims; ++d) axes[d] = upsample_axis(in[d], scale[d], mode);
  return axes;
}

}  // namespace

template <typename T>
void upsample(int64_t planes, const Dims& in, const Dims& scale, ResizeMode mode, const T* x,
              T* y) {
  resample<T>(planes, upsample_axes(in, scale, mode), x, y);
}

template <typename T>
void upsample_adjoint(int64_t planes, const Dims& in, const Dims& scale, ResizeMode mode,
                      const T* gy, T* gx) {
  std::array<ResampleAxis, kMaxDims> axes = upsample_axes(in, scale, mode);
  for (auto& axis : axes) axis = transpose(axis);
  resample<T>(planes, axes, gy, gx);
}

template void resample<float>(int64_t, const std::array<ResampleAxis, kMaxDims>&, const float*,
                              float*);
template void resample<double>(int64_t, const std::array<ResampleAxis, kMaxDims>&, const double*,
                               double*);
template void upsample<float>(int64_t, const Dims&, const Dims&, ResizeMode, const float*, float*);
template void upsample<double>(int64_t, const Dims&, const Dims&, ResizeMode, const double*,
                               double*);
template void upsample_adjoint<float>(int64_t, const Dims&, const Dims&, ResizeMode, const float*,
                                      float*);
template void upsample_adjoint<double>(int64_t, const Dims&, const Dims&, ResizeMode,
                                       const double*, double*);

}  // namespace tconv
