// Depthwise and few-channels-per-group forward and gather (formulas in tconv/depthwise.hpp).
//
// Layout as everywhere: x (N, C_coarse, *coarse), y (N, C_fine, *fine), W[c_coarse][f][k].
// A task is a run of consecutive output rows (n, channel, z, y) of about kTaskOutputs values;
// an output row is one call of the ISA's row kernel over a list of terms (source row, shift,
// weight) built in the fixed order
//
//   input channel c of the group, then tap kz, ky, kx (increasing)
//
// -- the K order of the sub-convolutions -- with the bias added last.  Source rows outside
// the input along z or y are left out (their terms would add zero products); along x the row
// kernel reads only inside the row.  Every output is computed alone, in that order, whatever
// the task cut or the thread count, so results are bitwise deterministic.
//
//  forward (o = j*s + rho per axis; output_phases gives each phase's taps and shifts): the
//    output row (oz, oy) is the sum over the taps of phases oz % sz and oy % sy; along x each
//    phase rx is a row of its own (a stride-1 correlation), and the phases are interleaved
//    into y (or, with one x phase, written straight into y).
//  gather (i*s - p + k*d): the source rows are first split into their sx phases, so that
//    tap kx reads phase (kx*dx - px) mod sx contiguously from shift floor((kx*dx - px) / sx).
//
// Workspace per thread: the term list and, for sx > 1, one output row's x phases (forward)
// or the phases of the C_fine/groups x kz x ky source rows of one output row (gather).
#include <algorithm>
#include <array>
#include <string_view>
#include <vector>

#include <omp.h>

#include "tconv/cancel.hpp"
#include "tconv/depthwise.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/plan.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv {
namespace {

// Most input and most output channels per group that take this path.  Measured against the
// sub-convolutions (docs/perf-log.md, 2026-12-03): 1.2-2x faster with one channel on each
// side, but already slower with two on either side (0.5-0.9x: the channel GEMM reuses each
// source load for M outputs, this path for one).
constexpr int64_t kMaxChannelsPerGroup = 1;
// Outputs per task (whole rows; at least one row).
constexpr int64_t kTaskOutputs = int64_t(1) << 15;
// Weight gradient: input values per task (whole batch items of one channel; at least one).
constexpr int64_t kWeightGradTaskValues = int64_t(1) << 16;

template <typename T>
const DwKernels<T>& active_dw() {
  const std::string_view name = active_kernels().name;
  const DepthwiseKernels* table = nullptr;
  if (name == "avx512") table = avx512_depthwise();
  if (name == "avx2") table = avx2_depthwise();
  if (name == "avx512-emulated") table = avx512_emulated_depthwise();
  if (table == nullptr) table = generic_depthwise();
  if constexpr (sizeof(T) == sizeof(float)) {
    return table->f32;
  } else {
    return table->f64;
  }
}

// A row's terms, filled field by field into storage kept across rows (push_back of a
// braced DwTerm went through a stack copy that took a third of a k4s2 forward's time).
template <typename T>
struct TermList {
  std::vector<DwTerm<T>> storage;
  int64_t count = 0;
  void clear(int64_t capacity) {
    if (static_cast<int64_t>(storage.size()) < capacity)
      storage.resize(static_cast<size_t>(capacity));
    count = 0;
  }
  void add(const T* row, int64_t off, int64_t len, T w) {
    DwTerm<T>& t = storage[static_cast<size_t>(count++)];
    t.row = row;
    t.off = off;
    t.len = len;
    t.w = w;
  }
  const DwTerm<T>* data() const { return storage.data(); }
};

// Per-thread state of the row loops.
template <typename T>
struct RowWork {
  TermList<T> terms;
  std::vector<T*> phase_rows;  // one pointer per x phase
  Scratch<T> buf;
  decltype(nonfinite_bit(T(0))) bad = 0;
};

// One output row: (n, channel = group * per_group + local) plane, z and y, r its flat index.
int64_t rows_per_task(int64_t row_length) {
  return std::max<int64_t>(1, kTaskOutputs / std::max<int64_t>(1, row_length));
}

struct RowPos {
  int64_t r, n, channel, group, local, z, y;
};

// Runs row(pos, work) for every output row of `planes` = N x channels planes of z_n x y_n
// rows, in tasks of whole rows, in parallel; polls the cancellation between tasks.  Row
// positions advance by counters (per-row divisions cost as much as a short row's
// arithmetic).  Returns false when some row reported a non-finite value.
template <typename T, class Row>
bool for_each_row(int64_t batch, int64_t channels, int64_t per_group, int64_t z_n, int64_t y_n,
                  int64_t row_length, Row&& row) {
  const int64_t rows = batch * channels * z_n * y_n;
  const int64_t per_task = rows_per_task(row_length);
  const int64_t tasks = ceil_div(rows, per_task);
  Cancellation* const cancel = current_cancellation();
  int nonfinite = 0;
#pragma omp parallel if (omp_get_max_threads() > 1 && tasks > 1) reduction(| : nonfinite)
  {
    RowWork<T> work;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; ++task) {
      if (stop(cancel)) continue;
      const int64_t r0 = task * per_task, r1 = std::min(rows, r0 + per_task);
      int64_t plane = r0 / (z_n * y_n);
      RowPos pos{r0, plane / channels, plane % channels, 0, 0, (r0 / y_n) % z_n, r0 % y_n};
      pos.group = pos.channel / per_group;
      pos.local = pos.channel % per_group;
      for (; pos.r < r1; ++pos.r) {
        row(pos, work);
        if (++pos.y < y_n) continue;
        pos.y = 0;
        if (++pos.z < z_n) continue;
        pos.z = 0;
        if (++pos.local == per_group) {
          pos.local = 0;
          ++pos.group;
        }
        if (++pos.channel == channels) {
          pos.channel = pos.group = 0;
          ++pos.n;
        }
      }
    }
    nonfinite |= work.bad != 0 ? 1 : 0;
  }
  return nonfinite == 0;
}

