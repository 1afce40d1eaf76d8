// The sub-convolution driver (layout and formula in tconv/subconv.hpp).
//
// A (the weights) is packed once per call into panels of mr rows, shared by the threads, slab
// by slab of output channels so that the packed copy is no larger than the output.  A task
// owns a pixel block of nc columns and all rows of a slab (split only when the pixels give
// too few tasks).
// Blocking inside one task:  for each K block of kc = k_block<T>() rows:
//   B: kc x nc source pixels, packed once (im2col with zeros) or read through row pointers
//   for every block of mcb rows (L2), every nr panel of B (L1), every mr panel of A:
//     micro-kernel into the M x nc accumulator tile
// then add the bias and store the tile into dst (a strided scatter when dst_step > 1).
// mc, mcb and nc never change the summation order (only kc does), so they may depend on the
// thread count; kc does not.
#include <algorithm>
#include <array>
#include <climits>
#include <cstring>
#include <utility>

#include <omp.h>

#include "tconv/cancel.hpp"
#include "tconv/copy.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

struct Task {
  int64_t sub, group, m0, q0, nc;
};

// Longest run of one grid row that a direct-path task takes (longer rows are cut into chunks,
// so that the accumulator tile and the source band stay in L2).
constexpr int64_t kMaxRowChunk = 192;
// Most output channels for which the direct path's A panels read B rows straight from the
// band (more: each tile's rows are first copied into one packed panel).
constexpr int64_t kMaxInPlaceRows = 128;
// Largest direct-path source band (bigger bands fall back to per-row border copies).
constexpr int64_t kMaxBandBytes = int64_t(2) << 20;
// Channels ahead whose source lines fill_band prefetches.
constexpr int64_t kBandPrefetch = 2;
// Largest band of all channels filled at once when no other phase shares it (bigger: filled
// per K block, see run_subconvs).
constexpr int64_t kBandL2Bytes = int64_t(256) << 10;

// Most x phases stored together as one interleaved run (store_tile).
constexpr int kMaxXPhases = 8;

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

// Every row k = c * taps + t of the sub-convolution's K.
void k_rows(const SubConv& s, std::vector<KRow>& rows) {
  const int64_t taps = s.taps();
  rows.resize(static_cast<size_t>(s.Kc * taps));
  const auto tx_n = static_cast<int64_t>(s.axes[2].tap_kernel.size());
  const auto ty_n = static_cast<int64_t>(s.axes[1].tap_kernel.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto kk = static_cast<int64_t>(r);
    const int64_t c = kk / taps, t = kk % taps;
    const int64_t tx = t % tx_n, ty = (t / tx_n) % ty_n, tz = t / (tx_n * ty_n);
    const int64_t koff = (s.axes[0].tap_kernel[static_cast<size_t>(tz)] * s.kernel[1] +
                          s.axes[1].tap_kernel[static_cast<size_t>(ty)]) *
                             s.kernel[2] +
                         s.axes[2].tap_kernel[static_cast<size_t>(tx)];
    rows[r] = {c, t, tz, ty, tx, c * s.w_c + koff};
  }
}

// The rows k0 .. k0 + size() - 1 of one K block: a view into the rows of the whole K of a
// sub-convolution, computed once per call (k_rows) and shared by every task.
struct KRows {
  const KRow* first = nullptr;
  size_t count = 0;
  size_t size() const { return count; }
  bool empty() const { return count == 0; }
  const KRow& operator[](size_t k) const { return first[k]; }
  const KRow& front() const { return first[0]; }
  const KRow& back() const { return first[count - 1]; }
};

// The A panels of rows [m0, m0 + r) for every sub-convolution si with panels[si] != null:
// element (k, i) of its K block rows[si] at panels[si][k * r + i] (a K block's panels of a
// slab lie at i * kc from its first row, see run_subconvs).
template <typename T>
void pack_a_panels(const std::vector<SubConv>& subs, const T* w, int64_t group, int64_t m0,
                   int64_t r, const std::vector<KRows>& rows,
                   const std::vector<T*>& panels) {
  const SubConv& s0 = subs[0];  // every sub-convolution has the same weight strides
  const T* wm = w + group * s0.w_group + m0 * s0.w_m;
  if (s0.w_m > s0.w_c) {
    // i outer: row m of W is read along its channels and taps (nearly contiguous).
    for (size_t si = 0; si < subs.size(); ++si) {
      if (panels[si] == nullptr) continue;
      const KRows& rs = rows[si];
      const auto kc = static_cast<int64_t>(rs.size());
      for (int64_t i = 0; i < r; ++i) {
        const T* wi = wm + i * s0.w_m;
        for (int64_t k = 0; k < kc; ++k)
          panels[si][k * r + i] = wi[rs[static_cast<size_t>(k)].weight_offset];
      }
    }
    return;
  }
  // k outer, channel by channel across the sub-convolutions: the taps of W[c][m0..m0+r) are
  // r cache lines that every phase reads, so all phases take them while they are in L1
  // (channels lie M * taps elements apart: a few channels' lines already collide in L1).
  int64_t c_lo = INT64_MAX, c_hi = -1;
  for (size_t si = 0; si < subs.size(); ++si) {
    if (panels[si] == nullptr || rows[si].empty()) continue;
    c_lo = std::min(c_lo, rows[si].front().channel);
    c_hi = std::max(c_hi, rows[si].back().channel);
  }
  std::vector<size_t> cursor(subs.size(), 0);  // next row of each sub-convolution
  // The channels' lines are M * taps elements apart: too far for the hardware prefetcher.
  const int64_t taps_all = s0.kernel[0] * s0.kernel[1] * s0.kernel[2];
  constexpr int64_t kAhead = 4;
  for (int64_t c = c_lo; c <= c_hi; ++c) {
    if (c + kAhead <= c_hi)
      for (int64_t i = 0; i < r; ++i) {
        const T* line = wm + (c + kAhead) * s0.w_c + i * s0.w_m;
        __builtin_prefetch(line);
        __builtin_prefetch(line + taps_all - 1);
      }
    for (size_t si = 0; si < subs.size(); ++si) {
      if (panels[si] == nullptr) continue;
      const KRows& rs = rows[si];
      T* panel = panels[si];
      for (size_t& k = cursor[si]; k < rs.size() && rs[k].channel == c; ++k) {
        const T* wk = wm + rs[k].weight_offset;
        for (int64_t i = 0; i < r; ++i) panel[static_cast<int64_t>(k) * r + i] = wk[i * s0.w_m];
      }
    }
  }
}

