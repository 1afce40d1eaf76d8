// The dense GEMM engine (layout and formula in gemm/engine.hpp): C (M x P) = A (M x K) * B
// (K x P) per batch image and group, B and C row-major with leading dimension P.
//
// Blocking, GotoBLAS / BLIS style, around the micro-kernel tile mr x nr of active_gemm<T>():
//   A: the weights, packed once per call into mr-row panels (a[k * r + i], r <= mr) per K
//      block; the copy is the size of W and shared by the threads.
//   K blocks of kc = k_block<T>() (256 f32 / 128 f64): the subconv driver's, so every output
//      is summed in the same order as there (block sums in increasing k, then the bias) and
//      choosing this engine changes no bit.  One A panel (mr x kc, 12 KiB for avx512 f32)
//      stays in L1 while it sweeps the B panels of its block.
//   column blocks of nc <= b_block_bytes() / (kc x sizeof(T)) pixels (the same for both
//      types: 128 with a 1 MiB L2): the packed B block kc x nc, an eighth of the core's L2,
//      stays there beside the A block and the partial sums while every A panel sweeps it.
//   task = (image, group, column block, row block); a task owns its C block, so the threads
//      write disjoint outputs and no sum depends on the split (which does depend on the
//      thread count: blocks are cut smaller until there are about 4 tasks per thread).
// Where the sums go.  The output rows are P apart, often a multiple of 4 KiB, so the rows of a
// tile share one L1 set: a tile read back from the output (for the bias, the Inf/NaN test or
// the next K block) misses L1.  So with one K block the micro-kernel writes the output directly
// only when nothing is left to do; otherwise it writes an mr x nr tile buffer (L1), which the
// epilogue (bias, test) then copies out.  With several K blocks the partial sums of the task's
// C block wait in a contiguous buffer (rows x nc) and each tile is copied out after its last
// block, while it is in L1.
// Packing B from memory.  A B operand of kPipelineL2s L2 caches or more does not stay in the
// L3 between calls; packing a block of it all at once then waits on memory while the cores
// idle.  Such a call gives each thread consecutive tasks and packs its next B block (the
// task's next K block, else the next task's first) into a second buffer a few rows at a time
// between the micro-kernel calls of the current one, prefetching the rows of the next slice
// (PackAhead).  The packed blocks are the same, so are the sums.
// Workspace per thread: the B block (kc x round_up(nc, nr) <= 512 KiB + one nr column; two
// when pipelined), one mr x nr tile, and with K > kc the partial sums (the task's rows x
// round_up(nc, nr)); per call: the packed weights (exactly W's size).
#include "gemm/engine.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <omp.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "tconv/assert.hpp"
#include "tconv/cancel.hpp"
#include "tconv/clones.hpp"
#include "tconv/copy.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/plan.hpp"
#include "tconv/prefetch.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Bytes of one packed B block (kc x nc): this fraction of the core's L2 (l2_cache_bytes(),
// so at most 512 KiB), which keeps it there beside the A block and the partial-sum block
// while the A panels sweep it.  Larger blocks ran slower on a 1 MiB L2 (docs/perf-log.md).
constexpr int64_t kBBlockL2Share = 8;
int64_t b_block_bytes() { return l2_cache_bytes() / kBBlockL2Share; }
// Rows of B ahead of the one being packed whose lines are prefetched: every row of a block is
// a separate stream (P apart), too short for the hardware prefetcher to ramp up on.
constexpr int64_t kPackAhead = 4;
// Depth (values of k) of the weights packed into every A panel before the next: see
// pack_a_block().
constexpr int64_t kAPackDepth = 16;
// A call whose B operand is at least this many L2s is read from memory, not from the L3,
// and packs each B block while the kernels run on the one before (PackAhead); smaller
// ones, which the L3 keeps between calls, pack faster in one go (docs/perf-log.md).
constexpr int64_t kPipelineL2s = 24;
// Tasks per thread the schedule aims at (fewer than the subconv driver's kTasksPerThread):
// the tasks are equal, so more of them balance nothing and only shrink the B blocks, which
// cost 2-3 % at 2 threads on the 1x1 layers of the bench (docs/perf-log.md, 2026-12-03).
constexpr int64_t kGemmTasksPerThread = 2;

// The problem of one call: C[n][g] = A[g] * B[n][g].
template <typename T>
struct Problem {
  int64_t batch, groups, M, K, N;
  const T* w;
  int64_t a_group, a_m, a_k;  // A[g][m][k] = w[g * a_group + m * a_m + k * a_k]
  const T* src;               // B[n][g][k][j] = src[((n * groups + g) * K + k) * N + j]
  T* dst;                     // C[n][g][m][j] = dst[((n * groups + g) * M + m) * N + j]
  const T* bias;              // bias[g * M + m] or null
  // Phase GEMMs (engine.hpp, run_phase_gemm): where set, B row k / C row m of image
  // (n, g) starts at (n * groups + g) * b_image + b_row[k] / c_image + c_row[m] and its
  // column j lies at + b_col[j] / c_col[j] (the strided pixels of one phase); null: dense.
  const int64_t* b_row = nullptr;
  const int64_t* b_col = nullptr;
  const int64_t* b_run = nullptr;  // columns from j on whose b_col are b_step apart
  int64_t b_step = 1;
  const int64_t* c_row = nullptr;
  const int64_t* c_col = nullptr;
  const int64_t* c_run = nullptr;  // columns from j on whose c_col are c_step apart
  int64_t b_image = 0, c_image = 0, c_step = 1;
};

// Rows of A cut into the fewest panels of <= mr rows, their heights differing by at most one
// (M = 64, mr = 12: 11 11 11 11 10 10, not 12 12 12 12 12 4): a short last tile has too few
// accumulators to hide the FMA latency.  Any cut gives the same sums (one accumulator per
// output, increasing k, whatever the tile height).
struct PanelCut {
  int64_t count, base, extra;
  PanelCut(int64_t rows, int mr)
      : count(ceil_div(rows, mr)), base(rows / count), extra(rows % count) {}
  int64_t start(int64_t p) const { return p * base + std::min(p, extra); }
  int64_t rows(int64_t p) const { return base + (p < extra ? 1 : 0); }
};

struct Task {
  int64_t n, g, p0, p1, j0, cols;  // panels [p0, p1) of A, columns [j0, j0 + cols)
};

// B packing, the forward's A rows and the streamed stores have AVX2 and AVX-512 clones
// (tconv/clones.hpp).

