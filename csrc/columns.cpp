// Forward transposed convolution for few output channels per group: a GEMM with the taps in
// its rows, then a col2im gather.  Per batch image n and group:
//
//   Z[f * taps + k][i] = sum_c W[c][f][k] * x[n][c][i]            (rows M x taps, K = C_in/groups)
//   y[n][f][o]         = bias[f] + sum_{k, i : o = i*s - p + k*d} Z[f * taps + k][i]
//
// (channels within the group; o and i per axis by identity (1) of geometry.hpp).  The polyphase
// form (scatter.cpp) gives every phase a GEMM of only M rows: with M <= 4 (an RGB output layer)
// its micro-kernel loads more of B than it multiplies and reads each input value once per tap.
// Here the GEMM has M x taps rows (3 x 16 = 48 for k4 s2), reads x in place (rows of B are
// x's channel rows, contiguous), and every input value once per call.
//
// Determinism: one task per (image, group) computes its Z and writes its outputs; Z sums the
// channels in increasing order in K blocks of k_block<T>() (the micro-kernels' order), and
// every output adds the bias and then its taps in increasing (kz, ky, kx).  The path is chosen
// from the problem only (columns_suit), so the result is the same for any thread count.
//
// Workspace, all per thread and bounded by constants of columns_suit: Z of one task
// (<= kMaxZBytes), the packed A block of one K block (<= (kMaxRows + mr - 1) x 1 KiB, packed
// per task: R x C_in/groups copies against R x C_in/groups x pixels multiply-adds) and one
// packed B tile.
#include <algorithm>
#include <array>
#include <vector>

#include <omp.h>

#include "tconv/columns.hpp"
#include "tconv/copy.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

constexpr int64_t kMaxM = 4;          // output channels per group
constexpr int64_t kMinRows = 12;      // M x taps: at least two full AVX2 panels of six rows
constexpr int64_t kMinChannels = 8;   // input channels per group (the GEMM's K)
constexpr int64_t kMinTasks = 8;      // images x groups: tasks for the threads to share
constexpr int64_t kMaxRows = 512;     // M x taps: the packed A block stays <= 512 x 1 KiB
constexpr int64_t kMaxZBytes = int64_t(4) << 20;  // one task's Z (in L2 or L3)
constexpr int64_t kZPad = 64;         // Z rows are padded to a multiple of nr (<= 64 elements)
// Tiles ahead that the first panel prefetches x from.
constexpr int64_t kAhead = 4;

// One output axis's taps: out[o] gets Z at (k, i) for o = i*s - p + k*d, 0 <= i < coarse.
struct AxisTap {
  int64_t k, i;
};

// taps[o] = the (k, i) that reach output o of the axis, in increasing k.
std::vector<std::vector<AxisTap>> axis_taps(int64_t coarse, int64_t fine, int64_t kernel,
                                            int64_t stride, int64_t pad, int64_t dilation) {
  std::vector<std::vector<AxisTap>> taps(static_cast<size_t>(fine));
  for (int64_t k = 0; k < kernel; ++k) {
    const IndexRange r = valid_coarse_range(coarse, fine, stride, pad, dilation, k);
    for (int64_t i = r.lo; i < r.hi; ++i)
      taps[static_cast<size_t>(i * stride - pad + k * dilation)].push_back({k, i});
  }
  return taps;
}

// bp[c * nr + u] = x[c * P + u] for c < rows, u < nr (nr = 8, 16 or 32: inline vector moves).
template <typename T>
void copy_tiles(const T* x, int64_t P, int64_t rows, int nr, T* bp) {
  for (int64_t c = 0; c < rows; ++c, x += P, bp += nr) {
    if (nr == 8) {
      copy_fixed<T, 1, 8>(x, bp);
    } else if (nr == 16) {
      copy_fixed<T, 1, 16>(x, bp);
    } else if (nr == 32) {
      copy_fixed<T, 1, 32>(x, bp);
    } else {
      std::copy(x, x + nr, bp);
    }
  }
}

struct XTap {
  int64_t k, off, lo, hi;
};
struct XPhase {
  int64_t rho, extent;
  std::vector<XTap> taps;
};

}  // namespace

