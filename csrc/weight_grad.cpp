// Weight gradient, shared by conv_transpose (coarse = input, fine = grad_output) and conv
// (coarse = grad_output, fine = input):
//
//   dW[c][f][k] = sum_n sum_i coarse[n][c][i] * fine[n][group(c)*fpg + f][i*s - p + k*d]
//
// Per group this is a GEMM  dW_g = A * B^T  with both operands contiguous along the reduction
//   A[m][kk]   = coarse[n][g*cpg + m][i]                 m < cpg, kk = n * coarse_pixels + i
//   B[col][kk] = fine[n][g*fpg + f][i*s - p + k*d] or 0  col = f * taps + k  (dW's own layout)
// over K = batch x coarse pixels.  B's columns are packed as rows (strided copies, no
// transposing): bp[t * ld + kk - k0], zero-padded from kc up to kcp; ld = kcp + one cache line.
// A's rows are read in place by the dot form when a K block lies in one batch item, else (and
// always for the outer form) packed as rows too.
// Three forms of the micro-kernel loop, chosen from the dtype, the table's nr, M, N and (the
// third) channels per group, taps and strides only (channels_last_form, outer_form):
//  * dot (few rows or columns, and float64 with panels of 8 columns): dot-product kernels
//    (dot[r], r x nc tiles) reduce K blocks of 4 * k_block<T>(): lane l sums kk = l (mod
//    vector width), then the lanes are added in a fixed order; the A tile stays in L1, B
//    streams from L2.
//  * outer (48 <= M <= 256 and N >= 128; float32, or float64 with 16-column panels, i.e.
//    AVX-512, whose panels are transposed 8 x 8 in registers: 1.03-1.10x over the 6 x 4 dot
//    tiles on those layers, while with AVX2's 8-column panels and scalar transposes it was
//    0.86-0.98x): each nr-column B block is transposed into
//    a k-major panel (the ISA's transpose) of kc x nr = 24 KiB that stays in L1 while the GEMM
//    kernels (rfn[r], A's rows broadcast in place) sweep every mr-row tile of A; one
//    accumulator per element sums a K block in increasing kk.  Measured against dot (one
//    process, calls alternating): 1.00-1.10x on one thread and 1.0-1.3x on two for the
//    64-256-channel benchmark layers; slower with < 48 rows or < 128 columns (fewer rows
//    share each panel's transposing, narrower tiles), with 512 rows (0.8-0.9x on one thread:
//    dot's A tile stays in L1 and its B block in L2, while the outer form's A block does not
//    fit in L2; smaller row blocks repack B more often and were slower still), and for float64
//    on 512-channel layers (0.85-0.98x); those keep dot.  On AVX-512 with kernel x >=
//    kPanelMinTaps (undilated) the panel is packed k-major straight from `fine` instead
//    (pack_panel_avx512: the same values, so the same bits).
//  * channels-last (fine channels per group in whole nr blocks, taps >= 3 x the product of
//    the strides, so that each fine value is read by several taps; otherwise as the outer
//    form, any number of rows (row blocks of <= 512), float64 where nr >= 16):
//    per K block, the fine pixels the block reads through any tap (`band`: intervals of the
//    rows of each fine plane it reaches, band_images) are transposed once into rows of nr
//    channels (bb[pixel * nr + f]) and the coarse rows into k-major panels of each tile's
//    rows; per tap, kgemm sums the listed terms that read inside (coarse pixel, band row):
//    tile (rows, nr fine channels) of that tap.  The outer form packed every (channel, tap)
//    column of B, so each fine value was copied once per tap reading it (16 times for k4, 9
//    for k3 stride 1); here once per K block, and the terms that read padding are never
//    listed.  The same K blocks and the same terms in the
//    same order as the outer form (a skipped term is an exact zero product added to a sum
//    started from +0), so the same bits where the outer form would run (M <= 256).  The
//    result goes to out[tap][row][channel] (one per chunk) and is rearranged into dW at the
//    end, the chunks added there.
//  * channels-last on the phase view of x (phase_geometry, phase_form): where x has a stride
//    sx > 1, fine x = bx * sx + r - pad_x of channel f is channel f * sx + r of a view with
//    stride 1, no padding and kernel_x / sx taps, so each lane block holds nr / sx channels'
//    sx phases and every fine value is copied once per K block (phase_band: sx-value pieces,
//    the next row's source prefetched meanwhile) where the dot form gathered it once per tap
//    with a stride of sx.  The channels-last form runs on the view (lanes past the view's
//    channels are zeros) and the rearrangement maps tap qx, lane f * sx + r back to tap qx *
//    sx + r of channel f.  Its terms and K blocks are the outer form's, so the same bits where
//    that one would run.
//
// Determinism: the reduction is cut into `chunks` pieces (1 or 2) chosen from the problem
// sizes only, each summed in K blocks in increasing order (each block's sum added to the
// element); chunk 0 goes straight into dW, chunk 1 into a workspace of dW's size, and the two
// are added in a final fixed-order pass.
// Tasks = chunk x group x row block x column range (channels-last: range of fine channels, all
// taps); a task packs its A block once per K block and sweeps its column range in blocks of nc
// (how columns are split never changes a sum).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include <omp.h>

#include "tconv/assert.hpp"
#include "tconv/cancel.hpp"
#include "tconv/clones.hpp"
#include "tconv/copy.hpp"
#include "tconv/depthwise.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/plan.hpp"
#include "tconv/prefetch.hpp"
#include "tconv/weight_grad.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Consecutive kk on one (n, iz) plane: `rows` grid rows iy .. iy + rows - 1, each holding ix in
// [ix0, ix0 + len), packed rows [r0, r0 + rows * len).  rows > 1 only for whole grid rows
// (ix0 = 0, len = coarse x extent), so that the packing handles a block of rows at once.
struct KSegment {
  int64_t n, iz, iy, ix0, len, r0, rows;
};

void k_segments(const Geometry& g, int64_t k0, int64_t kc, std::vector<KSegment>& segs) {
  segs.clear();
  const int64_t cx = g.coarse[2], cy = g.coarse[1], cz = g.coarse[0];
  int64_t kk = k0;
  while (kk < k0 + kc) {
    const int64_t ix = kk % cx;
    const int64_t row = kk / cx;
    const int64_t iy = row % cy, iz = (row / cy) % cz, n = row / (cy * cz);
    const int64_t left = k0 + kc - kk;
    if (ix == 0 && left >= cx) {  // whole rows, up to the end of the plane or of the block
      const int64_t rows = std::min(cy - iy, left / cx);
      segs.push_back({n, iz, iy, 0, cx, kk - k0, rows});
      kk += rows * cx;
      continue;
    }
    const int64_t len = std::min(cx - ix, left);
    segs.push_back({n, iz, iy, ix, len, kk - k0, 1});
    kk += len;
  }
}

// Fine pixels [lo, hi) of plane z of image n that a K block reads through some tap, at rows
// [base, base + hi - lo) of the channels-last band (lo, hi: pixel indices of the image).
struct BandImage {
  int64_t n, z, lo, hi, base;
};

// The intervals of the fine pixels a K block reads: per segment and fine plane (z) it reaches
// (1-D and 2-D: one plane) the y rows it reaches through the kernel and, for a segment of part
// of one row (1-D: the whole image), only its x; overlapping ones merged, sorted by (n, z, lo).
// Disjoint ones stay apart: a block that ends one coarse plane and starts the next reads the
// last and the first rows of a fine plane, not the plane.  Returns the band's pixels.
inline int64_t band_images(const Geometry& g, const std::vector<KSegment>& segs,
                           std::vector<BandImage>& imgs) {
  imgs.clear();
  const int64_t fz = g.fine[0], fy = g.fine[1], fx = g.fine[2];
  // the last fine index coarse point b reads along axis d
  const auto reach = [&g](int d, int64_t b) {
    return b * g.stride[d] - g.pad[d] + (g.kernel[d] - 1) * g.dilation[d];
  };
  for (const KSegment& s : segs) {
    const int64_t y0 = std::max<int64_t>(s.iy * g.stride[1] - g.pad[1], 0);
    const int64_t y1 = std::min(fy - 1, reach(1, s.iy + s.rows - 1));
    const bool part = s.rows == 1;
    const int64_t x0 = part ? std::max<int64_t>(s.ix0 * g.stride[2] - g.pad[2], 0) : 0;
    const int64_t x1 = part ? std::min(fx - 1, reach(2, s.ix0 + s.len - 1)) : fx - 1;
    if (y1 < y0 || x1 < x0) continue;
    for (int64_t z = std::max<int64_t>(s.iz * g.stride[0] - g.pad[0], 0);
         z <= std::min(fz - 1, reach(0, s.iz)); ++z)
      imgs.push_back({s.n, z, (z * fy + y0) * fx + x0, (z * fy + y1) * fx + x1 + 1, 0});
  }
  std::sort(imgs.begin(), imgs.end(), [](const BandImage& a, const BandImage& b) {
    return a.n != b.n ? a.n < b.n : a.z != b.z ? a.z < b.z : a.lo < b.lo;
  });
  size_t kept = 0;  // merge the overlapping intervals of one (n, z)
  for (size_t i = 0; i < imgs.size(); ++i) {
    if (kept > 0 && imgs[kept - 1].n == imgs[i].n && imgs[kept - 1].z == imgs[i].z &&
        imgs[i].lo <= imgs[kept - 1].hi) {
      imgs[kept - 1].lo = std::min(imgs[kept - 1].lo, imgs[i].lo);
      imgs[kept - 1].hi = std::max(imgs[kept - 1].hi, imgs[i].hi);
    } else {
      imgs[kept++] = imgs[i];
    }
  }
  imgs.resize(kept);
  int64_t base = 0;
  for (BandImage& b : imgs) {
    b.base = base;
    base += b.hi - b.lo;
  }
  return base;
}

