// The forward transposed convolution for few output channels per group (csrc/columns.cpp):
// one GEMM whose rows are output channel x tap, then a col2im gather.
#pragma once

#include <cstdint>

#include "tconv/geometry.hpp"

namespace tconv {

// Whether scatter_columns is the forward's path for g with elements of elem_size bytes.
// Decided from the problem only (never from the thread count), so that the result is the
// same for any number of threads.
bool columns_suit(const Geometry& g, int64_t elem_size);

// y = C^T x like scatter(); with `check`, returns false when some output is Inf or NaN.
template <typename T>
bool scatter_columns(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool check);

}  // namespace tconv
