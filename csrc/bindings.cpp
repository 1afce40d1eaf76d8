// The only file that includes pybind11.  It checks that the arrays it is handed agree with
// each other (the Python layer has already validated the user's arguments and produced these
// arrays), builds one Geometry, releases the GIL and calls a pure kernel.  Arrays must already
// be C-contiguous and of the exact dtype: nothing is converted here (.noconvert()).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "tconv/assert.hpp"
#include "tconv/cancel.hpp"
#include "tconv/kernels.hpp"
#include "tconv/plan.hpp"
#include "tconv/resize.hpp"
#include "tconv/ukernels.hpp"
#include "tconv/weight_grad.hpp"
#include "tconv/winograd.hpp"
#include "tconv/winograd_gather.hpp"
#include "tconv/workspace.hpp"

namespace py = pybind11;

namespace {

template <typename T>
using In = py::array_t<T, py::array::c_style>;
using Sizes = std::vector<int64_t>;

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

Sizes shape_of(const py::array& a) { return Sizes(a.shape(), a.shape() + a.ndim()); }

// coarse: (N, C_coarse, *coarse), fine: (N, C_fine, *fine), weight: (C_coarse, C_fine/g, *k).
tconv::Geometry make_geometry(const Sizes& coarse, const Sizes& fine, const Sizes& weight,
                              const Sizes& stride, const Sizes& pad, const Sizes& dilation,
                              int64_t groups) {
  const auto nd = static_cast<py::ssize_t>(coarse.size()) - 2;
  if (nd < 1 || nd > tconv::kMaxDims) fail("_core: coarse array must have 3 to 5 dims");
  if (fine.size() != coarse.size() || weight.size() != coarse.size())
    fail("_core: coarse, fine and weight arrays must have the same ndim");
  if (static_cast<py::ssize_t>(stride.size()) != nd ||
      static_cast<py::ssize_t>(pad.size()) != nd ||
      static_cast<py::ssize_t>(dilation.size()) != nd)
    fail("_core: stride, pad and dilation need one entry per spatial dim");
  if (groups < 1) fail("_core: groups must be >= 1");
  for (const Sizes* shape : {&coarse, &fine, &weight})
    for (const int64_t n : *shape)
      if (n < 0) fail("_core: sizes must be >= 0");
  tconv::Geometry g;
  g.batch = coarse[0];
  g.groups = groups;
  g.coarse_channels = coarse[1];
  g.fine_channels = fine[1];
  if (fine[0] != g.batch) fail("_core: batch sizes differ");
  if (g.coarse_channels % groups != 0 || g.fine_channels % groups != 0)
    fail("_core: groups must divide both channel counts");
  if (weight[0] != g.coarse_channels || weight[1] * groups != g.fine_channels)
    fail("_core: weight shape does not match the channel counts");
  const py::ssize_t offset = tconv::kMaxDims - nd;
  for (py::ssize_t d = 0; d < nd; ++d) {
    const auto k = static_cast<size_t>(offset + d);
    const auto s = static_cast<size_t>(d);
    g.coarse[k] = coarse[static_cast<size_t>(2 + d)];
    g.fine[k] = fine[static_cast<size_t>(2 + d)];
    g.kernel[k] = weight[static_cast<size_t>(2 + d)];
    g.stride[k] = stride[s];
    g.pad[k] = pad[s];
    g.dilation[k] = dilation[s];
    if (g.stride[k] < 1 || g.dilation[k] < 1) fail("_core: stride and dilation must be >= 1");
    if (g.pad[k] < 0) fail("_core: padding must be >= 0");
  }
  return g;
}

// ---- Ctrl-C: running a kernel so that a Python signal handler can interrupt it ------------
// Python runs signal handlers on the main thread only, and only between bytecodes, which a
// kernel call (GIL released, the caller being the master of its OpenMP teams) does not reach
// until it returns.  So a call made on the main thread installs a Cancellation whose poll
// takes the GIL back for a moment every kPollInterval, from between two tasks, and runs the
// pending handlers (PyErr_CheckSignals).  When one raises (KeyboardInterrupt), the kernel takes
// no further task and returns early, and the exception propagates; the output array then
// holds unspecified values (the Python layer fills a user's out= with NaN).  Calls on other
// threads are not polled: their thread could not run the handler, which the main thread runs
// when it next executes Python.
constexpr std::chrono::milliseconds kPollInterval{20};

bool poll_signals(void* /*context*/) {
  py::gil_scoped_acquire gil;
  // On error the exception stays set on this thread's state until run_kernel rethrows it.
  return PyErr_CheckSignals() != 0;
}

bool on_main_thread() {
  // threading.main_thread() follows fork(): in a child it is the thread that forked.
  static py::handle threading = py::module_::import("threading").release();
  return py::cast<unsigned long>(threading.attr("main_thread")().attr("ident")) ==
         PyThread_get_thread_ident();
}

// Runs kernel() with the GIL released on the calling thread.
template <typename Kernel>
void run_kernel(Kernel&& kernel) {
  const bool interruptible = on_main_thread();
  tconv::Cancellation cancel(interruptible ? &poll_signals : nullptr, nullptr, kPollInterval);
  {
    py::gil_scoped_release release;
    tconv::CancelScope scope(interruptible ? &cancel : nullptr);
    tconv::apply_num_threads();
    kernel();
  }
  if (cancel.cancelled()) throw py::error_already_set();
}

// ---- verbose mode: one line per kernel call on stderr (TCONV_VERBOSE=1, tconv.set_verbose) --
// Off, a call pays one relaxed atomic load.  On, the call is planned first (the plan the kernel
// is about to compute for itself, same thread count) and timed; the line is
//   tconv_verbose,<op>,<algorithm>[/<input>],<isa>,<dtype>,<shapes>,<tile/blocks>,<threads>,<ms>
// where op names the kernel's operation (conv_transpose: scatter, conv: gather, grad_weight);
// a grad_input runs as the other direction's kernel and is reported as that one.
std::atomic<bool> verbose{false};

std::string dims(const Sizes& shape) {
  std::string out;
  for (size_t i = 0; i < shape.size(); ++i) out += (i ? "x" : "") + std::to_string(shape[i]);
  return out;
}

template <typename T, typename Kernel>
void run_logged(const char* op, const tconv::Geometry& g, const Sizes& coarse, const Sizes& fine,
                const Sizes& weight, Kernel&& kernel,
                tconv::ForwardMethod method = tconv::ForwardMethod::kDirect) {
  if (!verbose.load(std::memory_order_relaxed)) {
    run_kernel(kernel);
    return;
  }
  const tconv::Plan p =
      tconv::plan(op, g, sizeof(T) == sizeof(float) ? "float32" : "float64", method);
  const auto start = std::chrono::steady_clock::now();
  run_kernel(kernel);
  const std::chrono::duration<double, std::milli> ms = std::chrono::steady_clock::now() - start;
  char time[32];  // snprintf truncates (a call of 10^28 ms)
  std::snprintf(time, sizeof(time), "%.3f", ms.count());
  const std::string line =
      "tconv_verbose," + p.op + "," + p.algorithm + (p.input.empty() ? "" : "/" + p.input) +
      "," + p.isa + "," + p.dtype + ",coarse:" + dims(coarse) + ";fine:" + dims(fine) +
      ";weight:" + dims(weight) + ",tile:" + std::to_string(p.mr) + "x" + std::to_string(p.nr) +
      ";kc:" + std::to_string(p.kc) + ";mc:" + std::to_string(p.mc) +
      ";nc:" + std::to_string(p.nc) + ";tasks:" + std::to_string(p.tasks) + "," +
      std::to_string(p.threads) + "," + time + "\n";
  PySys_WriteStderr("%s", line.c_str());
}

py::dict plan_dict(const tconv::Plan& p) {
  py::dict d;
  d["op"] = p.op;
  d["kernel"] = p.kernel;
  d["algorithm"] = p.algorithm;
  d["input"] = p.input;
  d["isa"] = p.isa;
  d["dtype"] = p.dtype;
  d["mr"] = p.mr;
  d["nr"] = p.nr;
  d["kc"] = p.kc;
  d["mc"] = p.mc;
  d["nc"] = p.nc;
  d["slabs"] = p.slabs;
  d["tasks"] = p.tasks;
  d["threads"] = p.threads;
  d["parallel"] = p.parallel;
  d["workspace_bytes"] = p.workspace_bytes;
  d["flops"] = p.flops;
  return d;
}

template <typename T>
const T* bias_ptr(const std::optional<In<T>>& bias, int64_t channels) {
  if (!bias) return nullptr;
  if (bias->ndim() != 1 || bias->shape(0) != channels)
    fail("_core: bias must be 1-D with one entry per output channel");
  return bias->data();
}

tconv::ForwardMethod algorithm_named(const std::string& name) {
  if (name == "direct") return tconv::ForwardMethod::kDirect;
  if (name == "winograd") return tconv::ForwardMethod::kWinograd;
  if (name == "winograd4") return tconv::ForwardMethod::kWinograd4;
  if (name == "auto") return tconv::ForwardMethod::kAuto;
  fail("_core: algorithm must be 'direct', 'winograd', 'winograd4' or 'auto', got '" + name +
       "'");
}

template <typename T>
void bind_dtype(py::module_& m) {
  m.def(
      "scatter",
      [](const In<T>& x, const In<T>& w, const std::optional<In<T>>& bias, In<T>& y,
         const Sizes& stride, const Sizes& pad, const Sizes& dilation, int64_t groups,
         const std::string& algorithm) {
        const Sizes cs = shape_of(x), fs = shape_of(y), ws = shape_of(w);
        const tconv::Geometry g = make_geometry(cs, fs, ws, stride, pad, dilation, groups);
        const T* b = bias_ptr(bias, g.fine_channels);
        const tconv::ForwardMethod algo = algorithm_named(algorithm);
        T* out = y.mutable_data();
        run_logged<T>("conv_transpose", g, cs, fs, ws,
                      [&] { tconv::scatter_with<T>(g, algo, x.data(), w.data(), b, out); },
                      algo);
      },
      py::arg("x").noconvert(), py::arg("w").noconvert(), py::arg("bias").noconvert(),
      py::arg("y").noconvert(), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
      py::arg("groups"), py::arg("algorithm") = "direct",
      "y = C^T x: transposed convolution (scatter-add) into the preallocated y.");
  m.def(
      "gather",
      [](const In<T>& y, const In<T>& w, const std::optional<In<T>>& bias, In<T>& x,
         const Sizes& stride, const Sizes& pad, const Sizes& dilation, int64_t groups,
         const std::string& algorithm) {
        const Sizes cs = shape_of(x), fs = shape_of(y), ws = shape_of(w);
        const tconv::Geometry g = make_geometry(cs, fs, ws, stride, pad, dilation, groups);
        const T* b = bias_ptr(bias, g.coarse_channels);
        const tconv::ForwardMethod algo = algorithm_named(algorithm);
        T* out = x.mutable_data();
        run_logged<T>("conv", g, cs, fs, ws,
                      [&] { tconv::gather_with<T>(g, algo, y.data(), w.data(), b, out); },
                      algo);
      },
      py::arg("y").noconvert(), py::arg("w").noconvert(), py::arg("bias").noconvert(),
      py::arg("x").noconvert(), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
      py::arg("groups"), py::arg("algorithm") = "direct",
      "x = C y: ordinary convolution (gather) into the preallocated x.");
  m.def(
      "weight_grad",
      [](const In<T>& coarse, const In<T>& fine, In<T>& dw, const Sizes& stride,
         const Sizes& pad, const Sizes& dilation, int64_t groups) {
        const Sizes cs = shape_of(coarse), fs = shape_of(fine), ws = shape_of(dw);
        const tconv::Geometry g = make_geometry(cs, fs, ws, stride, pad, dilation, groups);
        T* out = dw.mutable_data();
        run_logged<T>("grad_weight", g, cs, fs, ws,
                      [&] { tconv::weight_grad<T>(g, coarse.data(), fine.data(), out); });
      },
      py::arg("coarse").noconvert(), py::arg("fine").noconvert(), py::arg("dw").noconvert(),
      py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"),
      "dW[c][f][k] = sum coarse[n][c][i] * fine[n][f][i*s-p+k*d] into the preallocated dw.");
}


// ---- resize: integer-factor upsampling and its adjoint (csrc/resize.cpp) -------------------
// x: (N, C, *in), y: (N, C, *(in * scale)); scale has one entry per spatial dim.
struct ResizeProblem {
  int64_t planes = 0;
  tconv::Dims in{1, 1, 1};
  tconv::Dims scale{1, 1, 1};
};

ResizeProblem make_resize(const py::array& coarse, const py::array& fine, const Sizes& scale) {
  const py::ssize_t nd = coarse.ndim() - 2;
  if (nd < 1 || nd > tconv::kMaxDims) fail("_core: resize arrays must have 3 to 5 dims");
  if (fine.ndim() != coarse.ndim()) fail("_core: resize arrays must have the same ndim");
  if (static_cast<py::ssize_t>(scale.size()) != nd)
    fail("_core: scale needs one entry per spatial dim");
  if (fine.shape(0) != coarse.shape(0) || fine.shape(1) != coarse.shape(1))
    fail("_core: resize arrays must share batch and channels");
  ResizeProblem r;
  r.planes = coarse.shape(0) * coarse.shape(1);
  const py::ssize_t offset = tconv::kMaxDims - nd;
  for (py::ssize_t d = 0; d < nd; ++d) {
    const auto k = static_cast<size_t>(offset + d);
    const int64_t s = scale[static_cast<size_t>(d)];
    if (s < 1) fail("_core: scale must be >= 1");
    if (coarse.shape(2 + d) < 1) fail("_core: resize input spatial sizes must be >= 1");
    if (fine.shape(2 + d) != coarse.shape(2 + d) * s)
      fail("_core: upsampled size must be input size * scale");
    r.in[k] = coarse.shape(2 + d);
    r.scale[k] = s;
  }
  return r;
}

tconv::ResizeMode resize_mode(const std::string& mode) {
  if (mode == "nearest") return tconv::ResizeMode::Nearest;
  if (mode == "linear") return tconv::ResizeMode::Linear;
  fail("_core: resize mode must be 'nearest' or 'linear', got '" + mode + "'");
}

template <typename T>
void bind_resize(py::module_& m) {
  m.def(
      "upsample",
      [](const In<T>& x, In<T>& y, const Sizes& scale, const std::string& mode) {
        const ResizeProblem r = make_resize(x, y, scale);
        const tconv::ResizeMode md = resize_mode(mode);
        T* out = y.mutable_data();
        run_kernel([&] { tconv::upsample<T>(r.planes, r.in, r.scale, md, x.data(), out); });
      },
      py::arg("x").noconvert(), py::arg("y").noconvert(), py::arg("scale"), py::arg("mode"),
      "y = U x: integer-factor upsampling ('nearest' or 'linear') into the preallocated y.");
  m.def(
      "upsample_adjoint",
      [](const In<T>& gy, In<T>& gx, const Sizes& scale, const std::string& mode) {
        const ResizeProblem r = make_resize(gx, gy, scale);
        const tconv::ResizeMode md = resize_mode(mode);
        T* out = gx.mutable_data();
        run_kernel(
            [&] { tconv::upsample_adjoint<T>(r.planes, r.in, r.scale, md, gy.data(), out); });
      },
      py::arg("gy").noconvert(), py::arg("gx").noconvert(), py::arg("scale"), py::arg("mode"),
      "gx = U^T gy: the adjoint (gradient) of upsample, into the preallocated gx.");
}
// ---- end resize ----------------------------------------------------------------------------

// ---- one micro-kernel, called directly (tests/test_ukernels.py) ---------------------------
// The arrays are given in the kernel's own layout (csrc/tconv/ukernels.hpp); every size is
// checked here so that no call can reach outside an array.  `slot` is the GemmKernels field
// (the wide w* and narrow n* slots take the arrays of the slot they are named after):
//   fn wfn nfn     a: panel (>= kc*rows), b: panel (>= kc*cols)
//   ifn wifn nifn  a: panel, b: (n, >= cols) rows, index: kc row numbers of b (b_rows[k])
//   ofn wofn nofn  a: panel, b: 1-D, index: kc element offsets into b (b_off[k])
//   kfn nkfn       a: panel, b: 1-D, index: (2, kc >= 0): A panel rows a_rows[l], then
//                  element offsets into b b_off[l]
//   rfn            a: (rows, lda >= kc), b: panel
//   dot            a: (rows, lda >= kc), b: (cols, ldb >= kc), kc a multiple of dot_kw
//   transpose      a: (cols, ld >= kc) rows, c: (kc, cols) panel (rows and b unused)
// and c is (rows, ldc >= cols) otherwise.  The call runs on the calling thread.  For the slots
// of the gemm, igemm, ogemm and kgemm kinds, `bias` (>= rows values), `check` and `partial`
// ((rows, >= cols), read by accumulate instead of c) give the kernel an Epilogue; the call
// returns whether that epilogue found an Inf or NaN (else false).
const tconv::IsaKernels& isa_table(const std::string& isa) {
  const tconv::IsaKernels* t = tconv::kernels_for(isa);
  if (t == nullptr) fail("_core: ISA '" + isa + "' is unknown or not supported here");
  return *t;
}

template <typename T>
const tconv::GemmKernels<T>& gemm_table(const tconv::IsaKernels& t) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return t.f32;
  } else {
    return t.f64;
  }
}

