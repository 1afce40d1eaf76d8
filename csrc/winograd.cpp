// Winograd forward for 2-D transposed convolutions (formulas and plan in tconv/winograd.hpp;
// error bounds in docs/winograd.md).
//
// Per call:
//   U = G h G^T for every phase, transform point xi, group, output channel f and input
//     channel c, computed in a wider type (double for float, long double for double) and
//     rounded once to T, packed as the micro-kernels' A panels (mr rows each, k = c);
//   tasks = phase x group x block of tiles (tiles of m x m outputs, numbered over batch and
//   the phase's tile grid).  A task:
//     V[xi] = B^T d B for each tile and input channel, stored as B panels (nr tiles each);
//     for each slab of output channels:
//       Z[xi] = U[xi] V[xi]   (alpha_y * alpha_x GEMMs, micro-kernels from active_gemm<T>(),
//                              K blocks of k_block<T>() input channels, fixed order)
//       y[(j*m + i)*s + rho] = (A^T Z A)[i] + bias   (only the tile's outputs inside the phase)
// Every y element is written by one task and its value depends only on the transforms and
// the fixed K-block order, never on the tile block, the slab or the thread: bitwise
// deterministic for any thread count.
#include "tconv/winograd.hpp"

#include <algorithm>
#include <array>
#include <type_traits>
#include <string>
#include <vector>

#include <omp.h>

#include "tconv/cancel.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/winograd_tasks.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Bytes of transformed input (V) one task keeps: the tile block shrinks to fit (>= 1 panel).
// A third of L2 (2 MiB a core on the machine measured) leaves room for the block's region of
// y and Z (docs/perf-log.md, 2026-12-03 18:10 UTC: 768 KiB against 1.5 MiB).
constexpr int64_t kWinoVBytes = int64_t(768) << 10;
// Weights (input channels x M x taps) one weight-transform job reads; every phase reuses them.
constexpr int64_t kWeightBlockBytes = int64_t(256) << 10;
// Most B panels (nr tiles each) in one tile block.
constexpr int64_t kWinoMaxPanels = 8;

using wino::Call;
using wino::Phase;
using wino::TaskFn;
using wino::WeightFn;
using wino::Wino;

// The weight transform and the task of phases with ry x rx taps and tile m.
template <typename T>
std::pair<WeightFn<T>, TaskFn<T>> phase_fns(const wino::TaskTable& table, int64_t m, int64_t ry,
                                            int64_t rx) {
  return {table.weight.at<T>(m, ry, rx), table.scatter.at<T>(m, ry, rx)};
}

int64_t alpha_of(int64_t m, int64_t r) { return m + r - 1; }

std::vector<Phase> phases_of(const Geometry& g, int64_t m) {
  std::array<std::vector<SubAxis>, 2> axes;
  for (int a = 0; a < 2; ++a)
    axes[a] = output_phases(g.fine[a + 1], g.kernel[a + 1], g.stride[a + 1], g.pad[a + 1],
                            g.dilation[a + 1]);
  std::vector<Phase> out;
  for (const SubAxis& py : axes[0])
    for (const SubAxis& px : axes[1]) {
      Phase ph;
      const SubAxis* sa[2] = {&py, &px};
      for (int a = 0; a < 2; ++a) {
        ph.rho[a] = sa[a]->dst_base;
        ph.extent[a] = sa[a]->extent;
        ph.taps[a] = sa[a]->tap_kernel;
        // Offsets fall by one per tap (dilation 1): the last tap reads the first input.
        ph.first[a] = sa[a]->tap_offset.empty() ? 0 : sa[a]->tap_offset.back();
        ph.tiles[a] = ceil_div(ph.extent[a], m);
      }
      out.push_back(std::move(ph));
    }
  return out;
}

// The executor's plan (plan_winograd reports it): phases, their U offsets, the tasks.
struct Task {
  int64_t phase, group, t0, nt;
};
struct Layout {
  std::vector<Phase> phases;
  std::vector<Task> tasks;
  int64_t u_size = 0;
};

