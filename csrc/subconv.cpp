// The sub-convolution driver (layout and formula in tconv/subconv.hpp).
//
// Blocking (BLIS order inside one task):  for each K block of kc = k_block<T>() rows:
//   pack A: the task's mc x kc weight block, as panels of mr rows      (L2)
//   pack B: kc x nc source pixels, im2col with zeros, panels of nr     (one panel in L1)
//   for every nr panel, for every mr panel: micro-kernel into the mc x nc accumulator tile
// then add the bias and store the tile into dst (a strided scatter when dst_step > 1).
// mc and nc never change the summation order (only kc does), so they may depend on the
// thread count; kc does not.
#include <algorithm>
#include <cstring>

#include <omp.h>

#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

struct Task {
  int64_t sub, group, m0, q0, nc;
};

// Largest packed-A block (mc x K) a thread keeps between tasks.
constexpr int64_t kMaxCachedA = int64_t(2) << 20;
// Longest run of one grid row that a direct-path task takes (longer rows are cut into chunks,
// so that the accumulator tile and the source band stay in L2).
constexpr int64_t kMaxRowChunk = 192;
// Largest direct-path source band (bigger bands fall back to per-row border copies).
constexpr int64_t kMaxBandBytes = int64_t(2) << 20;

// A run of consecutive grid points on one (n, jz, jy) row: jx in [jx0, jx0 + len),
// tile columns [t0, t0 + len).
struct Segment {
  int64_t n, jz, jy, jx0, len, t0;
};

void row_segments(const SubConv& s, int64_t q0, int64_t nc, std::vector<Segment>& segs) {
  segs.clear();
  const int64_t jx_n = s.axes[2].extent, jy_n = s.axes[1].extent, jz_n = s.axes[0].extent;
  int64_t q = q0;
  const int64_t q_end = q0 + nc;
  while (q < q_end) {
    const int64_t jx = q % jx_n;
    const int64_t row = q / jx_n;
    const int64_t jy = row % jy_n;
    const int64_t jz = (row / jy_n) % jz_n;
    const int64_t n = row / (jy_n * jz_n);
    const int64_t len = std::min(jx_n - jx, q_end - q);
    segs.push_back({n, jz, jy, jx, len, q - q0});
    q += len;
  }
}

// One row kk = (c, tz, ty, tx) of the K block.
struct KRow {
  int64_t channel, tap, tz, ty, tx, weight_offset;
};

void k_rows(const SubConv& s, int64_t k0, int64_t kc, std::vector<KRow>& rows) {
  rows.resize(static_cast<size_t>(kc));
  const auto tx_n = static_cast<int64_t>(s.axes[2].tap_kernel.size());
  const auto ty_n = static_cast<int64_t>(s.axes[1].tap_kernel.size());
  const int64_t taps = s.taps();
  for (int64_t r = 0; r < kc; ++r) {
    const int64_t kk = k0 + r;
    const int64_t c = kk / taps, t = kk % taps;
    const int64_t tx = t % tx_n, ty = (t / tx_n) % ty_n, tz = t / (tx_n * ty_n);
    const int64_t koff = (s.axes[0].tap_kernel[static_cast<size_t>(tz)] * s.kernel[1] +
                          s.axes[1].tap_kernel[static_cast<size_t>(ty)]) *
                             s.kernel[2] +
                         s.axes[2].tap_kernel[static_cast<size_t>(tx)];
    rows[static_cast<size_t>(r)] = {c, t, tz, ty, tx, c * s.w_c + koff};
  }
}

// A panels: rows [m0, m0+mc) in panels of mr (last one r = mc % mr rows);
// panel starting at row i0 lives at ap + i0 * kc, element (k, i) at [k * r + i].
template <typename T>
void pack_a(const SubConv& s, const T* w, int64_t group, int64_t m0, int64_t mc,
            const std::vector<KRow>& rows, int mr, T* ap) {
  const int64_t kc = static_cast<int64_t>(rows.size());
  const T* wg = w + group * s.w_group + m0 * s.w_m;
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t r = std::min<int64_t>(mr, mc - i0);
    T* panel = ap + i0 * kc;
    const T* wm = wg + i0 * s.w_m;
    // k outer: consecutive k (same channel, next tap) reuse the cache lines of W[c][m0..][*].
    for (int64_t k = 0; k < kc; ++k) {
      const T* wk = wm + rows[static_cast<size_t>(k)].weight_offset;
      for (int64_t i = 0; i < r; ++i) panel[k * r + i] = wk[i * s.w_m];
    }
  }
}