// A block: ap[i * ld + r] = A[m0 + i][k0 + r] for r < kc, 0 for kc <= r < kcp.  A's k runs
// are contiguous in `coarse` within one batch item, so each row is one copy per item.
template <typename T>
void pack_a(const Geometry& g, const T* coarse, int64_t group, int64_t m0, int64_t mc,
            int64_t k0, int64_t kc, int64_t kcp, int64_t ld, T* ap) {
  const int64_t plane = g.coarse_pixels();
  for (int64_t i = 0; i < mc; ++i) {
    const int64_t c = group * g.coarse_per_group() + m0 + i;
    T* row = ap + i * ld;
    for (int64_t kk = k0; kk < k0 + kc;) {
      const int64_t n = kk / plane, p = kk % plane;
      const int64_t len = std::min(plane - p, k0 + kc - kk);
      const T* src = coarse + (n * g.coarse_channels + c) * plane + p;
      std::copy(src, src + len, row + (kk - k0));
      kk += len;
    }
    std::fill(row + kc, row + kcp, T(0));
  }
}

// to[u] = from[u * STEP] for u < len, len one of 4, 8, 16, 32.
template <typename T, int STEP>
void copy_run(const T* from, T* to, int64_t len) {
  if (len == 4) {
    copy_fixed<T, STEP, 4>(from, to);
  } else if (len == 8) {
    copy_fixed<T, STEP, 8>(from, to);
  } else if (len == 16) {
    copy_fixed<T, STEP, 16>(from, to);
  } else {
    copy_fixed<T, STEP, 32>(from, to);
  }
}

// to[ix] = from[ix * STEP] for ix in [lo, lo + 32 * pieces) with whole 32-point pieces
// (fixed-length copies); returns where the pieces end (the caller copies the rest).
template <typename T, int STEP>
int64_t copy_pieces(const T* from, T* to, int64_t lo, int64_t hi) {
  int64_t ix = lo;
  for (; ix + 32 <= hi; ix += 32) copy_fixed<T, STEP, 32>(from + ix * STEP, to + ix);
  return ix;
}

// The grid rows [qa, qb) of run s whose fine row exists for the taps kz, ky (valid coarse
// ranges rz, ry), and `base`, the fine index of grid row qa's x = 0 read of `channel` with x
// shift xshift: point ix of grid row q reads fine[base + (q - qa) * stride_y * fine_x +
// ix * stride_x].
struct RunRows {
  int64_t qa, qb, base;
};

inline RunRows run_rows(const Geometry& g, const KSegment& s, IndexRange rz, IndexRange ry,
                        int64_t kz, int64_t ky, int64_t channel, int64_t xshift) {
  const bool z_ok = s.iz >= rz.lo && s.iz < rz.hi;
  const int64_t qa = z_ok ? std::clamp(ry.lo - s.iy, int64_t(0), s.rows) : s.rows;
  const int64_t qb = z_ok ? std::clamp(ry.hi - s.iy, qa, s.rows) : s.rows;
  const int64_t oz = s.iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
  const int64_t oy = (s.iy + qa) * g.stride[1] - g.pad[1] + ky * g.dilation[1];
  return {qa, qb,
          (s.n * g.fine_channels + channel) * g.fine_pixels() + (oz * g.fine[1] + oy) * g.fine[2] +
              xshift};
}

// What packing one column col = f * taps + k of B needs, computed once per call (the integer
// divisions would otherwise be redone for every column of every K block): its channel
// offset f, taps and the valid coarse ranges of each tap.
struct BColumn {
  int64_t f, kz, ky, kx;
  IndexRange rz, ry, rx;
};

// The first `count` columns (the channels-last form needs channel 0's taps only).
inline std::vector<BColumn> b_columns(const Geometry& g, int64_t count) {
  const int64_t taps = g.taps();
  std::vector<BColumn> cols(static_cast<size_t>(count));
  for (size_t col = 0; col < cols.size(); ++col) {
    const auto k = static_cast<int64_t>(col) % taps;
    BColumn& c = cols[col];
    c.f = static_cast<int64_t>(col) / taps;
    c.kx = k % g.kernel[2];
    c.ky = (k / g.kernel[2]) % g.kernel[1];
    c.kz = k / (g.kernel[2] * g.kernel[1]);
    c.rz = valid_coarse_range(g.coarse[0], g.fine[0], g.stride[0], g.pad[0], g.dilation[0], c.kz);
    c.ry = valid_coarse_range(g.coarse[1], g.fine[1], g.stride[1], g.pad[1], g.dilation[1], c.ky);
    c.rx = valid_coarse_range(g.coarse[2], g.fine[2], g.stride[2], g.pad[2], g.dilation[2], c.kx);
  }
  return cols;
}

// The rows of S consecutive columns f, (kz, ky, kx0 + r), r < S (their table entries col[r]),
// when x has a step of S = 2, 4 or 8 and no dilation: all S read the same fine rows, at the S
// residues of x, so each fine row is read once and de-interleaved (copy.hpp) instead of being
// gathered S times with a stride of S (fcn-8s k16 s8 grad_weight: packing 50 % -> 35 % of the
// time).  Whole grid rows are de-interleaved when their reads stay inside `fine`, and the
// points outside each column's valid range zeroed after; otherwise only the points valid for
// all S columns, the rest copied one by one.  The values are pack_b's per-column ones (only
// the copying moved).
template <typename T, int S>
void pack_group(const Geometry& g, const T* fine, int64_t channel, const BColumn* col,
                const std::vector<KSegment>& segs, int64_t kc, int64_t kcp, int64_t ld,
                T* rows) {
  const int64_t fx = g.fine[2];
  const int64_t plane = g.fine[0] * g.fine[1] * fx;
  const int64_t fine_size = g.batch * g.fine_channels * plane;
  const int64_t kz = col[0].kz, ky = col[0].ky, kx0 = col[0].kx;
  const IndexRange rz = col[0].rz, ry = col[0].ry;
  IndexRange rx[S];  // the S columns' x ranges (stride S, no dilation)
  for (int r = 0; r < S; ++r) {
    rx[r] = col[r].rx;
    std::fill(rows + r * ld + kc, rows + r * ld + kcp, T(0));
  }
  const int64_t row_step = g.stride[1] * fx;  // between consecutive grid rows
  for (const KSegment& s : segs) {
    // fine index of column r's point ix on grid row q: base + (q - qa) * row_step + ix * S + r
    const auto [qa, qb, base] = run_rows(g, s, rz, ry, kz, ky, channel, kx0 - g.pad[2]);
    const int64_t end = s.ix0 + s.len;
    int64_t lo[S], hi[S];  // column r's valid points [lo, hi) of [ix0, end)
    int64_t all_lo = s.ix0, all_hi = end;
    for (int r = 0; r < S; ++r) {
      T* run = rows + r * ld + s.r0;
      std::fill(run, run + qa * s.len, T(0));
      std::fill(run + qb * s.len, run + s.rows * s.len, T(0));
      lo[r] = std::clamp(rx[r].lo, s.ix0, end);
      hi[r] = std::clamp(rx[r].hi, lo[r], end);
      all_lo = std::max(all_lo, lo[r]);
      all_hi = std::min(all_hi, hi[r]);
    }
    all_hi = std::max(all_hi, all_lo);
    if (qa == qb) continue;
    const bool whole = base + s.ix0 * S >= 0 && base + (qb - 1 - qa) * row_step + end * S <= fine_size;
    const int64_t from = whole ? s.ix0 : all_lo, to = whole ? end : all_hi;
    for (int64_t q = qa; q < qb; ++q) {
      const T* frow = fine + base + (q - qa) * row_step;
      T* seg[S];  // seg[r][ix]: column r's point ix, ix in [ix0, end)
      T* dst[S];
      for (int r = 0; r < S; ++r) {
        seg[r] = rows + r * ld + s.r0 + q * s.len - s.ix0;
        dst[r] = seg[r] + from;
      }
      deinterleave<T, S>(frow + from * S, dst, to - from);
      for (int r = 0; r < S; ++r) {
        if (!whole) {
          for (int64_t ix = lo[r]; ix < std::min(all_lo, hi[r]); ++ix) seg[r][ix] = frow[ix * S + r];
          for (int64_t ix = std::max(all_hi, lo[r]); ix < hi[r]; ++ix) seg[r][ix] = frow[ix * S + r];
        }
        std::fill(seg[r] + s.ix0, seg[r] + lo[r], T(0));
        std::fill(seg[r] + hi[r], seg[r] + end, T(0));
      }
    }
  }
}

// Row q of one packed run: seg[ix] = fine[frow_at + ix * sx] for ix in [lo, hi), zeros for
// the rest of [ix0, ix0 + len).  `fixed`: every read of the run's whole row lies inside
// `fine`, sx <= 2 and len is 4, 8, 16 or 32, so the row is copied whole by a fixed-length
// (vectorised) loop and its ends zeroed again.
template <typename T>
inline void copy_fine_row(const T* fine, int64_t frow_at, int64_t sx, int64_t ix0, int64_t len,
                          int64_t lo, int64_t hi, bool fixed, T* seg) {
  if (fixed) {
    if (sx == 1) {
      copy_run<T, 1>(fine + frow_at + ix0, seg + ix0, len);
    } else {
      copy_run<T, 2>(fine + frow_at + ix0 * 2, seg + ix0, len);
    }
  } else {
    // reads fine[frow_at + ix * sx] for ix in [lo, hi) only (all inside `fine`)
    int64_t ix = lo;
    if (sx == 1 && hi - lo >= 32) {
      // 32-point pieces, the last one ending at hi (overlapping the one before: the same
      // values again), not a memmove call per run (stride1-k3p1's 64-point runs: 6 % of the
      // samples were in memmove)
      copy_pieces<T, 1>(fine + frow_at, seg, lo, hi);
      copy_fixed<T, 1, 32>(fine + frow_at + hi - 32, seg + hi - 32);
      ix = hi;
    } else if (sx == 1) {
      std::copy(fine + frow_at + lo, fine + frow_at + hi, seg + lo);
      ix = hi;
    } else if (sx == 2) {  // long rows: vectorised 32-point pieces
      ix = copy_pieces<T, 2>(fine + frow_at, seg, lo, hi);
    } else if (sx == 4) {
      ix = copy_pieces<T, 4>(fine + frow_at, seg, lo, hi);
    } else if (sx == 8) {
      ix = copy_pieces<T, 8>(fine + frow_at, seg, lo, hi);
    }
    for (; ix < hi; ++ix) seg[ix] = fine[frow_at + ix * sx];
  }
  std::fill(seg + ix0, seg + lo, T(0));
  std::fill(seg + hi, seg + ix0 + len, T(0));
}

