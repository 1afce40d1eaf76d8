// The sub-convolution executor: runs a SubconvPlan (plan.cpp) in one parallel region, slab by
// slab: pack the slab's A panels (shared), then run its rounds of tasks.  It decides nothing
// that the plan fixes; per task it applies the plan's rule task_input and the two store and
// B-reuse rules below, which depend only on the task and the call's arguments.
#include <algorithm>
#include <array>

#include <omp.h>

#include "subconv/internal.hpp"
#include "tconv/cancel.hpp"

namespace tconv {
namespace detail {
namespace {

// Most output channels for which the direct path's A panels read B rows straight from the
// band (more: each tile's rows are first copied into one packed panel).  144 = twelve 12-row
// panels: a 256-channel forward cut into two weight slabs (132 + 124 rows) reads both in
// place (docs/perf-log.md, 2026-12-05).
constexpr int64_t kMaxInPlaceRows = 144;

// One call: its arguments, its plan and the kernels the plan chose.
template <typename T>
struct Call {
  const std::vector<SubConv>& subs;
  const SubconvPlan& p;
  const T *src, *w, *bias;
  T* dst;
  bool check;
  const T* a_packed;
  int64_t dst_plane;
  TileKernels<T> k;  // the plan's tile set
  Cancellation* cancel;
};

// A thread's scratch, reused across its tasks.
template <typename T>
struct Worker {
  Scratch<T> b_buf, c_buf, band_buf;
  std::array<Scratch<T>, kMaxXPhases - 1> c_wait;  // tiles of x phases 0 .. xs - 2
  // The key of the whole-call band that band_buf holds (band_key_valid: it holds one).
  // Every other write into band_buf (a per-K-block fill) clears band_key_valid.
  std::array<int64_t, 9> band_key{};
  bool band_key_valid = false;
  Scratch<const T*> ptr_buf;
  std::vector<Segment> segs, tiles;
  std::vector<Segment> pitch_store;  // pitched tiles: the segments store_tile writes
  std::vector<KRows> unit_rows;
  std::vector<T*> unit_panel;
  std::vector<TapRead> tap_reads;
  std::vector<BandOffsets> row_parts;  // band_row_offsets' tables, one per K block
  LineQueue ahead;  // kBandPerBlock: the next K block's source lines (direct_block)
  // Direct path: per tile, which taps read inside the source for some of its points
  // (tile_taps[t * taps + tap]; empty when every tap of every tile does), and per K block the
  // rows each tile multiplies: list_n[t] of them, listed[list_at[t] ..] unless that is all
  // rows (a tile all of whose taps read inside lists none); list_at empty: every tile
  // multiplies all rows.
  std::vector<char> tile_taps;
  std::vector<int64_t> listed, list_at, list_n;
  std::vector<int64_t> listed_off;  // a tile's listed rows' B offsets (in-place band rows)
  // border-sorted packed path: the listed rows' offsets in their whole packed B panels
  // (listed_b[l] = listed[l] * nr)
  std::vector<int64_t> listed_b;
  std::vector<int64_t> panel_off;   // l * nr: row l of a packed B panel
  std::vector<T*> tile_dst;
  std::vector<char> panel_broken;     // stores_in_kernels: a packed panel not straight to dst
  std::vector<Segment> acc_pieces;    // pieces of the packed panels stored by store_tile
  std::vector<PackTap> pack_taps;
  std::vector<T> zeros;
  TaskInput input;  // the current task's (task_input)
  NonfiniteBits<T> bad = 0;
  Epilogue<T> epilogue;  // epilogue_at's
  int kernel_bad = 0;    // a kernel's epilogue stored Inf or NaN
};

// One task being run: where its input, accumulator and packed A are.
template <typename T>
struct TaskRun {
  const Task& task;
  const SubConv& s;
  int64_t slab_m0, mc, ncp;
  const TaskInput& in;  // the worker's
  const T* band_data;  // kBand: the task's band
  T* acc;
  bool to_dst;         // the micro-kernels store straight into dst (the tiles tile_dst has)
  const T* a_group;    // packed A of the task's group
};

// Packs A unit u of the slab starting at row slab_m0 (slab_rows rows).
template <typename T>
void pack_unit(const Call<T>& c, Worker<T>& wk, int64_t u, int64_t slab_m0, int64_t slab_rows,
               T* a_packed) {
  const SubconvPlan& p = c.p;
  const auto [g, k0, p0] = p.a_units[static_cast<size_t>(u)];
  // this K block's rows of each sub-convolution (none: no tasks, or K ends before k0)
  for (size_t si = 0; si < c.subs.size(); ++si) {
    const auto k_total = static_cast<int64_t>(p.all_rows[si].size());
    wk.unit_rows[si] = !p.active[si] || k0 >= k_total
                           ? KRows{}
                           : KRows{p.all_rows[si].data() + k0,
                                   static_cast<size_t>(std::min(p.kc, k_total - k0))};
  }
  // the panels (cut by tile_rows from the slab's end) that start in this unit's range
  for (int64_t i0 = 0, r = 0; i0 < std::min(slab_rows, (p0 + p.panels_per_unit) * p.mr);
       i0 += r) {
    r = tile_rows(slab_rows - i0, p.mr);
    if (i0 < p0 * p.mr) continue;
    for (size_t si = 0; si < c.subs.size(); ++si) {
      const auto kc = static_cast<int64_t>(wk.unit_rows[si].size());
      wk.unit_panel[si] =
          kc == 0 ? nullptr
                  : a_packed + p.a_off[si] +
                        (g * static_cast<int64_t>(p.all_rows[si].size()) + k0) * p.ms + i0 * kc;
    }
    pack_a_panels(c.subs, c.w, g, slab_m0 + i0, r, wk.unit_rows, wk.unit_panel);
  }
}

// The task's band for all channels (kBand), filled unless this thread's last one is it.
template <typename T>
const T* whole_band(const Call<T>& c, Worker<T>& wk, const Task& task, const SubConv& s,
                    const Band& band) {
  // A hull-shaped band depends only on the grid block: reuse this thread's last one.
  const std::array<int64_t, 9> key{task.group, wk.tiles.front().n, wk.tiles.front().jz,
                                   band.y0,    band.rows,           band.x0,
                                   band.width, band.tz_n,           band.tail};
  T* data = wk.band_buf.get(band.values(s.Kc));
  if (!c.p.hull.valid || !wk.band_key_valid || key != wk.band_key) {
    fill_band(s, c.src, task.group, wk.tiles.front(), band, 0, s.Kc, data);
    wk.band_key = key;
    wk.band_key_valid = c.p.hull.valid;
  }
  return data;
}

// Calls fn(piece) for the pieces of segs cut at the packed B panels' boundaries (every nr
// columns): each piece a Segment of one panel (panel piece.t0 / nr).
template <class Fn>
void for_each_panel_piece(const std::vector<Segment>& segs, int64_t nr, Fn&& fn) {
  for (const Segment& seg : segs)
    for (int64_t u = 0; u < seg.len;) {
      const int64_t col = seg.t0 + u, len = std::min<int64_t>(seg.len - u, nr - col % nr);
      fn(Segment{seg.n, seg.jz, seg.jy, seg.jx0 + u, len, col});
      u += len;
    }
}

// stores_in_kernels for row tiles: all of them whole (nr points), each at its place in dst.
template <typename T>
bool row_tiles_in_dst(const Call<T>& c, Worker<T>& wk, const SubConv& s, const Task& task) {
  for (const Segment& t : wk.tiles)
    if (t.len != c.p.nr) return false;
  wk.tile_dst.resize(wk.tiles.size());
  for (size_t t = 0; t < wk.tiles.size(); ++t)
    wk.tile_dst[t] = segment_dst(s, c.dst, task.group, task.m0, wk.tiles[t]);
  return true;
}

// Whole tiles of unit-stride destination rows: the micro-kernels of the last K block write
// straight into dst (rows dst_plane apart), so the output lines are taken while the task
// multiplies instead of all at the store (DCGAN 64->3 grad_input writes 16.7 MB).  That
// kernel adds the earlier blocks' sums (kept in the accumulator), the bias and the Inf/NaN
// test to the values it stores (epilogue_at).  Same sums in the same order, the bias added
// to the sum as store_tile adds it: the same bits as through store_tile.
// The direct path's row tiles are whole when each has nr points (all of them, or none go
// straight to dst; pitched tiles never: their columns are not consecutive places of dst);
// a packed path's panel (columns t * nr .. t * nr + nr - 1 of its
// segments) when its nr columns are consecutive places of dst (a gather's panels inside one
// image: its grid rows follow each other in dst), each panel on its own: the others (a last
// panel of fewer columns, or one that spans two images or two border-sorted boxes) go
// through the accumulator and store_tile.  Fills wk.tile_dst (nullptr: not straight to dst)
// when it returns true.
template <typename T>
bool stores_in_kernels(const Call<T>& c, Worker<T>& wk, const SubConv& s, const Task& task,
                       const TaskInput& in) {
  const int64_t nr = c.p.nr;
  // rows dst_plane apart must not overlap a tile's nr columns (the kernels' ldc >= nr): a
  // plane of fewer than nr places (one channel, tiles running on into the next image) too
  if (c.p.xs != 0 || s.Kc * s.taps() == 0 || s.axes[2].dst_step != 1 || c.dst_plane < nr)
    return false;
  if (in.mode != Input::kPacked) return !in.pitched && row_tiles_in_dst(c, wk, s, task);
  const int64_t panels = ceil_div(task.nc, nr);
  wk.tile_dst.assign(static_cast<size_t>(panels), nullptr);
  wk.panel_broken.assign(static_cast<size_t>(panels), 0);
  if (task.nc % nr != 0) wk.panel_broken.back() = 1;  // a last panel of fewer columns
  for_each_panel_piece(wk.segs, nr, [&](const Segment& piece) {
    T* at = segment_dst(s, c.dst, task.group, task.m0, piece);
    const int64_t off = piece.t0 % nr;
    const auto t = static_cast<size_t>(piece.t0 / nr);
    if (off == 0) {
      wk.tile_dst[t] = at;
    } else if (wk.tile_dst[t] + off != at) {
      wk.panel_broken[t] = 1;  // the panel's columns are not consecutive places of dst
    }
  });
  bool any = false;
  for (size_t t = 0; t < wk.tile_dst.size(); ++t) {
    if (wk.panel_broken[t] != 0) wk.tile_dst[t] = nullptr;
    any = any || wk.tile_dst[t] != nullptr;
  }
  return any;
}

// Whether tile t's C tile is in dst (tile_dst) rather than in the accumulator.
template <typename T>
bool in_dst(const Worker<T>& wk, const TaskRun<T>& tr, int64_t t) {
  return tr.to_dst && wk.tile_dst[static_cast<size_t>(t)] != nullptr;
}

// The accumulator's C tile of rows i0.. and tile (nr columns) t.
template <typename T>
T* acc_at(const Call<T>& c, const TaskRun<T>& tr, int64_t i0, int64_t t) {
  return tr.acc + i0 * tr.ncp + t * c.p.nr;
}

// Where a K block writes the C tile of rows i0.. and tile t: a tile in dst only on the last K
// block; the earlier blocks' sums wait in the accumulator, contiguous (dst's rows, planes
// apart, often share L1 sets: read back from there, every block would miss L1).
template <typename T>
T* c_at(const Call<T>& c, const Worker<T>& wk, const TaskRun<T>& tr, bool last, int64_t i0,
        int64_t t) {
  return last && in_dst(wk, tr, t) ? wk.tile_dst[static_cast<size_t>(t)] + i0 * c.dst_plane
                                   : acc_at(c, tr, i0, t);
}

// The row stride of c_at's tile.
template <typename T>
int64_t ldc_at(const Call<T>& c, const Worker<T>& wk, const TaskRun<T>& tr, bool last,
               int64_t t) {
  return last && in_dst(wk, tr, t) ? c.dst_plane : tr.ncp;
}

// The epilogue of the kernel that writes rows [i0, i0 + r) of tile t (nullptr: none): on the
// last K block of a tile in dst, the earlier blocks' sums from the accumulator (accumulate),
// the bias and the Inf/NaN test that store_tile would apply (tiles are whole: nr values),
// done by the kernel on the values it stores.
template <typename T>
const Epilogue<T>* epilogue_at(const Call<T>& c, Worker<T>& wk, const TaskRun<T>& tr,
                               bool last, int accumulate, int64_t i0, int64_t t) {
  if (!last || !in_dst(wk, tr, t)) return nullptr;  // else store_tile's
  if (c.bias == nullptr && !c.check && accumulate == 0) return nullptr;
  wk.epilogue.bias =
      c.bias != nullptr ? c.bias + tr.task.group * tr.s.M + tr.task.m0 + i0 : nullptr;
  wk.epilogue.nonfinite = c.check ? &wk.kernel_bad : nullptr;
  wk.epilogue.partial = accumulate != 0 ? acc_at(c, tr, i0, t) : nullptr;
  wk.epilogue.ld_partial = tr.ncp;
  return &wk.epilogue;
}

// Which taps of s read inside the source for some point of each tile (wk.tile_taps), left
// empty when all of them do (once per task, so that a K block need not look).
template <typename T>
void tile_taps(const SubConv& s, Worker<T>& wk) {
  const int64_t taps = s.taps();
  wk.tile_taps.assign(wk.tiles.size() * static_cast<size_t>(taps), 0);
  for (size_t ti = 0; ti < wk.tiles.size(); ++ti)
    mark_taps_inside(s, wk.tiles[ti], wk.tile_taps.data() + ti * static_cast<size_t>(taps));
  if (std::find(wk.tile_taps.begin(), wk.tile_taps.end(), 0) == wk.tile_taps.end())
    wk.tile_taps.clear();
}

// Border-sorted packed path (p.boxes; segs: the task's segments) and pitched tiles (segs:
// pitch_store): which taps read inside the source for some column of each B panel or tile
// (columns t * nr .. t * nr + nr - 1 of segs; columns no segment has read nothing) into
// wk.tile_taps, left empty when every panel needs every tap.
template <typename T>
void panel_taps(const SubConv& s, Worker<T>& wk, const std::vector<Segment>& segs,
                int64_t panels, int nr) {
  const int64_t taps = s.taps();
  wk.tile_taps.assign(static_cast<size_t>(panels * taps), 0);
  for_each_panel_piece(segs, nr, [&](const Segment& piece) {
    mark_taps_inside(s, piece, wk.tile_taps.data() + piece.t0 / nr * taps);
  });
  if (std::find(wk.tile_taps.begin(), wk.tile_taps.end(), 0) == wk.tile_taps.end())
    wk.tile_taps.clear();
}

// How many rows of the K block (kc rows) tile t multiplies.
template <typename T>
int64_t listed_count(const Worker<T>& wk, size_t t, int64_t kc) {
  return wk.list_at.empty() ? kc : wk.list_n[t];
}

// The rows of K block `rows` that each of `units` tiles (or packed B panels) multiplies
// (wk.listed, wk.list_at): those whose tap reads inside the source for some point of the
// tile.  The others read only zeros: their products are exact zeros, which leave a sum
// started from +0 unchanged, so skipping them keeps every sum's bits.  list_at stays empty
// when every tile multiplies every row.
template <typename T>
void list_rows(const SubConv& s, Worker<T>& wk, KRows rows, size_t units) {
  wk.list_at.clear();
  wk.list_n.clear();
  if (wk.tile_taps.empty()) return;
  const auto taps = static_cast<size_t>(s.taps());
  wk.listed.clear();
  for (size_t t = 0; t < units; ++t) {
    const char* inside = wk.tile_taps.data() + t * taps;
    wk.list_at.push_back(static_cast<int64_t>(wk.listed.size()));
    if (std::find(inside, inside + taps, 0) == inside + taps) {  // every row
      wk.list_n.push_back(static_cast<int64_t>(rows.size()));
      continue;
    }
    for (size_t k = 0; k < rows.size(); ++k)
      if (inside[rows[k].tap] != 0) wk.listed.push_back(static_cast<int64_t>(k));
    wk.list_n.push_back(static_cast<int64_t>(wk.listed.size()) - wk.list_at.back());
  }
}

// The band the K block reads (rows: its rows): the task's, or with kBandPerBlock this K
// block's channels of it, filled now (their first channel in c_begin).
template <typename T>
const T* block_band(const Call<T>& c, Worker<T>& wk, const TaskRun<T>& tr, KRows rows,
                    int64_t& c_begin) {
  c_begin = 0;
  if (tr.in.mode != Input::kBandPerBlock) return tr.band_data;
  c_begin = rows.front().channel;
  const int64_t c_end = rows.back().channel + 1;
  T* data = wk.band_buf.get(tr.in.band.values(c_end - c_begin));
  // band_buf no longer holds the band of band_key: a later task with that key must fill
  // it again (it read this K block's channels of another grid block)
  wk.band_key_valid = false;
  fill_band(tr.s, c.src, tr.task.group, wk.tiles.front(), tr.in.band, c_begin, c_end, data);
  return data;
}

// kBandPerBlock read in place: queues the source lines of the channels after the K block's
// (as many as it has) into wk.ahead and returns the share of them to prefetch before each
// register tile of each tile, so that the next block's fill reads the cache while these tiles
// run (fcn-8s's 88 MB grad_output comes from memory); 0 otherwise.  Shares per register tile,
// not per tile: a tile's whole share at once stalled on the full miss queue.
template <typename T>
int64_t next_block_lines(const Call<T>& c, Worker<T>& wk, const TaskRun<T>& tr, KRows rows,
                         bool in_place) {
  wk.ahead.clear();
  if (tr.in.mode != Input::kBandPerBlock || !in_place) return 0;
  const int64_t c_begin = rows.front().channel, c_end = rows.back().channel + 1;
  band_source_lines(tr.s, c.src, tr.task.group, wk.tiles.front(), tr.in.band, c_end,
                    std::min(tr.s.Kc, 2 * c_end - c_begin), wk.ahead);
  const int64_t steps = int64_t(wk.tiles.size()) * ceil_div(tr.mc, int64_t(c.p.mr));
  return ceil_div(wk.ahead.lines(), std::max<int64_t>(1, steps));
}

// Tile t of the K block (kc rows at row offsets row_off from base in the band) times every
// A panel, B read in place: ogemm over all rows, or kgemm over the tile's listed ones; `quota`
// lines of wk.ahead prefetched before each register tile.
template <typename T>
void band_tile_in_place(const Call<T>& c, Worker<T>& wk, const TaskRun<T>& tr, size_t t,
                        int64_t kc, const T* base, const std::vector<int64_t>& row_off,
                        const T* ap, int accumulate, bool last, int64_t quota) {
  const int64_t kn = listed_count(wk, t, kc);
  const int64_t* ks = kn < kc ? wk.listed.data() + wk.list_at[t] : nullptr;
  if (ks != nullptr) {
    wk.listed_off.resize(static_cast<size_t>(kn));
    for (int64_t l = 0; l < kn; ++l)
      wk.listed_off[static_cast<size_t>(l)] = row_off[static_cast<size_t>(ks[l])];
  }
  const auto ti = static_cast<int64_t>(t);
  for (int64_t i0 = 0, r = 0; i0 < tr.mc; i0 += r) {
    r = tile_rows(tr.mc - i0, c.p.mr);
    wk.ahead.step(quota);
    T* ct = c_at(c, wk, tr, last, i0, ti);
    const int64_t ldc = ldc_at(c, wk, tr, last, ti);
    const Epilogue<T>* ep = epilogue_at(c, wk, tr, last, accumulate, i0, ti);
    if (ks != nullptr) {
      c.k.kfn[r](kn, ap + i0 * kc, ks, base, wk.listed_off.data(), ct, ldc, accumulate, ep);
    } else {
      c.k.ofn[r](kc, ap + i0 * kc, base, row_off.data(), ct, ldc, accumulate, ep);
    }
  }
}

// Copies each tile's B rows (kc pointers per tile at ptrs; a tile with listed rows only
// those, in order: row l of its panel, as block_gemm reads them) into packed panels at bp.
template <typename T>
void pack_tile_rows(const Call<T>& c, Worker<T>& wk, const T** ptrs, int64_t kc, T* bp) {
  for (size_t t = 0; t < wk.tiles.size(); ++t) {
    const T** tile_ptrs = ptrs + static_cast<int64_t>(t) * kc;
    const int64_t kn = listed_count(wk, t, kc);
    if (kn < kc) {
      const int64_t* ks = wk.listed.data() + wk.list_at[t];
      for (int64_t l = 0; l < kn; ++l) tile_ptrs[l] = tile_ptrs[ks[l]];  // ks[l] >= l
    }
    copy_rows(tile_ptrs, kn, c.p.nr, bp + static_cast<int64_t>(t) * kc * c.p.nr);
  }
}

// Direct path, the K block of rows k0..: B rows through pointers (or band offsets),
// multiplied in place when few A panels read them; returns false when B was instead copied
// into packed panels at bp for block_gemm.
template <typename T>
bool direct_block(const Call<T>& c, Worker<T>& wk, const TaskRun<T>& tr, KRows rows, int64_t k0,
                  const T* ap, T* bp, int accumulate, bool last) {
  const SubconvPlan& p = c.p;
  const auto kc = static_cast<int64_t>(rows.size());
  const std::vector<Segment>& tiles = wk.tiles;
  const bool use_band = tr.in.mode == Input::kBand || tr.in.mode == Input::kBandPerBlock;
  // Rows read in place by every A panel: always from the band (its channel planes are not a
  // power-of-two stride apart) unless M is large enough that one packed copy per tile pays
  // off; from the source itself only for one A panel.
  const bool in_place = tr.mc <= p.mr || (use_band && tr.mc <= kMaxInPlaceRows);
  list_rows(tr.s, wk, rows, tiles.size());
  const T** ptrs = wk.ptr_buf.get(kc * static_cast<int64_t>(tiles.size()));
  if (use_band) {
    const Band& band = tr.in.band;
    int64_t c_begin = 0;
    const T* band_data = block_band(c, wk, tr, rows, c_begin);
    const auto k_block = static_cast<size_t>(k0 / p.kc);
    if (wk.row_parts.size() <= k_block) wk.row_parts.resize(k_block + 1);
    band_row_offsets(tr.s, tiles.front(), rows, band, c_begin, wk.row_parts[k_block]);
    const std::vector<int64_t>& row_off = wk.row_parts[k_block].row_off;
    const int64_t quota = next_block_lines(c, wk, tr, rows, in_place);
    for (size_t t = 0; t < tiles.size(); ++t) {
      const T* base = band_data + tile_shift(tr.s, band, tiles.front(), tiles[t]);
      if (in_place) {  // one offset table for every tile (or the tile's listed rows')
        band_tile_in_place(c, wk, tr, t, kc, base, row_off, ap, accumulate, last, quota);
        continue;
      }
      const T** tile_ptrs = ptrs + static_cast<int64_t>(t) * kc;
      for (int64_t k = 0; k < kc; ++k) tile_ptrs[k] = base + row_off[static_cast<size_t>(k)];
    }
    if (in_place) return true;
  } else {
    indirect_rows(tr.s, c.src, tr.task.group, tiles, rows, p.nr, wk.zeros.data(),
                  bp + kc * tr.ncp, ptrs, wk.tap_reads);
  }
  if (in_place) {
    for (size_t t = 0; t < tiles.size(); ++t)
      for (int64_t i0 = 0, r = 0; i0 < tr.mc; i0 += r) {
        r = tile_rows(tr.mc - i0, p.mr);
        const auto ti = static_cast<int64_t>(t);
        c.k.ifn[r](kc, ap + i0 * kc, ptrs + ti * kc, c_at(c, wk, tr, last, i0, ti),
                   ldc_at(c, wk, tr, last, ti), accumulate,
                   epilogue_at(c, wk, tr, last, accumulate, i0, ti));
      }
    return true;
  }
  // Several A panels reuse each B panel: pack it once (source rows come from channel planes a
  // power-of-two stride apart that alias in L1).
  pack_tile_rows(c, wk, ptrs, kc, bp);
  return false;
}

// Packed B at bp (kc rows) times the task's A: blocks of mcb rows, nr panels, mr tiles.
template <typename T>
void block_gemm(const Call<T>& c, Worker<T>& wk, const TaskRun<T>& tr, int64_t kc,
                const T* ap, const T* bp, int accumulate, bool last) {
  const int mr = c.p.mr, nr = c.p.nr;
  for (int64_t ib = 0, ie = 0; ib < tr.mc; ib = ie) {
    ie = std::min(tr.mc, ib + c.p.mcb);
    if (tr.mc - ie < mr) ie = tr.mc;  // a tile_rows split of the last rows stays in one block
    for (int64_t j0 = 0; j0 < tr.ncp; j0 += nr) {
      const T* b = bp + j0 * kc;
      for (int64_t i0 = ib, r = 0; i0 < ie; i0 += r) {
        r = tile_rows(tr.mc - i0, mr);
        T* ct = c_at(c, wk, tr, last, i0, j0 / nr);
        const int64_t ldc = ldc_at(c, wk, tr, last, j0 / nr);
        const auto t = static_cast<size_t>(j0 / nr);
        const int64_t kn = listed_count(wk, t, kc);
        const Epilogue<T>* ep = epilogue_at(c, wk, tr, last, accumulate, i0, j0 / nr);
        if (kn < kc) {  // the direct path's panel holds only the listed rows, in order
                        // (direct_block); the packed path's all of them (listed_b)
          const int64_t* b_off = tr.in.mode == Input::kPacked
                                     ? wk.listed_b.data() + wk.list_at[t]
                                     : wk.panel_off.data();
          c.k.kfn[r](kn, ap + i0 * kc, wk.listed.data() + wk.list_at[t], b, b_off, ct,
                     ldc, accumulate, ep);
        } else {
          c.k.fn[r](kc, ap + i0 * kc, b, ct, ldc, accumulate, ep);
        }
      }
    }
  }
}

// Stores the task's tile (or, for an x-phase group, waits for or stores the group's tiles).
template <typename T>
void store_task(const Call<T>& c, Worker<T>& wk, const TaskRun<T>& tr) {
  const std::vector<Segment>* store_segs = tr.in.pitched                  ? &wk.pitch_store
                                           : tr.in.mode != Input::kPacked ? &wk.tiles
                                                                          : &wk.segs;
  if (tr.to_dst) {  // the panels that are not in dst: their pieces
    if (tr.in.mode != Input::kPacked) return;
    wk.acc_pieces.clear();
    for_each_panel_piece(wk.segs, c.p.nr, [&](const Segment& piece) {
      if (!in_dst(wk, tr, piece.t0 / c.p.nr)) wk.acc_pieces.push_back(piece);
    });
    if (wk.acc_pieces.empty()) return;  // stored by the micro-kernels
    store_segs = &wk.acc_pieces;
  }
  const int xs = c.p.xs;
  const int64_t x_phase = xs > 0 ? tr.task.sub % xs : 0;
  const std::vector<Segment>& segs = *store_segs;
  const T* phases[kMaxXPhases];
  const SubConv* s = &tr.s;
  if (xs > 0) {
    if (x_phase < xs - 1) return;  // phase xs - 1 stores the group
    s = &c.subs[static_cast<size_t>(tr.task.sub - x_phase)];
    for (int64_t r = 0; r < x_phase; ++r)
      phases[r] = wk.c_wait[static_cast<size_t>(r)].get(tr.mc * tr.ncp);
    phases[x_phase] = tr.acc;
  }
  const T* const* ph = xs > 0 ? phases : nullptr;
  wk.bad |= c.check ? store_tile<true>(*s, c.dst, c.bias, tr.task.group, tr.task.m0, tr.mc,
                                       segs, tr.acc, tr.ncp, ph, xs, c.p.stream)
                    : store_tile<false>(*s, c.dst, c.bias, tr.task.group, tr.task.m0, tr.mc,
                                        segs, tr.acc, tr.ncp, ph, xs, c.p.stream);
}

// Runs task ti of a slab whose rows are [slab_m0, slab_m0 + slab_rows).
template <typename T>
void run_task(const Call<T>& c, Worker<T>& wk, int64_t ti, int64_t slab_m0, int64_t slab_rows) {
  const SubconvPlan& p = c.p;
  const Task& task = p.tasks[static_cast<size_t>(ti)];
  const SubConv& s = c.subs[static_cast<size_t>(task.sub)];
  const int64_t mc = block_rows(slab_m0 + slab_rows - task.m0,
                                p.mc_of[static_cast<size_t>(task.sub)], p.mr);
  const int64_t k_total = s.Kc * s.taps();
  const std::vector<GridBox>& boxes = p.boxes[static_cast<size_t>(task.sub)];
  row_segments(s, boxes, task.q0, task.nc, wk.segs);
  task_tiles(p, s, task, wk.segs, wk.tiles, wk.pitch_store, wk.input);
  const TaskInput& in = wk.input;
  wk.tile_taps.clear();
  wk.list_at.clear();
  wk.list_n.clear();
  if (in.pitched) {
    panel_taps(s, wk, wk.pitch_store, static_cast<int64_t>(wk.tiles.size()), p.nr);
  } else if (p.direct_of[static_cast<size_t>(task.sub)]) {
    if (p.tiles != TileSet::kWide) tile_taps(s, wk);  // (the wide set has no kgemm)
  } else if (!boxes.empty()) {
    panel_taps(s, wk, wk.segs, ceil_div(task.nc, static_cast<int64_t>(p.nr)), p.nr);
  }
  const bool direct = in.mode != Input::kPacked;
  const T* band_data = in.mode == Input::kBand ? whole_band(c, wk, task, s, in.band) : nullptr;
  const int64_t ncp =
      direct ? static_cast<int64_t>(wk.tiles.size()) * p.nr : round_up(task.nc, p.nr);
  // x-phase groups: the tiles of phases 0 .. xs - 2 wait in c_wait for phase xs - 1 (the
  // following tasks of the round, same grid block), which stores them all.
  const int64_t x_phase = p.xs > 0 ? task.sub % p.xs : 0;
  const bool waits = p.xs > 0 && x_phase < p.xs - 1;
  T* acc = (waits ? wk.c_wait[static_cast<size_t>(x_phase)] : wk.c_buf).get(mc * ncp);
  if (k_total == 0) std::fill(acc, acc + mc * ncp, T(0));
  const bool to_dst = stores_in_kernels(c, wk, s, task, in);
  const T* a_group = c.a_packed + p.a_off[static_cast<size_t>(task.sub)] +
                     task.group * k_total * p.ms;
  const TaskRun<T> tr{task, s, slab_m0, mc, ncp, in, band_data, acc, to_dst, a_group};
  for (int64_t k0 = 0; k0 < k_total; k0 += p.kc) {
    if (k0 > 0 && stop(c.cancel)) break;
    const int64_t kc = std::min(p.kc, k_total - k0);
    const KRows rows{p.all_rows[static_cast<size_t>(task.sub)].data() + k0,
                     static_cast<size_t>(kc)};
    // panel of row m0 + i at ap + i * kc
    const T* ap = a_group + k0 * p.ms + (task.m0 - slab_m0) * kc;
    // B: ncp columns (+ border rows of the indirect path after them)
    T* bp = wk.b_buf.get(2 * kc * ncp);
    const int accumulate = k0 > 0 ? 1 : 0;
    // the kernels write the tiles in dst on this block (epilogue_at)
    const bool last = k0 + kc == k_total;
    if (direct) {
      if (direct_block(c, wk, tr, rows, k0, ap, bp, accumulate, last)) continue;
    } else {
      pack_b(s, c.src, task.group, wk.segs, rows, task.nc, p.nr, bp, wk.pack_taps,
             boxes.empty());
      list_rows(s, wk, rows, static_cast<size_t>(ncp / p.nr));
      if (!wk.list_at.empty()) {
        wk.listed_b.resize(wk.listed.size());
        for (size_t l = 0; l < wk.listed.size(); ++l) wk.listed_b[l] = wk.listed[l] * p.nr;
      }
    }
    block_gemm(c, wk, tr, kc, ap, bp, accumulate, last);
  }
  store_task(c, wk, tr);
}

}  // namespace
}  // namespace detail

template <typename T>
bool run_subconvs(const std::vector<SubConv>& subs, const T* src, const T* w, const T* bias,
                  T* dst, bool check, bool whole_weights) {
  using namespace detail;
  const GemmKernels<T>& uk = active_gemm<T>();
  const SubconvPlan p = plan_subconvs<T>(subs, uk, omp_get_max_threads(), whole_weights);
  if (p.empty) return true;
  Scratch<T> a_store;  // every value a task reads is packed first
  T* const a_packed = a_store.get(p.a_off.back());
  const SubConv& s0 = subs[0];
  const Call<T> c{subs, p, src, w, bias, dst, check, a_packed,
                  s0.dst_dims[0] * s0.dst_dims[1] * s0.dst_dims[2],
                  tile_kernels(uk, p.tiles), current_cancellation()};
  const auto unit_count = static_cast<int64_t>(p.a_units.size());
  const int64_t M = s0.M;
  int nonfinite = 0;  // some stored value is Inf/NaN
#pragma omp parallel if (p.parallel) reduction(| : nonfinite)
  {
    Worker<T> wk;
    wk.unit_rows.resize(subs.size());
    wk.unit_panel.resize(subs.size());
    wk.zeros.assign(static_cast<size_t>(p.nr), T(0));
    wk.panel_off.resize(static_cast<size_t>(p.kc));
    for (int64_t l = 0; l < p.kc; ++l) wk.panel_off[static_cast<size_t>(l)] = l * p.nr;
    for (int64_t sl = 0; sl < p.slabs; ++sl) {
      const int64_t slab_m0 = sl * p.ms, slab_rows = std::min(p.ms, M - sl * p.ms);
#pragma omp for schedule(dynamic, 1)
      for (int64_t u = 0; u < unit_count; ++u) {
        if (stop(c.cancel)) continue;
        pack_unit(c, wk, u, slab_m0, slab_rows, a_packed);
      }  // implicit barrier: every task below reads any of the packed blocks
      const int64_t first = p.slab_round[static_cast<size_t>(sl)],
                    end = p.slab_round[static_cast<size_t>(sl) + 1];
      const auto run_round = [&](int64_t round) {
        for (int64_t ti = p.round_start[static_cast<size_t>(round)];
             ti < p.round_start[static_cast<size_t>(round) + 1]; ++ti) {
          if (stop(c.cancel)) break;  // never a later task of the round (its x-phase store)
          run_task(c, wk, ti, slab_m0, slab_rows);
        }
      };
      if (p.guided) {  // the same branch on every thread: p is shared
#pragma omp for schedule(guided)
        for (int64_t round = first; round < end; ++round) run_round(round);
      } else {
#pragma omp for schedule(dynamic, 1)
        for (int64_t round = first; round < end; ++round) run_round(round);
      }
    }
    nonfinite |= wk.bad != 0 || wk.kernel_bad != 0 ? 1 : 0;
  }
  return nonfinite == 0;
}

template bool run_subconvs<float>(const std::vector<SubConv>&, const float*, const float*,
                                  const float*, float*, bool, bool);
template bool run_subconvs<double>(const std::vector<SubConv>&, const double*, const double*,
                                   const double*, double*, bool, bool);

}  // namespace tconv
