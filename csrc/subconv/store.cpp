// The store: a task's accumulator tile, plus the bias, into its phase's places in dst.
#include "subconv/internal.hpp"
#include "tconv/copy.hpp"

namespace tconv::detail {

template <typename T>
T* segment_dst(const SubConv& s, T* dst, int64_t group, int64_t m0, const Segment& seg) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t dy = s.dst_dims[1], dx = s.dst_dims[2];
  const int64_t plane = s.dst_dims[0] * dy * dx;
  const int64_t z = seg.jz * az.dst_step + az.dst_base;
  const int64_t y = seg.jy * ay.dst_step + ay.dst_base;
  return dst + (seg.n * s.dst_channels + group * s.M + m0) * plane + (z * dy + y) * dx +
         seg.jx0 * ax.dst_step + ax.dst_base;
}

template <bool kCheck, typename T>
NonfiniteBits<T> store_tile(const SubConv& s, T* dst, const T* bias, int64_t group, int64_t m0,
                            int64_t mc, const std::vector<Segment>& segs, const T* acc,
                            int64_t ldc, const T* const* phases, int xs, bool stream) {
  NonfiniteBits<T> bad = 0;
  const SubAxis& ax = s.axes[2];
  const int64_t plane = s.dst_dims[0] * s.dst_dims[1] * s.dst_dims[2];
  for (const Segment& seg : segs) {
    T* base = segment_dst(s, dst, group, m0, seg);
    for (int64_t m = 0; m < mc; ++m) {
      const T b = bias ? bias[group * s.M + m0 + m] : T(0);
      const T* a = xs > 0 ? nullptr : acc + m * ldc + seg.t0;
      T* d = base + m * plane;
      if (xs > 0) {
        const T* from[kMaxXPhases];
        for (int r = 0; r < xs; ++r) from[r] = phases[r] + m * ldc + seg.t0;
        const uint32_t nonfinite =
            xs == 2   ? interleave<T, 2>(from, bias != nullptr, b, d, seg.len, stream)
            : xs == 4 ? interleave<T, 4>(from, bias != nullptr, b, d, seg.len, stream)
                      : interleave<T, 8>(from, bias != nullptr, b, d, seg.len, stream);
        if constexpr (kCheck) bad |= nonfinite;
      } else if (ax.dst_step == 1) {
        for (int64_t u = 0; u < seg.len; ++u) {
          const T v = bias ? a[u] + b : a[u];
          d[u] = v;
          if constexpr (kCheck) bad |= nonfinite_bit(v);
        }
      } else {
        for (int64_t u = 0; u < seg.len; ++u) {
          const T v = bias ? a[u] + b : a[u];
          d[u * ax.dst_step] = v;
          if constexpr (kCheck) bad |= nonfinite_bit(v);
        }
      }
    }
  }
  if (stream && xs > 0) stream_fence();
  return bad;
}

template float* segment_dst<float>(const SubConv&, float*, int64_t, int64_t, const Segment&);
template double* segment_dst<double>(const SubConv&, double*, int64_t, int64_t, const Segment&);
template NonfiniteBits<float> store_tile<true, float>(const SubConv&, float*, const float*, int64_t, int64_t,
                                                    int64_t, const std::vector<Segment>&, const float*,
                                                    int64_t, const float* const*, int, bool);
template NonfiniteBits<float> store_tile<false, float>(const SubConv&, float*, const float*, int64_t, int64_t,
                                                    int64_t, const std::vector<Segment>&, const float*,
                                                    int64_t, const float* const*, int, bool);
template NonfiniteBits<double> store_tile<true, double>(const SubConv&, double*, const double*, int64_t, int64_t,
                                                    int64_t, const std::vector<Segment>&, const double*,
                                                    int64_t, const double* const*, int, bool);
template NonfiniteBits<double> store_tile<false, double>(const SubConv&, double*, const double*, int64_t, int64_t,
                                                    int64_t, const std::vector<Segment>&, const double*,
                                                    int64_t, const double* const*, int, bool);

}  // namespace tconv::detail
