"""The libraries ``python -m tconv bench`` times tconv against, each optional.

A :class:`Peer` turns one benchmark workload and pass into a thunk that runs the peer's own
implementation of it, or says it cannot (``None``): the package is not installed, the peer has
no such pass or dtype, or (for ``numpy``) the layer is not a plain matrix product.

* ``torch``: ``torch.nn.functional.conv_transpose{1,2,3}d`` and, for the gradients,
  ``torch.ops.aten.convolution_backward`` (what autograd calls), oneDNN on x86.
* ``onnxruntime``: a one-node ONNX ``ConvTranspose`` model (MLAS), ``intra_op_num_threads``.
* ``openvino``: the same model compiled for the CPU plugin with ``INFERENCE_NUM_THREADS`` and
  ``INFERENCE_PRECISION_HINT=f32`` (otherwise OpenVINO may compute in bf16 on CPUs with AMX or
  AVX-512 BF16, which would be a different, less exact computation).
* ``numpy``: for a 1x1, stride-1 layer, the same product ``W^T X`` as one ``np.matmul`` per
  sample (OpenBLAS sgemm/dgemm): the measure of how close tconv's GEMM engine is to a BLAS.

Every peer runs with the same thread count as tconv; ONNX Runtime and OpenVINO do forward only.
"""

from __future__ import annotations

import ctypes
import functools
import glob
import importlib.util
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .bench import Workload

__all__ = ["PEERS", "Peer", "available_peers", "parse_peers", "set_blas_threads"]

Thunk = Callable[[], Any]


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@dataclass(frozen=True)
class Peer:
    """One peer library: its name, the module that must import, and its thunk factory."""

    name: str
    module: str
    factory: Callable[[Workload, str, int], Thunk | None]

    def available(self) -> bool:
        """Whether the peer's package is importable."""
        return _installed(self.module)

    def thunk(self, work: Workload, pass_: str, threads: int) -> Thunk | None:
        """A thunk running ``pass_`` of ``work`` in the peer, or None if it has none."""
        return self.factory(work, pass_, threads) if self.available() else None


def _torch_thunk(work: Workload, pass_: str, threads: int) -> Thunk | None:
    import torch

    torch.set_num_threads(threads)
    return work.torch(pass_)


def onnx_model_bytes(work: Workload) -> bytes:
    """A one-node ONNX model ``Y = ConvTranspose(X, W)`` of ``work``'s layer, W an initializer;
    built on the first call and kept on ``work`` for the other ONNX peers."""
    if work.onnx_model is None:
        work.onnx_model = _build_onnx_model(work)
    return work.onnx_model


