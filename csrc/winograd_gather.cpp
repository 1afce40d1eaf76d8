// Winograd gather for 2-D problems: conv and conv_transpose's grad_input (formulas and plan in
// tconv/winograd_gather.hpp; error bound in docs/winograd.md).
//
// Per call:
//   U = G h G^T for every transform point xi, group, coarse channel c, fine channel f and kernel
//     phase (sub-kernel h of r_y x r_x taps, zero-padded), in the forward's wider type and
//     rounded once to T, packed as the micro-kernels' A panels (mr rows each, k = f * P + phase);
//   tasks = group x block of tiles of x (m x m outputs, numbered over batch and x's tile grid).
//     A task: V[xi] = B^T d B per tile, fine channel and phase (d read from y with the stride);
//     per slab of coarse channels, Z[xi] = U[xi] V[xi] (one GEMM per transform point over
//     K = F x P, K blocks in a fixed order), then x = A^T Z A + bias (inside x only).
// Every x element is written by one task and depends only on the transforms and the fixed
// K-block order: bitwise deterministic for any thread count.
#include "tconv/winograd_gather.hpp"

#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

#include <omp.h>

#include "tconv/cancel.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/winograd_tasks.hpp"

namespace tconv {
namespace {

// Bytes of transformed input (V) one task keeps: the tile block shrinks to fit (>= 1 panel).
constexpr int64_t kGatherVBytes = int64_t(512) << 10;
// Most B panels (nr tiles each) in one tile block.
constexpr int64_t kGatherMaxPanels = 8;

using wino::GatherAxis;
using wino::GatherCall;
using wino::GatherTaskFn;
using wino::Wino;

// The weight transform's working type (as the forward's): double for float, long double for
// double, rounded once to T.
template <typename T>
using Wide = std::conditional_t<sizeof(T) == sizeof(float), double, long double>;

// Applies the 1-D filter transform G (alpha x r, rows num/den) to r values of `in` spaced
// `in_step` apart, writing alpha values spaced `out_step` apart.
template <class FW, typename W>
void filter_1d(const W* in, int64_t in_step, W* out, int64_t out_step) {
  for (int e = 0; e < FW::alpha; ++e) {
    W s = 0;
    for (int q = 0; q < FW::r; ++q) s += static_cast<W>(FW::Gn[e][q]) * in[q * in_step];
    out[e * out_step] = s / FW::Gd[e];
  }
}

// U of group grp and coarse channel c, every fine channel and phase: W[c] is one contiguous
// stretch (F x taps), read in order.
template <typename T, class FY, class FX>
void gather_weight_transform(const Geometry& g, const GatherAxis (&ax)[2], const T* w, int mr,
                             T* u, int64_t grp, int64_t c) {
  using W = Wide<T>;
  constexpr int ay = FY::alpha, axx = FX::alpha, ry = FY::r, rx = FX::r;
  const int64_t M = g.coarse_per_group(), F = g.fine_per_group();
  const int64_t sy = ax[0].stride, sx = ax[1].stride, P = sy * sx, K = F * P;
  const int64_t ky = g.kernel[1], kx = g.kernel[2];
  const int64_t panel = c / mr, i = c % mr, rows = std::min<int64_t>(mr, M - panel * mr);
  T* u_c = u + grp * M * K + panel * mr * K + i;  // + xi * groups * M * K + k * rows
  for (int64_t f = 0; f < F; ++f) {
    const T* wf = w + ((grp * M + c) * F + f) * ky * kx;
    for (int64_t ph = 0; ph < P; ++ph) {
      const int64_t rho_y = ph / sx, rho_x = ph % sx;
      W h[ry][rx];  // h[qy][qx] = W[sy * qy + rho_y][sx * qx + rho_x], zero past the kernel
      for (int qy = 0; qy < ry; ++qy)
        for (int qx = 0; qx < rx; ++qx) {
          const int64_t ty = sy * qy + rho_y, tx = sx * qx + rho_x;
          h[qy][qx] = ty < ky && tx < kx ? static_cast<W>(wf[ty * kx + tx]) : W(0);
        }
      W t1[ay][rx], t2[ay][axx];
      for (int qx = 0; qx < rx; ++qx) filter_1d<FY>(&h[0][qx], rx, &t1[0][qx], rx);
      for (int e = 0; e < ay; ++e) filter_1d<FX>(t1[e], 1, t2[e], 1);
      const int64_t k = f * P + ph;
      for (int ey = 0; ey < ay; ++ey)
        for (int ex = 0; ex < axx; ++ex)
          u_c[(ey * axx + ex) * g.groups * M * K + k * rows] = static_cast<T>(t2[ey][ex]);
    }
  }
}

template <typename T>
using GatherWeightFn = void (*)(const Geometry&, const GatherAxis (&)[2], const T*, int, T*,
                                int64_t, int64_t);

template <typename T, int M>
GatherWeightFn<T> gather_weight_fn(int64_t ry, int64_t rx) {
  if (ry == 2 && rx == 2) return &gather_weight_transform<T, Wino<M, 2>, Wino<M, 2>>;
  if (ry == 2) return &gather_weight_transform<T, Wino<M, 2>, Wino<M, 3>>;
  if (rx == 2) return &gather_weight_transform<T, Wino<M, 3>, Wino<M, 2>>;
  return &gather_weight_transform<T, Wino<M, 3>, Wino<M, 3>>;
}

// The executor's plan (plan_winograd_gather reports it).
struct GatherTask {
  int64_t group, t0, nt;
};
struct GatherLayout {
  GatherAxis ax[2];
  int64_t P = 1, K = 0, a2 = 0, u_size = 0;
  std::vector<GatherTask> tasks;
};

template <typename T>
GatherLayout gather_layout(const Geometry& g, int64_t m, const GemmKernels<T>& gk) {
  GatherLayout lo;
  for (int a = 0; a < 2; ++a) {
    GatherAxis& axis = lo.ax[a];
    axis.stride = g.stride[a + 1];
    axis.pad = g.pad[a + 1];
    axis.r = ceil_div(g.kernel[a + 1], axis.stride);
    axis.tiles = ceil_div(g.coarse[a + 1], m);
  }
  const int64_t M = g.coarse_per_group(), F = g.fine_per_group();
  lo.P = lo.ax[0].stride * lo.ax[1].stride;
  lo.K = F * lo.P;
  lo.a2 = (m + lo.ax[0].r - 1) * (m + lo.ax[1].r - 1);
  lo.u_size = lo.a2 * g.groups * M * lo.K;
  int64_t block = kGatherVBytes / (lo.a2 * lo.K * gk.nr * static_cast<int64_t>(sizeof(T)));
  block = std::clamp<int64_t>(block, 1, kGatherMaxPanels) * gk.nr;
  const int64_t total = g.batch * lo.ax[0].tiles * lo.ax[1].tiles;
  for (int64_t grp = 0; grp < g.groups; ++grp)
    for (int64_t t0 = 0; t0 < total; t0 += block)
      lo.tasks.push_back({grp, t0, std::min(block, total - t0)});
  return lo;
}

template <typename T>
bool gather_winograd(const Geometry& g, int64_t m, const T* y, const T* w, const T* bias, T* x,
                     bool check) {
  const GemmKernels<T>& gk = active_gemm<T>();
  const GatherLayout lo = gather_layout<T>(g, m, gk);
  const int64_t M = g.coarse_per_group(), F = g.fine_per_group();
  const int64_t ry = lo.ax[0].r, rx = lo.ax[1].r;
  const GatherWeightFn<T> weight_fn =
      m == 2 ? gather_weight_fn<T, 2>(ry, rx) : gather_weight_fn<T, 4>(ry, rx);
  const GatherTaskFn<T> task_fn = wino::active_tasks().gather.at<T>(m, ry, rx);
  // Every element of U is written by the weight transform below: left uninitialised.
  Scratch<T> u_store;
  T* const u = u_store.get(std::max<int64_t>(lo.u_size, 1));
  const GatherCall<T> cl{&g, y, bias, x, &gk, u, {lo.ax[0], lo.ax[1]}, M, F, lo.P, m};
  Cancellation* const cancel = current_cancellation();
  const int64_t weight_jobs = g.groups * M;
  const int64_t n_tasks = static_cast<int64_t>(lo.tasks.size());
  uint64_t nonfinite = 0;
#pragma omp parallel reduction(| : nonfinite)
  {
    Scratch<T> v_buf, z_buf;
#pragma omp for schedule(dynamic, 4)
    for (int64_t job = 0; job < weight_jobs; ++job) {
      if (stop(cancel)) continue;
      weight_fn(g, lo.ax, w, gk.mr, u, job / M, job % M);
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < n_tasks; ++i) {
      if (stop(cancel)) continue;
      const GatherTask& tk = lo.tasks[static_cast<size_t>(i)];
      nonfinite |= task_fn(cl, tk.group, tk.t0, tk.nt, v_buf, z_buf, check);
    }
  }
  return nonfinite == 0;
}

}  // namespace

bool winograd_gather_suits(const Geometry& g, int m) {
  if (m != 2 && m != 4) return false;
  if (g.kernel[0] != 1 || g.coarse[0] != 1 || g.fine[0] != 1) return false;
  if (g.coarse[1] < 1 || g.coarse[2] < 1 || g.fine[1] < 1 || g.fine[2] < 1) return false;
  if (g.batch < 1 || g.coarse_per_group() < 1 || g.fine_per_group() < 1) return false;
  for (int a = 1; a < kMaxDims; ++a) {
    // kernel phase rho has ceil((k - rho) / s) taps: floor(k / s) to ceil(k / s), in [2, 3]
    if (g.dilation[a] != 1 || g.stride[a] < 1) return false;
    if (g.kernel[a] < 2 * g.stride[a] || g.kernel[a] > 3 * g.stride[a]) return false;
  }
  return true;
}

ForwardMethod choose_gather_algorithm(const Geometry& g, ForwardMethod requested) {
  if (requested == ForwardMethod::kAuto) return ForwardMethod::kDirect;
  const int m = winograd_tile(requested);
  if (m != 0 && !winograd_gather_suits(g, m)) return ForwardMethod::kDirect;
  return requested;
}

template <typename T>
WinogradPlan plan_winograd_gather(const Geometry& g, int m) {
  const GemmKernels<T>& gk = active_gemm<T>();
  const GatherLayout lo = gather_layout<T>(g, m, gk);
  WinogradPlan wp = wino::plan_start<T>(gk, static_cast<int64_t>(lo.tasks.size()), lo.u_size);
  const int64_t M = g.coarse_per_group();
  for (const GatherTask& tk : lo.tasks)
    wino::plan_add_task(wp, tk.nt, lo.a2, lo.K, M, static_cast<int64_t>(sizeof(T)));
  wp.direct_products = double(g.taps()) * double(g.coarse_pixels()) * double(g.batch) *
                       double(M) * double(g.fine_per_group()) * double(g.groups);
  wp.transforms = wino::transform_name(m, lo.ax[0].r, lo.ax[1].r);
  return wp;
}

template WinogradPlan plan_winograd_gather<float>(const Geometry&, int);
template WinogradPlan plan_winograd_gather<double>(const Geometry&, int);

template <typename T>
void gather_with(const Geometry& g, ForwardMethod requested, const T* y, const T* w,
                 const T* bias, T* x) {
  const ForwardMethod algo = choose_gather_algorithm(g, requested);
  run_winograd_or_direct(
      algo, y, g.batch * g.fine_channels * g.fine_pixels(), w,
      g.coarse_channels * g.fine_per_group() * g.taps(), [&] { gather(g, y, w, bias, x); },
      [&](bool check) { return gather_winograd(g, winograd_tile(algo), y, w, bias, x, check); },
      [&] { gather_repair(g, y, w, bias, x); });
}

template void gather_with<float>(const Geometry&, ForwardMethod, const float*, const float*,
                                 const float*, float*);
template void gather_with<double>(const Geometry&, ForwardMethod, const double*, const double*,
                                  const double*, double*);

}  // namespace tconv
