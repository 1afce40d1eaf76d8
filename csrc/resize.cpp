// Integer-factor upsampling and its adjoint (see tconv/resize.hpp for the index formulas).
//
// Both directions run through `resample`, which applies a separable product of per-dim sparse
// matrices one dim at a time.  Each pass loops in parallel over destination rows, so every
// output element is owned by exactly one thread and summed in the fixed order of its row list:
// the backward is a gather over U^T rather than a scatter over U, which is what keeps it free
// of races and atomics, and bitwise independent of the thread count.
#include <algorithm>
#include <cmath>
#include <memory>

#include "tconv/cancel.hpp"
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

namespace {

// An axis that maps every position to itself with weight 1 (a dim of size 1, or scale 1).
bool is_identity(const ResampleAxis& axis) {
  if (axis.in_size != axis.out_size) return false;
  for (int64_t r = 0; r < axis.out_size; ++r) {
    const auto j = static_cast<size_t>(axis.start[static_cast<size_t>(r)]);
    if (axis.start[static_cast<size_t>(r + 1)] != static_cast<int64_t>(j) + 1 ||
        axis.index[j] != r || axis.weight[j] != 1.0)
      return false;
  }
  return true;
}

// One separable pass: src viewed as (outer, axis.in_size, inner), dst as
// (outer, axis.out_size, inner);  dst[o][r][i] = sum_{j in row r} w[j] * src[o][index[j]][i],
// summed in row order.  Parallel over the (o, r) rows: each dst row has one owner.  The rows
// are taken in runs of about kRunValues values (a row can be a single value), and
// cancellation (tconv/cancel.hpp) is checked once per run.  Runs are handed out guided (large
// shares first, then smaller ones), so the calling thread -- the only one that polls for
// Ctrl-C -- keeps taking runs until none is left instead of idling at the barrier while a
// slower thread finishes a static share.  (Single runs, schedule(dynamic, 1), cost ~15 % here
// by interleaving the two threads' first touches of the output.)
template <typename T>
void apply_axis(const ResampleAxis& axis, int64_t outer, int64_t inner, const T* src, T* dst) {
  constexpr int64_t kRunValues = 4096;
  std::vector<T> w(axis.weight.size());
  for (size_t j = 0; j < w.size(); ++j) w[j] = static_cast<T>(axis.weight[j]);
  const int64_t n_in = axis.in_size;
  const int64_t n_out = axis.out_size;
  const int64_t rows = outer * n_out;
  const int64_t run = std::max<int64_t>(1, kRunValues / inner);
  Cancellation* const cancel = current_cancellation();
#pragma omp parallel for schedule(guided)
  for (int64_t first = 0; first < rows; first += run) {
    if (stop(cancel)) continue;
    int64_t o = first / n_out, r = first % n_out;
    for (int64_t i = first, end = std::min(rows, first + run); i < end; ++i, ++r) {
      if (r == n_out) {
        r = 0;
        ++o;
      }
      const T* base = src + o * n_in * inner;
      T* row = dst + (o * n_out + r) * inner;
      const int64_t j0 = axis.start[static_cast<size_t>(r)];
      const int64_t j1 = axis.start[static_cast<size_t>(r + 1)];
      if (inner == 1) {  // the contiguous dim: a short gather per element
        T acc = T(0);
        for (int64_t j = j0; j < j1; ++j)
          acc += w[static_cast<size_t>(j)] * base[axis.index[static_cast<size_t>(j)]];
        row[0] = acc;
        continue;
      }
      std::fill(row, row + inner, T(0));
      for (int64_t j = j0; j < j1; ++j) {  // whole rows: a vectorisable axpy
        const T wj = w[static_cast<size_t>(j)];
        const T* in_row = base + axis.index[static_cast<size_t>(j)] * inner;
        for (int64_t i = 0; i < inner; ++i) row[i] += wj * in_row[i];
      }
    }
  }
}

}  // namespace

// The separable product is applied one dim at a time, x (contiguous) first, then y, then z:
// out = sum_z wz * (sum_y wy * (sum_x wx * in)), the same nesting for every element.
// Identity dims are skipped; intermediate results live in scratch buffers.
template <typename T>
void resample(int64_t planes, const std::array<ResampleAxis, kMaxDims>& axes, const T* in,
              T* out) {
  std::array<int64_t, kMaxDims> size{axes[0].in_size, axes[1].in_size, axes[2].in_size};
  std::array<size_t, kMaxDims> active{};
  size_t n_active = 0;
  for (size_t d = kMaxDims; d-- > 0;)  // x, then y, then z
    if (!is_identity(axes[d])) active[n_active++] = d;
  if (n_active == 0) {
    std::copy(in, in + planes * size[0] * size[1] * size[2], out);
    return;
  }
  std::unique_ptr<T[]> scratch[2];
  const T* src = in;
  for (size_t step = 0; step < n_active; ++step) {
    const size_t d = active[step];
    int64_t outer = planes;
    for (size_t e = 0; e < d; ++e) outer *= size[e];
    int64_t inner = 1;
    for (size_t e = d + 1; e < kMaxDims; ++e) inner *= size[e];
    size[d] = axes[d].out_size;
    T* dst = out;
    if (step + 1 < n_active) {
      scratch[step % 2].reset(new T[static_cast<size_t>(outer * size[d] * inner)]);
      dst = scratch[step % 2].get();
    }
    apply_axis<T>(axes[d], outer, inner, src, dst);
    src = dst;
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