// One column of the B block (one tap c of fine channel `channel`), row[r] for r < kcp: per
// K segment, its grid rows that read a fine row inside, zeros elsewhere.
template <typename T>
inline void pack_column(const Geometry& g, const T* fine, const BColumn& c, int64_t channel,
                        const std::vector<KSegment>& segs, int64_t kc, int64_t kcp, T* row) {
  const int64_t fx = g.fine[2], sx = g.stride[2];
  const int64_t fine_size = g.batch * g.fine_channels * g.fine[0] * g.fine[1] * fx;
  const int64_t xshift = c.kx * g.dilation[2] - g.pad[2];
  std::fill(row + kc, row + kcp, T(0));
  for (const KSegment& s : segs) {
    // grid rows q < s.rows of the run whose fine row exists: [qa, qb); base: the fine
    // index of grid row qa's x = 0 read
    const auto [qa, qb, base] = run_rows(g, s, c.rz, c.ry, c.kz, c.ky, channel, xshift);
    const int64_t lo = std::clamp(c.rx.lo, s.ix0, s.ix0 + s.len);
    const int64_t hi = std::clamp(c.rx.hi, lo, s.ix0 + s.len);
    T* run = row + s.r0;  // packed row q of the run at run + q * len
    if (lo == hi) {
      std::fill(run, run + s.rows * s.len, T(0));
      continue;
    }
    std::fill(run, run + qa * s.len, T(0));
    std::fill(run + qb * s.len, run + s.rows * s.len, T(0));
    if (qa == qb) continue;
    const int64_t row_step = g.stride[1] * fx;  // between consecutive grid rows
    // Common row lengths with step 1 or 2: copy whole runs with a fixed-length loop
    // (vectorised) and zero their ends again, when every read stays inside `fine`.
    const int64_t first = base + s.ix0 * sx;
    const int64_t last = base + (qb - 1 - qa) * row_step + (s.ix0 + s.len - 1) * sx;
    const bool fixed = first >= 0 && last < fine_size && sx <= 2 &&
                       (s.len == 16 || s.len == 32 || s.len == 8 || s.len == 4);
    for (int64_t q = qa; q < qb; ++q)
      copy_fine_row(fine, base + (q - qa) * row_step, sx, s.ix0, s.len, lo, hi, fixed,
                    run + q * s.len - s.ix0);
  }
}

// B block: bp[t * ld + r] = B[col0 + t][k0 + r] for t < nc, r < kc; 0 for r < kcp elsewhere
// (t < ncp).  Every element below kcp is written once: zeros only where B is zero.  Columns
// that differ in kx only, sx of them (2, 4 or 8), are packed together (pack_group), each
// other one by itself (pack_column).
template <typename T>
inline void pack_b_body(const Geometry& g, const T* fine, const std::vector<BColumn>& table,
                        int64_t group, int64_t col0, int64_t nc, int64_t ncp,
                        const std::vector<KSegment>& segs, int64_t kc, int64_t kcp, int64_t ld,
                        T* bp) {
  const int64_t sx = g.stride[2];
  for (int64_t t = nc; t < ncp; ++t) std::fill(bp + t * ld, bp + t * ld + kcp, T(0));
  const bool grouped = (sx == 2 || sx == 4 || sx == 8) && g.dilation[2] == 1;
  for (int64_t t = 0, step = 1; t < nc; t += step) {
    const BColumn& c = table[static_cast<size_t>(col0 + t)];
    const int64_t channel = group * g.fine_per_group() + c.f;
    step = grouped && t + sx <= nc && c.kx + sx <= g.kernel[2] ? sx : 1;
    if (step == 2) {
      pack_group<T, 2>(g, fine, channel, &c, segs, kc, kcp, ld, bp + t * ld);
    } else if (step == 4) {
      pack_group<T, 4>(g, fine, channel, &c, segs, kc, kcp, ld, bp + t * ld);
    } else if (step == 8) {
      pack_group<T, 8>(g, fine, channel, &c, segs, kc, kcp, ld, bp + t * ld);
    } else {
      pack_column(g, fine, c, channel, segs, kc, kcp, bp + t * ld);
    }
  }
}

// pack_b_body has AVX2 and AVX-512 clones (tconv/clones.hpp): the row copies become 32- or
// 64-byte moves instead of 16-byte ones.

template <typename T>
using PackB = void (*)(const Geometry&, const T*, const std::vector<BColumn>&, int64_t, int64_t,
                       int64_t, int64_t, const std::vector<KSegment>&, int64_t, int64_t,
                       int64_t, T*);

template <typename T>
void pack_b(const Geometry& g, const T* fine, const std::vector<BColumn>& table, int64_t group,
            int64_t col0, int64_t nc, int64_t ncp, const std::vector<KSegment>& segs, int64_t kc,
            int64_t kcp, int64_t ld, T* bp) {
  pack_b_body(g, fine, table, group, col0, nc, ncp, segs, kc, kcp, ld, bp);
}
#ifdef TCONV_CLONE_AVX2
template <typename T>
TCONV_CLONE_AVX2 void pack_b_avx2(const Geometry& g, const T* fine,
                                  const std::vector<BColumn>& table, int64_t group,
                                  int64_t col0, int64_t nc, int64_t ncp,
                                  const std::vector<KSegment>& segs, int64_t kc, int64_t kcp,
                                  int64_t ld, T* bp) {
  pack_b_body(g, fine, table, group, col0, nc, ncp, segs, kc, kcp, ld, bp);
}
#endif
#ifdef TCONV_CLONE_AVX512
template <typename T>
TCONV_CLONE_AVX512 void pack_b_avx512(const Geometry& g, const T* fine,
                                      const std::vector<BColumn>& table, int64_t group,
                                      int64_t col0, int64_t nc, int64_t ncp,
                                      const std::vector<KSegment>& segs, int64_t kc,
                                      int64_t kcp, int64_t ld, T* bp) {
  pack_b_body(g, fine, table, group, col0, nc, ncp, segs, kc, kcp, ld, bp);
}
#endif

// The outer form's panel packed k-major straight from `fine` (no column-major B block, no
// transpose): panel[kk * nr + t] = B[col0 + t][k0 + kk], the same values as pack_b followed by
// the table's transpose, so the same bits.  A run is up to `lanes` consecutive panel columns
// of one channel and (kz, ky) whose kx taps read consecutive fine x (dilation 1; else runs of
// one column): each point of a run is one masked vector load (lanes outside `fine`'s row
// masked off, so they read as 0) and one masked store, on the narrowest of 16-, 32- and
// 64-byte vectors that holds the run (masked_move).  For DCGAN's k4 s2 this reads each fine
// value where pack_b de-interleaved each row once per tap pair and ky, and saves the
// transpose.
struct PanelRun {
  int64_t j, channel, kz, ky, kx0, len;  // panel columns [j, j + len): taps kx0 .. kx0 + len - 1
};

inline void panel_runs(const Geometry& g, const std::vector<BColumn>& table, int64_t group,
                       int64_t col0, int64_t cols, int64_t lanes, std::vector<PanelRun>& runs) {
  runs.clear();
  const bool contiguous = g.dilation[2] == 1;
  for (int64_t t = 0; t < cols; ++t) {
    const BColumn& c = table[static_cast<size_t>(col0 + t)];
    const int64_t channel = group * g.fine_per_group() + c.f;
    if (!runs.empty()) {
      PanelRun& b = runs.back();
      if (contiguous && b.len < lanes && b.channel == channel && b.kz == c.kz && b.ky == c.ky &&
          b.kx0 + b.len == c.kx) {
        ++b.len;
        continue;
      }
    }
    runs.push_back({t, channel, c.kz, c.ky, c.kx, 1});
  }
}

// Runs shorter than this many taps (kernel x) keep pack_b + transpose: one masked load and
// store per 3 taps cost more than copying whole rows and transposing them, while k4 s2
// gains (docs/perf-log.md, 2026-12-03 17:45).
constexpr int64_t kPanelMinTaps = 4;

template <typename T>
using PackPanel = void (*)(const Geometry&, const T*, const std::vector<PanelRun>&, int64_t, int,
                           const std::vector<KSegment>&, int64_t, int64_t, T*);

#ifdef TCONV_CLONE_AVX512
// Lanes `store` of dst = lanes `load` of src (the others zero), on a vector of kBytes: the
// narrowest that holds a run's lanes.  A 512-bit masked move of a k4 run's 4 floats cost
// more than a 128-bit one (HiFi-GAN k4s2 grad_weight; docs/perf-log.md 2026-12-06 07:12).
template <int kBytes, typename T>
TCONV_CLONE_AVX512 inline __attribute__((always_inline)) void masked_move(T* dst,
                                                                           uint32_t store,
                                                                           const T* src,
                                                                           uint32_t load) {
  if constexpr (std::is_same_v<T, float>) {
    if constexpr (kBytes == 16) {
      _mm_mask_storeu_ps(dst, __mmask8(store), _mm_maskz_loadu_ps(__mmask8(load), src));
    } else if constexpr (kBytes == 32) {
      _mm256_mask_storeu_ps(dst, __mmask8(store), _mm256_maskz_loadu_ps(__mmask8(load), src));
    } else {
      _mm512_mask_storeu_ps(dst, __mmask16(store), _mm512_maskz_loadu_ps(__mmask16(load), src));
    }
  } else {
    if constexpr (kBytes == 16) {
      _mm_mask_storeu_pd(dst, __mmask8(store), _mm_maskz_loadu_pd(__mmask8(load), src));
    } else if constexpr (kBytes == 32) {
      _mm256_mask_storeu_pd(dst, __mmask8(store), _mm256_maskz_loadu_pd(__mmask8(load), src));
    } else {
      _mm512_mask_storeu_pd(dst, __mmask8(store), _mm512_maskz_loadu_pd(__mmask8(load), src));
    }
  }
}

