// Direct (loop-nest) arithmetic: the exact structural form of each operator, used to repair
// the elements of a fast kernel's result that came out Inf or NaN.
//
// They multiply only the (input, weight) pairs that the operator's definition pairs up -- taps
// that fall into the zero padding or between inserted zeros are skipped, never multiplied by
// zero.  The fast sub-convolution kernels do multiply some weights by padded zeros (borders,
// tile tails), which is harmless for finite data but turns an Inf or NaN weight (or input)
// into NaN in outputs it does not touch (0 * Inf = NaN).  An output the fast kernel leaves
// finite had only finite products (a sum with an Inf or NaN term stays Inf or NaN), so it is
// already the operator's value; only the outputs it leaves Inf or NaN are recomputed here, one
// by one, so a few NaN in a large call cost a few windows of loop-nest work, not the whole call
// (tconv/nonfinite.hpp).  Each output's terms are summed in one fixed order -- (input channel,
// tap) for scatter and gather, (n, pixel) into fixed lanes for weight_grad -- whichever thread
// computes it, and whether it is recomputed alone or with its whole plane, so results are
// bitwise deterministic for any thread count.  Cancellation (tconv/cancel.hpp) is checked per
// repaired plane or weight entry.
#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include <omp.h>

#include "tconv/cancel.hpp"
#include "tconv/clones.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"

namespace tconv {

namespace {

// Whether one of p[lo, hi) is Inf or NaN (nonzero: yes): an integer OR of the exponent tests,
// compiled for the baseline and again as AVX2 / AVX-512 clones (tconv/clones.hpp), whose wider
// vectors keep up with the L3 where the baseline's 16-byte ones did not.
template <typename T>
inline __attribute__((always_inline)) auto scan_nonfinite(const T* p, int64_t lo, int64_t hi) {
  decltype(nonfinite_bit(T(0))) bad = 0;
  for (int64_t i = lo; i < hi; ++i) bad |= nonfinite_bit(p[i]);
  return bad;
}

template <typename T>
auto scan_base(const T* p, int64_t lo, int64_t hi) {
  return scan_nonfinite(p, lo, hi);
}

#ifdef TCONV_CLONE_AVX2
template <typename T>
TCONV_CLONE_AVX2 auto scan_avx2(const T* p, int64_t lo, int64_t hi) {
  return scan_nonfinite(p, lo, hi);
}
#endif

#ifdef TCONV_CLONE_AVX512
template <typename T>
TCONV_CLONE_AVX512 auto scan_avx512(const T* p, int64_t lo, int64_t hi) {
  return scan_nonfinite(p, lo, hi);
}
#endif

template <typename T>
auto scan_share(CloneIsa isa, const T* p, int64_t lo, int64_t hi) {
#ifdef TCONV_CLONE_AVX512
  if (isa == CloneIsa::kAvx512) return scan_avx512(p, lo, hi);
#endif
#ifdef TCONV_CLONE_AVX2
  if (isa == CloneIsa::kAvx2) return scan_avx2(p, lo, hi);
#endif
  (void)isa;
  return scan_base(p, lo, hi);
}

}  // namespace

template <typename T>
bool all_finite(const T* p, int64_t n) {
  // The check is a memory-bound pass over whole operands: split it over the threads (an
  // integer OR of the exponent tests, so the answer never depends on the split).
  const CloneIsa isa = clone_isa(active_kernels().name);
  decltype(nonfinite_bit(T(0))) bad = 0;
#pragma omp parallel reduction(| : bad) if (n > (int64_t(1) << 18))
  {
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num();
    bad |= scan_share(isa, p, n * me / threads, n * (me + 1) / threads);
  }
  return bad == 0;
}

namespace {

// The rows of one tap (kz, ky, kx): for each coarse row (iz, iy) whose fine row lies inside the
// grid, the coarse elements ix in [lo, hi) pair with fine elements (ix - lo) * sx from
// `fine_offset`, by fine = i*s - p + k*d per axis.  `visit` receives
//   (coarse_offset, fine_offset, lo, hi, sx)
// with offsets into one (n, channel) plane.
template <typename Visit>
void for_each_row_of_tap(const Geometry& g, int64_t kz, int64_t ky, int64_t kx, Visit&& visit) {
  const IndexRange rz =
      valid_coarse_range(g.coarse[0], g.fine[0], g.stride[0], g.pad[0], g.dilation[0], kz);
  const IndexRange ry =
      valid_coarse_range(g.coarse[1], g.fine[1], g.stride[1], g.pad[1], g.dilation[1], ky);
  const IndexRange rx =
      valid_coarse_range(g.coarse[2], g.fine[2], g.stride[2], g.pad[2], g.dilation[2], kx);
  const int64_t ox0 = rx.lo * g.stride[2] - g.pad[2] + kx * g.dilation[2];
  for (int64_t iz = rz.lo; iz < rz.hi; ++iz) {
    const int64_t oz = iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
    for (int64_t iy = ry.lo; iy < ry.hi; ++iy) {
      const int64_t oy = iy * g.stride[1] - g.pad[1] + ky * g.dilation[1];
      visit((iz * g.coarse[1] + iy) * g.coarse[2], (oz * g.fine[1] + oy) * g.fine[2] + ox0, rx.lo,
            rx.hi, g.stride[2]);
    }
  }
}

// Every tap's rows, taps in row-major order; `visit` also receives the tap's flat index first.
template <typename Visit>
void for_each_tap_row(const Geometry& g, Visit&& visit) {
  for (int64_t kz = 0; kz < g.kernel[0]; ++kz)
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky)
      for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        const int64_t tap = (kz * g.kernel[1] + ky) * g.kernel[2] + kx;
        for_each_row_of_tap(g, kz, ky, kx, [&](int64_t ci, int64_t fi, int64_t lo, int64_t hi,
                                               int64_t sx) { visit(tap, ci, fi, lo, hi, sx); });
      }
}

