// Portable micro-kernels (no ISA flags): scalar "vectors" of width 1, tile 4x8; the compiler
// may vectorise with the baseline ISA.  Names: f32_gemm_4x8__scalar, f64_gemm_4x8__scalar;
// dot 4x4 for weight_grad.
#include <cstdint>
#include <utility>

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

#include "gemm_template.hpp"

tconv::IsaKernels make_table() {
  tconv::IsaKernels t;
  t.name = "generic";
  fill_gemm_table<ScalarOps<float>, 8>(t.f32, std::make_index_sequence<4>{});
  fill_gemm_table<ScalarOps<double>, 8>(t.f64, std::make_index_sequence<4>{});
  fill_wide_table<ScalarOps<float>, 16>(t.f32, std::make_index_sequence<3>{});
  fill_wide_table<ScalarOps<double>, 16>(t.f64, std::make_index_sequence<3>{});
  fill_dot_table<ScalarOps<float>, 4>(t.f32, std::make_index_sequence<4>{});
  fill_dot_table<ScalarOps<double>, 4>(t.f64, std::make_index_sequence<4>{});
  return t;
}

}  // namespace

namespace tconv {
const IsaKernels* generic_kernels() {
  static const IsaKernels table = make_table();
  return &table;
}
}  // namespace tconv