void need_fit(bool ok) {
  if (!ok) fail("_core: array sizes do not fit the micro-kernel");
}

// A slot's tile set (tconv::TileKernels): the main set (fn ifn ofn kfn), the wide one (wfn
// wifn wofn, no kgemm) or the narrow one (nfn nifn nofn nkfn); `base` is the slot's name
// without its w / n prefix.  The other slots (rfn, dot, transpose) take their rows and columns
// from the main set's, dot's from its own.
template <typename T>
struct SlotSet {
  std::string base;
  tconv::TileKernels<T> k;
};

template <typename T>
SlotSet<T> slot_set(const tconv::GemmKernels<T>& g, const std::string& slot) {
  static const char* const prefixed[] = {"wfn", "wifn", "wofn", "nfn", "nifn", "nofn", "nkfn"};
  const bool variant = std::find(std::begin(prefixed), std::end(prefixed), slot) !=
                       std::end(prefixed);
  if (variant) {
    const auto set = slot[0] == 'w' ? tconv::TileSet::kWide : tconv::TileSet::kNarrow;
    return {slot.substr(1), tconv::tile_kernels(g, set)};
  }
  tconv::TileKernels<T> k = tconv::tile_kernels(g, tconv::TileSet::kMain);
  if (slot == "dot") {
    k.mr = g.dot_mr;
    k.nr = g.dot_nc;
  }
  return {slot, k};
}

