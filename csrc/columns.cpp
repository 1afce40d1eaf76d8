// Forward transposed convolution for few output channels per group: a GEMM with the taps in
// its rows, then a col2im gather.  Per batch image n and group:
//
//   Z[f * taps + k][i] = sum_c W[c][f][k] * x[n][c][i]            (rows M x taps, K = C_in/groups)
//   y[n][f][o]         = bias[f] + sum_{k, i : o = i*s - p + k*d} Z[f * taps + k][i]
//
// (channels within the group; o and i per axis by identity (1) of geometry.hpp).  The polyphase
// form (scatter.cpp) gives every phase a GEMM of only M rows: with M <= 4 (an RGB output layer)
// its micro-kernel loads more of B than it multiplies and reads each input value once per tap.
// Here the GEMM has M x taps rows (3 x 16 = 48 for k4 s2), its B rows are x's channel rows,
// and every input value is read once per block.
//
// Tasks = image x group x block of outputs along the outermost axis that is not 1 in both the
// input and the output (x for 1-D): a block is the sub-problem of the inputs that scatter
// into it (make_block), so its Z holds only those columns and stays small, and batch 1 still
// gives every thread work.
//
// Determinism: Z sums the channels in increasing order in K blocks of k_block<T>() (the
// micro-kernels' order), and every output adds the bias and then its taps in increasing
// (kz, ky, kx): the same terms in the same order whatever the blocks, the thread count or the
// problem's extent.  columns_suit decides from the channels and kernel only, so the result
// of an output element never depends on the batch, the image size or the threads (tconv.dask
// computes blocks of the output as separate calls and relies on that).
//
// Workspace, all per thread: Z of one block (<= kZBytes unless one output row along the
// blocked axis needs more), the packed A block of one K block (<= (kMaxRows + mr - 1) x 1 KiB,
// packed per task: R x C_in/groups copies against R x C_in/groups x pixels multiply-adds), the
// packed B panels of up to kPanelBytes (one tile's at least) and one output row's phases.
#include <algorithm>
#include <array>
#include <vector>

#include <omp.h>

#include "tconv/cancel.hpp"
#include "tconv/columns.hpp"
#include "tconv/copy.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/plan.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

constexpr int64_t kMaxM = 4;          // output channels per group
constexpr int64_t kMinRows = 12;      // M x taps: at least two full AVX2 panels of six rows
constexpr int64_t kMinChannels = 8;   // input channels per group (the GEMM's K)
constexpr int64_t kMaxRows = 512;     // M x taps: the packed A block stays <= 512 x 1 KiB
constexpr int64_t kZBytes = int64_t(1) << 20;  // one block's Z (L2-sized)
constexpr int64_t kZPad = 64;         // Z rows are padded to a multiple of nr (<= 64 elements)
// B panels packed at once (bytes): each of x's channel rows is read as one run of that many
// tiles, which the hardware prefetcher follows; tile by tile, the rows (planes apart) were as
// many separate streams, each of one tile.
constexpr int64_t kPanelBytes = int64_t(128) << 10;

// Tiles whose B panels (kcb rows of nr values of `elem` bytes) are packed at once for a block
// of `pixels` input pixels: up to kPanelBytes, at least one tile, never more than the pixels
// fill.  columns_gemm and the plan's workspace both take it, with the largest K block.
int64_t panel_tiles(int64_t kcb, int nr, int64_t elem, int64_t pixels) {
  return std::min(std::max<int64_t>(1, kPanelBytes / (kcb * nr * elem)),
                  ceil_div(pixels, int64_t(nr)));
}

// The input index of axis d that output o reaches through tap k (o = i*s - p + k*d), or -1.
inline int64_t tap_source(int64_t o, int64_t k, const Geometry& g, int d) {
  const int64_t shifted = o + g.pad[d] - k * g.dilation[d];
  const int64_t i = floor_div(shifted, g.stride[d]);
  return i * g.stride[d] == shifted && i >= 0 && i < g.coarse[d] ? i : -1;
}

}  // namespace

bool columns_suit(const Geometry& g) {
  const int64_t rows = g.fine_per_group() * g.taps();
  return g.fine_per_group() <= kMaxM && rows >= kMinRows && rows <= kMaxRows &&
         g.coarse_per_group() >= kMinChannels;
}