bool columns_suit(const Geometry& g, int64_t elem_size) {
  const int64_t rows = g.fine_per_group() * g.taps();
  const int64_t z_bytes = rows * (g.coarse_pixels() + kZPad) * elem_size;
  return g.fine_per_group() <= kMaxM && rows >= kMinRows && rows <= kMaxRows &&
         g.coarse_per_group() >= kMinChannels &&
         g.batch * g.groups >= kMinTasks && z_bytes <= kMaxZBytes;
}

template <typename T>
bool scatter_columns(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool check) {
  const GemmKernels<T>& uk = active_gemm<T>();
  const int mr = uk.mr, nr = uk.nr;
  const int64_t M = g.fine_per_group(), Kc = g.coarse_per_group(), taps = g.taps();
  const int64_t R = M * taps, Rp = round_up(R, mr);
  const int64_t P = g.coarse_pixels();
  // Z rows one tile longer than needed: rows a multiple of 4 KiB apart would share L1 sets.
  const int64_t ld = round_up(P, nr) + nr;
  const int64_t kb = k_block<T>();
  // The (k, i) reaching each output index of the two outer axes (shared, read-only).
  std::array<std::vector<std::vector<AxisTap>>, 2> out_taps;
  for (int d = 0; d < 2; ++d)
    out_taps[d] = axis_taps(g.coarse[d], g.fine[d], g.kernel[d], g.stride[d], g.pad[d],
                            g.dilation[d]);
  // The innermost axis by output phase: output j * sx + rho (j < extent) gets, per tap
  // kx of the phase, Z at i = j + off for j in [lo, hi).
  const int64_t fx = g.fine[2], sx = g.stride[2], cx = g.coarse[2];
  std::vector<XPhase> x_phases;
  for (int64_t rho = 0; rho < sx && rho < fx; ++rho) {
    XPhase xp{rho, (fx - rho + sx - 1) / sx, {}};
    for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
      const int64_t shifted = rho + g.pad[2] - kx * g.dilation[2];
      if (shifted - floor_div(shifted, sx) * sx != 0) continue;
      const int64_t off = floor_div(shifted, sx);
      const int64_t lo = std::max<int64_t>(0, -off), hi = std::min(xp.extent, cx - off);
      if (lo < hi) xp.taps.push_back({kx, off, lo, hi});
    }
    x_phases.push_back(std::move(xp));
  }
  const int64_t phase_ld = ceil_div(fx, sx) + 16;
  const int64_t task_count = g.batch * g.groups;
  const int64_t fine_pixels = g.fine_pixels();
  const double flops = 2.0 * double(g.batch) * double(g.coarse_channels) * double(R) * double(P);
  const bool parallel = omp_get_max_threads() > 1 && task_count > 1 && flops > 2e5;

  int nonfinite = 0;
