// "avx512-emulated": the AVX-512 kernel table (avx512_table.hpp: same tiles, edge paths and lane
// reduction order) over portable 16-float / 8-double lane arrays, compiled with no ISA flags, so
// the tile logic that ships to AVX-512 CPUs runs in the test suites on any CPU.  Its results
// equal the real avx512 table's bit for bit (tests/test_isa_emulated.py checks this where both
// run).  Slow (one std::fma call per lane): listed last by supported_isas(), never chosen unless
// asked for (TCONV_ISA, set_isa).  CMake option TCONV_EMULATED_ISAS=OFF leaves it out.
// Its kernels are the avx512 list's, in namespace tconv::ukernels::emulated (e.g.
// tconv::ukernels::emulated::f32_gemm_12x32__avx512f).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string_view>
#include <type_traits>

#include "tconv/assert.hpp"
#include "tconv/ukernels.hpp"

#ifdef TCONV_HAVE_EMULATED_ISAS

namespace {

#include "emulated_vec.hpp"
#include "gemm_template.hpp"
#include "avx512_table.hpp"

using F32 = Avx512Ops<EmulatedOps<float, 16>>;
using F64 = Avx512Ops<EmulatedOps<double, 8>>;
static_assert(F32::kWidth == 16 && F64::kWidth == 8, "AVX-512 is 16 floats / 8 doubles");

}  // namespace

namespace tconv::ukernels::emulated {
TCONV_AVX512_UKERNELS(TCONV_UKERNEL_DEFINE)
}  // namespace tconv::ukernels::emulated

namespace {

tconv::IsaKernels make_table() {
  using namespace tconv::ukernels::emulated;
  tconv::IsaKernels table;
  table.name = "avx512-emulated";
  TCONV_AVX512_UKERNELS(TCONV_UKERNEL_FILL)
  return table;
}

}  // namespace

namespace tconv {
const IsaKernels* avx512_emulated_kernels() {
  static const IsaKernels table = make_table();
  return &table;
}
}  // namespace tconv

#else
namespace tconv {
const IsaKernels* avx512_emulated_kernels() { return nullptr; }
}  // namespace tconv
#endif
