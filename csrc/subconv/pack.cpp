// Weight packing (A panels, shared by the threads) and the packed input: B panels of a
// task's source pixels, im2col with zeros (the path for rows too short for tiles of nr).
#include <algorithm>
#include <climits>
#include <type_traits>

#include "subconv/internal.hpp"
#include "tconv/clones.hpp"
#include "tconv/copy.hpp"

// The packed input has an AVX-512 clone for float (tconv/clones.hpp).  Its rows read at a
// step of 2 (every strided gather: grad_input of a stride-2 layer) are de-interleaved with one
// masked load (two for 16 values) and one permute, instead of two loads and a shuffle per 4
// values.
#ifdef TCONV_CLONE_AVX512
#include <immintrin.h>
#endif

namespace tconv::detail {

namespace {

// Channels a piece's taps are copied for at a time (pack_piece, pack_shifted_avx512) when
// their channel planes are a multiple of kAliasBytes apart, so that one tap's rows of every
// channel share an L1 set: as many as such a set has ways (8 on the x86 cores tconv
// targets), so a channel's lines stay in L1 for its next taps (3-D U-Net forward: 16 KiB
// planes, 123 -> 164 GF/s).  Other strides: all channels at once (DCGAN 128->64's forward,
// 1 KiB planes, was 2-4 % slower in blocks).
constexpr int64_t kPackChannels = 8;
constexpr int64_t kAliasBytes = 4096;

inline int64_t pack_channel_block(int64_t plane_bytes) {
  return plane_bytes % kAliasBytes == 0 ? kPackChannels : INT64_MAX / 2;
}

#ifdef TCONV_CLONE_AVX512
// to[u] = from[2 * u] for u < LEN <= 16, reading only from[0 .. 2 * LEN - 2]: the loads are
// masked to those values (masked-off lanes never fault) and the evens gathered by a permute.
template <int LEN>
TCONV_TARGET_AVX512 inline void copy_even_avx512(const float* from, float* to) {
  static_assert(LEN >= 1 && LEN <= 16, "one vector of output");
  constexpr int reads = 2 * LEN - 1;  // values read
  alignas(64) int32_t index[16];  // lane u of the permute takes value 2u (constant-folded)
  for (int u = 0; u < 16; ++u) index[u] = 2 * u;
  const __m512i evens = _mm512_load_si512(index);
  __m512 e;
  if constexpr (reads <= 16) {
    // (the maskz forms: gcc 12 warns that the plain ones read an undefined vector)
    const __m512 v = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << reads) - 1), from);
    e = _mm512_maskz_permutexvar_ps(static_cast<__mmask16>(-1), evens, v);
  } else {
    e = _mm512_permutex2var_ps(
        _mm512_loadu_ps(from), evens,
        _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << (reads - 16)) - 1), from + 16));
  }
  if constexpr (LEN == 16) {
    _mm512_storeu_ps(to, e);
  } else {
    _mm512_mask_storeu_ps(to, static_cast<__mmask16>((1u << LEN) - 1), e);
  }
}
#endif

#ifdef TCONV_CLONE_AVX512
// A row of len <= 16 columns of which [lo, hi) read the source at a step of 1 or 2 from p (the
// others are zero): rows of a run-time length (odd grid widths, a border on both sides) as one
// or two masked loads, a permute for step 2, and one masked store, instead of a loop a value.
// Lanes outside [lo, hi) are masked off: they read nothing, so the address of lane 0 (before
// p when lo > 0) is formed as an integer.
TCONV_TARGET_AVX512 inline void copy_masked_avx512(const float* p, int64_t step, int64_t lo,
                                                   int64_t hi, int64_t len, float* d) {
  const auto lanes = [](int64_t n) {  // the first n lanes, n in [0, 16]
    return static_cast<__mmask16>(n >= 16 ? 0xffffu : (1u << n) - 1u);
  };
  const __mmask16 keep = static_cast<__mmask16>(lanes(hi) & ~lanes(lo));
  const uintptr_t base = reinterpret_cast<uintptr_t>(p) -
                         static_cast<uintptr_t>(lo * step * int64_t(sizeof(float)));
  __m512 v;
  if (step == 1) {
    v = _mm512_maskz_loadu_ps(keep, reinterpret_cast<const float*>(base));
  } else {
    // source lane 2u for u in [lo, hi): lanes 2lo .. 2hi - 2 of the two 16-lane halves
    alignas(64) int32_t index[16];
    for (int u = 0; u < 16; ++u) index[u] = 2 * u;
    const uint32_t src = static_cast<uint32_t>(
        (((uint64_t(1) << (2 * hi - 1)) - 1) & ~((uint64_t(1) << (2 * lo)) - 1)));
    const __m512 a = _mm512_maskz_loadu_ps(static_cast<__mmask16>(src & 0xffffu),
                                           reinterpret_cast<const float*>(base));
    const __m512 b = _mm512_maskz_loadu_ps(static_cast<__mmask16>(src >> 16),
                                           reinterpret_cast<const float*>(base) + 16);
    v = _mm512_maskz_permutex2var_ps(keep, a, _mm512_load_si512(index), b);
  }
  _mm512_mask_storeu_ps(d, lanes(len), v);
}
#endif

