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
#include <algorithm>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "tconv/assert.hpp"
#include "tconv/ukernels.hpp"

// The named kernels (TCONV_DEFINE_*) inline everything they call (flatten), so that the hot
// loop is the named function itself and not a template instance behind a tail call.  (Marking
// the templates always_inline instead changed gcc's vectorisation of some scalar kernels:
// generic's igemm 4x8 spilled more and ran at 0.72x.)
#define TCONV_UKERNEL_NAMED __attribute__((flatten))

// Whether the vector ops have transpose16 (v[l].lane[t] <-> v[t].lane[l] over 16 vectors of 16
// lanes: the AVX-512 float table): then the dot kernels add their lanes and the transpose
// kernel moves its panel 16 x 16 at a time with it.
template <class Ops, class = void>
struct HasTranspose16 : std::false_type {};
template <class Ops>
struct HasTranspose16<
    Ops, std::void_t<decltype(Ops::transpose16(
             *static_cast<typename Ops::V (*)[16]>(nullptr)))>>
    : std::bool_constant<Ops::kWidth == 16> {};

// The same for 8 vectors of 8 lanes (transpose8: the AVX-512 double table).
template <class Ops, class = void>
struct HasTranspose8 : std::false_type {};
template <class Ops>
struct HasTranspose8<
    Ops, std::void_t<decltype(Ops::transpose8(*static_cast<typename Ops::V (*)[8]>(nullptr)))>>
    : std::bool_constant<Ops::kWidth == 8> {};

// The lanes of a square block of vectors that Ops can transpose in registers (16: transpose16,
// 8: transpose8, 0: neither), and that transpose, so the code below is written once for both.
template <class Ops>
constexpr int kBlockLanes = HasTranspose16<Ops>::value ? 16 : HasTranspose8<Ops>::value ? 8 : 0;

template <class Ops, int W>
inline __attribute__((always_inline)) void transpose_block(typename Ops::V (&v)[W]) {
  static_assert(W == kBlockLanes<Ops>, "the block Ops transposes");
  if constexpr (W == 16)
    Ops::transpose16(v);
  else
    Ops::transpose8(v);
}

// Whether Ops is a portable emulation of an ISA's registers (EmulatedOps: kEmulated).
template <class Ops, class = void>
struct IsEmulated : std::false_type {};
template <class Ops>
struct IsEmulated<Ops, std::void_t<decltype(Ops::kEmulated)>>
    : std::bool_constant<Ops::kEmulated> {};

// gemm_body's store with an Epilogue (ukernels.hpp): the same sums, then + bias[i], and the
// Inf/NaN test as a sum over the stored values of r * -1 + r, which is exactly 0 for a finite
// r and NaN for Inf or NaN.  Unrolled, so that the accumulators stay registers; the emulated
// lanes (in memory) run the same steps as a loop.
template <class Ops, int MR, int NV>
void store_epilogue(const typename Ops::V (&acc)[MR][NV], typename Ops::T* c, int64_t ldc,
                    int accumulate, const tconv::Epilogue<typename Ops::T>& ep) {
  using V = typename Ops::V;
  using T = typename Ops::T;
  constexpr int W = Ops::kWidth;
  const T minus_one = T(-1);
  const V m1 = Ops::broadcast(&minus_one);
  V bad = Ops::zero();
  const auto row = [&](int i) {
    const V bias = ep.bias != nullptr ? Ops::broadcast(ep.bias + i) : Ops::zero();
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) {
      T* p = c + i * ldc + j * W;
      const T* from = ep.partial != nullptr ? ep.partial + i * ep.ld_partial + j * W : p;
      V r = acc[i][j];
      if (accumulate) r = Ops::add(Ops::load(from), r);
      if (ep.bias != nullptr) r = Ops::add(r, bias);
      bad = Ops::add(bad, Ops::fma(r, m1, r));
      Ops::store(p, r);
    }
  };
  if constexpr (IsEmulated<Ops>::value) {
    for (int i = 0; i < MR; ++i) row(i);
  } else {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) row(i);
  }
  if (ep.nonfinite == nullptr) return;
  alignas(64) T lanes[W];
  Ops::store(lanes, bad);
  for (int l = 0; l < W; ++l)
    if (lanes[l] != lanes[l]) *ep.nonfinite = 1;
}