// Per axis, for each index on the output side, the (tap, source index) pairs the definition
// pairs with it, taps ascending (compressed rows: pairs[start[o] .. start[o + 1])).
struct AxisPairs {
  std::vector<int64_t> start{0};
  std::vector<int64_t> tap, src;
};

// fine_side: the output is fine (scatter), and fine o receives coarse i when o = i*s - p + k*d;
// else the output is coarse (gather) and coarse i reads that fine o.
AxisPairs axis_pairs(const Geometry& g, int d, bool fine_side) {
  AxisPairs a;
  const int64_t outputs = fine_side ? g.fine[d] : g.coarse[d];
  const int64_t s = g.stride[d];
  for (int64_t o = 0; o < outputs; ++o) {
    for (int64_t k = 0; k < g.kernel[d]; ++k) {
      if (fine_side) {
        const int64_t t = o + g.pad[d] - k * g.dilation[d];  // = i * s
        if (t >= 0 && t % s == 0 && t / s < g.coarse[d]) {
          a.tap.push_back(k);
          a.src.push_back(t / s);
        }
      } else {
        const int64_t f = o * s - g.pad[d] + k * g.dilation[d];
        if (f >= 0 && f < g.fine[d]) {
          a.tap.push_back(k);
          a.src.push_back(f);
        }
      }
    }
    a.start.push_back(static_cast<int64_t>(a.tap.size()));
  }
  return a;
}

// The (flat tap, flat source offset) pairs of output element e of a plane, taps row-major.
struct Pair {
  int64_t tap, src;
};

void element_pairs(const Geometry& g, const std::array<AxisPairs, kMaxDims>& axes,
                   const Dims& out_dims, const Dims& src_dims, int64_t e, std::vector<Pair>& pairs) {
  const int64_t o2 = e % out_dims[2], o1 = (e / out_dims[2]) % out_dims[1],
                o0 = e / (out_dims[2] * out_dims[1]);
  pairs.clear();
  for (int64_t a = axes[0].start[o0]; a < axes[0].start[o0 + 1]; ++a)
    for (int64_t b = axes[1].start[o1]; b < axes[1].start[o1 + 1]; ++b)
      for (int64_t c = axes[2].start[o2]; c < axes[2].start[o2 + 1]; ++c)
        pairs.push_back({(axes[0].tap[a] * g.kernel[1] + axes[1].tap[b]) * g.kernel[2] +
                             axes[2].tap[c],
                         (axes[0].src[a] * src_dims[1] + axes[1].src[b]) * src_dims[2] +
                             axes[2].src[c]});
}

