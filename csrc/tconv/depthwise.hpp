// Depthwise and few-channels-per-group layers (csrc/depthwise.cpp): vectorised over the
// pixels of an output row instead of over channels.
//
// With one channel per group on each side (groups = channels: the learned-bilinear upsampler
// of FCN and mobile decoders), the sub-convolutions' implicit GEMM has M = 1 row and K = taps:
// its tiles are nearly empty.  Here every output row of every phase is a
// short sum of shifted input rows, each scaled by one weight:
//
//   forward, o = j*s + rho per axis:  y[j*s + rho] = sum_{c, k in taps(rho)} W[k] * x[j + off(rho, k)]
//   gather:                           x[i] = sum_{f, k} W[k] * y[i*s - p + k*d]
//
// written with vector loads along the row (a gather first splits each source row into its s
// phases so that its reads are contiguous; a forward computes each x phase as its own row and
// interleaves them into y).
#pragma once

#include <cstdint>

#include "tconv/geometry.hpp"

namespace tconv {

// Whether the forward (scatter) and the gather (conv, grad_input) of g run here.  Decided
// from the channels per group only -- never the batch, image size or thread count.
bool depthwise_suits(const Geometry& g);

// How the rows are split (reported by tconv.plan): tasks of rows_per_task whole output rows,
// run in parallel when there are several and several threads; per thread, scratch of at most
// scratch_values values (the x phases of one output row, or of a gather's source rows).
struct DepthwisePlan {
  int64_t tasks = 0, rows_per_task = 0, scratch_values = 0;
  bool parallel = false;
};
DepthwisePlan plan_depthwise(const Geometry& g, bool transposed, int threads);

// y = C^T x like scatter(); with `check`, returns false when some output is Inf or NaN.
template <typename T>
bool scatter_depthwise(const Geometry& g, const T* x, const T* w, const T* bias, T* y,
                       bool check);

// x = C y like gather(); with `check`, returns false when some output is Inf or NaN.
template <typename T>
bool gather_depthwise(const Geometry& g, const T* y, const T* w, const T* bias, T* x,
                      bool check);

// How weight_grad_depthwise cuts a call (reported by tconv.plan('grad_weight')): tasks of
// one channel x `items` consecutive batch items; with chunks > 1 batch chunks per channel,
// the chunks' sums are added in increasing chunk order in a final pass.  Decided from the
// sizes only, never the thread count.
struct DepthwiseWeightGradPlan {
  int64_t tasks = 0, items = 0, chunks = 0, scratch_values = 0, partial_values = 0;
  bool parallel = false;
};
DepthwiseWeightGradPlan plan_depthwise_weight_grad(const Geometry& g, int threads);

// dW[c][0][k] = sum_n sum_i coarse[n][c][i] * fine[n][c][i*s - p + k*d] (depthwise_suits(g)),
// vectorised over the pixels of a row (kDwDotLanes lanes per tap, reduced in a fixed tree).
template <typename T>
void weight_grad_depthwise(const Geometry& g, const T* coarse, const T* fine, T* dw);

// ---- micro-kernels (csrc/ukernels/depthwise_*.cpp, one translation unit per ISA) ----------

// One term of an output row: w * row[j + off], reads outside [0, len) being zeros.
template <typename T>
struct DwTerm {
  const T* row;
  int64_t off;
  int64_t len;
  T w;
};

// out[j] = (sum over t < count, in increasing t, of terms[t].w * terms[t].row[j + off_t]
//          for the t with 0 <= j + off_t < len_t) + *bias (when bias != null), j < extent.
// One accumulator per output starting from zero, terms added with the ISA's multiply-add
// (one rounding where the ISA has FMA): a term outside its row is skipped, which gives the
// same sum as adding its zero product (the accumulator is never -0).
template <typename T>
using DwRowUkernel = void (*)(const DwTerm<T>* terms, int64_t count, int64_t extent,
                              const T* bias, T* out);

// The forward's row of x stride 2 with both x phases, terms t0 (phase 0, n0 of them) and t1
// (phase 1): out[2j + r] = (sum over the terms of phase r as DwRowUkernel) + *bias for
// 2j + r < total, each phase's extent being (total + 1 - r) / 2.  Returns whether some output
// is Inf or NaN.
template <typename T>
using DwRow2Ukernel = bool (*)(const DwTerm<T>* t0, int64_t n0, const DwTerm<T>* t1, int64_t n1,
                               int64_t total, const T* bias, T* out);

// out[u * step + r] = phases[r][u] for u * step + r < total (interleaving store of phases).
template <typename T>
using DwInterleave = void (*)(const T* const* phases, int64_t step, int64_t total, T* out);

// phases[r][u] = in[u * step + r] for u * step + r < total (the inverse).
template <typename T>
using DwDeinterleave = void (*)(const T* in, int64_t step, int64_t total, T* const* phases);

// Lanes of the weight gradient's dot products, the same for every ISA and dtype (a vector
// type of this many values, split by the compiler into the ISA's registers), so that the
// sums do not depend on the vector width: lane l sums the products of row positions
// j = l (mod kDwDotLanes), in increasing j.
constexpr int kDwDotLanes = 32;

// acc[t * kDwDotLanes + l] = madd(a[j], terms[t].row[j + off_t], ...) over the j < extent
// with j % kDwDotLanes = l, in increasing j, for each t < count; extent is a multiple of
// kDwDotLanes and every read lies inside its array (the caller pads rows with zeros;
// terms[t].w and len are not read).  acc holds count x kDwDotLanes running sums.
template <typename T>
using DwDotUkernel = void (*)(const T* a, int64_t extent, const DwTerm<T>* terms, int64_t count,
                              T* acc);

template <typename T>
struct DwKernels {
  DwRowUkernel<T> row = nullptr;
  DwRow2Ukernel<T> row2 = nullptr;
  DwDotUkernel<T> dot = nullptr;
  DwInterleave<T> interleave = nullptr;
  DwDeinterleave<T> deinterleave = nullptr;
};

struct DepthwiseKernels {
  DwKernels<float> f32;
  DwKernels<double> f64;
};

// One table per ISA (nullptr when the compiler could not build it), named as in
// supported_isas(); the operators take the active ISA's.
const DepthwiseKernels* generic_depthwise();
const DepthwiseKernels* avx2_depthwise();
const DepthwiseKernels* avx512_depthwise();
const DepthwiseKernels* avx512_emulated_depthwise();

}  // namespace tconv