// The phase o % s and grid index o / s of every o < size (tables: no division per row).
struct PhaseOf {
  std::vector<int64_t> phase, grid;
  PhaseOf(int64_t size, int64_t stride) {
    for (int64_t o = 0; o < size; ++o) {
      phase.push_back(o % stride);
      grid.push_back(o / stride);
    }
  }
};

template <typename T>
auto row_nonfinite(const T* row, int64_t n) {
  decltype(nonfinite_bit(T(0))) bad = 0;
  for (int64_t u = 0; u < n; ++u) bad |= nonfinite_bit(row[u]);
  return bad;
}

// The rows of a fine plane that coarse row (iz, iy) meets through the kernel: for every tap
// (kz, ky) inside the plane, visit(kz, ky, offset of fine row (z, y) in the plane), kz then ky
// increasing -- the order both the gather and the weight gradient sum in.
template <class Visit>
void for_each_tap_row(const Geometry& g, int64_t iz, int64_t iy, Visit&& visit) {
  for (int64_t kz = 0; kz < g.kernel[0]; ++kz) {
    const int64_t z = iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
    if (z < 0 || z >= g.fine[0]) continue;
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
      const int64_t y = iy * g.stride[1] - g.pad[1] + ky * g.dilation[1];
      if (y < 0 || y >= g.fine[1]) continue;
      visit(kz, ky, (z * g.fine[1] + y) * g.fine[2]);
    }
  }
}

}  // namespace

DepthwisePlan plan_depthwise(const Geometry& g, bool transposed, int threads) {
  const Dims& out = transposed ? g.fine : g.coarse;
  const int64_t channels = transposed ? g.fine_channels : g.coarse_channels;
  DepthwisePlan p;
  p.rows_per_task = rows_per_task(out[2]);
  p.tasks = ceil_div(g.batch * channels * out[0] * out[1], p.rows_per_task);
  p.parallel = threads > 1 && p.tasks > 1;
  const int64_t sx = g.stride[2], row = sx * ceil_div(g.fine[2], sx);
  const bool fused = transposed && sx == 2 && g.fine[2] >= 2;  // scatter_depthwise's row2
  if (sx > 1 && !fused)
    p.scratch_values = transposed ? row : g.fine_per_group() * g.kernel[0] * g.kernel[1] * row;
  return p;
}