#ifdef TCONV_CLONE_AVX512
// Whole grid planes of kPlaneGrid points packed by permutes (the AVX-512 float clone): when
// one image's grid has exactly kPlaneGrid points and its source plane at most
// kPlaneSourceMax values (DCGAN 512->256 grad_input: a 4x4 grid read from an 8x8 plane at
// step 2; per-row pieces of 4 were a third of the micro-kernel's time), the grid plane fills
// one vector of a B row.  Each tap is a table of kPlaneGrid source indices (and which of
// them lie inside the source); per channel the plane is loaded once into four registers and
// every tap's row is two two-source permutes, a blend and a zero mask.  Same values as the
// per-piece copies.
constexpr int64_t kPlaneGrid = 16;
constexpr int64_t kPlaneSourceMax = 64;

struct PlaneTap {
  alignas(64) int32_t index[kPlaneGrid];  // source offset of each grid point (0 if outside)
  __mmask16 valid, high;                  // inside the source; offset >= 32
};

// Whether s's grid planes are packed by pack_planes_avx512 (nr: a multiple of kPlaneGrid).
inline bool plane_packing_suits(const SubConv& s, int nr) {
  return s.pixels() == kPlaneGrid && nr % kPlaneGrid == 0 &&
         s.src_dims[0] * s.src_dims[1] * s.src_dims[2] <= kPlaneSourceMax;
}

// The index table of each tap (in the order of pack_b's PackTap list).
inline void plane_taps(const SubConv& s, std::vector<PlaneTap>& out) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  out.resize(static_cast<size_t>(s.taps()));
  for (int64_t tp = 0; tp < s.taps(); ++tp) {
    const auto [tz, ty, tx] = s.tap_axes(tp);
    const int64_t dx = ax.tap_offset[static_cast<size_t>(tx)];
    const int64_t dy = ay.tap_offset[static_cast<size_t>(ty)];
    const int64_t dz = az.tap_offset[static_cast<size_t>(tz)];
    PlaneTap& pt = out[static_cast<size_t>(tp)];
    pt.valid = pt.high = 0;
    for (int64_t u = 0; u < kPlaneGrid; ++u) {
      const int64_t jx = u % ax.extent, jy = (u / ax.extent) % ay.extent,
                    jz = u / (ax.extent * ay.extent);
      const int64_t z = jz * az.src_step + dz, y = jy * ay.src_step + dy,
                    x = jx * ax.src_step + dx;
      const bool in = z >= 0 && z < sz && y >= 0 && y < sy && x >= 0 && x < sx;
      const int64_t off = in ? (z * sy + y) * sx + x : 0;
      pt.index[u] = static_cast<int32_t>(off);
      if (in) pt.valid = static_cast<__mmask16>(pt.valid | (1u << u));
      if (off >= 32) pt.high = static_cast<__mmask16>(pt.high | (1u << u));
    }
  }
}

// One grid plane (kPlaneGrid columns at dst, panel rows nr apart): channels [0, channels) of
// the K block, channel c's plane at src_c + c * plane (plane <= kPlaneSourceMax values).
TCONV_TARGET_AVX512 inline void pack_plane_avx512(const float* src_c, int64_t plane,
                                                  int64_t channels,
                                                  const std::vector<PackTap>& taps,
                                                  const std::vector<PlaneTap>& ptaps,
                                                  int64_t tap_n, int nr, float* dst) {
  __mmask16 load_mask[4];
  for (int r = 0; r < 4; ++r) {
    const int64_t left = std::clamp<int64_t>(plane - 16 * r, 0, 16);
    load_mask[r] = static_cast<__mmask16>((1u << left) - 1);
  }
  for (int64_t c = 0; c < channels; ++c) {
    const float* p = src_c + c * plane;
    const __m512 v0 = _mm512_maskz_loadu_ps(load_mask[0], p);
    const __m512 v1 = _mm512_maskz_loadu_ps(load_mask[1], p + 16);
    const __m512 v2 = _mm512_maskz_loadu_ps(load_mask[2], p + 32);
    const __m512 v3 = _mm512_maskz_loadu_ps(load_mask[3], p + 48);
    for (size_t t = 0; t < taps.size(); ++t) {
      const PackTap& tp = taps[t];
      const int64_t i = c - tp.channel;  // row of this tap for channel c
      if (i < 0 || i >= tp.n) continue;
      const PlaneTap& pt = ptaps[t];
      const __m512i idx = _mm512_load_si512(pt.index);
      const __m512 lo = _mm512_permutex2var_ps(v0, idx, v1);
      const __m512 hi = _mm512_permutex2var_ps(v2, idx, v3);
      const __m512 v = _mm512_maskz_mov_ps(pt.valid, _mm512_mask_blend_ps(pt.high, lo, hi));
      _mm512_storeu_ps(dst + (tp.k + i * tap_n) * nr, v);
    }
  }
}
#endif

