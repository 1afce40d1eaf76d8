// Depthwise micro-kernels for "avx512-emulated": the avx512 instantiation of
// depthwise_template.hpp (64-byte blocks, std::fma) compiled with no ISA flags and
// -ffp-contract=off, so its block and tail logic runs anywhere with avx512's results.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "tconv/depthwise.hpp"

#ifdef TCONV_HAVE_EMULATED_ISAS
namespace {
#include "depthwise_template.hpp"
}  // namespace

namespace tconv {
const DepthwiseKernels* avx512_emulated_depthwise() {
  static const DepthwiseKernels table = dw_table<64, FusedMadd>();
  return &table;
}
}  // namespace tconv
#else
namespace tconv {
const DepthwiseKernels* avx512_emulated_depthwise() { return nullptr; }
}  // namespace tconv
#endif