// B panels: column t of the tile lives in panel t / nr at bp + (t / nr) * kc * nr,
// element (k, t) at [k * nr + t % nr]; columns [nc, round_up(nc, nr)) are zero.
// Segments are cut at panel boundaries into pieces; per piece each tap is classified once
// (which u < len read inside the source, and where), then its rows (one per channel) are
// copied with a length and source step that are compile-time constants in the common cases.
struct TapRead {
  int64_t offset;  // source offset (within a channel plane) of the first valid read u = lo
  int64_t lo, hi;  // valid reads u in [lo, hi); lo == hi: the row is zero
};

// Rows k < kc of one piece; row k reads tap (tap0 + k) % taps of channel (tap0 + k) / taps
// (channel 0 at src_c, channels `plane` apart).  Tap by tap, so each inner loop has one kind
// of read (full, zero or border) and just steps through the channels.
template <typename T, int LEN, int STEP>
void pack_piece(const T* src_c, int64_t plane, int64_t taps, int64_t tap0, int64_t kc,
                const TapRead* reads, int nr, T* dst) {
  const int64_t dk = taps * nr;
  for (int64_t t = 0; t < taps; ++t) {
    const int64_t k = (t - tap0 + taps) % taps;
    if (k >= kc) continue;
    const int64_t n = ceil_div(kc - k, taps);  // rows of this tap
    const TapRead& rd = reads[t];
    const T* p = src_c + (tap0 + k) / taps * plane + rd.offset;
    T* d = dst + k * nr;
    if (rd.lo == 0 && rd.hi == LEN) {
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) copy_fixed<T, STEP, LEN>(p, d);
    } else if (rd.lo == rd.hi) {
      for (int64_t i = 0; i < n; ++i, d += dk) {
#pragma GCC unroll 32
        for (int u = 0; u < LEN; ++u) d[u] = T(0);
      }
    } else if (rd.lo == 1 && rd.hi == LEN) {  // one point over the left edge (padding 1)
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
        d[0] = T(0);
        copy_fixed<T, STEP, LEN - 1>(p, d + 1);
      }
    } else if (rd.lo == 0 && rd.hi == LEN - 1) {  // one point over the right edge
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
        copy_fixed<T, STEP, LEN - 1>(p, d);
        d[LEN - 1] = T(0);
      }
    } else {
      const int64_t lo = rd.lo, hi = rd.hi;
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
#pragma GCC unroll 32
        for (int u = 0; u < LEN; ++u) d[u] = T(0);
        for (int64_t u = lo; u < hi; ++u) d[u] = p[(u - lo) * STEP];
      }
    }
  }
}

template <typename T>
void pack_piece_any(const T* src_c, int64_t plane, int64_t taps, int64_t tap0, int64_t kc,
                    const TapRead* reads, int nr, int64_t len, int64_t step, T* dst) {
  for (int64_t k = 0; k < kc; ++k, dst += nr) {
    const TapRead& rd = reads[(tap0 + k) % taps];
    const T* p = src_c + (tap0 + k) / taps * plane + rd.offset;
    for (int64_t u = 0; u < rd.lo; ++u) dst[u] = T(0);
    if (step == 1) {
      for (int64_t u = rd.lo; u < rd.hi; ++u) dst[u] = p[u - rd.lo];
    } else {
      for (int64_t u = rd.lo; u < rd.hi; ++u) dst[u] = p[(u - rd.lo) * step];
    }
    for (int64_t u = rd.hi; u < len; ++u) dst[u] = T(0);
  }
}

template <typename T>
void pack_b(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& segs,
            KRows rows, int64_t nc, int nr, T* bp,
            std::vector<TapRead>& reads) {
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
  reads.resize(static_cast<size_t>(taps));
  // the K block's rows are consecutive k = c * taps + t (k_rows)
  const int64_t tap0 = kc > 0 ? rows.front().tap : 0;
  const int64_t c0 = kc > 0 ? rows.front().channel : 0;
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
        TapRead rd{0, 0, 0};
        if (z >= 0 && z < sz && y >= 0 && y < sy) {
          // valid u: 0 <= x0 + u * step < sx
          const int64_t lo = x0 >= 0 ? 0 : ceil_div(-x0, step);
          const int64_t hi = x0 >= sx ? 0 : std::min<int64_t>(len, ceil_div(sx - x0, step));
          if (lo < hi) rd = {(z * sy + y) * sx + x0 + lo * step, lo, hi};
        }
        reads[static_cast<size_t>(tp)] = rd;
      }
      const T* src_c = src + (seg.n * s.src_channels + group * s.Kc + c0) * plane;
      T* dst = bp + (t / nr) * kc * nr + t % nr;
      const TapRead* rd = reads.data();
      if (len == 4 && step == 1) {
        pack_piece<T, 4, 1>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 8 && step == 1) {
        pack_piece<T, 8, 1>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 16 && step == 1) {
        pack_piece<T, 16, 1>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 4 && step == 2) {
        pack_piece<T, 4, 2>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 8 && step == 2) {
        pack_piece<T, 8, 2>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else {
        pack_piece_any(src_c, plane, taps, tap0, kc, rd, nr, len, step, dst);
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
                   KRows rows, int nr, const T* zeros, T* border,
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
  std::vector<int64_t> z_offset;     // source z of band z plane i: jz * step_z + z_offset[i]
  std::vector<int64_t> tz_plane;     // band z plane of each z tap
  std::vector<int64_t> phase;        // source x residue of each band plane
  std::vector<int64_t> tap_plane;    // plane index of each x tap
  std::vector<int64_t> tap_shift;    // q of each x tap
  int64_t phases() const { return static_cast<int64_t>(phase.size()); }
  int64_t size() const { return tz_n * rows * phases() * width; }  // per channel
};

// Per axis, the smallest and largest tap offset over every sub-convolution of a call whose
// sources are read with step 1 on every axis (the forward's phases).  A band shaped from these
// instead of one phase's own taps serves every phase of the same grid block, so the phases of
// a round share one band (filled once instead of once per phase).
struct OffsetHull {
  bool valid = false;
  std::array<int64_t, kMaxDims> lo{}, hi{};
};

OffsetHull offset_hull(const std::vector<SubConv>& subs) {
  OffsetHull h;
  h.valid = !subs.empty();
  for (int a = 0; a < kMaxDims; ++a) {
    h.lo[a] = INT64_MAX;
    h.hi[a] = INT64_MIN;
  }
  for (const SubConv& s : subs)
    for (int a = 0; a < kMaxDims; ++a) {
      const SubAxis& ax = s.axes[a];
      if (ax.src_step != 1 || ax.extent != subs[0].axes[a].extent) h.valid = false;
      for (const int64_t o : ax.tap_offset) {
        h.lo[a] = std::min(h.lo[a], o);
        h.hi[a] = std::max(h.hi[a], o);
      }
    }
  return h;
}

Band band_shape(const SubConv& s, const std::vector<Segment>& tiles, int nr, const OffsetHull& hull) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  Band b;
  int64_t first = tiles.front().jx0, last = first;
  for (const Segment& t : tiles) {
    first = std::min(first, t.jx0);
    last = std::max(last, t.jx0);
  }
  if (hull.valid) {  // step 1 everywhere: one x phase, z planes and rows cover the hull
    b.tz_n = hull.hi[0] - hull.lo[0] + 1;
    for (int64_t i = 0; i < b.tz_n; ++i) b.z_offset.push_back(hull.lo[0] + i);
    for (const int64_t o : az.tap_offset) b.tz_plane.push_back(o - hull.lo[0]);
    b.y0 = tiles.front().jy + hull.lo[1];
    b.rows = tiles.back().jy - tiles.front().jy + hull.hi[1] - hull.lo[1] + 1;
    b.phase = {0};
    for (const int64_t o : ax.tap_offset) {
      b.tap_plane.push_back(0);
      b.tap_shift.push_back(o);
    }
    b.x0 = first + hull.lo[2];
    b.width = last + hull.hi[2] + nr - b.x0;
    return b;
  }
  const auto [oy_min, oy_max] = std::minmax_element(ay.tap_offset.begin(), ay.tap_offset.end());
  b.tz_n = static_cast<int64_t>(az.tap_offset.size());
  b.z_offset = az.tap_offset;
  for (int64_t i = 0; i < b.tz_n; ++i) b.tz_plane.push_back(i);
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
  b.x0 = first + q_min;
  b.width = last + q_max + nr - b.x0;
  return b;
}