// One vector of T in a clone's ISA, with the few operations the streamed stores use, so that
// stream_tile_body is written once for both ISAs and types.  nonfinite: some lane is Inf or
// NaN (exponent bits all ones, as nonfinite_bit).
#ifdef TCONV_CLONE_AVX512
template <typename T>
struct Avx512Vec;
template <>
struct Avx512Vec<float> {
  using T = float;
  using V = __m512;
  static constexpr int kWidth = 16;
  TCONV_CLONE_AVX512 static V set1(T x) { return _mm512_set1_ps(x); }
  TCONV_CLONE_AVX512 static V load(const T* p) { return _mm512_loadu_ps(p); }
  TCONV_CLONE_AVX512 static V add(V a, V b) { return _mm512_add_ps(a, b); }
  TCONV_CLONE_AVX512 static void stream(T* p, V v) { _mm512_stream_ps(p, v); }
  TCONV_CLONE_AVX512 static bool nonfinite(V v) {
    const __m512i e = _mm512_set1_epi32(0x7f800000);
    return _mm512_cmpeq_epi32_mask(_mm512_and_si512(_mm512_castps_si512(v), e), e) != 0;
  }
};
template <>
struct Avx512Vec<double> {
  using T = double;
  using V = __m512d;
  static constexpr int kWidth = 8;
  TCONV_CLONE_AVX512 static V set1(T x) { return _mm512_set1_pd(x); }
  TCONV_CLONE_AVX512 static V load(const T* p) { return _mm512_loadu_pd(p); }
  TCONV_CLONE_AVX512 static V add(V a, V b) { return _mm512_add_pd(a, b); }
  TCONV_CLONE_AVX512 static void stream(T* p, V v) { _mm512_stream_pd(p, v); }
  TCONV_CLONE_AVX512 static bool nonfinite(V v) {
    const __m512i e = _mm512_set1_epi64(0x7ff0000000000000ll);
    return _mm512_cmpeq_epi64_mask(_mm512_and_si512(_mm512_castpd_si512(v), e), e) != 0;
  }
};
#endif
#ifdef TCONV_CLONE_AVX2
template <typename T>
struct Avx2Vec;
template <>
struct Avx2Vec<float> {
  using T = float;
  using V = __m256;
  static constexpr int kWidth = 8;
  TCONV_CLONE_AVX2 static V set1(T x) { return _mm256_set1_ps(x); }
  TCONV_CLONE_AVX2 static V load(const T* p) { return _mm256_loadu_ps(p); }
  TCONV_CLONE_AVX2 static V add(V a, V b) { return _mm256_add_ps(a, b); }
  TCONV_CLONE_AVX2 static void stream(T* p, V v) { _mm256_stream_ps(p, v); }
  TCONV_CLONE_AVX2 static bool nonfinite(V v) {
    const __m256i e = _mm256_set1_epi32(0x7f800000);
    const __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_castps_si256(v), e), e);
    return !_mm256_testz_si256(m, m);
  }
};
template <>
struct Avx2Vec<double> {
  using T = double;
  using V = __m256d;
  static constexpr int kWidth = 4;
  TCONV_CLONE_AVX2 static V set1(T x) { return _mm256_set1_pd(x); }
  TCONV_CLONE_AVX2 static V load(const T* p) { return _mm256_loadu_pd(p); }
  TCONV_CLONE_AVX2 static V add(V a, V b) { return _mm256_add_pd(a, b); }
  TCONV_CLONE_AVX2 static void stream(T* p, V v) { _mm256_stream_pd(p, v); }
  TCONV_CLONE_AVX2 static bool nonfinite(V v) {
    const __m256i e = _mm256_set1_epi64x(0x7ff0000000000000ll);
    const __m256i m = _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_castpd_si256(v), e), e);
    return !_mm256_testz_si256(m, m);
  }
};
#endif

// to[0, BYTES) = from[0, BYTES) in chunks of up to CHUNK bytes (GCC vector types: a register
// move per chunk, CHUNK = the clone's vector width).
template <int BYTES, int CHUNK>
inline __attribute__((always_inline)) void copy_chunks(const void* from, void* to) {
  constexpr int kChunk = BYTES < CHUNK ? BYTES : CHUNK;
  static_assert(BYTES % kChunk == 0, "whole chunks");
  typedef char Chunk __attribute__((vector_size(kChunk), aligned(1), may_alias));
#pragma GCC unroll 16
  for (int o = 0; o < BYTES; o += kChunk)
    *reinterpret_cast<Chunk*>(static_cast<char*>(to) + o) =
        *reinterpret_cast<const Chunk*>(static_cast<const char*>(from) + o);
}

// The panels of B for columns [0, cols) of kc rows of ld apart, panels `step` values apart:
// panel p (nr columns) at panel + p * step holds b[k * NR + j] = src[k * ld + p * NR + j],
// zero past cols.  With step = NR x the block's rows, a block can be packed a few rows at a
// time (PackAhead): its rows from r0 on go to panel + r0 * NR.
template <typename T, int NR, int CHUNK>
inline __attribute__((always_inline)) void pack_b_body(const T* src, int64_t ld, int64_t kc,
                                                       int64_t cols, int64_t step, T* panel) {
  const int64_t full = cols / NR, tail = cols - full * NR;
  for (int64_t k = 0; k < kc; ++k) {
    const T* row = src + k * ld;
    if (k + kPackAhead < kc)
      prefetch_bytes(row + kPackAhead * ld, cols * int64_t(sizeof(T)));
    T* out = panel + k * NR;
    for (int64_t p = 0; p < full; ++p)
      copy_chunks<NR * int(sizeof(T)), CHUNK>(row + p * NR, out + p * step);
    if (tail > 0) {
      T* o = out + full * step;
      for (int64_t j = 0; j < tail; ++j) o[j] = row[full * NR + j];
      for (int64_t j = tail; j < NR; ++j) o[j] = T(0);
    }
  }
}

template <typename T>
using PackB = void (*)(const T*, int64_t, int64_t, int64_t, int64_t, T*);

template <typename T, int NR>
void pack_b(const T* src, int64_t ld, int64_t kc, int64_t cols, int64_t step, T* panel) {
  pack_b_body<T, NR, 16>(src, ld, kc, cols, step, panel);
}
#ifdef TCONV_CLONE_AVX2
template <typename T, int NR>
TCONV_CLONE_AVX2 void pack_b_avx2(const T* src, int64_t ld, int64_t kc, int64_t cols,
                                  int64_t step, T* panel) {
  pack_b_body<T, NR, 32>(src, ld, kc, cols, step, panel);
}
#endif
#ifdef TCONV_CLONE_AVX512
template <typename T, int NR>
TCONV_CLONE_AVX512 void pack_b_avx512(const T* src, int64_t ld, int64_t kc, int64_t cols,
                                      int64_t step, T* panel) {
  pack_b_body<T, NR, 64>(src, ld, kc, cols, step, panel);
}
#endif

// to[k * bytes, (k + 1) * bytes) = from[k * ld, k * ld + bytes) for k < count: the forward's
// A panels, whose values of one k are contiguous in W (r <= mr values: 44-48 bytes for avx512
// float32, too short for a memcpy call per k to pay; the AVX-512 clone moves them with one
// or two masked loads and stores).  Copies only: any clone gives the same bits.
using CopyRows = void (*)(const void*, int64_t, int64_t, int64_t, void*);