#ifdef TCONV_CLONE_AVX512
// Grids that are their source planes, packed by masked loads (the AVX-512 float clone): when
// every axis reads its source at step 1 and the grid's rows and planes are the source's
// (J_y = S_y and J_x = S_x: the forward's phases of a layer whose output is stride x its
// input, DCGAN's k4 s2 p1), grid point q of an image reads source value q + offset(tap), with
// offset = (dz * S_y + dy) * S_x + dx.  So a run of B columns that are consecutive points of
// one image is one unaligned load from the channel's plane per B row, masked to the points
// whose tap lies inside the source (masked-off lanes read nothing and are zero): no per-row
// pieces, no edge cases (DCGAN 256->128's grids have 8-point rows).  The columns go
// kShiftLanes at a time (one B panel: nr a multiple): in the grid's own order such a group is
// one run (grids of a multiple of kShiftLanes points, tasks starting on a group), in the
// border-sorted order it can hold a few (DCGAN 256->128's border boxes: one 8-point row of
// each image), merged by masked loads.  Same values as the per-row pieces.
constexpr int64_t kShiftLanes = 16;

// Whether s's grids suit pack_shifted_avx512.
inline bool shifted_grids(const SubConv& s, int nr) {
  if (nr % kShiftLanes != 0 || s.pixels() % kShiftLanes != 0) return false;
  for (const SubAxis& a : s.axes)
    if (a.src_step != 1) return false;
  if (s.axes[1].extent != s.src_dims[1] || s.axes[2].extent != s.src_dims[2]) return false;
  // lane coordinates and source sizes are compared as 32-bit integers
  return s.pixels() <= INT32_MAX / 2 &&
         s.src_dims[0] * s.src_dims[1] * s.src_dims[2] <= INT32_MAX / 2;
}

// The lanes of a group that read consecutive source values: lane u reads the float at byte
// address base + 4 u, plus its tap's offset and its channel's plane.
struct ShiftRun {
  __mmask16 lanes;
  uintptr_t base;
};

// The lanes inside the source for a tap at offset d of coordinates j (an unsigned compare).
TCONV_TARGET_AVX512 inline __mmask16 lanes_inside(__m512i j, int64_t d, int64_t size) {
  return _mm512_cmplt_epu32_mask(_mm512_add_epi32(j, _mm512_set1_epi32(static_cast<int32_t>(d))),
                                 _mm512_set1_epi32(static_cast<int32_t>(size)));
}

// The group of columns t0 .. t0 + lanes - 1: its lanes' grid coordinates (lane_z/y/x; lanes
// past `lanes` read nothing) and its runs (returns their count), the segment cursor (si, at)
// moved past it.  `image(n)`: the byte address of channel c0's plane of image n.
template <typename Image>
inline int shift_group(const SubConv& s, const std::vector<Segment>& segs, int64_t lanes,
                       const Image& image, size_t& si, int64_t& at, int32_t* lane_z,
                       int32_t* lane_y, int32_t* lane_x, ShiftRun* runs) {
  const int64_t sy = s.src_dims[1], sx = s.src_dims[2];
  int count = 0;
  int64_t prev_n = -1, prev_q = 0;
  for (int64_t u = 0; u < kShiftLanes; ++u) {
    lane_z[u] = lane_y[u] = lane_x[u] = 0;
    if (u >= lanes) continue;
    const Segment& g = segs[si];
    const int64_t jx = g.jx0 + at, q = (g.jz * sy + g.jy) * sx + jx;
    lane_z[u] = static_cast<int32_t>(g.jz);
    lane_y[u] = static_cast<int32_t>(g.jy);
    lane_x[u] = static_cast<int32_t>(jx);
    if (count == 0 || g.n != prev_n || q != prev_q + 1)  // lane u opens a run
      runs[count++] = {0, image(g.n) + static_cast<uintptr_t>((q - u) * int64_t(sizeof(float)))};
    runs[count - 1].lanes = static_cast<__mmask16>(runs[count - 1].lanes | (1u << u));
    prev_n = g.n;
    prev_q = q;
    if (++at == g.len) {
      ++si;
      at = 0;
    }
  }
  return count;
}