// Fills the band's channels [c_begin, c_end) (channel c at band + (c - c_begin) * b.size()).
template <typename T>
void fill_band(const SubConv& s, const T* src, int64_t group, const Segment& first,
               const Band& b, int64_t c_begin, int64_t c_end, T* band) {
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const SubAxis& az = s.axes[0];
  const int64_t step = s.axes[2].src_step;
  const T* src_n = src + (first.n * s.src_channels + group * s.Kc) * plane;
  // valid u of each phase ph: 0 <= (u + x0) * step + ph < sx (the same on every valid row),
  // as a range [lo, hi) within [0, width]: a band that lies wholly in the low padding (a row
  // chunk far left of the source) has its first valid u past the band's end.
  std::vector<std::pair<int64_t, int64_t>> range(static_cast<size_t>(b.phases()));
  for (int64_t p = 0; p < b.phases(); ++p) {
    const int64_t ph = b.phase[static_cast<size_t>(p)];
    int64_t lo = 0, hi = 0;
    if (ph < sx) {
      lo = std::clamp<int64_t>(-b.x0 + ceil_div(std::max<int64_t>(0, -ph), step), 0, b.width);
      hi = std::max(lo, std::min<int64_t>(b.width, ceil_div(sx - ph, step) - b.x0));
    }
    range[static_cast<size_t>(p)] = {lo, hi};
  }
  // When every residue of a step of 2, 4 or 8 has a plane, the points valid in all of them
  // are de-interleaved in one pass over the source row (deinterleave), the rest per phase.
  int64_t both_lo = 0, both_hi = 0;
  std::array<int64_t, 8> plane_of{};  // band plane of each residue
  if ((step == 2 || step == 4 || step == 8) && b.phases() == step) {
    both_hi = b.width;
    for (int64_t p = 0; p < b.phases(); ++p) {
      both_lo = std::max(both_lo, range[static_cast<size_t>(p)].first);
      both_hi = std::min(both_hi, range[static_cast<size_t>(p)].second);
      plane_of[static_cast<size_t>(b.phase[static_cast<size_t>(p)])] = p;
    }
    both_hi = std::max(both_hi, both_lo);
  }
  // With a de-interleaved middle, every valid row has the same edges: spans of zeros (reads
  // off the source row) and a few points read one by one (valid in some residues only).
  // They are listed once here, so a row costs one deinterleave and these short loops
  // instead of the per-phase range arithmetic (3-D U-Net and V-Net grad_input, whose band
  // rows are 32 values: 1.03-1.09x; float64 1.02x).
  const bool deint = both_hi > both_lo;
  std::vector<std::pair<int64_t, int64_t>> zero_spans, edge_points;  // in a band row
  std::array<int64_t, 8> deint_to{};                                 // residue's run in a row
  if (deint) {
    for (int64_t p = 0; p < b.phases(); ++p) {
      const auto [lo, hi] = range[static_cast<size_t>(p)];
      const int64_t base = p * b.width;
      const int64_t off = b.x0 * step + b.phase[static_cast<size_t>(p)];
      if (lo > 0) zero_spans.emplace_back(base, base + lo);
      if (hi < b.width) zero_spans.emplace_back(base + hi, base + b.width);
      // (band index, source offset); off + u * step >= 0 for u >= lo
      for (int64_t u = lo; u < both_lo; ++u) edge_points.emplace_back(base + u, off + u * step);
      for (int64_t u = both_hi; u < hi; ++u) edge_points.emplace_back(base + u, off + u * step);
    }
    for (int64_t ph = 0; ph < step; ++ph)
      deint_to[static_cast<size_t>(ph)] = plane_of[static_cast<size_t>(ph)] * b.width + both_lo;
  }
  const int64_t row_size = b.phases() * b.width;
  // The source lines of channel c + kBandPrefetch are prefetched while channel c is copied:
  // each channel's rows are a separate region (a plane apart) that the hardware prefetcher
  // only picks up once the copy reaches it, and large sources come from DRAM (DCGAN 64->3:
  // 17 MB of input, its band fill was a fifth of the forward's time).  Source x range the
  // band reads (every phase), clamped to the row:
  const int64_t x_lo = std::clamp<int64_t>(b.x0 * step, 0, sx);
  const int64_t x_hi = std::clamp<int64_t>((b.x0 + b.width) * step, x_lo, sx);
  const int64_t y_lo = std::clamp<int64_t>(b.y0, 0, sy);
  const int64_t y_hi = std::clamp<int64_t>(b.y0 + b.rows, y_lo, sy);
  for (int64_t c = c_begin; c < c_end; ++c) {
    if (c + kBandPrefetch < c_end && x_hi > x_lo) {
      for (int64_t tz = 0; tz < b.tz_n; ++tz) {
        const int64_t z = first.jz * az.src_step + b.z_offset[static_cast<size_t>(tz)];
        if (z < 0 || z >= sz) continue;
        for (int64_t y = y_lo; y < y_hi; ++y) {
          const T* row = src_n + ((c + kBandPrefetch) * sz + z) * sy * sx + y * sx;
          const char* q = reinterpret_cast<const char*>(row + x_lo);
          const char* e = reinterpret_cast<const char*>(row + x_hi);
          for (; q < e; q += 64) __builtin_prefetch(q);
          __builtin_prefetch(e - 1);
        }
      }
    }
    for (int64_t tz = 0; tz < b.tz_n; ++tz) {
      const int64_t z = first.jz * az.src_step + b.z_offset[static_cast<size_t>(tz)];
      for (int64_t r = 0; r < b.rows; ++r) {
        const int64_t y = b.y0 + r;
        T* out_row = band + (((c - c_begin) * b.tz_n + tz) * b.rows + r) * row_size;
        if (z < 0 || z >= sz || y < 0 || y >= sy) {
          std::fill(out_row, out_row + row_size, T(0));
          continue;
        }
        const T* in = src_n + (c * sz + z) * sy * sx + y * sx;
        if (deint) {
          for (const auto& [zb, ze] : zero_spans) std::fill(out_row + zb, out_row + ze, T(0));
          for (const auto& [di, si] : edge_points) out_row[di] = in[si];
          std::array<T*, 8> to{};
          for (int64_t ph = 0; ph < step; ++ph)
            to[static_cast<size_t>(ph)] = out_row + deint_to[static_cast<size_t>(ph)];
          const T* from = in + (b.x0 + both_lo) * step;
          if (step == 2) {
            deinterleave<T, 2>(from, to.data(), both_hi - both_lo);
          } else if (step == 4) {
            deinterleave<T, 4>(from, to.data(), both_hi - both_lo);
          } else {
            deinterleave<T, 8>(from, to.data(), both_hi - both_lo);
          }
          continue;
        }
        for (int64_t p = 0; p < b.phases(); ++p) {
          T* out = out_row + p * b.width;
          const auto [lo, hi] = range[static_cast<size_t>(p)];
          // out[u] = in[off + u * step]; off + u * step >= 0 for u >= lo (no pointer is
          // formed before the source)
          const int64_t off = b.x0 * step + b.phase[static_cast<size_t>(p)];
          std::fill(out, out + lo, T(0));
          if (step == 1) {
            std::copy(in + off + lo, in + off + hi, out + lo);
          } else {
            for (int64_t u = lo; u < hi; ++u) out[u] = in[off + u * step];
          }
          std::fill(out + hi, out + b.width, T(0));
        }
      }
    }
  }
}

