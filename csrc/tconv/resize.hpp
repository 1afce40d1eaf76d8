// Integer-factor upsampling (nearest and multilinear) and its adjoint: the "resize" half of a
// resize-convolution.  Pure C++: no Python in here.
//
// Layout: a tensor of `planes` = N*C independent planes, each C-contiguous with spatial sizes
// `in` (input) and `in * scale` (output); 1-D and 2-D planes are 3-D with leading size-1 dims
// (scale 1).  Upsampling is separable: per spatial dim it is a sparse matrix U_d of shape
// (out_d, in_d), and the whole map is U = U_z (x) U_y (x) U_x.  The adjoint U^T is the same
// separable product of the transposed per-dim matrices, so one kernel (`resample`) applies
// both: the forward with the row-lists of U_d, the backward with those of U_d^T.
//
// Per-dim source positions follow torch.nn.functional.interpolate with align_corners=False
// and an integer scale factor s:
//   nearest:  out[o] = in[floor(o / s)]
//   linear:   src = max((o + 0.5) / s - 0.5, 0),  i0 = floor(src),  i1 = min(i0 + 1, in - 1),
//             lambda = src - i0,   out[o] = (1 - lambda) * in[i0] + lambda * in[i1]
// A dim with s = 1 is the identity in both modes.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "tconv/geometry.hpp"

namespace tconv {

enum class ResizeMode { Nearest, Linear };

// One per-dim sparse matrix in compressed-row form: row r holds the entries
// (index[j], weight[j]) for j in [start[r], start[r + 1]), in increasing j.
struct ResampleAxis {
  int64_t in_size = 1;   // columns
  int64_t out_size = 1;  // rows
  std::vector<int64_t> start{0, 1};
  std::vector<int64_t> index{0};
  std::vector<double> weight{1.0};
};

// U_d for one dim: rows are output positions, columns input positions.
ResampleAxis upsample_axis(int64_t in_size, int64_t scale, ResizeMode mode);

// U_d^T, with each row's entries in increasing order of the original row (a fixed order).
ResampleAxis transpose(const ResampleAxis& axis);

// out[p][a][b][c] = sum_{(i,wz) in Z[a]} wz * sum_{(j,wy) in Y[b]} wy *
//                   sum_{(k,wx) in X[c]} wx * in[p][i][j][k]
// in: (planes, Z.in, Y.in, X.in), out: (planes, Z.out, Y.out, X.out), overwritten.  Applied one
// dim at a time (x, y, z; identity dims skipped) with the same nesting for every element.  Each
// output element is written by one thread in a fixed order: bitwise deterministic, no atomics.
template <typename T>
void resample(int64_t planes, const std::array<ResampleAxis, kMaxDims>& axes, const T* in, T* out);

// y = U x: x (planes, *in), y (planes, *(in * scale)).
template <typename T>
void upsample(int64_t planes, const Dims& in, const Dims& scale, ResizeMode mode, const T* x,
              T* y);

// gx = U^T gy (the gradient of `upsample`): gy (planes, *(in * scale)), gx (planes, *in).
template <typename T>
void upsample_adjoint(int64_t planes, const Dims& in, const Dims& scale, ResizeMode mode,
                      const T* gy, T* gx);

}  // namespace tconv