// B rows of one tap for channels i_lo .. i_hi - 1 of a group (mask m: its lanes inside the
// source) from its runs, `off` bytes past their bases (the tap's offset and channel i_lo's
// plane), one row every dk floats from d.
TCONV_TARGET_AVX512 inline void copy_shifted_rows(const ShiftRun* runs, int count, __mmask16 m,
                                                  uintptr_t off, uintptr_t step, int64_t rows,
                                                  int64_t dk, float* d) {
  if (m == 0) {
    for (int64_t i = 0; i < rows; ++i, d += dk) _mm512_storeu_ps(d, _mm512_setzero_ps());
    return;
  }
  // masked-off lanes may lie outside the source, so addresses are formed as integers (only
  // the unmasked lanes are read)
  if (count == 1) {
    for (int64_t i = 0; i < rows; ++i, d += dk, off += step) {
      const auto* at = reinterpret_cast<const float*>(runs[0].base + off);
      _mm512_storeu_ps(d, _mm512_maskz_loadu_ps(m, at));
    }
    return;
  }
  for (int64_t i = 0; i < rows; ++i, d += dk, off += step) {
    __m512 v = _mm512_setzero_ps();
    for (int r = 0; r < count; ++r)
      v = _mm512_mask_loadu_ps(v, static_cast<__mmask16>(m & runs[r].lanes),
                               reinterpret_cast<const float*>(runs[r].base + off));
    _mm512_storeu_ps(d, v);
  }
}

// Columns [0, nc) of the K block (channels from c0, taps as pack_b's PackTap list), their
// grid points the segments `segs` (shifted_grids).  Columns past nc in the last group are
// zero.
TCONV_TARGET_AVX512 inline void pack_shifted_avx512(const SubConv& s, const float* src,
                                                    int64_t group,
                                                    const std::vector<Segment>& segs,
                                                    int64_t c0, int64_t channels,
                                                    int64_t nc, int nr, int64_t kc,
                                                    const std::vector<PackTap>& taps,
                                                    float* bp) {
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const int64_t dk = s.taps() * nr;
  alignas(64) int32_t lane_z[kShiftLanes], lane_y[kShiftLanes], lane_x[kShiftLanes];
  ShiftRun runs[kShiftLanes];
  std::vector<__mmask16> masks(taps.size());  // per tap: the lanes of the group it reads
  const int64_t block = pack_channel_block(plane * int64_t(sizeof(float)));
  const auto image = [&](int64_t n) {
    return reinterpret_cast<uintptr_t>(src + (n * s.src_channels + group * s.Kc + c0) * plane);
  };
  const auto step = static_cast<uintptr_t>(plane * int64_t(sizeof(float)));
  size_t si = 0;
  int64_t at = 0;
  for (int64_t t0 = 0; t0 < nc; t0 += kShiftLanes) {
    const int64_t lanes = std::min(kShiftLanes, nc - t0);
    const int count = shift_group(s, segs, lanes, image, si, at, lane_z, lane_y, lane_x, runs);
    const __m512i vz = _mm512_load_si512(lane_z), vy = _mm512_load_si512(lane_y),
                  vx = _mm512_load_si512(lane_x);
    const auto in_task = static_cast<__mmask16>((1u << lanes) - 1);
    float* d0 = bp + (t0 / nr) * kc * nr + t0 % nr;
    for (size_t t = 0; t < taps.size(); ++t)
      masks[t] = static_cast<__mmask16>(in_task & lanes_inside(vz, taps[t].dz, sz) &
                                        lanes_inside(vy, taps[t].dy, sy) &
                                        lanes_inside(vx, taps[t].dx, sx));
    for (int64_t cb = 0; cb < channels; cb += block) {  // (pack_channel_block)
      for (size_t t = 0; t < taps.size(); ++t) {
        const PackTap& tp = taps[t];
        const int64_t i_lo = std::max<int64_t>(0, cb - tp.channel);
        const int64_t i_hi = std::min<int64_t>(tp.n, cb + block - tp.channel);
        if (i_lo >= i_hi) continue;
        const int64_t offset = (tp.dz * sy + tp.dy) * sx + tp.dx + (tp.channel + i_lo) * plane;
        copy_shifted_rows(runs, count, masks[t],
                          static_cast<uintptr_t>(offset * int64_t(sizeof(float))), step,
                          i_hi - i_lo, dk, d0 + tp.k * nr + i_lo * dk);
      }
    }
  }
}
#endif

// to[u] = from[u * STEP] for u < LEN (copy_fixed), by the AVX-512 clone's permutes when
// kAvx512 and it has them for this case.
template <bool kAvx512, typename T, int STEP, int LEN>
inline __attribute__((always_inline)) void copy_row(const T* from, T* to) {
#ifdef TCONV_CLONE_AVX512
  if constexpr (kAvx512 && std::is_same_v<T, float> && STEP == 2 && LEN <= 16) {
    copy_even_avx512<LEN>(from, to);
    return;
  }
#endif
  copy_fixed<T, STEP, LEN>(from, to);
}

// Where one piece reads: its image's first channel of the K block (channels `plane` apart), the
// source sizes, and the piece's source coordinates before the tap offsets (column u at x0 +
// u * step).
template <typename T>
struct PieceSource {
  const T* src_c;
  int64_t plane, sz, sy, sx, z0, y0, x0;
};


