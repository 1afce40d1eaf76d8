// Inf/NaN data: the fast kernels, then the exact loop nest (direct.cpp) on the few outputs
// that need it.
//
// The fast kernels also multiply padded zeros by weights, so an Inf/NaN weight or input can
// turn outputs that the operator's definition never pairs it with into NaN (0 * Inf).  But
// every product the fast kernel forms is summed into some result element, and a sum that
// takes an Inf or NaN term stays Inf or NaN: a result element the fast kernel leaves finite
// had only finite products (its padded-zero products were exact zeros), so it is the
// operator's value.  Only the elements it leaves Inf or NaN can be wrong (a NaN where the
// definition has a finite value, or a finite overflow summed in another order), and the
// repair recomputes exactly those with the loop nest.  One NaN in a large input then costs
// the loop-nest work of the outputs its window reaches, not of the whole call.
// Whether a result element holds Inf or NaN is known two equivalent ways, whichever reads
// fewer values:
//   - before: scan the two operands; all finite -> the fast kernel without any test (its
//     result can then only be non-finite by a finite overflow, which it keeps).
//   - after: the fast kernel tests its result as it stores it; when it finds Inf/NaN, the
//     operands are scanned, and only a non-finite operand calls for the repair (all finite:
//     a finite overflow, kept as in the first way).
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
// Inf or NaN; repair() recomputes the result's Inf/NaN elements by the loop nest, called only
// when an operand is Inf or NaN.  a, b: the operands; result_size: the result's.
template <typename T, typename Fast, typename Repair>
void run_checked(const T* a, int64_t a_size, const T* b, int64_t b_size, int64_t result_size,
                 Fast&& fast, Repair&& repair) {
  auto operands_finite = [&] { return all_finite(a, a_size) && all_finite(b, b_size); };
  const bool scan_first = result_size >= a_size + b_size;
  if (fast(scan_first ? !operands_finite() : true)) return;
  // An Inf/NaN result from finite operands is a finite overflow of the fast kernel's sums:
  // kept, exactly as when the operands were scanned first, so the two ways agree bit for bit.
  // (Scanned first, the operands are already known not to be finite.)
  if (!scan_first && operands_finite()) return;
  repair();
}

}  // namespace tconv