// Lanes [0, len) of a run whose first tap reads fine x = x0, less those outside [0, fx).
inline uint32_t run_mask(int64_t x0, int64_t len, int64_t dx, int64_t fx) {
  uint32_t m = 0;
  for (int64_t u = 0; u < len; ++u)
    if (x0 + u * dx >= 0 && x0 + u * dx < fx) m |= uint32_t(1) << u;
  return m;
}

// One fine row's points [ix0, end) of run u into dst (point ix at dst + ix * nr; frow null:
// the row lies in padding); points [lo, hi) read all their taps inside the row.
template <int kBytes, typename T>
TCONV_CLONE_AVX512 void pack_run_row(const PanelRun& u, const T* frow, int64_t ix0,
                                     int64_t end, int64_t lo, int64_t hi, int64_t sx,
                                     int64_t xoff, int64_t dx, int64_t fx, int nr, T* dst) {
  const uint32_t full = (uint32_t(1) << u.len) - 1;
  if (frow == nullptr) {
    for (int64_t ix = ix0; ix < end; ++ix) masked_move<kBytes>(dst + ix * nr, full, dst, 0);
    return;
  }
  for (int64_t ix = ix0; ix < end; ++ix) {
    const int64_t x0 = ix * sx + xoff;
    const uint32_t m = ix >= lo && ix < hi ? full : run_mask(x0, u.len, dx, fx);
    // x0 may lie before the row (padding) and the masked-off lanes past it: the address is
    // formed as an integer, as a pointer outside `fine` is undefined
    const auto at =
        reinterpret_cast<uintptr_t>(frow) + static_cast<uintptr_t>(x0 * int64_t(sizeof(T)));
    masked_move<kBytes>(dst + ix * nr, full, reinterpret_cast<const T*>(at), m);
  }
}

template <typename T>
using PackRunRow = void (*)(const PanelRun&, const T*, int64_t, int64_t, int64_t, int64_t,
                            int64_t, int64_t, int64_t, int64_t, int, T*);

// Columns [cols, nr) of the panel are zero (the last block of B's columns).  `ahead`: the
// offset of the task's next column block's channels (0: none); their copies of the rows read
// here are prefetched into L2 while this panel's kernels run (each channel-image plane of a
// 32 x 32 grid is its own 4 KiB page, which the L2 streamer does not cross, and the
// packing's loads waited on them).
template <typename T>
TCONV_CLONE_AVX512 void pack_panel_avx512(const Geometry& g, const T* fine,
                                          const std::vector<PanelRun>& runs, int64_t cols,
                                          int nr, const std::vector<KSegment>& segs,
                                          int64_t kc, int64_t ahead, T* panel) {
  if (cols < nr) std::fill(panel, panel + kc * nr, T(0));
  const int64_t fx = g.fine[2], fy = g.fine[1], fz = g.fine[0];
  const int64_t plane = fz * fy * fx;
  const int64_t sx = g.stride[2], dx = g.dilation[2];
  for (const PanelRun& u : runs) {
    const int64_t bytes = u.len * int64_t(sizeof(T));
    const PackRunRow<T> move = bytes <= 16   ? &pack_run_row<16, T>
                               : bytes <= 32 ? &pack_run_row<32, T>
                                             : &pack_run_row<64, T>;
    const int64_t xoff = u.kx0 * dx - g.pad[2];  // point ix's first tap reads x = ix*sx + xoff
    const int64_t span = (u.len - 1) * dx;       // and its last one x + span
    for (const KSegment& s : segs) {
      const int64_t oz = s.iz * g.stride[0] - g.pad[0] + u.kz * g.dilation[0];
      const int64_t end = s.ix0 + s.len;
      const int64_t lo = std::clamp(ceil_div(std::max<int64_t>(-xoff, 0), sx), s.ix0, end);
      const int64_t hi = fx - 1 - span - xoff < 0
                             ? lo
                             : std::clamp((fx - 1 - span - xoff) / sx + 1, lo, end);
      for (int64_t q = 0; q < s.rows; ++q) {
        T* dst = panel + (s.r0 + q * s.len - s.ix0) * nr + u.j;  // point ix at dst + ix * nr
        const int64_t oy = (s.iy + q) * g.stride[1] - g.pad[1] + u.ky * g.dilation[1];
        if (oz < 0 || oz >= fz || oy < 0 || oy >= fy) {
          move(u, nullptr, s.ix0, end, lo, hi, sx, xoff, dx, fx, nr, dst);
          continue;
        }
        // the fine row (lanes outside it are masked off: never read)
        const T* frow = fine + (s.n * g.fine_channels + u.channel) * plane + (oz * fy + oy) * fx;
        if (ahead != 0) {  // the x this segment row reads, not the whole (1-D: long) row
          const int64_t x0 = std::max<int64_t>(s.ix0 * sx + xoff, 0);
          const int64_t x1 = std::min(fx, (end - 1) * sx + xoff + span + 1);
          prefetch_bytes<false, 2>(frow + ahead + x0, (x1 - x0) * int64_t(sizeof(T)));
        }
        move(u, frow, s.ix0, end, lo, hi, sx, xoff, dx, fx, nr, dst);
      }
    }
  }
}
#endif

// The direct panel packing of the active kernel table's ISA, or null (pack_b + transpose).
template <typename T>
PackPanel<T> pack_panel_for(CloneIsa isa) {
#ifdef TCONV_CLONE_AVX512
  if (isa == CloneIsa::kAvx512) return &pack_panel_avx512<T>;
#endif
  (void)isa;
  return nullptr;
}

// The B packing of the active kernel table's ISA.
template <typename T>
PackB<T> pack_b_for(CloneIsa isa) {
#ifdef TCONV_CLONE_AVX512
  if (isa == CloneIsa::kAvx512) return &pack_b_avx512<T>;
#endif
#ifdef TCONV_CLONE_AVX2
  if (isa == CloneIsa::kAvx2) return &pack_b_avx2<T>;
#endif
  return &pack_b<T>;
}

// The outer form (see the top of the file); depends on the dtype, the table's GEMM tile width
// nr and channels/kernel only, so that a layer's result never depends on its batch or image
// size.
template <typename T>
bool outer_form(int64_t M, int64_t N, int nr) {
  return (sizeof(T) == sizeof(float) || nr >= 16) && M >= 48 && M <= 256 && N >= 128;
}

// The channels-last form (see the top of the file): the outer form's dtypes and smallest M
// and N, any M (row blocks of <= 512), fine channels per group in whole nr blocks, and taps
// >= kClReuse x the product of the strides (each fine value read by >= 3 taps on average,
// which the outer form and the dot form each packed once per tap).  At 2 (k3 s2, k4 s2 1-D,
// k16 s8) it was no faster than those and slower on HiFi-GAN k16 s8 (512 rows: the dot form
// 156 vs 139 GF/s, kgemm's B rows 1 KiB apart); at 1 (k2 s2) slower (docs/perf-log.md).
constexpr int64_t kClReuse = 3;

template <typename T>
bool channels_last_form(const Geometry& g, int nr) {
  const int64_t M = g.coarse_per_group(), N = g.fine_per_group() * g.taps();
  return (sizeof(T) == sizeof(float) || nr >= 16) && M >= 48 && N >= 128 &&
         g.fine_per_group() % nr == 0 &&
         g.taps() >= kClReuse * g.stride[0] * g.stride[1] * g.stride[2];
}

// The phase view of x: fine x = bx * sx + r - pad_x of channel f is channel
// f * sx + r of the view at x = bx, so that the view's x has stride 1, no padding and
// ceil(kernel_x / sx) taps: tap kx = qx * sx + r of the problem is tap qx of the view on its
// channels r.  The view's points outside the fine row read zeros, and its taps qx * sx + r >=
// kernel_x give sums that are dropped.
inline Geometry phase_geometry(const Geometry& g) {
  Geometry v = g;
  v.fine_channels = g.fine_channels * g.stride[2];
  v.kernel[2] = ceil_div(g.kernel[2], g.stride[2]);
  v.fine[2] = g.coarse[2] + v.kernel[2] - 1;
  v.stride[2] = 1;
  v.pad[2] = 0;
  return v;
}

// The channels-last form on the phase view, where it does not take the problem itself and
// the view can run (x strided, nr a multiple of the stride, undilated; the channels-last
// form's dtypes): when the stride divides kernel x (no dropped sums), the view's taps >=
// kClReuse x the product of its strides, M >= kPhaseMinRows, and the view's channels per
// group fill at least kPhaseFill / 4 of their nr blocks (the rest of the last block is
// computed on zeros).  fcn-8s k16 s8 (21 rows, 168 of 192 lanes) 1.4x over the dot form;
// against the outer form k3 s2 (a quarter of the sums dropped) 0.85x, with 2 taps a lane (k4
// s2 1-D, k16 s8 1-D, k2 s2) 0.93-1.02x, and DCGAN 64->3 (6 of 32 lanes) 0.2x the dot form
// (docs/perf-log.md).  set_phase_view(0 / 1) turns it off, or on wherever the view can run
// (tests).  Returns the x stride (0: not taken).
constexpr int64_t kPhaseMinRows = 16;
constexpr int64_t kPhaseFill = 3;