bool depthwise_suits(const Geometry& g) {
  return g.coarse_per_group() <= kMaxChannelsPerGroup &&
         g.fine_per_group() <= kMaxChannelsPerGroup;
}

// The weight gradient's padded rows: the coarse row is read in whole blocks of kDwDotLanes
// (`extent` values, zeros past the row), and each x phase of a fine row from `lo` zeros
// before it to zeros past it, so that every tap reads inside its row for every block (its
// products with the zeros add nothing: a lane's sum is never -0).
struct DotRows {
  int64_t extent, lo, stride;  // padded coarse row; per phase: zeros before, values apart
  DotRows(const Geometry& g) {
    const int64_t sx = g.stride[2], kx_n = g.kernel[2];
    extent = round_up(g.coarse[2], kDwDotLanes);
    const int64_t first = floor_div(-g.pad[2], sx);
    const int64_t last = floor_div((kx_n - 1) * g.dilation[2] - g.pad[2], sx);
    lo = std::max<int64_t>(0, -first);
    stride = lo + std::max(ceil_div(g.fine[2], sx), last + extent);
  }
};

DepthwiseWeightGradPlan plan_depthwise_weight_grad(const Geometry& g, int threads) {
  DepthwiseWeightGradPlan p;
  const int64_t plane = g.coarse_pixels();
  p.items = std::clamp<int64_t>(kWeightGradTaskValues / std::max<int64_t>(1, plane), 1,
                                std::max<int64_t>(1, g.batch));
  p.chunks = std::max<int64_t>(1, ceil_div(g.batch, p.items));
  p.tasks = g.coarse_channels * p.chunks;
  const double flops = 2.0 * double(g.batch) * double(g.coarse_channels) * double(plane) *
                       double(g.taps());
  p.parallel = threads > 1 && p.tasks > 1 && flops > kParallelFlops;
  const DotRows rows(g);
  p.scratch_values = g.taps() * kDwDotLanes + g.stride[2] * rows.stride + rows.extent;
  p.partial_values = p.chunks > 1 ? p.chunks * g.coarse_channels * g.taps() : 0;
  return p;
}

// Adds each tap's kDwDotLanes lane sums (acc[k * kDwDotLanes + l]) in a fixed tree (halves,
// then quarters, ...) into out[k].
template <typename T>
void fold_lanes(T* acc, int64_t taps, T* out) {
  for (int64_t k = 0; k < taps; ++k) {
    T* v = acc + k * kDwDotLanes;
    for (int width = kDwDotLanes / 2; width >= 1; width /= 2)
      for (int l = 0; l < width; ++l) v[l] += v[l + width];
    out[k] = v[0];
  }
}

// One image's terms of one channel's weight gradient, added into the taps' lanes acc: per
// coarse row (a, copied into a_pad when the dot kernel reads past it) and fine row it
// reaches, the fine row split into its x phases (phase_rows) and dotted with a per tap.
template <typename T>
void dot_image(const Geometry& g, const DwKernels<T>& uk, const DotRows& rows,
               const TermList<T>& terms, T* const* phase_rows, T* a_pad, const T* src_plane,
               const T* fine_plane, T* acc) {
  const int64_t cy = g.coarse[1], cx = g.coarse[2], fx = g.fine[2], sx = g.stride[2];
  const int64_t ky_n = g.kernel[1], kx_n = g.kernel[2];
  for (int64_t iz = 0; iz < g.coarse[0]; ++iz) {
    for (int64_t iy = 0; iy < cy; ++iy) {
      const T* a = src_plane + (iz * cy + iy) * cx;
      if (rows.extent != cx) {
        std::copy(a, a + cx, a_pad);
        a = a_pad;
      }
      for_each_tap_row(g, iz, iy, [&](int64_t kz, int64_t ky, int64_t at) {
        const T* row = fine_plane + at;
        if (sx == 1) {
          std::copy(row, row + fx, phase_rows[0]);
        } else {
          uk.deinterleave(row, sx, fx, phase_rows);
        }
        uk.dot(a, rows.extent, terms.data(), terms.count,
               acc + (kz * ky_n + ky) * kx_n * kDwDotLanes);
      });
    }
  }
}

