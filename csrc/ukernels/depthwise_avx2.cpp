// Depthwise micro-kernels (depthwise_template.hpp) for AVX2 + FMA: 32-byte vectors, fused
// multiply-add; compiled with -mavx2 -mfma (CMake set_source_files_properties).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "tconv/depthwise.hpp"

#ifdef TCONV_HAVE_AVX2
namespace {
#include "depthwise_template.hpp"
}  // namespace

namespace tconv {
const DepthwiseKernels* avx2_depthwise() {
  static const DepthwiseKernels table = dw_table<32, FusedMadd>();
  return &table;
}
}  // namespace tconv
#else
namespace tconv {
const DepthwiseKernels* avx2_depthwise() { return nullptr; }
}  // namespace tconv
#endif
