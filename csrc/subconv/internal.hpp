// Internal interface of the sub-convolution driver (csrc/subconv/*.cpp): the row and K
// tables, weight packing, the three ways a task reads its source (packed, indirect, band),
// the store, and the plan that run.cpp executes.  Layout and formula in tconv/subconv.hpp.
//
// A (the weights) is packed once per call into panels of mr rows, shared by the threads, slab
// by slab of output channels so that the packed copy is no larger than the output.  A task
// owns a pixel block of nc columns and all rows of a slab (split only when the pixels give
// too few tasks).
// Blocking inside one task:  for each K block of kc = k_block<T>() rows:
//   B: kc x nc source pixels, packed once (im2col with zeros) or read through row pointers
//   for every block of mcb rows (L2), every nr panel of B (L1), every mr panel of A:
//     micro-kernel into the M x nc accumulator tile
// then add the bias and store the tile into dst (a strided scatter when dst_step > 1).
// mc, mcb and nc never change the summation order (only kc does), so they may depend on the
// thread count; kc does not.
#pragma once

#include <array>
#include <climits>
#include <cstdint>
#include <tuple>
#include <vector>

#include "tconv/nonfinite.hpp"
#include "tconv/prefetch.hpp"
#include "tconv/subconv.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/workspace.hpp"

