// The plan of one run_subconvs call: tile and block sizes, output-channel slabs, tasks and
// rounds, the A packing units, and the rule by which a task reads its source.  Everything
// here is decided before the parallel region and never changes while it runs.
#include <algorithm>
#include <climits>

#include "subconv/internal.hpp"
#include "tconv/assert.hpp"
#include "tconv/plan.hpp"

namespace tconv::detail {
namespace {

// Longest run of one grid row that a direct-path task takes (longer rows are cut into chunks,
// so that the accumulator tile and the source band stay in L2); also the packed path's pixel
// block and the columns a direct-path task aims at (whole rows); task_columns may raise all
// three for a small K.
constexpr int64_t kMaxRowChunk = 192;
// A task's columns grow past kMaxRowChunk up to this many times it when its sub-convolution
// is small (task_columns).
constexpr int64_t kMaxChunkGrowth = 4;
// Largest direct-path source band (bigger bands fall back to per-row border copies).
constexpr int64_t kMaxBandBytes = int64_t(2) << 20;
// Largest band of all channels filled at once when no other phase shares it (bigger: filled
// per K block: 1-D HiFi-GAN grad_input: 256 channels x 8 phases x 146 points would be
// 1.2 MB, read back from L3 by every tile).
constexpr int64_t kBandL2Bytes = int64_t(256) << 10;

// What packing B costs per column, in rows of the GEMM's multiply-adds (pitched_rule): the
// 3-D U-Net forward (32 rows, 1/9 of the pitched columns discarded) ran 1.11x faster pitched,
// DCGAN 128->64 (64 rows, the same share) as fast, DCGAN 256->128 (128 rows, a third) 0.7x.
constexpr int64_t kPitchPackRows = 6;
// A pitched task's most points, in task_columns' chunks (pitched_rows: more rows a task leave
// fewer partial tiles).
constexpr int64_t kPitchMaxChunks = 2;

// Least share of the packed sub-convolutions' terms that read padding (1 / kSortBorderDiv)
// for their columns to be border-sorted (border_boxes, along z and y): the panels of border
// rows then skip the taps that read padding for all of them, and a panel that spans two
// boxes is stored through the accumulator instead of straight into dst.
constexpr int64_t kSortBorderDiv = 32;

// The packed path's pixel block: of nc, nc - nr, ..., nr, the one whose rounds (groups x
// ceil(n_total / nc) a slab, each about nc columns of work, dealt to `threads` threads) end
// soonest, counting every round as a full one; the largest on a tie.  DCGAN 512->256 has
// 1024 points per phase: blocks of 192 made 6 rounds a slab, the last of 64 points, so one
// thread ran 3 full rounds while the other ran 2 and the short one; blocks of 128 make 8
// (4 + 4).  Pixel blocks never change a sum (only kc does).
int64_t balanced_columns(int64_t n_total, int64_t groups, int64_t nc, int nr, int threads) {
  int64_t best = nc, best_span = INT64_MAX;
  for (int64_t c = nc; c >= nr; c -= nr) {
    const int64_t span = ceil_div(groups * ceil_div(n_total, c), threads) * c;
    if (span < best_span) {
      best = c;
      best_span = span;
    }
  }
  return best;
}

// Whether rows of `width` grid points fill enough of their tiles of nr columns for the direct
// path (kDirectMinFill): the columns past a row's end are computed and discarded.
bool fills_tiles(int64_t width, int nr) {
  return double(width) >= kDirectMinFill * double(round_up(width, nr));
}

// Whether the call takes the narrow kernels (narrow_nr columns, the same mr and packed A): every
// sub-convolution with pixels has rows too short to fill tiles of nr columns but long enough
// for narrow_nr (DCGAN 128->64 and the 3-D U-Net: grids 16 points wide under 32-column tiles,
// whose B was packed, each source value copied once per tap).  Their rows then take the
// direct path and are read in place.  The tile's width never changes a sum.
bool narrow_tiles(const std::vector<SubConv>& subs, int nr, int narrow_nr) {
  if (narrow_nr == 0 || !narrow_tiles_enabled()) return false;
  bool any = false;
  for (const SubConv& s : subs) {
    if (s.batch * s.pixels() == 0 || s.M == 0) continue;
    const int64_t width = s.axes[2].extent;
    if (fills_tiles(width, nr) || !fills_tiles(width, narrow_nr)) return false;
    any = true;
  }
  return any;
}

// Grid rows per pitched task: of 1 .. `rows` (the plane's; at most max_points points a task
// past one row), the count whose tasks, cutting a plane's rows in order, leave the fewest
// tile columns in all (`cols`: a task of r rows spans (r - 1) * pitch + width columns,
// rounded up to whole tiles); the largest on a tie.
int64_t pitched_rows(int64_t width, int64_t pitch, int64_t rows, int nr, int64_t max_points,
                     int64_t& cols) {
  const auto span = [&](int64_t r) { return r == 0 ? 0 : round_up((r - 1) * pitch + width, nr); };
  int64_t best = 1;
  cols = INT64_MAX;
  for (int64_t r = 1; r <= rows && (r == 1 || r * width <= max_points); ++r) {
    const int64_t c = rows / r * span(r) + span(rows % r);
    if (c <= cols) {
      best = r;
      cols = c;
    }
  }
  return best;
}

// The x pitch of a pitched band: a grid row and the hull's extra x taps.
int64_t band_pitch(const SubConv& s, const SubconvPlan& p) {
  return s.axes[2].extent + p.hull.hi[2] - p.hull.lo[2];
}

// Whether the call's direct sub-convolutions read pitched tiles (SubconvPlan::pitched): the
// forward's phases (a hull-shaped band: every source step 1, the same grid) with the main
// tiles, whose grid rows are too short to fill them (fills_tiles: they take the packed path,
// which copies each source value once per tap, a cost of about kPitchPackRows rows of
// multiply-adds per column), when the tile columns a plane's pitched tasks compute and
// discard (pitched_rows), times the M rows that multiply each, cost less than that packing
// of the grid points.  set_pitched_band(1) takes them wherever they can run (tests).  The
// tile's columns never change a sum.
bool pitched_rule(const std::vector<SubConv>& subs, const SubconvPlan& p, int64_t chunk) {
  const int mode = pitched_band_mode();
  if (mode == 0 || p.tiles != TileSet::kMain || !p.hull.valid) return false;
  bool any = false;
  for (const SubConv& s : subs) {
    if (s.batch * s.pixels() == 0 || s.M == 0) continue;
    const int64_t width = s.axes[2].extent, rows = s.axes[1].extent;
    if (fills_tiles(width, p.nr)) return false;
    int64_t cols = 0;
    pitched_rows(width, band_pitch(s, p), rows, p.nr, kPitchMaxChunks * chunk, cols);
    const int64_t points = rows * width;
    if (mode < 0 && s.M * (cols - points) >= kPitchPackRows * points) return false;
    any = true;
  }
  return any;
}

// Flops, and pixel totals, of the sub-convolutions (pixels: summed over groups).
void totals(const std::vector<SubConv>& subs, SubconvPlan& p, int64_t& total_pixels,
            int64_t& k_sum) {
  total_pixels = 0;
  k_sum = 0;
  for (const SubConv& s : subs) {
    const int64_t n_total = s.batch * s.pixels();
    k_sum += s.Kc * s.taps();
    if (n_total == 0 || s.M == 0) continue;
    p.flops += 2.0 * double(s.M) * double(n_total) * double(s.Kc * s.taps()) * double(s.groups);
    total_pixels += n_total * s.groups;
  }
}

// The columns a task aims at: kMaxRowChunk, or up to kMaxChunkGrowth times that while every
// task's B (K x columns, K = channels x taps of its sub-convolution) and output tile (a
// slab's rows x columns) stay within kc x kMaxRowChunk values, the budget of a full K block:
// where K and the rows are few, a task then has as much arithmetic to spread its fixed costs
// (segments, band, tap lists) over (DCGAN 64->3 grad_input: K = 48, 64 rows; FCN-8s
// forward: K = 84).  One figure for all sub-convolutions of a call (the x-phase groups'
// tasks cover the same grid blocks).  Pixel blocks never change a sum.
int64_t task_columns(const std::vector<SubConv>& subs, const SubconvPlan& p) {
  int64_t span = std::max<int64_t>(1, p.ms);
  for (const SubConv& s : subs) span = std::max(span, s.Kc * s.taps());
  return std::clamp(p.kc * kMaxRowChunk / span, kMaxRowChunk, kMaxChunkGrowth * kMaxRowChunk);
}

// The tasks of sub-convolution si, slab by slab (per_slab[sl][si]), of about `chunk` columns
// (task_columns); sets mc_of, direct_of.
void plan_tasks(const std::vector<SubConv>& subs, size_t si, int64_t total_pixels,
                int64_t chunk, SubconvPlan& p,
                std::vector<std::vector<std::vector<Task>>>& per_slab) {
  const SubConv& s = subs[si];
  const int64_t n_total = s.batch * s.pixels();
  if (n_total == 0 || s.M == 0) return;
  const int nr = p.nr, mr = p.mr;
  // share of the tasks this sub-convolution should provide
  const double share = double(n_total * s.groups) / double(total_pixels);
  const double want = kTasksPerThread * p.threads * share;
  const int64_t width = s.axes[2].extent;
  // strided sources (gather) take the direct path only through a de-interleaved band
  const bool direct = fills_tiles(width, nr) || p.pitched;
  int64_t cols = width;  // direct path: columns of one row per task (< width: row chunks)
  int64_t nc, pixel_tasks;
  if (direct) {  // whole rows of the grid, about `chunk` columns; long rows cut into chunks
    int64_t pitched_cols = 0;
    int64_t rows_per_task =
        p.pitched ? pitched_rows(width, band_pitch(s, p), s.axes[1].extent, nr,
                                 kPitchMaxChunks * chunk, pitched_cols)
                  : std::max<int64_t>(1, chunk / round_up(width, nr));
    while (rows_per_task > 1 &&
           double(s.groups * ceil_div(n_total, rows_per_task * width)) < want)
      --rows_per_task;
    if (width > chunk) cols = round_up(ceil_div(width, ceil_div(width, chunk)), nr);
    nc = rows_per_task * cols;
    pixel_tasks = s.batch * s.axes[0].extent * ceil_div(s.axes[1].extent, rows_per_task) *
                  ceil_div(width, cols);
  } else {
    nc = round_up(std::min<int64_t>(n_total, chunk), nr);
    while (nc > nr && double(s.groups * ceil_div(n_total, nc)) < want) nc -= nr;
    nc = balanced_columns(n_total, s.groups, nc, nr, p.threads);
    pixel_tasks = ceil_div(n_total, nc);
  }
  // Split a slab's rows across tasks only when the pixels alone give too few.
  int64_t m_splits = 1;
  while (double(s.groups * pixel_tasks * m_splits) < want && ceil_div(p.ms, 2 * m_splits) >= mr)
    m_splits *= 2;
  const int64_t mc = round_up(ceil_div(p.ms, m_splits), mr);
  p.direct_of[si] = direct;
  p.mc_of[si] = mc;
  p.active[si] = 1;
  const int64_t rows = nc / cols;
  const int64_t M = s.M, jy_n = s.axes[1].extent;
  for (int64_t sl = 0; sl < p.slabs; ++sl) {
    std::vector<Task>& list = per_slab[static_cast<size_t>(sl)][si];
    for (int64_t g = 0; g < s.groups; ++g)
      for (int64_t m0 = sl * p.ms, end = std::min(M, (sl + 1) * p.ms); m0 < end;
           m0 += block_rows(end - m0, mc, mr)) {
        if (!direct) {
          for (int64_t q0 = 0; q0 < n_total; q0 += nc)
            list.push_back({static_cast<int64_t>(si), g, m0, q0, std::min(nc, n_total - q0)});
          continue;
        }
        // row blocks never cross a (n, jz) plane: see Band
        for (int64_t plane = 0; plane < s.batch * s.axes[0].extent; ++plane)
          for (int64_t jy0 = 0; jy0 < jy_n; jy0 += rows)
            for (int64_t jx0 = 0; jx0 < width; jx0 += cols)  // cols < width: rows == 1
              list.push_back({static_cast<int64_t>(si), g, m0, (plane * jy_n + jy0) * width + jx0,
                              cols < width ? std::min(cols, width - jx0)
                                           : std::min(rows, jy_n - jy0) * width});
      }
  }
}

// A packing units of a slab: (group, K block index, range of mr panels), each packing those
// panels for every sub-convolution, the phases innermost: the phases of a forward read the
// same weight cache lines (W[c][m][every tap]), which then come from L1 once per panel
// instead of once per phase.  Panel ranges split the work when K blocks are few.
void plan_a_units(const std::vector<SubConv>& subs, SubconvPlan& p) {
  const int64_t groups = subs[0].groups;
  int64_t k_blocks = 0;
  for (size_t si = 0; si < subs.size(); ++si)
    if (p.active[si]) k_blocks = std::max(k_blocks, ceil_div(subs[si].Kc * subs[si].taps(), p.kc));
  const int64_t slab_panels = ceil_div(p.ms, p.mr);
  const int64_t panel_chunks = std::min(
      slab_panels, std::max<int64_t>(1, ceil_div(kTasksPerThread * p.threads,
                                                 std::max<int64_t>(1, groups * k_blocks))));
  p.panels_per_unit = ceil_div(slab_panels, panel_chunks);
  for (int64_t g = 0; g < groups; ++g)
    for (int64_t kb = 0; kb < k_blocks; ++kb)
      for (int64_t p0 = 0; p0 < slab_panels; p0 += p.panels_per_unit)
        p.a_units.push_back({g, kb * p.kc, p0});
}

// Rounds: the i-th task of every sub-convolution (phase) of a slab together.  They write the
// same region of the output (phase rho of grid point j lands at j*s + rho), so one thread
// runs a round back to back and every output cache line is completed while it is in cache,
// instead of being fetched once per phase.
void plan_rounds(const std::vector<std::vector<std::vector<Task>>>& per_slab, SubconvPlan& p) {
  p.round_start = {0};
  p.slab_round = {0};
  for (const std::vector<std::vector<Task>>& per_sub : per_slab) {
    for (size_t i = 0;; ++i) {
      bool any = false;
      for (const std::vector<Task>& list : per_sub) {
        if (i < list.size()) {
          p.tasks.push_back(list[i]);
          any = true;
        }
      }
      if (!any) break;
      p.round_start.push_back(static_cast<int64_t>(p.tasks.size()));
    }
    p.slab_round.push_back(static_cast<int64_t>(p.round_start.size()) - 1);
  }
}

// x-phase groups: with an x stride xs of 2, 4 or 8, sub-convolutions xs*i .. xs*i + xs - 1
// are the x phases 0 .. xs - 1 of one (z, y) phase with the same grid: their tasks are
// identical and adjacent in every round, and the last one stores all xs tiles as one
// contiguous interleaved run (FCN-8s k16s8: 8 phases, each stored with a step of 8, were
// 17 % of the forward's samples).  0: every phase stores its own tile.
int x_phase_group(const std::vector<SubConv>& subs, const SubconvPlan& p,
                  const std::vector<std::vector<Task>>& slab0) {
  int xs = static_cast<int>(subs[0].axes[2].dst_step);
  if (xs != 2 && xs != 4 && xs != kMaxXPhases) return 0;
  if (subs.size() % static_cast<size_t>(xs) != 0) return 0;
  for (size_t si = 0; si < subs.size(); si += static_cast<size_t>(xs)) {
    const SubConv& e = subs[si];
    for (size_t r = 0; r < static_cast<size_t>(xs); ++r) {
      const SubConv& o = subs[si + r];
      bool same = o.axes[2].dst_step == xs && o.axes[2].dst_base == static_cast<int64_t>(r) &&
                  slab0[si].size() == slab0[si + r].size() &&
                  p.direct_of[si] == p.direct_of[si + r];
      for (int a = 0; a < kMaxDims; ++a)
        same = same && e.axes[a].extent == o.axes[a].extent &&
               (a == 2 || (e.axes[a].dst_base == o.axes[a].dst_base &&
                           e.axes[a].dst_step == o.axes[a].dst_step));
      if (!same) return 0;
    }
  }
  return xs;
}

// The packed sub-convolutions' column orders (p.boxes): border-sorted when at least
// 1 / kSortBorderDiv of their terms read padding, by the widest borders of any of them (the
// phases of an x-phase group keep identical tasks), else the grid's own.  Not for the wide
// tiles (they have no listed kernels).
void plan_boxes(const std::vector<SubConv>& subs, SubconvPlan& p) {
  p.boxes.assign(subs.size(), {});
  if (p.tiles == TileSet::kWide) return;
  double all = 0, inside = 0;
  std::array<int64_t, kMaxDims> lo{}, hi{};
  for (size_t si = 0; si < subs.size(); ++si) {
    if (!p.active[si] || p.direct_of[si]) continue;
    const SubConv& s = subs[si];
    double a = double(s.batch), in = double(s.batch);
    for (int d = 0; d < kMaxDims; ++d) {
      const SubAxis& ax = s.axes[static_cast<size_t>(d)];
      int64_t count = 0;  // (j, tap) with 0 <= j * step + off < src, j < extent
      for (const int64_t off : ax.tap_offset) {
        const int64_t first = std::max<int64_t>(0, ceil_div(-off, ax.src_step));
        const int64_t last =
            std::min(ax.extent - 1, floor_div(s.src_dims[d] - 1 - off, ax.src_step));
        count += std::max<int64_t>(0, last - first + 1);
      }
      a *= double(ax.extent) * double(ax.tap_offset.size());
      in *= double(count);
    }
    all += a;
    inside += in;
    std::array<int64_t, kMaxDims> l{}, h{};
    border_widths(s, l, h);
    for (size_t d = 0; d < kMaxDims; ++d) {
      lo[d] = std::max(lo[d], l[d]);
      hi[d] = std::max(hi[d], h[d]);
    }
  }
  if (all == 0 || (all - inside) * double(kSortBorderDiv) < all) return;
  lo[2] = hi[2] = 0;  // x: whole rows
  for (size_t si = 0; si < subs.size(); ++si)
    if (p.active[si] && !p.direct_of[si]) p.boxes[si] = border_boxes(subs[si], lo, hi);
}

}  // namespace

template <typename T>
SubconvPlan plan_subconvs(const std::vector<SubConv>& subs, const GemmKernels<T>& uk,
                          int threads, bool whole_weights) {
  SubconvPlan p;
  if (subs.empty()) return p;
  p.tiles = rows_tile_set(uk, subs[0].M);
  if (p.tiles == TileSet::kMain && narrow_tiles(subs, uk.nr, uk.narrow_nr))
    p.tiles = TileSet::kNarrow;
  const TileKernels<T> tk = tile_kernels(uk, p.tiles);
  p.mr = tk.mr;
  p.nr = tk.nr;
  p.elem = static_cast<int64_t>(sizeof(T));
  p.threads = threads;
  p.kc = k_block<T>();
  // Rows of A swept per B panel: an mcb x kc block of A (kL2ABytes) stays in L2.
  p.mcb = std::max<int64_t>(p.mr, kL2ABytes / (p.kc * p.elem) / p.mr * p.mr);
  int64_t total_pixels = 0, k_sum = 0;
  totals(subs, p, total_pixels, k_sum);
  if (total_pixels == 0) return p;
  p.empty = false;
  // Every sub-convolution of a call has the same M, groups and destination.
  const int64_t M = subs[0].M, groups = subs[0].groups;
  const int64_t dst_size = subs[0].batch * subs[0].dst_channels * subs[0].dst_dims[0] *
                           subs[0].dst_dims[1] * subs[0].dst_dims[2];
  // Output channels are processed in slabs of ms rows: the weights of one slab, for every
  // sub-convolution and group, are packed once and shared by the threads, and the packed copy
  // is no larger than the output plus mr - 1 rows (the slab is a whole number of mr panels);
  // whole_weights: one slab.
  p.ms = whole_weights
             ? round_up(M, p.mr)
             : std::min(round_up(M, p.mr),
                        round_up(std::max<int64_t>(1, dst_size / std::max<int64_t>(1, groups * k_sum)),
                                 p.mr));
  p.slabs = ceil_div(M, p.ms);
  p.a_off.assign(subs.size() + 1, 0);
  for (size_t si = 0; si < subs.size(); ++si)
    p.a_off[si + 1] = p.a_off[si] + groups * p.ms * subs[si].Kc * subs[si].taps();
  p.mc_of.assign(subs.size(), 0);
  p.direct_of.assign(subs.size(), 0);
  p.active.assign(subs.size(), 0);
  std::vector<std::vector<std::vector<Task>>> per_slab(
      static_cast<size_t>(p.slabs), std::vector<std::vector<Task>>(subs.size()));
  const int64_t chunk = task_columns(subs, p);
  p.hull = offset_hull(subs);
  p.pitched = pitched_rule(subs, p, chunk);
  for (size_t si = 0; si < subs.size(); ++si)
    plan_tasks(subs, si, total_pixels, chunk, p, per_slab);
  plan_a_units(subs, p);
  plan_rounds(per_slab, p);
  p.xs = x_phase_group(subs, p, per_slab[0]);
  plan_boxes(subs, p);
  p.stream = p.xs > 0 && dst_size * p.elem >= kStreamBytes;
  // The direct path's source band is filled once per task for all channels, except when it
  // would outgrow L2 and no other phase shares it (not hull-shaped, or a single phase): then
  // once per K block with only that block's channels (task_input).
  p.band_shared = p.hull.valid && subs.size() > 1;
  p.all_rows.resize(subs.size());
  for (size_t si = 0; si < subs.size(); ++si) k_rows(subs[si], p.all_rows[si]);
  const auto round_count = static_cast<int64_t>(p.round_start.size()) - 1;
  const auto unit_count = static_cast<int64_t>(p.a_units.size());
  // One sub-convolution (a gather, a stride-1 forward): each thread takes runs of
  // neighbouring pixel blocks, whose source lines (and bands) overlap and are then read from
  // its own L2.  A forward's rounds of several phases stay one at a time: there neighbouring
  // rounds are other phases, and guided was slower (docs/perf-log.md, 2026-12-03 17:55).
  p.guided = subs.size() == 1;
  p.parallel = threads > 1 && (round_count > 1 || unit_count > 1) && p.flops > kParallelFlops;
  return p;
}

template SubconvPlan plan_subconvs<float>(const std::vector<SubConv>&, const GemmKernels<float>&,
                                          int, bool);
template SubconvPlan plan_subconvs<double>(const std::vector<SubConv>&,
                                           const GemmKernels<double>&, int, bool);

void task_input(const SubconvPlan& p, const SubConv& s, const Task& task,
                const std::vector<Segment>& tiles, TaskInput& in, bool pitched) {
  in.mode = Input::kPacked;
  in.pitched = false;
  if (!p.direct_of[static_cast<size_t>(task.sub)]) return;
  const int64_t k_total = s.Kc * s.taps();
  if (!tiles.empty() && (k_total > 0 || pitched)) {
    band_shape(s, tiles, p.nr, p.hull, in.band, pitched);
    const bool per_block = !p.band_shared && s.Kc * in.band.size() * p.elem > kBandL2Bytes;
    const int64_t band_channels = per_block ? std::min(s.Kc, p.kc / s.taps() + 2) : s.Kc;
    if (in.band.values(band_channels) * p.elem <= kMaxBandBytes) {
      in.mode = per_block ? Input::kBandPerBlock : Input::kBand;
      in.pitched = pitched;
      return;
    }
  }
  if (pitched) return;  // the caller asks again with row tiles
  // no band: row pointers into the source, which needs unit steps along x
  in.mode = s.axes[2].src_step != 1 ? Input::kPacked : Input::kIndirect;
}

void task_tiles(const SubconvPlan& p, const SubConv& s, const Task& task,
                const std::vector<Segment>& segs, std::vector<Segment>& tiles,
                std::vector<Segment>& store, TaskInput& in) {
  tiles.clear();
  store.clear();
  const bool direct = p.direct_of[static_cast<size_t>(task.sub)] != 0;
  if (direct && p.pitched) {
    // every phase of a call lays its tiles out alike (an x-phase group stores its phases'
    // accumulators through one phase's segments), those without taps too (zeros, read from
    // nowhere); the band's fit is the same for every phase (one hull-shaped band)
    task_input(p, s, task, segs, in, true);
    if (in.pitched) {
      TCONV_ASSERT(in.band.width == band_pitch(s, p));
      if (s.Kc * s.taps() == 0) in.mode = Input::kIndirect;  // zeros, read from nowhere
      pitched_tiles(segs, in.band.width, p.nr, tiles, store);
      return;
    }
  }
  if (direct) row_tiles(segs, p.nr, tiles);
  task_input(p, s, task, tiles, in);
}

}  // namespace tconv::detail
