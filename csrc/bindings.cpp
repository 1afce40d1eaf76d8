// The only file that includes pybind11.  It checks that the arrays it is handed agree with
// each other (the Python layer has already validated the user's arguments and produced these
// arrays), builds one Geometry, releases the GIL and calls a pure kernel.  Arrays must already
// be C-contiguous and of the exact dtype: nothing is converted here (.noconvert()).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "tconv/cancel.hpp"
#include "tconv/kernels.hpp"
#include "tconv/resize.hpp"
#include "tconv/winograd.hpp"

namespace py = pybind11;

namespace {

template <typename T>
using In = py::array_t<T, py::array::c_style>;
using Sizes = std::vector<int64_t>;

[[noreturn]] void fail(const std::string& msg) { throw std::invalid_argument(msg); }

// coarse: (N, C_coarse, *coarse), fine: (N, C_fine, *fine), weight: (C_coarse, C_fine/g, *k).
tconv::Geometry make_geometry(const py::array& coarse, const py::array& fine,
                              const py::array& weight, const Sizes& stride, const Sizes& pad,
                              const Sizes& dilation, int64_t groups) {
  const py::ssize_t nd = coarse.ndim() - 2;
  if (nd < 1 || nd > tconv::kMaxDims) fail("_core: coarse array must have 3 to 5 dims");
  if (fine.ndim() != coarse.ndim() || weight.ndim() != coarse.ndim())
    fail("_core: coarse, fine and weight arrays must have the same ndim");
  if (static_cast<py::ssize_t>(stride.size()) != nd ||
      static_cast<py::ssize_t>(pad.size()) != nd ||
      static_cast<py::ssize_t>(dilation.size()) != nd)
    fail("_core: stride, pad and dilation need one entry per spatial dim");
  if (groups < 1) fail("_core: groups must be >= 1");
  tconv::Geometry g;
  g.batch = coarse.shape(0);
  g.groups = groups;
  g.coarse_channels = coarse.shape(1);
  g.fine_channels = fine.shape(1);
  if (fine.shape(0) != g.batch) fail("_core: batch sizes differ");
  if (g.coarse_channels % groups != 0 || g.fine_channels % groups != 0)
    fail("_core: groups must divide both channel counts");
  if (weight.shape(0) != g.coarse_channels || weight.shape(1) * groups != g.fine_channels)
    fail("_core: weight shape does not match the channel counts");
  const py::ssize_t offset = tconv::kMaxDims - nd;
  for (py::ssize_t d = 0; d < nd; ++d) {
    const auto k = static_cast<size_t>(offset + d);
    const auto s = static_cast<size_t>(d);
    g.coarse[k] = coarse.shape(2 + d);
    g.fine[k] = fine.shape(2 + d);
    g.kernel[k] = weight.shape(2 + d);
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

template <typename T>
const T* bias_ptr(const std::optional<In<T>>& bias, int64_t channels) {
  if (!bias) return nullptr;
  if (bias->ndim() != 1 || bias->shape(0) != channels)
    fail("_core: bias must be 1-D with one entry per output channel");
  return bias->data();
}

tconv::Algorithm algorithm_named(const std::string& name) {
  if (name == "direct") return tconv::Algorithm::kDirect;
  if (name == "winograd") return tconv::Algorithm::kWinograd;
  if (name == "winograd4") return tconv::Algorithm::kWinograd4;
  if (name == "auto") return tconv::Algorithm::kAuto;
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
        const tconv::Geometry g = make_geometry(x, y, w, stride, pad, dilation, groups);
        const T* b = bias_ptr(bias, g.fine_channels);
        const tconv::Algorithm algo = algorithm_named(algorithm);
        T* out = y.mutable_data();
        run_kernel([&] { tconv::scatter_with<T>(g, algo, x.data(), w.data(), b, out); });
      },
      py::arg("x").noconvert(), py::arg("w").noconvert(), py::arg("bias").noconvert(),
      py::arg("y").noconvert(), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
      py::arg("groups"), py::arg("algorithm") = "direct",
      "y = C^T x: transposed convolution (scatter-add) into the preallocated y.");
  m.def(
      "gather",
      [](const In<T>& y, const In<T>& w, const std::optional<In<T>>& bias, In<T>& x,
         const Sizes& stride, const Sizes& pad, const Sizes& dilation, int64_t groups) {
        const tconv::Geometry g = make_geometry(x, y, w, stride, pad, dilation, groups);
        const T* b = bias_ptr(bias, g.coarse_channels);
        T* out = x.mutable_data();
        run_kernel([&] { tconv::gather<T>(g, y.data(), w.data(), b, out); });
      },
      py::arg("y").noconvert(), py::arg("w").noconvert(), py::arg("bias").noconvert(),
      py::arg("x").noconvert(), py::arg("stride"), py::arg("pad"), py::arg("dilation"),
      py::arg("groups"), "x = C y: ordinary convolution (gather) into the preallocated x.");
  m.def(
      "weight_grad",
      [](const In<T>& coarse, const In<T>& fine, In<T>& dw, const Sizes& stride,
         const Sizes& pad, const Sizes& dilation, int64_t groups) {
        const tconv::Geometry g = make_geometry(coarse, fine, dw, stride, pad, dilation, groups);
        T* out = dw.mutable_data();
        run_kernel([&] { tconv::weight_grad<T>(g, coarse.data(), fine.data(), out); });
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
  m.def(
      "scatter_algorithm",
      [](const py::array& x, const py::array& w, const py::array& y, const Sizes& stride,
         const Sizes& pad, const Sizes& dilation, int64_t groups, const std::string& algorithm) {
        const tconv::Geometry g = make_geometry(x, y, w, stride, pad, dilation, groups);
        switch (tconv::choose_algorithm(g, algorithm_named(algorithm))) {
          case tconv::Algorithm::kWinograd:
            return std::string("winograd");
          case tconv::Algorithm::kWinograd4:
            return std::string("winograd4");
          default:
            return std::string("direct");
        }
      },
      py::arg("x"), py::arg("w"), py::arg("y"), py::arg("stride"), py::arg("pad"),
      py::arg("dilation"), py::arg("groups"), py::arg("algorithm"),
      "The forward algorithm scatter(..., algorithm) runs for these arrays (the plan).");
  m.def("get_num_threads", &tconv::get_num_threads, "Threads the kernels use.");
  m.def("set_num_threads", &tconv::set_num_threads, py::arg("n"),
        "Set the threads the kernels use (>= 1).");
}
