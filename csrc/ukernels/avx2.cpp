// AVX2 + FMA micro-kernels, compiled with -mavx2 -mfma (CMake set_source_files_properties).
//   f32_gemm_6x16__avx2_fma: 6 rows x 2 ymm (16 floats) = 12 accumulators + 2 b + 1 broadcast.
//   f64_gemm_6x8__avx2_fma:  6 rows x 2 ymm (8 doubles).
//   f32_gemm_3x32__avx2_fma: the wide kernels for at most 3 rows, 4 ymm.
//   f32_dot_4x3c8__avx2_fma (weight_grad): 12 accumulators + 3 b + 1 a, each ymm over 8 (4) k.
//   f32_transpose_16__avx2_fma (weight_grad's outer-product form): 8 x 8 in-register transposes.
// All in namespace tconv::ukernels; the full list is TCONV_AVX2_UKERNELS below.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "tconv/assert.hpp"
#include "tconv/ukernels.hpp"

#ifdef TCONV_HAVE_AVX2
#include <immintrin.h>

namespace {

struct Avx2F32 {
  using T = float;
  using V = __m256;
  static constexpr int kWidth = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const T* p) { return _mm256_loadu_ps(p); }
  static V broadcast(const T* p) { return _mm256_broadcast_ss(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static void store(T* p, V v) { _mm256_storeu_ps(p, v); }
  // ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))
  static T reduce(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
  }
};

struct Avx2F64 {
  using T = double;
  using V = __m256d;
  static constexpr int kWidth = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const T* p) { return _mm256_loadu_pd(p); }
  static V broadcast(const T* p) { return _mm256_broadcast_sd(p); }
  static V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  static void store(T* p, V v) { _mm256_storeu_pd(p, v); }
  // (l0 + l2) + (l1 + l3)
  static T reduce(V v) {
    const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

#include "gemm_template.hpp"

// transpose_panel for 16 float rows: 8 x 8 blocks by unpack / shuffle / lane permutes.
// (the body of f32_transpose_16__avx2_fma)
void transpose_panel_f32x16(const float* rows, int64_t ld, int64_t kc, float* panel) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int h = 0; h < 2; ++h) {
      const float* r = rows + 8 * h * ld + k;
      const __m256 r0 = _mm256_loadu_ps(r), r1 = _mm256_loadu_ps(r + ld),
                   r2 = _mm256_loadu_ps(r + 2 * ld), r3 = _mm256_loadu_ps(r + 3 * ld),
                   r4 = _mm256_loadu_ps(r + 4 * ld), r5 = _mm256_loadu_ps(r + 5 * ld),
                   r6 = _mm256_loadu_ps(r + 6 * ld), r7 = _mm256_loadu_ps(r + 7 * ld);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
                   t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
                   t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                   t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                   s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                   s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                   s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* o = panel + k * 16 + 8 * h;
      _mm256_storeu_ps(o, _mm256_permute2f128_ps(s0, s4, 0x20));
      _mm256_storeu_ps(o + 16, _mm256_permute2f128_ps(s1, s5, 0x20));
      _mm256_storeu_ps(o + 32, _mm256_permute2f128_ps(s2, s6, 0x20));
      _mm256_storeu_ps(o + 48, _mm256_permute2f128_ps(s3, s7, 0x20));
      _mm256_storeu_ps(o + 64, _mm256_permute2f128_ps(s0, s4, 0x31));
      _mm256_storeu_ps(o + 80, _mm256_permute2f128_ps(s1, s5, 0x31));
      _mm256_storeu_ps(o + 96, _mm256_permute2f128_ps(s2, s6, 0x31));
      _mm256_storeu_ps(o + 112, _mm256_permute2f128_ps(s3, s7, 0x31));
    }
  }
  transpose_panel<float, 16>(rows + k, ld, kc - k, panel + k * 16);  // the last kc % 8
}