std::atomic<int> phase_view_mode{-1};  // set_phase_view: -1 the rule, 0 off, 1 on

template <typename T>
int64_t phase_form(const Geometry& g, int nr) {
  const int64_t sx = g.stride[2];
  const int mode = phase_view_mode.load(std::memory_order_relaxed);
  if (sx < 2 || nr % sx != 0 || g.dilation[2] != 1 || mode == 0 ||
      (sizeof(T) != sizeof(float) && nr < 16) || channels_last_form<T>(g, nr))
    return 0;
  if (mode == 1) return sx;
  const Geometry v = phase_geometry(g);
  const int64_t lanes = v.fine_per_group();
  const bool fits = g.kernel[2] % sx == 0 && g.coarse_per_group() >= kPhaseMinRows &&
                    4 * lanes >= kPhaseFill * round_up(lanes, int64_t(nr)) &&
                    v.taps() >= kClReuse * v.stride[0] * v.stride[1];
  return fits ? sx : 0;
}

// Fewest GEMM tiles (nr columns; channels-last: nr fine channels x every tap) of a task's
// column range: every task packs (channels-last: transposes) its rows of A for itself, so
// ranges of one tile packed A once per tile (DCGAN 128->64, 64 fine channels: four tasks on
// two threads transposed the input twice; docs/perf-log.md).
constexpr int64_t kMinTaskTiles = 2;

// The channels-last form's transposes run in pieces of this many points (transpose_rows).
constexpr int64_t kPieceK = 256;

constexpr int64_t kPanelBytes = 24 * 1024;  // the outer form's k-major B panel, kept in L1
constexpr int kMaxNR = 32;                  // widest tile of either form (AVX-512 f32 GEMM)

}  // namespace

void set_phase_view(int mode) {
  phase_view_mode.store(mode < 0 ? -1 : mode > 0 ? 1 : 0, std::memory_order_relaxed);
}

template <typename T>
WeightGradPlan plan_weight_grad_blocks(const Geometry& g, const GemmKernels<T>& uk, int threads) {
  WeightGradPlan p;
  const int64_t M = g.coarse_per_group();
  const int64_t N = g.fine_per_group() * g.taps();
  const int64_t K = g.batch * g.coarse_pixels();
  p.phase = phase_form<T>(g, uk.nr);
  const Geometry v = p.phase ? phase_geometry(g) : g;  // the channels-last form's geometry
  p.channels_last = p.phase || channels_last_form<T>(g, uk.nr);
  p.outer = p.channels_last || outer_form<T>(M, N, uk.nr);
  p.mr = p.outer ? uk.mr : uk.dot_mr;
  p.nr = p.outer ? uk.nr : uk.dot_nc;
  if (g.coarse_channels * N == 0 || K == 0) return p;
  const int nr = p.nr;
  // dot: L2 (512 KiB) holds one B block (<= 48 x kc), swept by the kernel once per mr-row A
  // tile (in L1 for that sweep); the A block (<= 512 x kc, larger than L2: its tiles come
  // from L3 once per B block) is packed once per K block and column range.  Every B block is
  // packed once per A block, so up to 512 rows share it (with 256, the B packing of
  // 512-channel layers was twice as much work and ~20 % of samples).
  // outer: one nr-column panel of kc rows per B block (24 KiB, in L1).
  p.kc = p.outer ? kPanelBytes / (int64_t(nr) * int64_t(sizeof(T))) : 4 * k_block<T>();
  const int64_t m_blocks = ceil_div(M, round_up(std::min<int64_t>(M, 512), p.mr));
  p.mc = round_up(ceil_div(M, m_blocks), p.mr);
  // Chunks depend on the problem only (never on the thread count).
  const int64_t k_blocks = ceil_div(K, 4 * k_block<T>());
  p.chunks = (k_blocks >= 2 && g.groups * m_blocks * ceil_div(N, 8 * int64_t(nr)) < 16) ? 2 : 1;
  p.chunk_len = round_up(ceil_div(K, p.chunks), 4 * k_block<T>());
  p.nc = p.outer ? nr : round_up(std::min<int64_t>(N, 48), nr);
  // Column ranges (whole nr tiles; channels-last: blocks of nr fine channels, every tap) only
  // to give every thread a task, of at least kMinTaskTiles tiles: each task packs its rows of
  // A for itself, so two tasks a thread packed every A block twice (docs/perf-log.md,
  // 2026-12-05 14:50).
  const int64_t tiles = ceil_div(p.channels_last ? v.fine_per_group() : N, int64_t(nr));
  const int64_t width = p.channels_last ? tiles * nr : N;
  p.width = p.channels_last ? width : 0;
  p.out_values = p.channels_last ? g.groups * v.taps() * M * width : 0;
  const int64_t splits = std::max<int64_t>(
      1, std::min(tiles / kMinTaskTiles, ceil_div(threads, p.chunks * g.groups * m_blocks)));
  for (int64_t ch = 0; ch < p.chunks; ++ch)
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t m0 = 0; m0 < M; m0 += p.mc)
        for (int64_t sp = 0; sp < splits; ++sp)
          p.tasks.push_back({grp, m0, std::min(width, tiles * sp / splits * nr),
                             std::min(width, tiles * (sp + 1) / splits * nr), ch});
  p.flops = 2.0 * double(g.coarse_channels) * double(N) * double(K);
  p.table_bytes = (p.channels_last ? v.taps() : N) * int64_t(sizeof(BColumn));
  p.parallel = threads > 1 && p.tasks.size() > 1 && p.flops > kParallelFlops;
  return p;
}

template <typename T>
int64_t channels_last_thread_values(const Geometry& g, const WeightGradPlan& p) {
  // the largest band of the call's K blocks (tconv.plan only: the run sizes each block's)
  const int64_t K = g.batch * g.coarse_pixels();
  const Geometry v = p.phase ? phase_geometry(g) : g;
  int64_t band = 0;
  std::vector<KSegment> segs;
  std::vector<BandImage> imgs;
  for (int64_t ch = 0; ch < p.chunks; ++ch) {
    const int64_t end = std::min(K, (ch + 1) * p.chunk_len);
    for (int64_t k0 = ch * p.chunk_len; k0 < end; k0 += p.kc) {
      k_segments(v, k0, std::min(p.kc, end - k0), segs);
      band = std::max(band, band_images(v, segs, imgs));
    }
  }
  // A's panels, their transposes, transpose_rows' buffer and the bands of the widest task
  // (the phase view fills one nr block's band at a time)
  int64_t widest = p.nr;
  if (!p.phase)
    for (const WeightGradTask& t : p.tasks) widest = std::max(widest, t.col1 - t.col0);
  return p.mc * p.kc + round_up(p.mc, int64_t(p.nr)) * p.kc +
         int64_t(p.nr) * (kPieceK + 64 / int64_t(sizeof(T))) + std::max<int64_t>(band, 1) * widest;
}

namespace {

// What the outer and dot forms' tasks of one call share.
template <typename T>
struct WgCall {
  const Geometry& g;
  const WeightGradPlan& p;
  const GemmKernels<T>& uk;
  const T* coarse;
  const T* fine;
  const std::vector<BColumn>& table;
  PackB<T> pack;
  PackPanel<T> pack_panel;  // null: pack, then (outer form) the table's transpose
  const Geometry* real;     // channels-last on the phase view: the problem's (g is the view)
};

// The outer form's next column block of B, packed from `fine` (pack_b): its source lines --
// the fine rows its channels read through the K block's segments -- are fetched into the
// cache a share at a time between the tiles of the current block, so that packing it reads
// the cache instead of waiting on memory (U-Net k2s2's fine image, 64 MiB, comes from
// memory).  The dot form, whose few tiles would fetch them in large bursts, and the direct
// panel packing (pack_panel_for, which prefetches for itself) do not.
template <typename T>
struct BlockLines {
  LineQueue lines;

