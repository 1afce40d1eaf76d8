// Fixed-length copies for the packing routines: with LEN and STEP known at compile time the
// loop is fully unrolled and vectorised (a run-time length of a few elements would become a
// memcpy call or a scalar loop).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tconv/nonfinite.hpp"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tconv {

// to[u] = from[u * STEP] for u < LEN; reads only from[0 .. (LEN - 1) * STEP].
// STEP 2 on SSE2 (gcc builds it from scalar loads otherwise): blocks of W outputs (W = 4
// floats or 2 doubles) from two loads and a shuffle; a block would read from[2u + 2W - 1],
// one past the last read, so the final block of a run starts its loads one element earlier
// (4 floats alone: the second load starts at from[3]).
template <typename T, int STEP, int LEN>
inline void copy_fixed(const T* from, T* to) {
  int u = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float> && STEP == 2 && LEN == 4) {
    // from[0..3] and from[3..6] (overlapping): lanes 0, 2 of the first, 1, 3 of the second
    _mm_storeu_ps(to, _mm_shuffle_ps(_mm_loadu_ps(from), _mm_loadu_ps(from + 3),
                                     _MM_SHUFFLE(3, 1, 2, 0)));
    return;
  } else if constexpr (std::is_same_v<T, float> && STEP == 2 && LEN >= 8) {
    for (; u + 4 < LEN; u += 4)
      _mm_storeu_ps(to + u, _mm_shuffle_ps(_mm_loadu_ps(from + 2 * u),
                                           _mm_loadu_ps(from + 2 * u + 4),
                                           _MM_SHUFFLE(2, 0, 2, 0)));
    if (u + 4 == LEN) {
      _mm_storeu_ps(to + u, _mm_shuffle_ps(_mm_loadu_ps(from + 2 * u - 1),
                                           _mm_loadu_ps(from + 2 * u + 3),
                                           _MM_SHUFFLE(3, 1, 3, 1)));
      return;
    }
  } else if constexpr (std::is_same_v<T, double> && STEP == 2 && LEN >= 4) {
    for (; u + 2 < LEN; u += 2)
      _mm_storeu_pd(to + u, _mm_unpacklo_pd(_mm_loadu_pd(from + 2 * u),
                                            _mm_loadu_pd(from + 2 * u + 2)));
    if (u + 2 == LEN) {
      _mm_storeu_pd(to + u, _mm_unpackhi_pd(_mm_loadu_pd(from + 2 * u - 1),
                                            _mm_loadu_pd(from + 2 * u + 1)));
      return;
    }
  }
#endif
  if constexpr (STEP == 1) {
    // memcpy of a constant size: inline vector moves (a loop would stay scalar, since `to`
    // might alias `from`)
    std::memcpy(to + u, from + u, sizeof(T) * static_cast<size_t>(LEN - u));
  } else {
    T tmp[LEN];  // every load before any store, so gcc may combine them
#pragma GCC unroll 32
    for (int v = u; v < LEN; ++v) tmp[v] = from[v * STEP];
#pragma GCC unroll 32
    for (int v = u; v < LEN; ++v) to[v] = tmp[v];
  }
}

// One packed panel of kc rows of nr elements: panel[k * nr + u] = row_at(k)[u].  nr = 8, 16 or
// 32 (every micro-kernel's width) copies each row with a fixed-length copy (inline vector
// moves); the width is dispatched once per panel.
template <int NR, typename T, class RowAt>
inline void copy_panel_fixed(RowAt&& row_at, int64_t kc, T* panel) {
  for (int64_t k = 0; k < kc; ++k, panel += NR) copy_fixed<T, 1, NR>(row_at(k), panel);
}

template <typename T, class RowAt>
inline void copy_panel(RowAt&& row_at, int64_t kc, int nr, T* panel) {
  switch (nr) {
    case 8: copy_panel_fixed<8>(row_at, kc, panel); break;
    case 16: copy_panel_fixed<16>(row_at, kc, panel); break;
    case 32: copy_panel_fixed<32>(row_at, kc, panel); break;
    default:
      for (int64_t k = 0; k < kc; ++k)
        for (int u = 0; u < nr; ++u) panel[k * nr + u] = row_at(k)[u];
  }
}