template <typename T>
Layout layout_of(const Geometry& g, int64_t m, const GemmKernels<T>& gk) {
  Layout lo;
  lo.phases = phases_of(g, m);
  const int64_t M = g.fine_per_group(), Kc = g.coarse_per_group();
  for (Phase& ph : lo.phases) {
    ph.u_offset = lo.u_size;
    lo.u_size += alpha_of(m, static_cast<int64_t>(ph.taps[0].size())) *
                 alpha_of(m, static_cast<int64_t>(ph.taps[1].size())) * g.groups * M * Kc;
  }
  // Tasks: phase x group x tile block; the block shrinks so that V stays within kWinoVBytes.
  for (size_t p = 0; p < lo.phases.size(); ++p) {
    const Phase& ph = lo.phases[p];
    const int64_t a2 = alpha_of(m, static_cast<int64_t>(ph.taps[0].size())) *
                       alpha_of(m, static_cast<int64_t>(ph.taps[1].size()));
    int64_t block = kWinoVBytes / (a2 * Kc * gk.nr * static_cast<int64_t>(sizeof(T)));
    block = std::clamp<int64_t>(block, 1, kWinoMaxPanels) * gk.nr;
    const int64_t total = g.batch * ph.tiles[0] * ph.tiles[1];
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t t0 = 0; t0 < total; t0 += block)
        lo.tasks.push_back({static_cast<int64_t>(p), grp, t0, std::min(block, total - t0)});
  }
  // Phases of one tile block next to each other (the executor hands them to one thread as
  // one chunk): they write interleaved outputs of the same rows of y, which then stay in that
  // core's cache from one phase to the next instead of being fetched once per phase.
  std::stable_sort(lo.tasks.begin(), lo.tasks.end(), [](const Task& a, const Task& b) {
    return a.group != b.group ? a.group < b.group : a.t0 < b.t0;
  });
  return lo;
}

template <typename T>
bool scatter_winograd(const Geometry& g, int64_t m, const T* x, const T* w, const T* bias, T* y,
                      bool check) {
  const GemmKernels<T>& gk = active_gemm<T>();
  const Layout lo = layout_of<T>(g, m, gk);
  const std::vector<Phase>& phases = lo.phases;
  const std::vector<Task>& tasks = lo.tasks;
  const int64_t M = g.fine_per_group(), Kc = g.coarse_per_group();
  const int mr = gk.mr;
  const wino::TaskTable& table = wino::active_tasks();
  std::vector<std::pair<WeightFn<T>, TaskFn<T>>> fns;
  for (const Phase& ph : phases) {
    const int64_t ry = static_cast<int64_t>(ph.taps[0].size());
    const int64_t rx = static_cast<int64_t>(ph.taps[1].size());
    fns.push_back(phase_fns<T>(table, m, ry, rx));
  }
  // Every element of U is written by the weight transform below: left uninitialised.
  Scratch<T> u_store;
  T* const u = u_store.get(std::max<int64_t>(lo.u_size, 1));

  const Call<T> cl{&g, x, bias, y, &gk, u, M, Kc, m};
  Cancellation* const cancel = current_cancellation();
  // Weight jobs: group x block of input channels (every phase), a block's weights within
  // kWeightBlockBytes, and at least 4 blocks per thread when there are channels enough.
  const int64_t c_bytes = M * g.taps() * static_cast<int64_t>(sizeof(T));
  const int64_t c_block = std::clamp<int64_t>(
      std::min(kWeightBlockBytes / c_bytes, ceil_div(Kc, 4 * int64_t(omp_get_max_threads()))),
      1, Kc);
  const int64_t c_blocks = ceil_div(Kc, c_block);
  const int64_t weight_jobs = g.groups * c_blocks;
  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
  const int64_t phase_chunk = static_cast<int64_t>(phases.size());
  uint64_t nonfinite = 0;
#pragma omp parallel reduction(| : nonfinite)
  {
    Scratch<T> v_buf, z_buf;
#pragma omp for schedule(dynamic, 1)
    for (int64_t job = 0; job < weight_jobs; ++job) {
      if (stop(cancel)) continue;
      const int64_t grp = job / c_blocks, c0 = job % c_blocks * c_block;
      for (size_t p = 0; p < phases.size(); ++p)
        fns[p].first(g, phases[p], w, mr, u + phases[p].u_offset, grp, c0,
                     std::min(Kc, c0 + c_block));
    }
#pragma omp for schedule(dynamic, phase_chunk)
    for (int64_t i = 0; i < n_tasks; ++i) {
      if (stop(cancel)) continue;
      const Task& tk = tasks[static_cast<size_t>(i)];
      const size_t p = static_cast<size_t>(tk.phase);
      nonfinite |= fns[p].second(cl, phases[p], tk.group, tk.t0, tk.nt, v_buf, z_buf, check);
    }
  }
  return nonfinite == 0;
}

}  // namespace