// Row offsets into the band: the offset of (tile, row k) is a part that depends only on k
// (channel, z plane, y and x taps) plus one that depends only on the tile (its row and first
// column).  row_off[k] is row k's offset for the first tile (>= 0: that row lies in the band),
// tile_shift(t) what tile t adds to it (>= 0: tiles follow the first).
void band_row_offsets(const SubConv& s, const Segment& first_tile, KRows rows, const Band& b,
                      int64_t c_begin, std::vector<int64_t>& row_off) {
  // band holds channels from c_begin on (see fill_band)
  const SubAxis& ay = s.axes[1];
  const int64_t line = b.phases() * b.width;  // one band row
  const int64_t tile_part = first_tile.jy * ay.src_step * line + first_tile.jx0;
  row_off.resize(rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    const KRow& row = rows[k];
    const auto tx = static_cast<size_t>(row.tx);
    row_off[k] =
        (((row.channel - c_begin) * b.tz_n + b.tz_plane[static_cast<size_t>(row.tz)]) * b.rows +
         ay.tap_offset[static_cast<size_t>(row.ty)] - b.y0) * line +
        b.tap_plane[tx] * b.width + b.tap_shift[tx] - b.x0 + tile_part;
  }
}

int64_t tile_shift(const SubConv& s, const Band& b, const Segment& first_tile, const Segment& t) {
  return (t.jy - first_tile.jy) * s.axes[1].src_step * b.phases() * b.width + t.jx0 -
         first_tile.jx0;
}

// Copy a tile's kc rows (nr elements each) into one contiguous B panel: the rows of a tile
// come from channel planes a power-of-two stride apart that alias in L1, so when several
// A panels reuse them, one copy into a packed panel is far cheaper than re-reading them.
template <typename T>
void copy_rows(const T* const* rows, int64_t kc, int nr, T* panel) {
  copy_panel([rows](int64_t k) { return rows[k]; }, kc, nr, panel);
}

// Where a segment's first point lands in dst for output row m0 (rows are dst planes apart).
template <typename T>
T* segment_dst(const SubConv& s, T* dst, int64_t group, int64_t m0, const Segment& seg) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t dy = s.dst_dims[1], dx = s.dst_dims[2];
  const int64_t plane = s.dst_dims[0] * dy * dx;
  const int64_t z = seg.jz * az.dst_step + az.dst_base;
  const int64_t y = seg.jy * ay.dst_step + ay.dst_base;
  return dst + (seg.n * s.dst_channels + group * s.M + m0) * plane + (z * dy + y) * dx +
         seg.jx0 * ax.dst_step + ax.dst_base;
}