// How row k of B is found: kPacked b + k * NR, kRows b_rows[k], kOffsets b + b_off[k];
// kListed: as kOffsets, and A's row is a_rows[k] of the panel (a + a_rows[k] * MR), so a
// caller skips the rows it knows to be zero in every column of the tile.
enum class BRows { kPacked, kRows, kOffsets, kListed };

// How A[i][k] is found: kARows false: a[k * MR + i] (packed panel), true: a[i * lda + k].
template <class Ops, int MR, int NV, BRows kMode, bool kARows = false>
void gemm_body(int64_t kc, const typename Ops::T* a, const typename Ops::T* b,
               const typename Ops::T* const* b_rows, const int64_t* b_off,
               typename Ops::T* c, int64_t ldc, int accumulate,
               const tconv::Epilogue<typename Ops::T>* ep, int64_t lda = 0,
               const int64_t* a_rows = nullptr) {
  using V = typename Ops::V;
  constexpr int W = Ops::kWidth;
  constexpr int NR = NV * W;
  // Full unrolling early lets the compiler keep acc in registers (no stack copies).
  V acc[MR][NV];
  [[maybe_unused]] const typename Ops::T* const a_list = a;  // kListed: the panel's first row
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int j = 0; j < NV; ++j) acc[i][j] = Ops::zero();
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
    if constexpr (kMode == BRows::kListed) a = a_list + a_rows[k] * MR;
    const typename Ops::T* brow = kMode == BRows::kRows                                 ? b_rows[k]
                                  : kMode == BRows::kOffsets || kMode == BRows::kListed ? b + b_off[k]
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
  if (ep != nullptr) {
    store_epilogue<Ops, MR, NV>(acc, c, ldc, accumulate, *ep);
    return;
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
                  typename Ops::T* c, int64_t ldc, int accumulate,
                  const tconv::Epilogue<typename Ops::T>* ep) {
  gemm_body<Ops, MR, NV, BRows::kPacked>(kc, a, b, nullptr, nullptr, c, ldc, accumulate, ep);
}

//   c[i * ldc + j] (+)= sum_{k < kc} a[i * lda + k] * b[k * NR + j]   (A rows in place)
template <class Ops, int MR, int NV>
void rgemm_ukernel(int64_t kc, const typename Ops::T* a, int64_t lda, const typename Ops::T* b,
                   typename Ops::T* c, int64_t ldc, int accumulate) {
  gemm_body<Ops, MR, NV, BRows::kPacked, true>(kc, a, b, nullptr, nullptr, c, ldc, accumulate,
                                               nullptr, lda);
}

// panel[k * NR + t] = rows[t * ld + k] for k < kc, t < NR: the B panel of rgemm from NR rows
// that are contiguous along k.
template <typename T, int NR>
void transpose_panel(const T* rows, int64_t ld, int64_t kc, T* panel) {
  for (int64_t k = 0; k < kc; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < NR; ++t) panel[k * NR + t] = rows[t * ld + k];
}

// transpose_panel by W x W blocks of transpose_block (W = kBlockLanes<Ops>: W loads, W stores,
// no scalar moves), the last kc % W by the loop above: the same values in the same places.
template <class Ops, int NR>
void transpose_panel_blocks(const typename Ops::T* rows, int64_t ld, int64_t kc,
                            typename Ops::T* panel) {
  constexpr int W = kBlockLanes<Ops>;
  static_assert(W != 0 && NR % W == 0, "W x W blocks of lanes");
  using V = typename Ops::V;
  int64_t k = 0;
  for (; k + W <= kc; k += W) {
    for (int h = 0; h < NR; h += W) {
      V v[W];
#pragma GCC unroll 16
      for (int t = 0; t < W; ++t) v[t] = Ops::load(rows + (h + t) * ld + k);
      transpose_block<Ops, W>(v);  // v[l].lane[t] = rows[(h + t) * ld + k + l]
#pragma GCC unroll 16
      for (int l = 0; l < W; ++l) Ops::store(panel + (k + l) * NR + h, v[l]);
    }
  }
  transpose_panel<typename Ops::T, NR>(rows + k, ld, kc - k, panel + k * NR);
}

