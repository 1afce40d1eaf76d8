// The planner: how an operator call will run, decided from its Geometry, dtype, ISA table and
// thread count before it runs (csrc/plan.cpp).  Each operator's executor runs the plan of the
// same functions (subconv/plan.cpp: plan_subconvs, columns.cpp: plan_columns, weight_grad.cpp:
// plan_weight_grad_blocks), so what plan() reports is what runs.  Not planned: the Inf/NaN
// repair (tconv/nonfinite.hpp), which depends on the data; it runs after any algorithm.
// The thresholds below choose how an operator runs, each defined once and shared by the
// operators that apply it.
#pragma once

#include <cstdint>
#include <string>

#include "tconv/geometry.hpp"

namespace tconv {

// Below this many flops a call runs on one thread (starting the pool costs more than it saves).
constexpr double kParallelFlops = 2e5;
// Tasks aimed at per thread, so that dynamic scheduling evens out their unequal costs.
constexpr int64_t kTasksPerThread = 4;
// A block of A kept in L2 while B panels stream past it (bytes).
constexpr int64_t kL2ABytes = int64_t(256) << 10;
// Outputs of at least this many bytes are written with non-temporal stores where the store
// path has them (the GEMM engine's tiles, the sub-convolutions' interleaved x phases): larger
// than a core's L2, they would be evicted before anything reads them.
constexpr int64_t kStreamBytes = int64_t(4) << 20;

// One core's L2 cache in bytes, for the blocks sized to stay in it: TCONV_L2_BYTES when set
// (a positive integer), else the figure the C library reports (sysconf), else
// kL2DefaultBytes; clamped to [kL2MinBytes, kL2MaxBytes].  Read once per process.  A block
// sized from it never changes a sum (only how the work is cut), so results do not depend on it.
constexpr int64_t kL2DefaultBytes = int64_t(1) << 20;
constexpr int64_t kL2MinBytes = int64_t(256) << 10;
constexpr int64_t kL2MaxBytes = int64_t(4) << 20;
int64_t l2_cache_bytes();
// Whether sub-convolutions whose grid rows are too short for the full register tile take the
// narrow one (subconv/plan.cpp: narrow_tiles).  They pay where 512-bit operations run on
// 256-bit units (AMD family 19h, Zen 4: DCGAN 128->64 forward 1.07x); on a CPU with full
// 512-bit units (Zen 5, family 1Ah) packing the rows for the full tile was faster (DCGAN
// 128->64 forward 1.13x, grad_input 1.15x), and that is the default everywhere but on family
// 19h.  TCONV_NARROW_TILES=0 or 1, read once per process, overrides the CPU's answer, and so
// does set_narrow_tiles(0 or 1) (tests; -1 returns to the process's default).  The tile's
// width never changes a sum.
bool narrow_tiles_enabled();
void set_narrow_tiles(int mode);
// Whether the forward's sub-convolutions whose grid rows are too short for the register tile
// read a pitched band (subconv/plan.cpp: pitched_rule): -1 by the rule (the default), 0
// never, 1 wherever it can run; set_pitched_band (tests).  Its tiles never change a sum.
int pitched_band_mode();
void set_pitched_band(int mode);
// The sub-convolutions' direct (row-tile) path needs rows filling at least this fraction of
// their tiles of nr points; shorter rows take the packed path.
constexpr double kDirectMinFill = 0.6;


// The forward's algorithm: a plain GEMM for 1x1 stride-1 layers (gemm/engine.cpp), rows
// vectorised over pixels for one channel per group on both sides (depthwise.cpp), one GEMM
// with (channel, phase) rows for kernel = stride without padding (gemm/engine.hpp), else
// sub-convolutions (one implicit GEMM per output phase), or for few output channels per group
// one GEMM with channel x tap rows and a col2im gather (columns.cpp).  The gather's: the GEMM
// engine, the depthwise rows, the phase GEMM or one sub-convolution.  Chosen from the
// geometry's kernel, stride, padding and channels only, never the batch, image size or thread
// count, with one exception that never changes a bit: a 1-D or 2-D sub-convolution problem on
// small images of many of them whose terms read padding often runs batch-inner
// (batch_inner.cpp), the same sums of the same terms in the same order.
enum class Algorithm { kGemm, kDepthwise, kSubconv, kColumns, kPhaseGemm, kBatchInner };
Algorithm forward_algorithm(const Geometry& g);
Algorithm gather_algorithm(const Geometry& g);

// Batch-inner sub-convolutions (batch_inner.cpp): whether they suit the forward (transposed)
// or the gather of g, the problem they run (batch 1, the batch as the innermost axis), and the
// run (arrays as in kernels.hpp; the result as run_subconvs').  Workspace: a copy of the
// source and one of the destination, batch_inner_copies(g, transposed) values, and for the
// gather the whole weight packed at once (batch_inner_whole_weights: run_subconvs'
// whole_weights), not slab by slab.
bool batch_inner_suits(const Geometry& g, bool transposed);
bool batch_inner_whole_weights(bool transposed);
Geometry batch_inner_geometry(const Geometry& g);
struct BatchInnerCopies {
  int64_t src = 0, dst = 0;  // values of each copy
};
inline BatchInnerCopies batch_inner_copies(const Geometry& g, bool transposed) {
  const int64_t coarse = g.batch * g.coarse_channels * g.coarse_pixels();
  const int64_t fine = g.batch * g.fine_channels * g.fine_pixels();
  return transposed ? BatchInnerCopies{coarse, fine} : BatchInnerCopies{fine, coarse};
}
template <typename T>
bool run_batch_inner(const Geometry& g, bool transposed, const T* src, const T* w,
                     const T* bias, T* dst, bool check);

// How the forward multiplies (conv_transpose's `algorithm=`): every product of the definition
// (the algorithms above), or Winograd's minimal filtering on each output phase (winograd.cpp,
// docs/winograd.md).
enum class ForwardMethod {
  kDirect,     // forward_algorithm(g)
  kWinograd,   // F(2, r) per axis where winograd_suits(g, 2), else direct
  kWinograd4,  // F(4, r) per axis where winograd_suits(g, 4), else direct
  kAuto,       // the planner's choice: see choose_algorithm
};

// The method that runs for `requested` (never kAuto): a Winograd request that does not suit g
// runs direct.  kAuto runs direct: it may pick a transform only if that transform's measured
// worst error over >= 10 000 fuzz examples stays within the direct path's elementwise bound
// 2 T eps sum|products|, and none does (docs/winograd.md, tools/winograd_error.py).
// Not planned: a call whose x or w holds an Inf or NaN runs direct (the data decides).
ForwardMethod choose_algorithm(const Geometry& g, ForwardMethod requested);

// What plan() returns: the summary of one call's plan.
struct Plan {
  std::string op;         // conv_transpose, conv, grad_input or grad_weight
  std::string kernel;     // scatter, gather or weight_grad
  std::string algorithm;  // gemm, depthwise, subconv, columns, winograd, winograd4,
                          // outer_product or dot
  std::string input;      // subconv: the tasks' input modes (band, indirect, packed; '+'-joined);
                          // gemm: 'phases' for the phase GEMM (kernel = stride);
                          // winograd: the 2-D transforms of the phases ('+'-joined)
  std::string isa, dtype;
  int mr = 0, nr = 0;     // register tile
  int64_t kc = 0, mc = 0, nc = 0;  // K block, rows and columns per task (largest)
  int64_t slabs = 0;      // subconv: output-channel slabs; columns: output blocks per image
  int64_t tasks = 0;
  int threads = 1;        // threads the call runs on (1 when not parallel)
  bool parallel = false;
  int64_t workspace_bytes = 0;  // scratch beyond the output (bound in kernels.hpp)
  double flops = 0;       // of the direct method (winograd too: 2 per product of the definition)
};

// One planner per operator; `threads` is the pool size the call would get.
template <typename T>
Plan plan_scatter(const Geometry& g, int threads, ForwardMethod requested = ForwardMethod::kDirect);
template <typename T>
Plan plan_gather(const Geometry& g, int threads, ForwardMethod requested = ForwardMethod::kDirect);
template <typename T>
Plan plan_weight_grad(const Geometry& g, int threads);

// The plan of operation op (conv_transpose and conv's grad_input are scatters, conv and
// conv_transpose's grad_input gathers; see Plan::op) for dtype "float32" or "float64" with the
// active ISA and thread count; std::invalid_argument for another op or dtype.  `requested`
// applies to conv_transpose (choose_algorithm) and to the gathers, conv and grad_input
// (choose_gather_algorithm, winograd_gather.hpp); grad_weight is direct.
Plan plan(const std::string& op, const Geometry& g, const std::string& dtype,
          ForwardMethod requested = ForwardMethod::kDirect);

}  // namespace tconv
