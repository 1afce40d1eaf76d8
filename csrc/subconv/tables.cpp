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

void border_widths(const SubConv& s, std::array<int64_t, kMaxDims>& lo,
                   std::array<int64_t, kMaxDims>& hi) {
  for (int d = 0; d < kMaxDims; ++d) {
    const SubAxis& a = s.axes[static_cast<size_t>(d)];
    lo[static_cast<size_t>(d)] = hi[static_cast<size_t>(d)] = 0;
    if (a.tap_offset.empty()) continue;  // a phase that no tap reaches (stride > kernel)
    const int64_t first = *std::min_element(a.tap_offset.begin(), a.tap_offset.end());
    const int64_t last = *std::max_element(a.tap_offset.begin(), a.tap_offset.end());
    int64_t l = 0, h = 0;
    while (l < a.extent && l * a.src_step + first < 0) ++l;
    while (h < a.extent && (a.extent - 1 - h) * a.src_step + last >= s.src_dims[d]) ++h;
    lo[static_cast<size_t>(d)] = l;
    hi[static_cast<size_t>(d)] = h;
  }
}

std::vector<GridBox> border_boxes(const SubConv& s, const std::array<int64_t, kMaxDims>& lo,
                                  const std::array<int64_t, kMaxDims>& hi) {
  // per axis the ranges [begin, end): lo single points, the middle (if any), hi single points
  std::array<std::vector<std::array<int64_t, 2>>, kMaxDims> cuts;
  for (int d = 0; d < kMaxDims; ++d) {
    const int64_t n = s.axes[static_cast<size_t>(d)].extent;
    const int64_t a = std::min(lo[static_cast<size_t>(d)], n);
    const int64_t b = std::max(a, n - hi[static_cast<size_t>(d)]);
    auto& c = cuts[static_cast<size_t>(d)];
    for (int64_t j = 0; j < a; ++j) c.push_back({j, j + 1});
    if (b > a) c.push_back({a, b});
    for (int64_t j = b; j < n; ++j) c.push_back({j, j + 1});
  }
  std::vector<GridBox> boxes;
  int64_t q = 0;
  for (const auto& z : cuts[0])
    for (const auto& y : cuts[1])
      for (const auto& x : cuts[2]) {
        const GridBox b{q, z[0], y[0], x[0], z[1] - z[0], y[1] - y[0], x[1] - x[0]};
        boxes.push_back(b);
        q += s.batch * b.nz * b.ny * b.nx;
      }
  return boxes;
}

void row_segments(const SubConv& s, const std::vector<GridBox>& boxes, int64_t q0, int64_t nc,
                  std::vector<Segment>& segs) {
  if (boxes.empty()) {
    row_segments(s, q0, nc, segs);
    return;
  }
  segs.clear();
  // the last box starting at or before q0
  auto bi = static_cast<size_t>(
      std::upper_bound(boxes.begin(), boxes.end(), q0,
                       [](int64_t q, const GridBox& b) { return q < b.q0; }) -
      boxes.begin() - 1);
  const int64_t q_end = q0 + nc;
  for (int64_t q = q0; q < q_end;) {
    const GridBox& b = boxes[bi];
    const int64_t b_end = b.q0 + s.batch * b.nz * b.ny * b.nx;
    if (q >= b_end) {
      ++bi;
      continue;
    }
    const int64_t l = q - b.q0, jx = l % b.nx, row = l / b.nx;
    const int64_t jy = row % b.ny, jz = (row / b.ny) % b.nz, n = row / (b.ny * b.nz);
    const int64_t len = std::min({b.nx - jx, q_end - q, b_end - q});
    segs.push_back({n, b.z0 + jz, b.y0 + jy, b.x0 + jx, len, q - q0});
    q += len;
  }
}

void k_rows(const SubConv& s, std::vector<KRow>& rows) {
  const int64_t taps = s.taps();
  rows.resize(static_cast<size_t>(s.Kc * taps));
  for (size_t r = 0; r < rows.size(); ++r) {
    const auto kk = static_cast<int64_t>(r);
    const int64_t c = kk / taps, t = kk % taps;
    const auto [tz, ty, tx] = s.tap_axes(t);
    const int64_t koff = (s.axes[0].tap_kernel[static_cast<size_t>(tz)] * s.kernel[1] +
                          s.axes[1].tap_kernel[static_cast<size_t>(ty)]) *
                             s.kernel[2] +
                         s.axes[2].tap_kernel[static_cast<size_t>(tx)];
    rows[r] = {c, t, tz, ty, tx, c * s.w_c + koff};
  }
}

namespace {

// Whether some point u < len of a run reading x0 + u * step (step >= 1) lies in [0, size):
// the first point at or right of x = 0, if the run has it, and its x.
bool run_reads_inside(int64_t x0, int64_t step, int64_t len, int64_t size) {
  const int64_t u = x0 >= 0 ? 0 : (-x0 + step - 1) / step;
  return u < len && x0 + u * step < size;
}

}  // namespace

TapReach tap_reach(const SubConv& s, const Segment& tile, int64_t t) {
  const auto [tz, ty, tx] = s.tap_axes(t);
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  TapReach r{tile.jz * az.src_step + az.tap_offset[static_cast<size_t>(tz)],
             tile.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(ty)],
             tile.jx0 * ax.src_step + ax.tap_offset[static_cast<size_t>(tx)], false};
  r.inside = r.z >= 0 && r.z < s.src_dims[0] && r.y >= 0 && r.y < s.src_dims[1] &&
             run_reads_inside(r.x0, ax.src_step, tile.len, s.src_dims[2]);
  return r;
}

void mark_taps_inside(const SubConv& s, const Segment& tile, char* mask) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const auto tz_n = static_cast<int64_t>(az.tap_offset.size());
  const auto ty_n = static_cast<int64_t>(ay.tap_offset.size());
  const auto tx_n = static_cast<int64_t>(ax.tap_offset.size());
  // x taps first
  constexpr int64_t kMaxXTaps = 64;
  char x_in[kMaxXTaps];
  char* xs = x_in;
  std::vector<char> x_more;
  if (tx_n > kMaxXTaps) {
    x_more.resize(static_cast<size_t>(tx_n));
    xs = x_more.data();
  }
  for (int64_t tx = 0; tx < tx_n; ++tx)
    xs[tx] = run_reads_inside(tile.jx0 * ax.src_step + ax.tap_offset[static_cast<size_t>(tx)],
                              ax.src_step, tile.len, s.src_dims[2])
                 ? 1
                 : 0;
  for (int64_t tz = 0; tz < tz_n; ++tz) {
    const int64_t z = tile.jz * az.src_step + az.tap_offset[static_cast<size_t>(tz)];
    if (z < 0 || z >= s.src_dims[0]) continue;
    for (int64_t ty = 0; ty < ty_n; ++ty) {
      const int64_t y = tile.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(ty)];
      if (y < 0 || y >= s.src_dims[1]) continue;
      char* row = mask + (tz * ty_n + ty) * tx_n;
      for (int64_t tx = 0; tx < tx_n; ++tx) row[tx] = static_cast<char>(row[tx] | xs[tx]);
    }
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