// y plane (n, f) = C^T x, summed in the order (c, k, i), one output phase at a time (the
// phases of scatter.cpp): within a phase every tap reads x at a fixed offset, so each row is a
// contiguous multiply-add.  acc: scratch.
template <typename T>
void scatter_plane(const Geometry& g, const std::array<std::vector<SubAxis>, kMaxDims>& phases,
                   const T* x, const T* w, const T* bias, int64_t n, int64_t f, T* out,
                   std::vector<T>& acc) {
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  const int64_t group = f / fpg;
  const auto valid = [](const SubAxis& a, size_t t, int64_t coarse) {  // j + offset in range
    const int64_t off = a.tap_offset[t];
    return IndexRange{std::max<int64_t>(0, -off), std::min(a.extent, coarse - off)};
  };
  for (const SubAxis& az : phases[0])
    for (const SubAxis& ay : phases[1])
      for (const SubAxis& ax : phases[2]) {
        const int64_t ey = ay.extent, ex = ax.extent;
        acc.assign(static_cast<size_t>(az.extent * ey * ex), bias ? bias[f] : T(0));
        for (int64_t c = group * cpg; c < (group + 1) * cpg; ++c) {
          const T* in = x + (n * g.coarse_channels + c) * g.coarse_pixels();
          const T* w_cf = w + (c * fpg + f % fpg) * taps;
          for (size_t tz = 0; tz < az.tap_kernel.size(); ++tz)
            for (size_t ty = 0; ty < ay.tap_kernel.size(); ++ty)
              for (size_t tx = 0; tx < ax.tap_kernel.size(); ++tx) {
                const T wv = w_cf[(az.tap_kernel[tz] * g.kernel[1] + ay.tap_kernel[ty]) *
                                      g.kernel[2] + ax.tap_kernel[tx]];
                const IndexRange rz = valid(az, tz, g.coarse[0]), ry = valid(ay, ty, g.coarse[1]),
                                 rx = valid(ax, tx, g.coarse[2]);
                for (int64_t jz = rz.lo; jz < rz.hi; ++jz)
                  for (int64_t jy = ry.lo; jy < ry.hi; ++jy) {
                    T* __restrict a = acc.data() + (jz * ey + jy) * ex;
                    const T* __restrict src =
                        in + ((jz + az.tap_offset[tz]) * g.coarse[1] + jy + ay.tap_offset[ty]) *
                                 g.coarse[2] + ax.tap_offset[tx];
                    for (int64_t jx = rx.lo; jx < rx.hi; ++jx) a[jx] += src[jx] * wv;
                  }
              }
        }
        const T* a = acc.data();
        for (int64_t jz = 0; jz < az.extent; ++jz)
          for (int64_t jy = 0; jy < ey; ++jy)
            for (int64_t jx = 0; jx < ex; ++jx)
              out[((jz * az.dst_step + az.dst_base) * g.fine[1] + jy * ay.dst_step + ay.dst_base) *
                      g.fine[2] + jx * ax.dst_step + ax.dst_base] = *a++;
      }
}

// x plane (n, c) = C y, summed in the order (f, k, i).
template <typename T>
void gather_plane(const Geometry& g, const T* y, const T* w, const T* bias, int64_t n,
                  int64_t c, T* out) {
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  std::fill(out, out + g.coarse_pixels(), bias ? bias[c] : T(0));
  for (int64_t f_local = 0; f_local < fpg; ++f_local) {
    const T* in = y + (n * g.fine_channels + (c / cpg) * fpg + f_local) * g.fine_pixels();
    const T* w_cf = w + (c * fpg + f_local) * taps;
    for_each_tap_row(g, [&](int64_t tap, int64_t ci, int64_t fi, int64_t lo, int64_t hi,
                            int64_t sx) {
      const T wv = w_cf[tap];
      T* __restrict o = out + ci + lo;
      const T* __restrict src = in + fi;
      for (int64_t j = 0; j < hi - lo; ++j) o[j] += wv * src[j * sx];
    });
  }
}

// Appends to `bad` the indices of the Inf/NaN elements of out[0 .. size): a vector OR over
// each block first, then the few blocks that have any.
template <typename T>
void find_nonfinite(const T* out, int64_t size, std::vector<int64_t>& bad) {
  for (int64_t e0 = 0; e0 < size; e0 += 256) {
    const int64_t e1 = std::min(size, e0 + 256);
    decltype(nonfinite_bit(T(0))) any = 0;
    for (int64_t e = e0; e < e1; ++e) any |= nonfinite_bit(out[e]);
    if (any)
      for (int64_t e = e0; e < e1; ++e)
        if (nonfinite_bit(out[e])) bad.push_back(e);
  }
}

