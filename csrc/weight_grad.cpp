// Weight gradient, shared by conv_transpose (coarse = input, fine = grad_output) and conv
// (coarse = grad_output, fine = input):
//
//   dW[c][f][k] = sum_n sum_i coarse[n][c][i] * fine[n][group(c)*fpg + f][i*s - p + k*d]
//
// Per group this is a GEMM  dW_g = A * B  with
//   A[m][kk]   = coarse[n][g*cpg + m][i]                 m < cpg, kk = n * coarse_pixels + i
//   B[kk][col] = fine[n][g*fpg + f][i*s - p + k*d] or 0  col = f * taps + k  (dW's own layout)
// reduced over K = batch x coarse pixels with the packed micro-kernels.
//
// Determinism: the reduction is cut into `chunks` pieces (1 or 2) chosen from the problem
// sizes only, each summed in K blocks of k_block<T>() in increasing order; chunk 0 goes
// straight into dW, chunk 1 into a workspace of dW's size, and the two are added in a final
// fixed-order pass.  Tasks = group x row block x column block x chunk.
#include <algorithm>
#include <cstring>

#include <omp.h>

#include "tconv/kernels.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Consecutive kk on one (n, iz, iy) row: ix in [ix0, ix0 + len), packed rows [r0, r0 + len).
struct KSegment {
  int64_t n, iz, iy, ix0, len, r0;
};

void k_segments(const Geometry& g, int64_t k0, int64_t kc, std::vector<KSegment>& segs) {
  segs.clear();
  const int64_t cx = g.coarse[2], cy = g.coarse[1], cz = g.coarse[0];
  int64_t kk = k0;
  while (kk < k0 + kc) {
    const int64_t ix = kk % cx;
    const int64_t row = kk / cx;
    const int64_t iy = row % cy, iz = (row / cy) % cz, n = row / (cy * cz);
    const int64_t len = std::min(cx - ix, k0 + kc - kk);
    segs.push_back({n, iz, iy, ix, len, kk - k0});
    kk += len;
  }
}

// A panels (rows m0.., panels of mr; panel at row i0 at ap + i0*kc, element [k*r + i]).
template <typename T>
void pack_a(const Geometry& g, const T* coarse, int64_t group, int64_t m0, int64_t mc,
            const std::vector<KSegment>& segs, int64_t kc, int mr, T* ap) {
  const int64_t plane = g.coarse_pixels();
  const int64_t cy = g.coarse[1], cx = g.coarse[2];
  for (int64_t i0 = 0; i0 < mc; i0 += mr) {
    const int64_t r = std::min<int64_t>(mr, mc - i0);
    T* panel = ap + i0 * kc;
    for (int64_t i = 0; i < r; ++i) {
      const int64_t c = group * g.coarse_per_group() + m0 + i0 + i;
      for (const KSegment& s : segs) {
        const T* src = coarse + (s.n * g.coarse_channels + c) * plane + (s.iz * cy + s.iy) * cx + s.ix0;
        T* dst = panel + s.r0 * r + i;
        for (int64_t u = 0; u < s.len; ++u) dst[u * r] = src[u];
      }
    }
  }
}

// B panels (column t in panel t/nr at bp + (t/nr)*kc*nr, element [k*nr + t%nr]).
template <typename T>
void pack_b(const Geometry& g, const T* fine, int64_t group, int64_t col0, int64_t nc,
            const std::vector<KSegment>& segs, int64_t kc, int nr, T* bp) {
  const int64_t ncp = round_up(nc, nr);
  std::memset(static_cast<void*>(bp), 0, sizeof(T) * static_cast<size_t>(kc * ncp));
  const int64_t taps = g.taps();
  const int64_t fz = g.fine[0], fy = g.fine[1], fx = g.fine[2];
  const int64_t plane = fz * fy * fx;
  for (int64_t t = 0; t < nc; ++t) {
    const int64_t col = col0 + t;
    const int64_t f = col / taps, k = col % taps;
    const int64_t kx = k % g.kernel[2], ky = (k / g.kernel[2]) % g.kernel[1],
                  kz = k / (g.kernel[2] * g.kernel[1]);
    const IndexRange rz = valid_coarse_range(g.coarse[0], fz, g.stride[0], g.pad[0], g.dilation[0], kz);
    const IndexRange ry = valid_coarse_range(g.coarse[1], fy, g.stride[1], g.pad[1], g.dilation[1], ky);
    const IndexRange rx = valid_coarse_range(g.coarse[2], fx, g.stride[2], g.pad[2], g.dilation[2], kx);
    const int64_t sx = g.stride[2];
    const int64_t xshift = kx * g.dilation[2] - g.pad[2];
    T* col_dst = bp + (t / nr) * kc * nr + t % nr;
    const int64_t channel = group * g.fine_per_group() + f;
    for (const KSegment& s : segs) {
      if (s.iz < rz.lo || s.iz >= rz.hi || s.iy < ry.lo || s.iy >= ry.hi) continue;
      const int64_t oz = s.iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
      const int64_t oy = s.iy * g.stride[1] - g.pad[1] + ky * g.dilation[1];
      const T* frow = fine + (s.n * g.fine_channels + channel) * plane + (oz * fy + oy) * fx + xshift;
      const int64_t lo = std::max(rx.lo, s.ix0), hi = std::min(rx.hi, s.ix0 + s.len);
      T* dst = col_dst + (s.r0 - s.ix0) * nr;
      for (int64_t ix = lo; ix < hi; ++ix) dst[ix * nr] = frow[ix * sx];
    }
  }
}

