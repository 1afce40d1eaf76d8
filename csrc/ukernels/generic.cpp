// Portable micro-kernels (no ISA flags): scalar "vectors" of width 1, tile 4x8 (wide 3x16);
// the compiler may vectorise with the baseline ISA.  Named tconv::ukernels::f32_gemm_4x8__scalar
// and so on (the list below); dot 4x4 for weight_grad.
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "tconv/assert.hpp"
#include "tconv/ukernels.hpp"

namespace {

template <typename TT>
struct ScalarOps {
  using T = TT;
  using V = TT;
  static constexpr int kWidth = 1;
  static V zero() { return T(0); }
  static V load(const T* p) { return *p; }
  static V broadcast(const T* p) { return *p; }
  static V fma(V a, V b, V c) { return a * b + c; }
  static V add(V a, V b) { return a + b; }
  static void store(T* p, V v) { *p = v; }
  static T reduce(V v) { return v; }
};

using F32 = ScalarOps<float>;
using F64 = ScalarOps<double>;

#include "gemm_template.hpp"

// X(kind, slot, name, Ops, rows, n): see gemm_template.hpp.  gemm 4 x (8 x 1), wide 3 x 16,
// dot 4 x 4.
#define TCONV_GENERIC_UKERNELS(X)                              \
  X(gemm, fn, f32_gemm_1x8__scalar, F32, 1, 8)                 \
  X(gemm, fn, f32_gemm_2x8__scalar, F32, 2, 8)                 \
  X(gemm, fn, f32_gemm_3x8__scalar, F32, 3, 8)                 \
  X(gemm, fn, f32_gemm_4x8__scalar, F32, 4, 8)                 \
  X(igemm, ifn, f32_igemm_1x8__scalar, F32, 1, 8)              \
  X(igemm, ifn, f32_igemm_2x8__scalar, F32, 2, 8)              \
  X(igemm, ifn, f32_igemm_3x8__scalar, F32, 3, 8)              \
  X(igemm, ifn, f32_igemm_4x8__scalar, F32, 4, 8)              \
  X(ogemm, ofn, f32_ogemm_1x8__scalar, F32, 1, 8)              \
  X(ogemm, ofn, f32_ogemm_2x8__scalar, F32, 2, 8)              \
  X(ogemm, ofn, f32_ogemm_3x8__scalar, F32, 3, 8)              \
  X(ogemm, ofn, f32_ogemm_4x8__scalar, F32, 4, 8)              \
  X(kgemm, kfn, f32_kgemm_1x8__scalar, F32, 1, 8)              \
  X(kgemm, kfn, f32_kgemm_2x8__scalar, F32, 2, 8)              \
  X(kgemm, kfn, f32_kgemm_3x8__scalar, F32, 3, 8)              \
  X(kgemm, kfn, f32_kgemm_4x8__scalar, F32, 4, 8)              \
  X(rgemm, rfn, f32_rgemm_1x8__scalar, F32, 1, 8)              \
  X(rgemm, rfn, f32_rgemm_2x8__scalar, F32, 2, 8)              \
  X(rgemm, rfn, f32_rgemm_3x8__scalar, F32, 3, 8)              \
  X(rgemm, rfn, f32_rgemm_4x8__scalar, F32, 4, 8)              \
  X(gemm, wfn, f32_gemm_1x16__scalar, F32, 1, 16)              \
  X(gemm, wfn, f32_gemm_2x16__scalar, F32, 2, 16)              \
  X(gemm, wfn, f32_gemm_3x16__scalar, F32, 3, 16)              \
  X(igemm, wifn, f32_igemm_1x16__scalar, F32, 1, 16)           \
  X(igemm, wifn, f32_igemm_2x16__scalar, F32, 2, 16)           \
  X(igemm, wifn, f32_igemm_3x16__scalar, F32, 3, 16)           \
  X(ogemm, wofn, f32_ogemm_1x16__scalar, F32, 1, 16)           \
  X(ogemm, wofn, f32_ogemm_2x16__scalar, F32, 2, 16)           \
  X(ogemm, wofn, f32_ogemm_3x16__scalar, F32, 3, 16)           \
  X(dot, dot, f32_dot_1x4c1__scalar, F32, 1, 4)                \
  X(dot, dot, f32_dot_2x4c1__scalar, F32, 2, 4)                \
  X(dot, dot, f32_dot_3x4c1__scalar, F32, 3, 4)                \
  X(dot, dot, f32_dot_4x4c1__scalar, F32, 4, 4)                \
  X(transpose, transpose, f32_transpose_8__scalar, F32, 0, 8)  \
  X(gemm, fn, f64_gemm_1x8__scalar, F64, 1, 8)                 \
  X(gemm, fn, f64_gemm_2x8__scalar, F64, 2, 8)                 \
  X(gemm, fn, f64_gemm_3x8__scalar, F64, 3, 8)                 \
  X(gemm, fn, f64_gemm_4x8__scalar, F64, 4, 8)                 \
  X(igemm, ifn, f64_igemm_1x8__scalar, F64, 1, 8)              \
  X(igemm, ifn, f64_igemm_2x8__scalar, F64, 2, 8)              \
  X(igemm, ifn, f64_igemm_3x8__scalar, F64, 3, 8)              \
  X(igemm, ifn, f64_igemm_4x8__scalar, F64, 4, 8)              \
  X(ogemm, ofn, f64_ogemm_1x8__scalar, F64, 1, 8)              \
  X(ogemm, ofn, f64_ogemm_2x8__scalar, F64, 2, 8)              \
  X(ogemm, ofn, f64_ogemm_3x8__scalar, F64, 3, 8)              \
  X(ogemm, ofn, f64_ogemm_4x8__scalar, F64, 4, 8)              \
  X(kgemm, kfn, f64_kgemm_1x8__scalar, F64, 1, 8)              \
  X(kgemm, kfn, f64_kgemm_2x8__scalar, F64, 2, 8)              \
  X(kgemm, kfn, f64_kgemm_3x8__scalar, F64, 3, 8)              \
  X(kgemm, kfn, f64_kgemm_4x8__scalar, F64, 4, 8)              \
  X(rgemm, rfn, f64_rgemm_1x8__scalar, F64, 1, 8)              \
  X(rgemm, rfn, f64_rgemm_2x8__scalar, F64, 2, 8)              \
  X(rgemm, rfn, f64_rgemm_3x8__scalar, F64, 3, 8)              \
  X(rgemm, rfn, f64_rgemm_4x8__scalar, F64, 4, 8)              \
  X(gemm, wfn, f64_gemm_1x16__scalar, F64, 1, 16)              \
  X(gemm, wfn, f64_gemm_2x16__scalar, F64, 2, 16)              \
  X(gemm, wfn, f64_gemm_3x16__scalar, F64, 3, 16)              \
  X(igemm, wifn, f64_igemm_1x16__scalar, F64, 1, 16)           \
  X(igemm, wifn, f64_igemm_2x16__scalar, F64, 2, 16)           \
  X(igemm, wifn, f64_igemm_3x16__scalar, F64, 3, 16)           \
  X(ogemm, wofn, f64_ogemm_1x16__scalar, F64, 1, 16)           \
  X(ogemm, wofn, f64_ogemm_2x16__scalar, F64, 2, 16)           \
  X(ogemm, wofn, f64_ogemm_3x16__scalar, F64, 3, 16)           \
  X(dot, dot, f64_dot_1x4c1__scalar, F64, 1, 4)                \
  X(dot, dot, f64_dot_2x4c1__scalar, F64, 2, 4)                \
  X(dot, dot, f64_dot_3x4c1__scalar, F64, 3, 4)                \
  X(dot, dot, f64_dot_4x4c1__scalar, F64, 4, 4)                \
  X(transpose, transpose, f64_transpose_8__scalar, F64, 0, 8)

}  // namespace

namespace tconv::ukernels {
TCONV_GENERIC_UKERNELS(TCONV_UKERNEL_DEFINE)
}  // namespace tconv::ukernels

namespace {

tconv::IsaKernels make_table() {
  using namespace tconv::ukernels;
  tconv::IsaKernels table;
  table.name = "generic";
  TCONV_GENERIC_UKERNELS(TCONV_UKERNEL_FILL)
  return table;
}

}  // namespace

namespace tconv {
const IsaKernels* generic_kernels() {
  static const IsaKernels table = make_table();
  return &table;
}
}  // namespace tconv
