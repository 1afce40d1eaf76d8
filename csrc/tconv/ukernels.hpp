// GEMM micro-kernels and the per-ISA tables that the operators dispatch through.
//
// Every tconv operator (scatter, gather, weight_grad) is an implicit GEMM  C = A * B  whose
// operands the operator packs into panels:
//
//   A panel (r rows, r <= mr):   a[k * r + i]  = A[m0 + i][k0 + k]        k < kc, i < r
//   B panel (nr columns):        b[k * nr + j] = B[k0 + k][n0 + j]        k < kc, j < nr
//   C tile  (row-major, ldc):    c[i * ldc + j] (+)= sum_{k < kc} a[k*r + i] * b[k*nr + j]
//
// The sum runs in increasing k with one accumulator per (i, j): fixed order, so results never
// depend on the thread that runs a tile.  `accumulate` = 0 overwrites c, 1 adds to it
// (c = c + block_sum).  fn[r] handles r rows, r = 1..mr.  Every kernel requires kc >= 1,
// ldc >= its tile's columns and non-null pointers; each slot holds a named function
// (NamedUkernel below) that checks these with TCONV_ASSERT in Debug and sanitizer builds.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tconv {

constexpr int kMaxMR = 12;
constexpr int kWideMR = 3;

// What a gemm, igemm, ogemm or kgemm kernel does to the values it stores when its call is the
// last K block of a tile it writes straight into the output (nullptr: nothing), so that the
// operator need not read the tile back while its rows, planes apart, share L1 sets:
//   bias       row i stores (c + block_sum) + bias[i] (c + ... only with accumulate), the
//              value a later `v + bias` would give; nullptr: no bias
//   nonfinite  set to 1 when a stored value is Inf or NaN (never cleared); nullptr: no test
//   partial    with accumulate, the earlier K blocks' sums are read from here (row i at
//              partial + i * ld_partial) instead of from c, which is then only written; so
//              they can wait in a contiguous buffer; nullptr: read from c
template <typename T>
struct Epilogue {
  const T* bias = nullptr;
  int* nonfinite = nullptr;
  const T* partial = nullptr;
  int64_t ld_partial = 0;
};

template <typename T>
using GemmUkernel = void (*)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc,
                             int accumulate, const Epilogue<T>* ep);

// Indirect variant (XNNPACK "igemm" style): row k of B is read from b_rows[k][0..nr), so the
// operator can point straight into the source array (or at a zero row) instead of packing.
template <typename T>
using IgemmUkernel = void (*)(int64_t kc, const T* a, const T* const* b_rows, T* c,
                              int64_t ldc, int accumulate, const Epilogue<T>* ep);

// Offset variant: row k of B is read from b + b_off[k], so one table of row offsets serves
// every tile of a source band (each tile passes its own b) instead of a pointer table per tile.
template <typename T>
using OgemmUkernel = void (*)(int64_t kc, const T* a, const T* b, const int64_t* b_off, T* c,
                              int64_t ldc, int accumulate, const Epilogue<T>* ep);

// Listed variant: the l-th term is row a_rows[l] of the packed A panel (a + a_rows[l] * r)
// times the B row at b + b_off[l], l < kn (kn >= 0; 0: zero sums).  A sub-convolution tile
// whose points all read padding through some taps lists only the other rows: the skipped
// products are exact zeros, which leave a sum started from +0 unchanged, so the result is
// bit-for-bit the full sum's.
template <typename T>
using KgemmUkernel = void (*)(int64_t kn, const T* a, const int64_t* a_rows, const T* b,
                              const int64_t* b_off, T* c, int64_t ldc, int accumulate,
                              const Epilogue<T>* ep);

// Dot-product variant for reductions over k with both operands k-contiguous (weight_grad):
//   c[i * ldc + j] (+)= sum_{k < kc} a[i * lda + k] * b[j * ldb + k],  i < r, j < dot_nc,
// kc a multiple of dot_kw (the vector width); lanes sum k = l (mod dot_kw), then are added in
// a fixed order (Ops::reduce).  dot[r] handles r rows, r = 1..dot_mr.
template <typename T>
using DotUkernel = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                            int64_t ldc, int accumulate);

