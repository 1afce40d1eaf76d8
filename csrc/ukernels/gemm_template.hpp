// The one register-blocked GEMM micro-kernel, written once over a vector-ops traits class and
// instantiated by each ISA's translation unit (generic, avx2, avx512) with its own flags.
//
//   c[i * ldc + j] (+)= sum_{k < kc} a[k * MR + i] * b[k * NR + j],   NR = NV * Ops::kWidth
//
// Per k: NV vector loads of b, MR broadcasts of a, MR * NV FMAs into MR * NV accumulators that
// live in registers for the whole k loop (e.g. 6x16 fp32 on AVX2: 12 ymm accumulators).
//
// Include ONLY inside an anonymous namespace of an ISA translation unit: the instantiations must
// not be merged by the linker with those compiled for another ISA.
#include <cstdint>
#include <utility>

// How row k of B is found: kPacked b + k * NR, kRows b_rows[k], kOffsets b + b_off[k].
enum class BRows { kPacked, kRows, kOffsets };

// How A[i][k] is found: kARows false: a[k * MR + i] (packed panel), true: a[i * lda + k].
template <class Ops, int MR, int NV, BRows kMode, bool kARows = false>
void gemm_body(int64_t kc, const typename Ops::T* a, const typename Ops::T* b,
               const typename Ops::T* const* b_rows, const int64_t* b_off,
               typename Ops::T* c, int64_t ldc, int accumulate, int64_t lda = 0) {
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  constexpr int NR = NV * W;
  // Full unrolling early lets the compiler keep acc in registers (no stack copies).
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) acc[i][j] = Ops::zero();
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
    const typename Ops::T* brow = kMode == BRows::kRows      ? b_rows[k]
                                  : kMode == BRows::kOffsets ? b + b_off[k]
                                                             : b;
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) bv[j] = Ops::load(brow + j * W);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V av = Ops::broadcast(kARows ? a + i * lda : a + i);
#pragma GCC unroll 16
      for (int j = 0; j < NV; ++j) acc[i][j] = Ops::fma(av, bv[j], acc[i][j]);
    }
    a += kARows ? 1 : MR;
    if (kMode == BRows::kPacked) b += NR;
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) {
      typename Ops::T* p = c + i * ldc + j * W;
      V r = acc[i][j];
      if (accumulate) r = Ops::add(Ops::load(p), r);
      Ops::store(p, r);
    }
  }
}

template <class Ops, int MR, int NV>
void gemm_ukernel(int64_t kc, const typename Ops::T* a, const typename Ops::T* b,
                  typename Ops::T* c, int64_t ldc, int accumulate) {
  gemm_body<Ops, MR, NV, BRows::kPacked>(kc, a, b, nullptr, nullptr, c, ldc, accumulate);
}

//   c[i * ldc + j] (+)= sum_{k < kc} a[i * lda + k] * b[k * NR + j]   (A rows in place)
template <class Ops, int MR, int NV>
void rgemm_ukernel(int64_t kc, const typename Ops::T* a, int64_t lda, const typename Ops::T* b,
                   typename Ops::T* c, int64_t ldc, int accumulate) {
  gemm_body<Ops, MR, NV, BRows::kPacked, true>(kc, a, b, nullptr, nullptr, c, ldc, accumulate,
                                               lda);
}

// panel[k * NR + t] = rows[t * ld + k] for k < kc, t < NR: the B panel of rgemm from NR rows
// that are contiguous along k.
template <typename T, int NR>
void transpose_panel(const T* rows, int64_t ld, int64_t kc, T* panel) {
  for (int64_t k = 0; k < kc; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < NR; ++t) panel[k * NR + t] = rows[t * ld + k];
}

//   c[i * ldc + j] (+)= sum_{k < kc} a[k * MR + i] * b_rows[k][j]
template <class Ops, int MR, int NV>
void igemm_ukernel(int64_t kc, const typename Ops::T* a, const typename Ops::T* const* b_rows,
                   typename Ops::T* c, int64_t ldc, int accumulate) {
  gemm_body<Ops, MR, NV, BRows::kRows>(kc, a, nullptr, b_rows, nullptr, c, ldc, accumulate);
}