// Adds the bias (if any: without one the sums are stored as they are, -0 included) and writes
// the tile to its phase's places in dst.  With xs > 0, `phases` holds the tiles of the xs x
// phases 0 .. xs - 1 (x stride xs) of one grid block, s being phase 0: they are written
// together as one contiguous interleaved run, d[xs * u + r] from phases[r] (acc unused).
// With kCheck, returns nonzero when a stored value is Inf or NaN (else 0).
template <bool kCheck, typename T>
auto store_tile(const SubConv& s, T* dst, const T* bias, int64_t group, int64_t m0, int64_t mc,
                const std::vector<Segment>& segs, const T* acc, int64_t ldc,
                const T* const* phases = nullptr, int xs = 0) {
  decltype(nonfinite_bit(T(0))) bad = 0;
  const SubAxis& ax = s.axes[2];
  const int64_t plane = s.dst_dims[0] * s.dst_dims[1] * s.dst_dims[2];
  for (const Segment& seg : segs) {
    T* base = segment_dst(s, dst, group, m0, seg);
    for (int64_t m = 0; m < mc; ++m) {
      const T b = bias ? bias[group * s.M + m0 + m] : T(0);
      const T* a = xs > 0 ? nullptr : acc + m * ldc + seg.t0;
      T* d = base + m * plane;
      if (xs > 0) {
        const T* from[kMaxXPhases];
        for (int r = 0; r < xs; ++r) from[r] = phases[r] + m * ldc + seg.t0;
        if (xs == 2) {
          interleave<T, 2>(from, bias != nullptr, b, d, seg.len);
        } else if (xs == 4) {
          interleave<T, 4>(from, bias != nullptr, b, d, seg.len);
        } else {
          interleave<T, 8>(from, bias != nullptr, b, d, seg.len);
        }
        if constexpr (kCheck)  // the run just written, in L1
          for (int64_t u = 0; u < xs * seg.len; ++u) bad |= nonfinite_bit(d[u]);
      } else if (ax.dst_step == 1) {
        for (int64_t u = 0; u < seg.len; ++u) {
          const T v = bias ? a[u] + b : a[u];
          d[u] = v;
          if constexpr (kCheck) bad |= nonfinite_bit(v);
        }
      } else {
        for (int64_t u = 0; u < seg.len; ++u) {
          const T v = bias ? a[u] + b : a[u];
          d[u * ax.dst_step] = v;
          if constexpr (kCheck) bad |= nonfinite_bit(v);
        }
      }
    }
  }
  return bad;
}

}  // namespace