// Row-A variant (weight_grad): A[i][k] = a[i * lda + k], B a packed panel b[k * nr + j].
template <typename T>
using RgemmUkernel = void (*)(int64_t kc, const T* a, int64_t lda, const T* b, T* c,
                              int64_t ldc, int accumulate);

// panel[k * nr + t] = rows[t * ld + k] for k < kc, t < nr.
template <typename T>
using PanelTranspose = void (*)(const T* rows, int64_t ld, int64_t kc, T* panel);

// Rows of the register tile that starts `left` rows before the end of a block of A (whose
// panels are packed and swept with the same cuts): mr, except that a remainder of mr + 1 to
// mr + 3 rows is cut into two near-halves (mr = 6: 7 -> 4 + 3, 8 -> 4 + 4, 9 -> 5 + 4)
// instead of leaving a last tile of 1-3 rows, whose few accumulators cannot hide the FMA
// latency (about half the rate per row).  Only for mr >= 6; it never changes a sum.
inline int64_t tile_rows(int64_t left, int mr) {
  if (mr >= 6 && left > mr && left <= mr + 3) return (left + 1) / 2;
  return left < mr ? left : mr;
}

// Rows of a block of A that starts `left` rows before the end of its range, blocks being mc
// rows (a multiple of mr) apiece: mc, or all `left` rows when 1-3 would remain after it, so
// that a tile_rows split of the last rows never crosses two blocks.
inline int64_t block_rows(int64_t left, int64_t mc, int mr) {
  if (mr >= 6 && left > mc && left <= mc + 3) return left;
  return left < mc ? left : mc;
}

// Rows of the dot-product tile (weight_grad) that starts `left` rows before the end of its
// block: mr, except that with mr = 4 a remainder of 5, 6 or 9 rows is cut into 3-row tiles
// (9 -> 3 + 3 + 3, 6 -> 3 + 3, 5 -> 3 + 2) instead of ending in a 1- or 2-row tile, whose few
// accumulators cannot hide the FMA latency.  dot_ukernel computes each element alike for any
// tile height, so the cut never changes a result.
inline int64_t dot_rows(int64_t left, int mr) {
  if (mr == 4 && (left == 5 || left == 6 || left == 9)) return 3;
  return left < mr ? left : mr;
}

template <typename T>
struct GemmKernels {
  int mr = 0;  // rows of the widest kernel
  int nr = 0;  // columns (a multiple of the vector width)
  GemmUkernel<T> fn[kMaxMR + 1] = {};
  IgemmUkernel<T> ifn[kMaxMR + 1] = {};
  OgemmUkernel<T> ofn[kMaxMR + 1] = {};
  KgemmUkernel<T> kfn[kMaxMR + 1] = {};
  RgemmUkernel<T> rfn[kMaxMR + 1] = {};
  PanelTranspose<T> transpose = nullptr;
  // Wide variants for at most kWideMR rows (few output channels): more columns per tile, so
  // the broadcasts and B loads stay below the FMAs (e.g. 3 x 32 fp32 on AVX2).
  int wide_nr = 0;
  GemmUkernel<T> wfn[kWideMR + 1] = {};
  IgemmUkernel<T> wifn[kWideMR + 1] = {};
  OgemmUkernel<T> wofn[kWideMR + 1] = {};
  // Narrow variants (same mr, one vector of columns: 12 x 16 fp32 on AVX-512) for grids whose
  // rows are too short for nr columns but fill narrow_nr: they take the direct path with the
  // same packed A panels instead of packing B (0: the ISA has none).
  int narrow_nr = 0;
  GemmUkernel<T> nfn[kMaxMR + 1] = {};
  IgemmUkernel<T> nifn[kMaxMR + 1] = {};
  OgemmUkernel<T> nofn[kMaxMR + 1] = {};
  KgemmUkernel<T> nkfn[kMaxMR + 1] = {};
  int dot_mr = 0;  // rows of the widest dot kernel
  int dot_nc = 0;  // columns of every dot kernel
  int dot_kw = 1;  // k granularity (vector width)
  DotUkernel<T> dot[kMaxMR + 1] = {};
};

