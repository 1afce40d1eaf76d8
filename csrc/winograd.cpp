// Winograd forward for 2-D transposed convolutions (formulas and plan in tconv/winograd.hpp;
// error bounds in docs/winograd.md).
//
// Per call:
//   U = G h G^T for every phase, transform point xi, group, output channel f and input
//     channel c, computed in long double and rounded once to T (one rounding, however
//     inexact G is), packed as the micro-kernels' A panels (mr rows each, k = c);
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
#include <vector>

#include <omp.h>

#include "tconv/cancel.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Bytes of transformed input (V) one task keeps: the tile block shrinks to fit (>= 1 panel).
constexpr int64_t kWinoVBytes = int64_t(512) << 10;
// Most B panels (nr tiles each) in one tile block.
constexpr int64_t kWinoMaxPanels = 8;
// Bytes of transform-domain products (Z) per slab of output channels (>= mr channels).
constexpr int64_t kWinoZBytes = int64_t(256) << 10;
// Widest B panel (nr) of any micro-kernel table; the transforms' per-tile scratch.
constexpr int kWinoMaxNR = 64;

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

// acc[j] += coef * v[j] for j < n; the +-1 coefficients (most of them) cost no multiply.
template <typename T>
inline void axpy(double coef, const T* v, T* acc, int n) {
  if (coef == 1) {
    for (int j = 0; j < n; ++j) acc[j] += v[j];
  } else if (coef == -1) {
    for (int j = 0; j < n; ++j) acc[j] -= v[j];
  } else {
    const T c = static_cast<T>(coef);
    for (int j = 0; j < n; ++j) acc[j] += c * v[j];
  }
}

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

template <typename T, class FY, class FX>
void weight_transform(const Geometry& g, const Phase& ph, const T* w, int mr, T* u_phase,
                      int64_t grp, int64_t f) {
  constexpr int ay = FY::alpha, ax = FX::alpha, ry = FY::r, rx = FX::r;
  const int64_t M = g.fine_per_group(), Kc = g.coarse_per_group(), kw = g.kernel[2];
  const int64_t taps = g.taps();
  const int64_t panel = f / mr, i = f % mr;
  const int64_t rows = std::min<int64_t>(mr, M - panel * mr);
  for (int64_t c = 0; c < Kc; ++c) {
    const T* wc = w + ((grp * Kc + c) * M + f) * taps;
    long double h[ry][rx];
    for (int qy = 0; qy < ry; ++qy)
      for (int qx = 0; qx < rx; ++qx)
        h[qy][qx] = wc[ph.taps[0][ry - 1 - qy] * kw + ph.taps[1][rx - 1 - qx]];
    long double t1[ay][rx];
    for (int e = 0; e < ay; ++e)
      for (int qx = 0; qx < rx; ++qx) {
        long double s = 0;
        for (int qy = 0; qy < ry; ++qy) s += static_cast<long double>(FY::Gn[e][qy]) * h[qy][qx];
        t1[e][qx] = s / FY::Gd[e];
      }
    for (int ey = 0; ey < ay; ++ey)
      for (int ex = 0; ex < ax; ++ex) {
        long double s = 0;
        for (int qx = 0; qx < rx; ++qx) s += static_cast<long double>(FX::Gn[ex][qx]) * t1[ey][qx];
        const int64_t xi = ey * ax + ex;
        u_phase[(xi * g.groups + grp) * M * Kc + panel * mr * Kc + c * rows + i] =
            static_cast<T>(s / FX::Gd[ex]);
      }
  }
}

