// The planner (tconv/plan.hpp): one function per operator, each summarising the plan that the
// operator's executor computes with the same functions, plus the workspace it will allocate.
#include <algorithm>
#include <array>
#include <atomic>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#include <iterator>
#include <cstdlib>
#include <omp.h>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unistd.h>

#include "gemm/engine.hpp"
#include "subconv/internal.hpp"
#include "tconv/columns.hpp"
#include "tconv/depthwise.hpp"
#include "tconv/kernels.hpp"
#include "tconv/plan.hpp"
#include "tconv/weight_grad.hpp"
#include "tconv/winograd.hpp"
#include "tconv/winograd_gather.hpp"

namespace tconv {

namespace {

int64_t read_l2_cache_bytes() {
  int64_t bytes = 0;
  if (const char* env = std::getenv("TCONV_L2_BYTES")) {
    char* end = nullptr;
    const long long v = std::strtoll(env, &end, 10);
    if (end != env && *end == '\0' && v > 0) bytes = v;
  }
#ifdef _SC_LEVEL2_CACHE_SIZE
  if (bytes == 0) bytes = static_cast<int64_t>(sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
  if (bytes <= 0) bytes = kL2DefaultBytes;
  return std::clamp(bytes, kL2MinBytes, kL2MaxBytes);
}

}  // namespace

int64_t l2_cache_bytes() {
  static const int64_t bytes = read_l2_cache_bytes();
  return bytes;
}

namespace {

// AMD family 19h (Zen 3 and Zen 4; of those, only Zen 4 has AVX-512, the one table with
// narrow tiles).
bool amd_family_19h() {
#if defined(__x86_64__) || defined(__i386__)
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return false;
  const bool amd = b == 0x68747541 && d == 0x69746e65 && c == 0x444d4163;  // "AuthenticAMD"
  if (!amd || !__get_cpuid(1, &a, &b, &c, &d)) return false;
  const unsigned base = (a >> 8) & 0xf, extended = (a >> 20) & 0xff;
  return base == 0xf && base + extended == 0x19;
#else
  return false;
#endif
}

bool default_narrow_tiles() {
  if (const char* env = std::getenv("TCONV_NARROW_TILES")) {
    if (std::string(env) == "0") return false;
    if (std::string(env) == "1") return true;
  }
  return amd_family_19h();
}

std::atomic<int> narrow_tiles_mode{-1};  // set_narrow_tiles: -1 default, 0 off, 1 on

}  // namespace

bool narrow_tiles_enabled() {
  static const bool by_default = default_narrow_tiles();
  const int mode = narrow_tiles_mode.load(std::memory_order_relaxed);
  return mode < 0 ? by_default : mode == 1;
}

void set_narrow_tiles(int mode) {
  narrow_tiles_mode.store(mode < 0 ? -1 : mode > 0 ? 1 : 0, std::memory_order_relaxed);
}

namespace {

std::atomic<int> pitched_band_setting{-1};  // set_pitched_band: -1 the rule, 0 off, 1 on

}  // namespace

int pitched_band_mode() { return pitched_band_setting.load(std::memory_order_relaxed); }

void set_pitched_band(int mode) {
  pitched_band_setting.store(mode < 0 ? -1 : mode > 0 ? 1 : 0, std::memory_order_relaxed);
}

namespace {

template <typename T>
const char* dtype_name() {
  return sizeof(T) == sizeof(float) ? "float32" : "float64";
}

template <typename T>
Plan base_plan(const char* kernel, const char* algorithm) {
  Plan p;
  p.kernel = kernel;
  p.algorithm = algorithm;
  p.isa = isa();
  p.dtype = dtype_name<T>();
  return p;
}

// Walks the tasks of a sub-convolution plan as the executor does (row tiles, the input
// rule) for the largest per-thread scratch and the input modes used.
template <typename T>
Plan summarise_subconvs(const std::vector<SubConv>& subs, const detail::SubconvPlan& sp,
                        Plan p) {
  using namespace detail;
  p.mr = sp.mr;
  p.nr = sp.nr;
  p.kc = sp.kc;
  p.slabs = sp.slabs;
  p.flops = sp.flops;
  p.tasks = static_cast<int64_t>(sp.tasks.size());
  p.parallel = sp.parallel;
  p.threads = sp.parallel ? sp.threads : 1;
  if (sp.empty) return p;
  const int64_t elem = sp.elem;
  // the Input modes' names, and the packed path border-sorted (p.boxes)
  static const char* const input_names[] = {"packed", "indirect", "band", "band_per_block",
                                            "packed_sorted", "pitched_band",
                                            "pitched_band_per_block"};
  std::array<bool, std::size(input_names)> seen{};
  int64_t thread_bytes = 0;
  std::vector<Segment> segs, tiles, store;
  TaskInput in;
  for (const Task& task : sp.tasks) {
    const SubConv& s = subs[static_cast<size_t>(task.sub)];
    const int64_t slab_m0 = task.m0 / sp.ms * sp.ms;
    const int64_t slab_rows = std::min(sp.ms, s.M - slab_m0);
    const int64_t mc =
        block_rows(slab_m0 + slab_rows - task.m0, sp.mc_of[static_cast<size_t>(task.sub)], sp.mr);
    row_segments(s, sp.boxes[static_cast<size_t>(task.sub)], task.q0, task.nc, segs);
    task_tiles(sp, s, task, segs, tiles, store, in);
    const bool sorted =
        in.mode == Input::kPacked && !sp.boxes[static_cast<size_t>(task.sub)].empty();
    const std::string_view name =
        in.pitched ? (in.mode == Input::kBandPerBlock ? "pitched_band_per_block" : "pitched_band")
        : sorted   ? "packed_sorted"
                   : input_names[static_cast<size_t>(in.mode)];
    seen[static_cast<size_t>(std::find(std::begin(input_names), std::end(input_names), name) -
                             std::begin(input_names))] = true;
    const auto n_tiles = static_cast<int64_t>(tiles.size());
    const int64_t ncp = in.mode != Input::kPacked ? n_tiles * sp.nr : round_up(task.nc, sp.nr);
    const int64_t band_channels =
        in.mode == Input::kBand ? s.Kc
        : in.mode == Input::kBandPerBlock ? std::min(s.Kc, sp.kc / s.taps() + 2)
                                          : 0;
    // accumulator tiles (xs of them in an x-phase group), B (+ border rows), band, pointers
    const int64_t band_values = band_channels > 0 ? in.band.values(band_channels) : 0;
    const int64_t bytes = (std::max(1, sp.xs) * mc * ncp + 2 * sp.kc * ncp + band_values) * elem +
                          sp.kc * n_tiles * int64_t(sizeof(T*));
    thread_bytes = std::max(thread_bytes, bytes);
    p.mc = std::max(p.mc, mc);
    p.nc = std::max(p.nc, task.nc);
  }
  for (size_t i = 0; i < seen.size(); ++i)
    if (seen[i]) p.input += (p.input.empty() ? "" : "+") + std::string(input_names[i]);
  p.workspace_bytes = sp.a_off.back() * elem + p.threads * thread_bytes;
  return p;
}

template <typename T>
Plan plan_columns_call(const Geometry& g, int threads) {
  Plan p = base_plan<T>("scatter", "columns");
  const ColumnsPlan cp = plan_columns<T>(g, threads);
  const GemmKernels<T>& uk = active_gemm<T>();
  p.mr = uk.mr;
  p.nr = uk.nr;
  p.kc = k_block<T>();
  p.mc = cp.rows;
  p.slabs = cp.blocks;
  p.tasks = cp.task_count;
  p.flops = cp.flops;
  p.parallel = cp.parallel;
  p.threads = cp.parallel ? threads : 1;
  if (cp.task_count == 0) return p;
  // per thread: one block's Z, the packed A block, the B panels packed at once and one
  // output row (kernels.hpp)
  const int64_t z = ceil_div(cp.z_bytes, cp.blocks);
  const int64_t a = round_up(cp.rows, uk.mr) * p.kc * int64_t(sizeof(T));
  const int64_t row = g.fine[2] * int64_t(sizeof(T));
  p.workspace_bytes = p.threads * (z + a + cp.b_bytes + row);
  return p;
}

template <typename T>
Plan plan_gemm_call(const Geometry& g, bool transposed, const char* kernel, int threads,
                    bool phases = false) {
  Plan p = base_plan<T>(kernel, "gemm");
  const GemmPlan gp = phases ? plan_phase_gemm<T>(g, transposed, threads)
                             : plan_gemm<T>(g, transposed, threads);
  if (phases) p.input = "phases";
  if (gp.pipelined) p.input += p.input.empty() ? "pipelined" : "+pipelined";
  p.mr = gp.mr;
  p.nr = gp.nr;
  p.kc = gp.kc;
  p.mc = gp.mc;
  p.nc = gp.nc;
  p.tasks = gp.tasks;
  p.flops = gp.flops;
  p.parallel = gp.parallel;
  p.threads = gp.parallel ? threads : 1;
  p.workspace_bytes = gp.workspace_bytes;
  return p;
}

template <typename T>
Plan plan_depthwise_call(const Geometry& g, bool transposed, const char* kernel, int threads) {
  Plan p = base_plan<T>(kernel, "depthwise");
  const DepthwisePlan dp = plan_depthwise(g, transposed, threads);
  p.tasks = dp.tasks;
  p.nc = dp.rows_per_task;
  p.parallel = dp.parallel;
  p.threads = dp.parallel ? threads : 1;
  p.workspace_bytes = p.threads * dp.scratch_values * int64_t(sizeof(T));
  p.flops = 2.0 * double(g.batch) * double(g.coarse_channels) * double(g.fine_per_group()) *
            double(g.coarse_pixels()) * double(g.taps());
  return p;
}

template <typename T>
Plan plan_winograd_call(const Geometry& g, int m, int threads, bool gather = false) {
  Plan p = base_plan<T>(gather ? "gather" : "scatter", m == 2 ? "winograd" : "winograd4");
  const WinogradPlan wp = gather ? plan_winograd_gather<T>(g, m) : plan_winograd<T>(g, m);
  p.input = wp.transforms;
  p.mr = wp.mr;
  p.nr = wp.nr;
  p.kc = wp.kc;
  p.mc = wp.slab;
  p.nc = wp.tiles_per_task;
  p.tasks = wp.tasks;
  // the weight transform and the tasks run in one parallel region of the pool (no threshold)
  p.parallel = threads > 1;
  p.threads = threads;
  p.workspace_bytes = wp.u_bytes + p.threads * wp.thread_bytes;
  p.flops = 2.0 * wp.direct_products;
  return p;
}

}  // namespace

ForwardMethod choose_algorithm(const Geometry& g, ForwardMethod requested) {
  if (requested == ForwardMethod::kAuto) return ForwardMethod::kDirect;
  const int m = winograd_tile(requested);
  if (m != 0 && !winograd_suits(g, m)) return ForwardMethod::kDirect;
  return requested;
}

Algorithm forward_algorithm(const Geometry& g) {
  if (gemm_suits(g)) return Algorithm::kGemm;
  if (depthwise_suits(g)) return Algorithm::kDepthwise;
  if (phase_gemm_suits(g)) return Algorithm::kPhaseGemm;
  if (columns_suit(g)) return Algorithm::kColumns;
  return batch_inner_suits(g, /*transposed=*/true) ? Algorithm::kBatchInner : Algorithm::kSubconv;
}

Algorithm gather_algorithm(const Geometry& g) {
  if (gemm_suits(g)) return Algorithm::kGemm;
  if (depthwise_suits(g)) return Algorithm::kDepthwise;
  if (phase_gemm_suits(g)) return Algorithm::kPhaseGemm;
  return batch_inner_suits(g, /*transposed=*/false) ? Algorithm::kBatchInner : Algorithm::kSubconv;
}

namespace {

// The sub-convolution plan of g's forward (transposed) or gather, batch-inner when chosen:
// then its source and destination copies count in the workspace.
template <typename T>
Plan plan_subconv_call(const Geometry& g, bool transposed, bool batch_inner, int threads) {
  const Geometry b = batch_inner ? batch_inner_geometry(g) : g;
  const std::vector<SubConv> subs =
      transposed ? scatter_subconvs(b) : std::vector<SubConv>{gather_subconv(b)};
  const bool whole_weights = batch_inner && batch_inner_whole_weights(transposed);
  Plan p = summarise_subconvs<T>(
      subs, detail::plan_subconvs<T>(subs, active_gemm<T>(), threads, whole_weights),
      base_plan<T>(transposed ? "scatter" : "gather", "subconv"));
  if (batch_inner) {
    p.input = "batch_inner+" + p.input;
    const BatchInnerCopies copies = batch_inner_copies(g, transposed);
    p.workspace_bytes += (copies.src + copies.dst) * int64_t(sizeof(T));
  }
  return p;
}

}  // namespace

template <typename T>
Plan plan_scatter(const Geometry& g, int threads, ForwardMethod requested) {
  const int m = winograd_tile(choose_algorithm(g, requested));
  if (m != 0) return plan_winograd_call<T>(g, m, threads);
  if (forward_algorithm(g) == Algorithm::kGemm)
    return plan_gemm_call<T>(g, /*transposed=*/true, "scatter", threads);
  if (forward_algorithm(g) == Algorithm::kDepthwise)
    return plan_depthwise_call<T>(g, /*transposed=*/true, "scatter", threads);
  if (forward_algorithm(g) == Algorithm::kPhaseGemm)
    return plan_gemm_call<T>(g, /*transposed=*/true, "scatter", threads, /*phases=*/true);
  if (forward_algorithm(g) == Algorithm::kColumns) return plan_columns_call<T>(g, threads);
  return plan_subconv_call<T>(g, /*transposed=*/true,
                              forward_algorithm(g) == Algorithm::kBatchInner, threads);
}

template <typename T>
Plan plan_gather(const Geometry& g, int threads, ForwardMethod requested) {
  const int m = winograd_tile(choose_gather_algorithm(g, requested));
  if (m != 0) return plan_winograd_call<T>(g, m, threads, /*gather=*/true);
  if (gather_algorithm(g) == Algorithm::kGemm)
    return plan_gemm_call<T>(g, /*transposed=*/false, "gather", threads);
  if (gather_algorithm(g) == Algorithm::kDepthwise)
    return plan_depthwise_call<T>(g, /*transposed=*/false, "gather", threads);
  if (gather_algorithm(g) == Algorithm::kPhaseGemm)
    return plan_gemm_call<T>(g, /*transposed=*/false, "gather", threads, /*phases=*/true);
  return plan_subconv_call<T>(g, /*transposed=*/false,
                              gather_algorithm(g) == Algorithm::kBatchInner, threads);
}

template <typename T>
Plan plan_weight_grad(const Geometry& g, int threads) {
  if (depthwise_suits(g)) {
    Plan p = base_plan<T>("weight_grad", "depthwise");
    const DepthwiseWeightGradPlan dp = plan_depthwise_weight_grad(g, threads);
    p.tasks = dp.tasks;
    p.nc = dp.items;
    p.slabs = dp.chunks;
    p.parallel = dp.parallel;
    p.threads = dp.parallel ? threads : 1;
    p.workspace_bytes =
        (p.threads * dp.scratch_values + dp.partial_values) * int64_t(sizeof(T));
    p.flops = 2.0 * double(g.batch) * double(g.coarse_channels) * double(g.coarse_pixels()) *
              double(g.taps());
    return p;
  }
  const GemmKernels<T>& uk = active_gemm<T>();
  const WeightGradPlan wp = plan_weight_grad_blocks<T>(g, uk, threads);
  Plan p = base_plan<T>("weight_grad", wp.phase           ? "phase_channels"
                                       : wp.channels_last ? "channels_last"
                                       : wp.outer         ? "outer_product"
                                                          : "dot");
  p.mr = wp.mr;
  p.nr = wp.nr;
  p.kc = wp.kc;
  p.mc = wp.mc;
  p.nc = wp.nc;
  p.slabs = wp.chunks;
  p.tasks = static_cast<int64_t>(wp.tasks.size());
  p.flops = wp.flops;
  p.parallel = wp.parallel;
  p.threads = wp.parallel ? threads : 1;
  if (wp.tasks.empty()) return p;
  const int64_t dw = g.coarse_channels * g.fine_per_group() * g.taps() * int64_t(sizeof(T));
  if (wp.channels_last) {
    // per thread: A's panels and the band (weight_grad.cpp); the result in the (tap, row,
    // channel) order, once per chunk; the table of B's columns
    p.workspace_bytes =
        p.threads * channels_last_thread_values<T>(g, wp) * int64_t(sizeof(T)) +
        wp.chunks * wp.out_values * int64_t(sizeof(T)) + wp.table_bytes;
    return p;
  }
  // per thread: packed A (mc rows) and B (nc rows) of kc + 64 B, the outer form's panel; a
  // second dW when the reduction is split in two chunks; the table of B's columns
  const int64_t line = wp.kc * int64_t(sizeof(T)) + 64;
  const int64_t per_thread = (wp.mc + round_up(wp.nc, wp.nr)) * line +
                             (wp.outer ? wp.kc * wp.nr * int64_t(sizeof(T)) : 0);
  p.workspace_bytes = p.threads * per_thread + (wp.chunks > 1 ? dw : 0) + wp.table_bytes;
  return p;
}

template Plan plan_scatter<float>(const Geometry&, int, ForwardMethod);
template Plan plan_scatter<double>(const Geometry&, int, ForwardMethod);
template Plan plan_gather<float>(const Geometry&, int, ForwardMethod);
template Plan plan_gather<double>(const Geometry&, int, ForwardMethod);
template Plan plan_weight_grad<float>(const Geometry&, int);
template Plan plan_weight_grad<double>(const Geometry&, int);

namespace {

template <typename T>
Plan plan_op(const std::string& op, const Geometry& g, int threads, ForwardMethod requested) {
  if (op == "conv_transpose") return plan_scatter<T>(g, threads, requested);
  if (op == "conv" || op == "grad_input") return plan_gather<T>(g, threads, requested);
  if (op == "grad_weight") return plan_weight_grad<T>(g, threads);
  throw std::invalid_argument("plan: op must be 'conv_transpose', 'conv', 'grad_input' or "
                              "'grad_weight', got '" + op + "'");
}

}  // namespace

Plan plan(const std::string& op, const Geometry& g, const std::string& dtype,
          ForwardMethod requested) {
  const int threads = get_num_threads();
  Plan p;
  if (dtype == "float32") {
    p = plan_op<float>(op, g, threads, requested);
  } else if (dtype == "float64") {
    p = plan_op<double>(op, g, threads, requested);
  } else {
    throw std::invalid_argument("plan: dtype must be 'float32' or 'float64', got '" + dtype +
                                "'");
  }
  p.op = op;
  return p;
}

}  // namespace tconv