//   c[i * ldc + j] (+)= sum_{k < kc} a[k * MR + i] * (b + b_off[k])[j]
template <class Ops, int MR, int NV>
void ogemm_ukernel(int64_t kc, const typename Ops::T* a, const typename Ops::T* b,
                   const int64_t* b_off, typename Ops::T* c, int64_t ldc, int accumulate) {
  gemm_body<Ops, MR, NV, BRows::kOffsets>(kc, a, b, nullptr, b_off, c, ldc, accumulate);
}

// Dot-product form for reductions whose operands are both contiguous along k (weight_grad):
//
//   c[i * ldc + j] (+)= sum_{k < kc} a[i * lda + k] * b[j * ldb + k],   i < MR, j < NC,
//   kc a multiple of W = Ops::kWidth.
//
// Per W consecutive k: MR + NC vector loads and MR * NC FMAs into MR * NC accumulators; lane l
// of an accumulator sums the k = l (mod W) in increasing k, then Ops::reduce adds the lanes in
// a fixed order (a pairwise tree on AVX2).  The order depends on kc and W only, never on where
// the tile lies.
template <class Ops, int MR, int NC>
void dot_ukernel(int64_t kc, const typename Ops::T* a, int64_t lda, const typename Ops::T* b,
                 int64_t ldb, typename Ops::T* c, int64_t ldc, int accumulate) {
  using V = typename Ops::V;
  using T = typename Ops::T;
  constexpr int W = Ops::kWidth;
  V acc[MR][NC];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NC; ++j) acc[i][j] = Ops::zero();
  for (int64_t k = 0; k < kc; k += W) {
    V bv[NC];
#pragma GCC unroll 16
    for (int j = 0; j < NC; ++j) bv[j] = Ops::load(b + j * ldb + k);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V av = Ops::load(a + i * lda + k);
#pragma GCC unroll 16
      for (int j = 0; j < NC; ++j) acc[i][j] = Ops::fma(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NC; ++j) {
      const T sum = Ops::reduce(acc[i][j]);
      T* p = c + i * ldc + j;
      *p = accumulate ? *p + sum : sum;
    }
  }
}

// Fill table.dot[1..MR] with dot_ukernel<Ops, r, NC>.
template <class Ops, int NC, class Table, std::size_t... R>
void fill_dot_table(Table& table, std::index_sequence<R...>) {
  table.dot_mr = static_cast<int>(sizeof...(R));
  table.dot_nc = NC;
  table.dot_kw = Ops::kWidth;
  ((table.dot[R + 1] = &dot_ukernel<Ops, static_cast<int>(R + 1), NC>), ...);
}

// Fill table.fn[1..MR] with gemm_ukernel<Ops, r, NV>.
template <class Ops, int NV, class Table, std::size_t... R>
void fill_gemm_table(Table& table, std::index_sequence<R...>) {
  table.mr = static_cast<int>(sizeof...(R));
  table.nr = NV * Ops::kWidth;
  ((table.fn[R + 1] = &gemm_ukernel<Ops, static_cast<int>(R + 1), NV>), ...);
  ((table.ifn[R + 1] = &igemm_ukernel<Ops, static_cast<int>(R + 1), NV>), ...);
  ((table.ofn[R + 1] = &ogemm_ukernel<Ops, static_cast<int>(R + 1), NV>), ...);
  ((table.rfn[R + 1] = &rgemm_ukernel<Ops, static_cast<int>(R + 1), NV>), ...);
  table.transpose = &transpose_panel<typename Ops::T, NV * Ops::kWidth>;
}

// Fill table.wfn/wifn[1..kWideMR] with the NV-vector-wide kernels for few rows.
template <class Ops, int NV, class Table, std::size_t... R>
void fill_wide_table(Table& table, std::index_sequence<R...>) {
  static_assert(sizeof...(R) == tconv::kWideMR);
  table.wide_nr = NV * Ops::kWidth;
  ((table.wfn[R + 1] = &gemm_ukernel<Ops, static_cast<int>(R + 1), NV>), ...);
  ((table.wifn[R + 1] = &igemm_ukernel<Ops, static_cast<int>(R + 1), NV>), ...);
  ((table.wofn[R + 1] = &ogemm_ukernel<Ops, static_cast<int>(R + 1), NV>), ...);
}
