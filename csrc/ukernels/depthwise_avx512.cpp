// Depthwise micro-kernels (depthwise_template.hpp) for AVX-512: 64-byte vectors, fused
// multiply-add; compiled with the AVX-512 flags (CMake set_source_files_properties).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include "tconv/depthwise.hpp"

#ifdef TCONV_HAVE_AVX512
namespace {
#include "depthwise_template.hpp"
}  // namespace

namespace tconv {
const DepthwiseKernels* avx512_depthwise() {
  static const DepthwiseKernels table = dw_table<64, FusedMadd>();
  return &table;
}
}  // namespace tconv
#else
namespace tconv {
const DepthwiseKernels* avx512_depthwise() { return nullptr; }
}  // namespace tconv
#endif