// kgemm on its listed rows: index[0][l] = the A panel row, index[1][l] = the B offset of
// row l of the kc listed.
template <typename T>
void call_kgemm(const SlotSet<T>& set, int rows, int64_t kc, const In<T>& a, const In<T>& b,
                T* cp, int64_t ldc, int accumulate, const In<int64_t>& index,
                const tconv::Epilogue<T>* ep) {
  const int64_t cols = set.k.nr;
  need_fit(index.ndim() == 2 && index.shape(0) == 2 && index.shape(1) == kc && b.ndim() == 1);
  for (int64_t l = 0; l < kc; ++l) {
    need_fit(index.at(0, l) >= 0 && a.shape(0) >= (index.at(0, l) + 1) * rows);
    need_fit(index.at(1, l) >= 0 && b.shape(0) >= index.at(1, l) + cols);
  }
  std::vector<int64_t> a_rows(static_cast<size_t>(kc)), b_off(static_cast<size_t>(kc));
  for (int64_t l = 0; l < kc; ++l) {
    a_rows[static_cast<size_t>(l)] = index.at(0, l);
    b_off[static_cast<size_t>(l)] = index.at(1, l);
  }
  set.k.kfn[rows](kc, a.data(), a_rows.data(), b.data(), b_off.data(), cp, ldc, accumulate, ep);
}