  // The fine planes of channels [f0, f1] of `group` from the first to the last value the
  // K block's segments read through any tap (a superset where taps span several rows).
  void plan(const Geometry& g, const T* fine, int64_t group, int64_t f0, int64_t f1,
            const std::vector<KSegment>& segs) {
    lines.clear();
    const int64_t fz = g.fine[0], fy = g.fine[1], fx = g.fine[2];
    for (const KSegment& sg : segs) {
      const int64_t z0 = std::clamp<int64_t>(sg.iz * g.stride[0] - g.pad[0], 0, fz - 1);
      const int64_t z1 = std::clamp<int64_t>(
          sg.iz * g.stride[0] - g.pad[0] + (g.kernel[0] - 1) * g.dilation[0], 0, fz - 1);
      const int64_t y0 = std::clamp<int64_t>(sg.iy * g.stride[1] - g.pad[1], 0, fy - 1);
      const int64_t y1 = std::clamp<int64_t>((sg.iy + sg.rows - 1) * g.stride[1] - g.pad[1] +
                                                 (g.kernel[1] - 1) * g.dilation[1],
                                             0, fy - 1);
      const int64_t lo = (z0 * fy + y0) * fx, hi = (z1 * fy + y1 + 1) * fx;
      for (int64_t f = f0; f <= f1; ++f)
        lines.add(fine + (sg.n * g.fine_channels + group * g.fine_per_group() + f) *
                             g.fine_pixels() + lo,
                  (hi - lo) * int64_t(sizeof(T)));
    }
  }
  // plan() for B's columns [c0, c1) (none if empty); returns the lines to fetch before each
  // of `tiles` tiles.
  int64_t start(const Geometry& g, const T* fine, const std::vector<BColumn>& table,
                int64_t group, int64_t c0, int64_t c1, const std::vector<KSegment>& segs,
                int64_t tiles) {
    if (c1 <= c0) {
      lines.clear();
      return 0;
    }
    plan(g, fine, group, table[size_t(c0)].f, table[size_t(c1 - 1)].f, segs);
    return ceil_div(lines.lines(), std::max<int64_t>(1, tiles));
  }
  // Always inlined: GCC deems a function that only prefetches free of side effects.
  inline __attribute__((always_inline)) void step(int64_t n) { lines.step(n); }
};

// A thread's buffers for those tasks.
template <typename T>
struct WgScratch {
  Scratch<T> a_buf, b_buf, panel_buf;
  std::vector<KSegment> segs;  // the current K block's
  std::vector<PanelRun> runs;
  BlockLines<T> next;  // the outer form's next column block's source lines
  T edge[kMaxMR * kMaxNR];  // one tile that would run past the column range
};

// Column block c0 of the task's range for the K block of s.segs: the outer form's panel
// (packed directly where the table has pack_panel, else packed as B's column rows and
// transposed), or the dot form's B rows, returned (ld apart).
template <typename T>
const T* pack_column_block(const WgCall<T>& call, WgScratch<T>& s, const WeightGradTask& task,
                           int64_t c0, int64_t kc, int64_t kcp, int64_t ld, T* panel) {
  const Geometry& g = call.g;
  const int nr = call.p.nr;
  const int64_t nc = call.p.nc, cols = std::min(nc, task.col1 - c0);
  if (call.p.outer && call.pack_panel) {
    panel_runs(g, call.table, task.group, c0, cols, 64 / int64_t(sizeof(T)), s.runs);
    // the next block's rows (same rows, later channels) prefetched into L2 meanwhile
    const int64_t next =
        c0 + nc < task.col1
            ? (call.table[size_t(c0 + nc)].f - call.table[size_t(c0)].f) * g.fine_pixels()
            : 0;
    call.pack_panel(g, call.fine, s.runs, cols, nr, s.segs, kc, next, panel);
    return nullptr;
  }
  const int64_t ncp = round_up(cols, nr);
  T* bp = s.b_buf.get(ncp * ld);
  call.pack(g, call.fine, call.table, task.group, c0, cols, ncp, s.segs, kc, kcp, ld, bp);
  if (call.p.outer) call.uk.transpose(bp, ld, kc, panel);
  return bp;
}

// One K block of a task (A rows at ap, lda apart; B's K segments s.segs) times every column
// block of the task's range, into out (dW rows N apart); the outer form transposes each B
// block into a panel, tiles past the range's end go through s.edge.
template <typename T>
void column_blocks(const WgCall<T>& call, WgScratch<T>& s, const WeightGradTask& task,
                   int64_t rows, int64_t kc, int64_t kcp, int64_t ld, const T* ap, int64_t lda,
                   int accumulate, T* out) {
  const Geometry& g = call.g;
  const GemmKernels<T>& uk = call.uk;
  const bool outer = call.p.outer;
  const int mr = call.p.mr, nr = call.p.nr;
  const int64_t nc = call.p.nc, N = g.fine_per_group() * g.taps();
  T* panel = outer ? s.panel_buf.get(kc * nr) : nullptr;
  for (int64_t c0 = task.col0; c0 < task.col1; c0 += nc) {
    const int64_t cols = std::min(nc, task.col1 - c0);
    const T* bp = pack_column_block(call, s, task, c0, kc, kcp, ld, panel);
    const bool ahead = outer && !call.pack_panel && c0 + nc < task.col1;
    const int64_t quota = s.next.start(g, call.fine, call.table, task.group, c0 + nc,
                                       ahead ? std::min(task.col1, c0 + 2 * nc) : c0 + nc,
                                       s.segs, ceil_div(rows, mr));
    for (int64_t i0 = 0, r = 0; i0 < rows; i0 += r) {
      s.next.step(quota);
      r = outer ? tile_rows(rows - i0, mr) : dot_rows(rows - i0, mr);
      const T* a = ap + i0 * lda;
      // tile (i0, j0) into c (row stride ldc), overwriting or adding its block sum
      const auto tile = [&](int64_t j0, T* c, int64_t ldc, int acc) {
        if (outer) {
          uk.rfn[r](kc, a, lda, panel, c, ldc, acc);
        } else {
          uk.dot[r](kcp, a, lda, bp + j0 * ld, ld, c, ldc, acc);
        }
      };
      for (int64_t j0 = 0; j0 < cols; j0 += nr) {
        T* c = out + i0 * N + c0 + j0;
        if (j0 + nr <= cols) {
          tile(j0, c, N, accumulate);
          continue;
        }
        // Same arithmetic as the kernel's own (+)= on the valid columns.
        tile(j0, s.edge, nr, 0);
        for (int64_t i = 0; i < r; ++i)
          for (int64_t j = 0; j < cols - j0; ++j)
            c[i * N + j] = accumulate ? c[i * N + j] + s.edge[i * nr + j] : s.edge[i * nr + j];
      }
    }
  }
}

// Runs a task's chunk of the reduction (K = batch x coarse pixels): block(k0, kc, accumulate)
// for its K blocks of p.kc in increasing k0 (stopping between blocks when cancelled), or
// zero() when the chunk lies past K (its outputs are then zero sums).
template <class Block, class Zero>
void for_each_k_block(const WeightGradPlan& p, const WeightGradTask& task, int64_t K,
                      Cancellation* cancel, Block&& block, Zero&& zero) {
  const int64_t kbeg = task.chunk * p.chunk_len, kend = std::min(K, kbeg + p.chunk_len);
  if (kend <= kbeg) zero();
  for (int64_t k0 = kbeg; k0 < kend; k0 += p.kc) {
    if (k0 > kbeg && stop(cancel)) break;
    block(k0, std::min(p.kc, kend - k0), k0 > kbeg ? 1 : 0);
  }
}

// One task of the outer or dot form: its rows of dW (from row task.m0 of its group) for its
// column range, summed over its chunk of K block by K block into out (dW or the second
// partial sum, at the task's first row).
template <typename T>
void run_wg_task(const WgCall<T>& call, WgScratch<T>& s, const WeightGradTask& task, T* out,
                 Cancellation* cancel) {
  const Geometry& g = call.g;
  const WeightGradPlan& p = call.p;
  const bool outer = p.outer;
  const int64_t M = g.coarse_per_group(), N = g.fine_per_group() * g.taps();
  const int64_t plane = g.coarse_pixels(), K = g.batch * plane;
  const int64_t rows = std::min(p.mc, M - task.m0);
  const auto zero = [&] {
    for (int64_t i = 0; i < rows; ++i)
      std::fill(out + i * N + task.col0, out + i * N + task.col1, T(0));
  };
  for_each_k_block(p, task, K, cancel, [&](int64_t k0, int64_t kc, int accumulate) {
    const int64_t kcp = outer ? kc : round_up(kc, call.uk.dot_kw);
    // Rows one cache line longer than kcp: the dot kernel's mr + nc row streams would
    // otherwise all map to the same L1 sets (its kcp * sizeof(T) is a multiple of 4 KiB).
    const int64_t ld = kcp + 64 / static_cast<int64_t>(sizeof(T));
    k_segments(g, k0, kc, s.segs);
    // A straight from `coarse` when the block lies in one batch item and needs no padding,
    // for the dot form only: the outer form's kernels broadcast from mr rows at once, and
    // in place, those rows lie a plane apart, all in one L1 set for planes of a multiple
    // of 1024 floats (stride-1 k3, 3-D U-Net and V-Net, HiFi-GAN k4s2 grad_weight
    // 1.1-1.3x packed; docs/perf-log.md 2026-12-04).
    if (!outer && kc == kcp && k0 / plane == (k0 + kc - 1) / plane) {
      const T* ap = call.coarse +
                    ((k0 / plane) * g.coarse_channels + task.group * M + task.m0) * plane +
                    k0 % plane;
      column_blocks(call, s, task, rows, kc, kcp, ld, ap, plane, accumulate, out);
    } else {
      T* packed = s.a_buf.get(rows * ld);
      pack_a(g, call.coarse, task.group, task.m0, rows, k0, kc, kcp, ld, packed);
      column_blocks(call, s, task, rows, kc, kcp, ld, packed, ld, accumulate, out);
    }
  }, zero);
}

// dst[k * nr + t] = rows[t * ld + k] for k < len, t < nr (t >= have: 0) by the table's
// transpose kernel, through tmp (nr rows of at most kPieceK values + one cache line): the rows
// are copied there first, one after another, as read straight from `coarse` or `fine` they lie
// a plane apart, often all in one L1 set (planes of a multiple of 1024 floats), and the
// kernel's loads of nr rows at a time missed L1.

template <typename T>
void transpose_rows(const GemmKernels<T>& uk, const T* rows, int64_t ld, int64_t have,
                    int64_t len, T* tmp, T* dst) {
  const int64_t nr = uk.nr, tld = kPieceK + 64 / int64_t(sizeof(T));
  for (int64_t k0 = 0; k0 < len; k0 += kPieceK) {
    const int64_t kn = std::min(kPieceK, len - k0);
    for (int64_t t = 0; t < nr; ++t) {
      if (t < have) {
        std::copy(rows + t * ld + k0, rows + t * ld + k0 + kn, tmp + t * tld);
      } else {
        std::fill(tmp + t * tld, tmp + t * tld + kn, T(0));
      }
    }
    uk.transpose(tmp, tld, kn, dst + k0 * nr);
  }
}

// The channels-last form's A: the task's coarse rows of K block [k0, k0 + kc) as the k-major
// panels of its row tiles (cuts: c0 < c1 < ...), tile [c0, c1) at ap + (c0 - cuts[0]) * kc:
// element (i, kk) at kk * (c1 - c0) + i, = A[c0 + i][k0 + kk] (kgemm's row kk of a panel of
// c1 - c0 rows).  In two steps: every nr rows transposed into at[h * kc + kk * nr + t] (row
// cuts[0] + h + t, zero past the rows there are), then each tile's rows copied out of those.
template <typename T>
void pack_a_panels(const Geometry& g, const GemmKernels<T>& uk, const T* coarse, int64_t group,
                   const std::vector<int64_t>& cuts, int64_t k0, int64_t kc, T* at, T* tmp,
                   T* ap) {
  const int64_t plane = g.coarse_pixels(), nr = uk.nr;
  const int64_t m0 = cuts.front(), rows = cuts.back() - m0;
  for (int64_t h = 0; h < rows; h += nr) {
    for (int64_t kk = k0; kk < k0 + kc;) {
      const int64_t n = kk / plane, pix = kk % plane, len = std::min(plane - pix, k0 + kc - kk);
      const T* src =
          coarse + (n * g.coarse_channels + group * g.coarse_per_group() + m0 + h) * plane + pix;
      transpose_rows(uk, src, plane, std::min(nr, rows - h), len, tmp,
                     at + h * kc + (kk - k0) * nr);
      kk += len;
    }
  }
  for (size_t j = 0; j + 1 < cuts.size(); ++j) {
    const int64_t c0 = cuts[j] - m0, r = cuts[j + 1] - cuts[j];
    T* panel = ap + c0 * kc;
    for (int64_t i = 0; i < r;) {  // the rows in one transposed block at a time
      const int64_t h = (c0 + i) / nr * nr, t0 = c0 + i - h, piece = std::min(r - i, nr - t0);
      const T* from = at + h * kc + t0;
      for (int64_t kk = 0; kk < kc; ++kk)
        for (int64_t u = 0; u < piece; ++u) panel[kk * r + i + u] = from[kk * nr + u];
      i += piece;
    }
  }
}

// The terms of tap c (a column of the table) in K block segs that read inside `fine`, in
// increasing kk, written from a_rows and b_off on (at most the block's length; returns how
// many): a_rows[l] = kk - k0, b_off[l] = the band row of the fine pixel it reads x nr.
inline int64_t tap_terms(const Geometry& g, const BColumn& c, const std::vector<KSegment>& segs,
                         const std::vector<BandImage>& imgs, int nr, int64_t* a_rows,
                         int64_t* b_off) {
  int64_t* const start = a_rows;
  for (const KSegment& s : segs) {
    // grid rows [qa, qb) read fine rows; `at`: the fine index row qa's x = 0 reads in image
    // s.n's channel 0, so a pixel index of the image
    const auto [qa, qb, at] =
        run_rows(g, s, c.rz, c.ry, c.kz, c.ky, 0, c.kx * g.dilation[2] - g.pad[2]);
    const int64_t lo = std::clamp(c.rx.lo, s.ix0, s.ix0 + s.len);
    const int64_t hi = std::clamp(c.rx.hi, lo, s.ix0 + s.len);
    if (lo == hi || qa == qb) continue;
    const int64_t x0 = at - s.n * g.fine_channels * g.fine_pixels();
    // the segment's reads of its plane lie in one interval band_images listed: the last one of
    // (s.n, that plane) starting at or before the first of them
    const int64_t first = x0 + lo * g.stride[2], oz = first / (g.fine[1] * g.fine[2]);
    const auto after = std::upper_bound(
        imgs.begin(), imgs.end(), std::tuple{s.n, oz, first},
        [](const std::tuple<int64_t, int64_t, int64_t>& key, const BandImage& b) {
          return key < std::tuple{b.n, b.z, b.lo};
        });
    TCONV_ASSERT(after != imgs.begin());
    const BandImage& im = *(after - 1);
    TCONV_ASSERT(im.n == s.n && im.z == oz && im.lo <= first && first < im.hi);
    const int64_t step = g.stride[2] * nr;
    for (int64_t q = qa; q < qb; ++q) {
      // band row of x = 0 of this fine row
      const int64_t row = im.base - im.lo + x0 + (q - qa) * g.stride[1] * g.fine[2];
      const int64_t a0 = s.r0 + q * s.len - s.ix0, b0 = (row + lo * g.stride[2]) * nr;
      for (int64_t ix = lo; ix < hi; ++ix) *a_rows++ = a0 + ix;  // (separate loops vectorise)
      for (int64_t j = 0; j < hi - lo; ++j) *b_off++ = b0 + j * step;
    }
  }
  return a_rows - start;
}

// out[tap][row][channel] of every group (taps x M x width apiece, in the geometry the form
// ran on: the problem's, or its phase view of x stride sx > 1) into dW[group * M + row][f *
// taps + tap], plus `second` (the same layout) when the reduction ran in two chunks.  On the
// view, tap (kz, ky, kx) of channel f is tap (kz, ky, kx / sx) of channel f * sx + kx % sx.
template <typename T>
void rearrange(const Geometry& g, int64_t sx, int64_t width, const T* out, const T* second,
               T* dw, bool parallel) {
  const int64_t M = g.coarse_per_group(), F = g.fine_per_group(), taps = g.taps();
  const int64_t kx = g.kernel[2], view_kx = ceil_div(kx, sx), step = M * width;
  const int64_t per_group = taps / kx * view_kx * step;
  std::vector<int64_t> off(static_cast<size_t>(kx));  // tap x's offset in its (kz, ky) row
  for (int64_t x = 0; x < kx; ++x) off[size_t(x)] = x / sx * step + x % sx;
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t e = 0; e < g.groups * M; ++e) {
    T* to = dw + e * F * taps;  // dW's row, its taps in order
    for (int64_t f = 0; f < F; ++f)
      for (int64_t zy = 0; zy < taps / kx; ++zy) {
        const int64_t at = (e / M) * per_group + (e % M) * width + zy * view_kx * step + f * sx;
        for (int64_t x = 0; x < kx; ++x) {
          const int64_t from = at + off[size_t(x)];
          *to++ = second ? out[from] + second[from] : out[from];
        }
      }
  }
}

