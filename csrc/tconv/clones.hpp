// Clones of packing and copying routines compiled for a wider ISA than their file's baseline.
//
// A routine that only moves values (packing, row copies, streamed stores) is compiled once for
// the baseline and, on x86-64 gcc builds that have those kernel tables, again with AVX2 or
// AVX-512 code generation through a function target attribute: the rest of its file stays
// baseline, so it runs on any CPU.  `flatten` inlines everything the clone calls, so that the
// wider moves land in its own body.  A clone runs only when the active kernel table is its
// ISA's (clone_isa: never for avx512-emulated), so the CPU has it.  Moving values is exact:
// every clone gives the same bits.
#pragma once

#include <string_view>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(TCONV_HAVE_AVX2)
#define TCONV_CLONE_AVX2 __attribute__((flatten, target("avx2,fma")))
#endif
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && \
    defined(TCONV_HAVE_AVX512)
// the AVX-512 code generation alone (helpers that a flattened clone inlines)
#define TCONV_TARGET_AVX512 \
  __attribute__((target("avx512f,avx512vl,avx512bw,avx512dq,fma,prefer-vector-width=512")))
#define TCONV_CLONE_AVX512 __attribute__((flatten)) TCONV_TARGET_AVX512
#endif

namespace tconv {

// Which clones to run: those of the active table's ISA when this build has them, else the
// baseline's.  `table` is the active kernel table's name (active_kernels().name).
enum class CloneIsa { kBase, kAvx2, kAvx512 };

inline CloneIsa clone_isa(std::string_view table) {
#ifdef TCONV_CLONE_AVX512
  if (table == "avx512") return CloneIsa::kAvx512;
#endif
#ifdef TCONV_CLONE_AVX2
  if (table == "avx2") return CloneIsa::kAvx2;
#endif
  (void)table;
  return CloneIsa::kBase;
}

}  // namespace tconv