inline void copy_rows(const void* from, int64_t ld, int64_t bytes, int64_t count, void* to) {
  for (int64_t k = 0; k < count; ++k)
    std::memcpy(static_cast<char*>(to) + k * bytes, static_cast<const char*>(from) + k * ld,
                static_cast<size_t>(bytes));
}
#ifdef TCONV_CLONE_AVX512
TCONV_CLONE_AVX512 void copy_rows_avx512(const void* from, int64_t ld, int64_t bytes,
                                         int64_t count, void* to) {
  if (bytes > 2 * 64) return copy_rows(from, ld, bytes, count, to);  // not with mr <= 12
  // byte masks of the first and second 64 bytes of a row (at most two vectors)
  const int64_t rest = bytes - 64;
  const __mmask64 lo = rest >= 0 ? ~__mmask64(0) : (__mmask64(1) << bytes) - 1;
  const __mmask64 hi = rest <= 0 ? 0 : rest == 64 ? ~__mmask64(0) : (__mmask64(1) << rest) - 1;
  const char* f = static_cast<const char*>(from);
  char* t = static_cast<char*>(to);
  for (int64_t k = 0; k < count; ++k, f += ld, t += bytes) {
    _mm512_mask_storeu_epi8(t, lo, _mm512_maskz_loadu_epi8(lo, f));
    if (hi != 0) _mm512_mask_storeu_epi8(t + 64, hi, _mm512_maskz_loadu_epi8(hi, f + 64));
  }
}
#endif

inline CopyRows copy_rows_for(CloneIsa isa) {
#ifdef TCONV_CLONE_AVX512
  if (isa == CloneIsa::kAvx512) return &copy_rows_avx512;
#endif
  (void)isa;
  return &copy_rows;
}

template <typename T, int NR>
PackB<T> pack_b_of(CloneIsa isa) {
  switch (isa) {
#ifdef TCONV_CLONE_AVX512
    case CloneIsa::kAvx512: return &pack_b_avx512<T, NR>;
#endif
#ifdef TCONV_CLONE_AVX2
    case CloneIsa::kAvx2: return &pack_b_avx2<T, NR>;
#endif
    default: return &pack_b<T, NR>;
  }
}

template <typename T>
PackB<T> pack_b_for(int nr, CloneIsa isa) {
  switch (nr) {
    case 8: return pack_b_of<T, 8>(isa);
    case 16: return pack_b_of<T, 16>(isa);
    case 32: return pack_b_of<T, 32>(isa);
    case 64: return pack_b_of<T, 64>(isa);
    default: return nullptr;
  }
}

// pack_b for a mapped B (Problem::b_row): rows[k] and cols_at[j] locate src element (k, j);
// runs[j] columns from j on lie `step` apart (one grid row of the innermost axis), and groups
// of `step` rows (2 or 4) whose bases are consecutive (the phases of that axis) are read as
// one contiguous segment and split, a vectorisable de-interleave.
template <int S, typename T>
inline __attribute__((always_inline)) void pack_run(const T* __restrict src, int64_t step,
                                                    int64_t len, T* __restrict out, int64_t nr) {
  const int64_t sstep = S > 1 ? S : step;
  for (int64_t u = 0; u < len; ++u)
    for (int s = 0; s < S; ++s) out[s * nr + u] = src[u * sstep + s];
}

template <typename T>
inline __attribute__((always_inline)) void pack_b_mapped_body(
    const T* src, const int64_t* rows, const int64_t* cols_at, const int64_t* runs, int64_t step,
    int64_t kc, int64_t cols, int nr, int64_t pstep, T* panel) {
  const int64_t padded = round_up(cols, nr);
  for (int64_t k = 0; k < kc;) {
    const bool group = (step == 2 || step == 4) && k + step <= kc &&
                       rows[k + step - 1] == rows[k] + step - 1;
    const int64_t g = group ? step : 1;
    const T* row = src + rows[k];
    T* out = panel + k * nr;  // column u's: panel u / nr, offset u % nr (o)
    for (int64_t u = 0, o = 0; u < cols;) {
      const int64_t len = std::min({cols - u, runs[u], nr - o});
      if (g == 2)
        pack_run<2>(row + cols_at[u], step, len, out + o, nr);
      else if (g == 4)
        pack_run<4>(row + cols_at[u], step, len, out + o, nr);
      else
        pack_run<1>(row + cols_at[u], step, len, out + o, nr);
      u += len;
      o += len;
      if (o == nr) {
        o = 0;
        out += pstep;
      }
    }
    for (int64_t s = 0; s < g; ++s)  // zero the last panel past cols
      for (int64_t u = cols; u < padded; ++u)
        panel[(u / nr) * pstep + (k + s) * nr + u % nr] = T(0);
    k += g;
  }
}

// pack_b_mapped_body has AVX2 and AVX-512 clones (tconv/clones.hpp), whose de-interleaves
// (pack_run) the compiler vectorises with that ISA's permutes; same values.
template <typename T>
using PackBMapped = void (*)(const T*, const int64_t*, const int64_t*, const int64_t*, int64_t,
                             int64_t, int64_t, int, int64_t, T*);

template <typename T>
void pack_b_mapped(const T* src, const int64_t* rows, const int64_t* cols_at, const int64_t* runs,
                   int64_t step, int64_t kc, int64_t cols, int nr, int64_t pstep, T* panel) {
  pack_b_mapped_body(src, rows, cols_at, runs, step, kc, cols, nr, pstep, panel);
}
#ifdef TCONV_CLONE_AVX2
template <typename T>
TCONV_CLONE_AVX2 void pack_b_mapped_avx2(const T* src, const int64_t* rows,
                                         const int64_t* cols_at, const int64_t* runs,
                                         int64_t step, int64_t kc, int64_t cols, int nr,
                                         int64_t pstep, T* panel) {
  pack_b_mapped_body(src, rows, cols_at, runs, step, kc, cols, nr, pstep, panel);
}
#endif
#ifdef TCONV_CLONE_AVX512
template <typename T>
TCONV_CLONE_AVX512 void pack_b_mapped_avx512(const T* src, const int64_t* rows,
                                             const int64_t* cols_at, const int64_t* runs,
                                             int64_t step, int64_t kc, int64_t cols, int nr,
                                             int64_t pstep, T* panel) {
  pack_b_mapped_body(src, rows, cols_at, runs, step, kc, cols, nr, pstep, panel);
}
#endif

template <typename T>
PackBMapped<T> pack_b_mapped_for(CloneIsa isa) {
  switch (isa) {
#ifdef TCONV_CLONE_AVX512
    case CloneIsa::kAvx512: return &pack_b_mapped_avx512<T>;
#endif
#ifdef TCONV_CLONE_AVX2
    case CloneIsa::kAvx2: return &pack_b_mapped_avx2<T>;
#endif
    default: return &pack_b_mapped<T>;
  }
}

// Stores a run of len columns of one tile row, plus its bias if kBias, to d[u * step].
template <bool kCheck, bool kBias, typename T>
auto store_run(const T* from, T* d, int64_t step, int64_t len, T b) {
  decltype(nonfinite_bit(T(0))) bad = 0;
  for (int64_t u = 0; u < len; ++u) {
    const T v = kBias ? from[u] + b : from[u];
    d[u * step] = v;
    if constexpr (kCheck) bad |= nonfinite_bit(v);
  }
  return bad;
}

