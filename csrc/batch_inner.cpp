// Batch-inner sub-convolutions: a 1-D or 2-D problem on small images run as the problem one
// dimension up whose innermost axis is the batch (kernel 1, stride 1, no padding on it).
//
// On an image of a few pixels a large share of the terms the sub-convolutions multiply read
// padding (DCGAN 512->256, 4x4 -> 8x8: 23 %), and those columns are spread over every image,
// so no tile of the implicit GEMM is free of them.  With the batch innermost, a tile is up to
// nr images at one pixel: its taps read inside for every column of it or for none, and the
// direct path lists only the former (kgemm, run.cpp).  The source is copied to
// (C, pixels, batch) first and the result back from (C, pixels, batch).
//
// The inner problem's K (channel x tap, taps in the same order) and K blocks are the outer
// problem's, and a skipped product is an exact zero added to a sum started from +0: every
// output has the same bits as through the outer problem's own sub-convolutions.
#include <algorithm>

#include <omp.h>

#include "tconv/assert.hpp"
#include "tconv/plan.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Most pixels of the outer source or destination image (a larger image has few tiles that
// straddle its border; its rows are long enough for the outer problem's own tiles).
constexpr int64_t kMaxPixels = 256;
// Fewest images: the inner problem's rows (the batch) fill its tiles of nr <= 32 points,
// so that it takes the direct path (kDirectMinFill), whose tiles list their taps.
constexpr int64_t kMinBatch = 32;
// Least share of the outer sub-convolutions' terms that read padding (1 / kWasteDiv).
constexpr int64_t kWasteDiv = 6;

// Per axis: the (destination index, tap) terms the sub-convolutions multiply, and those whose
// source index lies inside.  The forward's phase grid covers [0, fine) and reads
// i = (o + pad - k * dilation) / stride where that divides; the gather covers [0, coarse)
// and reads o = i * stride - pad + k * dilation.
struct AxisTerms {
  int64_t all = 0, inside = 0;
};

AxisTerms axis_terms(const Geometry& g, int d, bool transposed) {
  AxisTerms t;
  for (int64_t k = 0; k < g.kernel[d]; ++k) {
    if (transposed) {
      for (int64_t o = 0; o < g.fine[d]; ++o) {
        const int64_t shifted = o + g.pad[d] - k * g.dilation[d];
        if (floor_div(shifted, g.stride[d]) * g.stride[d] != shifted) continue;
        ++t.all;
        const int64_t i = shifted / g.stride[d];
        t.inside += i >= 0 && i < g.coarse[d] ? 1 : 0;
      }
    } else {
      for (int64_t i = 0; i < g.coarse[d]; ++i) {
        const int64_t o = i * g.stride[d] - g.pad[d] + k * g.dilation[d];
        ++t.all;
        t.inside += o >= 0 && o < g.fine[d] ? 1 : 0;
      }
    }
  }
  return t;
}

// out[c][r] = in[r][c] for r < rows, c < cols: blocks of nr rows x kCols columns through the
// micro-kernels' panel transpose (into scratch in L1, then nr-element runs of out), the last
// rows % nr rows one element at a time.
constexpr int64_t kCols = 64;

template <typename T>
void transpose(const T* in, int64_t rows, int64_t cols, T* out, bool parallel) {
  const GemmKernels<T>& uk = active_gemm<T>();
  const int64_t nr = uk.nr, row_blocks = rows / nr, col_blocks = ceil_div(cols, kCols);
  TCONV_ASSERT(nr <= 64);
#pragma omp parallel if (parallel)
  {
    T panel[kCols * 64];  // kCols x nr (nr <= 64)
#pragma omp for schedule(static)
    for (int64_t b = 0; b < row_blocks * col_blocks; ++b) {
      const int64_t r0 = b / col_blocks * nr, c0 = b % col_blocks * kCols;
      const int64_t kc = std::min(kCols, cols - c0);
      uk.transpose(in + r0 * cols + c0, cols, kc, panel);
      for (int64_t k = 0; k < kc; ++k)
        std::copy(panel + k * nr, panel + (k + 1) * nr, out + (c0 + k) * rows + r0);
    }
#pragma omp for schedule(static)
    for (int64_t c = 0; c < cols; ++c)
      for (int64_t r = row_blocks * nr; r < rows; ++r) out[c * rows + r] = in[r * cols + c];
  }
}

}  // namespace

bool batch_inner_suits(const Geometry& g, bool transposed) {
  // a 3-D problem (the leading axis of 1-D and 2-D ones: one point, kernel 1, no padding)
  if (g.coarse[0] != 1 || g.fine[0] != 1 || g.kernel[0] != 1 || g.pad[0] != 0) return false;
  if (g.batch < kMinBatch || g.coarse_pixels() > kMaxPixels || g.fine_pixels() > kMaxPixels)
    return false;
  int64_t all = 1, inside = 1;
  for (int d = 1; d < kMaxDims; ++d) {
    const AxisTerms t = axis_terms(g, d, transposed);
    all *= t.all;
    inside *= t.inside;
  }
  return all > 0 && (all - inside) * kWasteDiv >= all;
}

bool batch_inner_whole_weights(bool transposed) {
  // The gather's tasks fill their source band once per K block (it outgrows L2 whole), and
  // each slab of output channels fills it again (DCGAN 512->256's grad_input: four slabs,
  // many times its source in band writes); one slab fills it once.  The forward's bands were
  // no faster with one slab (docs/perf-log.md).
  return !transposed;
}

Geometry batch_inner_geometry(const Geometry& g) {
  Geometry b = g;
  b.batch = 1;
  for (int d = 0; d + 1 < kMaxDims; ++d) {
    b.coarse[d] = g.coarse[d + 1];
    b.fine[d] = g.fine[d + 1];
    b.kernel[d] = g.kernel[d + 1];
    b.stride[d] = g.stride[d + 1];
    b.pad[d] = g.pad[d + 1];
    b.dilation[d] = g.dilation[d + 1];
  }
  b.coarse[2] = b.fine[2] = g.batch;
  b.kernel[2] = b.stride[2] = b.dilation[2] = 1;
  b.pad[2] = 0;
  return b;
}

template <typename T>
bool run_batch_inner(const Geometry& g, bool transposed, const T* src, const T* w,
                     const T* bias, T* dst, bool check) {
  const Geometry b = batch_inner_geometry(g);
  // copies of the batch x row arrays as row x batch (one image's values: a row)
  const BatchInnerCopies copies = batch_inner_copies(g, transposed);
  const int64_t src_row = copies.src / g.batch, dst_row = copies.dst / g.batch;
  Scratch<T> src_t, dst_t;
  T* s = src_t.get(copies.src);
  T* d = dst_t.get(copies.dst);
  const bool parallel = omp_get_max_threads() > 1;
  transpose(src, g.batch, src_row, s, parallel);
  const bool whole = batch_inner_whole_weights(transposed);  // as the plan (plan.cpp)
  const bool finite = transposed
                          ? run_subconvs<T>(scatter_subconvs(b), s, w, bias, d, check, whole)
                          : run_subconvs<T>({gather_subconv(b)}, s, w, bias, d, check, whole);
  transpose(d, dst_row, g.batch, dst, parallel);
  return finite;
}

template bool run_batch_inner<float>(const Geometry&, bool, const float*, const float*,
                                     const float*, float*, bool);
template bool run_batch_inner<double>(const Geometry&, bool, const double*, const double*,
                                      const double*, double*, bool);

}  // namespace tconv
