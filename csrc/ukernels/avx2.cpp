// AVX2 + FMA micro-kernels, compiled with -mavx2 -mfma (CMake set_source_files_properties).
//   f32_gemm_6x16__avx2_fma: 6 rows x 2 ymm (16 floats) = 12 accumulators + 2 b + 1 broadcast.
//   f64_gemm_6x8__avx2_fma:  6 rows x 2 ymm (8 doubles).
//   dot 4x3 (weight_grad): 12 accumulators + 3 b + 1 a, each ymm over 8 (4) consecutive k.
//   transpose_panel_f32x16 (weight_grad's outer-product form): 8 x 8 in-register transposes.
#include <cstdint>
#include <utility>

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

tconv::IsaKernels make_table() {
  tconv::IsaKernels t;
  t.name = "avx2";
  fill_gemm_table<Avx2F32, 2>(t.f32, std::make_index_sequence<6>{});
  fill_gemm_table<Avx2F64, 2>(t.f64, std::make_index_sequence<6>{});
  t.f32.transpose = &transpose_panel_f32x16;
  fill_wide_table<Avx2F32, 4>(t.f32, std::make_index_sequence<3>{});
  fill_wide_table<Avx2F64, 4>(t.f64, std::make_index_sequence<3>{});
  fill_dot_table<Avx2F32, 3>(t.f32, std::make_index_sequence<4>{});
  fill_dot_table<Avx2F64, 3>(t.f64, std::make_index_sequence<4>{});
  return t;
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