template <typename T>
void weight_grad_depthwise(const Geometry& g, const T* coarse, const T* fine, T* dw) {
  const DwKernels<T>& uk = active_dw<T>();
  const int64_t channels = g.coarse_channels, taps = g.taps();
  const int64_t coarse_plane = g.coarse_pixels(), fine_plane = g.fine_pixels();
  const int64_t sx = g.stride[2], kx_n = g.kernel[2];
  const DotRows rows(g);
  const DepthwiseWeightGradPlan p = plan_depthwise_weight_grad(g, omp_get_max_threads());
  std::vector<T> partial(static_cast<size_t>(p.partial_values));
  Cancellation* const cancel = current_cancellation();
#pragma omp parallel if (p.parallel)
  {
    TermList<T> terms;
    std::vector<T*> phase_rows(static_cast<size_t>(sx));
    Scratch<T> acc_buf, split_buf, a_buf;
    T* const acc = acc_buf.get(taps * kDwDotLanes);
    T* const split = split_buf.get(sx * rows.stride);
    T* const a_pad = a_buf.get(rows.extent);
    std::fill(split, split + sx * rows.stride, T(0));  // the zeros around the phases stay
    std::fill(a_pad, a_pad + rows.extent, T(0));
    for (int64_t r = 0; r < sx; ++r)
      phase_rows[static_cast<size_t>(r)] = split + r * rows.stride + rows.lo;
    terms.clear(kx_n);
    for (int64_t kx = 0; kx < kx_n; ++kx) {  // tap kx reads phase ph from `shift` on
      const int64_t e = kx * g.dilation[2] - g.pad[2];
      const int64_t shift = floor_div(e, sx), ph = e - shift * sx;
      terms.add(phase_rows[static_cast<size_t>(ph)], shift, 0, T(0));
    }
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < p.tasks; ++task) {
      if (stop(cancel)) continue;
      const int64_t c = task / p.chunks, chunk = task % p.chunks;
      std::fill(acc, acc + taps * kDwDotLanes, T(0));
      const int64_t n1 = std::min(g.batch, (chunk + 1) * p.items);
      for (int64_t n = chunk * p.items; n < n1; ++n) {
        if (n > chunk * p.items && stop(cancel)) break;
        dot_image(g, uk, rows, terms, phase_rows.data(), a_pad,
                  coarse + (n * channels + c) * coarse_plane,
                  fine + (n * g.fine_channels + c) * fine_plane, acc);
      }
      fold_lanes(acc, taps,
                 p.chunks > 1 ? partial.data() + (chunk * channels + c) * taps : dw + c * taps);
    }
  }
  if (p.chunks > 1) {  // the chunks' sums in increasing chunk order
    for (int64_t e = 0; e < channels * taps; ++e) {
      T s = partial[static_cast<size_t>(e)];
      for (int64_t chunk = 1; chunk < p.chunks; ++chunk)
        s += partial[static_cast<size_t>(chunk * channels * taps + e)];
      dw[e] = s;
    }
  }
}