// A group of S tile rows (ld_from apart) whose bases are consecutive, stored interleaved:
// d[u * S + s].  Mostly the S phases of the innermost axis of one output channel, so with one
// bias: interleave(), which tests the values in registers and, with `stream`, writes the
// run's whole 64-byte lines with non-temporal stores.  When the output rows are one grid
// point wide, a group can span two channels: their biases differ, and each row is stored by
// itself.
template <int S, bool kCheck, typename T>
auto store_group(const T* from, int64_t ld_from, T* d, int64_t len, const T* bias,
                 bool stream) {
  const T* rows[S];
  for (int s = 0; s < S; ++s) rows[s] = from + s * ld_from;
  bool one_bias = true;
  for (int s = 1; s < S && bias != nullptr; ++s) one_bias &= bias[s] == bias[0];
  if (!one_bias) {
    decltype(nonfinite_bit(T(0))) bad = 0;
    for (int s = 0; s < S; ++s) bad |= store_run<kCheck, true>(rows[s], d + s, S, len, bias[s]);
    return bad;
  }
  const uint32_t nonfinite =
      interleave<T, S>(rows, bias != nullptr, bias != nullptr ? bias[0] : T(0), d, len, stream);
  return decltype(nonfinite_bit(T(0)))(kCheck ? nonfinite : 0);
}

// finish_tile for a mapped C (Problem::c_row): row i, column u of the tile goes to
// to[rows[i] + cols_at[u]]; runs[u] columns from u on lie `step` apart (one grid row of the
// innermost axis), and groups of `step` rows (2 or 4) whose bases are consecutive are
// interleaved (store_group; `stream` as there).  Only the store order differs from
// finish_tile: every value is the same sum.
template <bool kCheck, typename T>
auto finish_tile_mapped(const T* from, int64_t ld_from, T* to, const int64_t* rows,
                        const int64_t* cols_at, const int64_t* runs, int64_t step, int64_t r,
                        int64_t cols, const T* bias, bool stream) {
  decltype(nonfinite_bit(T(0))) bad = 0;
  for (int64_t u = 0; u < cols;) {
    const int64_t len = std::min(cols - u, runs[u]);
    for (int64_t i = 0; i < r;) {
      const T* a = from + i * ld_from + u;
      const T* bi = bias != nullptr ? bias + i : nullptr;
      T* d = to + rows[i] + cols_at[u];
      const bool group = (step == 2 || step == 4) && i + step <= r &&
                         rows[i + step - 1] == rows[i] + step - 1;
      if (group && step == 2) {
        bad |= store_group<2, kCheck>(a, ld_from, d, len, bi, stream);
      } else if (group) {
        bad |= store_group<4, kCheck>(a, ld_from, d, len, bi, stream);
      } else {
        bad |= bi != nullptr ? store_run<kCheck, true>(a, d, step, len, *bi)
                             : store_run<kCheck, false>(a, d, step, len, T(0));
      }
      i += group ? step : 1;
    }
    u += len;
  }
  return bad;
}

// Copies rows [0, r) x columns [0, cols) of a finished tile to the output, adding the bias of
// each row (if any; without one the sums are copied as they are, -0 included); with kCheck,
// returns nonzero when a value is Inf or NaN.  (Baseline code on every ISA: AVX2 or AVX-512
// clones of it, as for pack_b, were slower where the epilogue counts, K = 64.)
template <bool kCheck, typename T>
auto finish_tile(const T* from, int64_t ld_from, T* to, int64_t ld_to, int64_t r, int64_t cols,
                 const T* bias) {
  decltype(nonfinite_bit(T(0))) bad = 0;
  for (int64_t i = 0; i < r; ++i) {
    const T* a = from + i * ld_from;
    T* d = to + i * ld_to;
    if (bias != nullptr) {
      const T b = bias[i];
      for (int64_t u = 0; u < cols; ++u) {
        const T v = a[u] + b;
        d[u] = v;
        if constexpr (kCheck) bad |= nonfinite_bit(v);
      }
    } else {
      for (int64_t u = 0; u < cols; ++u) {
        const T v = a[u];
        d[u] = v;
        if constexpr (kCheck) bad |= nonfinite_bit(v);
      }
    }
  }
  return bad;
}

// finish_tile for a full tile row of a large dense output, with non-temporal stores: the
// output goes to memory without being read in first (a 1x1 layer's output is written once,
// and reading it back costs as much memory traffic as writing it).  Same values as
// finish_tile; returns whether one is Inf or NaN.  `to` and ld_to * sizeof(T) are multiples
// of 64 bytes and cols of the vector width.  Used from kStreamBytes of output on (make_engine).
template <typename T>
using StreamTile = bool (*)(const T*, int64_t, T*, int64_t, int64_t, int64_t, const T*);
// The clones' common body (always inlined into them, so its vector values never cross a call
// in the baseline ABI: hence no -Wpsabi).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wpsabi"
template <class Vec, typename T>
inline __attribute__((always_inline)) bool stream_tile_body(const T* from, int64_t ld_from,
                                                            T* to, int64_t ld_to, int64_t r,
                                                            int64_t cols, const T* bias) {
  bool bad = false;
  for (int64_t i = 0; i < r; ++i) {
    const T* a = from + i * ld_from;
    T* d = to + i * ld_to;
    const auto b = Vec::set1(bias != nullptr ? bias[i] : T(0));
    for (int64_t u = 0; u < cols; u += Vec::kWidth) {
      auto v = Vec::load(a + u);
      if (bias != nullptr) v = Vec::add(v, b);
      bad |= Vec::nonfinite(v);
      Vec::stream(d + u, v);
    }
  }
  return bad;
}
#pragma GCC diagnostic pop
#ifdef TCONV_CLONE_AVX512
template <typename T>
TCONV_CLONE_AVX512 bool stream_tile_avx512(const T* from, int64_t ld_from, T* to,
                                           int64_t ld_to, int64_t r, int64_t cols,
                                           const T* bias) {
  return stream_tile_body<Avx512Vec<T>>(from, ld_from, to, ld_to, r, cols, bias);
}
#endif
#ifdef TCONV_CLONE_AVX2
template <typename T>
TCONV_CLONE_AVX2 bool stream_tile_avx2(const T* from, int64_t ld_from, T* to, int64_t ld_to,
                                       int64_t r, int64_t cols, const T* bias) {
  return stream_tile_body<Avx2Vec<T>>(from, ld_from, to, ld_to, r, cols, bias);
}
#endif

// The streaming finish of the active table's ISA for a call writing `bytes` of output to
// `dst` with rows of `ld` values, or null where it does not apply (below kStreamBytes, an
// output not 64-byte aligned, a table without a clone: then finish_tile runs).
template <typename T>
StreamTile<T> stream_tile_for(CloneIsa isa, const T* dst, int64_t ld, int64_t bytes) {
  if (bytes < kStreamBytes || reinterpret_cast<uintptr_t>(dst) % 64 != 0 ||
      ld * int64_t(sizeof(T)) % 64 != 0)
    return nullptr;
  switch (isa) {
#ifdef TCONV_CLONE_AVX512
    case CloneIsa::kAvx512: return &stream_tile_avx512<T>;
#endif
#ifdef TCONV_CLONE_AVX2
    case CloneIsa::kAvx2: return &stream_tile_avx2<T>;
#endif
    default: return nullptr;
  }
}