// B panels: column t of the tile lives in panel t / nr at bp + (t / nr) * kc * nr,
// element (k, t) at [k * nr + t % nr]; columns [nc, round_up(nc, nr)) are zero.
// Segments are cut at panel boundaries into pieces; per piece each tap is classified once
// (zero / interior offset / border), so a row k costs a lookup and a short copy.
template <typename T>
void pack_b(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& segs,
            const std::vector<KRow>& rows, int64_t nc, int nr, T* bp,
            std::vector<int64_t>& tap_code) {
  constexpr int64_t kZero = -1, kBorder = -2;
  const int64_t kc = static_cast<int64_t>(rows.size());
  const int64_t ncp = round_up(nc, nr);
  for (int64_t t = nc; t < ncp; ++t) {
    T* col = bp + (t / nr) * kc * nr + t % nr;
    for (int64_t k = 0; k < kc; ++k) col[k * nr] = T(0);
  }
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const int64_t step = ax.src_step;
  const auto tx_n = static_cast<int64_t>(ax.tap_offset.size());
  const auto ty_n = static_cast<int64_t>(ay.tap_offset.size());
  const int64_t taps = s.taps();
  tap_code.resize(static_cast<size_t>(taps));
  for (const Segment& seg : segs) {
    for (int64_t u0 = 0; u0 < seg.len;) {
      const int64_t t = seg.t0 + u0;
      const int64_t len = std::min<int64_t>(seg.len - u0, nr - t % nr);
      const int64_t jx0 = seg.jx0 + u0;
      for (int64_t tp = 0; tp < taps; ++tp) {
        const int64_t tx = tp % tx_n, ty = (tp / tx_n) % ty_n, tz = tp / (tx_n * ty_n);
        const int64_t z = seg.jz * az.src_step + az.tap_offset[static_cast<size_t>(tz)];
        const int64_t y = seg.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(ty)];
        const int64_t x0 = jx0 * step + ax.tap_offset[static_cast<size_t>(tx)];
        const int64_t x1 = x0 + (len - 1) * step;  // last read
        int64_t code = kZero;
        if (z >= 0 && z < sz && y >= 0 && y < sy && x1 >= 0 && x0 < sx)
          code = (x0 >= 0 && x1 < sx) ? (z * sy + y) * sx + x0 : kBorder;
        tap_code[static_cast<size_t>(tp)] = code;
      }
      const T* src_n = src + (seg.n * s.src_channels + group * s.Kc) * plane;
      T* dst = bp + (t / nr) * kc * nr + t % nr;
      for (int64_t k = 0; k < kc; ++k, dst += nr) {
        const KRow& row = rows[static_cast<size_t>(k)];
        const int64_t code = tap_code[static_cast<size_t>(row.tap)];
        if (code >= 0) {
          const T* p = src_n + row.channel * plane + code;
          if (step == 1) {
            for (int64_t u = 0; u < len; ++u) dst[u] = p[u];
          } else {
            for (int64_t u = 0; u < len; ++u) dst[u] = p[u * step];
          }
        } else if (code == kZero) {
          for (int64_t u = 0; u < len; ++u) dst[u] = T(0);
        } else {
          const int64_t z = seg.jz * az.src_step + az.tap_offset[static_cast<size_t>(row.tz)];
          const int64_t y = seg.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(row.ty)];
          const int64_t x0 = jx0 * step + ax.tap_offset[static_cast<size_t>(row.tx)];
          const T* srow = src_n + row.channel * plane + (z * sy + y) * sx;
          for (int64_t u = 0; u < len; ++u) {
            const int64_t x = x0 + u * step;
            dst[u] = (x >= 0 && x < sx) ? srow[x] : T(0);
          }
        }
      }
      u0 += len;
    }
  }
}

// Direct (indirect-GEMM) path: tiles are runs of <= nr grid points on one row, tile i owning
// accumulator columns [i*nr, i*nr + nr).  Row k of a tile's B is read straight from the source
// when all nr reads lie inside the source row (columns past the tile's length are computed and
// discarded: every column of a GEMM is independent), from a zero row when none of the tile's
// points is valid, and from a small packed copy otherwise (borders).
void row_tiles(const std::vector<Segment>& segs, int nr, std::vector<Segment>& tiles) {
  tiles.clear();
  for (const Segment& seg : segs)
    for (int64_t u = 0; u < seg.len; u += nr)
      tiles.push_back({seg.n, seg.jz, seg.jy, seg.jx0 + u, std::min<int64_t>(nr, seg.len - u),
                       static_cast<int64_t>(tiles.size()) * nr});
}

