// Row and K tables of the sub-convolution driver: which grid points a task covers (as runs
// along x, and as tiles of nr points) and what each row of K reads (channel, tap, weight).
#include <algorithm>

#include "subconv/internal.hpp"

namespace tconv::detail {

void row_segments(const SubConv& s, int64_t q0, int64_t nc, std::vector<Segment>& segs) {
  segs.clear();
  const int64_t jx_n = s.axes[2].extent, jy_n = s.axes[1].extent, jz_n = s.axes[0].extent;
  int64_t q = q0;
  const int64_t q_end = q0 + nc;
  while (q < q_end) {
    const int64_t jx = q % jx_n;
    const int64_t row = q / jx_n;
    const int64_t jy = row % jy_n;
    const int64_t jz = (row / jy_n) % jz_n;
    const int64_t n = row / (jy_n * jz_n);
    const int64_t len = std::min(jx_n - jx, q_end - q);
    segs.push_back({n, jz, jy, jx, len, q - q0});
    q += len;
  }
}

void k_rows(const SubConv& s, std::vector<KRow>& rows) {
  const int64_t taps = s.taps();
  rows.resize(static_cast<size_t>(s.Kc * taps));
  const auto tx_n = static_cast<int64_t>(s.axes[2].tap_kernel.size());
  const auto ty_n = static_cast<int64_t>(s.axes[1].tap_kernel.size());
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto kk = static_cast<int64_t>(r);
    const int64_t c = kk / taps, t = kk % taps;
    const int64_t tx = t % tx_n, ty = (t / tx_n) % ty_n, tz = t / (tx_n * ty_n);
    const int64_t koff = (s.axes[0].tap_kernel[static_cast<size_t>(tz)] * s.kernel[1] +
                          s.axes[1].tap_kernel[static_cast<size_t>(ty)]) *
                             s.kernel[2] +
                         s.axes[2].tap_kernel[static_cast<size_t>(tx)];
    rows[r] = {c, t, tz, ty, tx, c * s.w_c + koff};
  }
}

void row_tiles(const std::vector<Segment>& segs, int nr, std::vector<Segment>& tiles) {
  tiles.clear();
  for (const Segment& seg : segs)
    for (int64_t u = 0; u < seg.len; u += nr)
      tiles.push_back({seg.n, seg.jz, seg.jy, seg.jx0 + u, std::min<int64_t>(nr, seg.len - u),
                       static_cast<int64_t>(tiles.size()) * nr});
}

}  // namespace tconv::detail