namespace wino {

const TaskTable& active_tasks() {
  const std::string name = active_kernels().name;
  const TaskTable* t = nullptr;
  if (name == "avx512") t = avx512_tasks();
  if (name == "avx2") t = avx2_tasks();
  return t != nullptr ? *t : *generic_tasks();
}

template <typename T>
WinogradPlan plan_start(const GemmKernels<T>& gk, int64_t tasks, int64_t u_size) {
  WinogradPlan wp;
  wp.mr = gk.mr;
  wp.nr = gk.nr;
  wp.kc = k_block<T>();
  wp.tasks = tasks;
  wp.u_bytes = u_size * static_cast<int64_t>(sizeof(T));
  return wp;
}
template WinogradPlan plan_start<float>(const GemmKernels<float>&, int64_t, int64_t);
template WinogradPlan plan_start<double>(const GemmKernels<double>&, int64_t, int64_t);

void plan_add_task(WinogradPlan& wp, int64_t nt, int64_t a2, int64_t K, int64_t M,
                   int64_t elem) {
  // as the task functions (winograd_tasks.inc, winograd_gather_tasks.inc) allocate: V of the
  // block's panels, Z of one slab
  const int64_t panels = ceil_div(nt, int64_t(wp.nr)), ldz = panels * wp.nr;
  const int64_t slab = z_slab(a2, ldz, elem, wp.mr, M);
  wp.tiles_per_task = std::max(wp.tiles_per_task, nt);
  wp.slab = std::max(wp.slab, slab);
  wp.thread_bytes = std::max(wp.thread_bytes, (a2 * panels * K * wp.nr + a2 * slab * ldz) * elem);
  wp.products += double(a2) * double(ldz) * double(M) * double(K);
}

std::string transform_name(int64_t m, int64_t ry, int64_t rx) {
  return "F(" + std::to_string(m) + "x" + std::to_string(m) + " " + std::to_string(ry) + "x" +
         std::to_string(rx) + ")";
}

}  // namespace wino

int winograd_tile(ForwardMethod a) {
  switch (a) {
    case ForwardMethod::kWinograd:
      return 2;
    case ForwardMethod::kWinograd4:
      return 4;
    default:
      return 0;
  }
}

bool winograd_suits(const Geometry& g, int m) {
  if (m != 2 && m != 4) return false;
  if (g.kernel[0] != 1 || g.coarse[0] != 1 || g.fine[0] != 1) return false;
  if (g.coarse[1] < 1 || g.coarse[2] < 1 || g.fine[1] < 1 || g.fine[2] < 1) return false;
  if (g.batch < 1 || g.coarse_per_group() < 1 || g.fine_per_group() < 1) return false;
  for (int a = 1; a < kMaxDims; ++a) {
    if (g.dilation[a] != 1) return false;
    for (const SubAxis& ph : output_phases(g.fine[a], g.kernel[a], g.stride[a], g.pad[a], 1)) {
      const size_t r = ph.tap_kernel.size();
      if (r != 2 && r != 3) return false;
    }
  }
  return true;
}

template <typename T>
WinogradPlan plan_winograd(const Geometry& g, int m) {
  const GemmKernels<T>& gk = active_gemm<T>();
  const Layout lo = layout_of<T>(g, m, gk);
  WinogradPlan wp = wino::plan_start<T>(gk, static_cast<int64_t>(lo.tasks.size()), lo.u_size);
  const int64_t M = g.fine_per_group(), Kc = g.coarse_per_group();
  for (const Task& tk : lo.tasks) {
    const Phase& ph = lo.phases[static_cast<size_t>(tk.phase)];
    const int64_t a2 = alpha_of(m, static_cast<int64_t>(ph.taps[0].size())) *
                       alpha_of(m, static_cast<int64_t>(ph.taps[1].size()));
    wino::plan_add_task(wp, tk.nt, a2, Kc, M, static_cast<int64_t>(sizeof(T)));
  }
  std::vector<std::string> names;
  for (const Phase& ph : lo.phases) {
    wp.direct_products += double(ph.taps[0].size() * ph.taps[1].size()) *
                          double(ph.extent[0] * ph.extent[1]) * double(g.batch) * double(M) *
                          double(Kc) * double(g.groups);
    const std::string name = wino::transform_name(m, static_cast<int64_t>(ph.taps[0].size()),
                                                  static_cast<int64_t>(ph.taps[1].size()));
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  for (const std::string& n : names) wp.transforms += (wp.transforms.empty() ? "" : "+") + n;
  return wp;
}

template WinogradPlan plan_winograd<float>(const Geometry&, int);
template WinogradPlan plan_winograd<double>(const Geometry&, int);

template <typename T>
void scatter_with(const Geometry& g, ForwardMethod requested, const T* x, const T* w,
                  const T* bias, T* y) {
  const ForwardMethod algo = choose_algorithm(g, requested);
  run_winograd_or_direct(
      algo, x, g.batch * g.coarse_channels * g.coarse_pixels(), w,
      g.coarse_channels * g.fine_per_group() * g.taps(), [&] { scatter(g, x, w, bias, y); },
      [&](bool check) { return scatter_winograd(g, winograd_tile(algo), x, w, bias, y, check); },
      [&] { scatter_repair(g, x, w, bias, y); });
}

template void scatter_with<float>(const Geometry&, ForwardMethod, const float*, const float*,
                                  const float*, float*);
template void scatter_with<double>(const Geometry&, ForwardMethod, const double*, const double*,
                                   const double*, double*);

}  // namespace tconv
