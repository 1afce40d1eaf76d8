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