// Per tile, each tap is classified once (zero row / direct offset / border copy); the rows of
// the K block then only add the channel's plane offset.
template <typename T>
void indirect_rows(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& tiles,
                   const std::vector<KRow>& rows, int nr, const T* zeros, T* border,
                   const T** ptrs, std::vector<int64_t>& tap_code) {
  constexpr int64_t kZero = -1, kBorder = -2;
  const int64_t kc = static_cast<int64_t>(rows.size());
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const auto tx_n = static_cast<int64_t>(ax.tap_offset.size());
  const auto ty_n = static_cast<int64_t>(ay.tap_offset.size());
  const int64_t taps = s.taps();
  tap_code.resize(static_cast<size_t>(taps));
  for (const Segment& tile : tiles) {
    for (int64_t t = 0; t < taps; ++t) {
      const int64_t tx = t % tx_n, ty = (t / tx_n) % ty_n, tz = t / (tx_n * ty_n);
      const int64_t z = tile.jz * az.src_step + az.tap_offset[static_cast<size_t>(tz)];
      const int64_t y = tile.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(ty)];
      const int64_t x0 = tile.jx0 + ax.tap_offset[static_cast<size_t>(tx)];  // step 1
      int64_t code = kZero;
      if (z >= 0 && z < sz && y >= 0 && y < sy && x0 + tile.len > 0 && x0 < sx)
        code = (x0 >= 0 && x0 + nr <= sx) ? (z * sy + y) * sx + x0 : kBorder;
      tap_code[static_cast<size_t>(t)] = code;
    }
    const T* src_n = src + (tile.n * s.src_channels + group * s.Kc) * plane;
    for (int64_t k = 0; k < kc; ++k) {
      const KRow& row = rows[static_cast<size_t>(k)];
      const int64_t code = tap_code[static_cast<size_t>(row.tap)];
      const T* plane_c = src_n + row.channel * plane;
      if (code >= 0) {
        *ptrs++ = plane_c + code;
      } else if (code == kZero) {
        *ptrs++ = zeros;
      } else {
        // valid u: 0 <= x0 + u < sx and u < len; the rest of the nr row is zero
        const int64_t z = tile.jz * az.src_step + az.tap_offset[static_cast<size_t>(row.tz)];
        const int64_t y = tile.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(row.ty)];
        const int64_t x0 = tile.jx0 + ax.tap_offset[static_cast<size_t>(row.tx)];
        const int64_t lo = std::max<int64_t>(0, -x0);
        const int64_t hi = std::min<int64_t>(tile.len, sx - x0);
        const T* srow = plane_c + (z * sy + y) * sx + x0;
        // lo < hi here.  Clamped loads + select: a short branch-free loop (a plain copy loop
        // becomes a memcpy call, far too slow for <= 32 elements).
        for (int64_t u = 0; u < nr; ++u) {
          const T v = srow[std::min(std::max(u, lo), hi - 1)];
          border[u] = (u >= lo && u < hi) ? v : T(0);
        }
        *ptrs++ = border;
        border += nr;
      }
    }
  }
}

// Direct-path source band of one task (its rows lie in one (n, jz) plane).  A strided source
// (gather with stride s along x) is de-interleaved: tap offset o = q*s + ph reads phase ph at
// grid index j + q.  For every input channel c < Kc, z tap tz, source row y in [y0, y0 + rows)
// and x phase ph used by some tap (index p < phases):
//   band[(((c * Tz + tz) * rows + (y - y0)) * phases + p) * width + u] = src[(u + x0) * s + ph]
// with zeros outside the source on every side, so every (tile, k) row of B is a plain pointer
// into it: no border cases, no zero rows, unit-stride loads.
struct Band {
  int64_t y0 = 0, rows = 0, x0 = 0, width = 0, tz_n = 0;
  std::vector<int64_t> phase;        // source x residue of each band plane
  std::vector<int64_t> tap_plane;    // plane index of each x tap
  std::vector<int64_t> tap_shift;    // q of each x tap
  int64_t phases() const { return static_cast<int64_t>(phase.size()); }
  int64_t size() const { return tz_n * rows * phases() * width; }  // per channel
};

