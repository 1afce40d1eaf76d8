// Ordinary convolution, x = C y, as a gather: the adjoint of scatter.cpp.
//
//     x[n][c][i] = bias[c] + sum_{f in group(c), k} W[c][f][k] * y[n][f][i*s - p + k*d]
//
// Taps that read outside [0, fine) read the implicit zero padding and are skipped.
// Parallel over coarse planes (n, c); each is summed in the fixed order (f, k, i).
#include <algorithm>

#include "tconv/kernels.hpp"

namespace tconv {

template <typename T>
void gather(const Geometry& g, const T* y, const T* w, const T* bias, T* x) {
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

template void gather<float>(const Geometry&, const float*, const float*, const float*, float*);
template void gather<double>(const Geometry&, const double*, const double*, const double*,
                             double*);

}  // namespace tconv