// Work below which a repair runs on the calling thread: on a busy machine waking the other
// threads costs more than a few windows of loop nest (multiply-adds).
constexpr int64_t kParallelRepairWork = int64_t(1) << 20;

// Recomputes the Inf/NaN elements of each output plane.  `plane(p, buf, scratch)` writes plane
// p whole by the loop nest; `element(p, e, pairs)` returns its element e alone, with the same
// terms in the same order.  A plane with many such elements is cheaper whole (contiguous rows).
// `terms`: most products in one element (for the work estimate).
template <typename T, typename Plane, typename Element>
void repair_planes(const Geometry& g, const std::array<AxisPairs, kMaxDims>& axes,
                   const Dims& out_dims, const Dims& src_dims, int64_t planes, int64_t terms,
                   T* result, Plane&& plane, Element&& element) {
  const int64_t size = out_dims[0] * out_dims[1] * out_dims[2];
  std::vector<int64_t> bad_planes, bad;
  int64_t work = 0;
  for (int64_t p = 0; p < planes; ++p) {
    bad.clear();
    find_nonfinite(result + p * size, size, bad);
    if (bad.empty()) continue;
    bad_planes.push_back(p);
    work += static_cast<int64_t>(bad.size()) * terms;
  }
  const int64_t count = static_cast<int64_t>(bad_planes.size());
  Cancellation* const cancel = current_cancellation();
#pragma omp parallel if (count > 1 && work > kParallelRepairWork)
  {
    std::vector<int64_t> elements;
    std::vector<Pair> pairs;
    std::vector<T> whole, scratch;
#pragma omp for schedule(dynamic, 1)
    for (int64_t i = 0; i < count; ++i) {
      if (stop(cancel)) continue;
      const int64_t p = bad_planes[static_cast<size_t>(i)];
      T* out = result + p * size;
      elements.clear();
      find_nonfinite(out, size, elements);
      if (static_cast<int64_t>(elements.size()) * 8 > size) {
        whole.resize(static_cast<size_t>(size));
        plane(p, whole.data(), scratch);
        for (int64_t e : elements) out[e] = whole[static_cast<size_t>(e)];
      } else {
        for (int64_t e : elements) {
          element_pairs(g, axes, out_dims, src_dims, e, pairs);
          out[e] = element(p, pairs);
        }
      }
    }
  }
}

}  // namespace

template <typename T>
void scatter_repair(const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const std::array<AxisPairs, kMaxDims> axes = {axis_pairs(g, 0, true), axis_pairs(g, 1, true),
                                                axis_pairs(g, 2, true)};
  std::array<std::vector<SubAxis>, kMaxDims> phases;
  for (int d = 0; d < kMaxDims; ++d)
    phases[d] = output_phases(g.fine[d], g.kernel[d], g.stride[d], g.pad[d], g.dilation[d]);
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  repair_planes<T>(
      g, axes, g.fine, g.coarse, g.batch * g.fine_channels, cpg * taps, y,
      [&](int64_t p, T* out, std::vector<T>& scratch) {
        scatter_plane(g, phases, x, w, bias, p / g.fine_channels, p % g.fine_channels, out,
                      scratch);
      },
      [&](int64_t p, const std::vector<Pair>& pairs) {
        const int64_t n = p / g.fine_channels, f = p % g.fine_channels, group = f / fpg;
        T acc = bias ? bias[f] : T(0);
        for (int64_t c = group * cpg; c < (group + 1) * cpg; ++c) {
          const T* in = x + (n * g.coarse_channels + c) * g.coarse_pixels();
          const T* w_cf = w + (c * fpg + f % fpg) * taps;
          for (const Pair& q : pairs) acc += in[q.src] * w_cf[q.tap];
        }
        return acc;
      });
}

template <typename T>
void gather_repair(const Geometry& g, const T* y, const T* w, const T* bias, T* x) {
  const std::array<AxisPairs, kMaxDims> axes = {axis_pairs(g, 0, false), axis_pairs(g, 1, false),
                                                axis_pairs(g, 2, false)};
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  repair_planes<T>(
      g, axes, g.coarse, g.fine, g.batch * g.coarse_channels, fpg * taps, x,
      [&](int64_t p, T* out, std::vector<T>&) {
        gather_plane(g, y, w, bias, p / g.coarse_channels, p % g.coarse_channels, out);
      },
      [&](int64_t p, const std::vector<Pair>& pairs) {
        const int64_t n = p / g.coarse_channels, c = p % g.coarse_channels;
        T acc = bias ? bias[c] : T(0);
        for (int64_t f_local = 0; f_local < fpg; ++f_local) {
          const T* in = y + (n * g.fine_channels + (c / cpg) * fpg + f_local) * g.fine_pixels();
          const T* w_cf = w + (c * fpg + f_local) * taps;
          for (const Pair& q : pairs) acc += w_cf[q.tap] * in[q.src];
        }
        return acc;
      });
}