namespace {

// One block of the output along axis `a`: outputs [o0, o1) on that axis (all of the
// others), computed as the sub-problem with inputs [i0, i1) on that axis (the ones that
// scatter into the block) and low padding pad + o0 - i0 * stride, so that the identity
// o - o0 = (i - i0) * s - pad' + k * d holds (the same shift tconv.dask uses).
struct Block {
  Geometry g;          // the sub-problem (coarse, fine and pad of axis a changed)
  int64_t x_off, y_off;  // of its first input / output within a channel plane
};

Block make_block(const Geometry& g, int a, int64_t o0, int64_t o1) {
  const int64_t s = g.stride[a], p = g.pad[a], reach = (g.kernel[a] - 1) * g.dilation[a];
  const int64_t i0 = std::clamp<int64_t>(floor_div(o0 + p - reach, s), 0, g.coarse[a]);
  const int64_t i1 = std::clamp<int64_t>(floor_div(o1 - 1 + p, s) + 1, i0, g.coarse[a]);
  Block b{g, 0, 0};
  b.g.coarse[a] = i1 - i0;
  b.g.fine[a] = o1 - o0;
  b.g.pad[a] = p + o0 - i0 * s;
  int64_t inner_c = 1, inner_f = 1;
  for (int d = a + 1; d < kMaxDims; ++d) {
    inner_c *= g.coarse[d];
    inner_f *= g.fine[d];
  }
  b.x_off = i0 * inner_c;
  b.y_off = o0 * inner_f;
  return b;
}

// Per-thread buffers of the blocks.
template <typename T>
struct BlockScratch {
  Scratch<T> z, a, b, phases;
  std::vector<int64_t> src_z, src_y;  // tap_sources
};

// out[o * kernel[d] + k] = tap_source(o, k, g, d) for the block's outputs o along axis d: once
// per block, not once per output row and tap (an integer division each).
void tap_sources(const Geometry& g, int d, std::vector<int64_t>& out) {
  out.resize(static_cast<size_t>(g.fine[d] * g.kernel[d]));
  for (int64_t o = 0; o < g.fine[d]; ++o)
    for (int64_t k = 0; k < g.kernel[d]; ++k)
      out[static_cast<size_t>(o * g.kernel[d] + k)] = tap_source(o, k, g, d);
}

// The B panels of the tiles of `len` pixels from x (kcb channel rows x_plane apart): tile t's
// panel at bp + t * kcb * nr, bp[t * kcb * nr + c * nr + u] = x[c * x_plane + t * nr + u],
// zero past len.  Channel by channel, each row's run read once from start to end.
template <typename T>
void pack_tiles(const T* x, int64_t x_plane, int64_t kcb, int64_t len, int nr, T* bp) {
  const int64_t tiles = ceil_div(len, int64_t(nr)), whole = len / nr;
  for (int64_t c = 0; c < kcb; ++c) {
    const T* row = x + c * x_plane;
    T* to = bp + c * nr;
    for (int64_t t = 0; t < whole; ++t) copy_panel([&](int64_t) { return row + t * nr; }, 1, nr,
                                                   to + t * kcb * nr);
    if (whole < tiles) {
      T* last = to + whole * kcb * nr;
      std::copy(row + whole * nr, row + len, last);
      std::fill(last + (len - whole * nr), last + nr, T(0));
    }
  }
}

// Z (rows r = f * taps + k of the group's output channels f and taps k, ld apart) = W_g^T x
// over the group's channels, K block by K block, tile by tile of nr pixels: the tile's kcb
// rows (x's channel rows, x_plane apart, from xs) are copied into one packed panel (zero past
// the pixels) that every panel of A then reads from L1; read in place, rows 4 KiB apart would
// share L1 sets.
template <typename T>
void columns_gemm(const Geometry& g, const T* xs, int64_t x_plane, const T* w, int64_t grp,
                  T* z, int64_t ld, BlockScratch<T>& sc) {
  const GemmKernels<T>& uk = active_gemm<T>();
  const int mr = uk.mr, nr = uk.nr;
  const int64_t Kc = g.coarse_per_group(), R = g.fine_per_group() * g.taps();
  const int64_t Rp = round_up(R, mr), P = g.coarse_pixels(), kb = k_block<T>();
  const int64_t group = panel_tiles(std::min(kb, Kc), nr, int64_t(sizeof(T)), P);
  for (int64_t c0 = 0; c0 < Kc && P > 0; c0 += kb) {
    const int64_t kcb = std::min(kb, Kc - c0);
    const int accumulate = c0 > 0 ? 1 : 0;
    // A block: panel of rows [r0, r0 + rr) at r0 * kcb, a[c * rr + i] = W[c0 + c][r0 + i]
    // (W's row r = f * taps + k is contiguous in the channel c of the group).
    T* ab = sc.a.get(Rp * kcb);
    for (int64_t r0 = 0, rr = 0; r0 < R; r0 += rr) {
      rr = tile_rows(R - r0, mr);
      for (int64_t c = 0; c < kcb; ++c) {
        const T* wr = w + (grp * Kc + c0 + c) * R + r0;
        std::copy(wr, wr + rr, ab + r0 * kcb + c * rr);
      }
    }
    const T* xb = xs + c0 * x_plane;
    T* bp = sc.b.get(group * kcb * nr);
    for (int64_t j0 = 0; j0 < P; j0 += group * nr) {
      const int64_t tiles = std::min(group, ceil_div(P - j0, int64_t(nr)));
      pack_tiles(xb + j0, x_plane, kcb, std::min(P - j0, tiles * nr), nr, bp);
      for (int64_t t = 0; t < tiles; ++t)
        for (int64_t r0 = 0, rr = 0; r0 < R; r0 += rr) {
          rr = tile_rows(R - r0, mr);
          uk.fn[rr](kcb, ab + r0 * kcb, bp + t * kcb * nr, z + r0 * ld + j0 + t * nr, ld,
                    accumulate, nullptr);
        }
    }
  }
}

// Adds to ph[j] (j < xp.extent: output j * sx + xp.dst_base of output channel f's row
// (oz, oy), whose z and y taps read src_z[kz] and src_y[ky], -1: none) its taps in increasing
// (kz, ky, kx), as contiguous runs of Z: per tap xp.tap_kernel[t], Z at
// i = j + xp.tap_offset[t] for the j with 0 <= i < cx.
template <typename T>
void add_phase_taps(const Geometry& g, const T* z, int64_t ld, int64_t f, const int64_t* src_z,
                    const int64_t* src_y, const SubAxis& xp, T* ph) {
  const int64_t cx = g.coarse[2];
  for (int64_t kz = 0; kz < g.kernel[0]; ++kz) {
    const int64_t iz = src_z[kz];
    if (iz < 0) continue;
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
      const int64_t iy = src_y[ky];
      if (iy < 0) continue;
      const T* zp = z + ((f * g.kernel[0] + kz) * g.kernel[1] + ky) * g.kernel[2] * ld +
                    (iz * g.coarse[1] + iy) * cx;
      for (size_t t = 0; t < xp.tap_kernel.size(); ++t) {
        const int64_t off = xp.tap_offset[t];
        const T* zr = zp + xp.tap_kernel[t] * ld + off;  // zr[j], 0 <= j + off < cx
        const int64_t hi = std::min(xp.extent, cx - off);
        for (int64_t jj = std::max<int64_t>(0, -off); jj < hi; ++jj) ph[jj] += zr[jj];
      }
    }
  }
}