// One tap's reads for the current piece (pack_piece): where its valid columns [lo, hi) read
// (offset from the piece's first channel, before the channel's plane) and which case it is.
enum class PieceKind : int8_t { kZero, kFull, kLeftPad, kRightPad, kGeneral };
struct PieceTap {
  int64_t offset, lo, hi;
  PieceKind kind;
};

// Classifies each tap of the current piece once: the columns [lo, hi) it reads inside the
// source (0 <= x0 + u * step < sx, its z and y inside), where they start, and the kind of
// copy (LEN, STEP as in pack_piece: the fixed-length kinds need both).
template <typename T, int LEN, int STEP>
inline __attribute__((always_inline)) void classify_taps(const PieceSource<T>& ps,
                                                         const std::vector<PackTap>& taps,
                                                         std::vector<PieceTap>& reads,
                                                         int64_t len, int64_t step) {
  reads.resize(taps.size());
  for (size_t t = 0; t < taps.size(); ++t) {
    const PackTap& tp = taps[t];
    const int64_t z = ps.z0 + tp.dz, y = ps.y0 + tp.dy, x0 = ps.x0 + tp.dx;
    int64_t lo = 0, hi = 0;
    if (z >= 0 && z < ps.sz && y >= 0 && y < ps.sy) {
      lo = x0 >= 0 ? 0 : ceil_div(-x0, step);
      hi = x0 >= ps.sx ? 0 : std::min<int64_t>(len, ceil_div(ps.sx - x0, step));
    }
    PieceKind kind = PieceKind::kGeneral;
    if (lo >= hi) {
      kind = PieceKind::kZero;
    } else if (LEN > 0 && STEP > 0 && hi == len && lo <= 1) {
      kind = lo == 0 ? PieceKind::kFull : PieceKind::kLeftPad;
    } else if (LEN > 0 && STEP > 0 && lo == 0 && hi == len - 1) {
      kind = PieceKind::kRightPad;
    }
    reads[t] = {lo < hi ? (z * ps.sy + y) * ps.sx + x0 + lo * step : 0, lo, hi, kind};
  }
}

// Copies n rows of one tap (its read r): row i from p + i * plane to d + i * dk, len values
// source `step` apart, zeros where the tap reads outside.  LEN, STEP as in pack_piece.
template <bool kAvx512, typename T, int LEN, int STEP>
inline __attribute__((always_inline)) void copy_tap_rows(const PieceTap& r, const T* p,
                                                         int64_t plane, int64_t n, T* d,
                                                         int64_t dk, int64_t len,
                                                         int64_t step) {
  switch (r.kind) {
    case PieceKind::kZero:
      for (int64_t i = 0; i < n; ++i, d += dk) {
        if constexpr (LEN > 0) {
#pragma GCC unroll 32
          for (int u = 0; u < LEN; ++u) d[u] = T(0);
        } else {
          for (int64_t u = 0; u < len; ++u) d[u] = T(0);
        }
      }
      return;
    case PieceKind::kFull:
      if constexpr (LEN > 0 && STEP > 0)
        for (int64_t i = 0; i < n; ++i, p += plane, d += dk) copy_row<kAvx512, T, STEP, LEN>(p, d);
      return;
    case PieceKind::kLeftPad:  // one point over the left edge (padding 1)
      if constexpr (LEN > 0 && STEP > 0)
        for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
          d[0] = T(0);
          copy_row<kAvx512, T, STEP, LEN - 1>(p, d + 1);
        }
      return;
    case PieceKind::kRightPad:  // one point over the right edge
      if constexpr (LEN > 0 && STEP > 0)
        for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
          copy_row<kAvx512, T, STEP, LEN - 1>(p, d);
          d[LEN - 1] = T(0);
        }
      return;
    case PieceKind::kGeneral:
      break;
  }
#ifdef TCONV_CLONE_AVX512
  if constexpr (kAvx512 && std::is_same_v<T, float>) {
    if (len <= 16 && (step == 1 || step == 2)) {
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk)
        copy_masked_avx512(p, step, r.lo, r.hi, len, d);
      return;
    }
  }
#endif
  for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
    for (int64_t u = 0; u < r.lo; ++u) d[u] = T(0);
    if (step == 1) {
      for (int64_t u = r.lo; u < r.hi; ++u) d[u] = p[u - r.lo];
    } else {
      for (int64_t u = r.lo; u < r.hi; ++u) d[u] = p[(u - r.lo) * step];
    }
    for (int64_t u = r.hi; u < len; ++u) d[u] = T(0);
  }
}

