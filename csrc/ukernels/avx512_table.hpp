// The AVX-512 kernel table, written once over a "raw" vector-ops class and compiled twice: by
// avx512.cpp with intrinsics (__m512 / __m512d, AVX-512 flags) and by avx512_emulated.cpp with
// portable 16 / 8-lane arrays (EmulatedOps, no ISA flags).  The tile shapes, edge paths and
// lane reduction order that ship to AVX-512 CPUs therefore run, and are tested, on any CPU;
// what is not emulated is only the raw class's one-instruction wrappers.
//
//   f32: gemm 12 x 32 (12 rows x 2 vectors = 24 accumulators), wide 3 x 64, narrow 12 x 16,
//        dot 6 x 4 over 16 k
//   f64: gemm 12 x 16, wide 3 x 32, narrow 12 x 8, dot 6 x 4 over 8 k
//
// Raw ops provide T, V, kWidth and zero, load, broadcast, fma (one rounding), add, store; the
// f32 ones also transpose16 (16 vectors' lanes), which moves the f32 transpose kernel's panel
// in 16 x 16 blocks and adds the f32 dot kernels' lanes for the whole tile at once (the lane
// order of reduce below, for every accumulator); the f64 ones transpose8 (8 x 8), used alike.
// Include ONLY inside the anonymous namespace of an ISA translation unit, after
// gemm_template.hpp (see there why); the unit then defines F32 = Avx512Ops<its f32 raw ops>
// and F64 likewise, and expands TCONV_AVX512_UKERNELS: its functions are named for avx512f in
// both units, in namespace tconv::ukernels (avx512.cpp) and tconv::ukernels::emulated
// (avx512_emulated.cpp).

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

