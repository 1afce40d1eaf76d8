// The pure kernels of tconv.  They know nothing of Python: plain pointers to C-contiguous
// arrays laid out as documented in geometry.hpp, and a Geometry that has been validated.
// Every kernel writes each output element from exactly one thread, in a fixed summation
// order, so results are bitwise identical for any thread count (no atomics).
//
// How they run (XNNPACK-like split): the operators (scatter.cpp, gather.cpp, weight_grad.cpp)
// do the shape arithmetic and build implicit GEMMs; scatter splits the output into stride
// phases (sub-convolutions, no multiplications by inserted zeros); packed register-blocked
// micro-kernels (ukernels/*.cpp, one translation unit per ISA) do the arithmetic, chosen once
// at load time by dispatch.cpp (TCONV_ISA=avx512|avx2|generic overrides; see set_isa).
// A forward with at most 4 output channels per group runs instead as one GEMM with output
// channel x tap rows and a col2im gather (columns.cpp), chosen from the channels and the
// kernel only (never the batch, image size or thread count: an output's value must not
// depend on them, which tconv.dask's bit-for-bit blocks rely on).
// Each operator first plans its call (tconv/plan.hpp: algorithm, tiles, blocks, tasks,
// parallel or not) and then only runs that plan; tconv.plan() reports the same plan.
//
// Workspace bound.  Besides the arrays it returns, a call allocates:
//   * packed A (weights) of the scatter/gather: the output channels are processed in slabs
//     whose weights, in panel order, are packed once and shared by the threads; a slab's copy
//     is no larger than the output plus mr - 1 output channels' worth of W (slabs are whole
//     panels of mr = 6 rows; one slab = all of W when W is no larger than the output);
//   * per thread, scratch that does not grow with the batch or the image size: packed B
//     kc x nc and the accumulator tile M x nc (nc <= 4 x 192 + nr; a pitched task's tiles
//     span its up to 2 x 4 x 192 grid points at the pitch of a row plus the kernel's extra
//     x taps; kc = 1024 bytes / sizeof(T);
//     xs such tiles for a forward with an x stride xs of 2, 4 or 8, whose x phases are stored
//     together),
//     a pointer table kc x tiles, and the direct path's zero-padded source band
//     (C_in/groups x taps_z x (rows + halo) x (<= 192 + halo), a pitched one of the task's
//     rows + halo x (row + halo) and nr + a row's values past it) only when <= 2 MiB;
//   * a 1x1, stride-1, unpadded forward or gather (gemm/engine.cpp, a plain GEMM per image
//     and group): the weights packed once, exactly W's size, shared by the threads; per
//     thread one packed B block kc x round_up(nc, nr) (kc = k_block<T>(), nc <= 512 pixels:
//     <= 512 KiB + one nr-wide column), one mr x nr tile and, when K > kc, the partial sums
//     of the task's rows x round_up(nc, nr) (grows with the output channels, like the
//     accumulator tile below);
//   * the forward with few output channels per group (columns.cpp), per thread: the GEMM's
//     result Z for one block of the output, (C_out/groups x taps) x (the block's input
//     pixels + a tile), <= 1 MiB unless a single output row (plane in 3-D) needs more, its
//     packed A block <= (512 + mr - 1) x 1 KiB, the packed B panels of up to 128 KiB of
//     tiles (at least one tile; never more than the block's pixels) and one output row;
//   * the forward and gather with one channel per group on each side (depthwise.cpp), per
//     thread: a list of (C_in/groups) x taps terms and, for an x stride > 1, one output row's
//     x phases (forward) or the x phases of the kz x ky source rows of one output row (gather);
//   * weight_grad: packed A <= 512 x (4 KiB + 64 B) and B <= 48 x (4 KiB + 64 B) (rows of the
//     reduction block; the outer-product form: rows of kc = 24 KiB / (nr x sizeof(T)) values
//     + 64 B, A <= 256 of them and B nr of them, plus B transposed, 24 KiB) per thread, and a
//     second partial sum exactly the size of dW (the output) when the reduction is split in
//     two chunks (never more), and one table of B's columns shared by the threads, 80 bytes
//     per (C_fine/groups x taps) column (the weight's size, never the batch's or image's);
//     the channels-last form instead: per thread, A's panels (<= 512 + mr - 1 rows of kc),
//     their transposes and the band (the fine pixels one K block of kc coarse points reads,
//     as intervals of rows of each fine plane it reaches, for the task's fine channels: a
//     few rows of a few planes, never a whole plane's worth more or the batch), and the
//     result once per chunk (<= 2 x dW);
//   * a forward or gather run batch-inner (batch_inner.cpp: >= 32 images of <= 256 pixels
//     whose terms often read padding): a copy of the source and one of the destination, and
//     for the gather its packed weights in one slab (the size of the weight, rounded up to
//     whole panels of output channels) instead of slabs no larger than the output;
// and never another copy of the input, a column (im2col) buffer of the problem or atomics.
// So the problem-sized buffers are each <= the output, but for batch-inner's two copies
// (input + output) and its gather's packed weights; the rest is per thread and independent of
// batch and image size (the accumulator tile grows with the channel count).  Scratch a call
// frees stays with its thread for the next call (workspace.cpp: <= 16 blocks and
// TCONV_SCRATCH_CACHE_BYTES a thread), so a thread holds about its largest recent call's share
// of this bound between calls.
#pragma once