// The rows of one piece.  Each tap is classified once (zero, full, one point over an edge,
// general); then, per block of channels (pack_channel_block: all of them unless their planes
// share L1 sets), tap by tap the block's rows of that tap are copied, each inner loop one kind
// of copy stepping through the channels.  LEN > 0 and STEP > 0: compile-time length and
// source step (else the run-time len and step).  `channels`: of the K block (from its first,
// ps.src_c).
template <bool kAvx512, typename T, int LEN, int STEP>
inline __attribute__((always_inline)) void pack_piece(const PieceSource<T>& ps,
                                                      const std::vector<PackTap>& taps,
                                                      std::vector<PieceTap>& reads,
                                                      int64_t channels, int64_t dk, int nr,
                                                      int64_t len_rt, int64_t step_rt, T* dst) {
  const int64_t len = LEN > 0 ? LEN : len_rt;
  const int64_t step = STEP > 0 ? STEP : step_rt;
  classify_taps<T, LEN, STEP>(ps, taps, reads, len, step);
  const int64_t block = pack_channel_block(ps.plane * int64_t(sizeof(T)));
  for (int64_t cb = 0; cb < channels; cb += block) {
    for (size_t t = 0; t < taps.size(); ++t) {
      const PackTap& tp = taps[t];
      // this tap's rows i of channels tp.channel + i in [cb, cb + block)
      const int64_t i_lo = std::max<int64_t>(0, cb - tp.channel);
      const int64_t i_hi = std::min<int64_t>(tp.n, cb + block - tp.channel);
      if (i_lo >= i_hi) continue;
      const PieceTap& r = reads[t];
      copy_tap_rows<kAvx512, T, LEN, STEP>(r, ps.src_c + (tp.channel + i_lo) * ps.plane + r.offset,
                                           ps.plane, i_hi - i_lo, dst + tp.k * nr + i_lo * dk,
                                           dk, len, step);
    }
  }
}

}  // namespace

