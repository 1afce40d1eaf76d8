// Direct (loop-nest) kernels: the exact structural form of each operator.
//
// They multiply only the (input, weight) pairs that the operator's definition pairs up -- taps
// that fall into the zero padding or between inserted zeros are skipped, never multiplied by
// zero.  The fast sub-convolution kernels do multiply some weights by padded zeros (borders,
// tile tails), which is harmless for finite data but turns an Inf or NaN weight (or input)
// into NaN in outputs it does not touch (0 * Inf = NaN).  So the operators run these kernels
// whenever an operand holds a non-finite value: results are then exactly those of the
// operator's definition (as in PyTorch), at loop-nest speed.  Each is parallel over output
// slices and sums every element in a fixed order, so it is deterministic for any thread count.
// Cancellation (tconv/cancel.hpp) is checked per output slice and before each input channel's
// (grad_weight: batch item's) terms in it.
#include <algorithm>
#include <cstdint>

#include "tconv/cancel.hpp"
#include "tconv/kernels.hpp"
#include "tconv/nonfinite.hpp"

namespace tconv {

template <typename T>
bool all_finite(const T* p, int64_t n) {
  // The check is a memory-bound pass over whole operands: split it over the threads (an
  // integer OR of the exponent tests, so the answer never depends on the split).
  decltype(nonfinite_bit(T(0))) bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > (int64_t(1) << 18))
  for (int64_t i = 0; i < n; ++i) bad |= nonfinite_bit(p[i]);
  return bad == 0;
}

namespace {

// Every kernel below walks the same pairs: for each tap k and each coarse row (iz, iy) whose
// fine row lies inside the grid, the coarse elements ix in [lo, hi) pair with fine elements
// (ix - lo) * sx from `fine_offset`, by fine = i*s - p + k*d per axis.  `visit` receives
//   (tap, coarse_offset, fine_offset, lo, hi, sx)
// with offsets into one (n, channel) plane; taps run in row-major order.
template <typename Visit>
void for_each_tap_row(const Geometry& g, Visit&& visit) {
  for (int64_t kz = 0; kz < g.kernel[0]; ++kz) {
    const IndexRange rz =
        valid_coarse_range(g.coarse[0], g.fine[0], g.stride[0], g.pad[0], g.dilation[0], kz);
    for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
      const IndexRange ry =
          valid_coarse_range(g.coarse[1], g.fine[1], g.stride[1], g.pad[1], g.dilation[1], ky);
      for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
        const IndexRange rx =
            valid_coarse_range(g.coarse[2], g.fine[2], g.stride[2], g.pad[2], g.dilation[2], kx);
        const int64_t tap = (kz * g.kernel[1] + ky) * g.kernel[2] + kx;
        const int64_t ox0 = rx.lo * g.stride[2] - g.pad[2] + kx * g.dilation[2];
        for (int64_t iz = rz.lo; iz < rz.hi; ++iz) {
          const int64_t oz = iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
          for (int64_t iy = ry.lo; iy < ry.hi; ++iy) {
            const int64_t oy = iy * g.stride[1] - g.pad[1] + ky * g.dilation[1];
            visit(tap, (iz * g.coarse[1] + iy) * g.coarse[2], (oz * g.fine[1] + oy) * g.fine[2] + ox0,
                  rx.lo, rx.hi, g.stride[2]);
          }
        }
      }
    }
  }
}

}  // namespace

// y = C^T x.  Parallel over output planes (n, f); each summed in the order (c, k, i).
template <typename T>
void scatter_direct(const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  Cancellation* const cancel = current_cancellation();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t f = 0; f < g.fine_channels; ++f) {
      if (stop(cancel)) continue;
      T* out = y + (n * g.fine_channels + f) * g.fine_pixels();
      std::fill(out, out + g.fine_pixels(), bias ? bias[f] : T(0));
      const int64_t group = f / fpg;
      for (int64_t c = group * cpg; c < (group + 1) * cpg; ++c) {
        if (stop(cancel)) break;
        const T* in = x + (n * g.coarse_channels + c) * g.coarse_pixels();
        const T* w_cf = w + (c * fpg + f % fpg) * taps;
        for_each_tap_row(g, [&](int64_t tap, int64_t ci, int64_t fi, int64_t lo, int64_t hi,
                                int64_t sx) {
          const T wv = w_cf[tap];
          for (int64_t ix = lo; ix < hi; ++ix) out[fi + (ix - lo) * sx] += in[ci + ix] * wv;
        });
      }
    }
  }
}