// A table's register-tile sets: the main one (mr x nr), the wide one (at most kWideMR rows,
// wide_nr columns: few output channels) and the narrow one (mr x narrow_nr: grid rows too short
// for nr columns).  Every caller chooses among them through tile_kernels.
enum class TileSet { kMain, kWide, kNarrow };

// One tile set of a table: its kernels, most rows and columns (nr 0: the table has no such
// set).  The wide set has no kgemm (kfn null): its callers list no rows.
template <typename T>
struct TileKernels {
  int mr = 0;
  int nr = 0;
  const GemmUkernel<T>* fn = nullptr;
  const IgemmUkernel<T>* ifn = nullptr;
  const OgemmUkernel<T>* ofn = nullptr;
  const KgemmUkernel<T>* kfn = nullptr;
};

template <typename T>
TileKernels<T> tile_kernels(const GemmKernels<T>& g, TileSet set) {
  if (set == TileSet::kWide) return {kWideMR, g.wide_nr, g.wfn, g.wifn, g.wofn, nullptr};
  if (set == TileSet::kNarrow) return {g.mr, g.narrow_nr, g.nfn, g.nifn, g.nofn, g.nkfn};
  return {g.mr, g.nr, g.fn, g.ifn, g.ofn, g.kfn};
}

// The set for M output rows: the wide one for at most kWideMR rows (more columns per tile, so
// the broadcasts and B loads stay below the FMAs) when the table has it, else the main one.
template <typename T>
TileSet rows_tile_set(const GemmKernels<T>& g, int64_t M) {
  return M <= kWideMR && g.wide_nr > 0 ? TileSet::kWide : TileSet::kMain;
}

// A table slot's kernel by name: the function tconv::ukernels::<name> (in the namespace
// tconv::ukernels::emulated for the avx512-emulated table) fills GemmKernels<dtype>::<slot>[rows]
// (rows 0: the transpose pointer).  Names read <dtype>_<kind>_<rows>x<columns>__<isa>, see
// csrc/ukernels/gemm_template.hpp.
struct NamedUkernel {
  const char* name;   // e.g. "f32_gemm_6x16__avx2_fma"
  const char* dtype;  // "f32" (GemmKernels<float>) or "f64"
  const char* slot;   // fn ifn ofn kfn rfn wfn wifn wofn nfn nifn nofn nkfn dot transpose
  int rows;
};

struct IsaKernels {
  const char* name = "";
  GemmKernels<float> f32;
  GemmKernels<double> f64;
  std::vector<NamedUkernel> ukernels;  // every filled slot, in the order the ISA lists them
};

// One table per ISA, each defined in its own translation unit (csrc/ukernels/*.cpp) that is
// compiled with that ISA's flags.  The avx2/avx512 getters return nullptr when the compiler
// could not build that ISA.  avx512_emulated_kernels(): the avx512 table's logic over portable
// lanes (runs on any CPU, for tests; nullptr if built with TCONV_EMULATED_ISAS=OFF).
const IsaKernels* generic_kernels();
const IsaKernels* avx2_kernels();
const IsaKernels* avx512_kernels();
const IsaKernels* avx512_emulated_kernels();

// The table of ISA `isa` (a name of supported_isas()), or nullptr if this build or CPU cannot
// run it: the tests call one micro-kernel of any table directly (bindings.cpp).
const IsaKernels* kernels_for(const std::string& isa);

// The table chosen at load time (dispatch.cpp); see kernels.hpp for set_isa().
const IsaKernels& active_kernels();

template <typename T>
const GemmKernels<T>& active_gemm() {
  if constexpr (sizeof(T) == sizeof(float)) {
    return active_kernels().f32;
  } else {
    return active_kernels().f64;
  }
}

}  // namespace tconv
