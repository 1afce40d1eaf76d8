// The output phases of a transposed convolution (tconv/subconv.hpp): the sub-convolution
// axes that the forward (scatter.cpp), its few-channel columns path (columns.cpp) and the
// loop-nest repair (direct.cpp) all split the output into.
#include "tconv/subconv.hpp"

namespace tconv {

std::vector<SubAxis> output_phases(int64_t fine, int64_t kernel, int64_t stride, int64_t pad,
                                   int64_t dilation) {
  std::vector<SubAxis> out;
  for (int64_t rho = 0; rho < stride && rho < fine; ++rho) {
    SubAxis a;
    a.extent = (fine - rho + stride - 1) / stride;
    a.src_step = 1;
    a.dst_step = stride;
    a.dst_base = rho;
    a.tap_kernel.clear();
    a.tap_offset.clear();
    for (int64_t k = 0; k < kernel; ++k) {
      const int64_t shifted = rho + pad - k * dilation;
      if (shifted - floor_div(shifted, stride) * stride == 0) {
        a.tap_kernel.push_back(k);
        a.tap_offset.push_back(floor_div(shifted, stride));
      }
    }
    out.push_back(std::move(a));
  }
  return out;
}

}  // namespace tconv
