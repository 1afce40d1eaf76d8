// Geometry shared by every tconv kernel.
//
// A transposed convolution maps the *coarse* tensor x, laid out (N, C_coarse, *coarse),
// to the *fine* tensor y, laid out (N, C_fine, *fine).  The ordinary convolution is its
// adjoint and maps fine -> coarse.  Per spatial dim the two are tied by one identity:
//
//     fine_index = coarse_index * stride - pad + tap * dilation            (1)
//
// where `pad` is the padding on the low side only; the high side (padding, output_padding)
// is carried entirely by the explicit fine size, so asymmetric padding costs nothing.
//
// Both ops share one weight layout, W[c_coarse][c_fine % fine_per_group][taps...]:
// PyTorch's (C_in, C_out/groups, *k) for conv_transpose, and (C_out, C_in/groups, *k) for conv.
// 1-D and 2-D problems are stored as 3-D with leading size-1 dims (stride 1, pad 0).
#pragma once

#include <array>
#include <cstdint>

namespace tconv {

constexpr int kMaxDims = 3;
using Dims = std::array<int64_t, kMaxDims>;

struct Geometry {
  int64_t batch = 0;
  int64_t groups = 1;
  int64_t coarse_channels = 0;
  int64_t fine_channels = 0;
  Dims coarse{1, 1, 1};
  Dims fine{1, 1, 1};
  Dims kernel{1, 1, 1};
  Dims stride{1, 1, 1};
  Dims pad{0, 0, 0};
  Dims dilation{1, 1, 1};

  int64_t coarse_per_group() const { return coarse_channels / groups; }
  int64_t fine_per_group() const { return fine_channels / groups; }
  int64_t coarse_pixels() const { return coarse[0] * coarse[1] * coarse[2]; }
  int64_t fine_pixels() const { return fine[0] * fine[1] * fine[2]; }
  int64_t taps() const { return kernel[0] * kernel[1] * kernel[2]; }
};

// The coarse indices i in [lo, hi) whose tap `tap` lands inside [0, fine) by identity (1).
struct IndexRange {
  int64_t lo;
  int64_t hi;
};

inline int64_t floor_div(int64_t a, int64_t b) {
  // b > 0
  return a >= 0 ? a / b : -((-a + b - 1) / b);
}

inline IndexRange valid_coarse_range(int64_t coarse, int64_t fine, int64_t stride, int64_t pad,
                                     int64_t dilation, int64_t tap) {
  const int64_t shift = pad - tap * dilation;  // fine = i*stride - shift
  int64_t lo = -floor_div(-shift, stride);      // ceil(shift / stride)
  int64_t hi = floor_div(fine - 1 + shift, stride) + 1;
  if (lo < 0) lo = 0;
  if (hi > coarse) hi = coarse;
  if (hi < lo) hi = lo;
  return {lo, hi};
}

}  // namespace tconv