//   c[i * ldc + j] (+)= sum_{k < kc} a[k * MR + i] * b_rows[k][j]
template <class Ops, int MR, int NV>
void igemm_ukernel(int64_t kc, const typename Ops::T* a, const typename Ops::T* const* b_rows,
                   typename Ops::T* c, int64_t ldc, int accumulate,
                   const tconv::Epilogue<typename Ops::T>* ep) {
  gemm_body<Ops, MR, NV, BRows::kRows>(kc, a, nullptr, b_rows, nullptr, c, ldc, accumulate, ep);
}

//   c[i * ldc + j] (+)= sum_{k < kc} a[k * MR + i] * (b + b_off[k])[j]
template <class Ops, int MR, int NV>
void ogemm_ukernel(int64_t kc, const typename Ops::T* a, const typename Ops::T* b,
                   const int64_t* b_off, typename Ops::T* c, int64_t ldc, int accumulate,
                   const tconv::Epilogue<typename Ops::T>* ep) {
  gemm_body<Ops, MR, NV, BRows::kOffsets>(kc, a, b, nullptr, b_off, c, ldc, accumulate, ep);
}

//   c[i * ldc + j] (+)= sum_{l < kn} a[a_rows[l] * MR + i] * b[b_off[l] + j]   (listed rows:
// kn >= 0 terms in the order listed; kn = 0 stores zeros, or leaves c as it was)
template <class Ops, int MR, int NV>
void kgemm_ukernel(int64_t kn, const typename Ops::T* a, const int64_t* a_rows,
                   const typename Ops::T* b, const int64_t* b_off, typename Ops::T* c,
                   int64_t ldc, int accumulate, const tconv::Epilogue<typename Ops::T>* ep) {
  gemm_body<Ops, MR, NV, BRows::kListed>(kn, a, b, nullptr, b_off, c, ldc, accumulate, ep, 0,
                                         a_rows);
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
  if constexpr (kBlockLanes<Ops> != 0) {
    // Ops::reduce's order, ((l0 + l1) + l2) + ... + l(W-1), for W accumulators at once:
    // transposed, lane e - e0 of sums[l] is lane l of accumulator e = i * NC + j (past the
    // tile's last accumulator: zeros).
    constexpr int W = kBlockLanes<Ops>;
    constexpr int kAcc = MR * NC;
    alignas(64) T lane_sums[(kAcc + W - 1) / W * W];
#pragma GCC unroll 4
    for (int e0 = 0; e0 < kAcc; e0 += W) {
      V sums[W];
#pragma GCC unroll 16
      for (int e = 0; e < W; ++e)
        sums[e] = e0 + e < kAcc ? acc[(e0 + e) / NC][(e0 + e) % NC] : Ops::zero();
      transpose_block<Ops, W>(sums);
      V total = sums[0];
#pragma GCC unroll 16
      for (int l = 1; l < W; ++l) total = Ops::add(total, sums[l]);
      Ops::store(lane_sums + e0, total);
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
      for (int j = 0; j < NC; ++j) {
        T* p = c + i * ldc + j;
        *p = accumulate ? *p + lane_sums[i * NC + j] : lane_sums[i * NC + j];
      }
    }
  } else {
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
}

// ---- Named micro-kernels ----------------------------------------------------------------
// Each table slot is filled by a real, non-template function whose name says what it is,
//   <dtype>_<kind>_<rows>x<columns>[c<k width>]__<isa>     e.g. f32_gemm_6x16__avx2_fma,
// so that a profiler, a debugger or a grep shows a kernel a human can find.  Each function is a
// thin wrapper that checks the kernel's preconditions (TCONV_ASSERT: Debug and sanitizer builds
// only) and runs the one template above.  An ISA translation unit lists its kernels once, as
//
//   #define MY_ISA_UKERNELS(X)  X(kind, slot, name, Ops, rows, n) ...
//
//   kind  gemm | igemm | ogemm | kgemm | rgemm | dot | transpose | transpose16 | transpose8: which
//         template (TCONV_DEFINE_<kind>)
//   slot  the GemmKernels field it fills: fn ifn ofn kfn rfn | wfn wifn wofn |
//         nfn nifn nofn nkfn | dot | transpose
//   rows  MR, the index in the slot (0 for transpose)
//   n     NV (vectors of columns) for the gemm kinds, NC (columns) for dot, NR for transpose
//
// and expands it twice: MY_ISA_UKERNELS(TCONV_UKERNEL_DEFINE) inside namespace tconv::ukernels
// defines the functions, MY_ISA_UKERNELS(TCONV_UKERNEL_FILL) inside a function with a local
// `tconv::IsaKernels table` fills the slots and the table's tile sizes and name list.

#define TCONV_UKERNEL_DEFINE(kind, slot, name, Ops, rows, n) TCONV_DEFINE_##kind(name, Ops, rows, n)

#define TCONV_UKERNEL_FILL(kind, slot, name, Ops, rows, n)                                   \
  fill_ukernel_slot<Ops>(table, ukernel_table_of<Ops::T>(table).slot, &name, #name, #slot, rows, \
                         n);

// Preconditions of every gemm kind: kc >= 1, accumulate 0 or 1, rows of C at least NR apart.
#define TCONV_GEMM_ASSERTS(Ops, NV)                      \
  TCONV_ASSERT(kc >= 1);                                 \
  TCONV_ASSERT(a != nullptr);                            \
  TCONV_ASSERT(c != nullptr);                            \
  TCONV_ASSERT(ldc >= (NV) * Ops::kWidth);               \
  TCONV_ASSERT(accumulate == 0 || accumulate == 1)

#define TCONV_DEFINE_gemm(name, Ops, MR, NV)                                                 \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(int64_t kc, const Ops::T* a, const Ops::T* b, Ops::T* c, int64_t ldc,            \
            int accumulate, const ::tconv::Epilogue<Ops::T>* ep) {                           \
    TCONV_GEMM_ASSERTS(Ops, NV);                                                             \
    TCONV_ASSERT(b != nullptr);                                                              \
    ::gemm_ukernel<Ops, MR, NV>(kc, a, b, c, ldc, accumulate, ep);                           \
  }

