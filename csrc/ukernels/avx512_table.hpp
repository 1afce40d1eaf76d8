// The AVX-512 kernel table, written once over a "raw" vector-ops class and instantiated twice:
// by avx512.cpp with intrinsics (__m512 / __m512d, AVX-512 flags) and by avx512_emulated.cpp
// with portable 16 / 8-lane arrays (EmulatedOps, no ISA flags).  The tile shapes, edge paths
// and lane reduction order that ship to AVX-512 CPUs therefore run, and are tested, on any CPU;
// what is not emulated is only the raw class's one-instruction wrappers.
//
//   f32: gemm 12 x 32 (12 rows x 2 vectors = 24 accumulators), wide 3 x 64, dot 4 x 4 over 16 k
//   f64: gemm 12 x 16,                                          wide 3 x 32, dot 4 x 4 over 8 k
//
// Raw ops provide T, V, kWidth and zero, load, broadcast, fma (one rounding), add, store.
// Include ONLY inside the anonymous namespace of an ISA translation unit, after
// gemm_template.hpp (see there why).
#include <cstdint>
#include <utility>

// The lane reduction of dot_ukernel, shared so that it is the same code on both builds: the
// lanes are stored, then added in increasing lane order, ((l0 + l1) + l2) + ... + l(W-1).
template <class Raw>
struct Avx512Ops : Raw {
  static typename Raw::T reduce(typename Raw::V v) {
    alignas(64) typename Raw::T lanes[Raw::kWidth];
    Raw::store(lanes, v);
    typename Raw::T sum = lanes[0];
    for (int l = 1; l < Raw::kWidth; ++l) sum += lanes[l];
    return sum;
  }
};

template <class RawF32, class RawF64>
tconv::IsaKernels make_avx512_table(const char* name) {
  using F32 = Avx512Ops<RawF32>;
  using F64 = Avx512Ops<RawF64>;
  static_assert(F32::kWidth == 16 && F64::kWidth == 8, "AVX-512 is 16 floats / 8 doubles");
  tconv::IsaKernels t;
  t.name = name;
  fill_gemm_table<F32, 2>(t.f32, std::make_index_sequence<12>{});
  fill_gemm_table<F64, 2>(t.f64, std::make_index_sequence<12>{});
  fill_wide_table<F32, 4>(t.f32, std::make_index_sequence<3>{});
  fill_wide_table<F64, 4>(t.f64, std::make_index_sequence<3>{});
  fill_dot_table<F32, 4>(t.f32, std::make_index_sequence<4>{});
  fill_dot_table<F64, 4>(t.f64, std::make_index_sequence<4>{});
  return t;
}
