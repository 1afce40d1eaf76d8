// Fixed-length copies for the packing routines: with LEN and STEP known at compile time the
// loop is fully unrolled and vectorised (a run-time length of a few elements would become a
// memcpy call or a scalar loop).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <type_traits>

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
// Reads `from` contiguously; on SSE2 with shuffles (S = 2) or 4 x 4 transposes (float, S = 4
// or 8): one vector store per 2 or 4 values instead of a scalar store each.
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
  } else if constexpr (std::is_same_v<T, double> && S == 2) {
    for (; u + 2 <= count; u += 2) {
      const __m128d lo = _mm_loadu_pd(from + 2 * u), hi = _mm_loadu_pd(from + 2 * u + 2);
      _mm_storeu_pd(to[0] + u, _mm_unpacklo_pd(lo, hi));
      _mm_storeu_pd(to[1] + u, _mm_unpackhi_pd(lo, hi));
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

// Interleave S runs (the inverse of deinterleave), adding `b` to each value when `add`:
// to[u * S + r] = from[r][u] (+ b) for r < S, u < count.  Writes `to` contiguously; on SSE2
// with unpacks (S = 2) or 4 x 4 transposes (float, S = 4 or 8).  The same sums as scalar code.
template <typename T, int S>
inline void interleave(const T* const* from, bool add, T b, T* to, int64_t count) {
  int64_t u = 0;
#if defined(__SSE2__)
  if constexpr (std::is_same_v<T, float> && S == 2) {
    const __m128 bv = _mm_set1_ps(b);
    for (; u + 4 <= count; u += 4) {
      __m128 e = _mm_loadu_ps(from[0] + u), o = _mm_loadu_ps(from[1] + u);
      if (add) {
        e = _mm_add_ps(e, bv);
        o = _mm_add_ps(o, bv);
      }
      _mm_storeu_ps(to + 2 * u, _mm_unpacklo_ps(e, o));
      _mm_storeu_ps(to + 2 * u + 4, _mm_unpackhi_ps(e, o));
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
        _mm_storeu_ps(t + h, v0);
        _mm_storeu_ps(t + S + h, v1);
        _mm_storeu_ps(t + 2 * S + h, v2);
        _mm_storeu_ps(t + 3 * S + h, v3);
      }
    }
  }
#endif
  for (; u < count; ++u)
#pragma GCC unroll 8
    for (int r = 0; r < S; ++r) to[u * S + r] = add ? from[r][u] + b : from[r][u];
}

}  // namespace tconv