struct Task {
  int64_t group, m0, col0, chunk;
};

}  // namespace

template <typename T>
void weight_grad(const Geometry& g, const T* coarse, const T* fine, T* dw) {
  if (!all_finite(coarse, g.batch * g.coarse_channels * g.coarse_pixels()) ||
      !all_finite(fine, g.batch * g.fine_channels * g.fine_pixels())) {
    weight_grad_direct(g, coarse, fine, dw);  // exact Inf/NaN propagation (see direct.cpp)
    return;
  }
  const GemmKernels<T>& uk = active_gemm<T>();
  const int mr = uk.mr, nr = uk.nr;
  const int64_t M = g.coarse_per_group();
  const int64_t N = g.fine_per_group() * g.taps();
  const int64_t K = g.batch * g.coarse_pixels();
  const int64_t dw_size = g.coarse_channels * N;
  if (dw_size == 0) return;
  if (K == 0) {
    std::fill(dw, dw + dw_size, T(0));
    return;
  }
  const int threads = omp_get_max_threads();
  const int64_t kc_max = k_block<T>();
  const int64_t m_blocks = ceil_div(M, round_up(std::min<int64_t>(M, 256), mr));
  const int64_t mc = round_up(ceil_div(M, m_blocks), mr);
  // Chunks depend on the problem only (never on the thread count).
  const int64_t k_blocks = ceil_div(K, kc_max);
  const int64_t chunks = (k_blocks >= 8 && g.groups * m_blocks * ceil_div(N, 4 * int64_t(nr)) < 16) ? 2 : 1;
  const int64_t chunk_len = round_up(ceil_div(K, chunks), kc_max);
  int64_t nc = round_up(std::min<int64_t>(N, 192), nr);
  // Every column block re-packs A (the coarse rows): only shrink until each thread has work.
  while (nc > nr && g.groups * m_blocks * ceil_div(N, nc) * chunks < 2 * threads) nc -= nr;

  std::vector<Task> tasks;
  for (int64_t ch = 0; ch < chunks; ++ch)
    for (int64_t grp = 0; grp < g.groups; ++grp)
      for (int64_t m0 = 0; m0 < M; m0 += mc)
        for (int64_t col0 = 0; col0 < N; col0 += nc) tasks.push_back({grp, m0, col0, ch});
  std::vector<T> partial(chunks > 1 ? static_cast<size_t>(dw_size) : 0);
  const auto task_count = static_cast<int64_t>(tasks.size());
  const double flops = 2.0 * double(g.coarse_channels) * double(N) * double(K);
  const bool parallel = threads > 1 && task_count > 1 && flops > 2e5;

#pragma omp parallel if (parallel)
  {
    Scratch<T> a_buf, b_buf, c_buf;
    std::vector<KSegment> segs;
#pragma omp for schedule(dynamic, 1)
    for (int64_t ti = 0; ti < task_count; ++ti) {
      const Task& task = tasks[static_cast<size_t>(ti)];
      const int64_t rows = std::min(mc, M - task.m0);
      const int64_t cols = std::min(nc, N - task.col0);
      const int64_t ncp = round_up(cols, nr);
      const int64_t kbeg = task.chunk * chunk_len;
      const int64_t kend = std::min(K, kbeg + chunk_len);
      T* acc = c_buf.get(rows * ncp);
      if (kend <= kbeg) std::fill(acc, acc + rows * ncp, T(0));
      for (int64_t k0 = kbeg; k0 < kend; k0 += kc_max) {
        const int64_t kc = std::min(kc_max, kend - k0);
        k_segments(g, k0, kc, segs);
        T* ap = a_buf.get(rows * kc);
        T* bp = b_buf.get(kc * ncp);
        pack_a(g, coarse, task.group, task.m0, rows, segs, kc, mr, ap);
        pack_b(g, fine, task.group, task.col0, cols, segs, kc, nr, bp);
        const int accumulate = k0 > kbeg ? 1 : 0;
        for (int64_t j0 = 0; j0 < ncp; j0 += nr) {
          for (int64_t i0 = 0; i0 < rows; i0 += mr) {
            const int64_t r = std::min<int64_t>(mr, rows - i0);
            uk.fn[r](kc, ap + i0 * kc, bp + j0 * kc, acc + i0 * ncp + j0, ncp, accumulate);
          }
        }
      }
      T* out = task.chunk == 0 ? dw : partial.data();
      for (int64_t i = 0; i < rows; ++i) {
        T* row = out + (task.group * M + task.m0 + i) * N + task.col0;
        std::copy(acc + i * ncp, acc + i * ncp + cols, row);
      }
    }
    if (chunks > 1) {
#pragma omp for schedule(static)
      for (int64_t e = 0; e < dw_size; ++e) dw[e] += partial[static_cast<size_t>(e)];
    }
  }
}

template void weight_grad<float>(const Geometry&, const float*, const float*, float*);
template void weight_grad<double>(const Geometry&, const double*, const double*, double*);

}  // namespace tconv