// Appends to `terms` those of one x phase px of an output row (grid row z0 + tap offsets of
// pz along z, y0 + those of py along y) of output channel m of `group` in image n: per input
// channel of the group and (z, y) tap whose source row lies inside, its x taps.
template <typename T>
void add_row_terms(const Geometry& g, const T* x, const T* w, int64_t n, int64_t group,
                   int64_t m, int64_t z0, int64_t y0, const SubAxis& pz, const SubAxis& py,
                   const SubAxis& px, TermList<T>& terms) {
  const int64_t kc = g.coarse_per_group(), m_n = g.fine_per_group(), taps = g.taps();
  const int64_t cz = g.coarse[0], cy = g.coarse[1], cx = g.coarse[2];
  const int64_t ky_n = g.kernel[1], kx_n = g.kernel[2];
  for (int64_t c = 0; c < kc; ++c) {
    const int64_t cc = group * kc + c;
    const T* plane = x + (n * g.coarse_channels + cc) * cz * cy * cx;
    const T* wc = w + (cc * m_n + m) * taps;
    for (size_t tz = 0; tz < pz.tap_kernel.size(); ++tz) {
      const int64_t iz = z0 + pz.tap_offset[tz];
      if (iz < 0 || iz >= cz) continue;
      for (size_t ty = 0; ty < py.tap_kernel.size(); ++ty) {
        const int64_t iy = y0 + py.tap_offset[ty];
        if (iy < 0 || iy >= cy) continue;
        const T* src = plane + (iz * cy + iy) * cx;
        const T* wk = wc + (pz.tap_kernel[tz] * ky_n + py.tap_kernel[ty]) * kx_n;
        for (size_t tx = 0; tx < px.tap_kernel.size(); ++tx)
          terms.add(src, px.tap_offset[tx], cx, wk[px.tap_kernel[tx]]);
      }
    }
  }
}

template <typename T>
bool scatter_depthwise(const Geometry& g, const T* x, const T* w, const T* bias, T* y,
                       bool check) {
  const DwKernels<T>& uk = active_dw<T>();
  std::array<std::vector<SubAxis>, kMaxDims> phases;
  for (int d = 0; d < kMaxDims; ++d)
    phases[d] = output_phases(g.fine[d], g.kernel[d], g.stride[d], g.pad[d], g.dilation[d]);
  const int64_t kc = g.coarse_per_group(), m_n = g.fine_per_group();
  const int64_t fz = g.fine[0], fy = g.fine[1], fx = g.fine[2];
  const int64_t sz = g.stride[0], sy = g.stride[1], sx = g.stride[2];
  const int64_t taps = g.taps();
  const auto x_phases = static_cast<int64_t>(phases[2].size());
  const int64_t phase_len = ceil_div(fx, sx);
  const PhaseOf z_of(fz, sz), y_of(fy, sy);
  return for_each_row<T>(g.batch, g.fine_channels, m_n, fz, fy, fx, [&](const RowPos& pos,
                                                                        RowWork<T>& work) {
    TermList<T>& terms = work.terms;
    work.phase_rows.resize(static_cast<size_t>(sx));
    T** const phase_rows = work.phase_rows.data();
    const int64_t n = pos.n, channel = pos.channel, group = pos.group, m = pos.local;
    const auto oz = static_cast<size_t>(pos.z), oy = static_cast<size_t>(pos.y);
    const SubAxis &pz = phases[0][static_cast<size_t>(z_of.phase[oz])],
                  &py = phases[1][static_cast<size_t>(y_of.phase[oy])];
    T* out = y + pos.r * fx;
    const T* b = bias != nullptr ? bias + channel : nullptr;
    const bool fused = sx == 2 && x_phases == 2;  // both phases in registers (row2)
    T* buf = x_phases > 1 && !fused ? work.buf.get(sx * phase_len) : nullptr;
    int64_t phase0_terms = 0;
    terms.clear(x_phases * kc * taps);
    for (int64_t rx = 0; rx < x_phases; ++rx) {
      const SubAxis& px = phases[2][static_cast<size_t>(rx)];
      if (!fused) terms.count = 0;
      add_row_terms(g, x, w, n, group, m, z_of.grid[oz], y_of.grid[oy], pz, py, px, terms);
      if (fused) {
        if (rx == 0) phase0_terms = terms.count;
        continue;
      }
      T* dst = x_phases > 1 ? buf + rx * phase_len : out;
      uk.row(terms.data(), terms.count, px.extent, b, dst);
    }
    if (fused) {
      const DwTerm<T>* t = terms.data();
      const bool bad =
          uk.row2(t, phase0_terms, t + phase0_terms, terms.count - phase0_terms, fx, b, out);
      if (check && bad) work.bad |= 1;
      return;
    }
    if (x_phases > 1) {
      for (int64_t rx = 0; rx < sx; ++rx)  // phases past x_phases hold no output
        phase_rows[rx] = buf + std::min(rx, x_phases - 1) * phase_len;
      uk.interleave(phase_rows, sx, fx, out);
    }
    if (check) work.bad |= row_nonfinite(out, fx);
  });
}

