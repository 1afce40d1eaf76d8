// AVX-512 (F, VL, BW, DQ) micro-kernels, compiled with -mavx512f -mavx512vl -mavx512bw
// -mavx512dq -mfma (CMake set_source_files_properties).  The table (tile shapes, reduction
// order) is avx512_table.hpp, shared with the portable "avx512-emulated" build that tests it on
// any CPU; only the one-intrinsic wrappers below are specific to this file.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "tconv/assert.hpp"
#include "tconv/ukernels.hpp"

#ifdef TCONV_HAVE_AVX512
#include <immintrin.h>

namespace {

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
  // v[l].lane[t] becomes v[t].lane[l]: unpacks within 128-bit lanes (pairs of rows, then
  // fours), then two rounds of 128-bit lane shuffles; 64 shuffles, no memory.  (The all-ones
  // masked forms: gcc 12 warns about the unmasked ones' undefined source when inlined.)
  static void transpose16(V (&v)[16]) {
    constexpr __mmask16 all = 0xFFFF;
    constexpr __mmask8 all_pd = 0xFF;
    V t[16];
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_mask_unpacklo_ps(v[i], all, v[i], v[i + 1]);
      t[i + 1] = _mm512_mask_unpackhi_ps(v[i], all, v[i], v[i + 1]);
    }
    V u[16];  // u[4i + q], 128-bit lane j: column 4j + q of rows 4i .. 4i + 3
    for (int i = 0; i < 16; i += 4) {
      for (int h = 0; h < 2; ++h) {
        const __m512d a = _mm512_castps_pd(t[i + h]), b = _mm512_castps_pd(t[i + h + 2]);
        u[i + 2 * h] = _mm512_castpd_ps(_mm512_mask_unpacklo_pd(a, all_pd, a, b));
        u[i + 2 * h + 1] = _mm512_castpd_ps(_mm512_mask_unpackhi_pd(a, all_pd, a, b));
      }
    }
    const auto lanes = [](V a, V b, auto imm) {  // 128-bit lanes imm of a, then of b
      return _mm512_mask_shuffle_f32x4(a, all, a, b, decltype(imm)::value);
    };
    using Even = std::integral_constant<int, 0x88>;  // lanes 0, 2 of a, then of b
    using Odd = std::integral_constant<int, 0xDD>;   // lanes 1, 3
    for (int q = 0; q < 4; ++q) {
      const V even01 = lanes(u[q], u[4 + q], Even{}), odd01 = lanes(u[q], u[4 + q], Odd{});
      const V even23 = lanes(u[8 + q], u[12 + q], Even{});
      const V odd23 = lanes(u[8 + q], u[12 + q], Odd{});
      v[q] = lanes(even01, even23, Even{});
      v[8 + q] = lanes(even01, even23, Odd{});
      v[4 + q] = lanes(odd01, odd23, Even{});
      v[12 + q] = lanes(odd01, odd23, Odd{});
    }
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
  // v[l].lane[t] becomes v[t].lane[l] for 8 vectors of 8 doubles: unpacks of row pairs within
  // 128-bit lanes, then two rounds of 128-bit lane shuffles; 24 shuffles, no memory.
  static void transpose8(V (&v)[8]) {
    constexpr __mmask8 all = 0xFF;
    V t[8];  // t[i], t[i + 1], 128-bit lane j: columns 2j, 2j + 1 of rows i, i + 1
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm512_mask_unpacklo_pd(v[i], all, v[i], v[i + 1]);
      t[i + 1] = _mm512_mask_unpackhi_pd(v[i], all, v[i], v[i + 1]);
    }
    const auto lanes = [](V a, V b, auto imm) {  // 128-bit lanes imm of a, then of b
      return _mm512_mask_shuffle_f64x2(a, all, a, b, decltype(imm)::value);
    };
    using Even = std::integral_constant<int, 0x88>;  // lanes 0, 2 of a, then of b
    using Odd = std::integral_constant<int, 0xDD>;   // lanes 1, 3
    V u[8];  // u[4h + q]: rows 4h .. 4h + 3, columns q' and q' + 4 (q' = 0, 2, 1, 3 for q)
    for (int h = 0; h < 2; ++h) {
      u[4 * h] = lanes(t[4 * h], t[4 * h + 2], Even{});      // columns 0, 4
      u[4 * h + 1] = lanes(t[4 * h], t[4 * h + 2], Odd{});   // columns 2, 6
      u[4 * h + 2] = lanes(t[4 * h + 1], t[4 * h + 3], Even{});  // columns 1, 5
      u[4 * h + 3] = lanes(t[4 * h + 1], t[4 * h + 3], Odd{});   // columns 3, 7
    }
    constexpr int column[4] = {0, 2, 1, 3};
    for (int q = 0; q < 4; ++q) {
      v[column[q]] = lanes(u[q], u[4 + q], Even{});
      v[column[q] + 4] = lanes(u[q], u[4 + q], Odd{});
    }
  }
};

#include "gemm_template.hpp"
#include "avx512_table.hpp"

using F32 = Avx512Ops<Avx512F32>;
using F64 = Avx512Ops<Avx512F64>;
static_assert(F32::kWidth == 16 && F64::kWidth == 8, "AVX-512 is 16 floats / 8 doubles");

}  // namespace

namespace tconv::ukernels {
TCONV_AVX512_UKERNELS(TCONV_UKERNEL_DEFINE)
}  // namespace tconv::ukernels

namespace {

tconv::IsaKernels make_table() {
  using namespace tconv::ukernels;
  tconv::IsaKernels table;
  table.name = "avx512";
  TCONV_AVX512_UKERNELS(TCONV_UKERNEL_FILL)
  return table;
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