#include <string>
#include <vector>

#include "tconv/geometry.hpp"

namespace tconv {

// y = C^T x (transposed convolution, scatter-add form).
//   x: (N, C_coarse, *coarse)   w: (C_coarse, C_fine/groups, *kernel)   bias: (C_fine) or null
//   y: (N, C_fine, *fine)       overwritten
template <typename T>
void scatter(const Geometry& g, const T* x, const T* w, const T* bias, T* y);

// x = C y (ordinary strided convolution, gather form; also grad_input of conv_transpose).
//   y: (N, C_fine, *fine)   w as above   bias: (C_coarse) or null   x: (N, C_coarse, *coarse)
template <typename T>
void gather(const Geometry& g, const T* y, const T* w, const T* bias, T* x);

// dW[c][f][k] = sum_n sum_i coarse[n][c][i] * fine[n][f][i*s - p + k*d]
// (grad_weight of conv_transpose with coarse = input, fine = grad_output, and of conv with
// coarse = grad_output, fine = input).   dw: (C_coarse, C_fine/groups, *kernel), overwritten.
template <typename T>
void weight_grad(const Geometry& g, const T* coarse, const T* fine, T* dw);

// Loop-nest repairs (csrc/direct.cpp): each recomputes, multiplying only the pairs the
// operator's definition pairs up, exactly the elements of an already computed result that are
// Inf or NaN, so Inf/NaN reach exactly the outputs they touch.  The operators above run them
// after their fast kernel when it left an Inf or NaN (see tconv/nonfinite.hpp).
template <typename T>
bool all_finite(const T* p, int64_t n);
template <typename T>
void scatter_repair(const Geometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void gather_repair(const Geometry& g, const T* y, const T* w, const T* bias, T* x);
template <typename T>
void weight_grad_repair(const Geometry& g, const T* coarse, const T* fine, T* dw);

// ISA dispatch: names are "avx512", "avx2", "generic".  supported_isas() lists those this
// build and CPU can run, best first; set_isa throws std::invalid_argument for any other name.
std::string isa();
std::vector<std::string> supported_isas();
void set_isa(const std::string& name);

// OpenMP thread control (the pool used by every kernel), process-wide: set_num_threads
// stores the count, apply_num_threads makes the calling thread use it (call it before a kernel).
// In a process forked after a kernel ran multi-threaded the count is 1 for good (libgomp's
// pool does not survive fork) and set_num_threads(n > 1) throws std::runtime_error.
int get_num_threads();
void set_num_threads(int n);
void apply_num_threads();

}  // namespace tconv
