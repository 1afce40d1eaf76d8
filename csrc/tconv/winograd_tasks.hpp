// Internal to the Winograd path (winograd.cpp and its per-ISA task files winograd_*.cpp):
// the 1-D transforms, one output phase, and the table of per-ISA task functions.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <utility>
#include <vector>

#include "tconv/geometry.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace wino {

// Widest B panel (nr) of any micro-kernel table; the transforms' per-tile scratch.
constexpr int kWinoMaxNR = 64;
// Bytes of transform-domain products (Z) per slab of output channels (>= mr channels).
constexpr int64_t kWinoZBytes = int64_t(256) << 10;

// Output channels per slab of a task with a2 transform points and ldz tile columns: Z within
// kWinoZBytes, a multiple of mr, at least mr and at most round_up(M, mr).
inline int64_t z_slab(int64_t a2, int64_t ldz, int64_t elem, int mr, int64_t M) {
  const int64_t slab = kWinoZBytes / (a2 * ldz * elem) / mr * mr;
  return std::clamp<int64_t>(slab, mr, round_up(M, mr));
}

// The 1-D transforms F(m, r): y = A^T [(G h) . (B^T d)], d of alpha = m + r - 1 inputs.
// Interpolation points (docs/winograd.md): F(2,2): 0, -1, inf; F(2,3): 0, 1, -1, inf;
// F(4,2): 0, 1, -1, 1/2, inf; F(4,3): 0, 1, -1, 1/2, -2, inf (the smallest error bound among
// the point sets tried).  Rows of B^T are scaled to small integers, G takes the inverse
// scale; G is a fraction num/den, applied in long double.
template <int M, int R>
struct Wino;

template <>
struct Wino<2, 2> {
  static constexpr int m = 2, r = 2, alpha = 3;
  static constexpr double AT[m][alpha] = {{1, 1, 0}, {0, -1, 1}};
  static constexpr int Gn[alpha][r] = {{1, 0}, {1, -1}, {0, 1}};
  static constexpr int Gd[alpha] = {1, 1, 1};
  static constexpr double BT[alpha][alpha] = {{1, 1, 0}, {0, -1, 0}, {0, 1, 1}};
};

template <>
struct Wino<2, 3> {
  static constexpr int m = 2, r = 3, alpha = 4;
  static constexpr double AT[m][alpha] = {{1, 1, 1, 0}, {0, 1, -1, 1}};
  static constexpr int Gn[alpha][r] = {{1, 0, 0}, {1, 1, 1}, {1, -1, 1}, {0, 0, 1}};
  static constexpr int Gd[alpha] = {1, 2, 2, 1};
  static constexpr double BT[alpha][alpha] = {
      {1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, 0, 1}};
};

template <>
struct Wino<4, 2> {
  static constexpr int m = 4, r = 2, alpha = 5;
  static constexpr double AT[m][alpha] = {
      {1, 1, 1, 1, 0}, {0, 1, -1, 0.5, 0}, {0, 1, 1, 0.25, 0}, {0, 1, -1, 0.125, 1}};
  static constexpr int Gn[alpha][r] = {{1, 0}, {1, 1}, {1, -1}, {8, 4}, {0, 1}};
  static constexpr int Gd[alpha] = {1, 2, 6, 3, 2};
  static constexpr double BT[alpha][alpha] = {{1, -2, -1, 2, 0},
                                              {0, -1, 1, 2, 0},
                                              {0, -1, 3, -2, 0},
                                              {0, 1, 0, -1, 0},
                                              {0, 1, -2, -1, 2}};
};

template <>
struct Wino<4, 3> {
  static constexpr int m = 4, r = 3, alpha = 6;
  static constexpr double AT[m][alpha] = {{1, 1, 1, 1, 1, 0},
                                          {0, 1, -1, 0.5, -2, 0},
                                          {0, 1, 1, 0.25, 4, 0},
                                          {0, 1, -1, 0.125, -8, 1}};
  static constexpr int Gn[alpha][r] = {{1, 0, 0},  {1, 1, 1},   {1, -1, 1},
                                       {16, 8, 4}, {1, -2, 4}, {0, 0, 1}};
  static constexpr int Gd[alpha] = {2, 6, 6, 15, 30, 2};
  static constexpr double BT[alpha][alpha] = {{2, -3, -4, 3, 2, 0}, {0, -2, 1, 5, 2, 0},
                                              {0, -2, 5, -1, -2, 0}, {0, 2, 1, -2, -1, 0},
                                              {0, 1, -2, -1, 2, 0},  {0, 2, -3, -4, 3, 2}};
};

// One output phase of the 2-D problem (axes 1 = y and 2 = x of the Geometry).
struct Phase {
  int64_t rho[2], extent[2], first[2], tiles[2];
  std::vector<int64_t> taps[2];  // kernel index of each tap, increasing
  int64_t u_offset = 0;          // first element of this phase's U
};

template <typename T>
struct Call {
  const Geometry* g;
  const T* x;
  const T* bias;
  T* y;
  const GemmKernels<T>* gk;
  const T* u;
  int64_t M, Kc, m;
};

template <typename T>
using TaskFn = uint64_t (*)(const Call<T>& cl, const Phase& ph, int64_t grp, int64_t t0,
                            int64_t nt, Scratch<T>& v_buf, Scratch<T>& z_buf, bool check);

// U = G h G^T of one phase and group for input channels [c0, c1) and every output channel,
// into the phase's U (A panels of mr rows per transform point); by the same index as TaskFn.
template <typename T>
using WeightFn = void (*)(const Geometry& g, const Phase& ph, const T* w, int mr, T* u_phase,
                          int64_t grp, int64_t c0, int64_t c1);

// Task functions by [m == 4][r_y - 2][r_x - 2]: tiles [t0, t0 + nt) of phase ph and group grp
// (numbered over batch x tile rows x tile columns); returns the nonfinite bits of the stores
// when `check`.  One table per ISA's translation unit (compiled with its flags, and without
// contracting a*b + c, so the transforms round alike on every ISA).
struct TaskTable {
  TaskFn<float> f32[2][2][2] = {};
  TaskFn<double> f64[2][2][2] = {};
  WeightFn<float> w32[2][2][2] = {};
  WeightFn<double> w64[2][2][2] = {};
};
const TaskTable* generic_tasks();
const TaskTable* avx2_tasks();    // nullptr when the compiler cannot build AVX2
const TaskTable* avx512_tasks();  // nullptr when the compiler cannot build AVX-512

}  // namespace wino
}  // namespace tconv