// x = C y.  Parallel over coarse planes (n, c); each summed in the order (f, k, i).
template <typename T>
void gather_direct(const Geometry& g, const T* y, const T* w, const T* bias, T* x) {
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  Cancellation* const cancel = current_cancellation();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t c = 0; c < g.coarse_channels; ++c) {
      if (stop(cancel)) continue;
      T* out = x + (n * g.coarse_channels + c) * g.coarse_pixels();
      std::fill(out, out + g.coarse_pixels(), bias ? bias[c] : T(0));
      for (int64_t f_local = 0; f_local < fpg; ++f_local) {
        if (stop(cancel)) break;
        const T* in = y + (n * g.fine_channels + (c / cpg) * fpg + f_local) * g.fine_pixels();
        const T* w_cf = w + (c * fpg + f_local) * taps;
        for_each_tap_row(g, [&](int64_t tap, int64_t ci, int64_t fi, int64_t lo, int64_t hi,
                                int64_t sx) {
          const T wv = w_cf[tap];
          for (int64_t ix = lo; ix < hi; ++ix) out[ci + ix] += wv * in[fi + (ix - lo) * sx];
        });
      }
    }
  }
}

// dW[c][f][k] = sum_n sum_i coarse[n][c][i] * fine[n][f][i*s - p + k*d].
// Parallel over (c, f) weight slices; each tap reduced in the order (n, i).
template <typename T>
void weight_grad_direct(const Geometry& g, const T* coarse, const T* fine, T* dw) {
  const int64_t cpg = g.coarse_per_group(), fpg = g.fine_per_group(), taps = g.taps();
  Cancellation* const cancel = current_cancellation();
#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t c = 0; c < g.coarse_channels; ++c) {
    for (int64_t f_local = 0; f_local < fpg; ++f_local) {
      if (stop(cancel)) continue;
      const int64_t f = (c / cpg) * fpg + f_local;
      T* dw_cf = dw + (c * fpg + f_local) * taps;
      std::fill(dw_cf, dw_cf + taps, T(0));
      for (int64_t n = 0; n < g.batch; ++n) {
        if (stop(cancel)) break;
        const T* cin = coarse + (n * g.coarse_channels + c) * g.coarse_pixels();
        const T* fin = fine + (n * g.fine_channels + f) * g.fine_pixels();
        for_each_tap_row(g, [&](int64_t tap, int64_t ci, int64_t fi, int64_t lo, int64_t hi,
                                int64_t sx) {
          T acc = dw_cf[tap];
          for (int64_t ix = lo; ix < hi; ++ix) acc += cin[ci + ix] * fin[fi + (ix - lo) * sx];
          dw_cf[tap] = acc;
        });
      }
    }
  }
}

template bool all_finite<float>(const float*, int64_t);
template bool all_finite<double>(const double*, int64_t);
template void scatter_direct<float>(const Geometry&, const float*, const float*, const float*,
                                    float*);
template void scatter_direct<double>(const Geometry&, const double*, const double*,
                                     const double*, double*);
template void gather_direct<float>(const Geometry&, const float*, const float*, const float*,
                                   float*);
template void gather_direct<double>(const Geometry&, const double*, const double*,
                                    const double*, double*);
template void weight_grad_direct<float>(const Geometry&, const float*, const float*, float*);
template void weight_grad_direct<double>(const Geometry&, const double*, const double*, double*);

}  // namespace tconv