// igemm (fn: the ifn, wifn or nifn of the tile's rows) with B row k = row index[k] of b.
template <typename T>
void call_igemm(tconv::IgemmUkernel<T> fn, int64_t cols, int64_t kc, const In<T>& a,
                const In<T>& b, T* cp, int64_t ldc, int accumulate, const In<int64_t>& index,
                const tconv::Epilogue<T>* ep) {
  need_fit(b.ndim() == 2 && b.shape(1) >= cols);
  std::vector<const T*> b_rows(static_cast<size_t>(kc));
  for (int64_t k = 0; k < kc; ++k) {
    const int64_t r = index.at(k);
    need_fit(r >= 0 && r < b.shape(0));
    b_rows[static_cast<size_t>(k)] = b.data() + r * b.shape(1);
  }
  fn(kc, a.data(), b_rows.data(), cp, ldc, accumulate, ep);
}

// The Epilogue that the hook's bias, check and partial ask for (checked against the slot and
// the tile; check reports into *nonfinite).
template <typename T>
tconv::Epilogue<T> hook_epilogue(const std::string& base, int rows, int64_t cols,
                                 const std::optional<In<T>>& bias, bool check,
                                 const std::optional<In<T>>& partial, int* nonfinite) {
  const bool has_epilogue = base == "fn" || base == "ifn" || base == "ofn" || base == "kfn";
  if (!has_epilogue && (bias || check || partial))
    fail("_core: slot '" + base + "' has no epilogue");
  need_fit(!bias || (bias->ndim() == 1 && bias->shape(0) >= rows));
  need_fit(!partial || (partial->ndim() == 2 && partial->shape(0) == rows &&
                        partial->shape(1) >= cols));
  return {bias ? bias->data() : nullptr, check ? nonfinite : nullptr,
          partial ? partial->data() : nullptr, partial ? partial->shape(1) : 0};
}

