// Weight gradient, shared by conv_transpose (coarse = input, fine = grad_output) and conv
// (coarse = grad_output, fine = input):
//
//     dW[c][f][k] = sum_n sum_i coarse[n][c][i] * fine[n][group(c)*fpg + f][i*s - p + k*d]
//
// Parallel over (c, f) weight slices; each tap is reduced in the fixed order (n, i).
#include "tconv/kernels.hpp"

namespace tconv {

template <typename T>
void weight_grad(const Geometry& g, const T* coarse, const T* fine, T* dw) {
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

template void weight_grad<float>(const Geometry&, const float*, const float*, float*);
template void weight_grad<double>(const Geometry&, const double*, const double*, double*);

}  // namespace tconv