template <typename T>
bool run_subconvs(const std::vector<SubConv>& subs, const T* src, const T* w, const T* bias,
                  T* dst, bool check) {
  if (subs.empty()) return true;
  const GemmKernels<T>& uk = active_gemm<T>();
  // At most kWideMR output channels: the wide kernels (more pixels per tile).
  const bool wide = subs[0].M <= kWideMR && uk.wide_nr > 0;
  const int mr = wide ? kWideMR : uk.mr, nr = wide ? uk.wide_nr : uk.nr;
  const GemmUkernel<T>* fn = wide ? uk.wfn : uk.fn;
  const IgemmUkernel<T>* ifn = wide ? uk.wifn : uk.ifn;
  const OgemmUkernel<T>* ofn = wide ? uk.wofn : uk.ofn;
  const int threads = omp_get_max_threads();
  const int64_t kc_max = k_block<T>();
  // Rows of A swept per B panel: an mcb x kc block of A (256 KiB) stays in L2.
  const int64_t mcb = std::max<int64_t>(mr, (int64_t(256) << 10) / (kc_max * int64_t(sizeof(T))) / mr * mr);
  // Every sub-convolution of a call has the same M, groups and destination.
  const int64_t M = subs[0].M, groups = subs[0].groups;
  const int64_t dst_plane = subs[0].dst_dims[0] * subs[0].dst_dims[1] * subs[0].dst_dims[2];
  const int64_t dst_size = subs[0].batch * subs[0].dst_channels * dst_plane;
  double flops = 0;
  int64_t total_pixels = 0, k_sum = 0;
  for (const SubConv& s : subs) {
    const int64_t n_total = s.batch * s.pixels();
    k_sum += s.Kc * s.taps();
    if (n_total == 0 || s.M == 0) continue;
    flops += 2.0 * double(s.M) * double(n_total) * double(s.Kc * s.taps()) * double(s.groups);
    total_pixels += n_total * s.groups;
  }
  if (total_pixels == 0) return true;
  // Output channels are processed in slabs of ms rows: the weights of one slab, for every
  // sub-convolution and group, are packed once and shared by the threads, and the packed copy
  // is no larger than the output plus mr - 1 rows (the slab is a whole number of mr panels).
  const int64_t ms = std::min(
      round_up(M, mr),
      round_up(std::max<int64_t>(1, dst_size / std::max<int64_t>(1, groups * k_sum)), mr));
  const int64_t slabs = ceil_div(M, ms);
  // Packed A of one slab: a_off[si] + (g * K + k0) * ms holds K block k0 of group g, the slab's
  // rows x kc as panels of mr rows (panel at slab row i: + i * kc, element (k, i') at
  // [k * r + i'], r = min(mr, rows - i)).
  std::vector<int64_t> a_off(subs.size() + 1, 0);
  for (size_t si = 0; si < subs.size(); ++si)
    a_off[si + 1] = a_off[si] + groups * ms * subs[si].Kc * subs[si].taps();
  // Per sub-convolution: rows per task (the whole slab unless the pixels give too few tasks)
  // and pixel block; tasks listed slab by slab.
  std::vector<std::vector<std::vector<Task>>> per_slab(
      static_cast<size_t>(slabs), std::vector<std::vector<Task>>(subs.size()));
  std::vector<int64_t> mc_of(subs.size());
  std::vector<char> direct_of(subs.size(), 0);
  for (size_t si = 0; si < subs.size(); ++si) {
    const SubConv& s = subs[si];
    const int64_t n_total = s.batch * s.pixels();
    if (n_total == 0 || s.M == 0) continue;
    // share of the tasks this sub-convolution should provide
    const double share = double(n_total * s.groups) / double(total_pixels);
    const double want = 4.0 * threads * share;
    const int64_t width = s.axes[2].extent;
    // strided sources (gather) take the direct path only through a de-interleaved band
    const bool direct = double(width) >= 0.6 * double(round_up(width, nr));
    int64_t cols = width;  // direct path: columns of one row per task (< width: row chunks)
    int64_t nc, pixel_tasks;
    if (direct) {  // whole rows of the grid, about 192 columns; long rows cut into chunks
      int64_t rows_per_task = std::max<int64_t>(1, 192 / round_up(width, nr));
      while (rows_per_task > 1 &&
             double(s.groups * ceil_div(n_total, rows_per_task * width)) < want)
        --rows_per_task;
      if (width > kMaxRowChunk) cols = round_up(ceil_div(width, ceil_div(width, kMaxRowChunk)), nr);
      nc = rows_per_task * cols;
      pixel_tasks = s.batch * s.axes[0].extent * ceil_div(s.axes[1].extent, rows_per_task) *
                    ceil_div(width, cols);
    } else {
      nc = round_up(std::min<int64_t>(n_total, 192), nr);
      while (nc > nr && double(s.groups * ceil_div(n_total, nc)) < want) nc -= nr;
      pixel_tasks = ceil_div(n_total, nc);
    }
    // Split a slab's rows across tasks only when the pixels alone give too few.
    int64_t m_splits = 1;
    while (double(s.groups * pixel_tasks * m_splits) < want && ceil_div(ms, 2 * m_splits) >= mr)
      m_splits *= 2;
    const int64_t mc = round_up(ceil_div(ms, m_splits), mr);
    direct_of[si] = direct;
    mc_of[si] = mc;
    const int64_t rows = nc / cols;
    for (int64_t sl = 0; sl < slabs; ++sl) {
      std::vector<Task>& list = per_slab[static_cast<size_t>(sl)][si];
      for (int64_t g = 0; g < s.groups; ++g)
        for (int64_t m0 = sl * ms, end = std::min(M, (sl + 1) * ms); m0 < end;
             m0 += block_rows(end - m0, mc, mr)) {
          if (direct) {  // row blocks never cross a (n, jz) plane: see Band
            const int64_t jy_n = s.axes[1].extent;
            for (int64_t plane = 0; plane < s.batch * s.axes[0].extent; ++plane)
              for (int64_t jy0 = 0; jy0 < jy_n; jy0 += rows)
                for (int64_t jx0 = 0; jx0 < width; jx0 += cols)  // cols < width: rows == 1
                  list.push_back({static_cast<int64_t>(si), g, m0,
                                  (plane * jy_n + jy0) * width + jx0,
                                  cols < width ? std::min(cols, width - jx0)
                                               : std::min(rows, jy_n - jy0) * width});
          } else {
            for (int64_t q0 = 0; q0 < n_total; q0 += nc)
              list.push_back({static_cast<int64_t>(si), g, m0, q0, std::min(nc, n_total - q0)});
          }
        }
    }
  }
  // A packing units of a slab: (group, K block index, range of mr panels), each packing those
  // panels for every sub-convolution, the phases innermost: the phases of a forward read the
  // same weight cache lines (W[c][m][every tap]), which then come from L1 once per panel
  // instead of once per phase.  Panel ranges split the work when K blocks are few.
  int64_t k_blocks = 0;
  for (size_t si = 0; si < subs.size(); ++si)
    if (!per_slab[0][si].empty())
      k_blocks = std::max(k_blocks, ceil_div(subs[si].Kc * subs[si].taps(), kc_max));
  const int64_t slab_panels = ceil_div(ms, mr);
  const int64_t panel_chunks = std::min(
      slab_panels,
      std::max<int64_t>(1, ceil_div(4 * threads, std::max<int64_t>(1, groups * k_blocks))));
  const int64_t panels_per_unit = ceil_div(slab_panels, panel_chunks);
  std::vector<std::array<int64_t, 3>> a_units;  // (group, K block start, first panel)
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t kb = 0; kb < k_blocks; ++kb)
      for (int64_t p0 = 0; p0 < slab_panels; p0 += panels_per_unit)
        a_units.push_back({g, kb * kc_max, p0});
  std::vector<T> a_packed(static_cast<size_t>(a_off.back()));
  // Rounds: the i-th task of every sub-convolution (phase) of a slab together.  They write the
  // same region of the output (phase rho of grid point j lands at j*s + rho), so one thread
  // runs a round back to back and every output cache line is completed while it is in cache,
  // instead of being fetched once per phase.
  std::vector<Task> tasks;
  std::vector<int64_t> round_start{0}, slab_round{0};
  for (const std::vector<std::vector<Task>>& per_sub : per_slab) {
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
    slab_round.push_back(static_cast<int64_t>(round_start.size()) - 1);
  }
  const auto round_count = static_cast<int64_t>(round_start.size()) - 1;
  const OffsetHull hull = offset_hull(subs);
  // x-phase groups: with an x stride xs of 2, 4 or 8, sub-convolutions xs*i .. xs*i + xs - 1
  // are the x phases 0 .. xs - 1 of one (z, y) phase with the same grid: their tasks are
  // identical and adjacent in every round, and the last one stores all xs tiles as one
  // contiguous interleaved run (FCN-8s k16s8: 8 phases, each stored with a step of 8, were
  // 17 % of the forward's samples).  xs = 0: every phase stores its own tile.
  int xs = subs[0].axes[2].dst_step;
  if (xs != 2 && xs != 4 && xs != 8) xs = 0;
  if (xs > 0 && subs.size() % static_cast<size_t>(xs) != 0) xs = 0;
  for (size_t si = 0; xs > 0 && si < subs.size(); si += static_cast<size_t>(xs)) {
    const SubConv& e = subs[si];
    for (size_t r = 0; xs > 0 && r < static_cast<size_t>(xs); ++r) {
      const SubConv& o = subs[si + r];
      bool same = o.axes[2].dst_step == xs && o.axes[2].dst_base == static_cast<int64_t>(r) &&
                  per_slab[0][si].size() == per_slab[0][si + r].size() &&
                  direct_of[si] == direct_of[si + r];
      for (int a = 0; a < kMaxDims; ++a)
        same = same && e.axes[a].extent == o.axes[a].extent &&
               (a == 2 || (e.axes[a].dst_base == o.axes[a].dst_base &&
                           e.axes[a].dst_step == o.axes[a].dst_step));
      if (!same) xs = 0;
    }
  }
  // The direct path's source band is filled once per task for all channels, except when it
  // would outgrow L2 and no other phase shares it (not hull-shaped, or a single phase): then
  // once per K block with only that block's channels (1-D HiFi-GAN grad_input: 256 channels
  // x 8 phases x 146 points would be 1.2 MB, read back from L3 by every tile).
  const bool band_shared = hull.valid && subs.size() > 1;
  // The rows of every sub-convolution's whole K (channel, taps, weight offset), once per call.
  std::vector<std::vector<KRow>> all_rows(subs.size());
  for (size_t si = 0; si < subs.size(); ++si)
    k_rows(subs[si], all_rows[si]);
  const auto unit_count = static_cast<int64_t>(a_units.size());
  const bool parallel = threads > 1 && (round_count > 1 || unit_count > 1) && flops > 2e5;

  Cancellation* const cancel = current_cancellation();
  int nonfinite = 0;  // some stored value is Inf/NaN
