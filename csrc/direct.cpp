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
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "tconv/kernels.hpp"

namespace tconv {

template <typename T>
bool all_finite(const T* p, int64_t n) {
  // An IEEE value is Inf or NaN exactly when its exponent bits are all ones.  An integer
  // OR-reduction vectorises without reassociating any floating-point sum.
  using Bits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  constexpr Bits exponent = sizeof(T) == 4 ? Bits(0x7f800000u) : Bits(0x7ff0000000000000ull);
  // The check is a memory-bound pass over whole operands: split it over the threads (an
  // integer OR, so the answer never depends on the split).
  Bits bad = 0;
#pragma omp parallel for schedule(static) reduction(| : bad) if (n > (int64_t(1) << 18))
  for (int64_t i = 0; i < n; ++i) {
    Bits b;
    std::memcpy(&b, p + i, sizeof(T));
    bad |= Bits((b & exponent) == exponent);
  }
  return bad == 0;
}

template <typename T>
void scatter_direct(const Geometry& g, const T* x, const T* w, const T* bias, T* y) {
  const int64_t fine_channels = g.fine_channels;
  const int64_t coarse_channels = g.coarse_channels;
  const int64_t cpg = g.coarse_per_group();
  const int64_t fpg = g.fine_per_group();
  const int64_t coarse_pixels = g.coarse_pixels();
  const int64_t fine_pixels = g.fine_pixels();
  const int64_t taps = g.taps();

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t f = 0; f < fine_channels; ++f) {
      T* out = y + (n * fine_channels + f) * fine_pixels;
      std::fill(out, out + fine_pixels, bias ? bias[f] : T(0));
      const int64_t group = f / fpg;
      const int64_t f_local = f % fpg;
      for (int64_t c = group * cpg; c < (group + 1) * cpg; ++c) {
        const T* in = x + (n * coarse_channels + c) * coarse_pixels;
        const T* w_cf = w + (c * fpg + f_local) * taps;
        for (int64_t kz = 0; kz < g.kernel[0]; ++kz) {
          const IndexRange rz = valid_coarse_range(g.coarse[0], g.fine[0], g.stride[0], g.pad[0],
                                                   g.dilation[0], kz);
          for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
            const IndexRange ry = valid_coarse_range(g.coarse[1], g.fine[1], g.stride[1],
                                                     g.pad[1], g.dilation[1], ky);
            for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
              const IndexRange rx = valid_coarse_range(g.coarse[2], g.fine[2], g.stride[2],
                                                       g.pad[2], g.dilation[2], kx);
              const T wv = w_cf[(kz * g.kernel[1] + ky) * g.kernel[2] + kx];
              const int64_t sx = g.stride[2];
              const int64_t ox0 = rx.lo * sx - g.pad[2] + kx * g.dilation[2];
              for (int64_t iz = rz.lo; iz < rz.hi; ++iz) {
                const int64_t oz = iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
                for (int64_t iy = ry.lo; iy < ry.hi; ++iy) {
                  const int64_t oy = iy * g.stride[1] - g.pad[1] + ky * g.dilation[1];
                  const T* irow = in + (iz * g.coarse[1] + iy) * g.coarse[2];
                  T* orow = out + (oz * g.fine[1] + oy) * g.fine[2] + ox0;
                  for (int64_t ix = rx.lo; ix < rx.hi; ++ix) {
                    orow[(ix - rx.lo) * sx] += irow[ix] * wv;
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

template <typename T>
void gather_direct(const Geometry& g, const T* y, const T* w, const T* bias, T* x) {
  const int64_t fine_channels = g.fine_channels;
  const int64_t coarse_channels = g.coarse_channels;
  const int64_t cpg = g.coarse_per_group();
  const int64_t fpg = g.fine_per_group();
  const int64_t coarse_pixels = g.coarse_pixels();
  const int64_t fine_pixels = g.fine_pixels();
  const int64_t taps = g.taps();

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t c = 0; c < coarse_channels; ++c) {
      T* out = x + (n * coarse_channels + c) * coarse_pixels;
      std::fill(out, out + coarse_pixels, bias ? bias[c] : T(0));
      const int64_t group = c / cpg;
      for (int64_t f_local = 0; f_local < fpg; ++f_local) {
        const T* in = y + (n * fine_channels + group * fpg + f_local) * fine_pixels;
        const T* w_cf = w + (c * fpg + f_local) * taps;
        for (int64_t kz = 0; kz < g.kernel[0]; ++kz) {
          const IndexRange rz = valid_coarse_range(g.coarse[0], g.fine[0], g.stride[0], g.pad[0],
                                                   g.dilation[0], kz);
          for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
            const IndexRange ry = valid_coarse_range(g.coarse[1], g.fine[1], g.stride[1],
                                                     g.pad[1], g.dilation[1], ky);
            for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
              const IndexRange rx = valid_coarse_range(g.coarse[2], g.fine[2], g.stride[2],
                                                       g.pad[2], g.dilation[2], kx);
              const T wv = w_cf[(kz * g.kernel[1] + ky) * g.kernel[2] + kx];
              const int64_t sx = g.stride[2];
              const int64_t ox0 = rx.lo * sx - g.pad[2] + kx * g.dilation[2];
              for (int64_t iz = rz.lo; iz < rz.hi; ++iz) {
                const int64_t oz = iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
                for (int64_t iy = ry.lo; iy < ry.hi; ++iy) {
                  const int64_t oy = iy * g.stride[1] - g.pad[1] + ky * g.dilation[1];
                  T* orow = out + (iz * g.coarse[1] + iy) * g.coarse[2];
                  const T* irow = in + (oz * g.fine[1] + oy) * g.fine[2] + ox0;
                  for (int64_t ix = rx.lo; ix < rx.hi; ++ix) {
                    orow[ix] += wv * irow[(ix - rx.lo) * sx];
                  }
                }
              }
            }
          }
        }
      }
    }
  }
}

template <typename T>
void weight_grad_direct(const Geometry& g, const T* coarse, const T* fine, T* dw) {
  const int64_t fine_channels = g.fine_channels;
  const int64_t coarse_channels = g.coarse_channels;
  const int64_t cpg = g.coarse_per_group();
  const int64_t fpg = g.fine_per_group();
  const int64_t coarse_pixels = g.coarse_pixels();
  const int64_t fine_pixels = g.fine_pixels();
  const int64_t taps = g.taps();

#pragma omp parallel for collapse(2) schedule(static)
  for (int64_t c = 0; c < coarse_channels; ++c) {
    for (int64_t f_local = 0; f_local < fpg; ++f_local) {
      const int64_t f = (c / cpg) * fpg + f_local;
      T* dw_cf = dw + (c * fpg + f_local) * taps;
      for (int64_t kz = 0; kz < g.kernel[0]; ++kz) {
        const IndexRange rz = valid_coarse_range(g.coarse[0], g.fine[0], g.stride[0], g.pad[0],
                                                 g.dilation[0], kz);
        for (int64_t ky = 0; ky < g.kernel[1]; ++ky) {
          const IndexRange ry = valid_coarse_range(g.coarse[1], g.fine[1], g.stride[1], g.pad[1],
                                                   g.dilation[1], ky);
          for (int64_t kx = 0; kx < g.kernel[2]; ++kx) {
            const IndexRange rx = valid_coarse_range(g.coarse[2], g.fine[2], g.stride[2],
                                                     g.pad[2], g.dilation[2], kx);
            const int64_t sx = g.stride[2];
            const int64_t ox0 = rx.lo * sx - g.pad[2] + kx * g.dilation[2];
            T acc = T(0);
            for (int64_t n = 0; n < g.batch; ++n) {
              const T* cin = coarse + (n * coarse_channels + c) * coarse_pixels;
              const T* fin = fine + (n * fine_channels + f) * fine_pixels;
              for (int64_t iz = rz.lo; iz < rz.hi; ++iz) {
                const int64_t oz = iz * g.stride[0] - g.pad[0] + kz * g.dilation[0];
                for (int64_t iy = ry.lo; iy < ry.hi; ++iy) {
                  const int64_t oy = iy * g.stride[1] - g.pad[1] + ky * g.dilation[1];
                  const T* crow = cin + (iz * g.coarse[1] + iy) * g.coarse[2];
                  const T* frow = fin + (oz * g.fine[1] + oy) * g.fine[2] + ox0;
                  for (int64_t ix = rx.lo; ix < rx.hi; ++ix) {
                    acc += crow[ix] * frow[(ix - rx.lo) * sx];
                  }
                }
              }
            }
            dw_cf[(kz * g.kernel[1] + ky) * g.kernel[2] + kx] = acc;
          }
        }
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
