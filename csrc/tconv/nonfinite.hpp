// Choosing between the fast kernels and the exact loop nests (direct.cpp) for Inf/NaN data.
//
// The fast kernels also multiply padded zeros by weights, so an Inf/NaN weight or input can
// turn outputs that the operator's definition never pairs it with into NaN (0 * Inf); the
// direct kernels then give the exact result.  Two equivalent tests decide, whichever reads
// fewer values:
//   - before: scan the two operands; any Inf/NaN -> exact kernel only.
//   - after: run the fast kernel and test its result.  Every product the fast kernel forms
//     is summed into some result element, and a sum that takes an Inf or NaN term stays Inf
//     or NaN, so a finite result means every product had finite factors: the padded-zero
//     products were exact zeros, and the result is the exact one.  Otherwise (an Inf/NaN
//     operand, or a finite overflow) the exact kernel overwrites the whole result.
// Columns the fast kernel computes past a tile's end and discards are not part of the result:
// the values they read are not paired with any result element by the definition either.
// The sub-convolutions test each value as they store it (no extra pass over the result);
// grad_weight scans dW.
#pragma once

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tconv/kernels.hpp"

namespace tconv {

// Integer image of a value's exponent test (an IEEE value is Inf or NaN exactly when its
// exponent bits are all ones): OR these over many values and the result is nonzero exactly
// when one of them is Inf or NaN (an integer OR vectorises; no floating-point reduction).
template <typename T>
inline auto nonfinite_bit(T v) {
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  Bits b;
  std::memcpy(&b, &v, sizeof(T));
  return Bits((b & exponent) == exponent);
}

// fast(check) runs the fast kernel and, when `check`, returns false if its result holds an
// Inf or NaN; exact() runs the loop nest.  a, b: the operands; result_size: the result's.
template <typename T, typename Fast, typename Exact>
void run_checked(const T* a, int64_t a_size, const T* b, int64_t b_size, int64_t result_size,
                 Fast&& fast, Exact&& exact) {
  if (result_size < a_size + b_size) {
    if (!fast(true)) exact();
  } else if (!all_finite(a, a_size) || !all_finite(b, b_size)) {
    exact();
  } else {
    fast(false);
  }
}

}  // namespace tconv
