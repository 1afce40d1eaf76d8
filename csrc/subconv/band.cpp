// The direct path's zero-padded source band (layout in internal.hpp): its shape, its fill
// from the source, and the row offsets of a K block into it.
#include <algorithm>
#include <climits>
#include <utility>

#include "subconv/internal.hpp"
#include "tconv/assert.hpp"
#include "tconv/copy.hpp"

namespace tconv::detail {

OffsetHull offset_hull(const std::vector<SubConv>& subs) {
  OffsetHull h;
  h.valid = !subs.empty();
  for (int a = 0; a < kMaxDims; ++a) {
    h.lo[a] = INT64_MAX;
    h.hi[a] = INT64_MIN;
  }
  for (const SubConv& s : subs)
    for (int a = 0; a < kMaxDims; ++a) {
      const SubAxis& ax = s.axes[a];
      if (ax.src_step != 1 || ax.extent != subs[0].axes[a].extent) h.valid = false;
      for (const int64_t o : ax.tap_offset) {
        h.lo[a] = std::min(h.lo[a], o);
        h.hi[a] = std::max(h.hi[a], o);
      }
    }
  for (int a = 0; a < kMaxDims; ++a) h.valid = h.valid && h.lo[a] <= h.hi[a];  // some tap
  return h;
}

namespace {

// band_shape without the row layout.
void band_extent(const SubConv& s, const std::vector<Segment>& tiles, int nr,
                 const OffsetHull& hull, Band& b, bool pitched) {
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  b.z_offset.clear();
  b.tz_plane.clear();
  b.phase.clear();
  b.tap_plane.clear();
  b.tap_shift.clear();
  // the points read run from the first tile's start to the end of the one reaching furthest
  // (a row tile reads nr points whatever its length; a pitched band holds its rows exactly)
  int64_t first = tiles.front().jx0, end = first;
  for (const Segment& t : tiles) {
    first = std::min(first, t.jx0);
    end = std::max(end, t.jx0 + (pitched ? t.len : nr));
  }
  if (hull.valid) {  // step 1 everywhere: one x phase, z planes and rows cover the hull
    b.tz_n = hull.hi[0] - hull.lo[0] + 1;
    for (int64_t i = 0; i < b.tz_n; ++i) b.z_offset.push_back(hull.lo[0] + i);
    for (const int64_t o : az.tap_offset) b.tz_plane.push_back(o - hull.lo[0]);
    b.y0 = tiles.front().jy + hull.lo[1];
    b.rows = tiles.back().jy - tiles.front().jy + hull.hi[1] - hull.lo[1] + 1;
    b.phase.push_back(0);
    for (const int64_t o : ax.tap_offset) {
      b.tap_plane.push_back(0);
      b.tap_shift.push_back(o);
    }
    b.x0 = first + hull.lo[2];
    b.width = end + hull.hi[2] - b.x0;
    // a pitched tile's columns run at most nr - 1 past the last row's end, and its x taps
    // less than a row further
    b.tail = pitched ? nr + b.width : 0;
    return;
  }
  TCONV_ASSERT(!pitched);
  b.tail = 0;
  const auto [oy_min, oy_max] = std::minmax_element(ay.tap_offset.begin(), ay.tap_offset.end());
  b.tz_n = static_cast<int64_t>(az.tap_offset.size());
  b.z_offset.assign(az.tap_offset.begin(), az.tap_offset.end());
  for (int64_t i = 0; i < b.tz_n; ++i) b.tz_plane.push_back(i);
  b.y0 = tiles.front().jy * ay.src_step + *oy_min;
  b.rows = (tiles.back().jy - tiles.front().jy) * ay.src_step + (*oy_max - *oy_min) + 1;
  const int64_t step = ax.src_step;
  int64_t q_min = 0, q_max = 0;
  for (size_t t = 0; t < ax.tap_offset.size(); ++t) {
    const int64_t q = floor_div(ax.tap_offset[t], step);
    const int64_t ph = ax.tap_offset[t] - q * step;
    auto it = std::find(b.phase.begin(), b.phase.end(), ph);
    if (it == b.phase.end()) it = b.phase.insert(b.phase.end(), ph);
    b.tap_plane.push_back(it - b.phase.begin());
    b.tap_shift.push_back(q);
    q_min = t == 0 ? q : std::min(q_min, q);
    q_max = t == 0 ? q : std::max(q_max, q);
  }
  b.x0 = first + q_min;
  b.width = end + q_max - b.x0;
}

// Channels ahead whose source lines fill_band prefetches.
constexpr int64_t kBandPrefetch = 2;

// Into l, whose vectors keep their capacity from task to task.
void row_layout(const Band& b, int64_t sx, int64_t step, RowLayout& l) {
  l.step = step;
  l.range.resize(static_cast<size_t>(b.phases()));
  l.both_lo = l.both_hi = 0;
  l.zero_spans.clear();
  l.edge_points.clear();
  l.deint_to.fill(0);
  for (int64_t p = 0; p < b.phases(); ++p) {
    const int64_t ph = b.phase[static_cast<size_t>(p)];
    int64_t lo = 0, hi = 0;
    if (ph < sx) {
      lo = std::clamp<int64_t>(-b.x0 + ceil_div(std::max<int64_t>(0, -ph), step), 0, b.width);
      hi = std::max(lo, std::min<int64_t>(b.width, ceil_div(sx - ph, step) - b.x0));
    }
    l.range[static_cast<size_t>(p)] = {lo, hi};
  }
  std::array<int64_t, 8> plane_of{};  // band plane of each residue
  if ((step == 2 || step == 4 || step == 8) && b.phases() == step) {
    l.both_hi = b.width;
    for (int64_t p = 0; p < b.phases(); ++p) {
      l.both_lo = std::max(l.both_lo, l.range[static_cast<size_t>(p)].first);
      l.both_hi = std::min(l.both_hi, l.range[static_cast<size_t>(p)].second);
      plane_of[static_cast<size_t>(b.phase[static_cast<size_t>(p)])] = p;
    }
    l.both_hi = std::max(l.both_hi, l.both_lo);
  }
  l.deint = l.both_hi > l.both_lo;
  if (!l.deint) return;
  for (int64_t p = 0; p < b.phases(); ++p) {
    const auto [lo, hi] = l.range[static_cast<size_t>(p)];
    const int64_t base = p * b.width;
    const int64_t off = b.x0 * step + b.phase[static_cast<size_t>(p)];
    if (lo > 0) l.zero_spans.emplace_back(base, base + lo);
    if (hi < b.width) l.zero_spans.emplace_back(base + hi, base + b.width);
    // (band index, source offset); off + u * step >= 0 for u >= lo
    for (int64_t u = lo; u < l.both_lo; ++u) l.edge_points.emplace_back(base + u, off + u * step);
    for (int64_t u = l.both_hi; u < hi; ++u) l.edge_points.emplace_back(base + u, off + u * step);
  }
  for (int64_t ph = 0; ph < step; ++ph)
    l.deint_to[static_cast<size_t>(ph)] = plane_of[static_cast<size_t>(ph)] * b.width + l.both_lo;
}

// One band row from the source row `in` (in the source).
template <typename T>
void fill_row(const Band& b, const RowLayout& l, const T* in, T* out_row) {
  const int64_t step = l.step;
  if (l.deint) {
    for (const auto& [zb, ze] : l.zero_spans) std::fill(out_row + zb, out_row + ze, T(0));
    for (const auto& [di, si] : l.edge_points) out_row[di] = in[si];
    std::array<T*, 8> to{};
    for (int64_t ph = 0; ph < step; ++ph)
      to[static_cast<size_t>(ph)] = out_row + l.deint_to[static_cast<size_t>(ph)];
    const T* from = in + (b.x0 + l.both_lo) * step;
    if (step == 2) {
      deinterleave<T, 2>(from, to.data(), l.both_hi - l.both_lo);
    } else if (step == 4) {
      deinterleave<T, 4>(from, to.data(), l.both_hi - l.both_lo);
    } else {
      deinterleave<T, 8>(from, to.data(), l.both_hi - l.both_lo);
    }
    return;
  }
  for (int64_t p = 0; p < b.phases(); ++p) {
    T* out = out_row + p * b.width;
    const auto [lo, hi] = l.range[static_cast<size_t>(p)];
    // out[u] = in[off + u * step]; off + u * step >= 0 for u >= lo (no pointer is formed
    // before the source)
    const int64_t off = b.x0 * step + b.phase[static_cast<size_t>(p)];
    std::fill(out, out + lo, T(0));
    if (step == 1) {
      std::copy(in + off + lo, in + off + hi, out + lo);
    } else {
      for (int64_t u = lo; u < hi; ++u) out[u] = in[off + u * step];
    }
    std::fill(out + hi, out + b.width, T(0));
  }
}

}  // namespace

void band_shape(const SubConv& s, const std::vector<Segment>& tiles, int nr, const OffsetHull& hull,
                Band& b, bool pitched) {
  band_extent(s, tiles, nr, hull, b, pitched);
  row_layout(b, s.src_dims[2], s.axes[2].src_step, b.layout);
}

void pitched_tiles(const std::vector<Segment>& segs, int64_t pitch, int nr,
                   std::vector<Segment>& tiles, std::vector<Segment>& store) {
  tiles.clear();
  store.clear();
  const Segment& f = segs.front();
  int64_t x_first = f.jx0;
  for (const Segment& seg : segs) x_first = std::min(x_first, seg.jx0);
  int64_t end = 0;
  for (const Segment& seg : segs) {
    TCONV_ASSERT(seg.n == f.n && seg.jz == f.jz && seg.jy >= f.jy &&
                 seg.jx0 - x_first + seg.len <= pitch);
    const int64_t t0 = (seg.jy - f.jy) * pitch + seg.jx0 - x_first;
    store.push_back({seg.n, seg.jz, seg.jy, seg.jx0, seg.len, t0});
    end = std::max(end, t0 + seg.len);
  }
  for (int64_t t0 = 0; t0 < end; t0 += nr) tiles.push_back({f.n, f.jz, f.jy, x_first + t0, nr, t0});
}

// Calls fn(row, bytes) for each piece of a source row that the band's channels [c_begin,
// c_end) read: the rows of its z planes inside the source, their x range (every phase)
// clamped to the row.  Always inlined (as a prefetching fn must be: GCC drops calls to a
// function that only prefetches).
template <typename T, class Fn>
inline __attribute__((always_inline)) void for_each_source_row(
    const SubConv& s, const T* src, int64_t group, const Segment& first, const Band& b,
    int64_t c_begin, int64_t c_end, Fn&& fn) {
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t step = s.axes[2].src_step;
  const T* src_n = src + (first.n * s.src_channels + group * s.Kc) * sz * sy * sx;
  const int64_t x_lo = std::clamp<int64_t>(b.x0 * step, 0, sx);
  const int64_t x_hi = std::clamp<int64_t>((b.x0 + b.width) * step, x_lo, sx);
  const int64_t y_lo = std::clamp<int64_t>(b.y0, 0, sy);
  const int64_t y_hi = std::clamp<int64_t>(b.y0 + b.rows, y_lo, sy);
  if (x_hi == x_lo) return;
  for (int64_t c = c_begin; c < c_end; ++c)
    for (int64_t tz = 0; tz < b.tz_n; ++tz) {
      const int64_t z = first.jz * s.axes[0].src_step + b.z_offset[static_cast<size_t>(tz)];
      if (z < 0 || z >= sz) continue;
      for (int64_t y = y_lo; y < y_hi; ++y)
        fn(src_n + (c * sz + z) * sy * sx + y * sx + x_lo, (x_hi - x_lo) * int64_t(sizeof(T)));
    }
}

template <typename T>
void fill_band(const SubConv& s, const T* src, int64_t group, const Segment& first,
               const Band& b, int64_t c_begin, int64_t c_end, T* band) {
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const SubAxis& az = s.axes[0];
  const T* src_n = src + (first.n * s.src_channels + group * s.Kc) * plane;
  const RowLayout& layout = b.layout;
  const int64_t row_size = b.phases() * b.width;
  // The source lines of channel c + kBandPrefetch are prefetched while channel c is copied:
  // each channel's rows are a separate region (a plane apart) that the hardware prefetcher
  // only picks up once the copy reaches it, and large sources come from DRAM (DCGAN 64->3:
  // 17 MB of input, its band fill was a fifth of the forward's time).
  for (int64_t c = c_begin; c < c_end; ++c) {
    if (c + kBandPrefetch < c_end)
      for_each_source_row(s, src, group, first, b, c + kBandPrefetch, c + kBandPrefetch + 1,
                          [](const T* row, int64_t bytes) __attribute__((always_inline)) {
                            prefetch_bytes(row, bytes);
                          });
    for (int64_t tz = 0; tz < b.tz_n; ++tz) {
      const int64_t z = first.jz * az.src_step + b.z_offset[static_cast<size_t>(tz)];
      for (int64_t r = 0; r < b.rows; ++r) {
        const int64_t y = b.y0 + r;
        T* out_row = band + (((c - c_begin) * b.tz_n + tz) * b.rows + r) * row_size;
        if (z < 0 || z >= sz || y < 0 || y >= sy) {
          std::fill(out_row, out_row + row_size, T(0));
          continue;
        }
        fill_row(b, layout, src_n + (c * sz + z) * sy * sx + y * sx, out_row);
      }
    }
  }
  std::fill(band + b.values(c_end - c_begin) - b.tail, band + b.values(c_end - c_begin), T(0));
}

template <typename T>
void band_source_lines(const SubConv& s, const T* src, int64_t group, const Segment& first,
                       const Band& b, int64_t c_begin, int64_t c_end, LineQueue& q) {
  for_each_source_row(s, src, group, first, b, c_begin, c_end,
                      [&q](const T* row, int64_t bytes) { q.add(row, bytes); });
}

void band_row_offsets(const SubConv& s, const Segment& first_tile, KRows rows, const Band& b,
                      int64_t c_begin, BandOffsets& out) {
  // band holds channels from c_begin on (see fill_band)
  const SubAxis& ay = s.axes[1];
  const int64_t line = b.phases() * b.width;  // one band row
  // the first tile's row and column in the band
  const int64_t y_at = first_tile.jy * ay.src_step - b.y0, x_at = first_tile.jx0 - b.x0;
  const BandOffsets::Key key{rows.first, rows.size(), c_begin, b.tz_n, b.rows, b.phases(),
                             b.width, y_at, x_at};
  if (out.valid && out.key == key) return;
  out.key = key;
  out.valid = true;
  out.row_off.resize(rows.size());
  for (size_t k = 0; k < rows.size(); ++k) {
    const KRow& row = rows[k];
    const auto tx = static_cast<size_t>(row.tx);
    out.row_off[k] =
        (((row.channel - c_begin) * b.tz_n + b.tz_plane[static_cast<size_t>(row.tz)]) * b.rows +
         ay.tap_offset[static_cast<size_t>(row.ty)] + y_at) * line +
        b.tap_plane[tx] * b.width + b.tap_shift[tx] + x_at;
  }
}

int64_t tile_shift(const SubConv& s, const Band& b, const Segment& first_tile, const Segment& t) {
  return (t.jy - first_tile.jy) * s.axes[1].src_step * b.phases() * b.width + t.jx0 -
         first_tile.jx0;
}

template void band_source_lines<float>(const SubConv&, const float*, int64_t, const Segment&,
                                       const Band&, int64_t, int64_t, LineQueue&);
template void band_source_lines<double>(const SubConv&, const double*, int64_t, const Segment&,
                                        const Band&, int64_t, int64_t, LineQueue&);
template void fill_band<float>(const SubConv&, const float*, int64_t, const Segment&, const Band&,
                                int64_t, int64_t, float*);
template void fill_band<double>(const SubConv&, const double*, int64_t, const Segment&, const Band&,
                                int64_t, int64_t, double*);

}  // namespace tconv::detail
