// The pure kernels of tconv.  They know nothing of Python: plain pointers to C-contiguous
// arrays laid out as documented in geometry.hpp, and a Geometry that has been validated.
// Every kernel writes each output element from exactly one thread, in a fixed summation
// order, so results are bitwise identical for any thread count (no atomics).
#pragma once

#include "tconv/geometry.hpp"

namespace tconv {

// y = C^T x (transposed convolution, scatter-add form).
//   x: (N, C_coarse, *coarse)   w: (C_coarse, C_fine/groups, *kernel)   bias: (C_fine) or null
//   y: (N, C_fine, *fine)       overwritten
template <typename T>
void scatter(const Geometry& g, const T* x, const T* w, const T* bias, T* y);

// x = C y (ordinary strided convolution, gather form; also grad_input of conv_transpose).
//   y: (N, C_fine, *fine)   w as above   bias: (C_coarse) or null   x: (N, C_coarse, *coarse)
template <typename T>
void gather(const Geometry& g, const T* y, const T* w, const T* bias, T* x);

// dW[c][f][k] = sum_n sum_i coarse[n][c][i] * fine[n][f][i*s - p + k*d]
// (grad_weight of conv_transpose with coarse = input, fine = grad_output, and of conv with
// coarse = grad_output, fine = input).   dw: (C_coarse, C_fine/groups, *kernel), overwritten.
template <typename T>
void weight_grad(const Geometry& g, const T* coarse, const T* fine, T* dw);

// OpenMP thread control (the pool used by every kernel).
int get_num_threads();
void set_num_threads(int n);
// Make the calling thread use the process-wide count (OpenMP thread counts are per thread).
void apply_num_threads();

}  // namespace tconv
