// Choosing between the fast kernels and the exact loop nests (direct.cpp) for Inf/NaN data.
//
// The fast kernels also multiply padded zeros by weights, so an Inf/NaN weight or input can
// turn outputs that the operator's definition never pairs it with into NaN (0 * Inf); the
// direct kernels then give the exact result.  Two equivalent tests decide, whichever reads
// fewer values:
//   - before: scan the two operands; any Inf/NaN -> exact kernel only.
//   - after: run the fast kernel and scan its result.  Every product the fast kernel forms
//     is summed into some result element, and a sum that takes an Inf or NaN term stays Inf
//     or NaN, so a finite result means every product had finite factors: the padded-zero
//     products were exact zeros, and the result is the exact one.  Otherwise (an Inf/NaN
//     operand, or a finite overflow) the exact kernel overwrites the whole result.
// Columns the fast kernel computes past a tile's end and discards are not part of the result:
// the values they read are not paired with any result element by the definition either.
#pragma once

#include <cstdint>
#include <utility>

#include "tconv/kernels.hpp"

namespace tconv {

template <typename T, typename Fast, typename Exact>
void run_checked(const T* a, int64_t a_size, const T* b, int64_t b_size, T* result,
                 int64_t result_size, Fast&& fast, Exact&& exact) {
  if (result_size < a_size + b_size) {
    fast();
    if (!all_finite(result, result_size)) exact();
    return;
  }
  if (!all_finite(a, a_size) || !all_finite(b, b_size)) {
    exact();
    return;
  }
  fast();
}

}  // namespace tconv