// X(kind, slot, name, Ops, rows, n): see gemm_template.hpp.  gemm 12 x 2 vectors, wide 3 x 4
// vectors, narrow 12 x 1 vector (12 accumulators, enough to cover the FMA latency), dot 6 x 4
// (24 accumulators, 4 + 1 loads per vector of k, so that B, streamed from L2, is read once per
// 6 rows of A; f32 1.04-1.09x over 4 x 4 on the dot-form benchmark layers; f64, with the
// 8 x 8 lane sums, 1.06-1.20x).
#define TCONV_AVX512_UKERNELS(X)                                  \
  X(gemm, fn, f32_gemm_1x32__avx512f, F32, 1, 2)                  \
  X(gemm, fn, f32_gemm_2x32__avx512f, F32, 2, 2)                  \
  X(gemm, fn, f32_gemm_3x32__avx512f, F32, 3, 2)                  \
  X(gemm, fn, f32_gemm_4x32__avx512f, F32, 4, 2)                  \
  X(gemm, fn, f32_gemm_5x32__avx512f, F32, 5, 2)                  \
  X(gemm, fn, f32_gemm_6x32__avx512f, F32, 6, 2)                  \
  X(gemm, fn, f32_gemm_7x32__avx512f, F32, 7, 2)                  \
  X(gemm, fn, f32_gemm_8x32__avx512f, F32, 8, 2)                  \
  X(gemm, fn, f32_gemm_9x32__avx512f, F32, 9, 2)                  \
  X(gemm, fn, f32_gemm_10x32__avx512f, F32, 10, 2)                \
  X(gemm, fn, f32_gemm_11x32__avx512f, F32, 11, 2)                \
  X(gemm, fn, f32_gemm_12x32__avx512f, F32, 12, 2)                \
  X(igemm, ifn, f32_igemm_1x32__avx512f, F32, 1, 2)               \
  X(igemm, ifn, f32_igemm_2x32__avx512f, F32, 2, 2)               \
  X(igemm, ifn, f32_igemm_3x32__avx512f, F32, 3, 2)               \
  X(igemm, ifn, f32_igemm_4x32__avx512f, F32, 4, 2)               \
  X(igemm, ifn, f32_igemm_5x32__avx512f, F32, 5, 2)               \
  X(igemm, ifn, f32_igemm_6x32__avx512f, F32, 6, 2)               \
  X(igemm, ifn, f32_igemm_7x32__avx512f, F32, 7, 2)               \
  X(igemm, ifn, f32_igemm_8x32__avx512f, F32, 8, 2)               \
  X(igemm, ifn, f32_igemm_9x32__avx512f, F32, 9, 2)               \
  X(igemm, ifn, f32_igemm_10x32__avx512f, F32, 10, 2)             \
  X(igemm, ifn, f32_igemm_11x32__avx512f, F32, 11, 2)             \
  X(igemm, ifn, f32_igemm_12x32__avx512f, F32, 12, 2)             \
  X(ogemm, ofn, f32_ogemm_1x32__avx512f, F32, 1, 2)               \
  X(ogemm, ofn, f32_ogemm_2x32__avx512f, F32, 2, 2)               \
  X(ogemm, ofn, f32_ogemm_3x32__avx512f, F32, 3, 2)               \
  X(ogemm, ofn, f32_ogemm_4x32__avx512f, F32, 4, 2)               \
  X(ogemm, ofn, f32_ogemm_5x32__avx512f, F32, 5, 2)               \
  X(ogemm, ofn, f32_ogemm_6x32__avx512f, F32, 6, 2)               \
  X(ogemm, ofn, f32_ogemm_7x32__avx512f, F32, 7, 2)               \
  X(ogemm, ofn, f32_ogemm_8x32__avx512f, F32, 8, 2)               \
  X(ogemm, ofn, f32_ogemm_9x32__avx512f, F32, 9, 2)               \
  X(ogemm, ofn, f32_ogemm_10x32__avx512f, F32, 10, 2)             \
  X(ogemm, ofn, f32_ogemm_11x32__avx512f, F32, 11, 2)             \
  X(ogemm, ofn, f32_ogemm_12x32__avx512f, F32, 12, 2)             \
  X(kgemm, kfn, f32_kgemm_1x32__avx512f, F32, 1, 2)               \
  X(kgemm, kfn, f32_kgemm_2x32__avx512f, F32, 2, 2)               \
  X(kgemm, kfn, f32_kgemm_3x32__avx512f, F32, 3, 2)               \
  X(kgemm, kfn, f32_kgemm_4x32__avx512f, F32, 4, 2)               \
  X(kgemm, kfn, f32_kgemm_5x32__avx512f, F32, 5, 2)               \
  X(kgemm, kfn, f32_kgemm_6x32__avx512f, F32, 6, 2)               \
  X(kgemm, kfn, f32_kgemm_7x32__avx512f, F32, 7, 2)               \
  X(kgemm, kfn, f32_kgemm_8x32__avx512f, F32, 8, 2)               \
  X(kgemm, kfn, f32_kgemm_9x32__avx512f, F32, 9, 2)               \
  X(kgemm, kfn, f32_kgemm_10x32__avx512f, F32, 10, 2)             \
  X(kgemm, kfn, f32_kgemm_11x32__avx512f, F32, 11, 2)             \
  X(kgemm, kfn, f32_kgemm_12x32__avx512f, F32, 12, 2)             \
  X(rgemm, rfn, f32_rgemm_1x32__avx512f, F32, 1, 2)               \
  X(rgemm, rfn, f32_rgemm_2x32__avx512f, F32, 2, 2)               \
  X(rgemm, rfn, f32_rgemm_3x32__avx512f, F32, 3, 2)               \
  X(rgemm, rfn, f32_rgemm_4x32__avx512f, F32, 4, 2)               \
  X(rgemm, rfn, f32_rgemm_5x32__avx512f, F32, 5, 2)               \
  X(rgemm, rfn, f32_rgemm_6x32__avx512f, F32, 6, 2)               \
  X(rgemm, rfn, f32_rgemm_7x32__avx512f, F32, 7, 2)               \
  X(rgemm, rfn, f32_rgemm_8x32__avx512f, F32, 8, 2)               \
  X(rgemm, rfn, f32_rgemm_9x32__avx512f, F32, 9, 2)               \
  X(rgemm, rfn, f32_rgemm_10x32__avx512f, F32, 10, 2)             \
  X(rgemm, rfn, f32_rgemm_11x32__avx512f, F32, 11, 2)             \
  X(rgemm, rfn, f32_rgemm_12x32__avx512f, F32, 12, 2)             \
  X(gemm, nfn, f32_gemm_1x16__avx512f, F32, 1, 1)               \
  X(gemm, nfn, f32_gemm_2x16__avx512f, F32, 2, 1)               \
  X(gemm, nfn, f32_gemm_3x16__avx512f, F32, 3, 1)               \
  X(gemm, nfn, f32_gemm_4x16__avx512f, F32, 4, 1)               \
  X(gemm, nfn, f32_gemm_5x16__avx512f, F32, 5, 1)               \
  X(gemm, nfn, f32_gemm_6x16__avx512f, F32, 6, 1)               \
  X(gemm, nfn, f32_gemm_7x16__avx512f, F32, 7, 1)               \
  X(gemm, nfn, f32_gemm_8x16__avx512f, F32, 8, 1)               \
  X(gemm, nfn, f32_gemm_9x16__avx512f, F32, 9, 1)               \
  X(gemm, nfn, f32_gemm_10x16__avx512f, F32, 10, 1)             \
  X(gemm, nfn, f32_gemm_11x16__avx512f, F32, 11, 1)             \
  X(gemm, nfn, f32_gemm_12x16__avx512f, F32, 12, 1)             \
  X(igemm, nifn, f32_igemm_1x16__avx512f, F32, 1, 1)            \
  X(igemm, nifn, f32_igemm_2x16__avx512f, F32, 2, 1)            \
  X(igemm, nifn, f32_igemm_3x16__avx512f, F32, 3, 1)            \
  X(igemm, nifn, f32_igemm_4x16__avx512f, F32, 4, 1)            \
  X(igemm, nifn, f32_igemm_5x16__avx512f, F32, 5, 1)            \
  X(igemm, nifn, f32_igemm_6x16__avx512f, F32, 6, 1)            \
  X(igemm, nifn, f32_igemm_7x16__avx512f, F32, 7, 1)            \
  X(igemm, nifn, f32_igemm_8x16__avx512f, F32, 8, 1)            \
  X(igemm, nifn, f32_igemm_9x16__avx512f, F32, 9, 1)            \
  X(igemm, nifn, f32_igemm_10x16__avx512f, F32, 10, 1)          \
  X(igemm, nifn, f32_igemm_11x16__avx512f, F32, 11, 1)          \
  X(igemm, nifn, f32_igemm_12x16__avx512f, F32, 12, 1)          \
  X(ogemm, nofn, f32_ogemm_1x16__avx512f, F32, 1, 1)            \
  X(ogemm, nofn, f32_ogemm_2x16__avx512f, F32, 2, 1)            \
  X(ogemm, nofn, f32_ogemm_3x16__avx512f, F32, 3, 1)            \
  X(ogemm, nofn, f32_ogemm_4x16__avx512f, F32, 4, 1)            \
  X(ogemm, nofn, f32_ogemm_5x16__avx512f, F32, 5, 1)            \
  X(ogemm, nofn, f32_ogemm_6x16__avx512f, F32, 6, 1)            \
  X(ogemm, nofn, f32_ogemm_7x16__avx512f, F32, 7, 1)            \
  X(ogemm, nofn, f32_ogemm_8x16__avx512f, F32, 8, 1)            \
  X(ogemm, nofn, f32_ogemm_9x16__avx512f, F32, 9, 1)            \
  X(ogemm, nofn, f32_ogemm_10x16__avx512f, F32, 10, 1)          \
  X(ogemm, nofn, f32_ogemm_11x16__avx512f, F32, 11, 1)          \
  X(ogemm, nofn, f32_ogemm_12x16__avx512f, F32, 12, 1)          \
  X(kgemm, nkfn, f32_kgemm_1x16__avx512f, F32, 1, 1)            \
  X(kgemm, nkfn, f32_kgemm_2x16__avx512f, F32, 2, 1)            \
  X(kgemm, nkfn, f32_kgemm_3x16__avx512f, F32, 3, 1)            \
  X(kgemm, nkfn, f32_kgemm_4x16__avx512f, F32, 4, 1)            \
  X(kgemm, nkfn, f32_kgemm_5x16__avx512f, F32, 5, 1)            \
  X(kgemm, nkfn, f32_kgemm_6x16__avx512f, F32, 6, 1)            \
  X(kgemm, nkfn, f32_kgemm_7x16__avx512f, F32, 7, 1)            \
  X(kgemm, nkfn, f32_kgemm_8x16__avx512f, F32, 8, 1)            \
  X(kgemm, nkfn, f32_kgemm_9x16__avx512f, F32, 9, 1)            \
  X(kgemm, nkfn, f32_kgemm_10x16__avx512f, F32, 10, 1)          \
  X(kgemm, nkfn, f32_kgemm_11x16__avx512f, F32, 11, 1)          \
  X(kgemm, nkfn, f32_kgemm_12x16__avx512f, F32, 12, 1)          \
  X(gemm, wfn, f32_gemm_1x64__avx512f, F32, 1, 4)                 \
  X(gemm, wfn, f32_gemm_2x64__avx512f, F32, 2, 4)                 \
  X(gemm, wfn, f32_gemm_3x64__avx512f, F32, 3, 4)                 \
  X(igemm, wifn, f32_igemm_1x64__avx512f, F32, 1, 4)              \
  X(igemm, wifn, f32_igemm_2x64__avx512f, F32, 2, 4)              \
  X(igemm, wifn, f32_igemm_3x64__avx512f, F32, 3, 4)              \
  X(ogemm, wofn, f32_ogemm_1x64__avx512f, F32, 1, 4)              \
  X(ogemm, wofn, f32_ogemm_2x64__avx512f, F32, 2, 4)              \
  X(ogemm, wofn, f32_ogemm_3x64__avx512f, F32, 3, 4)              \
  X(dot, dot, f32_dot_1x4c16__avx512f, F32, 1, 4)                 \
  X(dot, dot, f32_dot_2x4c16__avx512f, F32, 2, 4)                 \
  X(dot, dot, f32_dot_3x4c16__avx512f, F32, 3, 4)                 \
  X(dot, dot, f32_dot_4x4c16__avx512f, F32, 4, 4)                 \
  X(dot, dot, f32_dot_5x4c16__avx512f, F32, 5, 4)                 \
  X(dot, dot, f32_dot_6x4c16__avx512f, F32, 6, 4)                 \
  X(transpose_blocks, transpose, f32_transpose_32__avx512f, F32, 0, 32) \
  X(gemm, fn, f64_gemm_1x16__avx512f, F64, 1, 2)                  \
  X(gemm, fn, f64_gemm_2x16__avx512f, F64, 2, 2)                  \
  X(gemm, fn, f64_gemm_3x16__avx512f, F64, 3, 2)                  \
  X(gemm, fn, f64_gemm_4x16__avx512f, F64, 4, 2)                  \
  X(gemm, fn, f64_gemm_5x16__avx512f, F64, 5, 2)                  \
  X(gemm, fn, f64_gemm_6x16__avx512f, F64, 6, 2)                  \
  X(gemm, fn, f64_gemm_7x16__avx512f, F64, 7, 2)                  \
  X(gemm, fn, f64_gemm_8x16__avx512f, F64, 8, 2)                  \
  X(gemm, fn, f64_gemm_9x16__avx512f, F64, 9, 2)                  \
  X(gemm, fn, f64_gemm_10x16__avx512f, F64, 10, 2)                \
  X(gemm, fn, f64_gemm_11x16__avx512f, F64, 11, 2)                \
  X(gemm, fn, f64_gemm_12x16__avx512f, F64, 12, 2)                \
  X(igemm, ifn, f64_igemm_1x16__avx512f, F64, 1, 2)               \
  X(igemm, ifn, f64_igemm_2x16__avx512f, F64, 2, 2)               \
  X(igemm, ifn, f64_igemm_3x16__avx512f, F64, 3, 2)               \
  X(igemm, ifn, f64_igemm_4x16__avx512f, F64, 4, 2)               \
  X(igemm, ifn, f64_igemm_5x16__avx512f, F64, 5, 2)               \
  X(igemm, ifn, f64_igemm_6x16__avx512f, F64, 6, 2)               \
  X(igemm, ifn, f64_igemm_7x16__avx512f, F64, 7, 2)               \
  X(igemm, ifn, f64_igemm_8x16__avx512f, F64, 8, 2)               \
  X(igemm, ifn, f64_igemm_9x16__avx512f, F64, 9, 2)               \
  X(igemm, ifn, f64_igemm_10x16__avx512f, F64, 10, 2)             \
  X(igemm, ifn, f64_igemm_11x16__avx512f, F64, 11, 2)             \
  X(igemm, ifn, f64_igemm_12x16__avx512f, F64, 12, 2)             \
  X(ogemm, ofn, f64_ogemm_1x16__avx512f, F64, 1, 2)               \
  X(ogemm, ofn, f64_ogemm_2x16__avx512f, F64, 2, 2)               \
  X(ogemm, ofn, f64_ogemm_3x16__avx512f, F64, 3, 2)               \
  X(ogemm, ofn, f64_ogemm_4x16__avx512f, F64, 4, 2)               \
  X(ogemm, ofn, f64_ogemm_5x16__avx512f, F64, 5, 2)               \
  X(ogemm, ofn, f64_ogemm_6x16__avx512f, F64, 6, 2)               \
  X(ogemm, ofn, f64_ogemm_7x16__avx512f, F64, 7, 2)               \
  X(ogemm, ofn, f64_ogemm_8x16__avx512f, F64, 8, 2)               \
  X(ogemm, ofn, f64_ogemm_9x16__avx512f, F64, 9, 2)               \
  X(ogemm, ofn, f64_ogemm_10x16__avx512f, F64, 10, 2)             \
  X(ogemm, ofn, f64_ogemm_11x16__avx512f, F64, 11, 2)             \
  X(ogemm, ofn, f64_ogemm_12x16__avx512f, F64, 12, 2)             \
  X(kgemm, kfn, f64_kgemm_1x16__avx512f, F64, 1, 2)               \
  X(kgemm, kfn, f64_kgemm_2x16__avx512f, F64, 2, 2)               \
  X(kgemm, kfn, f64_kgemm_3x16__avx512f, F64, 3, 2)               \
  X(kgemm, kfn, f64_kgemm_4x16__avx512f, F64, 4, 2)               \
  X(kgemm, kfn, f64_kgemm_5x16__avx512f, F64, 5, 2)               \
  X(kgemm, kfn, f64_kgemm_6x16__avx512f, F64, 6, 2)               \
  X(kgemm, kfn, f64_kgemm_7x16__avx512f, F64, 7, 2)               \
  X(kgemm, kfn, f64_kgemm_8x16__avx512f, F64, 8, 2)               \
  X(kgemm, kfn, f64_kgemm_9x16__avx512f, F64, 9, 2)               \
  X(kgemm, kfn, f64_kgemm_10x16__avx512f, F64, 10, 2)             \
  X(kgemm, kfn, f64_kgemm_11x16__avx512f, F64, 11, 2)             \
  X(kgemm, kfn, f64_kgemm_12x16__avx512f, F64, 12, 2)             \
  X(rgemm, rfn, f64_rgemm_1x16__avx512f, F64, 1, 2)               \
  X(rgemm, rfn, f64_rgemm_2x16__avx512f, F64, 2, 2)               \
  X(rgemm, rfn, f64_rgemm_3x16__avx512f, F64, 3, 2)               \
  X(rgemm, rfn, f64_rgemm_4x16__avx512f, F64, 4, 2)               \
  X(rgemm, rfn, f64_rgemm_5x16__avx512f, F64, 5, 2)               \
  X(rgemm, rfn, f64_rgemm_6x16__avx512f, F64, 6, 2)               \
  X(rgemm, rfn, f64_rgemm_7x16__avx512f, F64, 7, 2)               \
  X(rgemm, rfn, f64_rgemm_8x16__avx512f, F64, 8, 2)               \
  X(rgemm, rfn, f64_rgemm_9x16__avx512f, F64, 9, 2)               \
  X(rgemm, rfn, f64_rgemm_10x16__avx512f, F64, 10, 2)             \
  X(rgemm, rfn, f64_rgemm_11x16__avx512f, F64, 11, 2)             \
  X(rgemm, rfn, f64_rgemm_12x16__avx512f, F64, 12, 2)             \
  X(gemm, nfn, f64_gemm_1x8__avx512f, F64, 1, 1)                \
  X(gemm, nfn, f64_gemm_2x8__avx512f, F64, 2, 1)                \
  X(gemm, nfn, f64_gemm_3x8__avx512f, F64, 3, 1)                \
  X(gemm, nfn, f64_gemm_4x8__avx512f, F64, 4, 1)                \
  X(gemm, nfn, f64_gemm_5x8__avx512f, F64, 5, 1)                \
  X(gemm, nfn, f64_gemm_6x8__avx512f, F64, 6, 1)                \
  X(gemm, nfn, f64_gemm_7x8__avx512f, F64, 7, 1)                \
  X(gemm, nfn, f64_gemm_8x8__avx512f, F64, 8, 1)                \
  X(gemm, nfn, f64_gemm_9x8__avx512f, F64, 9, 1)                \
  X(gemm, nfn, f64_gemm_10x8__avx512f, F64, 10, 1)              \
  X(gemm, nfn, f64_gemm_11x8__avx512f, F64, 11, 1)              \
  X(gemm, nfn, f64_gemm_12x8__avx512f, F64, 12, 1)              \
  X(igemm, nifn, f64_igemm_1x8__avx512f, F64, 1, 1)             \
  X(igemm, nifn, f64_igemm_2x8__avx512f, F64, 2, 1)             \
  X(igemm, nifn, f64_igemm_3x8__avx512f, F64, 3, 1)             \
  X(igemm, nifn, f64_igemm_4x8__avx512f, F64, 4, 1)             \
  X(igemm, nifn, f64_igemm_5x8__avx512f, F64, 5, 1)             \
  X(igemm, nifn, f64_igemm_6x8__avx512f, F64, 6, 1)             \
  X(igemm, nifn, f64_igemm_7x8__avx512f, F64, 7, 1)             \
  X(igemm, nifn, f64_igemm_8x8__avx512f, F64, 8, 1)             \
  X(igemm, nifn, f64_igemm_9x8__avx512f, F64, 9, 1)             \
  X(igemm, nifn, f64_igemm_10x8__avx512f, F64, 10, 1)           \
  X(igemm, nifn, f64_igemm_11x8__avx512f, F64, 11, 1)           \
  X(igemm, nifn, f64_igemm_12x8__avx512f, F64, 12, 1)           \
  X(ogemm, nofn, f64_ogemm_1x8__avx512f, F64, 1, 1)             \
  X(ogemm, nofn, f64_ogemm_2x8__avx512f, F64, 2, 1)             \
  X(ogemm, nofn, f64_ogemm_3x8__avx512f, F64, 3, 1)             \
  X(ogemm, nofn, f64_ogemm_4x8__avx512f, F64, 4, 1)             \
  X(ogemm, nofn, f64_ogemm_5x8__avx512f, F64, 5, 1)             \
  X(ogemm, nofn, f64_ogemm_6x8__avx512f, F64, 6, 1)             \
  X(ogemm, nofn, f64_ogemm_7x8__avx512f, F64, 7, 1)             \
  X(ogemm, nofn, f64_ogemm_8x8__avx512f, F64, 8, 1)             \
  X(ogemm, nofn, f64_ogemm_9x8__avx512f, F64, 9, 1)             \
  X(ogemm, nofn, f64_ogemm_10x8__avx512f, F64, 10, 1)           \
  X(ogemm, nofn, f64_ogemm_11x8__avx512f, F64, 11, 1)           \
  X(ogemm, nofn, f64_ogemm_12x8__avx512f, F64, 12, 1)           \
  X(kgemm, nkfn, f64_kgemm_1x8__avx512f, F64, 1, 1)             \
  X(kgemm, nkfn, f64_kgemm_2x8__avx512f, F64, 2, 1)             \
  X(kgemm, nkfn, f64_kgemm_3x8__avx512f, F64, 3, 1)             \
  X(kgemm, nkfn, f64_kgemm_4x8__avx512f, F64, 4, 1)             \
  X(kgemm, nkfn, f64_kgemm_5x8__avx512f, F64, 5, 1)             \
  X(kgemm, nkfn, f64_kgemm_6x8__avx512f, F64, 6, 1)             \
  X(kgemm, nkfn, f64_kgemm_7x8__avx512f, F64, 7, 1)             \
  X(kgemm, nkfn, f64_kgemm_8x8__avx512f, F64, 8, 1)             \
  X(kgemm, nkfn, f64_kgemm_9x8__avx512f, F64, 9, 1)             \
  X(kgemm, nkfn, f64_kgemm_10x8__avx512f, F64, 10, 1)           \
  X(kgemm, nkfn, f64_kgemm_11x8__avx512f, F64, 11, 1)           \
  X(kgemm, nkfn, f64_kgemm_12x8__avx512f, F64, 12, 1)           \
  X(gemm, wfn, f64_gemm_1x32__avx512f, F64, 1, 4)                 \
  X(gemm, wfn, f64_gemm_2x32__avx512f, F64, 2, 4)                 \
  X(gemm, wfn, f64_gemm_3x32__avx512f, F64, 3, 4)                 \
  X(igemm, wifn, f64_igemm_1x32__avx512f, F64, 1, 4)              \
  X(igemm, wifn, f64_igemm_2x32__avx512f, F64, 2, 4)              \
  X(igemm, wifn, f64_igemm_3x32__avx512f, F64, 3, 4)              \
  X(ogemm, wofn, f64_ogemm_1x32__avx512f, F64, 1, 4)              \
  X(ogemm, wofn, f64_ogemm_2x32__avx512f, F64, 2, 4)              \
  X(ogemm, wofn, f64_ogemm_3x32__avx512f, F64, 3, 4)              \
  X(dot, dot, f64_dot_1x4c8__avx512f, F64, 1, 4)                  \
  X(dot, dot, f64_dot_2x4c8__avx512f, F64, 2, 4)                  \
  X(dot, dot, f64_dot_3x4c8__avx512f, F64, 3, 4)                  \
  X(dot, dot, f64_dot_4x4c8__avx512f, F64, 4, 4)                  \
  X(dot, dot, f64_dot_5x4c8__avx512f, F64, 5, 4)                  \
  X(dot, dot, f64_dot_6x4c8__avx512f, F64, 6, 4)                  \
  X(transpose_blocks, transpose, f64_transpose_16__avx512f, F64, 0, 16)
