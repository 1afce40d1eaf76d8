// The indirect input: B rows read through pointers straight into the source (zero rows and
// copied border rows where a tile leaves it), and the copy of such rows into a packed panel.
#include <algorithm>

#include "subconv/internal.hpp"
#include "tconv/copy.hpp"

namespace tconv::detail {

template <typename T>
void indirect_rows(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& tiles,
                   KRows rows, int nr, const T* zeros, T* border, const T** ptrs,
                   std::vector<TapRead>& tap_reads) {
  constexpr int64_t kZero = -1, kBorder = -2;
  const int64_t kc = static_cast<int64_t>(rows.size());
  const int64_t sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = s.src_dims[0] * sy * sx;
  const int64_t taps = s.taps();
  tap_reads.resize(static_cast<size_t>(taps));
  for (const Segment& tile : tiles) {
    for (int64_t t = 0; t < taps; ++t) {
      const TapReach r = tap_reach(s, tile, t);  // x step 1 on the direct path
      const int64_t code = !r.inside                         ? kZero
                           : (r.x0 >= 0 && r.x0 + nr <= sx) ? (r.z * sy + r.y) * sx + r.x0
                                                            : kBorder;
      tap_reads[static_cast<size_t>(t)] = {code, r};
    }
    const T* src_n = src + (tile.n * s.src_channels + group * s.Kc) * plane;
    for (int64_t k = 0; k < kc; ++k) {
      const KRow& row = rows[static_cast<size_t>(k)];
      const TapRead& read = tap_reads[static_cast<size_t>(row.tap)];
      const int64_t code = read.code;
      const T* plane_c = src_n + row.channel * plane;
      if (code >= 0) {
        *ptrs++ = plane_c + code;
      } else if (code == kZero) {
        *ptrs++ = zeros;
      } else {
        // valid u: 0 <= x0 + u < sx and u < len; the rest of the nr row is zero
        const TapReach& r = read.reach;
        const int64_t lo = std::max<int64_t>(0, -r.x0);
        const int64_t hi = std::min<int64_t>(tile.len, sx - r.x0);
        const T* srow = plane_c + (r.z * sy + r.y) * sx + r.x0;
        // lo < hi here.  Clamped loads + select: a short branch-free loop (a plain copy loop
        // becomes a memcpy call, far too slow for <= 32 elements).
        for (int64_t u = 0; u < nr; ++u) {
          const T v = srow[std::min(std::max(u, lo), hi - 1)];
          border[u] = (u >= lo && u < hi) ? v : T(0);
        }
        *ptrs++ = border;
        border += nr;
      }
    }
  }
}

template <typename T>
void copy_rows(const T* const* rows, int64_t kc, int nr, T* panel) {
  copy_panel([rows](int64_t k) { return rows[k]; }, kc, nr, panel);
}

template void indirect_rows<float>(const SubConv&, const float*, int64_t, const std::vector<Segment>&,
                                    KRows, int, const float*, float*, const float**, std::vector<TapRead>&);
template void indirect_rows<double>(const SubConv&, const double*, int64_t, const std::vector<Segment>&,
                                    KRows, int, const double*, double*, const double**, std::vector<TapRead>&);
template void copy_rows<float>(const float* const*, int64_t, int, float*);
template void copy_rows<double>(const double* const*, int64_t, int, double*);

}  // namespace tconv::detail