Band band_shape(const SubConv& s, const std::vector<Segment>& tiles, int nr) {
  const SubAxis &ay = s.axes[1], &ax = s.axes[2];
  const auto [oy_min, oy_max] = std::minmax_element(ay.tap_offset.begin(), ay.tap_offset.end());
  Band b;
  b.tz_n = static_cast<int64_t>(s.axes[0].tap_offset.size());
  b.y0 = tiles.front().jy * ay.src_step + *oy_min;
  b.rows = (tiles.back().jy - tiles.front().jy) * ay.src_step + (*oy_max - *oy_min) + 1;
  const int64_t step = ax.src_step;
  int64_t q_min = 0, q_max = 0;
  for (size_t t = 0; t < ax.tap_offset.size(); ++t) {
    const int64_t q = floor_div(ax.tap_offset[t], step);
    const int64_t ph = ax.tap_offset[t] - q * step;
    auto it = std::find(b.phase.begin(), b.phase.end(), ph);
    if (it == b.phase.end()) it = b.phase.insert(b.phase.end(), ph);
    b.tap_plane.push_back(it - b.phase.begin());
    b.tap_shift.push_back(q);
    q_min = t == 0 ? q : std::min(q_min, q);
    q_max = t == 0 ? q : std::max(q_max, q);
  }
  int64_t first = tiles.front().jx0, last = first;
  for (const Segment& t : tiles) {
    first = std::min(first, t.jx0);
    last = std::max(last, t.jx0);
  }
  b.x0 = first + q_min;
  b.width = last + q_max + nr - b.x0;
  return b;
}

template <typename T>
void fill_band(const SubConv& s, const T* src, int64_t group, const Segment& first,
               const Band& b, T* band) {
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const SubAxis& az = s.axes[0];
  const int64_t step = s.axes[2].src_step;
  const T* src_n = src + (first.n * s.src_channels + group * s.Kc) * plane;
  for (int64_t c = 0; c < s.Kc; ++c) {
    for (int64_t tz = 0; tz < b.tz_n; ++tz) {
      const int64_t z = first.jz * az.src_step + az.tap_offset[static_cast<size_t>(tz)];
      for (int64_t r = 0; r < b.rows; ++r) {
        const int64_t y = b.y0 + r;
        const bool row_valid = z >= 0 && z < sz && y >= 0 && y < sy;
        const T* in = src_n + (c * sz + z) * sy * sx + y * sx;
        for (int64_t p = 0; p < b.phases(); ++p) {
          T* out = band + (((c * b.tz_n + tz) * b.rows + r) * b.phases() + p) * b.width;
          const int64_t ph = b.phase[static_cast<size_t>(p)];
          // valid u: 0 <= (u + x0) * step + ph < sx
          int64_t lo = 0, hi = 0;
          if (row_valid && ph < sx) {
            lo = std::max<int64_t>(0, -b.x0 + ceil_div(std::max<int64_t>(0, -ph), step));
            hi = std::min<int64_t>(b.width, ceil_div(sx - ph, step) - b.x0);
            hi = std::max(hi, lo);
          }
          for (int64_t u = 0; u < lo; ++u) out[u] = T(0);
          const T* from = in + b.x0 * step + ph;
          if (step == 1) {
            for (int64_t u = lo; u < hi; ++u) out[u] = from[u];
          } else {
            for (int64_t u = lo; u < hi; ++u) out[u] = from[u * step];
          }
          for (int64_t u = hi; u < b.width; ++u) out[u] = T(0);
        }
      }
    }
  }
}

template <typename T>
void band_rows(const SubConv& s, const std::vector<Segment>& tiles, const std::vector<KRow>& rows,
               const Band& b, const T* band, const T** ptrs) {
  const SubAxis& ay = s.axes[1];
  for (const Segment& tile : tiles) {
    for (const KRow& row : rows) {
      const int64_t y = tile.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(row.ty)];
      const auto tx = static_cast<size_t>(row.tx);
      const int64_t u = tile.jx0 + b.tap_shift[tx] - b.x0;
      *ptrs++ = band +
                (((row.channel * b.tz_n + row.tz) * b.rows + (y - b.y0)) * b.phases() +
                 b.tap_plane[tx]) * b.width + u;
    }
  }
}