// De-interleave S residues at once: to[r][u] = from[u * S + r] for r < S, u < count.
// Reads `from` contiguously; on SSE2 with shuffles (S = 2; double: each pair of residues, so
// S = 4 or 8 too) or 4 x 4 transposes (float, S = 4 or 8): one vector store per 2 or 4 values
// instead of a scalar store each.
template <typename T, int S>
inline void deinterleave(const T* from, T* const* to, int64_t count) {
  int64_t u = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float> && S == 2) {
    for (; u + 4 <= count; u += 4) {
      const __m128 lo = _mm_loadu_ps(from + 2 * u), hi = _mm_loadu_ps(from + 2 * u + 4);
      _mm_storeu_ps(to[0] + u, _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)));
      _mm_storeu_ps(to[1] + u, _mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
    }
  } else if constexpr (std::is_same_v<T, double> && (S == 2 || S == 4 || S == 8)) {
    for (; u + 2 <= count; u += 2) {
      const double* f = from + u * S;
#pragma GCC unroll 4
      for (int h = 0; h < S; h += 2) {  // residues h, h + 1 of points u, u + 1
        const __m128d lo = _mm_loadu_pd(f + h), hi = _mm_loadu_pd(f + S + h);
        _mm_storeu_pd(to[h] + u, _mm_unpacklo_pd(lo, hi));
        _mm_storeu_pd(to[h + 1] + u, _mm_unpackhi_pd(lo, hi));
      }
    }
  } else if constexpr (std::is_same_v<T, float> && (S == 4 || S == 8)) {
    for (; u + 4 <= count; u += 4) {
      const float* f = from + u * S;
#pragma GCC unroll 2
      for (int h = 0; h < S; h += 4) {  // residues h .. h + 3 of points u .. u + 3
        __m128 v0 = _mm_loadu_ps(f + h), v1 = _mm_loadu_ps(f + S + h),
               v2 = _mm_loadu_ps(f + 2 * S + h), v3 = _mm_loadu_ps(f + 3 * S + h);
        _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
        _mm_storeu_ps(to[h] + u, v0);
        _mm_storeu_ps(to[h + 1] + u, v1);
        _mm_storeu_ps(to[h + 2] + u, v2);
        _mm_storeu_ps(to[h + 3] + u, v3);
      }
    }
  }
#endif
  for (; u < count; ++u)
#pragma GCC unroll 8
    for (int r = 0; r < S; ++r) to[r][u] = from[u * S + r];
}

#if defined(__SSE2__)
namespace copy_detail {

// One vector store: non-temporal (kStream; p 16-byte aligned, its 64-byte line written whole
// by the same run) or ordinary.
template <bool kStream>
inline void put(float* p, __m128 v) {
  if constexpr (kStream) {
    _mm_stream_ps(p, v);
  } else {
    _mm_storeu_ps(p, v);
  }
}
template <bool kStream>
inline void put(double* p, __m128d v) {
  if constexpr (kStream) {
    _mm_stream_pd(p, v);
  } else {
    _mm_storeu_pd(p, v);
  }
}

// All-ones lanes (32-bit words) where a value of v is Inf or NaN (nonfinite_bit's test).
inline __m128i nonfinite_lanes(__m128 v) {
  const __m128i e = _mm_set1_epi32(0x7f800000);
  return _mm_cmpeq_epi32(_mm_and_si128(_mm_castps_si128(v), e), e);
}
inline __m128i nonfinite_lanes(__m128d v) {  // the exponent lies in each value's high word
  const __m128i e = _mm_set_epi32(0x7ff00000, 0, 0x7ff00000, 0);
  const __m128i high = _mm_set_epi32(-1, 0, -1, 0);
  return _mm_and_si128(_mm_cmpeq_epi32(_mm_and_si128(_mm_castpd_si128(v), e), e), high);
}

// The vector part of interleave() for points [u, count): returns the point reached; ORs the
// Inf/NaN lanes into bad.  Steps of 4 points (float) or 2 (double); S = 2, 4 or 8.
template <typename T, int S, bool kStream>
inline int64_t interleave_vectors(const T* const* from, bool add, T b, T* to, int64_t u,
                                  int64_t count, __m128i& bad) {
  if constexpr (std::is_same_v<T, float> && S == 2) {
    const __m128 bv = _mm_set1_ps(b);
    for (; u + 4 <= count; u += 4) {
      __m128 e = _mm_loadu_ps(from[0] + u), o = _mm_loadu_ps(from[1] + u);
      if (add) {
        e = _mm_add_ps(e, bv);
        o = _mm_add_ps(o, bv);
      }
      const __m128 lo = _mm_unpacklo_ps(e, o), hi = _mm_unpackhi_ps(e, o);
      bad = _mm_or_si128(bad, _mm_or_si128(nonfinite_lanes(lo), nonfinite_lanes(hi)));
      put<kStream>(to + 2 * u, lo);
      put<kStream>(to + 2 * u + 4, hi);
    }
  } else if constexpr (std::is_same_v<T, float> && (S == 4 || S == 8)) {
    const __m128 bv = _mm_set1_ps(b);
    for (; u + 4 <= count; u += 4) {
      float* t = to + u * S;
#pragma GCC unroll 2
      for (int h = 0; h < S; h += 4) {  // runs h .. h + 3 of points u .. u + 3
        __m128 v0 = _mm_loadu_ps(from[h] + u), v1 = _mm_loadu_ps(from[h + 1] + u),
               v2 = _mm_loadu_ps(from[h + 2] + u), v3 = _mm_loadu_ps(from[h + 3] + u);
        if (add) {
          v0 = _mm_add_ps(v0, bv);
          v1 = _mm_add_ps(v1, bv);
          v2 = _mm_add_ps(v2, bv);
          v3 = _mm_add_ps(v3, bv);
        }
        _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
        const __m128i lanes01 = _mm_or_si128(nonfinite_lanes(v0), nonfinite_lanes(v1));
        const __m128i lanes23 = _mm_or_si128(nonfinite_lanes(v2), nonfinite_lanes(v3));
        bad = _mm_or_si128(bad, _mm_or_si128(lanes01, lanes23));
        put<kStream>(t + h, v0);
        put<kStream>(t + S + h, v1);
        put<kStream>(t + 2 * S + h, v2);
        put<kStream>(t + 3 * S + h, v3);
      }
    }
  } else if constexpr (std::is_same_v<T, double> && (S == 2 || S == 4 || S == 8)) {
    const __m128d bv = _mm_set1_pd(b);
    for (; u + 2 <= count; u += 2) {
      double* t = to + u * S;
#pragma GCC unroll 4
      for (int h = 0; h < S; h += 2) {  // runs h, h + 1 of points u, u + 1
        __m128d e = _mm_loadu_pd(from[h] + u), o = _mm_loadu_pd(from[h + 1] + u);
        if (add) {
          e = _mm_add_pd(e, bv);
          o = _mm_add_pd(o, bv);
        }
        const __m128d lo = _mm_unpacklo_pd(e, o), hi = _mm_unpackhi_pd(e, o);
        bad = _mm_or_si128(bad, _mm_or_si128(nonfinite_lanes(lo), nonfinite_lanes(hi)));
        put<kStream>(t + h, lo);
        put<kStream>(t + S + h, hi);
      }
    }
  }
  return u;
}

}  // namespace copy_detail
#endif