// The tasks of one call and the plan they make: column blocks of <= nc_max (a kc x nc block
// of B fills b_block_bytes()), cut smaller -- then the rows split in whole panels -- until
// there are about kGemmTasksPerThread per thread.  The cut never changes a sum.
struct Schedule {
  GemmPlan plan;
  TileSet tiles = TileSet::kMain;
  PanelCut cut{1, 1};
  std::vector<Task> tasks;
};

template <typename T>
Schedule schedule(const GemmKernels<T>& uk, int64_t images, int64_t groups, int64_t M, int64_t K,
                  int64_t N, int threads, int64_t b_bytes) {
  Schedule sc;
  GemmPlan& p = sc.plan;
  sc.tiles = rows_tile_set(uk, M);
  const TileKernels<T> tk = tile_kernels(uk, sc.tiles);
  p.mr = tk.mr;
  p.nr = tk.nr;
  p.kc = k_block<T>();
  p.flops = 2.0 * double(images) * double(M) * double(K) * double(N);
  if (images == 0 || M == 0 || N == 0 || K == 0) return sc;
  const int nr = p.nr;
  const int64_t nc_max =
      std::max<int64_t>(nr, b_block_bytes() / (p.kc * int64_t(sizeof(T))) / nr * nr);
  const double want = threads > 1 ? double(kGemmTasksPerThread * threads) : 1.0;
  int64_t col_blocks = ceil_div(N, nc_max);
  while (double(images * col_blocks) < want && ceil_div(N, col_blocks + 1) >= 2 * nr)
    ++col_blocks;
  const int64_t nc = round_up(ceil_div(N, col_blocks), nr);
  sc.cut = PanelCut(M, p.mr);
  int64_t m_splits = 1;
  while (double(images * ceil_div(N, nc) * m_splits) < want && 2 * m_splits <= sc.cut.count)
    m_splits *= 2;
  const int64_t panels_per_task = ceil_div(sc.cut.count, m_splits);
  for (int64_t ng = 0; ng < images; ++ng)
    for (int64_t j0 = 0; j0 < N; j0 += nc)
      for (int64_t p0 = 0; p0 < sc.cut.count; p0 += panels_per_task)
        sc.tasks.push_back({ng / groups, ng % groups, p0,
                            std::min(sc.cut.count, p0 + panels_per_task), j0,
                            std::min(nc, N - j0)});
  p.tasks = static_cast<int64_t>(sc.tasks.size());
  p.parallel = threads > 1 && p.flops > kParallelFlops;
  p.nc = std::min(nc, N);
  p.mc = std::min(M, sc.cut.start(std::min(sc.cut.count, panels_per_task)));
  // packed A (all groups' weights) + per thread: B block, then partial sums or one tile
  const int64_t ncp = round_up(p.nc, nr);
  p.pipelined = b_bytes >= kPipelineL2s * l2_cache_bytes();
  const int64_t per_thread = (p.pipelined ? 2 : 1) * p.kc * ncp +
                             (K > p.kc ? p.mc * ncp : int64_t(p.mr) * nr);
  p.workspace_bytes = (groups * K * M + (p.parallel ? threads : 1) * per_thread) *
                      int64_t(sizeof(T));
  return sc;
}

template <typename T>
using Bad = decltype(nonfinite_bit(T(0)));

// What the tasks of one call share: the problem, the schedule's cut of A and K block, the
// active table's kernels and copies, the packed A, and how finished tiles reach the output.
template <typename T>
struct Engine {
  const Problem<T>& pb;
  const PanelCut& cut;
  int mr, nr;
  int64_t kc_max, ncp_max;   // the K block; a B block's columns, rounded up to nr
  const GemmUkernel<T>* fn;  // by rows: the table's fn or (wide) wfn
  PackB<T> pack;
  PackBMapped<T> pack_mapped;  // the mapped B's (Problem::b_row)
  CopyRows copy_a;
  StreamTile<T> stream;  // null: finish_tile (or the phase GEMM's maps)
  bool stream_mapped;    // finish_tile_mapped streams its interleaved runs
  bool pipeline;         // each thread packs its next B block while the kernels run (PackAhead)
  bool check;
  Cancellation* cancel;
  T* a_packed;  // K block k0 of group g at (g * K + k0) * M, panel p (r rows from row i) at
                // + i * kc, element (k, i') at [k * r + i']
};

template <typename T>
Engine<T> make_engine(const Problem<T>& pb, const Schedule& sc, bool check, T* a_packed) {
  const GemmKernels<T>& uk = active_gemm<T>();
  const CloneIsa isa = clone_isa(active_kernels().name);
  const int nr = sc.plan.nr;
  const int64_t images = pb.batch * pb.groups;
  const int64_t out_bytes = (pb.c_row ? images * pb.c_image : images * pb.M * pb.N) *
                            int64_t(sizeof(T));
  return Engine<T>{pb,
                   sc.cut,
                   sc.plan.mr,
                   nr,
                   sc.plan.kc,
                   round_up(sc.plan.nc, nr),
                   tile_kernels(uk, sc.tiles).fn,
                   pack_b_for<T>(nr, isa),
                   pack_b_mapped_for<T>(isa),
                   copy_rows_for(isa),
                   pb.c_row ? nullptr : stream_tile_for<T>(isa, pb.dst, pb.N, out_bytes),
                   pb.c_row != nullptr && out_bytes >= kStreamBytes,
                   sc.plan.pipelined,
                   check,
                   current_cancellation(),
                   a_packed};
}

// Packs K block k0 of group g's weights into its A panels.
template <typename T>
void pack_a_block(const Engine<T>& e, int64_t g, int64_t k0) {
  const Problem<T>& pb = e.pb;
  const int64_t kc = std::min(e.kc_max, pb.K - k0);
  const T* wg = pb.w + g * pb.a_group + k0 * pb.a_k;
  T* block = e.a_packed + (g * pb.K + k0) * pb.M;
  // kAPackDepth values of k at a time for every panel: the W lines they read stay in L1
  // (rows of W often lie a multiple of 2 KiB apart, and a whole block's would share a few
  // L1 sets).  Only the copy order changes; the packed layout is the same.
  for (int64_t kb = 0; kb < kc; kb += kAPackDepth) {
    const int64_t ke = std::min(kc, kb + kAPackDepth);
    for (int64_t p = 0; p < e.cut.count; ++p) {
      const int64_t i0 = e.cut.start(p), r = e.cut.rows(p);
      T* panel = block + i0 * kc;
      if (pb.a_m == 1) {  // the forward: a panel's values of one k are contiguous in W
        e.copy_a(wg + i0 + kb * pb.a_k, pb.a_k * int64_t(sizeof(T)), r * int64_t(sizeof(T)),
                 ke - kb, panel + kb * r);
      } else {
        for (int64_t k = kb; k < ke; ++k)
          for (int64_t i = 0; i < r; ++i) panel[k * r + i] = wg[(i0 + i) * pb.a_m + k * pb.a_k];
      }
    }
  }
}

