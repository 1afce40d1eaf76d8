// The Winograd tasks (winograd_tasks.inc, winograd_gather_tasks.inc) compiled with the AVX-512
// flags and -ffp-contract=off (CMake set_source_files_properties): the transforms use this ISA's
// vectors and round as on every other ISA.
#include <algorithm>
#include <cstdint>

#ifdef TCONV_HAVE_AVX512
#include <immintrin.h>
#endif

#include "tconv/nonfinite.hpp"
#include "tconv/winograd_tasks.hpp"

#ifdef TCONV_HAVE_AVX512
namespace {
#include "winograd_tasks.inc"
#include "winograd_gather_tasks.inc"
}  // namespace

const tconv::wino::TaskTable* tconv::wino::avx512_tasks() {
  static const TaskTable table = make_table();
  return &table;
}
#else
const tconv::wino::TaskTable* tconv::wino::avx512_tasks() { return nullptr; }
#endif