// Interleave S runs (the inverse of deinterleave), adding `b` to each value when `add`:
// to[u * S + r] = from[r][u] (+ b) for r < S, u < count.  Writes `to` contiguously; on SSE2
// with unpacks (S = 2; double: each pair of runs, so S = 4 or 8 too) or 4 x 4 transposes
// (float, S = 4 or 8).  The same sums as scalar code.  Returns nonzero when a value written
// is Inf or NaN, tested in registers (`to` is not read back).  `stream` (on SSE2): when `to`
// is 64-byte aligned, the whole 64-byte lines of the run are written with non-temporal
// stores, for an output much larger than the caches and written once (not read in first);
// the rest of the run (a partial last line, which another run completes) with ordinary ones.
// The caller then issues stream_fence() before another thread reads `to`.
template <typename T, int S>
inline uint32_t interleave(const T* const* from, bool add, T b, T* to, int64_t count,
                           bool stream = false) {
  int64_t u = 0;
  uint32_t bad = 0;
#if defined(__SSE2__)
  __m128i lanes = _mm_setzero_si128();
  if (stream && reinterpret_cast<uintptr_t>(to) % 64 == 0) {
    constexpr int64_t kLinePoints = std::max<int64_t>(1, 64 / (S * int64_t(sizeof(T))));
    constexpr int64_t kStep = std::is_same_v<T, float> ? 4 : 2;  // interleave_vectors'
    constexpr int64_t kUnit = std::max(kLinePoints, kStep);      // both divide the other
    u = copy_detail::interleave_vectors<T, S, true>(from, add, b, to, 0, count / kUnit * kUnit,
                                                    lanes);
  }
  u = copy_detail::interleave_vectors<T, S, false>(from, add, b, to, u, count, lanes);
  bad = _mm_movemask_epi8(lanes) != 0 ? 1u : 0u;
#endif
  for (; u < count; ++u)
#pragma GCC unroll 8
    for (int r = 0; r < S; ++r) {
      const T v = add ? from[r][u] + b : from[r][u];
      to[u * S + r] = v;
      bad |= nonfinite_bit(v) != 0 ? 1u : 0u;
    }
  return bad;
}

// Orders the non-temporal stores before this thread's later stores (and so before the
// synchronisation that lets other threads read them).
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

}  // namespace tconv
