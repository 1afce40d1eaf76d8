// The forward transposed convolution for few output channels per group (csrc/columns.cpp):
// one GEMM whose rows are output channel x tap, then a col2im gather.
#pragma once

#include <cstdint>

#include "tconv/geometry.hpp"

namespace tconv {

// Whether scatter_columns is the forward's path for g.  Decided from the channels and the
// kernel only -- never from the batch, the image size or the thread count -- so that an
// output element's value does not depend on them.
bool columns_suit(const Geometry& g);

// How scatter_columns cuts a call: blocks of the output along `axis`, one task per (image,
// group, block); rows = M x taps (the GEMM's rows), z_bytes = the whole Z of one image,
// b_bytes = the B panels a thread packs at once (at most).
struct ColumnsPlan {
  int axis = 0;
  int64_t rows = 0, z_bytes = 0, b_bytes = 0, blocks = 0, task_count = 0;
  double flops = 0;
  bool parallel = false;
};
template <typename T>
ColumnsPlan plan_columns(const Geometry& g, int threads);

// y = C^T x like scatter(); with `check`, returns false when some output is Inf or NaN.
template <typename T>
bool scatter_columns(const Geometry& g, const T* x, const T* w, const T* bias, T* y, bool check);

}  // namespace tconv