// Copy a tile's kc rows (nr elements each) into one contiguous B panel: the rows of a tile
// come from channel planes a power-of-two stride apart that alias in L1, so when several
// A panels reuse them, one copy into a packed panel is far cheaper than re-reading them.
template <typename T, int NR>
void copy_rows_fixed(const T* const* rows, int64_t kc, T* panel) {
  for (int64_t k = 0; k < kc; ++k, panel += NR) {
    const T* r = rows[k];
#pragma GCC unroll 32
    for (int u = 0; u < NR; ++u) panel[u] = r[u];
  }
}

template <typename T>
void copy_rows(const T* const* rows, int64_t kc, int nr, T* panel) {
  switch (nr) {
    case 8: copy_rows_fixed<T, 8>(rows, kc, panel); break;
    case 16: copy_rows_fixed<T, 16>(rows, kc, panel); break;
    case 32: copy_rows_fixed<T, 32>(rows, kc, panel); break;
    default:
      for (int64_t k = 0; k < kc; ++k)
        for (int u = 0; u < nr; ++u) panel[k * nr + u] = rows[k][u];
  }
}

template <typename T>
void store_tile(const SubConv& s, T* dst, const T* bias, int64_t group, int64_t m0, int64_t mc,
                const std::vector<Segment>& segs, const T* acc, int64_t ldc) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t dz = s.dst_dims[0], dy = s.dst_dims[1], dx = s.dst_dims[2];
  const int64_t plane = dz * dy * dx;
  for (const Segment& seg : segs) {
    const int64_t z = seg.jz * az.dst_step + az.dst_base;
    const int64_t y = seg.jy * ay.dst_step + ay.dst_base;
    T* base = dst + (seg.n * s.dst_channels + group * s.M + m0) * plane + (z * dy + y) * dx +
              seg.jx0 * ax.dst_step + ax.dst_base;
    for (int64_t m = 0; m < mc; ++m) {
      const T b = bias ? bias[group * s.M + m0 + m] : T(0);
      const T* a = acc + m * ldc + seg.t0;
      T* d = base + m * plane;
      if (ax.dst_step == 1) {
        for (int64_t u = 0; u < seg.len; ++u) d[u] = a[u] + b;
      } else {
        for (int64_t u = 0; u < seg.len; ++u) d[u * ax.dst_step] = a[u] + b;
      }
    }
  }
}

}  // namespace