#define TCONV_DEFINE_igemm(name, Ops, MR, NV)                                                \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(int64_t kc, const Ops::T* a, const Ops::T* const* b_rows, Ops::T* c, int64_t ldc, \
            int accumulate, const ::tconv::Epilogue<Ops::T>* ep) {                           \
    TCONV_GEMM_ASSERTS(Ops, NV);                                                             \
    TCONV_ASSERT(b_rows != nullptr);                                                         \
    if constexpr (::tconv::asserts_enabled())                                                \
      for (int64_t k = 0; k < kc; ++k) TCONV_ASSERT(b_rows[k] != nullptr);                   \
    ::igemm_ukernel<Ops, MR, NV>(kc, a, b_rows, c, ldc, accumulate, ep);                     \
  }

#define TCONV_DEFINE_ogemm(name, Ops, MR, NV)                                                \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(int64_t kc, const Ops::T* a, const Ops::T* b, const int64_t* b_off, Ops::T* c,   \
            int64_t ldc, int accumulate, const ::tconv::Epilogue<Ops::T>* ep) {              \
    TCONV_GEMM_ASSERTS(Ops, NV);                                                             \
    TCONV_ASSERT(b != nullptr);                                                              \
    TCONV_ASSERT(b_off != nullptr);                                                          \
    ::ogemm_ukernel<Ops, MR, NV>(kc, a, b, b_off, c, ldc, accumulate, ep);                   \
  }

// kn may be 0 (a tile none of whose listed rows is left: its sums are zero).
#define TCONV_DEFINE_kgemm(name, Ops, MR, NV)                                                \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(int64_t kn, const Ops::T* a, const int64_t* a_rows, const Ops::T* b,             \
            const int64_t* b_off, Ops::T* c, int64_t ldc, int accumulate,                    \
            const ::tconv::Epilogue<Ops::T>* ep) {                                           \
    TCONV_ASSERT(kn >= 0);                                                                   \
    TCONV_ASSERT(kn == 0 ||                                                                  \
                 (a != nullptr && a_rows != nullptr && b != nullptr && b_off != nullptr));   \
    TCONV_ASSERT(c != nullptr);                                                              \
    TCONV_ASSERT(ldc >= (NV) * Ops::kWidth);                                                 \
    TCONV_ASSERT(accumulate == 0 || accumulate == 1);                                        \
    if constexpr (::tconv::asserts_enabled())                                                \
      for (int64_t l = 0; l < kn; ++l) TCONV_ASSERT(a_rows[l] >= 0 && b_off[l] >= 0);        \
    ::kgemm_ukernel<Ops, MR, NV>(kn, a, a_rows, b, b_off, c, ldc, accumulate, ep);           \
  }