// dW[c][f][k] = sum_n sum_i coarse[n][c][i] * fine[n][f][i*s - p + k*d], each Inf/NaN entry
// reduced alone in the order (n, i), into kLanes partial sums (term u of each row goes to
// part[u % kLanes], so the sums are independent chains) added in lane order at the end.
constexpr int kLanes = 8;

// part[u] += a[j + u] * b[(j + u) * sx] over one row of len terms (u = j % kLanes), with the
// step a compile-time constant where it can be (STEP 1 and 2; 0: the run-time sx) so that the
// lanes become vector multiplies and adds (each lane's products and sums as in the scalar
// loop: the same bits), in local accumulators.
template <int STEP, typename T>
inline void repair_row(const T* a, const T* b, int64_t len, int64_t sx, T (&part)[kLanes]) {
  const int64_t step = STEP > 0 ? STEP : sx;
  T p[kLanes];
  for (int u = 0; u < kLanes; ++u) p[u] = part[u];
  int64_t j = 0;
  for (; j + kLanes <= len; j += kLanes)
#pragma GCC unroll 8
    for (int u = 0; u < kLanes; ++u) p[u] += a[j + u] * b[(j + u) * step];
  for (int u = 0; j < len; ++j, ++u) p[u] += a[j] * b[j * step];
  for (int u = 0; u < kLanes; ++u) part[u] = p[u];
}

template <typename T>
void weight_grad_repair(const Geometry& g, const T* coarse, const T* fine, T* dw) {
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  std::vector<int64_t> bad;
  find_nonfinite(dw, g.coarse_channels * fpg * taps, bad);
  const int64_t count = static_cast<int64_t>(bad.size());
  const int64_t work = count * g.batch * g.coarse_pixels();
  Cancellation* const cancel = current_cancellation();
#pragma omp parallel for schedule(dynamic, 1) if (count > 1 && work > kParallelRepairWork)
  for (int64_t i = 0; i < count; ++i) {
    if (stop(cancel)) continue;
    const int64_t index = bad[static_cast<size_t>(i)], slice = index / taps, tap = index % taps;
    const int64_t c = slice / fpg, f = (c / cpg) * fpg + slice % fpg;
    T& entry = dw[index];
    const int64_t kx = tap % g.kernel[2], ky = (tap / g.kernel[2]) % g.kernel[1],
                  kz = tap / (g.kernel[2] * g.kernel[1]);
    T part[kLanes] = {};
    for (int64_t n = 0; n < g.batch; ++n) {
      const T* cin = coarse + (n * g.coarse_channels + c) * g.coarse_pixels();
      const T* fin = fine + (n * g.fine_channels + f) * g.fine_pixels();
      for_each_row_of_tap(g, kz, ky, kx, [&](int64_t ci, int64_t fi, int64_t lo, int64_t hi,
                                             int64_t sx) {
        const T* a = cin + ci + lo;
        const T* b = fin + fi;
        const int64_t len = hi - lo;
        if (sx == 1) {
          repair_row<1>(a, b, len, sx, part);
        } else if (sx == 2) {
          repair_row<2>(a, b, len, sx, part);
        } else {
          repair_row<0>(a, b, len, sx, part);
        }
      });
    }
    T acc = part[0];
    for (int u = 1; u < kLanes; ++u) acc += part[u];
    entry = acc;
  }
}

template bool all_finite<float>(const float*, int64_t);
template bool all_finite<double>(const double*, int64_t);
template void scatter_repair<float>(const Geometry&, const float*, const float*, const float*,
                                    float*);
template void scatter_repair<double>(const Geometry&, const double*, const double*,
                                     const double*, double*);
template void gather_repair<float>(const Geometry&, const float*, const float*, const float*,
                                   float*);
template void gather_repair<double>(const Geometry&, const double*, const double*,
                                    const double*, double*);
template void weight_grad_repair<float>(const Geometry&, const float*, const float*, float*);
template void weight_grad_repair<double>(const Geometry&, const double*, const double*, double*);

}  // namespace tconv
