// How weight_grad (csrc/weight_grad.cpp) cuts a call: its plan, shared with the planner.
#pragma once

#include <cstdint>
#include <vector>

#include "tconv/geometry.hpp"
#include "tconv/ukernels.hpp"

namespace tconv {

// Rows [m0, m0 + mc) of group `group`, dW columns [col0, col1), reduction chunk `chunk`.
// The channels-last form: all rows, fine channels [col0, col1) of the group (whole nr blocks).
struct WeightGradTask {
  int64_t group, m0, col0, col1, chunk;
};

// The GEMM dW (M x N per group) = coarse (M x K) * fine^T (K x N), K = batch x pixels.
struct WeightGradPlan {
  bool outer = false;  // the outer-product form (else dot products)
  bool channels_last = false;  // the outer form's channels-last variant (see weight_grad.cpp)
  // The channels-last form on the phase view of x (phase_geometry in weight_grad.cpp): its
  // x stride, 0 when off.  `width`: channels-last's result row (fine channels per group of
  // the view, rounded up to whole nr blocks).
  int64_t phase = 0, width = 0;
  int64_t out_values = 0;  // channels-last: its result, (tap, row, channel) per chunk
  int mr = 0, nr = 0;
  int64_t kc = 0, mc = 0, nc = 0;  // K block, rows per task, columns per B block
  int64_t chunks = 1, chunk_len = 0;  // the reduction in 1 or 2 chunks (a second dW)
  std::vector<WeightGradTask> tasks;
  double flops = 0;
  int64_t table_bytes = 0;  // the call's table of B's columns, shared (channels-last: taps)
  bool parallel = false;
};

// The channels-last form on the phase view of x (weight_grad.cpp: phase_form): by its rule
// (-1), never (0), or wherever the view can run (1); for tests.
void set_phase_view(int mode);

template <typename T>
WeightGradPlan plan_weight_grad_blocks(const Geometry& g, const GemmKernels<T>& uk, int threads);

// The channels-last form's workspace per thread (values of T), for tconv.plan: its A panels
// and the largest band of the call's K blocks (which the run itself never needs up front).
template <typename T>
int64_t channels_last_thread_values(const Geometry& g, const WeightGradPlan& p);

}  // namespace tconv