// Copies a finished tile (r rows x cols at ct, rows ldc apart; its first row is row m of the
// task's image, its first column j of the image's pixels) with the bias bi to the output:
// through the phase GEMM's maps (into the image at c), streamed, or plainly to `out`.
// Inf/NaN bits with e.check.
template <typename T>
Bad<T> finish_out(const Engine<T>& e, const T* ct, int64_t ldc, T* c, T* out, int64_t m,
                  int64_t j, int64_t r, int64_t cols, const T* bi) {
  const Problem<T>& pb = e.pb;
  if (pb.c_row) {
    const int64_t *cr = pb.c_row + m, *cc = pb.c_col + j, *runs = pb.c_run + j;
    return e.check ? finish_tile_mapped<true>(ct, ldc, c, cr, cc, runs, pb.c_step, r, cols, bi,
                                              e.stream_mapped)
                   : finish_tile_mapped<false>(ct, ldc, c, cr, cc, runs, pb.c_step, r, cols,
                                               bi, e.stream_mapped);
  }
  if (e.stream != nullptr && cols == e.nr)
    return e.stream(ct, ldc, out, pb.N, r, cols, bi) && e.check;
  return e.check ? finish_tile<true>(ct, ldc, out, pb.N, r, cols, bi)
                 : finish_tile<false>(ct, ldc, out, pb.N, r, cols, bi);
}

// Packs rows [r0, r1) of K block k0 (kc rows) of task t's B into the block's panels at bp.
template <typename T>
void pack_b_rows(const Engine<T>& e, const Task& t, int64_t k0, int64_t kc, int64_t r0,
                 int64_t r1, T* bp) {
  const Problem<T>& pb = e.pb;
  const int64_t image = t.n * pb.groups + t.g, step = kc * e.nr;
  T* to = bp + r0 * e.nr;
  if (pb.b_row)
    e.pack_mapped(pb.src + image * pb.b_image, pb.b_row + k0 + r0, pb.b_col + t.j0,
                  pb.b_run + t.j0, pb.b_step, r1 - r0, t.cols, e.nr, step, to);
  else
    e.pack(pb.src + (image * pb.K + k0 + r0) * pb.N + t.j0, pb.N, r1 - r0, t.cols, step, to);
}

// Fetches into the cache the source lines of rows [r0, r1) of K block k0 of task t's B.
// Always inlined: GCC deems a function that only prefetches free of side effects and drops
// the calls to it.
template <typename T>
inline __attribute__((always_inline)) void prefetch_b_rows(const Engine<T>& e, const Task& t,
                                                           int64_t k0, int64_t r0, int64_t r1) {
  const Problem<T>& pb = e.pb;
  const int64_t image = t.n * pb.groups + t.g;
  for (int64_t k = k0 + r0; k < k0 + r1; ++k) {
    if (pb.b_row) {
      if (k > 0 && pb.b_row[k] == pb.b_row[k - 1] + 1) continue;  // the row before's lines
      const T* row = pb.src + image * pb.b_image + pb.b_row[k];
      // a run of columns `b_step` apart spans one range of the source row
      for (int64_t j = t.j0; j < t.j0 + t.cols;) {
        const int64_t len = std::min(t.j0 + t.cols - j, pb.b_run[j]);
        prefetch_bytes(row + pb.b_col[j],
                       (pb.b_col[j + len - 1] + 1 - pb.b_col[j]) * int64_t(sizeof(T)));
        j += len;
      }
    } else {
      prefetch_bytes(pb.src + (image * pb.K + k) * pb.N + t.j0, t.cols * int64_t(sizeof(T)));
    }
  }
}

// The B block a thread packs next, a slice of rows between two micro-kernel calls of the
// block before it, so that reading B from memory overlaps the arithmetic instead of
// stalling it: each call first packs the slice prefetched at the call before, then
// prefetches the next (the pack reads the cache; a few rows are in flight at a time, few
// enough that rows a multiple of 4 KiB apart do not evict each other).
template <typename T>
struct PackAhead {
  const Task* task = nullptr;  // the block's task and K block, or none
  int64_t k0 = 0, kc = 0;
  T* bp = nullptr;              // where it is packed (the thread's other B buffer)
  int64_t done = 0, slice = 0;  // rows packed so far; rows per call

  void start(const Engine<T>& e, const Task* t, int64_t k, T* to, int64_t calls) {
    task = t;
    k0 = k;
    kc = t ? std::min(e.kc_max, e.pb.K - k) : 0;
    bp = to;
    done = 0;
    slice = t ? ceil_div(kc, std::max<int64_t>(calls, 1)) : 0;
    if (t) prefetch_b_rows(e, *t, k0, 0, std::min(slice, kc));
  }
  // Between two micro-kernel calls: packs the prefetched slice, prefetches the next.
  void step(const Engine<T>& e) {
    if (task == nullptr || done >= kc) return;
    const int64_t r1 = std::min(kc, done + slice);
    pack_b_rows(e, *task, k0, kc, done, r1, bp);
    done = r1;
    if (done < kc) prefetch_b_rows(e, *task, k0, done, std::min(kc, done + slice));
  }
};

// A thread's scratch for its tasks: two B blocks (the one the kernels read, the one packed
// ahead), the partial sums, one tile; and which block the second holds.
template <typename T>
struct TaskScratch {
  Scratch<T> b[2], part, tile;
  int current = 0;              // b[current]: the block the kernels read
  const Task* ready = nullptr;  // b[current] already holds K block ready_k0 of this task
  int64_t ready_k0 = 0;

  // K block k0 (kc rows) of task t, packed in b[current] (now, unless it was packed ahead);
  // `ahead` starts on the block after it in the other buffer when the engine pipelines.
  T* block(const Engine<T>& e, const Task& t, const Task* next, int64_t k0, int64_t kc,
           int64_t calls, PackAhead<T>& ahead) {
    T* bp = b[current].get(e.kc_max * e.ncp_max);
    if (!(ready == &t && ready_k0 == k0)) pack_b_rows(e, t, k0, kc, 0, kc, bp);
    if (e.pipeline) {
      const bool last = k0 + kc >= e.pb.K;
      ahead.start(e, last ? next : &t, last ? 0 : k0 + kc,
                  b[1 - current].get(e.kc_max * e.ncp_max), calls);
    }
    return bp;
  }
  // After the block: the kernels read the one packed ahead next, if any.
  void advance(const PackAhead<T>& ahead) {
    TCONV_ASSERT(ahead.done == ahead.kc);  // `calls` steps of `slice` rows cover the block
    ready = ahead.task;
    ready_k0 = ahead.k0;
    if (ahead.task != nullptr) current = 1 - current;
  }
};