namespace tconv::detail {

// Most x phases stored together as one interleaved run (store_tile).
constexpr int kMaxXPhases = 8;

template <typename T>
using NonfiniteBits = decltype(nonfinite_bit(T(0)));

// ---- row and K tables (tables.cpp) ---------------------------------------------------------

// A run of consecutive grid points on one (n, jz, jy) row: jx in [jx0, jx0 + len),
// tile columns [t0, t0 + len).
struct Segment {
  int64_t n, jz, jy, jx0, len, t0;
};

// The grid points q0 .. q0 + nc - 1 of s as runs along x.
void row_segments(const SubConv& s, int64_t q0, int64_t nc, std::vector<Segment>& segs);

// A box of grid points of every image: [z0, z0 + nz) x [y0, y0 + ny) x [x0, x0 + nx), numbered
// from q0 in (n, z, y, x) order.
struct GridBox {
  int64_t q0, z0, y0, x0, nz, ny, nx;
};

// The packed path's border-sorted column order (kSortBorderDiv): the grid cut, per axis, into
// the first lo points one by one, the middle, and the last hi points one by one, and numbered
// box by box, so that the columns whose taps read padding are gathered into a few boxes
// (panels of nr of them skip those taps, run.cpp) instead of spread over every image.
// lo / hi per axis (z, y, x): how many points at each end read outside through some tap.
std::vector<GridBox> border_boxes(const SubConv& s, const std::array<int64_t, kMaxDims>& lo,
                                  const std::array<int64_t, kMaxDims>& hi);

// Per axis, how many grid points at the low (high) end read outside the source through
// some tap.
void border_widths(const SubConv& s, std::array<int64_t, kMaxDims>& lo,
                   std::array<int64_t, kMaxDims>& hi);

// The grid points numbered q0 .. q0 + nc - 1 in the order of `boxes` (empty: the grid's own
// order, row_segments above) as runs along x.
void row_segments(const SubConv& s, const std::vector<GridBox>& boxes, int64_t q0, int64_t nc,
                  std::vector<Segment>& segs);

// One row kk = (c, tz, ty, tx) of the K block.
struct KRow {
  int64_t channel, tap, tz, ty, tx, weight_offset;
};

// Every row k = c * taps + t of the sub-convolution's K.
void k_rows(const SubConv& s, std::vector<KRow>& rows);

// Where tap t of s reads for the points of a tile: source z and y, the first point's x (point
// u reads x0 + u * src_step), and whether some point reads inside the source (if none does,
// every product of the tap is an exact zero).
struct TapReach {
  int64_t z, y, x0;
  bool inside;
};
TapReach tap_reach(const SubConv& s, const Segment& tile, int64_t t);

// Sets mask[t] = 1 for every tap t through which some point of the tile reads inside the
// source (tap_reach's `inside`), leaving the others as they are: axis by axis, without
// tap_reach's divisions per tap (it runs for every tile of every task).
void mark_taps_inside(const SubConv& s, const Segment& tile, char* mask);

// The rows k0 .. k0 + size() - 1 of one K block: a view into the rows of the whole K of a
// sub-convolution, computed once per call (k_rows) and shared by every task.
struct KRows {
  const KRow* first = nullptr;
  size_t count = 0;
  size_t size() const { return count; }
  bool empty() const { return count == 0; }
  const KRow& operator[](size_t k) const { return first[k]; }
  const KRow& front() const { return first[0]; }
  const KRow& back() const { return first[count - 1]; }
};

// Direct (indirect-GEMM) path: tiles are runs of <= nr grid points on one row, tile i owning
// accumulator columns [i*nr, i*nr + nr).  Row k of a tile's B is read straight from the source
// when all nr reads lie inside the source row (columns past the tile's length are computed and
// discarded: every column of a GEMM is independent), from a zero row when none of the tile's
// points is valid, and from a small packed copy otherwise (borders).
void row_tiles(const std::vector<Segment>& segs, int nr, std::vector<Segment>& tiles);

// ---- weight packing and the packed input (pack.cpp) ----------------------------------------

// The A panels of rows [m0, m0 + r) for every sub-convolution si with panels[si] != null:
// element (k, i) of its K block rows[si] at panels[si][k * r + i] (a K block's panels of a
// slab lie at i * kc from its first row, see run_subconvs).
template <typename T>
void pack_a_panels(const std::vector<SubConv>& subs, const T* w, int64_t group, int64_t m0,
                   int64_t r, const std::vector<KRows>& rows, const std::vector<T*>& panels);

// B panels: column t of the tile lives in panel t / nr at bp + (t / nr) * kc * nr,
// element (k, t) at [k * nr + t % nr]; columns [nc, round_up(nc, nr)) are zero.
// Segments are cut at panel boundaries into pieces; per piece each tap is classified once
// (which u < len read inside the source, and where), then its rows (one per channel) are
// copied with a length and source step that are compile-time constants in the common cases.
// PackTap: what one tap of the K block is, worked out once per block (no divisions per piece).
// `grid_order`: segs follow the grid's own order (not border-sorted), which the AVX-512
// float packer of whole planes needs (its packer of shifted runs takes either order).
struct PackTap {
  int64_t dz, dy, dx;  // the tap's offsets along z, y and x (src index = j * step + d)
  int64_t k, n;        // its first row in the K block and its row count (every taps-th row)
  int64_t channel;     // that first row's channel, from the block's first channel
};

template <typename T>
void pack_b(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& segs,
            KRows rows, int64_t nc, int nr, T* bp, std::vector<PackTap>& taps,
            bool grid_order);

// ---- the indirect input (indirect.cpp) -----------------------------------------------------

// Per tile, each tap is classified once (zero row / direct offset / border copy, with where
// it reads: tap_reads, scratch); the rows of the K block then only add the channel's plane
// offset.
struct TapRead {
  int64_t code;  // >= 0: the row's offset in a channel plane; < 0: a zero row or a border copy
  TapReach reach;
};
template <typename T>
void indirect_rows(const SubConv& s, const T* src, int64_t group, const std::vector<Segment>& tiles,
                   KRows rows, int nr, const T* zeros, T* border, const T** ptrs,
                   std::vector<TapRead>& tap_reads);

// Copy a tile's kc rows (nr elements each) into one contiguous B panel: the rows of a tile
// come from channel planes a power-of-two stride apart that alias in L1, so when several
// A panels reuse them, one copy into a packed panel is far cheaper than re-reading them.
template <typename T>
void copy_rows(const T* const* rows, int64_t kc, int nr, T* panel);

// ---- the zero-padded source band (band.cpp) ------------------------------------------------

// How every in-source row of a band is laid out.  range[p]: the valid u of phase p, i.e.
// 0 <= (u + x0) * step + ph < sx (the same on every valid row), as [lo, hi) within
// [0, width]: a band that lies wholly in the low padding (a row chunk far left of the source)
// has its first valid u past the band's end.
// When every residue of a step of 2, 4 or 8 has a plane, the points valid in all of them
// ([both_lo, both_hi)) are de-interleaved in one pass over the source row (deinterleave), the
// rest per phase.  With a de-interleaved middle, every valid row has the same edges: spans of
// zeros (reads off the source row) and a few points read one by one (valid in some residues
// only).  They are listed once here, so a row costs one deinterleave and these short loops
// instead of the per-phase range arithmetic (3-D U-Net and V-Net grad_input, whose band rows
// are 32 values: 1.03-1.09x; float64 1.02x).
struct RowLayout {
  int64_t step = 1;
  std::vector<std::pair<int64_t, int64_t>> range;
  bool deint = false;
  int64_t both_lo = 0, both_hi = 0;
  std::vector<std::pair<int64_t, int64_t>> zero_spans, edge_points;  // in a band row
  std::array<int64_t, 8> deint_to{};                                 // residue's run in a row
};

// Direct-path source band of one task (its rows lie in one (n, jz) plane).  A strided source
// (gather with stride s along x) is de-interleaved: tap offset o = q*s + ph reads phase ph at
// grid index j + q.  For every input channel c < Kc, z tap tz, source row y in [y0, y0 + rows)
// and x phase ph used by some tap (index p < phases):
//   band[(((c * Tz + tz) * rows + (y - y0)) * phases + p) * width + u] = src[(u + x0) * s + ph]
// with zeros outside the source on every side, so every (tile, k) row of B is a plain pointer
// into it: no border cases, no zero rows, unit-stride loads.
struct Band {
  int64_t y0 = 0, rows = 0, x0 = 0, width = 0, tz_n = 0;
  std::vector<int64_t> z_offset;     // source z of band z plane i: jz * step_z + z_offset[i]
  std::vector<int64_t> tz_plane;     // band z plane of each z tap
  std::vector<int64_t> phase;        // source x residue of each band plane
  std::vector<int64_t> tap_plane;    // plane index of each x tap
  std::vector<int64_t> tap_shift;    // q of each x tap
  RowLayout layout;                  // of every in-source row (band_shape)
  // Pitched tiles (pitched_tiles) read up to this many values past the last channel's plane
  // (their columns past a grid row's end; fill_band zeroes them); 0 for row tiles.
  int64_t tail = 0;
  int64_t phases() const { return static_cast<int64_t>(phase.size()); }
  int64_t size() const { return tz_n * rows * phases() * width; }  // per channel
  // the values of a band of `channels` channels, its tail included
  int64_t values(int64_t channels) const { return channels * size() + tail; }
};

// Per axis, the smallest and largest tap offset over every sub-convolution of a call whose
// sources are read with step 1 on every axis (the forward's phases).  A band shaped from these
// instead of one phase's own taps serves every phase of the same grid block, so the phases of
// a round share one band (filled once instead of once per phase).  valid: every source step
// 1, the same grid on every axis, and some tap.
struct OffsetHull {
  bool valid = false;
  std::array<int64_t, kMaxDims> lo{}, hi{};
};

OffsetHull offset_hull(const std::vector<SubConv>& subs);

// The band of a task's tiles (hull.valid: shaped from the hull, shared by every phase).
// (Into b, whose vectors keep their capacity from task to task.)  pitched: `tiles` are the
// task's grid segments (whole rows), which the band holds exactly, each row at a pitch of
// b.width (pitched_tiles); needs hull.valid.
void band_shape(const SubConv& s, const std::vector<Segment>& tiles, int nr, const OffsetHull& hull,
                Band& b, bool pitched = false);

// Pitched tiles (SubconvPlan::pitched): a task's grid rows (segs, one (n, jz) plane, from its
// first row on) laid end to end at the band's pitch (its width), so that a tile of nr
// consecutive band values spans rows.  Point (jy, jx) is column (jy - jy_first) * pitch +
// jx - jx_first of the task, and tile i owns columns [i * nr, i * nr + nr): tiles[i] = {n,
// jz, jy_first, jx_first + i * nr, nr, i * nr}, so that tile_shift and band_row_offsets read
// it as a row tile far along the first row.  A column at jx - jx_first >= the row's length
// reads the next row's start (or the band's tail): computed and discarded.  `store`: the
// segments with their columns (t0) in that numbering, for store_tile.
void pitched_tiles(const std::vector<Segment>& segs, int64_t pitch, int nr,
                   std::vector<Segment>& tiles, std::vector<Segment>& store);

// The source lines fill_band reads for the band's channels [c_begin, c_end), into q.
template <typename T>
void band_source_lines(const SubConv& s, const T* src, int64_t group, const Segment& first,
                       const Band& b, int64_t c_begin, int64_t c_end, LineQueue& q);

// Fills the band's channels [c_begin, c_end) (channel c at band + (c - c_begin) * b.size()).
template <typename T>
void fill_band(const SubConv& s, const T* src, int64_t group, const Segment& first,
               const Band& b, int64_t c_begin, int64_t c_end, T* band);

// Row offsets into the band: the offset of (tile, row k) is a part that depends only on k
// (channel, z plane, y and x taps) plus one that depends only on the tile (its row and first
// column).  row_off[k] is row k's offset for the first tile (>= 0: that row lies in the band),
// tile_shift(t) what tile t adds to it (>= 0: tiles follow the first).
// The table keeps what it was computed from (rows, which point into the plan's row table for
// the call: the sub-convolution and K block; the band's shape and where the first tile lies
// in it): a K block that matches (the same block of the next interior task) reuses it.
struct BandOffsets {
  using Key = std::tuple<const KRow*, size_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int64_t>;
  std::vector<int64_t> row_off;
  Key key{};
  bool valid = false;
};
void band_row_offsets(const SubConv& s, const Segment& first_tile, KRows rows, const Band& b,
                      int64_t c_begin, BandOffsets& out);
int64_t tile_shift(const SubConv& s, const Band& b, const Segment& first_tile, const Segment& t);

// ---- the store (store.cpp) -----------------------------------------------------------------

// Where a segment's first point lands in dst for output row m0 (rows are dst planes apart).
template <typename T>
T* segment_dst(const SubConv& s, T* dst, int64_t group, int64_t m0, const Segment& seg);

// Adds the bias (if any: without one the sums are stored as they are, -0 included) and writes
// the tile to its phase's places in dst.  With xs > 0, `phases` holds the tiles of the xs x
// phases 0 .. xs - 1 (x stride xs) of one grid block, s being phase 0: they are written
// together as one contiguous interleaved run, d[xs * u + r] from phases[r] (acc unused).
// With kCheck, returns nonzero when a stored value is Inf or NaN (else 0).  `stream`: the
// interleaved runs are written with non-temporal stores where aligned (SubconvPlan::stream).
template <bool kCheck, typename T>
NonfiniteBits<T> store_tile(const SubConv& s, T* dst, const T* bias, int64_t group, int64_t m0,
                            int64_t mc, const std::vector<Segment>& segs, const T* acc,
                            int64_t ldc, const T* const* phases = nullptr, int xs = 0,
                            bool stream = false);

// ---- the plan (plan.cpp) -------------------------------------------------------------------

// Rows [m0, m0 + mc) of group `group` of sub-convolution `sub`, grid points [q0, q0 + nc).
struct Task {
  int64_t sub, group, m0, q0, nc;
};

// How a task reads its source: packed (im2col with zeros into B panels), indirect (row
// pointers into the source, border rows copied), or through its zero-padded band, filled once
// for the task (kBand) or once per K block with that block's channels (kBandPerBlock).
enum class Input { kPacked, kIndirect, kBand, kBandPerBlock };

// Everything one call decides before it runs: blocking, tasks, rounds and the A packing.  The
// executor (run.cpp) only reads it; what depends on a task's own tiles is the rule task_input.
struct SubconvPlan {
  bool empty = true;  // no pixels: nothing to compute
  // The register tiles: wide for M <= kWideMR, narrow for grid rows too short for nr columns
  // (narrow_tiles), else the main ones.
  TileSet tiles = TileSet::kMain;
  int mr = 0, nr = 0;
  int64_t elem = 0;     // sizeof(T)
  int64_t kc = 0;       // K block (k_block<T>(): never thread-dependent)
  int64_t mcb = 0;      // A rows swept per B panel (L2 block)
  int64_t ms = 0, slabs = 0;  // output channels per slab, slab count
  double flops = 0;
  int threads = 1;
  bool parallel = false;
  // packed A of one slab: a_off[si] + (g * K + k0) * ms holds K block k0 of group g, the
  // slab's rows x kc as panels of mr rows (panel at slab row i: + i * kc)
  std::vector<int64_t> a_off;
  std::vector<int64_t> mc_of;   // rows per task of each sub-convolution
  std::vector<char> direct_of;  // row tiles (indirect or band) rather than packed B
  std::vector<char> active;     // the sub-convolution has tasks
  std::vector<std::vector<KRow>> all_rows;  // every sub-convolution's whole K
  // A packing units of a slab: (group, K block start, first panel), panels_per_unit panels
  std::vector<std::array<int64_t, 3>> a_units;
  int64_t panels_per_unit = 0;
  // tasks in rounds (round r: tasks [round_start[r], round_start[r + 1])), slab sl's rounds
  // [slab_round[sl], slab_round[sl + 1])
  std::vector<Task> tasks;
  std::vector<int64_t> round_start, slab_round;
  // Rounds handed out by a guided schedule (runs of consecutive rounds per thread, shrinking
  // to single rounds at the end) rather than one at a time: see plan_subconvs.
  bool guided = false;
  int xs = 0;  // x phases stored together (0: each phase stores its own tile)
  // the x-phase groups' interleaved runs go out with non-temporal stores (an output of at
  // least kStreamBytes: written once, larger than the caches; reading its lines in first
  // costs as much memory traffic as writing them)
  bool stream = false;
  OffsetHull hull;
  bool band_shared = false;  // the phases share one hull-shaped band
  // Every direct sub-convolution's grid rows are too short for row tiles (fills_tiles) and its
  // tasks read a hull-shaped band through pitched tiles (pitched_tiles) instead of packing B:
  // all of them (its phases without taps too), or, when the band outgrows kMaxBandBytes,
  // none (row tiles).
  bool pitched = false;
  // per sub-convolution: the packed path's column order (border_boxes; empty: the grid's)
  std::vector<std::vector<GridBox>> boxes;
};

// whole_weights: one slab (every output channel's weights packed at once) rather than slabs
// whose packed weights are no larger than the output (run_subconvs).
template <typename T>
SubconvPlan plan_subconvs(const std::vector<SubConv>& subs, const GemmKernels<T>& uk,
                          int threads, bool whole_weights = false);

struct TaskInput {
  Input mode = Input::kPacked;
  Band band;  // kBand, kBandPerBlock
  bool pitched = false;  // pitched tiles (pitched_tiles) and, if it has taps, a pitched band
};

// The input of task `task` of sub-convolution s, from the plan and the task's row_tiles
// (ignored unless direct_of[task.sub]), into `in` (a worker's: its band's vectors keep their
// capacity from task to task).  pitched (p.pitched): `tiles` are the task's segments and the
// band is pitched, when it fits (in.pitched; shaped for a phase without taps too, so that
// every phase of a call decides alike); else in.mode is kPacked and the caller asks again
// with the row tiles.
void task_input(const SubconvPlan& p, const SubConv& s, const Task& task,
                const std::vector<Segment>& tiles, TaskInput& in, bool pitched = false);

// A task's tiles and input, as the executor runs them: the direct path's pitched tiles
// (p.pitched, when the band fits; `store`: their segments for store_tile) or row tiles
// (row_tiles), none for the packed path; then task_input.  segs: the task's row_segments.
void task_tiles(const SubconvPlan& p, const SubConv& s, const Task& task,
                const std::vector<Segment>& segs, std::vector<Segment>& tiles,
                std::vector<Segment>& store, TaskInput& in);

}  // namespace tconv::detail
