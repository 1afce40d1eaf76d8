// Winograd minimal filtering for the forward (scatter) of 2-D transposed convolutions.
//
// scatter.cpp splits y = C^T x into stride_y x stride_x output phases, each a dense stride-1
// correlation of x with a sub-kernel of r_y x r_x taps.  With dilation 1 a phase's taps are
// consecutive in x (tap_offset falls by 1 per tap), so per axis, for phase rho,
//
//   y[j*s + rho] = sum_{q < r} h[q] * x[j + u + q],   h[q] = W[k_{r-1-q}],  u = min tap_offset,
//
// and Winograd's F(m, r) computes m outputs of it from a tile of alpha = m + r - 1 inputs
// with alpha multiplications instead of m*r:  y_tile = A^T [(G h) . (B^T d)].  In 2-D, per
// output tile and channel pair, alpha_y*alpha_x multiplications instead of m_y*m_x*r_y*r_x;
// summed over the input channels, the transform-domain products become alpha_y*alpha_x GEMMs
// (C_out/groups x C_in/groups times C_in/groups x tiles).  docs/winograd.md derives the error
// bound of each transform shipped here.
//
// What runs (winograd_suits, a pure function of the geometry; the planner, plan.cpp, chooses):
//   2-D only (1-D and 3-D, and dilation > 1, run the direct path), every phase with 2 or 3
//   taps on each axis (k4 s2 -> 2x2 for every phase; k3 s1 -> 3x3; k5 s2 -> 3x3, 3x2, 2x3,
//   2x2; but k3 s2 has phases of 1 tap and runs the direct path).  Tiles of m = 2 outputs
//   per axis ("winograd": F(2,2), F(2,3)) or m = 4 ("winograd4": F(4,2), F(4,3)).
// Inf/NaN: a NaN in one input spreads across the tile (and the channels) in the transform
// domain, so the Winograd path runs only on finite operands (else the direct path); an
// overflow inside a transform leaves Inf/NaN in the result, which the loop nest recomputes
// (scatter_repair), so every element that comes back finite was computed without one.
#pragma once

#include <cstdint>

#include <string>

#include "tconv/geometry.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/plan.hpp"

namespace tconv {

// Output tile per axis of a Winograd algorithm (0 for direct and auto).
int winograd_tile(ForwardMethod a);

// True when the Winograd path with output tile m (2 or 4) per axis can compute the forward
// of g: 2-D (g.kernel[0] == g.coarse[0] == 1), dilation 1, and every output phase has 2 or 3
// taps on both axes.  Pure: depends on g and m only.
bool winograd_suits(const Geometry& g, int m);

// The plan of the Winograd forward with tile m (winograd_suits(g, m)): what the executor
// computes for itself with the same function.  The 2-D transforms the phases run, e.g.
// "F(2x2 2x2)" or "F(2x2 3x3)+F(2x2 3x2)" (no comma: the verbose line is comma-separated); the GEMMs' tile and K block; the tasks (phase x
// group x block of tiles) and the largest block; the transformed weights U (shared) and the
// largest per-thread scratch (V of one tile block, Z of one slab of output channels), bytes.
struct WinogradPlan {
  std::string transforms;
  int mr = 0, nr = 0;
  int64_t kc = 0, tasks = 0, tiles_per_task = 0, slab = 0;
  int64_t u_bytes = 0, thread_bytes = 0;
  double products = 0;         // multiplications of the transform-domain GEMMs
  double direct_products = 0;  // ... of the direct method (as the sub-convolutions count)
};
template <typename T>
WinogradPlan plan_winograd(const Geometry& g, int m);

// How a Winograd call runs: direct() when `algo` is kDirect or an operand (a, b) holds an
// Inf or NaN (it would spread across a tile in the transform domain); else winograd(check),
// then repair() (the loop nest on the result's Inf/NaN elements) if it overflowed somewhere.
template <typename T, class Direct, class Winograd, class Repair>
void run_winograd_or_direct(ForwardMethod algo, const T* a, int64_t a_size, const T* b,
                            int64_t b_size, Direct&& direct, Winograd&& winograd,
                            Repair&& repair) {
  if (algo == ForwardMethod::kDirect || !all_finite(a, a_size) || !all_finite(b, b_size)) {
    direct();
  } else if (!winograd(/*check=*/true)) {
    repair();
  }
}

// Forward y = C^T x (layouts as tconv::scatter) by the algorithm choose_algorithm picks.
template <typename T>
void scatter_with(const Geometry& g, ForwardMethod requested, const T* x, const T* w,
                  const T* bias, T* y);

}  // namespace tconv