// col2im gather of the block from Z (rows ld apart), output row by output row: per x phase
// rho, ph[rho][j] (output j * sx + rho) starts at the bias and adds its taps
// (add_phase_taps); then the phases are interleaved into the row.  Returns the OR of the
// stored values' non-finite bits when `check`.
template <typename T>
auto col2im(const Block& blk, const T* z, int64_t ld, const T* bias, T* y, int64_t y_plane,
            int64_t grp, bool check, BlockScratch<T>& sc) {
  const Geometry& g = blk.g;
  decltype(nonfinite_bit(T(0))) bad = 0;
  const int64_t M = g.fine_per_group(), fx = g.fine[2], sx = g.stride[2];
  const std::vector<SubAxis> x_phases =
      output_phases(fx, g.kernel[2], sx, g.pad[2], g.dilation[2]);
  const int64_t phase_ld = ceil_div(fx, sx) + 16;
  T* phase_buf = sc.phases.get(phase_ld * std::min(sx, fx));
  tap_sources(g, 0, sc.src_z);
  tap_sources(g, 1, sc.src_y);
  for (int64_t f = 0; f < M; ++f) {
    T* yc = y + f * y_plane + blk.y_off;
    const T b = bias != nullptr ? bias[grp * M + f] : T(0);
    for (int64_t oz = 0; oz < g.fine[0]; ++oz)
      for (int64_t oy = 0; oy < g.fine[1]; ++oy) {
        T* row = yc + (oz * g.fine[1] + oy) * fx;
        for (const SubAxis& xp : x_phases) {
          T* ph = sx == 1 ? row : phase_buf + xp.dst_base * phase_ld;
          std::fill(ph, ph + xp.extent, b);
          add_phase_taps(g, z, ld, f, sc.src_z.data() + oz * g.kernel[0],
                         sc.src_y.data() + oy * g.kernel[1], xp, ph);
        }
        if (sx == 2 && fx >= 2) {
          const T* const pair[2] = {phase_buf, phase_buf + phase_ld};
          interleave<T, 2>(pair, false, T(0), row, fx / 2);
          if (fx % 2 != 0) row[fx - 1] = phase_buf[fx / 2];
        } else if (sx > 1) {
          for (const SubAxis& xp : x_phases) {
            const T* ph = phase_buf + xp.dst_base * phase_ld;
            for (int64_t jj = 0; jj < xp.extent; ++jj) row[jj * sx + xp.dst_base] = ph[jj];
          }
        }
        if (check)
          for (int64_t o = 0; o < fx; ++o) bad |= nonfinite_bit(row[o]);
      }
  }
  return bad;
}