// Tiles [t0, t0 + nt) of phase `ph`, group `grp`; returns the nonfinite bits of its stores.
template <typename T, class FY, class FX>
uint64_t run_task(const Call<T>& cl, const Phase& ph, int64_t grp, int64_t t0, int64_t nt,
                  Scratch<T>& v_buf, Scratch<T>& z_buf, bool check) {
  constexpr int ay = FY::alpha, ax = FX::alpha, my = FY::m, mx = FX::m;
  constexpr int A2 = ay * ax;
  const Geometry& g = *cl.g;
  const int nr = cl.gk->nr, mr = cl.gk->mr;
  const int64_t M = cl.M, Kc = cl.Kc;
  const int64_t H = g.coarse[1], W = g.coarse[2], Hf = g.fine[1], Wf = g.fine[2];
  const int64_t plane = H * W, tiles_img = ph.tiles[0] * ph.tiles[1];
  const int64_t panels = ceil_div(nt, nr), ldz = panels * nr;
  T* v = v_buf.get(A2 * panels * Kc * nr);

  // Input transform, one panel of nr tiles (one channel) at a time, vectorised over tiles.
  alignas(64) T d[ay][ax][kWinoMaxNR];
  alignas(64) T t1[ay][ax][kWinoMaxNR];
  alignas(64) T vv[A2][kWinoMaxNR];
  int64_t chan[kWinoMaxNR], iy0[kWinoMaxNR], ix0[kWinoMaxNR];
  bool inside[kWinoMaxNR];
  for (int64_t jp = 0; jp < panels; ++jp) {
    const int cols = static_cast<int>(std::min<int64_t>(nr, nt - jp * nr));
    for (int j = 0; j < cols; ++j) {
      const int64_t t = t0 + jp * nr + j;
      const int64_t n = t / tiles_img, rem = t % tiles_img;
      iy0[j] = rem / ph.tiles[1] * my + ph.first[0];
      ix0[j] = rem % ph.tiles[1] * mx + ph.first[1];
      chan[j] = (n * g.coarse_channels + grp * Kc) * plane;
      inside[j] = iy0[j] >= 0 && iy0[j] + ay <= H && ix0[j] >= 0 && ix0[j] + ax <= W;
    }
    for (int64_t c = 0; c < Kc; ++c) {
      for (int j = 0; j < nr; ++j) {
        if (j >= cols) {
          for (int a = 0; a < ay; ++a)
            for (int b = 0; b < ax; ++b) d[a][b][j] = 0;
          continue;
        }
        const T* p = cl.x + chan[j] + c * plane;
        if (inside[j]) {
          const T* q = p + iy0[j] * W + ix0[j];
          for (int a = 0; a < ay; ++a)
            for (int b = 0; b < ax; ++b) d[a][b][j] = q[a * W + b];
        } else {
          for (int a = 0; a < ay; ++a)
            for (int b = 0; b < ax; ++b) {
              const int64_t iy = iy0[j] + a, ix = ix0[j] + b;
              d[a][b][j] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? p[iy * W + ix] : T(0);
            }
        }
      }
      // t1 = B_y^T d, then V = t1 B_x.
      for (int e = 0; e < ay; ++e)
        for (int b = 0; b < ax; ++b) {
          T* acc = t1[e][b];
          for (int j = 0; j < nr; ++j) acc[j] = 0;
          for (int a = 0; a < ay; ++a)
            if (FY::BT[e][a] != 0) axpy(FY::BT[e][a], d[a][b], acc, nr);
        }
      for (int ey = 0; ey < ay; ++ey)
        for (int ex = 0; ex < ax; ++ex) {
          T* acc = vv[ey * ax + ex];
          for (int j = 0; j < nr; ++j) acc[j] = 0;
          for (int b = 0; b < ax; ++b)
            if (FX::BT[ex][b] != 0) axpy(FX::BT[ex][b], t1[ey][b], acc, nr);
        }
      for (int xi = 0; xi < A2; ++xi) {
        T* dst = v + ((xi * panels + jp) * Kc + c) * nr;
        for (int j = 0; j < nr; ++j) dst[j] = vv[xi][j];
      }
    }
  }

  // Slabs of output channels: the GEMMs for every transform point, then the output transform.
  const int64_t kcb = k_block<T>();
  int64_t slab = kWinoZBytes / (A2 * ldz * static_cast<int64_t>(sizeof(T))) / mr * mr;
  slab = std::clamp<int64_t>(slab, mr, round_up(M, mr));
  T* z = z_buf.get(A2 * slab * ldz);
  const T* u_grp = cl.u + ph.u_offset;
  uint64_t nonfinite = 0;
  alignas(64) T zz[ay][ax][kWinoMaxNR];
  alignas(64) T o1[my][ax][kWinoMaxNR];
  alignas(64) T out[my][mx][kWinoMaxNR];
  for (int64_t f0 = 0; f0 < M; f0 += slab) {
    const int64_t rows = std::min(slab, M - f0);
    for (int xi = 0; xi < A2; ++xi) {
      const T* u_xi = u_grp + (xi * g.groups + grp) * M * Kc;
      for (int64_t p0 = f0; p0 < f0 + rows; p0 += mr) {
        const int rp = static_cast<int>(std::min<int64_t>(mr, M - p0));
        const T* a = u_xi + p0 * Kc;  // panel p0 / mr: rp rows, a[c * rp + i]
        const auto fn = cl.gk->fn[rp];
        for (int64_t jp = 0; jp < panels; ++jp) {
          const T* b = v + (xi * panels + jp) * Kc * nr;
          T* c = z + (xi * slab + (p0 - f0)) * ldz + jp * nr;
          for (int64_t k0 = 0; k0 < Kc; k0 += kcb)
            fn(std::min(kcb, Kc - k0), a + k0 * rp, b + k0 * nr, c, ldz, k0 > 0 ? 1 : 0);
        }
      }
    }
    for (int64_t fl = 0; fl < rows; ++fl) {
      const int64_t f = grp * M + f0 + fl;
      const T bias = cl.bias != nullptr ? cl.bias[f] : T(0);
      for (int64_t jp = 0; jp < panels; ++jp) {
        const int cols = static_cast<int>(std::min<int64_t>(nr, nt - jp * nr));
        for (int ey = 0; ey < ay; ++ey)
          for (int ex = 0; ex < ax; ++ex) {
            const T* zr = z + ((ey * ax + ex) * slab + fl) * ldz + jp * nr;
            for (int j = 0; j < nr; ++j) zz[ey][ex][j] = zr[j];
          }
        for (int i = 0; i < my; ++i)
          for (int ex = 0; ex < ax; ++ex) {
            T* acc = o1[i][ex];
            for (int j = 0; j < nr; ++j) acc[j] = 0;
            for (int ey = 0; ey < ay; ++ey)
              if (FY::AT[i][ey] != 0) axpy(FY::AT[i][ey], zz[ey][ex], acc, nr);
          }
        for (int i = 0; i < my; ++i)
          for (int k = 0; k < mx; ++k) {
            T* acc = out[i][k];
            for (int j = 0; j < nr; ++j) acc[j] = 0;
            for (int ex = 0; ex < ax; ++ex)
              if (FX::AT[k][ex] != 0) axpy(FX::AT[k][ex], o1[i][ex], acc, nr);
          }
        for (int j = 0; j < cols; ++j) {
          const int64_t t = t0 + jp * nr + j;
          const int64_t n = t / tiles_img, rem = t % tiles_img;
          const int64_t jy0 = rem / ph.tiles[1] * my, jx0 = rem % ph.tiles[1] * mx;
          T* yp = cl.y + (n * g.fine_channels + f) * Hf * Wf;
          for (int i = 0; i < my && jy0 + i < ph.extent[0]; ++i) {
            T* row = yp + ((jy0 + i) * g.stride[1] + ph.rho[0]) * Wf + ph.rho[1];
            for (int k = 0; k < mx && jx0 + k < ph.extent[1]; ++k) {
              const T value = out[i][k][j] + bias;
              row[(jx0 + k) * g.stride[2]] = value;
              if (check) nonfinite |= nonfinite_bit(value);
            }
          }
        }
      }
    }
  }
  return nonfinite;
}