template <typename T>
bool gather_depthwise(const Geometry& g, const T* y, const T* w, const T* bias, T* x,
                      bool check) {
  const DwKernels<T>& uk = active_dw<T>();
  const int64_t kc = g.coarse_per_group(), kf = g.fine_per_group();
  const int64_t cz = g.coarse[0], cy = g.coarse[1], cx = g.coarse[2];
  const int64_t fz = g.fine[0], fy = g.fine[1], fx = g.fine[2];
  const int64_t sx = g.stride[2];
  const int64_t kz_n = g.kernel[0], ky_n = g.kernel[1], kx_n = g.kernel[2], taps = g.taps();
  const int64_t phase_len = ceil_div(fx, sx);
  return for_each_row<T>(g.batch, g.coarse_channels, kc, cz, cy, cx, [&](const RowPos& pos,
                                                                         RowWork<T>& work) {
    TermList<T>& terms = work.terms;
    work.phase_rows.resize(static_cast<size_t>(sx));
    T** const phase_rows = work.phase_rows.data();
    const int64_t n = pos.n, cc = pos.channel, group = pos.group, iz = pos.z, iy = pos.y;
    T* buf = sx > 1 ? work.buf.get(kf * kz_n * ky_n * sx * phase_len) : nullptr;
    int64_t split_rows = 0;
    terms.clear(kf * taps);
    for (int64_t f = 0; f < kf; ++f) {
      const int64_t fc = group * kf + f;
      const T* plane = y + (n * g.fine_channels + fc) * fz * fy * fx;
      const T* wf = w + (cc * kf + f) * taps;
      for_each_tap_row(g, iz, iy, [&](int64_t kz, int64_t ky, int64_t at) {
        const T* src = plane + at;
        const T* wk = wf + (kz * ky_n + ky) * kx_n;
        if (sx == 1) {
          for (int64_t kx = 0; kx < kx_n; ++kx)
            terms.add(src, kx * g.dilation[2] - g.pad[2], fx, wk[kx]);
          return;
        }
        // phase r of the row at split + r * phase_len: element u is src[u * sx + r]
        T* split = buf + split_rows++ * sx * phase_len;
        for (int64_t p = 0; p < sx; ++p) phase_rows[p] = split + p * phase_len;
        uk.deinterleave(src, sx, fx, phase_rows);
        for (int64_t kx = 0; kx < kx_n; ++kx) {
          const int64_t e = kx * g.dilation[2] - g.pad[2];
          const int64_t shift = floor_div(e, sx), p = e - shift * sx;
          terms.add(phase_rows[p], shift, (fx - p + sx - 1) / sx, wk[kx]);
        }
      });
    }
    T* out = x + pos.r * cx;
    uk.row(terms.data(), terms.count, cx,
           bias != nullptr ? bias + cc : nullptr, out);
    if (check) work.bad |= row_nonfinite(out, cx);
  });
}

template void weight_grad_depthwise<float>(const Geometry&, const float*, const float*, float*);
template void weight_grad_depthwise<double>(const Geometry&, const double*, const double*,
                                            double*);
template bool scatter_depthwise<float>(const Geometry&, const float*, const float*,
                                       const float*, float*, bool);
template bool scatter_depthwise<double>(const Geometry&, const double*, const double*,
                                        const double*, double*, bool);
template bool gather_depthwise<float>(const Geometry&, const float*, const float*,
                                      const float*, float*, bool);
template bool gather_depthwise<double>(const Geometry&, const double*, const double*,
                                       const double*, double*, bool);

}  // namespace tconv