template <typename T>
void run_subconvs(const std::vector<SubConv>& subs, const T* src, const T* w, const T* bias,
                  T* dst) {
  const GemmKernels<T>& uk = active_gemm<T>();
  const int mr = uk.mr, nr = uk.nr;
  const int threads = omp_get_max_threads();
  const int64_t kc_max = k_block<T>();
  // Channel block: the whole M up to ~128 rows (A block mc x kc stays in L2).
  // Pixel block: up to ~192 columns, shrunk until there are >= 4 tasks per thread.
  std::vector<std::vector<Task>> per_sub(subs.size());
  std::vector<int64_t> mc_of(subs.size()), nc_of(subs.size());
  std::vector<char> direct_of(subs.size(), 0);
  double flops = 0;
  for (size_t si = 0; si < subs.size(); ++si) {
    const SubConv& s = subs[si];
    const int64_t n_total = s.batch * s.pixels();
    if (n_total == 0 || s.M == 0) continue;
    flops += 2.0 * double(s.M) * double(n_total) * double(s.Kc * s.taps()) * double(s.groups);
  }
  int64_t total_pixels = 0;
  for (const SubConv& s : subs) total_pixels += s.batch * s.pixels() * s.groups;
  for (size_t si = 0; si < subs.size(); ++si) {
    const SubConv& s = subs[si];
    const int64_t n_total = s.batch * s.pixels();
    if (n_total == 0 || s.M == 0) continue;
    // Channel block: up to ~128 rows, fewer when that keeps the block's packed A (mc x K)
    // small enough to be cached across tasks (kMaxCachedA).
    const int64_t k_len = std::max<int64_t>(1, s.Kc * s.taps());
    const int64_t mc_cached =
        std::max<int64_t>(mr, kMaxCachedA / (k_len * static_cast<int64_t>(sizeof(T))) / mr * mr);
    const int64_t m_blocks =
        ceil_div(s.M, std::min(round_up(std::min<int64_t>(s.M, 128), mr), mc_cached));
    const int64_t mc = round_up(ceil_div(s.M, m_blocks), mr);
    // share of the tasks this sub-convolution should provide
    const double share = double(s.batch * s.pixels() * s.groups) / double(total_pixels);
    const double want = 4.0 * threads * share;
    const int64_t width = s.axes[2].extent;
    // strided sources (gather) take the direct path only through a de-interleaved band
    const bool direct = double(width) >= 0.6 * double(round_up(width, nr));
    int64_t nc;
    int64_t cols = width;  // direct path: columns of one row per task (< width: row chunks)
    if (direct) {  // whole rows of the grid, about 192 columns; long rows cut into chunks
      int64_t rows_per_task = std::max<int64_t>(1, 192 / round_up(width, nr));
      while (rows_per_task > 1 &&
             double(s.groups * m_blocks * ceil_div(n_total, rows_per_task * width)) < want)
        --rows_per_task;
      if (width > kMaxRowChunk) cols = round_up(ceil_div(width, ceil_div(width, kMaxRowChunk)), nr);
      nc = rows_per_task * cols;
    } else {
      nc = round_up(std::min<int64_t>(n_total, 192), nr);
      while (nc > nr && double(s.groups * m_blocks * ceil_div(n_total, nc)) < want) nc -= nr;
    }
    direct_of[si] = direct;
    mc_of[si] = mc;
    nc_of[si] = nc;
    const int64_t rows = nc / cols;
    for (int64_t g = 0; g < s.groups; ++g)
      for (int64_t m0 = 0; m0 < s.M; m0 += mc) {
        if (direct) {  // row blocks never cross a (n, jz) plane: see Band
          const int64_t jy_n = s.axes[1].extent;
          for (int64_t plane = 0; plane < s.batch * s.axes[0].extent; ++plane)
            for (int64_t jy0 = 0; jy0 < jy_n; jy0 += rows)
              for (int64_t jx0 = 0; jx0 < width; jx0 += cols)  // cols < width: rows == 1
                per_sub[si].push_back({static_cast<int64_t>(si), g, m0,
                                       (plane * jy_n + jy0) * width + jx0,
                                       cols < width ? std::min(cols, width - jx0)
                                                    : std::min(rows, jy_n - jy0) * width});
        } else {
          for (int64_t q0 = 0; q0 < n_total; q0 += nc)
            per_sub[si].push_back(
                {static_cast<int64_t>(si), g, m0, q0, std::min(nc, n_total - q0)});
        }
      }
  }
  // Rounds: the i-th task of every sub-convolution (phase) together.  They write the same
  // region of the output (phase rho of grid point j lands at j*s + rho), so one thread runs a
  // round back to back and every output cache line is completed while it is in cache, instead
  // of being fetched once per phase.
  std::vector<Task> tasks;
  std::vector<int64_t> round_start{0};
  for (size_t i = 0;; ++i) {
    bool any = false;
    for (const std::vector<Task>& list : per_sub) {
      if (i < list.size()) {
        tasks.push_back(list[i]);
        any = true;
      }
    }
    if (!any) break;
    round_start.push_back(static_cast<int64_t>(tasks.size()));
  }
  const auto round_count = static_cast<int64_t>(round_start.size()) - 1;
  const bool parallel = threads > 1 && round_count > 1 && flops > 2e5;

#pragma omp parallel if (parallel)
  {
    Scratch<T> b_buf, c_buf, band_buf;
    Scratch<const T*> ptr_buf;
    // Per sub-convolution: packed A of the last (group, m0) this thread ran, all K blocks,
    // kept when <= kMaxCachedA: the next round reuses it (only the pixel block changes).
    std::vector<Scratch<T>> a_bufs(subs.size());
    std::vector<std::array<int64_t, 2>> a_keys(subs.size(), {-1, -1});
    std::vector<Segment> segs, tiles;
    std::vector<KRow> rows;
    std::vector<int64_t> tap_code;
    const std::vector<T> zeros(static_cast<size_t>(nr), T(0));
#pragma omp for schedule(dynamic, 1)
    for (int64_t round = 0; round < round_count; ++round)
    for (int64_t ti = round_start[static_cast<size_t>(round)];
         ti < round_start[static_cast<size_t>(round) + 1]; ++ti) {
      const Task& task = tasks[static_cast<size_t>(ti)];
      const SubConv& s = subs[static_cast<size_t>(task.sub)];
      const int64_t mc = std::min(mc_of[static_cast<size_t>(task.sub)], s.M - task.m0);
      const int64_t nc = task.nc;
      bool direct = direct_of[static_cast<size_t>(task.sub)] != 0;
      const int64_t k_total = s.Kc * s.taps();
      row_segments(s, task.q0, nc, segs);
      if (direct) row_tiles(segs, nr, tiles);
      Band band;
      const T* band_data = nullptr;
      bool use_band = false;
      if (direct && !tiles.empty() && k_total > 0) {
        band = band_shape(s, tiles, nr);
        use_band = s.Kc * band.size() * static_cast<int64_t>(sizeof(T)) <= kMaxBandBytes;
        if (use_band) {
          T* data = band_buf.get(s.Kc * band.size());
          fill_band(s, src, task.group, tiles.front(), band, data);
          band_data = data;
        }
      }
      if (direct && !use_band && s.axes[2].src_step != 1) direct = false;  // packed path
      const int64_t ncp = direct ? static_cast<int64_t>(tiles.size()) * nr : round_up(nc, nr);
      T* acc = c_buf.get(mc * ncp);
      if (k_total == 0) std::fill(acc, acc + mc * ncp, T(0));
      const bool cache_a = mc * k_total * static_cast<int64_t>(sizeof(T)) <= kMaxCachedA;
      std::array<int64_t, 2>& a_key = a_keys[static_cast<size_t>(task.sub)];
      const bool a_ready = cache_a && a_key[0] == task.group && a_key[1] == task.m0;
      T* a_all = a_bufs[static_cast<size_t>(task.sub)].get(cache_a ? mc * k_total : mc * kc_max);
      a_key = cache_a ? std::array<int64_t, 2>{task.group, task.m0}
                      : std::array<int64_t, 2>{-1, -1};
      for (int64_t k0 = 0; k0 < k_total; k0 += kc_max) {
        const int64_t kc = std::min(kc_max, k_total - k0);
        k_rows(s, k0, kc, rows);
        T* ap = cache_a ? a_all + mc * k0 : a_all;
        T* bp = b_buf.get(kc * ncp + kc * nr);
        if (!a_ready) pack_a(s, w, task.group, task.m0, mc, rows, mr, ap);
        const int accumulate = k0 > 0 ? 1 : 0;
        if (direct) {
          const T** ptrs = ptr_buf.get(kc * static_cast<int64_t>(tiles.size()));
          if (use_band) {
            band_rows(s, tiles, rows, band, band_data, ptrs);
          } else {
            indirect_rows(s, src, task.group, tiles, rows, nr, zeros.data(), bp + kc * nr, ptrs,
                          tap_code);
          }
          T* panel = bp;  // the border rows live after the last tile's panel (see below)
          for (size_t ti2 = 0; ti2 < tiles.size(); ++ti2) {
            const T* const* tile_rows = ptrs + static_cast<int64_t>(ti2) * kc;
            const int64_t j0 = static_cast<int64_t>(ti2) * nr;
            if (mc > mr) {  // several A panels reuse this B panel: pack it once
              copy_rows(tile_rows, kc, nr, panel);
              for (int64_t i0 = 0; i0 < mc; i0 += mr) {
                const int64_t r = std::min<int64_t>(mr, mc - i0);
                uk.fn[r](kc, ap + i0 * kc, panel, acc + i0 * ncp + j0, ncp, accumulate);
              }
            } else {
              uk.ifn[mc](kc, ap, tile_rows, acc + j0, ncp, accumulate);
            }
          }
          continue;
        }
        pack_b(s, src, task.group, segs, rows, nc, nr, bp, tap_code);
        for (int64_t j0 = 0; j0 < ncp; j0 += nr) {
          const T* b = bp + j0 * kc;
          for (int64_t i0 = 0; i0 < mc; i0 += mr) {
            const int64_t r = std::min<int64_t>(mr, mc - i0);
            uk.fn[r](kc, ap + i0 * kc, b, acc + i0 * ncp + j0, ncp, accumulate);
          }
        }
      }
      store_tile(s, dst, bias, task.group, task.m0, mc, direct ? tiles : segs, acc, ncp);
    }
  }
}

template void run_subconvs<float>(const std::vector<SubConv>&, const float*, const float*,
                                  const float*, float*);
template void run_subconvs<double>(const std::vector<SubConv>&, const double*, const double*,
                                   const double*, double*);

}  // namespace tconv
