// AVX2 + FMA micro-kernels, compiled with -mavx2 -mfma (CMake set_source_files_properties).
//   f32_gemm_6x16__avx2_fma: 6 rows x 2 ymm (16 floats) = 12 accumulators + 2 b + 1 broadcast.
//   f64_gemm_6x8__avx2_fma:  6 rows x 2 ymm (8 doubles).
//   dot 4x3 (weight_grad): 12 accumulators + 3 b + 1 a, each ymm over 8 (4) consecutive k.
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

tconv::IsaKernels make_table() {
  tconv::IsaKernels t;
  t.name = "avx2";
  fill_gemm_table<Avx2F32, 2>(t.f32, std::make_index_sequence<6>{});
  fill_gemm_table<Avx2F64, 2>(t.f64, std::make_index_sequence<6>{});
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
