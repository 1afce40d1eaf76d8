// "avx512-emulated": the AVX-512 kernel table (avx512_table.hpp: same tiles, edge paths and lane
// reduction order) over portable 16-float / 8-double lane arrays, compiled with no ISA flags, so
// the tile logic that ships to AVX-512 CPUs runs in the test suites on any CPU.  Its results
// equal the real avx512 table's bit for bit (tests/test_isa_emulated.py checks this where both
// run).  Slow (one std::fma call per lane): listed last by supported_isas(), never chosen unless
// asked for (TCONV_ISA, set_isa).  CMake option TCONV_EMULATED_ISAS=OFF leaves it out.
#include <cmath>
#include <cstdint>
#include <utility>

#include "tconv/ukernels.hpp"

#ifdef TCONV_HAVE_EMULATED_ISAS

namespace {

#include "emulated_vec.hpp"
#include "gemm_template.hpp"
#include "avx512_table.hpp"

}  // namespace

namespace tconv {
const IsaKernels* avx512_emulated_kernels() {
  static const IsaKernels table =
      make_avx512_table<EmulatedOps<float, 16>, EmulatedOps<double, 8>>("avx512-emulated");
  return &table;
}
}  // namespace tconv

#else
namespace tconv {
const IsaKernels* avx512_emulated_kernels() { return nullptr; }
}  // namespace tconv
#endif