// The band rows of image im of the phase view (phase_geometry; `v`, of problem g) for its
// channels [c0, c0 + have), c0 a multiple of sx, as lanes l < nr (zeros from `have` on):
// bb[(im.base + u - im.lo) * nr + l] = fine[n][(c0 + l) / sx][row][bx * sx + (c0 + l) % sx -
// pad_x] for the view's pixel u = row * v.fine[2] + bx, 0 outside the fine row.
template <typename T, int SX>
void phase_band(const Geometry& g, const Geometry& v, const T* fine, const BandImage& im,
                int64_t c0, int64_t have, int nr, T* bb) {
  const int64_t sx = SX > 0 ? SX : g.stride[2], fx = g.fine[2], vx = v.fine[2];
  for (int64_t u = im.lo; u < im.hi;) {
    const int64_t row = u / vx, bx0 = u % vx, len = std::min(vx - bx0, im.hi - u);
    for (int64_t l = 0; l < nr; l += sx) {
      T* d = bb + (im.base + u - im.lo) * nr + l;
      if (l >= have) {
        for (int64_t b = 0; b < len; ++b) std::fill(d + b * nr, d + b * nr + sx, T(0));
        continue;
      }
      const T* src = fine + (im.n * g.fine_channels + (c0 + l) / sx) * g.fine_pixels() +
                     row * fx;  // the fine row
      // the next row's source into the cache meanwhile
      if (u + len < im.hi) prefetch_bytes(src + fx, fx * int64_t(sizeof(T)));
      for (int64_t b = 0, x = bx0 * sx - g.pad[2]; b < len; ++b, x += sx) {  // x: fine x
        if (x >= 0 && x + sx <= fx) {
          if constexpr (SX > 0) {
            std::memcpy(d + b * nr, src + x, SX * sizeof(T));  // one vector move
          } else {
            std::copy(src + x, src + x + sx, d + b * nr);
          }
        } else {
          for (int64_t r = 0; r < sx; ++r)
            d[b * nr + r] = x + r >= 0 && x + r < fx ? src[x + r] : T(0);
        }
      }
    }
    u += len;
  }
}

template <typename T>
void phase_band_any(const Geometry& g, const Geometry& v, const T* fine, const BandImage& im,
                    int64_t c0, int64_t have, int nr, T* bb) {
  switch (g.stride[2]) {
    case 2: return phase_band<T, 2>(g, v, fine, im, c0, have, nr, bb);
    case 4: return phase_band<T, 4>(g, v, fine, im, c0, have, nr, bb);
    case 8: return phase_band<T, 8>(g, v, fine, im, c0, have, nr, bb);
    default: return phase_band<T, 0>(g, v, fine, im, c0, have, nr, bb);
  }
}

// A thread's buffers for the channels-last form's tasks.
template <typename T>
struct ClScratch {
  Scratch<T> a, at, tmp, band;
  std::vector<KSegment> segs;
  std::vector<BandImage> imgs;
  Scratch<int64_t> rows_buf, off_buf;  // every tap's terms, tap k's from terms[k] of
  int64_t *a_rows = nullptr, *b_off = nullptr;  // these (in rows_buf and off_buf)
  std::vector<size_t> terms;
  std::vector<int64_t> cuts;  // the task's row tiles: [cuts[j], cuts[j + 1])
};

// Lists taps [k0, k1)'s terms in the current K block (s.segs, s.imgs; kc long, so no tap has
// more than kc terms): tap k's from s.terms[k - k0] to s.terms[k - k0 + 1] of s.a_rows and
// s.b_off.
template <typename T>
void cl_terms(const WgCall<T>& call, ClScratch<T>& s, int64_t kc, int64_t k0, int64_t k1) {
  s.a_rows = s.rows_buf.get((k1 - k0) * kc);
  s.b_off = s.off_buf.get((k1 - k0) * kc);
  s.terms.assign(1, 0);
  for (int64_t k = k0; k < k1; ++k) {
    const size_t at = s.terms.back();
    const int64_t n = tap_terms(call.g, call.table[static_cast<size_t>(k)], s.segs, s.imgs,
                                call.p.nr, s.a_rows + at, s.b_off + at);
    TCONV_ASSERT(n <= kc);
    s.terms.push_back(at + size_t(n));
  }
}