template <typename T, class FY, class FX>
struct Kernels {
  static constexpr auto weights = &weight_transform<T, FY, FX>;
  static constexpr auto task = &run_task<T, FY, FX>;
};

template <typename T>
using WeightFn = void (*)(const Geometry&, const Phase&, const T*, int, T*, int64_t, int64_t);
template <typename T>
using TaskFn = uint64_t (*)(const Call<T>&, const Phase&, int64_t, int64_t, int64_t, Scratch<T>&,
                            Scratch<T>&, bool);

template <typename T, int M>
std::pair<WeightFn<T>, TaskFn<T>> select(int64_t ry, int64_t rx) {
  if (ry == 2 && rx == 2) return {Kernels<T, Wino<M, 2>, Wino<M, 2>>::weights, Kernels<T, Wino<M, 2>, Wino<M, 2>>::task};
  if (ry == 2) return {Kernels<T, Wino<M, 2>, Wino<M, 3>>::weights, Kernels<T, Wino<M, 2>, Wino<M, 3>>::task};
  if (rx == 2) return {Kernels<T, Wino<M, 3>, Wino<M, 2>>::weights, Kernels<T, Wino<M, 3>, Wino<M, 2>>::task};
  return {Kernels<T, Wino<M, 3>, Wino<M, 3>>::weights, Kernels<T, Wino<M, 3>, Wino<M, 3>>::task};
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

template <typename T>
bool scatter_winograd(const Geometry& g, int64_t m, const T* x, const T* w, const T* bias, T* y,
                      bool check) {
  const GemmKernels<T>& gk = active_gemm<T>();
  std::vector<Phase> phases = phases_of(g, m);
  const int64_t M = g.fine_per_group(), Kc = g.coarse_per_group();
  const int mr = gk.mr;
  int64_t u_size = 0;
  std::vector<std::pair<WeightFn<T>, TaskFn<T>>> fns;
  for (Phase& ph : phases) {
    const int64_t ry = static_cast<int64_t>(ph.taps[0].size());
    const int64_t rx = static_cast<int64_t>(ph.taps[1].size());
    ph.u_offset = u_size;
    u_size += alpha_of(m, ry) * alpha_of(m, rx) * g.groups * M * Kc;
    fns.push_back(m == 2 ? select<T, 2>(ry, rx) : select<T, 4>(ry, rx));
  }
  std::vector<T> u(static_cast<size_t>(u_size));

  // Tasks: phase x group x tile block; the block shrinks so that V stays within kWinoVBytes.
  struct Task {
    int64_t phase, group, t0, nt;
  };
  std::vector<Task> tasks;
  for (size_t p = 0; p < phases.size(); ++p) {
    const Phase& ph = phases[p];
    const int64_t a2 = alpha_of(m, static_cast<int64_t>(ph.taps[0].size())) *
                       alpha_of(m, static_cast<int64_t>(ph.taps[1].size()));
    int64_t block = kWinoVBytes / (a2 * Kc * gk.nr * static_cast<int64_t>(sizeof(T)));
    block = std::clamp<int64_t>(block, 1, kWinoMaxPanels) * gk.nr;
    const int64_t total = g.batch * ph.tiles[0] * ph.tiles[1];
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t t0 = 0; t0 < total; t0 += block)
        tasks.push_back({static_cast<int64_t>(p), grp, t0, std::min(block, total - t0)});
  }

  const Call<T> cl{&g, x, bias, y, &gk, u.data(), M, Kc, m};
  Cancellation* const cancel = current_cancellation();
  const int64_t weight_jobs = static_cast<int64_t>(phases.size()) * g.groups * M;
  const int64_t n_tasks = static_cast<int64_t>(tasks.size());
  uint64_t nonfinite = 0;
#pragma omp parallel reduction(| : nonfinite)
  {
    Scratch<T> v_buf, z_buf;
#pragma omp for schedule(dynamic, 4)
    for (int64_t job = 0; job < weight_jobs; ++job) {
      if (stop(cancel)) continue;
      const int64_t p = job / (g.groups * M), rem = job % (g.groups * M);
      fns[static_cast<size_t>(p)].first(g, phases[static_cast<size_t>(p)], w, mr,
                                         u.data() + phases[static_cast<size_t>(p)].u_offset,
                                         rem / M, rem % M);
    }
#pragma omp for schedule(dynamic, 1)
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

int winograd_tile(Algorithm a) {
  switch (a) {
    case Algorithm::kWinograd:
      return 2;
    case Algorithm::kWinograd4:
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

Algorithm choose_algorithm(const Geometry& g, Algorithm requested) {
  if (requested == Algorithm::kAuto) return Algorithm::kDirect;
  const int m = winograd_tile(requested);
  if (m != 0 && !winograd_suits(g, m)) return Algorithm::kDirect;
  return requested;
}

template <typename T>
void scatter_with(const Geometry& g, Algorithm requested, const T* x, const T* w,
                  const T* bias, T* y) {
  const Algorithm algo = choose_algorithm(g, requested);
  const int64_t x_size = g.batch * g.coarse_channels * g.coarse_pixels();
  const int64_t w_size = g.coarse_channels * g.fine_per_group() * g.taps();
  // A non-finite operand would spread across a tile in the transform domain: direct path.
  if (algo == Algorithm::kDirect || !all_finite(x, x_size) || !all_finite(w, w_size)) {
    scatter(g, x, w, bias, y);
    return;
  }
  if (!scatter_winograd(g, winograd_tile(algo), x, w, bias, y, /*check=*/true))
    scatter_repair(g, x, w, bias, y);
}

template void scatter_with<float>(const Geometry&, Algorithm, const float*, const float*,
                                  const float*, float*);
template void scatter_with<double>(const Geometry&, Algorithm, const double*, const double*,
                                   const double*, double*);

}  // namespace tconv
