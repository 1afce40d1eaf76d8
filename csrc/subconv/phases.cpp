// The sub-convolutions of each operator (tconv/subconv.hpp): the output phases of a
// transposed convolution, which the forward (scatter.cpp), its few-channel columns path
// (columns.cpp) and the loop-nest repair (direct.cpp) all split the output into, and the
// SubConvs that the forward, the gather and the planner (csrc/plan.cpp) run or plan.
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

std::vector<SubConv> scatter_subconvs(const Geometry& g) {
  const SubConv base = subconv_base(g, /*transposed=*/true);
  std::array<std::vector<SubAxis>, kMaxDims> axis_phases;
  for (int d = 0; d < kMaxDims; ++d)
    axis_phases[d] = output_phases(g.fine[d], g.kernel[d], g.stride[d], g.pad[d], g.dilation[d]);
  std::vector<SubConv> subs;
  for (const SubAxis& az : axis_phases[0])
    for (const SubAxis& ay : axis_phases[1])
      for (const SubAxis& ax : axis_phases[2]) {
        SubConv s = base;
        s.axes = {az, ay, ax};
        subs.push_back(std::move(s));
      }
  return subs;
}

SubConv gather_subconv(const Geometry& g) {
  SubConv s = subconv_base(g, /*transposed=*/false);
  for (int d = 0; d < kMaxDims; ++d) {
    SubAxis& a = s.axes[d];
    a.extent = g.coarse[d];
    a.src_step = g.stride[d];
    a.dst_step = 1;
    a.dst_base = 0;
    a.tap_kernel.clear();
    a.tap_offset.clear();
    for (int64_t k = 0; k < g.kernel[d]; ++k) {
      a.tap_kernel.push_back(k);
      a.tap_offset.push_back(k * g.dilation[d] - g.pad[d]);
    }
  }
  return s;
}

}  // namespace tconv