// The band of the task's block b of nr fine channels into bb: transposed from `fine`, or on
// the phase view (call.real) copied in x phases.
template <typename T>
void cl_fill(const WgCall<T>& call, ClScratch<T>& s, const WeightGradTask& task, int64_t b,
             T* tmp, T* bb) {
  const Geometry& g = call.g;
  const int64_t nr = call.p.nr, F = g.fine_per_group(), plane = g.fine_pixels();
  const int64_t channel = task.group * F + task.col0 + b * nr;
  for (const BandImage& im : s.imgs) {
    if (call.real) {
      phase_band_any(*call.real, g, call.fine, im, channel,
                     std::min(nr, F - task.col0 - b * nr), int(nr), bb);
      continue;
    }
    transpose_rows(call.uk, call.fine + (im.n * g.fine_channels + channel) * plane + im.lo,
                   plane, nr, im.hi - im.lo, tmp, bb + im.base * nr);
  }
}

// K block [k0, k0 + kc) of a channels-last task into o (out[tap][row][channel] of its chunk
// and group): A packed into the row tiles' panels, then per block of nr fine channels the
// band of the fine pixels the block reads as rows of nr channels and per tap kgemm over the
// terms listed.  The phase view fills one block's band at a time (kept in L2: its bands are
// larger) and lists every tap's terms once; otherwise every block's band comes first and the
// taps' terms are listed one tap at a time.
template <typename T>
void cl_block(const WgCall<T>& call, ClScratch<T>& s, const WeightGradTask& task, int64_t k0,
              int64_t kc, int accumulate, T* o) {
  const Geometry& g = call.g;
  const int nr = call.p.nr;
  const int64_t M = g.coarse_per_group(), taps = g.taps(), W = call.p.width;
  const int64_t rows = s.cuts.back() - task.m0, blocks = (task.col1 - task.col0) / nr;
  k_segments(g, k0, kc, s.segs);
  T* ap = s.a.get(rows * kc);
  T* tmp = s.tmp.get(nr * (kPieceK + 64 / int64_t(sizeof(T))));
  pack_a_panels(g, call.uk, call.coarse, task.group, s.cuts, k0, kc,
                s.at.get(round_up(rows, int64_t(nr)) * kc), tmp, ap);
  const int64_t stride = std::max<int64_t>(band_images(g, s.segs, s.imgs), 1) * nr;
  // tap k (its terms from s.terms[i]) of block b (band bb) for every row tile
  const auto sweep = [&](int64_t b, int64_t k, size_t i, const T* bb) {
    const size_t t0 = s.terms[i];
    const auto kn = static_cast<int64_t>(s.terms[i + 1] - t0);
    for (size_t j = 0; j + 1 < s.cuts.size(); ++j) {
      const int64_t c0 = s.cuts[j];
      call.uk.kfn[s.cuts[j + 1] - c0](kn, ap + (c0 - task.m0) * kc, s.a_rows + t0, bb,
                                      s.b_off + t0,
                                      o + (k * M + c0) * W + task.col0 + b * nr, W, accumulate,
                                      nullptr);
    }
  };
  if (call.real) {
    T* bb = s.band.get(stride);
    cl_terms(call, s, kc, 0, taps);
    for (int64_t b = 0; b < blocks; ++b) {
      cl_fill(call, s, task, b, tmp, bb);
      for (int64_t k = 0; k < taps; ++k) sweep(b, k, size_t(k), bb);
    }
    return;
  }
  T* bb = s.band.get(stride * blocks);
  for (int64_t b = 0; b < blocks; ++b) cl_fill(call, s, task, b, tmp, bb + b * stride);
  for (int64_t k = 0; k < taps; ++k) {
    cl_terms(call, s, kc, k, k + 1);
    for (int64_t b = 0; b < blocks; ++b) sweep(b, k, 0, bb + b * stride);
  }
}

// One channels-last task: its rows and fine channels of every tap, summed over its chunk of
// K block by K block into o.
template <typename T>
void run_cl_task(const WgCall<T>& call, ClScratch<T>& s, const WeightGradTask& task, T* o,
                 Cancellation* cancel) {
  const Geometry& g = call.g;
  const WeightGradPlan& p = call.p;
  const int64_t M = g.coarse_per_group(), W = p.width, taps = g.taps();
  const int64_t K = g.batch * g.coarse_pixels();
  const int64_t rows = std::min(p.mc, M - task.m0);
  s.cuts.clear();
  for (int64_t c0 = task.m0, r = 0; c0 < task.m0 + rows; c0 += r) {
    r = tile_rows(task.m0 + rows - c0, p.mr);
    s.cuts.push_back(c0);
  }
  s.cuts.push_back(task.m0 + rows);
  const auto zero = [&] {
    for (int64_t k = 0; k < taps; ++k)
      for (int64_t r = k * M + task.m0; r < k * M + task.m0 + rows; ++r)
        std::fill(o + r * W + task.col0, o + r * W + task.col1, T(0));
  };
  const auto block = [&](int64_t k0, int64_t kc, int accumulate) {
    cl_block(call, s, task, k0, kc, accumulate, o);
  };
  for_each_k_block(p, task, K, cancel, block, zero);
}

template <typename T>
void weight_grad_channels_last(const Geometry& g, const WeightGradPlan& p,
                               const GemmKernels<T>& uk, const T* coarse, const T* fine, T* dw) {
  const Geometry v = p.phase ? phase_geometry(g) : g;
  const std::vector<BColumn> table = b_columns(v, v.taps());
  const int64_t per_group = p.out_values / g.groups;
  Scratch<T> out_buf;
  T* out = out_buf.get(p.chunks * g.groups * per_group);
  const auto task_count = static_cast<int64_t>(p.tasks.size());
  Cancellation* const cancel = current_cancellation();
  const WgCall<T> call{v, p, uk, coarse, fine, table, nullptr, nullptr, p.phase ? &g : nullptr};
#pragma omp parallel if (p.parallel)
  {
    ClScratch<T> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < task_count; ++ti) {
      if (stop(cancel)) continue;
      const WeightGradTask& task = p.tasks[static_cast<size_t>(ti)];
      run_cl_task(call, scratch, task, out + (task.chunk * g.groups + task.group) * per_group,
                  cancel);
    }
  }
  if (stop(cancel)) return;  // cancelled: some of `out` was never written
  rearrange(g, std::max<int64_t>(p.phase, 1), p.width, out,
            p.chunks > 1 ? out + g.groups * per_group : nullptr, dw, p.parallel);
}

template <typename T>
void weight_grad_fast(const Geometry& g, const T* coarse, const T* fine, T* dw) {
  const GemmKernels<T>& uk = active_gemm<T>();
  const int64_t M = g.coarse_per_group();
  const int64_t N = g.fine_per_group() * g.taps();
  const int64_t plane = g.coarse_pixels();
  const int64_t K = g.batch * plane;
  const int64_t dw_size = g.coarse_channels * N;
  if (dw_size == 0) return;
  if (K == 0) {
    std::fill(dw, dw + dw_size, T(0));
    return;
  }
  if (depthwise_suits(g)) {
    weight_grad_depthwise(g, coarse, fine, dw);
    return;
  }
  const WeightGradPlan p = plan_weight_grad_blocks<T>(g, uk, omp_get_max_threads());
  if (p.channels_last) {
    weight_grad_channels_last(g, p, uk, coarse, fine, dw);
    return;
  }
  const int64_t chunks = p.chunks;
  std::vector<T> partial(chunks > 1 ? static_cast<size_t>(dw_size) : 0);
  const auto task_count = static_cast<int64_t>(p.tasks.size());
  Cancellation* const cancel = current_cancellation();
  const std::vector<BColumn> table = b_columns(g, N);
  const WgCall<T> call{g,
                       p,
                       uk,
                       coarse,
                       fine,
                       table,
                       pack_b_for<T>(clone_isa(active_kernels().name)),
                       g.kernel[2] >= kPanelMinTaps && g.dilation[2] == 1
                           ? pack_panel_for<T>(clone_isa(active_kernels().name))
                           : nullptr,
                       nullptr};

#pragma omp parallel if (p.parallel)
  {
    WgScratch<T> scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < task_count; ++ti) {
      if (stop(cancel)) continue;
      const WeightGradTask& task = p.tasks[static_cast<size_t>(ti)];
      T* out = (task.chunk == 0 ? dw : partial.data()) + (task.group * M + task.m0) * N;
      run_wg_task(call, scratch, task, out, cancel);
    }
    if (chunks > 1) {
#pragma omp for schedule(static)
      for (int64_t e = 0; e < dw_size; ++e) dw[e] += partial[static_cast<size_t>(e)];
    }
  }
}

}  // namespace

template <typename T>
void weight_grad(const Geometry& g, const T* coarse, const T* fine, T* dw) {
  const int64_t dw_size = g.coarse_channels * g.fine_per_group() * g.taps();
  run_checked(
      coarse, g.batch * g.coarse_channels * g.coarse_pixels(), fine,
      g.batch * g.fine_channels * g.fine_pixels(), dw_size,
      [&](bool check) {
        weight_grad_fast(g, coarse, fine, dw);
        return !check || all_finite(dw, dw_size);
      },
      [&] { weight_grad_repair(g, coarse, fine, dw); });
}

template WeightGradPlan plan_weight_grad_blocks<float>(const Geometry&, const GemmKernels<float>&,
                                                      int);
template WeightGradPlan plan_weight_grad_blocks<double>(const Geometry&,
                                                       const GemmKernels<double>&, int);
template int64_t channels_last_thread_values<float>(const Geometry&, const WeightGradPlan&);
template int64_t channels_last_thread_values<double>(const Geometry&, const WeightGradPlan&);
template void weight_grad<float>(const Geometry&, const float*, const float*, float*);
template void weight_grad<double>(const Geometry&, const double*, const double*, double*);

}  // namespace tconv