// Computes one block of one image and group: x, y point at channel 0 of the group (block
// offsets not applied); their channel planes are x_plane and y_plane apart.  Z = W^T x
// (columns_gemm), then y from Z (col2im).  Returns the OR of the stored values' non-finite
// bits when `check`.
template <typename T>
auto run_block(const Block& blk, const T* x, int64_t x_plane, const T* w, const T* bias,
               T* y, int64_t y_plane, int64_t grp, bool check, BlockScratch<T>& sc) {
  const Geometry& g = blk.g;
  const int nr = active_gemm<T>().nr;
  // Z rows one tile longer than needed: rows a multiple of 4 KiB apart would share L1 sets.
  const int64_t ld = round_up(g.coarse_pixels(), nr) + nr;
  T* z = sc.z.get(g.fine_per_group() * g.taps() * ld);
  columns_gemm(g, x + blk.x_off, x_plane, w, grp, z, ld, sc);
  return col2im(blk, z, ld, bias, y, y_plane, grp, check, sc);
}

}  // namespace

template <typename T>
ColumnsPlan plan_columns(const Geometry& g, int threads) {
  ColumnsPlan p;
  p.rows = g.fine_per_group() * g.taps();
  if (g.batch == 0 || g.fine_pixels() == 0) return p;
  // Blocks along the outermost axis that is not 1 in both input and output (x for 1-D), so
  // that a block's inputs and outputs are contiguous runs of each channel plane: enough for
  // the threads and for one block's Z to stay within kZBytes.  How the output is cut never
  // changes a sum (each output's terms and their order are the same in any block).
  while (p.axis < 2 && g.fine[p.axis] == 1 && g.coarse[p.axis] == 1) ++p.axis;
  p.z_bytes = p.rows * (g.coarse_pixels() + kZPad) * static_cast<int64_t>(sizeof(T));
  const int64_t kcb = std::min(k_block<T>(), g.coarse_per_group());
  const int nr = active_gemm<T>().nr;
  const int64_t elem = static_cast<int64_t>(sizeof(T));
  p.b_bytes = panel_tiles(kcb, nr, elem, g.coarse_pixels()) * kcb * nr * elem;
  const int64_t images = g.batch * g.groups;
  p.blocks = std::clamp<int64_t>(
      std::max(ceil_div(p.z_bytes, kZBytes), ceil_div(2 * threads, std::max<int64_t>(1, images))),
      1, g.fine[p.axis]);
  p.task_count = images * p.blocks;
  p.flops = 2.0 * double(g.batch) * double(g.coarse_channels) * double(p.rows) *
            double(g.coarse_pixels());
  p.parallel = threads > 1 && p.task_count > 1 && p.flops > kParallelFlops;
  return p;
}

template <typename T>
bool scatter_columns(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool check) {
  const int64_t M = g.fine_per_group(), Kc = g.coarse_per_group();
  const ColumnsPlan p = plan_columns<T>(g, omp_get_max_threads());
  if (p.task_count == 0) return true;
  const int a = p.axis;
  const int64_t blocks = p.blocks, task_count = p.task_count;
  const int64_t x_plane = g.coarse_pixels(), y_plane = g.fine_pixels();

  Cancellation* const cancel = current_cancellation();
  int nonfinite = 0;
#pragma omp parallel if (p.parallel) reduction(| : nonfinite)
  {
    decltype(nonfinite_bit(T(0))) bad = 0;
    BlockScratch<T> sc;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < task_count; ++task) {
      if (stop(cancel)) continue;
      const int64_t img = task / blocks, b = task % blocks;
      const int64_t n = img / g.groups, grp = img % g.groups;
      const Block blk = make_block(g, a, g.fine[a] * b / blocks, g.fine[a] * (b + 1) / blocks);
      bad |= run_block(blk, x + (n * g.coarse_channels + grp * Kc) * x_plane, x_plane, w, bias,
                       y + (n * g.fine_channels + grp * M) * y_plane, y_plane, grp, check, sc);
    }
    nonfinite |= bad != 0 ? 1 : 0;
  }
  return nonfinite == 0;
}

template ColumnsPlan plan_columns<float>(const Geometry&, int);
template ColumnsPlan plan_columns<double>(const Geometry&, int);
template bool scatter_columns<float>(const Geometry&, const float*, const float*, const float*,
                                     float*, bool);
template bool scatter_columns<double>(const Geometry&, const double*, const double*,
                                      const double*, double*, bool);

}  // namespace tconv
