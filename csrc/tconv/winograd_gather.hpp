// Winograd minimal filtering for the gather of 2-D problems: the ordinary convolution (conv) and
// conv_transpose's grad_input, x = C y (layouts as tconv::gather).
//
// Per axis the gather reads x[i] = sum_k W[k] y[i*s - p + k].  Split the tap k = s*q + rho,
// rho in [0, s): y[s*(i + q) + rho - p] = y_e[i + q + o], with e = (rho - p) mod s the input
// phase, y_e[j] = y[s*j + e] (zero outside y) and o = floor((rho - p) / s).  So the gather is a
// SUM over the s_y*s_x kernel phases rho of stride-1 correlations of y_e(rho) with the sub-kernel
// h_rho[q] = W[s*q + rho], each of r_rho = ceil((k - rho) / s) taps, and Winograd's F(m, r)
// computes m outputs of each from a tile of alpha = m + r - 1 inputs of y_e.  The sum over the
// phases and the channels runs in the transform domain:
//
//   x_tile = A^T [ sum_{f, rho} (G h_{c,f,rho} G^T) . (B^T d_{f,rho} B) ] A + bias,
//
// i.e. one GEMM per transform point with K = (channels per group) x (phases) and ONE output
// transform per tile of x.  One alpha per axis for every phase: a phase with fewer taps than
// r = ceil(k / s) (k5 s2: phases of 3 and 2 taps) is padded with zero taps to r, which only
// costs the padded products.  docs/winograd.md derives the error bound.
//
// What runs (winograd_gather_suits, a pure function of the geometry): 2-D, dilation 1, and per
// axis a kernel of 2 or 3 taps per phase, k in [2s, 3s] (the forward's condition); else direct.
// Inf/NaN as the forward: finite operands only, overflowed outputs recomputed by the loop nest.
#pragma once

#include <cstdint>
#include <string>

#include "tconv/geometry.hpp"
#include "tconv/plan.hpp"
#include "tconv/winograd.hpp"

namespace tconv {

// True when the Winograd gather with output tile m (2 or 4) per axis can compute g.
bool winograd_gather_suits(const Geometry& g, int m);

// The method the gather runs for `requested` (never kAuto): as choose_algorithm, with
// winograd_gather_suits; kAuto runs direct (no transform met the criterion, docs/winograd.md).
ForwardMethod choose_gather_algorithm(const Geometry& g, ForwardMethod requested);

// The plan of the Winograd gather with tile m (winograd_gather_suits(g, m)), as WinogradPlan
// for the forward; the executor builds its tasks with the same function.
template <typename T>
WinogradPlan plan_winograd_gather(const Geometry& g, int m);

// x = C y by the method choose_gather_algorithm picks.
template <typename T>
void gather_with(const Geometry& g, ForwardMethod requested, const T* y, const T* w,
                 const T* bias, T* x);

}  // namespace tconv
