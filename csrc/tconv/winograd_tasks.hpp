// Internal to the Winograd path (winograd.cpp, winograd_gather.cpp and the per-ISA task files
// winograd_*.cpp): the 1-D transforms, one output phase, the gather's call, the table of
// per-ISA task functions and the plan's common fill-in.
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "tconv/geometry.hpp"
#include "tconv/prefetch.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/winograd.hpp"
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

// The gather's axes and call (winograd_gather.cpp, winograd_gather_tasks.inc).  One axis:
// `stride` kernel phases of r taps each (after padding); kernel phase rho reads
// y[stride * (i0 + a) + rho - pad] for input a of the tile starting at x's i0, and `tiles`
// tiles of m cover x's extent.
struct GatherAxis {
  int64_t stride = 1, pad = 0, r = 0, tiles = 0;
};

template <typename T>
struct GatherCall {
  const Geometry* g;
  const T* y;
  const T* bias;
  T* x;
  const GemmKernels<T>* gk;
  const T* u;            // U[xi][group][panel of mr channels c][k][row], k = f * phases + ph
  GatherAxis ax[2];      // y and x
  int64_t M, F, P, m;    // coarse channels per group, fine per group, phases, tile
};

// Tiles [t0, t0 + nt) of x (numbered over batch x tile rows x tile columns) of group grp.
template <typename T>
using GatherTaskFn = uint64_t (*)(const GatherCall<T>& cl, int64_t grp, int64_t t0, int64_t nt,
                                  Scratch<T>& v_buf, Scratch<T>& z_buf, bool check);

// Functions of one kind by [m == 4][r_y - 2][r_x - 2], per data type.
template <template <typename> class Fn>
struct ByTransform {
  Fn<float> f32[2][2][2] = {};
  Fn<double> f64[2][2][2] = {};
  template <typename T>
  Fn<T> at(int64_t m, int64_t ry, int64_t rx) const {
    const int big = m == 4, y = static_cast<int>(ry - 2), x = static_cast<int>(rx - 2);
    if constexpr (sizeof(T) == sizeof(float)) {
      return f32[big][y][x];
    } else {
      return f64[big][y][x];
    }
  }
};

// The forward's tasks (tiles [t0, t0 + nt) of phase ph and group grp, numbered over batch x
// tile rows x tile columns) and weight transforms, and the gather's tasks; each returns the
// nonfinite bits of its stores when `check`.  One table per ISA's translation unit (compiled
// with its flags, and without contracting a*b + c, so the transforms round alike on every ISA).
struct TaskTable {
  ByTransform<TaskFn> scatter;
  ByTransform<WeightFn> weight;
  ByTransform<GatherTaskFn> gather;
};
const TaskTable* generic_tasks();
const TaskTable* avx2_tasks();    // nullptr when the compiler cannot build AVX2
const TaskTable* avx512_tasks();  // nullptr when the compiler cannot build AVX-512
// The table of the active ISA (avx512-emulated and generic: the portable one).
const TaskTable& active_tasks();

// The plan's fields every Winograd layout fills alike (winograd.cpp): the GEMM tiles, the
// tasks, U; then per task of nt tiles with a2 transform points, a GEMM sum of K and M rows:
// the scratch it takes (V of its panels, Z of one slab, as the task functions allocate) and
// its transform-domain products.
template <typename T>
WinogradPlan plan_start(const GemmKernels<T>& gk, int64_t tasks, int64_t u_size);
void plan_add_task(WinogradPlan& wp, int64_t nt, int64_t a2, int64_t K, int64_t M,
                   int64_t elem);
// "F(mxm ryxrx)", the name of a 2-D transform in the plan and the verbose line.
std::string transform_name(int64_t m, int64_t ry, int64_t rx);

}  // namespace wino
}  // namespace tconv