// A's shape for the slot: kgemm's 1-D (its length checked against the listed rows), a packed
// panel of >= kc * rows values, or rfn's and dot's (rows, >= kc).
template <typename T>
void check_a(const std::string& slot, const In<T>& a, int rows, int64_t kc) {
  if (slot == "kfn") {
    need_fit(a.ndim() == 1);
  } else if (slot != "rfn" && slot != "dot") {
    need_fit(a.ndim() == 1 && a.shape(0) >= kc * rows);
  } else {
    need_fit(a.ndim() == 2 && a.shape(0) == rows && a.shape(1) >= kc);
  }
}

template <typename T>
bool run_ukernel(const std::string& isa, const std::string& slot, int rows, int64_t kc,
                 const In<T>& a, const In<T>& b, In<T>& c, int accumulate,
                 const std::optional<In<int64_t>>& index, const std::optional<In<T>>& bias,
                 bool check, const std::optional<In<T>>& partial) {
  const tconv::GemmKernels<T>& g = gemm_table<T>(isa_table(isa));
  const SlotSet<T> set = slot_set(g, slot);
  const std::string& base = set.base;
  const int64_t cols = set.k.nr;
  if (cols == 0) fail("_core: slot '" + slot + "' is empty on this ISA");
  if (base != "transpose" && (rows < 1 || rows > set.k.mr)) fail("_core: rows out of range");
  // kc < 1 and accumulate outside {0, 1} reach no memory beyond the checked sizes: they are
  // left to the kernels' own TCONV_ASSERT, so that a test can see those checks fire.
  int nonfinite = 0;
  const tconv::Epilogue<T> epilogue =
      hook_epilogue<T>(base, rows, cols, bias, check, partial, &nonfinite);
  const tconv::Epilogue<T>* ep = bias || check || partial ? &epilogue : nullptr;
  if (base == "transpose") {
    need_fit(a.ndim() == 2 && a.shape(0) == cols && a.shape(1) >= kc);
    need_fit(c.ndim() == 2 && c.shape(0) == kc && c.shape(1) == cols);
    g.transpose(a.data(), a.shape(1), kc, c.mutable_data());
    return false;
  }
  need_fit(c.ndim() == 2 && c.shape(0) == rows && c.shape(1) >= cols);
  const int64_t ldc = c.shape(1);
  T* cp = c.mutable_data();
  check_a(base, a, rows, kc);
  const bool indexed = base == "ifn" || base == "ofn" || base == "kfn";
  need_fit(indexed == index.has_value());
  if (base == "kfn") {
    call_kgemm(set, rows, kc, a, b, cp, ldc, accumulate, *index, ep);
    return nonfinite != 0;
  }
  if (indexed) need_fit(index->ndim() == 1 && index->shape(0) == kc);
  if (base == "fn" || base == "rfn") {
    need_fit(b.ndim() == 1 && b.shape(0) >= kc * cols);
    if (base == "rfn") {
      g.rfn[rows](kc, a.data(), a.shape(1), b.data(), cp, ldc, accumulate);
    } else {
      set.k.fn[rows](kc, a.data(), b.data(), cp, ldc, accumulate, ep);
    }
  } else if (base == "ifn") {
    call_igemm(set.k.ifn[rows], cols, kc, a, b, cp, ldc, accumulate, *index, ep);
  } else if (base == "ofn") {
    need_fit(b.ndim() == 1);
    for (int64_t k = 0; k < kc; ++k)
      need_fit(index->at(k) >= 0 && index->at(k) + cols <= b.shape(0));
    set.k.ofn[rows](kc, a.data(), b.data(), index->data(), cp, ldc, accumulate, ep);
  } else if (base == "dot") {
    need_fit(kc % g.dot_kw == 0);
    need_fit(b.ndim() == 2 && b.shape(0) == cols && b.shape(1) >= kc);
    g.dot[rows](kc, a.data(), a.shape(1), b.data(), b.shape(1), cp, ldc, accumulate);
  } else {
    fail("_core: unknown micro-kernel slot '" + slot + "'");
  }
  return nonfinite != 0;
}

