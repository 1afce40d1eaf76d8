// Depthwise micro-kernels (depthwise_template.hpp) for the "generic" ISA: no ISA flags
// (16-byte vectors, the baseline's), unfused multiply-add like the generic GEMM table, built
// with -ffp-contract=off so that no compiler fuses it where the baseline has FMA.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "tconv/depthwise.hpp"

namespace {
#include "depthwise_template.hpp"
}  // namespace

namespace tconv {
const DepthwiseKernels* generic_depthwise() {
  static const DepthwiseKernels table = dw_table<16, UnfusedMadd>();
  return &table;
}
}  // namespace tconv