template <typename T>
void pack_a_panels(const std::vector<SubConv>& subs, const T* w, int64_t group, int64_t m0,
                   int64_t r, const std::vector<KRows>& rows, const std::vector<T*>& panels) {
  const SubConv& s0 = subs[0];  // every sub-convolution has the same weight strides
  const T* wm = w + group * s0.w_group + m0 * s0.w_m;
  if (s0.w_m > s0.w_c) {
    // i outer: row m of W is read along its channels and taps (nearly contiguous).  Each row
    // is a short run (kc values) w_m elements from the last, too short for the hardware
    // prefetcher: the run kAheadRows rows on is fetched while this one is copied (without,
    // the copy of a large W waited on every line: docs/perf-log.md).
    constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T)), kAheadRows = 2;
    for (size_t si = 0; si < subs.size(); ++si) {
      if (panels[si] == nullptr) continue;
      const KRows& rs = rows[si];
      const auto kc = static_cast<int64_t>(rs.size());
      for (int64_t i = 0; i < r; ++i) {
        const T* wi = wm + i * s0.w_m;
        if (i + kAheadRows < r)
          for (int64_t k = 0; k < kc; k += kLine)
            __builtin_prefetch(wi + kAheadRows * s0.w_m + rs[static_cast<size_t>(k)].weight_offset);
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

namespace {

// Prefetches the source lines that segment `seg` reads for channels [c0, c0 + channels) of
// the K block: packed one segment ahead, they arrive while the current one is copied.  A
// piece's rows step through the channel planes (often a multiple of 4 KiB apart): the
// hardware prefetcher does not follow them, and the first tap to touch each line (the
// padded left-border copies of a stride-2 gather) waited for it (3-D U-Net grad_input: most
// of the packing time).  Hints only: the same values are packed.
template <typename T>
inline __attribute__((always_inline)) void prefetch_segment(const SubConv& s, const T* src,
                                                            int64_t group, int64_t c0,
                                                            int64_t channels, const Segment& seg,
                                                            int64_t dx_lo, int64_t dx_hi) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const int64_t x_first = std::max<int64_t>(0, seg.jx0 * ax.src_step + dx_lo);
  const int64_t x_last =
      std::min<int64_t>(sx - 1, (seg.jx0 + seg.len - 1) * ax.src_step + dx_hi);
  if (x_first > x_last) return;
  const T* base = src + (seg.n * s.src_channels + group * s.Kc + c0) * plane;
  for (const int64_t dz : az.tap_offset) {
    const int64_t z = seg.jz * az.src_step + dz;
    if (z < 0 || z >= sz) continue;
    for (const int64_t dy : ay.tap_offset) {
      const int64_t y = seg.jy * ay.src_step + dy;
      if (y < 0 || y >= sy) continue;
      const T* row = base + (z * sy + y) * sx;
      for (int64_t c = 0; c < channels; ++c, row += plane)
        prefetch_bytes(row + x_first, (x_last - x_first + 1) * int64_t(sizeof(T)));
    }
  }
}

// Zeroes columns [nc, round_up(nc, nr)) of the last B panel (kc rows).
template <typename T>
void zero_tail_columns(T* bp, int64_t nc, int nr, int64_t kc) {
  for (int64_t t = nc; t < round_up(nc, nr); ++t) {
    T* col = bp + (t / nr) * kc * nr + t % nr;
    for (int64_t k = 0; k < kc; ++k) col[k * nr] = T(0);
  }
}

// The taps of the K block's rows: they are consecutive k = c * taps + t (k_rows), so tap t's
// first row is (t - tap0) mod taps, its rows every taps-th after it.
inline void block_taps(const SubConv& s, KRows rows, std::vector<PackTap>& taps) {
  const auto kc = static_cast<int64_t>(rows.size());
  const int64_t tap_n = s.taps();
  const int64_t tap0 = kc > 0 ? rows.front().tap : 0;
  taps.resize(static_cast<size_t>(tap_n));
  for (int64_t tp = 0; tp < tap_n; ++tp) {
    const auto [tz, ty, tx] = s.tap_axes(tp);
    const int64_t k = (tp - tap0 + tap_n) % tap_n;
    taps[static_cast<size_t>(tp)] = {s.axes[0].tap_offset[static_cast<size_t>(tz)],
                                     s.axes[1].tap_offset[static_cast<size_t>(ty)],
                                     s.axes[2].tap_offset[static_cast<size_t>(tx)], k,
                                     k < kc ? ceil_div(kc - k, tap_n) : 0, (tap0 + k) / tap_n};
  }
}

// Packs one segment (ps.src_c: its image's first channel of the block) piece by piece, each
// piece its columns in one panel, with the pack_piece of the piece's length and source step
// where one is compiled for them.
template <bool kAvx512, typename T>
inline __attribute__((always_inline)) void pack_segment(const SubConv& s, const Segment& seg,
                                                        PieceSource<T>& ps,
                                                        const std::vector<PackTap>& taps,
                                                        std::vector<PieceTap>& reads,
                                                        int64_t channels, int64_t kc, int nr,
                                                        T* bp) {
  const int64_t step = s.axes[2].src_step, dk = s.taps() * nr;
  ps.z0 = seg.jz * s.axes[0].src_step;
  ps.y0 = seg.jy * s.axes[1].src_step;
  for (int64_t u0 = 0; u0 < seg.len;) {
    const int64_t t = seg.t0 + u0;
    const int64_t len = std::min<int64_t>(seg.len - u0, nr - t % nr);
    ps.x0 = (seg.jx0 + u0) * step;
    T* dst = bp + (t / nr) * kc * nr + t % nr;
    if (len == 4 && step == 1) {
      pack_piece<kAvx512, T, 4, 1>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else if (len == 8 && step == 1) {
      pack_piece<kAvx512, T, 8, 1>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else if (len == 16 && step == 1) {
      pack_piece<kAvx512, T, 16, 1>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else if (len == 4 && step == 2) {
      pack_piece<kAvx512, T, 4, 2>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else if (len == 8 && step == 2) {
      pack_piece<kAvx512, T, 8, 2>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else if (len == 16 && step == 2) {
      pack_piece<kAvx512, T, 16, 2>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else if (step == 1) {
      pack_piece<kAvx512, T, 0, 1>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else if (step == 2) {
      pack_piece<kAvx512, T, 0, 2>(ps, taps, reads, channels, dk, nr, len, step, dst);
    } else {
      pack_piece<kAvx512, T, 0, 0>(ps, taps, reads, channels, dk, nr, len, step, dst);
    }
    u0 += len;
  }
}

#ifdef TCONV_CLONE_AVX512
// The AVX-512 whole-plane packing of segment si (from (jz, jy, jx) = 0 over kPlaneGrid
// columns in one panel) and the grid plane's further segments: returns the index of the
// plane's last segment, or -1 (nothing packed) where segs[si] does not start one.
inline int64_t pack_plane_at(const SubConv& s, const float* src, int64_t group,
                             const std::vector<Segment>& segs, size_t si, int64_t c0,
                             int64_t channels, int64_t nc, int nr, int64_t kc,
                             const std::vector<PackTap>& taps,
                             const std::vector<PlaneTap>& ptaps, float* bp) {
  const Segment& seg = segs[si];
  if (seg.jz != 0 || seg.jy != 0 || seg.jx0 != 0 || seg.t0 % kPlaneGrid != 0 ||
      seg.t0 + kPlaneGrid > nc)
    return -1;
  const int64_t plane = s.src_dims[0] * s.src_dims[1] * s.src_dims[2];
  const auto next = si + static_cast<size_t>(s.axes[0].extent * s.axes[1].extent);
  if (next < segs.size())  // the next plane's source lines, while this one is packed
    for (int64_t c = 0; c < channels; ++c) {
      const float* p = src + (segs[next].n * s.src_channels + group * s.Kc + c0 + c) * plane;
      prefetch_bytes(p, plane * int64_t(sizeof(float)));
    }
  pack_plane_avx512(src + (seg.n * s.src_channels + group * s.Kc + c0) * plane, plane,
                    channels, taps, ptaps, s.taps(), nr,
                    bp + (seg.t0 / nr) * kc * nr + seg.t0 % nr);
  return static_cast<int64_t>(next) - 1;
}
#endif

template <bool kAvx512, typename T>
inline __attribute__((always_inline)) void pack_b_body(
    const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& segs,
    KRows rows, int64_t nc, int nr, T* bp, std::vector<PackTap>& taps, bool grid_order) {
  const int64_t kc = static_cast<int64_t>(rows.size());
  zero_tail_columns(bp, nc, nr, kc);
  block_taps(s, rows, taps);
  const SubAxis& ax = s.axes[2];
  const int64_t c0 = kc > 0 ? rows.front().channel : 0;
  PieceSource<T> ps{nullptr, 0, s.src_dims[0], s.src_dims[1], s.src_dims[2], 0, 0, 0};
  std::vector<PieceTap> reads;
  ps.plane = ps.sz * ps.sy * ps.sx;
  // x offsets of the taps (the same for every (z, y) tap): a segment reads, per channel and
  // (z, y) tap, source x in [jx0 * step + dx_lo, (jx0 + len - 1) * step + dx_hi]
  const int64_t dx_lo = *std::min_element(ax.tap_offset.begin(), ax.tap_offset.end());
  const int64_t dx_hi = *std::max_element(ax.tap_offset.begin(), ax.tap_offset.end());
  const int64_t channels = kc > 0 ? rows.back().channel - c0 + 1 : 0;
#ifdef TCONV_CLONE_AVX512
  // whole grid planes (pack_plane_at)
  bool planes = false;
  std::vector<PlaneTap> ptaps;
  if constexpr (kAvx512 && std::is_same_v<T, float>) {
    if (kc > 0 && shifted_grids(s, nr)) {
      pack_shifted_avx512(s, src, group, segs, c0, channels, nc, nr, kc, taps, bp);
      return;
    }
    planes = grid_order && plane_packing_suits(s, nr);
    if (planes) plane_taps(s, ptaps);
  }
#endif
  for (size_t si = 0; si < segs.size(); ++si) {
#ifdef TCONV_CLONE_AVX512
    if constexpr (kAvx512 && std::is_same_v<T, float>) {
      const int64_t last =
          planes ? pack_plane_at(s, src, group, segs, si, c0, channels, nc, nr, kc, taps, ptaps, bp)
                 : -1;
      if (last >= 0) {
        si = static_cast<size_t>(last);
        continue;
      }
    }
#endif
    const Segment& seg = segs[si];
    if (si + 1 < segs.size())
      prefetch_segment(s, src, group, c0, channels, segs[si + 1], dx_lo, dx_hi);
    ps.src_c = src + (seg.n * s.src_channels + group * s.Kc + c0) * ps.plane;
    pack_segment<kAvx512>(s, seg, ps, taps, reads, channels, kc, nr, bp);
  }
}

template <typename T>
void pack_b_base(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& segs,
                 KRows rows, int64_t nc, int nr, T* bp, std::vector<PackTap>& taps,
                 bool grid_order) {
  pack_b_body<false>(s, src, group, segs, rows, nc, nr, bp, taps, grid_order);
}

#ifdef TCONV_CLONE_AVX512
TCONV_CLONE_AVX512 void pack_b_avx512(const SubConv& s, const float* src, int64_t group,
                                     const std::vector<Segment>& segs, KRows rows,
                                     int64_t nc, int nr, float* bp,
                                     std::vector<PackTap>& taps, bool grid_order) {
  pack_b_body<true>(s, src, group, segs, rows, nc, nr, bp, taps, grid_order);
}
#endif

// Whether pack_b takes the AVX-512 float clone: float data on the real "avx512" table.
template <typename T>
bool avx512_clone() {
  return std::is_same_v<T, float> && clone_isa(active_kernels().name) == CloneIsa::kAvx512;
}

}  // namespace

template <typename T>
void pack_b(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& segs,
            KRows rows, int64_t nc, int nr, T* bp, std::vector<PackTap>& taps, bool grid_order) {
#ifdef TCONV_CLONE_AVX512
  if constexpr (std::is_same_v<T, float>) {
    if (avx512_clone<T>()) {
      pack_b_avx512(s, src, group, segs, rows, nc, nr, bp, taps, grid_order);
      return;
    }
  }
#endif
  pack_b_base(s, src, group, segs, rows, nc, nr, bp, taps, grid_order);
}

template void pack_a_panels<float>(const std::vector<SubConv>&, const float*, int64_t, int64_t, int64_t,
                                    const std::vector<KRows>&, const std::vector<float*>&);
template void pack_a_panels<double>(const std::vector<SubConv>&, const double*, int64_t, int64_t, int64_t,
                                    const std::vector<KRows>&, const std::vector<double*>&);
template void pack_b<float>(const SubConv&, const float*, int64_t, const std::vector<Segment>&, KRows,
                             int64_t, int, float*, std::vector<PackTap>&, bool);
template void pack_b<double>(const SubConv&, const double*, int64_t, const std::vector<Segment>&, KRows,
                             int64_t, int, double*, std::vector<PackTap>&, bool);

}  // namespace tconv::detail