template <typename T>
py::dict ukernel_tiles(const tconv::GemmKernels<T>& g) {
  py::dict d;
  d["mr"] = g.mr;
  d["nr"] = g.nr;
  d["wide_nr"] = g.wide_nr;
  d["narrow_nr"] = g.narrow_nr;
  d["dot_mr"] = g.dot_mr;
  d["dot_nc"] = g.dot_nc;
  d["dot_kw"] = g.dot_kw;
  // which entries of each slot hold a kernel, independently of the name list
  const auto filled = [](const auto& slot) {
    py::list rows;
    for (int r = 0; r < static_cast<int>(std::size(slot)); ++r)
      if (slot[r] != nullptr) rows.append(r);
    return rows;
  };
  d["fn"] = filled(g.fn);
  d["ifn"] = filled(g.ifn);
  d["ofn"] = filled(g.ofn);
  d["kfn"] = filled(g.kfn);
  d["rfn"] = filled(g.rfn);
  d["wfn"] = filled(g.wfn);
  d["wifn"] = filled(g.wifn);
  d["wofn"] = filled(g.wofn);
  d["nfn"] = filled(g.nfn);
  d["nifn"] = filled(g.nifn);
  d["nofn"] = filled(g.nofn);
  d["nkfn"] = filled(g.nkfn);
  d["dot"] = filled(g.dot);
  d["transpose"] = g.transpose != nullptr ? py::list(py::make_tuple(0)) : py::list();
  return d;
}

