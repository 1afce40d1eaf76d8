// Weight packing (A panels, shared by the threads) and the packed input: B panels of a
// task's source pixels, im2col with zeros (the path for rows too short for tiles of nr).
#include <algorithm>
#include <climits>

#include "subconv/internal.hpp"
#include "tconv/copy.hpp"

namespace tconv::detail {

namespace {

// Rows k < kc of one piece; row k reads tap (tap0 + k) % taps of channel (tap0 + k) / taps
// (channel 0 at src_c, channels `plane` apart).  Tap by tap, so each inner loop has one kind
// of read (full, zero or border) and just steps through the channels.
template <typename T, int LEN, int STEP>
void pack_piece(const T* src_c, int64_t plane, int64_t taps, int64_t tap0, int64_t kc,
                const TapRead* reads, int nr, T* dst) {
  const int64_t dk = taps * nr;
  for (int64_t t = 0; t < taps; ++t) {
    const int64_t k = (t - tap0 + taps) % taps;
    if (k >= kc) continue;
    const int64_t n = ceil_div(kc - k, taps);  // rows of this tap
    const TapRead& rd = reads[t];
    const T* p = src_c + (tap0 + k) / taps * plane + rd.offset;
    T* d = dst + k * nr;
    if (rd.lo == 0 && rd.hi == LEN) {
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) copy_fixed<T, STEP, LEN>(p, d);
    } else if (rd.lo == rd.hi) {
      for (int64_t i = 0; i < n; ++i, d += dk) {
#pragma GCC unroll 32
        for (int u = 0; u < LEN; ++u) d[u] = T(0);
      }
    } else if (rd.lo == 1 && rd.hi == LEN) {  // one point over the left edge (padding 1)
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
        d[0] = T(0);
        copy_fixed<T, STEP, LEN - 1>(p, d + 1);
      }
    } else if (rd.lo == 0 && rd.hi == LEN - 1) {  // one point over the right edge
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
        copy_fixed<T, STEP, LEN - 1>(p, d);
        d[LEN - 1] = T(0);
      }
    } else {
      const int64_t lo = rd.lo, hi = rd.hi;
      for (int64_t i = 0; i < n; ++i, p += plane, d += dk) {
#pragma GCC unroll 32
        for (int u = 0; u < LEN; ++u) d[u] = T(0);
        for (int64_t u = lo; u < hi; ++u) d[u] = p[(u - lo) * STEP];
      }
    }
  }
}

template <typename T>
void pack_piece_any(const T* src_c, int64_t plane, int64_t taps, int64_t tap0, int64_t kc,
                    const TapRead* reads, int nr, int64_t len, int64_t step, T* dst) {
  for (int64_t k = 0; k < kc; ++k, dst += nr) {
    const TapRead& rd = reads[(tap0 + k) % taps];
    const T* p = src_c + (tap0 + k) / taps * plane + rd.offset;
    for (int64_t u = 0; u < rd.lo; ++u) dst[u] = T(0);
    if (step == 1) {
      for (int64_t u = rd.lo; u < rd.hi; ++u) dst[u] = p[u - rd.lo];
    } else {
      for (int64_t u = rd.lo; u < rd.hi; ++u) dst[u] = p[(u - rd.lo) * step];
    }
    for (int64_t u = rd.hi; u < len; ++u) dst[u] = T(0);
  }
}

}  // namespace

template <typename T>
void pack_a_panels(const std::vector<SubConv>& subs, const T* w, int64_t group, int64_t m0,
                   int64_t r, const std::vector<KRows>& rows, const std::vector<T*>& panels) {
  const SubConv& s0 = subs[0];  // every sub-convolution has the same weight strides
  const T* wm = w + group * s0.w_group + m0 * s0.w_m;
  if (s0.w_m > s0.w_c) {
    // i outer: row m of W is read along its channels and taps (nearly contiguous).
    for (size_t si = 0; si < subs.size(); ++si) {
      if (panels[si] == nullptr) continue;
      const KRows& rs = rows[si];
      const auto kc = static_cast<int64_t>(rs.size());
      for (int64_t i = 0; i < r; ++i) {
        const T* wi = wm + i * s0.w_m;
        for (int64_t k = 0; k < kc; ++k)
          panels[si][k * r + i] = wi[rs[static_cast<size_t>(k)].weight_offset];
      }
    }
    return;
  }
  // k outer, channel by channel across the sub-convolutions: the taps of W[c][m0..m0+r) are
  // r cache lines that every phase reads, so all phases take them while they are in L1
  // (channels lie M * taps elements apart: a few channels' lines already collide in L1).
  int64_t c_lo = INT64_MAX, c_hi = -1;
  for (size_t si = 0; si < subs.size(); ++si) {
    if (panels[si] == nullptr || rows[si].empty()) continue;
    c_lo = std::min(c_lo, rows[si].front().channel);
    c_hi = std::max(c_hi, rows[si].back().channel);
  }
  std::vector<size_t> cursor(subs.size(), 0);  // next row of each sub-convolution
  // The channels' lines are M * taps elements apart: too far for the hardware prefetcher.
  const int64_t taps_all = s0.kernel[0] * s0.kernel[1] * s0.kernel[2];
  constexpr int64_t kAhead = 4;
  for (int64_t c = c_lo; c <= c_hi; ++c) {
    if (c + kAhead <= c_hi)
      for (int64_t i = 0; i < r; ++i) {
        const T* line = wm + (c + kAhead) * s0.w_c + i * s0.w_m;
        __builtin_prefetch(line);
        __builtin_prefetch(line + taps_all - 1);
      }
    for (size_t si = 0; si < subs.size(); ++si) {
      if (panels[si] == nullptr) continue;
      const KRows& rs = rows[si];
      T* panel = panels[si];
      for (size_t& k = cursor[si]; k < rs.size() && rs[k].channel == c; ++k) {
        const T* wk = wm + rs[k].weight_offset;
        for (int64_t i = 0; i < r; ++i) panel[static_cast<int64_t>(k) * r + i] = wk[i * s0.w_m];
      }
    }
  }
}