#pragma omp parallel if (parallel) reduction(| : nonfinite)
  {
    decltype(nonfinite_bit(T(0))) bad = 0;
    Scratch<T> z_buf, a_buf, b_buf;
    std::vector<T> phase_buf(static_cast<size_t>(phase_ld * std::min(sx, fx)));
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < task_count; ++task) {
      const int64_t n = task / g.groups, grp = task % g.groups;
      T* z = z_buf.get(R * ld);
      const T* xs = x + (n * g.coarse_channels + grp * Kc) * P;
      // Z = A * x_n, K block by K block, tile by tile of nr pixels: the tile's kcb rows
      // (x's channel rows, P apart) are copied into one packed panel (zero past P) that every
      // panel of A then reads from L1; read in place, rows 4 KiB apart share L1 sets.
      for (int64_t c0 = 0; c0 < Kc; c0 += kb) {
        const int64_t kcb = std::min(kb, Kc - c0);
        const int accumulate = c0 > 0 ? 1 : 0;
        // A block: panel of rows [r0, r0 + rr) at r0 * kcb, a[c * rr + i] = W[c0 + c][r0 + i]
        // (W's row r = f * taps + k is contiguous in the channel c of the group).
        T* ab = a_buf.get(Rp * kcb);
        for (int64_t r0 = 0; r0 < R; r0 += mr) {
          const int64_t rr = std::min<int64_t>(mr, R - r0);
          for (int64_t c = 0; c < kcb; ++c) {
            const T* wr = w + (grp * Kc + c0 + c) * R + r0;
            std::copy(wr, wr + rr, ab + r0 * kcb + c * rr);
          }
        }
        const T* xb = xs + c0 * P;
        T* bp = b_buf.get(kcb * nr);
        for (int64_t j = 0; j < P; j += nr) {
          const int64_t len = std::min<int64_t>(nr, P - j);
          // x comes from memory once, as kcb separate streams (too many for the hardware
          // prefetcher to follow): prefetch each kAhead tiles on.
          if (j + kAhead * nr < P)
            for (int64_t c = 0; c < kcb; ++c) __builtin_prefetch(xb + c * P + j + kAhead * nr);
          if (len == nr) {
            copy_tiles(xb + j, P, kcb, nr, bp);
          } else {
            for (int64_t c = 0; c < kcb; ++c) {
              std::copy(xb + c * P + j, xb + c * P + P, bp + c * nr);
              std::fill(bp + c * nr + len, bp + (c + 1) * nr, T(0));
            }
          }
          for (int64_t r0 = 0; r0 < R; r0 += mr) {
            const int64_t rr = std::min<int64_t>(mr, R - r0);
            uk.fn[rr](kcb, ab + r0 * kcb, bp, z + r0 * ld + j, ld, accumulate);
          }
        }
      }
      // col2im gather, output row by output row: per x phase rho, ph[rho][j] (output
      // j * sx + rho) starts at the bias and adds its taps in increasing (kz, ky, kx) as
      // contiguous runs of Z; then the phases are interleaved into the row.
      for (int64_t f = 0; f < M; ++f) {
        T* yc = y + (n * g.fine_channels + grp * M + f) * fine_pixels;
        const T b = bias != nullptr ? bias[grp * M + f] : T(0);
        for (int64_t oz = 0; oz < g.fine[0]; ++oz)
          for (int64_t oy = 0; oy < g.fine[1]; ++oy) {
            T* row = yc + (oz * g.fine[1] + oy) * fx;
            for (const XPhase& xp : x_phases) {
              T* ph = sx == 1 ? row : phase_buf.data() + xp.rho * phase_ld;
              std::fill(ph, ph + xp.extent, b);
              for (const AxisTap& tz : out_taps[0][static_cast<size_t>(oz)])
                for (const AxisTap& ty : out_taps[1][static_cast<size_t>(oy)]) {
                  const T* zp = z + ((f * g.kernel[0] + tz.k) * g.kernel[1] + ty.k) * g.kernel[2] * ld +
                                (tz.i * g.coarse[1] + ty.i) * g.coarse[2];
                  for (const XTap& t : xp.taps) {
                    const T* zr = zp + t.k * ld + t.off;  // zr[j] for j in [lo, hi)
                    for (int64_t jj = t.lo; jj < t.hi; ++jj) ph[jj] += zr[jj];
                  }
                }
            }
            if (sx == 2 && x_phases.size() == 2) {
              const T* p0 = phase_buf.data();
              const T* p1 = phase_buf.data() + phase_ld;
              const int64_t pairs = fx / 2;
              for (int64_t jj = 0; jj < pairs; ++jj) {
                row[2 * jj] = p0[jj];
                row[2 * jj + 1] = p1[jj];
              }
              if (fx % 2 != 0) row[fx - 1] = p0[pairs];
            } else if (sx > 1) {
              for (const XPhase& xp : x_phases) {
                const T* ph = phase_buf.data() + xp.rho * phase_ld;
                for (int64_t jj = 0; jj < xp.extent; ++jj) row[jj * sx + xp.rho] = ph[jj];
              }
            }
            if (check)
              for (int64_t o = 0; o < fx; ++o) bad |= nonfinite_bit(row[o]);
          }
      }
    }
    nonfinite |= bad != 0 ? 1 : 0;
  }
  return nonfinite == 0;
}

template bool scatter_columns<float>(const Geometry&, const float*, const float*, const float*,
                                     float*, bool);
template bool scatter_columns<double>(const Geometry&, const double*, const double*,
                                      const double*, double*, bool);

}  // namespace tconv