// One task: its C block (rows of panels [p0, p1), columns [j0, j0 + cols) of one image),
// K block by K block; while the kernels run on one block, the next is packed (the task's
// next K block, else the first of `next`, the thread's next task, if any).  Returns the
// Inf/NaN bits of what it stored (with e.check).
template <typename T>
Bad<T> run_task(const Engine<T>& e, const Task& t, const Task* next, TaskScratch<T>& s) {
  const Problem<T>& pb = e.pb;
  const int64_t M = pb.M, K = pb.K, N = pb.N;
  const int nr = e.nr;
  const int64_t ncp = round_up(t.cols, nr);
  const int64_t image = t.n * pb.groups + t.g;
  const int64_t m0 = e.cut.start(t.p0), rows = e.cut.start(t.p1) - m0;
  T* c = pb.dst + (pb.c_row ? image * pb.c_image : (image * M + m0) * N + t.j0);
  const T* bias = pb.bias ? pb.bias + t.g * M + m0 : nullptr;
  // Where the micro-kernel's sums go (see the top of the file): with several K blocks the
  // partial sums of the task's block wait in `part` (ld ncp); with one, a tile that needs
  // an epilogue or is a partial column panel goes through `tile` (ld nr, in L1), others
  // straight into the output.
  const bool blocked = K > e.kc_max, finish = bias != nullptr || e.check || pb.c_row;
  T* part = blocked ? s.part.get(rows * ncp) : nullptr;
  T* tile = blocked ? nullptr : s.tile.get(int64_t(e.mr) * nr);
  const int64_t calls = (t.p1 - t.p0) * (ncp / nr);
  Bad<T> bad = 0;
  for (int64_t k0 = 0; k0 < K; k0 += e.kc_max) {
    if (k0 > 0 && stop(e.cancel)) break;
    const int64_t kc = std::min(e.kc_max, K - k0);
    const int accumulate = k0 > 0 ? 1 : 0;
    const bool last = k0 + kc >= K;
    PackAhead<T> ahead;
    const T* bp = s.block(e, t, next, k0, kc, calls, ahead);
    const T* a_block = e.a_packed + (t.g * K + k0) * M;
    for (int64_t p = t.p0; p < t.p1; ++p) {
      const int64_t i = e.cut.start(p) - m0, r = e.cut.rows(p);
      const T* ap = a_block + (m0 + i) * kc;
      const GemmUkernel<T> kernel = e.fn[r];
      const T* bi = bias ? bias + i : nullptr;
      for (int64_t q = 0; q < ncp / nr; ++q) {
        T* out = pb.c_row ? nullptr : c + i * N + q * nr;
        const int64_t cols = std::min<int64_t>(nr, t.cols - q * nr);
        const bool direct = !blocked && !finish && cols == nr;
        T* ct = blocked ? part + i * ncp + q * nr : direct ? out : tile;
        const int64_t ldc = blocked ? ncp : direct ? N : nr;
        kernel(kc, ap, bp + q * kc * nr, ct, ldc, accumulate, nullptr);
        if (last && !direct)
          bad |= finish_out(e, ct, ldc, c, out, m0 + i, t.j0 + q * nr, r, cols, bi);
        ahead.step(e);
      }
    }
    s.advance(ahead);
  }
  return bad;
}

// The calling thread's share of the tasks (inside the parallel region): consecutive ones when
// the engine pipelines, so that each knows its next, else one at a time as threads come free.
// Returns the Inf/NaN bits of what they stored.
template <typename T>
Bad<T> run_tasks(const Engine<T>& e, const std::vector<Task>& tasks) {
  TaskScratch<T> scratch;
  Bad<T> bad = 0;
  const auto count = static_cast<int64_t>(tasks.size());
  const auto task = [&](int64_t ti) { return &tasks[static_cast<size_t>(ti)]; };
  if (e.pipeline) {
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    const int64_t lo = count * me / threads, hi = count * (me + 1) / threads;
    for (int64_t ti = lo; ti < hi && !stop(e.cancel); ++ti)
      bad |= run_task(e, *task(ti), ti + 1 < hi ? task(ti + 1) : nullptr, scratch);
  } else {
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < count; ++ti)
      if (!stop(e.cancel)) bad |= run_task(e, *task(ti), nullptr, scratch);
  }
  return bad;
}

// K = 0: no terms, every output is its bias (or +0).  Returns false when one is Inf or NaN
// and `check`.
template <typename T>
bool fill_bias(const Problem<T>& pb, bool check) {
  Bad<T> bad = 0;
  for (int64_t ng = 0; ng < pb.batch * pb.groups; ++ng)
    for (int64_t m = 0; m < pb.M; ++m) {
      const T v = pb.bias ? pb.bias[(ng % pb.groups) * pb.M + m] : T(0);
      std::fill(pb.dst + (ng * pb.M + m) * pb.N, pb.dst + (ng * pb.M + m + 1) * pb.N, v);
      bad |= nonfinite_bit(v);
    }
  return !(check && bad);
}

template <typename T>
bool run(const Problem<T>& pb, bool check) {
  const int64_t images = pb.batch * pb.groups;
  if (images == 0 || pb.M == 0 || pb.N == 0) return true;
  if (pb.K == 0) return fill_bias(pb, check);
  const Schedule sc = schedule<T>(
      active_gemm<T>(), images, pb.groups, pb.M, pb.K, pb.N, omp_get_max_threads(),
      images * (pb.b_row ? pb.b_image : pb.K * pb.N) * int64_t(sizeof(T)));
  Scratch<T> a_store;  // the packed A (Engine::a_packed)
  const Engine<T> e = make_engine(pb, sc, check, a_store.get(pb.groups * pb.K * pb.M));
  const int64_t k_blocks = ceil_div(pb.K, e.kc_max);
  int nonfinite = 0;
#pragma omp parallel if (sc.plan.parallel) reduction(| : nonfinite)
  {
#pragma omp for schedule(dynamic, 1)
    for (int64_t u = 0; u < pb.groups * k_blocks; ++u)
      pack_a_block(e, u / k_blocks, (u % k_blocks) * e.kc_max);
    // implicit barrier: the tasks read every packed block
    const Bad<T> bad = run_tasks(e, sc.tasks);
    if (e.stream != nullptr || e.stream_mapped) stream_fence();  // streamed stores before the join
    nonfinite |= bad != 0;
  }
  return !(check && nonfinite);
}

}  // namespace

template <typename T>
GemmPlan plan_gemm(const Geometry& g, bool transposed, int threads) {
  const int64_t M = transposed ? g.fine_per_group() : g.coarse_per_group();
  const int64_t K = transposed ? g.coarse_per_group() : g.fine_per_group();
  const int64_t images = g.batch * g.groups;
  return schedule<T>(active_gemm<T>(), images, g.groups, M, K, g.coarse_pixels(), threads,
                     images * K * g.coarse_pixels() * int64_t(sizeof(T)))
      .plan;
}

template GemmPlan plan_gemm<float>(const Geometry&, bool, int);
template GemmPlan plan_gemm<double>(const Geometry&, bool, int);

template <typename T>
bool run_gemm(const Geometry& g, bool transposed, const T* src, const T* w, const T* bias, T* dst,
              bool check) {
  Problem<T> pb{};
  pb.batch = g.batch;
  pb.groups = g.groups;
  pb.N = g.coarse_pixels();
  pb.w = w;
  pb.src = src;
  pb.dst = dst;
  pb.bias = bias;
  // W[c_coarse][f_local]: c = g * coarse_per_group + c_local
  pb.a_group = g.coarse_per_group() * g.fine_per_group();
  if (transposed) {  // A[f][c] = W[c][f]
    pb.M = g.fine_per_group();
    pb.K = g.coarse_per_group();
    pb.a_m = 1;
    pb.a_k = g.fine_per_group();
  } else {  // A[c][f] = W[c][f]
    pb.M = g.coarse_per_group();
    pb.K = g.fine_per_group();
    pb.a_m = g.fine_per_group();
    pb.a_k = 1;
  }
  return run(pb, check);
}