template <typename T>
void bind_ukernel(py::module_& m) {
  m.def(
      "_all_finite", [](const In<T>& a) { return tconv::all_finite(a.data(), a.size()); },
      py::arg("a").noconvert(),
      "Whether every value of `a` is finite, by the operand scan the Inf/NaN handling runs "
      "(tests only).");
  m.def("_run_ukernel", &run_ukernel<T>, py::arg("isa"), py::arg("slot"), py::arg("rows"),
        py::arg("kc"), py::arg("a").noconvert(), py::arg("b").noconvert(),
        py::arg("c").noconvert(), py::arg("accumulate"), py::arg("index").noconvert() = py::none(),
        py::arg("bias").noconvert() = py::none(), py::arg("check") = false,
        py::arg("partial").noconvert() = py::none(),
        "Call one micro-kernel of ISA `isa`'s table on arrays in its own layout (tests only); "
        "with bias, check or partial (rows x >= cols: the earlier sums accumulate reads "
        "instead of c), through an epilogue: returns whether it stored an Inf or NaN.");
}
// ---- end micro-kernels ---------------------------------------------------------------------

// Test hook (tests/test_scratch.py): takes every block of `first` at once and gives them back
// first to last, then takes every block of `second` at once and gives those back.  Returns the
// capacities of `first`'s blocks, the bytes kept after they were given back, and the bytes
// kept while `second`'s blocks were held (the kept blocks `second` took are gone from it).
py::tuple scratch_cycle(const std::vector<size_t>& first, const std::vector<size_t>& second) {
  const auto take = [](const std::vector<size_t>& sizes) {
    std::vector<std::pair<void*, size_t>> held;
    for (const size_t bytes : sizes) {
      size_t capacity = 0;
      void* p = tconv::scratch_acquire(bytes, &capacity);
      held.emplace_back(p, capacity);
    }
    return held;
  };
  const auto give = [](const std::vector<std::pair<void*, size_t>>& held) {
    for (const auto& [p, capacity] : held) tconv::scratch_release(p, capacity);
  };
  const auto a = take(first);
  py::list capacities;
  for (const auto& blk : a) capacities.append(blk.second);
  give(a);
  const size_t kept = tconv::scratch_kept_bytes();
  const auto b = take(second);
  const size_t kept_then = tconv::scratch_kept_bytes();
  give(b);
  return py::make_tuple(capacities, kept, kept_then);
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "tconv's C++ kernels (scatter, gather, weight_grad); use tconv's Python API.";
  bind_dtype<float>(m);
  bind_dtype<double>(m);
  bind_resize<float>(m);
  bind_resize<double>(m);
  m.def("isa", &tconv::isa, "Name of the micro-kernel ISA in use (avx512, avx2 or generic).");
  m.def("supported_isas", &tconv::supported_isas,
        "ISAs this build can run on this CPU, best first.");
  m.def("set_isa", &tconv::set_isa, py::arg("name"),
        "Use the micro-kernels of ISA `name` (ValueError if unknown or unsupported here).");
  m.def("scratch_kept_bytes", &tconv::scratch_kept_bytes,
        "Bytes of scratch memory the threads keep between calls (TCONV_SCRATCH_CACHE_BYTES).");
  m.def("scratch_free_kept", &tconv::scratch_free_kept,
        "Free the scratch memory every thread keeps between calls; returns its bytes.");
  m.def("_scratch_fill_kept", &tconv::scratch_fill_kept, py::arg("byte"),
        "Set every byte of the kept scratch blocks to `byte` (tests only).");
  m.def("_scratch_cycle", &scratch_cycle, py::arg("first"), py::arg("second"),
        "Take and give back scratch blocks of the given sizes (tests only; see bindings.cpp).");
  m.def("narrow_tiles_enabled", &tconv::narrow_tiles_enabled,
        "Whether sub-convolutions with rows too short for the full register tile take the "
        "narrow one (TCONV_NARROW_TILES, else the CPU: AMD family 19h).");
  m.def("_set_narrow_tiles", &tconv::set_narrow_tiles, py::arg("mode"),
        "Force the narrow tiles on (1) or off (0), or back to the process's default (-1) "
        "(tests only).");
  m.def("_set_pitched_band", &tconv::set_pitched_band, py::arg("mode"),
        "Sub-convolutions' pitched band: by its rule (-1), never (0), or wherever it can run "
        "(1) (tests only).");
  m.def("_set_phase_view", &tconv::set_phase_view, py::arg("mode"),
        "grad_weight's channels-last form on the phase view of x: by its rule (-1), never (0), "
        "or wherever the view can run (1) (tests only).");
  m.def("l2_cache_bytes", &tconv::l2_cache_bytes,
        "One core's L2 cache in bytes as the planner sizes its blocks (TCONV_L2_BYTES or the "
        "OS's figure, clamped); read once per process.");
  m.def(
      "plan",
      [](const std::string& op, const std::string& dtype, const Sizes& coarse, const Sizes& fine,
         const Sizes& weight, const Sizes& stride, const Sizes& pad, const Sizes& dilation,
         int64_t groups, const std::string& algorithm) {
        const tconv::Geometry g = make_geometry(coarse, fine, weight, stride, pad, dilation, groups);
        return plan_dict(tconv::plan(op, g, dtype, algorithm_named(algorithm)));
      },
      py::arg("op"), py::arg("dtype"), py::arg("coarse"), py::arg("fine"), py::arg("weight"),
      py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"),
      py::arg("algorithm") = "direct",
      "The plan of one call (tconv/plan.hpp) as a dict; ValueError for an unknown op, dtype "
      "or algorithm (direct, winograd, winograd4, auto; grad_weight: direct and auto only).");
  m.def(
      "set_verbose", [](bool on) { verbose.store(on, std::memory_order_relaxed); },
      py::arg("on"), "Print one tconv_verbose line per kernel call to stderr (or stop).");
  m.def(
      "get_verbose", [] { return verbose.load(std::memory_order_relaxed); },
      "Whether kernel calls print tconv_verbose lines.");
  bind_ukernel<float>(m);
  bind_ukernel<double>(m);
  m.def(
      "_ukernel_names",
      [](const std::string& isa) {
        std::vector<std::tuple<std::string, std::string, std::string, int>> out;
        for (const tconv::NamedUkernel& k : isa_table(isa).ukernels)
          out.emplace_back(k.name, k.dtype, k.slot, k.rows);
        return out;
      },
      py::arg("isa"), "(name, dtype, slot, rows) of every micro-kernel in ISA `isa`'s table.");
  m.def(
      "_ukernel_tiles",
      [](const std::string& isa, const std::string& dtype) {
        const tconv::IsaKernels& t = isa_table(isa);
        if (dtype == "f32") return ukernel_tiles(t.f32);
        if (dtype == "f64") return ukernel_tiles(t.f64);
        fail("_core: dtype must be 'f32' or 'f64'");
      },
      py::arg("isa"), py::arg("dtype"),
      "Tile sizes of ISA `isa`'s f32 or f64 table and the filled entries of each slot.");
  m.def("_asserts", &tconv::asserts_enabled,
        "Whether this build checks the micro-kernels' preconditions (TCONV_ASSERT).");
  m.def("get_num_threads", &tconv::get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &tconv::set_num_threads, py::arg("n"),
        "Set the threads the kernels use (>= 1).");
}