// The hand-written transpose in place of the template's (same result: it only moves values).
#define TCONV_DEFINE_transpose8x8(name, Ops, unused_rows, NR)                                 \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(const Ops::T* rows, int64_t ld, int64_t kc, Ops::T* panel) {                     \
    static_assert((NR) == 16, "transpose_panel_f32x16 moves 16 rows");                      \
    TCONV_TRANSPOSE_ASSERTS();                                                               \
    ::transpose_panel_f32x16(rows, ld, kc, panel);                                           \
  }

// X(kind, slot, name, Ops, rows, n): see gemm_template.hpp.  gemm 6 x (2 x 8 | 2 x 4), wide
// 3 x 4 vectors, dot 4 x 3.
#define TCONV_AVX2_UKERNELS(X)                                            \
  X(gemm, fn, f32_gemm_1x16__avx2_fma, Avx2F32, 1, 2)                     \
  X(gemm, fn, f32_gemm_2x16__avx2_fma, Avx2F32, 2, 2)                     \
  X(gemm, fn, f32_gemm_3x16__avx2_fma, Avx2F32, 3, 2)                     \
  X(gemm, fn, f32_gemm_4x16__avx2_fma, Avx2F32, 4, 2)                     \
  X(gemm, fn, f32_gemm_5x16__avx2_fma, Avx2F32, 5, 2)                     \
  X(gemm, fn, f32_gemm_6x16__avx2_fma, Avx2F32, 6, 2)                     \
  X(igemm, ifn, f32_igemm_1x16__avx2_fma, Avx2F32, 1, 2)                  \
  X(igemm, ifn, f32_igemm_2x16__avx2_fma, Avx2F32, 2, 2)                  \
  X(igemm, ifn, f32_igemm_3x16__avx2_fma, Avx2F32, 3, 2)                  \
  X(igemm, ifn, f32_igemm_4x16__avx2_fma, Avx2F32, 4, 2)                  \
  X(igemm, ifn, f32_igemm_5x16__avx2_fma, Avx2F32, 5, 2)                  \
  X(igemm, ifn, f32_igemm_6x16__avx2_fma, Avx2F32, 6, 2)                  \
  X(ogemm, ofn, f32_ogemm_1x16__avx2_fma, Avx2F32, 1, 2)                  \
  X(ogemm, ofn, f32_ogemm_2x16__avx2_fma, Avx2F32, 2, 2)                  \
  X(ogemm, ofn, f32_ogemm_3x16__avx2_fma, Avx2F32, 3, 2)                  \
  X(ogemm, ofn, f32_ogemm_4x16__avx2_fma, Avx2F32, 4, 2)                  \
  X(ogemm, ofn, f32_ogemm_5x16__avx2_fma, Avx2F32, 5, 2)                  \
  X(ogemm, ofn, f32_ogemm_6x16__avx2_fma, Avx2F32, 6, 2)                  \
  X(kgemm, kfn, f32_kgemm_1x16__avx2_fma, Avx2F32, 1, 2)                  \
  X(kgemm, kfn, f32_kgemm_2x16__avx2_fma, Avx2F32, 2, 2)                  \
  X(kgemm, kfn, f32_kgemm_3x16__avx2_fma, Avx2F32, 3, 2)                  \
  X(kgemm, kfn, f32_kgemm_4x16__avx2_fma, Avx2F32, 4, 2)                  \
  X(kgemm, kfn, f32_kgemm_5x16__avx2_fma, Avx2F32, 5, 2)                  \
  X(kgemm, kfn, f32_kgemm_6x16__avx2_fma, Avx2F32, 6, 2)                  \
  X(rgemm, rfn, f32_rgemm_1x16__avx2_fma, Avx2F32, 1, 2)                  \
  X(rgemm, rfn, f32_rgemm_2x16__avx2_fma, Avx2F32, 2, 2)                  \
  X(rgemm, rfn, f32_rgemm_3x16__avx2_fma, Avx2F32, 3, 2)                  \
  X(rgemm, rfn, f32_rgemm_4x16__avx2_fma, Avx2F32, 4, 2)                  \
  X(rgemm, rfn, f32_rgemm_5x16__avx2_fma, Avx2F32, 5, 2)                  \
  X(rgemm, rfn, f32_rgemm_6x16__avx2_fma, Avx2F32, 6, 2)                  \
  X(gemm, wfn, f32_gemm_1x32__avx2_fma, Avx2F32, 1, 4)                    \
  X(gemm, wfn, f32_gemm_2x32__avx2_fma, Avx2F32, 2, 4)                    \
  X(gemm, wfn, f32_gemm_3x32__avx2_fma, Avx2F32, 3, 4)                    \
  X(igemm, wifn, f32_igemm_1x32__avx2_fma, Avx2F32, 1, 4)                 \
  X(igemm, wifn, f32_igemm_2x32__avx2_fma, Avx2F32, 2, 4)                 \
  X(igemm, wifn, f32_igemm_3x32__avx2_fma, Avx2F32, 3, 4)                 \
  X(ogemm, wofn, f32_ogemm_1x32__avx2_fma, Avx2F32, 1, 4)                 \
  X(ogemm, wofn, f32_ogemm_2x32__avx2_fma, Avx2F32, 2, 4)                 \
  X(ogemm, wofn, f32_ogemm_3x32__avx2_fma, Avx2F32, 3, 4)                 \
  X(dot, dot, f32_dot_1x3c8__avx2_fma, Avx2F32, 1, 3)                     \
  X(dot, dot, f32_dot_2x3c8__avx2_fma, Avx2F32, 2, 3)                     \
  X(dot, dot, f32_dot_3x3c8__avx2_fma, Avx2F32, 3, 3)                     \
  X(dot, dot, f32_dot_4x3c8__avx2_fma, Avx2F32, 4, 3)                     \
  X(transpose8x8, transpose, f32_transpose_16__avx2_fma, Avx2F32, 0, 16)  \
  X(gemm, fn, f64_gemm_1x8__avx2_fma, Avx2F64, 1, 2)                      \
  X(gemm, fn, f64_gemm_2x8__avx2_fma, Avx2F64, 2, 2)                      \
  X(gemm, fn, f64_gemm_3x8__avx2_fma, Avx2F64, 3, 2)                      \
  X(gemm, fn, f64_gemm_4x8__avx2_fma, Avx2F64, 4, 2)                      \
  X(gemm, fn, f64_gemm_5x8__avx2_fma, Avx2F64, 5, 2)                      \
  X(gemm, fn, f64_gemm_6x8__avx2_fma, Avx2F64, 6, 2)                      \
  X(igemm, ifn, f64_igemm_1x8__avx2_fma, Avx2F64, 1, 2)                   \
  X(igemm, ifn, f64_igemm_2x8__avx2_fma, Avx2F64, 2, 2)                   \
  X(igemm, ifn, f64_igemm_3x8__avx2_fma, Avx2F64, 3, 2)                   \
  X(igemm, ifn, f64_igemm_4x8__avx2_fma, Avx2F64, 4, 2)                   \
  X(igemm, ifn, f64_igemm_5x8__avx2_fma, Avx2F64, 5, 2)                   \
  X(igemm, ifn, f64_igemm_6x8__avx2_fma, Avx2F64, 6, 2)                   \
  X(ogemm, ofn, f64_ogemm_1x8__avx2_fma, Avx2F64, 1, 2)                   \
  X(ogemm, ofn, f64_ogemm_2x8__avx2_fma, Avx2F64, 2, 2)                   \
  X(ogemm, ofn, f64_ogemm_3x8__avx2_fma, Avx2F64, 3, 2)                   \
  X(ogemm, ofn, f64_ogemm_4x8__avx2_fma, Avx2F64, 4, 2)                   \
  X(ogemm, ofn, f64_ogemm_5x8__avx2_fma, Avx2F64, 5, 2)                   \
  X(ogemm, ofn, f64_ogemm_6x8__avx2_fma, Avx2F64, 6, 2)                   \
  X(kgemm, kfn, f64_kgemm_1x8__avx2_fma, Avx2F64, 1, 2)                   \
  X(kgemm, kfn, f64_kgemm_2x8__avx2_fma, Avx2F64, 2, 2)                   \
  X(kgemm, kfn, f64_kgemm_3x8__avx2_fma, Avx2F64, 3, 2)                   \
  X(kgemm, kfn, f64_kgemm_4x8__avx2_fma, Avx2F64, 4, 2)                   \
  X(kgemm, kfn, f64_kgemm_5x8__avx2_fma, Avx2F64, 5, 2)                   \
  X(kgemm, kfn, f64_kgemm_6x8__avx2_fma, Avx2F64, 6, 2)                   \
  X(rgemm, rfn, f64_rgemm_1x8__avx2_fma, Avx2F64, 1, 2)                   \
  X(rgemm, rfn, f64_rgemm_2x8__avx2_fma, Avx2F64, 2, 2)                   \
  X(rgemm, rfn, f64_rgemm_3x8__avx2_fma, Avx2F64, 3, 2)                   \
  X(rgemm, rfn, f64_rgemm_4x8__avx2_fma, Avx2F64, 4, 2)                   \
  X(rgemm, rfn, f64_rgemm_5x8__avx2_fma, Avx2F64, 5, 2)                   \
  X(rgemm, rfn, f64_rgemm_6x8__avx2_fma, Avx2F64, 6, 2)                   \
  X(gemm, wfn, f64_gemm_1x16__avx2_fma, Avx2F64, 1, 4)                    \
  X(gemm, wfn, f64_gemm_2x16__avx2_fma, Avx2F64, 2, 4)                    \
  X(gemm, wfn, f64_gemm_3x16__avx2_fma, Avx2F64, 3, 4)                    \
  X(igemm, wifn, f64_igemm_1x16__avx2_fma, Avx2F64, 1, 4)                 \
  X(igemm, wifn, f64_igemm_2x16__avx2_fma, Avx2F64, 2, 4)                 \
  X(igemm, wifn, f64_igemm_3x16__avx2_fma, Avx2F64, 3, 4)                 \
  X(ogemm, wofn, f64_ogemm_1x16__avx2_fma, Avx2F64, 1, 4)                 \
  X(ogemm, wofn, f64_ogemm_2x16__avx2_fma, Avx2F64, 2, 4)                 \
  X(ogemm, wofn, f64_ogemm_3x16__avx2_fma, Avx2F64, 3, 4)                 \
  X(dot, dot, f64_dot_1x3c4__avx2_fma, Avx2F64, 1, 3)                     \
  X(dot, dot, f64_dot_2x3c4__avx2_fma, Avx2F64, 2, 3)                     \
  X(dot, dot, f64_dot_3x3c4__avx2_fma, Avx2F64, 3, 3)                     \
  X(dot, dot, f64_dot_4x3c4__avx2_fma, Avx2F64, 4, 3)                     \
  X(transpose, transpose, f64_transpose_8__avx2_fma, Avx2F64, 0, 8)

}  // namespace

namespace tconv::ukernels {
TCONV_AVX2_UKERNELS(TCONV_UKERNEL_DEFINE)
}  // namespace tconv::ukernels

namespace {

tconv::IsaKernels make_table() {
  using namespace tconv::ukernels;
  tconv::IsaKernels table;
  table.name = "avx2";
  TCONV_AVX2_UKERNELS(TCONV_UKERNEL_FILL)
  return table;
}

}  // namespace

namespace tconv {
const IsaKernels* avx2_kernels() {
  static const IsaKernels table = make_table();
  return &table;
}
}  // namespace tconv

#else
namespace tconv {
const IsaKernels* avx2_kernels() { return nullptr; }
}  // namespace tconv
#endif