template bool run_gemm<float>(const Geometry&, bool, const float*, const float*, const float*,
                              float*, bool);
template bool run_gemm<double>(const Geometry&, bool, const double*, const double*,
                               const double*, double*, bool);

// ---- Phase GEMMs: kernel = stride, no padding (engine.hpp: phase_gemm_suits) ---------------

namespace {

// The index maps of a phase GEMM of g: rows (c, phase) -> c * fine pixels + the phase's fine
// offset, for c < channels (phase = the kernel's flat index, innermost); columns (coarse
// pixels p) -> the fine offset of p * stride.
void phase_rows(const Geometry& g, int64_t channels, std::vector<int64_t>& rows) {
  const int64_t taps = g.taps(), plane = g.fine[1] * g.fine[2];
  rows.resize(static_cast<size_t>(channels * taps));
  for (int64_t c = 0; c < channels; ++c)
    for (int64_t a = 0; a < g.kernel[0]; ++a)
      for (int64_t b = 0; b < g.kernel[1]; ++b)
        for (int64_t e = 0; e < g.kernel[2]; ++e)
          rows[static_cast<size_t>(((c * g.kernel[0] + a) * g.kernel[1] + b) * g.kernel[2] +
                                   e)] = c * g.fine_pixels() + a * plane + b * g.fine[2] + e;
}

// runs[j]: the columns from j to the end of its grid row (their offsets stride[2] apart).
void phase_cols(const Geometry& g, std::vector<int64_t>& cols, std::vector<int64_t>& runs) {
  const int64_t plane = g.fine[1] * g.fine[2];
  cols.resize(static_cast<size_t>(g.coarse_pixels()));
  runs.resize(cols.size());
  size_t j = 0;
  for (int64_t z = 0; z < g.coarse[0]; ++z)
    for (int64_t y = 0; y < g.coarse[1]; ++y)
      for (int64_t x = 0; x < g.coarse[2]; ++x, ++j) {
        cols[j] = z * g.stride[0] * plane + y * g.stride[1] * g.fine[2] + x * g.stride[2];
        runs[j] = g.coarse[2] - x;
      }
}

// The scatter's outputs that no phase reaches (past coarse * stride on some axis: the
// output_padding border; every output when K = 0) receive their bias (or +0).  With kCheck,
// nonzero when one of them is Inf or NaN.
template <typename T>
bool fill_unreached(const Geometry& g, bool all, const T* bias, T* y, bool check) {
  const int64_t channels = g.fine_channels, fz = g.fine[0], fy = g.fine[1], fx = g.fine[2];
  const int64_t rz = all ? 0 : g.coarse[0] * g.stride[0];
  const int64_t ry = all ? 0 : g.coarse[1] * g.stride[1];
  const int64_t rx = all ? 0 : g.coarse[2] * g.stride[2];
  if (rz >= fz && ry >= fy && rx >= fx) return false;
  decltype(nonfinite_bit(T(0))) bad = 0;
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t c = 0; c < channels; ++c) {
      const T v = bias ? bias[c] : T(0);
      bad |= nonfinite_bit(v);
      T* yc = y + (n * channels + c) * g.fine_pixels();
      for (int64_t z = 0; z < fz; ++z)
        for (int64_t r = 0; r < fy; ++r) {
          T* row = yc + (z * fy + r) * fx;
          const int64_t from = z >= rz || r >= ry ? 0 : rx;
          std::fill(row + from, row + fx, v);
        }
    }
  return check && bad;
}

}  // namespace

template <typename T>
GemmPlan plan_phase_gemm(const Geometry& g, bool transposed, int threads) {
  const int64_t M = transposed ? g.fine_per_group() * g.taps() : g.coarse_per_group();
  const int64_t K = transposed ? g.coarse_per_group() : g.fine_per_group() * g.taps();
  const int64_t images = g.batch * g.groups;
  // B: the coarse input (transposed), else the fine image the phases map
  const int64_t b_image = transposed ? K * g.coarse_pixels() : g.fine_per_group() * g.fine_pixels();
  GemmPlan p = schedule<T>(active_gemm<T>(), images, g.groups, M, K, g.coarse_pixels(), threads,
                           images * b_image * int64_t(sizeof(T)))
                   .plan;
  // the index maps (rows of the mapped side, coarse pixels) and the scatter's bias per row
  p.workspace_bytes += (g.fine_per_group() * g.taps() + 2 * g.coarse_pixels()) *
                           int64_t(sizeof(int64_t)) +
                       (transposed ? g.fine_channels * g.taps() * int64_t(sizeof(T)) : 0);
  return p;
}

template GemmPlan plan_phase_gemm<float>(const Geometry&, bool, int);
template GemmPlan plan_phase_gemm<double>(const Geometry&, bool, int);

template <typename T>
bool run_phase_gemm(const Geometry& g, bool transposed, const T* src, const T* w, const T* bias,
                    T* dst, bool check) {
  const int64_t taps = g.taps(), mapped = g.fine_per_group() * taps;
  Problem<T> pb{};
  pb.batch = g.batch;
  pb.groups = g.groups;
  pb.N = g.coarse_pixels();
  pb.w = w;
  pb.src = src;
  pb.dst = dst;
  // W[c_coarse][f_local][tap]: (f_local, tap) is the mapped side's row, flat
  pb.a_group = g.coarse_per_group() * mapped;
  std::vector<int64_t> rows, cols, runs;
  phase_rows(g, g.fine_per_group(), rows);
  phase_cols(g, cols, runs);
  std::vector<T> row_bias;
  bool bad = false;
  if (transposed) {  // A[(f, tap)][c] = W[c][f][tap]; C mapped into y
    pb.M = mapped;
    pb.K = g.coarse_per_group();
    pb.a_m = 1;
    pb.a_k = mapped;
    pb.c_row = rows.data();
    pb.c_col = cols.data();
    pb.c_run = runs.data();
    pb.c_step = g.stride[2];
    pb.c_image = g.fine_per_group() * g.fine_pixels();
    if (bias) {
      row_bias.resize(static_cast<size_t>(g.fine_channels * taps));
      for (int64_t f = 0; f < g.fine_channels; ++f)
        std::fill_n(row_bias.begin() + f * taps, taps, bias[f]);
      pb.bias = row_bias.data();
    }
    const bool none = pb.K == 0 || pb.N == 0;
    bad = fill_unreached(g, none, bias, dst, check);
    if (none) return !bad;
  } else {  // A[c][(f, tap)] = W[c][f][tap]; B mapped from y
    pb.M = g.coarse_per_group();
    pb.K = mapped;
    pb.a_m = mapped;
    pb.a_k = 1;
    pb.bias = bias;
    if (pb.K > 0) {
      pb.b_row = rows.data();
      pb.b_col = cols.data();
      pb.b_run = runs.data();
      pb.b_step = g.stride[2];
      pb.b_image = g.fine_per_group() * g.fine_pixels();
    }
  }
  return run(pb, check) && !bad;
}

template bool run_phase_gemm<float>(const Geometry&, bool, const float*, const float*,
                                    const float*, float*, bool);
template bool run_phase_gemm<double>(const Geometry&, bool, const double*, const double*,
                                     const double*, double*, bool);

}  // namespace tconv