// A's rows lda apart must not overlap: lda >= kc (irrelevant for one row).
#define TCONV_DEFINE_rgemm(name, Ops, MR, NV)                                                \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(int64_t kc, const Ops::T* a, int64_t lda, const Ops::T* b, Ops::T* c,            \
            int64_t ldc, int accumulate) {                                                   \
    TCONV_GEMM_ASSERTS(Ops, NV);                                                             \
    TCONV_ASSERT(b != nullptr);                                                              \
    TCONV_ASSERT((MR) == 1 || lda >= kc);                                                    \
    ::rgemm_ukernel<Ops, MR, NV>(kc, a, lda, b, c, ldc, accumulate);                         \
  }

// kc is a whole number of vectors (the caller zero-pads the reduction up to it).
#define TCONV_DEFINE_dot(name, Ops, MR, NC)                                                  \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(int64_t kc, const Ops::T* a, int64_t lda, const Ops::T* b, int64_t ldb,          \
            Ops::T* c, int64_t ldc, int accumulate) {                                        \
    TCONV_ASSERT(kc >= 1);                                                                   \
    TCONV_ASSERT(kc % Ops::kWidth == 0);                                                     \
    TCONV_ASSERT(a != nullptr);                                                              \
    TCONV_ASSERT(b != nullptr);                                                              \
    TCONV_ASSERT(c != nullptr);                                                              \
    TCONV_ASSERT((MR) == 1 || lda >= kc);                                                    \
    TCONV_ASSERT((NC) == 1 || ldb >= kc);                                                    \
    TCONV_ASSERT(ldc >= (NC));                                                               \
    TCONV_ASSERT(accumulate == 0 || accumulate == 1);                                        \
    ::dot_ukernel<Ops, MR, NC>(kc, a, lda, b, ldb, c, ldc, accumulate);                      \
  }

#define TCONV_TRANSPOSE_ASSERTS()  \
  TCONV_ASSERT(kc >= 1);           \
  TCONV_ASSERT(rows != nullptr);   \
  TCONV_ASSERT(panel != nullptr);  \
  TCONV_ASSERT(ld >= kc)

// The block transpose (transpose_panel_blocks: same result as TCONV_DEFINE_transpose).
#define TCONV_DEFINE_transpose_blocks(name, Ops, unused_rows, NR)                            \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(const Ops::T* rows, int64_t ld, int64_t kc, Ops::T* panel) {                     \
    TCONV_TRANSPOSE_ASSERTS();                                                               \
    ::transpose_panel_blocks<Ops, NR>(rows, ld, kc, panel);                                  \
  }

#define TCONV_DEFINE_transpose(name, Ops, unused_rows, NR)                                   \
  TCONV_UKERNEL_NAMED                                                                        \
  void name(const Ops::T* rows, int64_t ld, int64_t kc, Ops::T* panel) {                     \
    TCONV_TRANSPOSE_ASSERTS();                                                               \
    ::transpose_panel<Ops::T, NR>(rows, ld, kc, panel);                                      \
  }

template <typename T>
tconv::GemmKernels<T>& ukernel_table_of(tconv::IsaKernels& table) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return table.f32;
  } else {
    return table.f64;
  }
}

// Put `fn` into its slot (an array indexed by rows, or the transpose pointer), record its name,
// and derive the table's tile sizes from the kernels that fill fn, wfn, nfn and dot.
template <class Ops, class Slot, class Fn>
void fill_ukernel_slot(tconv::IsaKernels& table, Slot& slot, Fn fn, const char* name,
                       const char* slot_name, int rows, int n) {
  tconv::GemmKernels<typename Ops::T>& g = ukernel_table_of<typename Ops::T>(table);
  if constexpr (std::is_array_v<Slot>) {
    slot[rows] = fn;
  } else {
    slot = fn;
  }
  const std::string_view s = slot_name;
  if (s == "fn") {
    g.mr = std::max(g.mr, rows);
    g.nr = n * Ops::kWidth;
  } else if (s == "nfn") {
    g.narrow_nr = n * Ops::kWidth;
  } else if (s == "wfn") {
    g.wide_nr = n * Ops::kWidth;
  } else if (s == "dot") {
    g.dot_mr = std::max(g.dot_mr, rows);
    g.dot_nc = n;
    g.dot_kw = Ops::kWidth;
  }
  table.ukernels.push_back({name, sizeof(typename Ops::T) == sizeof(float) ? "f32" : "f64",
                            slot_name, rows});
}