#pragma omp parallel if (parallel) reduction(| : nonfinite)
  {
    decltype(nonfinite_bit(T(0))) bad = 0;
    Scratch<T> b_buf, c_buf, band_buf;
    std::array<Scratch<T>, kMaxXPhases - 1> c_wait;  // tiles of x phases 0 .. xs - 2
    // The key of the whole-call band that band_buf holds (band_key_valid: it holds one).
    // Every other write into band_buf (a per-K-block fill) clears band_key_valid.
    std::array<int64_t, 8> band_key{};
    bool band_key_valid = false;
    Scratch<const T*> ptr_buf;
    std::vector<Segment> segs, tiles;
    KRows rows;
    std::vector<KRows> unit_rows(subs.size());
    std::vector<T*> unit_panel(subs.size());
    std::vector<int64_t> tap_code, row_part;
    std::vector<T*> tile_dst;
    std::vector<TapRead> reads;
    const std::vector<T> zeros(static_cast<size_t>(nr), T(0));
    for (int64_t sl = 0; sl < slabs; ++sl) {
    const int64_t slab_m0 = sl * ms, slab_rows = std::min(ms, M - sl * ms);
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < unit_count; ++u) {
      if (stop(cancel)) continue;
      const auto [g, k0, p0] = a_units[static_cast<size_t>(u)];
      // this K block's rows of each sub-convolution (none: no tasks, or K ends before k0)
      for (size_t si = 0; si < subs.size(); ++si) {
        const auto k_total = static_cast<int64_t>(all_rows[si].size());
        unit_rows[si] = per_slab[0][si].empty() || k0 >= k_total
                            ? KRows{}
                            : KRows{all_rows[si].data() + k0,
                                    static_cast<size_t>(std::min(kc_max, k_total - k0))};
      }
      // the panels (cut by tile_rows from the slab's end) that start in this unit's range
      for (int64_t i0 = 0, r = 0; i0 < std::min(slab_rows, (p0 + panels_per_unit) * mr);
           i0 += r) {
        r = tile_rows(slab_rows - i0, mr);
        if (i0 < p0 * mr) continue;
        for (size_t si = 0; si < subs.size(); ++si) {
          const auto kc = static_cast<int64_t>(unit_rows[si].size());
          unit_panel[si] = kc == 0 ? nullptr
                                   : a_packed.data() + a_off[si] +
                                         (g * static_cast<int64_t>(all_rows[si].size()) + k0) * ms +
                                         i0 * kc;
        }
        pack_a_panels(subs, w, g, slab_m0 + i0, r, unit_rows, unit_panel);
      }
    }  // implicit barrier: every task below reads any of the packed blocks
#pragma omp for schedule(dynamic, 1)
    for (int64_t round = slab_round[static_cast<size_t>(sl)];
         round < slab_round[static_cast<size_t>(sl) + 1]; ++round)
    for (int64_t ti = round_start[static_cast<size_t>(round)];
         ti < round_start[static_cast<size_t>(round) + 1]; ++ti) {
      if (stop(cancel)) break;  // never a later task of the round (its x-phase store)
      const Task& task = tasks[static_cast<size_t>(ti)];
      const SubConv& s = subs[static_cast<size_t>(task.sub)];
      const int64_t mc =
          block_rows(slab_m0 + slab_rows - task.m0, mc_of[static_cast<size_t>(task.sub)], mr);
      const int64_t nc = task.nc;
      bool direct = direct_of[static_cast<size_t>(task.sub)] != 0;
      const int64_t k_total = s.Kc * s.taps();
      row_segments(s, task.q0, nc, segs);
      if (direct) row_tiles(segs, nr, tiles);
      Band band;
      const T* band_data = nullptr;
      bool use_band = false, band_per_block = false;
      if (direct && !tiles.empty() && k_total > 0) {
        band = band_shape(s, tiles, nr, hull);
        band_per_block = !band_shared &&
                         s.Kc * band.size() * static_cast<int64_t>(sizeof(T)) > kBandL2Bytes;
        const int64_t band_channels =
            band_per_block ? std::min(s.Kc, kc_max / s.taps() + 2) : s.Kc;
        use_band = band_channels * band.size() * static_cast<int64_t>(sizeof(T)) <= kMaxBandBytes;
        if (use_band && !band_per_block) {
          // A hull-shaped band depends only on the grid block: reuse this thread's last one.
          const std::array<int64_t, 8> key{task.group, tiles.front().n, tiles.front().jz,
                                           band.y0, band.rows, band.x0, band.width, band.tz_n};
          T* data = band_buf.get(s.Kc * band.size());
          if (!hull.valid || !band_key_valid || key != band_key) {
            fill_band(s, src, task.group, tiles.front(), band, 0, s.Kc, data);
            band_key = key;
            band_key_valid = hull.valid;
          }
          band_data = data;
        }
      }
      if (direct && !use_band && s.axes[2].src_step != 1) direct = false;  // packed path
      const int64_t ncp = direct ? static_cast<int64_t>(tiles.size()) * nr : round_up(nc, nr);
      // x-phase groups: the tiles of phases 0 .. xs - 2 wait in c_wait for phase xs - 1 (the
      // following tasks of the round, same grid block), which stores them all.
      const int64_t x_phase = xs > 0 ? task.sub % xs : 0;
      const bool waits = xs > 0 && x_phase < xs - 1, stores_all = xs > 0 && x_phase == xs - 1;
      T* acc = (waits ? c_wait[static_cast<size_t>(x_phase)] : c_buf).get(mc * ncp);
      if (k_total == 0) std::fill(acc, acc + mc * ncp, T(0));
      // Whole tiles of unit-stride destination rows, with no bias to add and no Inf/NaN test
      // (a second pass over the lines would cost what this saves): the micro-kernels write and
      // accumulate straight into dst (rows dst_plane apart), so the output lines are taken
      // while the task multiplies instead of all at the store (DCGAN 64->3 grad_input writes
      // 16.7 MB).  Same sums in the same order: the same bits as through store_tile.
      bool to_dst = direct && xs == 0 && k_total > 0 && s.axes[2].dst_step == 1 &&
                    bias == nullptr && !check;
      for (size_t t = 0; to_dst && t < tiles.size(); ++t) to_dst = tiles[t].len == nr;
      if (to_dst) {
        tile_dst.resize(tiles.size());
        for (size_t t = 0; t < tiles.size(); ++t)
          tile_dst[t] = segment_dst(s, dst, task.group, task.m0, tiles[t]);
      }
      const int64_t ldc = to_dst ? dst_plane : ncp;
      // the C tile of rows i0.. and tile (nr columns) t
      const auto c_at = [&](int64_t i0, int64_t t) {
        return to_dst ? tile_dst[static_cast<size_t>(t)] + i0 * dst_plane : acc + i0 * ncp + t * nr;
      };
      const T* a_group = a_packed.data() + a_off[static_cast<size_t>(task.sub)] +
                         task.group * k_total * ms;
      for (int64_t k0 = 0; k0 < k_total; k0 += kc_max) {
        if (k0 > 0 && stop(cancel)) break;
        const int64_t kc = std::min(kc_max, k_total - k0);
        rows = {all_rows[static_cast<size_t>(task.sub)].data() + k0, static_cast<size_t>(kc)};
        // panel of row m0 + i at ap + i * kc
        const T* ap = a_group + k0 * ms + (task.m0 - slab_m0) * kc;
        // B: ncp columns (+ border rows of the indirect path after them)
        T* bp = b_buf.get(2 * kc * ncp);
        const int accumulate = k0 > 0 ? 1 : 0;
        if (direct) {
          // Rows read in place by every A panel: always from the band (its channel planes
          // are not a power-of-two stride apart) unless M is large enough that one packed
          // copy per tile pays off; from the source itself only for one A panel.
          const bool in_place = mc <= mr || (use_band && mc <= kMaxInPlaceRows);
          const T** ptrs = ptr_buf.get(kc * static_cast<int64_t>(tiles.size()));
          if (use_band) {
            int64_t c_begin = 0;
            if (band_per_block) {  // this K block's channels only
              c_begin = rows.front().channel;
              const int64_t c_end = rows.back().channel + 1;
              T* data = band_buf.get((c_end - c_begin) * band.size());
              // band_buf no longer holds the band of band_key: a later task with that key
              // must fill it again (it read this K block's channels of another grid block)
              band_key_valid = false;
              fill_band(s, src, task.group, tiles.front(), band, c_begin, c_end, data);
              band_data = data;
            }
            band_row_offsets(s, tiles.front(), rows, band, c_begin, row_part);
            if (in_place) {  // one offset table for every tile
              for (size_t t = 0; t < tiles.size(); ++t) {
                const T* base = band_data + tile_shift(s, band, tiles.front(), tiles[t]);
                for (int64_t i0 = 0, r = 0; i0 < mc; i0 += r) {
                  r = tile_rows(mc - i0, mr);
                  ofn[r](kc, ap + i0 * kc, base, row_part.data(),
                         c_at(i0, static_cast<int64_t>(t)), ldc, accumulate);
                }
              }
              continue;
            }
            for (size_t t = 0; t < tiles.size(); ++t) {
              const T* base = band_data + tile_shift(s, band, tiles.front(), tiles[t]);
              const T** tile_ptrs = ptrs + static_cast<int64_t>(t) * kc;
              for (int64_t k = 0; k < kc; ++k)
                tile_ptrs[k] = base + row_part[static_cast<size_t>(k)];
            }
          } else {
            indirect_rows(s, src, task.group, tiles, rows, nr, zeros.data(), bp + kc * ncp,
                          ptrs, tap_code);
          }
          if (in_place) {
            for (size_t t = 0; t < tiles.size(); ++t)
              for (int64_t i0 = 0, r = 0; i0 < mc; i0 += r) {
                r = tile_rows(mc - i0, mr);
                ifn[r](kc, ap + i0 * kc, ptrs + static_cast<int64_t>(t) * kc,
                          c_at(i0, static_cast<int64_t>(t)), ldc, accumulate);
              }
            continue;
          }
          // Several A panels reuse each B panel: pack it once (source rows come from channel
          // planes a power-of-two stride apart that alias in L1).
          for (size_t t = 0; t < tiles.size(); ++t)
            copy_rows(ptrs + static_cast<int64_t>(t) * kc, kc, nr,
                      bp + static_cast<int64_t>(t) * kc * nr);
        } else {
          pack_b(s, src, task.group, segs, rows, nc, nr, bp, reads);
        }
        for (int64_t ib = 0, ie = 0; ib < mc; ib = ie) {
          ie = std::min(mc, ib + mcb);
          if (mc - ie < mr) ie = mc;  // a tile_rows split of the last rows stays in one block
          for (int64_t j0 = 0; j0 < ncp; j0 += nr) {
            const T* b = bp + j0 * kc;
            for (int64_t i0 = ib, r = 0; i0 < ie; i0 += r) {
              r = tile_rows(mc - i0, mr);
              fn[r](kc, ap + i0 * kc, b, c_at(i0, j0 / nr), ldc, accumulate);
            }
          }
        }
      }
      if (to_dst) {
        // stored by the micro-kernels
      } else if (stores_all) {
        const SubConv& e = subs[static_cast<size_t>(task.sub - x_phase)];
        const T* phases[kMaxXPhases];
        for (int64_t r = 0; r < x_phase; ++r) phases[r] = c_wait[static_cast<size_t>(r)].get(mc * ncp);
        phases[x_phase] = acc;
        bad |= check ? store_tile<true>(e, dst, bias, task.group, task.m0, mc,
                                        direct ? tiles : segs, acc, ncp, phases, int(xs))
                     : store_tile<false>(e, dst, bias, task.group, task.m0, mc,
                                         direct ? tiles : segs, acc, ncp, phases, int(xs));
      } else if (!waits) {
        bad |= check ? store_tile<true>(s, dst, bias, task.group, task.m0, mc,
                                        direct ? tiles : segs, acc, ncp)
                     : store_tile<false>(s, dst, bias, task.group, task.m0, mc,
                                         direct ? tiles : segs, acc, ncp);
      }
    }
    }  // slabs
    nonfinite |= bad != 0 ? 1 : 0;
  }
  return nonfinite == 0;
}

template bool run_subconvs<float>(const std::vector<SubConv>&, const float*, const float*,
                                  const float*, float*, bool);
template bool run_subconvs<double>(const std::vector<SubConv>&, const double*, const double*,
                                   const double*, double*, bool);

}  // namespace tconv
