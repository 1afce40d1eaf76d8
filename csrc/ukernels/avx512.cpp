// AVX-512 (F, VL, BW, DQ) micro-kernels, compiled with -mavx512f -mavx512vl -mavx512bw -mavx512dq -mfma (CMake set_source_files_properties).
//   f32_gemm_12x32__avx512f: 12 rows x 2 zmm (32 floats) = 24 accumulators + 2 b + 1 broadcast.
//   f64_gemm_12x16__avx512f: 12 rows x 2 zmm (16 doubles).
#include <cstdint>
#include <utility>

#include "tconv/ukernels.hpp"

#ifdef TCONV_HAVE_AVX512
#include <immintrin.h>

namespace {

// Lanes added in increasing order (no AVX-512 machine here to test a shuffle tree on).
template <typename T, int W>
T sum_lanes(const T* lanes) {
  T sum = lanes[0];
  for (int l = 1; l < W; ++l) sum += lanes[l];
  return sum;
}

struct Avx512F32 {
  using T = float;
  using V = __m512;
  static constexpr int kWidth = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const T* p) { return _mm512_loadu_ps(p); }
  static V broadcast(const T* p) { return _mm512_set1_ps(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static void store(T* p, V v) { _mm512_storeu_ps(p, v); }
  static T reduce(V v) {
    alignas(64) T lanes[kWidth];
    _mm512_store_ps(lanes, v);
    return sum_lanes<T, kWidth>(lanes);
  }
};

struct Avx512F64 {
  using T = double;
  using V = __m512d;
  static constexpr int kWidth = 8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const T* p) { return _mm512_loadu_pd(p); }
  static V broadcast(const T* p) { return _mm512_set1_pd(*p); }
  static V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  static void store(T* p, V v) { _mm512_storeu_pd(p, v); }
  static T reduce(V v) {
    alignas(64) T lanes[kWidth];
    _mm512_store_pd(lanes, v);
    return sum_lanes<T, kWidth>(lanes);
  }
};

#include "gemm_template.hpp"

tconv::IsaKernels make_table() {
  tconv::IsaKernels t;
  t.name = "avx512";
  fill_gemm_table<Avx512F32, 2>(t.f32, std::make_index_sequence<12>{});
  fill_gemm_table<Avx512F64, 2>(t.f64, std::make_index_sequence<12>{});
  fill_wide_table<Avx512F32, 4>(t.f32, std::make_index_sequence<3>{});
  fill_wide_table<Avx512F64, 4>(t.f64, std::make_index_sequence<3>{});
  fill_dot_table<Avx512F32, 4>(t.f32, std::make_index_sequence<4>{});
  fill_dot_table<Avx512F64, 4>(t.f64, std::make_index_sequence<4>{});
  return t;
}

}  // namespace

namespace tconv {
const IsaKernels* avx512_kernels() {
  static const IsaKernels table = make_table();
  return &table;
}
}  // namespace tconv

#else
namespace tconv {
const IsaKernels* avx512_kernels() { return nullptr; }
}  // namespace tconv
#endif