def _build_onnx_model(work: Workload) -> bytes:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    c = work.case
    elem = TensorProto.FLOAT if work.dtype == np.float32 else TensorProto.DOUBLE
    node = helper.make_node(
        "ConvTranspose", ["X", "W"], ["Y"], kernel_shape=list(c.kernel), strides=list(c.stride),
        pads=list(c.padding) * 2, output_padding=list(c.output_padding),
        dilations=list(c.dilation), group=c.groups)
    graph = helper.make_graph(
        [node], "tconv_bench_layer",
        [helper.make_tensor_value_info("X", elem, list(c.input_shape))],
        [helper.make_tensor_value_info("Y", elem, list(c.output_shape))],
        initializer=[numpy_helper.from_array(work.w, name="W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


def _onnxruntime_thunk(work: Workload, pass_: str, threads: int) -> Thunk | None:
    if pass_ != "fwd" or not _installed("onnx"):
        return None
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        session = ort.InferenceSession(onnx_model_bytes(work), options,
                                       providers=["CPUExecutionProvider"])
    except Exception as exc:  # e.g. no float64 ConvTranspose kernel: no such peer row
        if "NOT_IMPLEMENTED" in str(exc) or "Could not find an implementation" in str(exc):
            return None
        raise
    feed = {"X": work.x}
    return lambda: session.run(None, feed)[0]


class _StackT(ctypes.Structure):
    """Linux's ``stack_t`` (sigaltstack(2))."""

    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library this process already loaded (the signal-stack calls go through it)."""
    return ctypes.CDLL(None, use_errno=True)


def _signal_stack() -> _StackT | None:
    """This thread's alternate signal stack (Linux; elsewhere, or if the call fails, None)."""
    if not sys.platform.startswith("linux"):
        return None
    stack = _StackT()
    return stack if _libc().sigaltstack(None, ctypes.byref(stack)) == 0 else None


def _set_signal_stack(stack: _StackT) -> None:
    _libc().sigaltstack(ctypes.byref(stack), None)


def _compile_keeping_signal_stack(compile: Callable[[], Any]) -> Any:
    """``compile()``, then this thread's alternate signal stack as it was before.

    OpenVINO's CPU plugin installs an alternate signal stack of its own on the thread that
    compiles a model and, when the model is destroyed, re-installs the one it found. With two
    models alive at once and the first destroyed first, the second re-installs the first's
    stack, and the thread keeps that freed memory as its signal stack (seen with OpenVINO
    2026.4): Python's handlers run there (``SA_ONSTACK``), so a later Ctrl-C or alarm wrote to
    freed memory or crashed. Putting the previous stack straight back keeps the plugin's stack
    out of use; its later restore then puts back the same one.
    """
    before = _signal_stack()
    try:
        return compile()
    finally:
        if before is not None:
            _set_signal_stack(before)


def _openvino_thunk(work: Workload, pass_: str, threads: int) -> Thunk | None:
    if pass_ != "fwd" or not _installed("onnx") or work.dtype != np.float32:
        return None
    import openvino as ov

    core = ov.Core()
    model = core.read_model(onnx_model_bytes(work), b"")
    compiled = _compile_keeping_signal_stack(lambda: core.compile_model(model, "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
        "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1}))
    request = compiled.create_infer_request()
    x = work.x

    def run() -> Any:
        request.infer({0: x})
        return request.get_output_tensor(0).data

    return run


def is_gemm(work: Workload) -> bool:
    """A 1x1, stride-1, unpadded, ungrouped layer: the forward is ``W^T X`` per sample."""
    c = work.case
    return (all(k == 1 for k in c.kernel) and all(s == 1 for s in c.stride)
            and not any(c.padding) and not any(c.output_padding) and c.groups == 1)


def _numpy_thunk(work: Workload, pass_: str, threads: int) -> Thunk | None:
    if pass_ != "fwd" or not is_gemm(work):
        return None
    set_blas_threads(threads)
    c = work.case
    # y[n] (C_out x P) = W^T (C_out x C_in) @ x[n] (C_in x P): M = C_out, K = C_in, N = P
    wt = np.ascontiguousarray(work.w.reshape(c.c_in, c.c_out).T)
    x = work.x.reshape(c.batch, c.c_in, -1)
    shape = c.output_shape

    def run() -> Any:
        # a fresh result per call, as tconv's and torch's thunks return (a preallocated one
        # would spare BLAS the page faults of a new output that the others pay)
        return np.matmul(wt, x).reshape(shape)

    return run


def _openblas_setters() -> list[Any]:
    """``openblas_set_num_threads`` of every OpenBLAS that NumPy (or SciPy) loaded."""
    setters = []
    for package in ("numpy", "scipy"):
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            continue
        libs = os.path.join(os.path.dirname(os.path.dirname(spec.origin)), f"{package}.libs")
        for path in glob.glob(os.path.join(libs, "*openblas*.so*")):
            lib = ctypes.CDLL(path)
            for symbol in ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                           "openblas_set_num_threads64_", "openblas_set_num_threads"):
                if hasattr(lib, symbol):
                    setters.append(getattr(lib, symbol))
                    break
    return setters


def set_blas_threads(threads: int) -> bool:
    """Set NumPy's BLAS thread count (threadpoolctl if installed, else OpenBLAS's own setter).

    Returns False if no BLAS could be told (then it uses its default, often all CPUs).
    """
    if _installed("threadpoolctl"):
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=threads, user_api="blas")
        return True
    setters = _openblas_setters()
    for setter in setters:
        setter(ctypes.c_int(threads))
    return bool(setters)


#: Every peer the bench knows, in table order.
PEERS: dict[str, Peer] = {peer.name: peer for peer in (
    Peer("torch", "torch", _torch_thunk),
    Peer("onnxruntime", "onnxruntime", _onnxruntime_thunk),
    Peer("openvino", "openvino", _openvino_thunk),
    Peer("numpy", "numpy", _numpy_thunk),
)}


def parse_peers(text: str) -> list[str]:
    """Names from ``--peers`` (comma-separated, ``all`` for every known peer, ``none``).

    Raises ``ValueError`` naming an unknown peer.
    """
    names = [t.strip() for t in text.split(",") if t.strip()]
    if names == ["none"]:
        return []
    if names == ["all"]:
        return list(PEERS)
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise ValueError(f"--peers: unknown peer(s) {', '.join(unknown)}; "
                         f"known: {', '.join(PEERS)}, all, none")
    return list(dict.fromkeys(names))


def available_peers(names: list[str]) -> tuple[list[str], list[str]]:
    """(the installed peers among ``names``, the ones that are not)."""
    have = [n for n in names if PEERS[n].available()]
    return have, [n for n in names if n not in have]
