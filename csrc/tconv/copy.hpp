// Fixed-length copies for the packing routines: with LEN and STEP known at compile time the
// loop is fully unrolled and vectorised (a run-time length of a few elements would become a
// memcpy call or a scalar loop).
#pragma once

namespace tconv {

// to[u] = from[u * STEP] for u < LEN.
template <typename T, int STEP, int LEN>
inline void copy_fixed(const T* from, T* to) {
#pragma GCC unroll 32
  for (int u = 0; u < LEN; ++u) to[u] = from[u * STEP];
}

}  // namespace tconv