template <typename T>
void pack_b(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& segs,
            KRows rows, int64_t nc, int nr, T* bp, std::vector<TapRead>& reads) {
  const int64_t kc = static_cast<int64_t>(rows.size());
  const int64_t ncp = round_up(nc, nr);
  for (int64_t t = nc; t < ncp; ++t) {
    T* col = bp + (t / nr) * kc * nr + t % nr;
    for (int64_t k = 0; k < kc; ++k) col[k * nr] = T(0);
  }
  const SubAxis &az = s.axes[0], &ay = s.axes[1], &ax = s.axes[2];
  const int64_t sz = s.src_dims[0], sy = s.src_dims[1], sx = s.src_dims[2];
  const int64_t plane = sz * sy * sx;
  const int64_t step = ax.src_step;
  const auto tx_n = static_cast<int64_t>(ax.tap_offset.size());
  const auto ty_n = static_cast<int64_t>(ay.tap_offset.size());
  const int64_t taps = s.taps();
  reads.resize(static_cast<size_t>(taps));
  // the K block's rows are consecutive k = c * taps + t (k_rows)
  const int64_t tap0 = kc > 0 ? rows.front().tap : 0;
  const int64_t c0 = kc > 0 ? rows.front().channel : 0;
  for (const Segment& seg : segs) {
    for (int64_t u0 = 0; u0 < seg.len;) {
      const int64_t t = seg.t0 + u0;
      const int64_t len = std::min<int64_t>(seg.len - u0, nr - t % nr);
      const int64_t jx0 = seg.jx0 + u0;
      for (int64_t tp = 0; tp < taps; ++tp) {
        const int64_t tx = tp % tx_n, ty = (tp / tx_n) % ty_n, tz = tp / (tx_n * ty_n);
        const int64_t z = seg.jz * az.src_step + az.tap_offset[static_cast<size_t>(tz)];
        const int64_t y = seg.jy * ay.src_step + ay.tap_offset[static_cast<size_t>(ty)];
        const int64_t x0 = jx0 * step + ax.tap_offset[static_cast<size_t>(tx)];
        TapRead rd{0, 0, 0};
        if (z >= 0 && z < sz && y >= 0 && y < sy) {
          // valid u: 0 <= x0 + u * step < sx
          const int64_t lo = x0 >= 0 ? 0 : ceil_div(-x0, step);
          const int64_t hi = x0 >= sx ? 0 : std::min<int64_t>(len, ceil_div(sx - x0, step));
          if (lo < hi) rd = {(z * sy + y) * sx + x0 + lo * step, lo, hi};
        }
        reads[static_cast<size_t>(tp)] = rd;
      }
      const T* src_c = src + (seg.n * s.src_channels + group * s.Kc + c0) * plane;
      T* dst = bp + (t / nr) * kc * nr + t % nr;
      const TapRead* rd = reads.data();
      if (len == 4 && step == 1) {
        pack_piece<T, 4, 1>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 8 && step == 1) {
        pack_piece<T, 8, 1>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 16 && step == 1) {
        pack_piece<T, 16, 1>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 4 && step == 2) {
        pack_piece<T, 4, 2>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else if (len == 8 && step == 2) {
        pack_piece<T, 8, 2>(src_c, plane, taps, tap0, kc, rd, nr, dst);
      } else {
        pack_piece_any(src_c, plane, taps, tap0, kc, rd, nr, len, step, dst);
      }
      u0 += len;
    }
  }
}

template void pack_a_panels<float>(const std::vector<SubConv>&, const float*, int64_t, int64_t, int64_t,
                                    const std::vector<KRows>&, const std::vector<float*>&);
template void pack_a_panels<double>(const std::vector<SubConv>&, const double*, int64_t, int64_t, int64_t,
                                    const std::vector<KRows>&, const std::vector<double*>&);
template void pack_b<float>(const SubConv&, const float*, int64_t, const std::vector<Segment>&, KRows,
                             int64_t, int, float*, std::vector<TapRead>&);
template void pack_b<double>(const SubConv&, const double*, int64_t, const std::vector<Segment>&, KRows,
                             int64_t, int, double*, std::vector<TapRead>&);

}  // namespace tconv::detail
