"""Bad input gets a clear exception naming the argument: never a crash, never a silently wrong
answer.

The matrix below crosses every class of bad input (wrong rank, channel mismatch, groups not
dividing, stride/dilation <= 0, too much negative padding, output_padding too large, non-positive output
size, mixed dtypes, int/bool/complex/float16/object/string arrays, ragged lists, None, sizes
whose element count or index arithmetic overflows int64, bad ``out``/``output_size``/
``output_mask``) with every public function that takes that argument, in 1-D, 2-D and 3-D.
Each case names the exception type and a message fragment naming the argument.

Every case also runs once in a child interpreter (all cases in one batched subprocess, restarted
after a crash), *before* it runs in-process: a segfault or abort fails that case, identified by
name, instead of killing pytest.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import pytest

import tconv
from tconv import reference

F32 = np.float32
Kwargs = dict[str, Any]


def z(*shape: int, dtype: Any = F32) -> np.ndarray:
    return np.zeros(shape, dtype)


# --------------------------------------------------------------------------------------------
# The public functions, each with one valid call to perturb.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Api:
    label: str
    func: Callable[..., Any]
    nd: int
    base: Callable[[], Kwargs]
    arrays: tuple[str, ...] = ()     # array-valued arguments
    required: tuple[str, ...] = ()   # arrays that may not be None
    params: frozenset[str] = frozenset()
    transposed: bool = True          # weight (C_in, C_out/g, *k) vs conv's (C_out, C_in/g, *k)
    out_shape: tuple[int, ...] | None = None  # shape of the result, for out= cases


def _transposed_apis(nd: int) -> list[Api]:
    sp, k, o = (5,) * nd, (3,) * nd, (7,) * nd
    params = frozenset({"stride", "padding", "output_padding", "groups", "dilation"})
    fwd = lambda: dict(input=z(1, 4, *sp), weight=z(4, 2, *k), bias=z(2))
    return [
        Api(f"conv_transpose[{nd}d]", tconv.conv_transpose, nd, fwd,
            ("input", "weight", "bias"), ("input", "weight"),
            params | {"out", "output_size"}, True, (1, 2, *o)),
        Api(f"conv_transpose{nd}d", getattr(tconv, f"conv_transpose{nd}d"), nd, fwd,
            ("input", "weight", "bias"), ("input", "weight"),
            params | {"out", "output_size"}, True, (1, 2, *o)),
        Api(f"conv_transpose_backward[{nd}d]", tconv.conv_transpose_backward, nd,
            lambda: dict(grad_output=z(1, 2, *o), input=z(1, 4, *sp), weight=z(4, 2, *k)),
            ("grad_output", "input", "weight"), ("grad_output", "input", "weight"),
            params | {"output_mask"}, True),
        Api(f"output_shape[{nd}d]", tconv.output_shape, nd,
            lambda: dict(input_shape=(1, 4, *sp), weight_shape=(4, 2, *k)),
            (), (), params | {"shapes"}, True),
    ]


def _conv_apis(nd: int) -> list[Api]:
    sp, k, o = (5,) * nd, (3,) * nd, (3,) * nd
    params = frozenset({"stride", "padding", "groups", "dilation"})
    return [
        Api(f"conv[{nd}d]", tconv.conv, nd,
            lambda: dict(input=z(1, 4, *sp), weight=z(2, 4, *k), bias=z(2)),
            ("input", "weight", "bias"), ("input", "weight"), params | {"out"}, False,
            (1, 2, *o)),
        Api(f"conv_backward[{nd}d]", tconv.conv_backward, nd,
            lambda: dict(grad_output=z(1, 2, *o), input=z(1, 4, *sp), weight=z(2, 4, *k)),
            ("grad_output", "input", "weight"), ("grad_output", "input", "weight"),
            params | {"output_mask"}, False),
    ]


def _reference_apis(nd: int) -> list[Api]:
    sp, k = (5,) * nd, (3,) * nd
    tparams = frozenset({"stride", "padding", "output_padding", "groups", "dilation", "reference"})
    cparams = frozenset({"stride", "padding", "groups", "dilation", "reference"})
    return [
        Api(f"reference.conv_transpose[{nd}d]", reference.conv_transpose, nd,
            lambda: dict(input=z(1, 4, *sp), weight=z(4, 2, *k), bias=z(2)),
            ("input", "weight", "bias"), ("input", "weight"), tparams, True),
        Api(f"reference.conv[{nd}d]", reference.conv, nd,
            lambda: dict(input=z(1, 4, *sp), weight=z(2, 4, *k), bias=z(2)),
            ("input", "weight", "bias"), ("input", "weight"), cparams, False),
    ]


APIS = [api for nd in (1, 2, 3) for api in (*_transposed_apis(nd), *_conv_apis(nd))]
REFERENCE_APIS = [api for nd in (1, 2, 3) for api in _reference_apis(nd)]


# --------------------------------------------------------------------------------------------
# Bad-input classes.
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bad:
    id: str
    api: Api = field(repr=False)
    patch: Callable[[Kwargs], Kwargs] = field(repr=False)
    exc: type[BaseException]
    fragment: str  # must appear in the message; names the offending argument

    def kwargs(self) -> Kwargs:
        return self.patch(self.api.base())

    def run(self) -> None:
        self.api.func(**self.kwargs())


def _set(**over: Any) -> Callable[[Kwargs], Kwargs]:
    """Override arguments; a callable value is applied to the valid kwargs first."""
    def patch(kw: Kwargs) -> Kwargs:
        return {**kw, **{k: (v(kw) if callable(v) else v) for k, v in over.items()}}
    return patch


def _unaligned(a: np.ndarray) -> np.ndarray:
    buf = np.zeros(a.nbytes + 1, np.uint8)
    u = buf[1:].view(a.dtype).reshape(a.shape)
    u[...] = a
    return u


def _huge_virtual_input(nd: int) -> np.ndarray:
    """A zero-stride view with about 2**60 elements: real to numpy, tiny in memory."""
    shape = (2**20, 4, *(2**(38 // nd),) * nd)
    return np.lib.stride_tricks.as_strided(z(1), shape=shape, strides=(0,) * len(shape))


BAD_DTYPES = [np.int64, np.int32, np.uint8, np.bool_, np.complex64, np.complex128, np.float16,
              np.longdouble, object, "U3", "datetime64[s]"]


HAS_TORCH = importlib.util.find_spec("torch") is not None


def _grad_tensor(a: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.array(a)).requires_grad_(True)


def _array_cases(api: Api) -> list[tuple[str, Callable[[Kwargs], Kwargs], type, str]]:
    ref = "reference" in api.params  # the oracle takes any real numbers (ints too), in float64
    out = []
    for name in api.arrays:
        for dt in BAD_DTYPES:
            if ref and np.dtype(dt).kind in "fiu":
                continue
            label = np.dtype(dt).name if dt != "U3" else "str"
            out.append((f"{name}-dtype-{label}",
                        _set(**{name: lambda kw, n=name, d=dt: np.zeros(np.shape(kw[n]), d)}),
                        TypeError, name))
        if name in api.required:
            out.append((f"{name}-None", _set(**{name: None}), TypeError, name))
        # numpy itself refuses ragged input (ValueError); the API turns that into a TypeError
        out.append((f"{name}-ragged-list", _set(**{name: [[0.0, 0.0], [0.0]]}),
                    ValueError if ref else TypeError, "" if ref else name))
        out.append((f"{name}-ragged-arrays", _set(**{name: [z(2, 3), z(3)]}),
                    ValueError if ref else TypeError, "" if ref else name))
        out.append((f"{name}-string", _set(**{name: "abc"}), TypeError, name))
        out.append((f"{name}-dict", _set(**{name: {}}), TypeError, name))
        out.append((f"{name}-0d", _set(**{name: np.float32(1.0)}), ValueError, name))
        if not ref and HAS_TORCH:  # torch's own message would not point to tconv.torch
            out.append((f"{name}-torch-requires-grad",
                        _set(**{name: lambda kw, n=name: _grad_tensor(kw[n])}),
                        TypeError, f"{name} is a torch.Tensor that requires grad"))
        if not ref:
            out.append((f"{name}-float64-among-float32",
                        _set(**{name: lambda kw, n=name: kw[n].astype(np.float64)}),
                        TypeError, name))
        out.append((f"{name}-extra-axis", _set(**{name: lambda kw, n=name: kw[n][..., None]}),
                    ValueError, name))
        if name != "bias":
            out.append((f"{name}-missing-axis", _set(**{name: lambda kw, n=name: kw[n][..., 0]}),
                        ValueError, name))
    return out


def _aliased_out(kw: Kwargs, out_shape: tuple[int, ...]) -> Kwargs:
    """``out`` and ``input`` views of one buffer."""
    in_shape = kw["input"].shape
    buf = z(max(int(np.prod(in_shape)), int(np.prod(out_shape))))
    return {**kw, "input": buf[:int(np.prod(in_shape))].reshape(in_shape),
            "out": buf[:int(np.prod(out_shape))].reshape(out_shape)}


def _param_cases(api: Api) -> list[tuple[str, Callable[[Kwargs], Kwargs], type, str]]:
    nd, p = api.nd, api.params
    ones = lambda v, extra=0: (v,) * (nd + extra)
    cases: list[tuple[str, Callable[[Kwargs], Kwargs], type, str]] = []

    def add(label: str, exc: type, fragment: str, **over: Any) -> None:
        cases.append((label, _set(**over), exc, fragment))

    ref = "reference" in p
    add("stride-0", ValueError, "stride", stride=0)
    add("stride-negative", ValueError, "stride", stride=-1)
    add("stride-0-in-one-dim", ValueError, "stride", stride=(0,) + ones(1)[1:])
    add("dilation-0", ValueError, "dilation", dilation=0)
    add("dilation-negative", ValueError, "dilation", dilation=-2)
    # negative padding is legal (zero extension / cropping); too much of it leaves no output
    if "output_padding" in p:
        add("padding-negative-no-output", ValueError, "output size", padding=((10, -2),) * nd)
    else:
        add("padding-negative-no-output", ValueError, "output size", padding=-3)
    add("groups-not-dividing", ValueError, "groups", groups=3)
    add("groups-0", ValueError, "groups", groups=0)
    add("groups-negative", ValueError, "groups", groups=-1)
    if not ref:  # the reference is an oracle, not a front door: values only, not kinds
        add("stride-wrong-length", ValueError, "stride", stride=ones(1, 1))
        add("stride-float", TypeError, "stride", stride=1.5)
        add("stride-float-integral", TypeError, "stride", stride=2.0)
        add("stride-None", TypeError, "stride", stride=None)
        add("stride-str", TypeError, "stride", stride="2")
        add("stride-bool", TypeError, "stride", stride=True)
        add("stride-nested", TypeError, "stride", stride=((1, 1),) * nd)
        add("stride-0d-float-array", TypeError, "stride", stride=np.array(2.0))
        add("stride-2d-array", ValueError, "stride", stride=np.ones((1, nd), np.int64))
        add("stride-None-entry", TypeError, "stride=", stride=(1,) * (nd - 1) + (None,))
        add("stride-bool-array", TypeError, "stride", stride=np.array(True))
        add("stride-complex", TypeError, "stride", stride=1 + 0j)
        add("dilation-0d-float-array", TypeError, "dilation", dilation=np.array(1.0))
        add("padding-0d-float-array", TypeError, "padding", padding=np.array(0.0))
        add("padding-array-pairs-wrong-count", ValueError, "padding",
            padding=np.zeros((nd + 1, 2), np.int64))
        add("padding-bytes", TypeError, "padding", padding=b"same")
        add("groups-0d-float-array", TypeError, "groups", groups=np.array(1.0))
        add("groups-list", TypeError, "groups", groups=[1])
        add("dilation-wrong-length", ValueError, "dilation", dilation=ones(1, 1))
        add("dilation-float", TypeError, "dilation", dilation=2.0)
        add("dilation-None", TypeError, "dilation", dilation=None)
        add("padding-wrong-length", ValueError, "padding", padding=ones(0, 1))
        add("padding-pair-of-three", ValueError, "padding", padding=((0, 1, 2),) * nd)
        add("padding-pairs-wrong-count", ValueError, "padding", padding=((0, 0),) * (nd + 1))
        add("padding-unknown-string", ValueError, "padding", padding="full")  # "same"/"valid" are valid
        add("padding-None", TypeError, "padding", padding=None)
        add("padding-float", TypeError, "padding", padding=1.0)
        add("groups-float", TypeError, "groups", groups=2.0)
        add("groups-None", TypeError, "groups", groups=None)
        add("groups-bool", TypeError, "groups", groups=True)
        add("groups-str", TypeError, "groups", groups="2")
    if "output_padding" in p:
        add("output_padding-negative", ValueError, "output_padding", output_padding=-1)
        add("output_padding-at-stride-1", ValueError, "output_padding", output_padding=1)
        add("output_padding-equals-stride", ValueError, "output_padding", stride=2, output_padding=2)
        add("output_padding-equals-max-stride-dilation", ValueError, "output_padding",
            stride=2, dilation=3, output_padding=3)
        add("output_padding-too-large-one-dim", ValueError, "output_padding",
            stride=2, output_padding=(0,) * (nd - 1) + (2,))
        if not ref:
            add("output_padding-None", TypeError, "output_padding", output_padding=None)
            add("output_padding-float", TypeError, "output_padding", output_padding=0.5)
            add("output_padding-wrong-length", ValueError, "output_padding",
                output_padding=ones(0, 1))
        # non-positive output: (5 - 1) + 2 + 1 - 2*10 < 1
        add("output-size-negative", ValueError, "output size", padding=10)
        add("output-size-zero", ValueError, "output size",
            padding=((0, 7),) + ((0, 0),) * (nd - 1))
    else:
        # conv: the dilated kernel (1 + 10*2) is longer than the input (5)
        add("output-size-negative", ValueError, "output size", dilation=10)
        add("output-size-stride-cannot-help", ValueError, "output size", dilation=3, stride=9)

    if "shapes" in p:  # output_shape takes shapes, not arrays
        sp, k = (5,) * nd, (3,) * nd
        add("input_shape-None", TypeError, "input_shape", input_shape=None)
        add("input_shape-int", TypeError, "input_shape", input_shape=5)
        add("input_shape-str", TypeError, "input_shape", input_shape="1455")
        add("input_shape-float", TypeError, "input_shape", input_shape=(1, 4, *sp[:-1], 5.0))
        add("input_shape-negative", ValueError, "input_shape", input_shape=(1, 4, *sp[:-1], -5))
        add("input_shape-too-short", ValueError, "input", input_shape=(4, *sp))
        add("input_shape-too-long", ValueError, "input", input_shape=(1, 4, *sp, 5, 5, 5))
        add("input_shape-zero-spatial", ValueError, "input", input_shape=(1, 4, 0, *sp[1:]))
        add("weight_shape-None", TypeError, "weight_shape", weight_shape=None)
        add("weight_shape-float", TypeError, "weight_shape", weight_shape=(4, 2.0, *k))
        add("weight_shape-negative", ValueError, "weight_shape", weight_shape=(4, -2, *k))
        add("weight_shape-rank", ValueError, "weight", weight_shape=(4, 2, *k, 3))
        add("weight_shape-channels", ValueError, "weight.shape[0]", weight_shape=(3, 2, *k))
        add("weight_shape-zero-kernel", ValueError, "kernel", weight_shape=(4, 2, 0, *k[1:]))
        add("overflow-element-count", ValueError, "too many elements",
            input_shape=(2**40, 4, *(2**20,) * nd), weight_shape=(4, 2**20, *k))
        add("overflow-int64-element-count", ValueError, "too many elements",
            input_shape=(2**63, 4, *sp), weight_shape=(4, 2**63, *k))
        add("overflow-spatial-dim", ValueError, "too many elements",
            input_shape=(1, 4, 2**62, *sp[1:]), stride=4)
        add("overflow-index-arithmetic", ValueError, "stride",
            input_shape=(1, 4, 3, *sp[1:]), weight_shape=(4, 2, 1, *k[1:]),
            stride=(2**62,) + (1,) * (nd - 1), padding=(2**62,) + (0,) * (nd - 1))
        return cases

    # array-shaped bad inputs
    chan = "weight.shape[0]" if api.transposed else "weight.shape[1]"
    if ref:
        chan = "channels"
    add("weight-channel-mismatch", ValueError, chan,
        weight=lambda kw: np.zeros((3, *kw["weight"].shape[1:]), F32) if api.transposed
        else np.zeros((kw["weight"].shape[0], 3, *kw["weight"].shape[2:]), F32))
    add("input-channel-mismatch", ValueError, "channels",
        input=lambda kw: np.zeros((1, 3, *kw["input"].shape[2:]), F32))
    add("input-zero-spatial", ValueError, "input" if not ref else "sizes",
        input=lambda kw: np.zeros((1, 4, 0, *kw["input"].shape[3:]), F32))
    add("weight-zero-kernel", ValueError, "kernel" if not ref else "sizes",
        weight=lambda kw: np.zeros((*kw["weight"].shape[:2], 0, *kw["weight"].shape[3:]), F32))
    add("input-2d", ValueError, "input" if not ref else "input_shape", input=z(4, 5))
    add("input-6d", ValueError, "input" if not ref else "input_shape", input=z(1, 4, 5, 5, 5, 5))
    if not api.transposed:
        add("groups-not-dividing-out-channels", ValueError, "groups",
            weight=lambda kw: np.zeros((3, 2, *kw["weight"].shape[2:]), F32), groups=2)
    if ref:
        add("bias-wrong-length", ValueError, "bias", bias=z(3))
        return cases
    if api.label.startswith(f"conv_transpose{nd}d"):
        other = 2 if nd != 2 else 3
        add("rank-for-other-op", ValueError, "input",
            input=z(1, 4, *(5,) * other), weight=z(4, 2, *(3,) * other))
    if "bias" in api.arrays:
        add("bias-wrong-length", ValueError, "bias", bias=z(3))
        add("bias-length-1", ValueError, "bias", bias=z(1))
    if "grad_output" in api.arrays:
        add("grad_output-wrong-spatial", ValueError, "grad_output",
            grad_output=lambda kw: np.zeros(kw["grad_output"].shape[:-1] + (kw["grad_output"].shape[-1] + 1,), F32))
        add("grad_output-wrong-channels", ValueError, "grad_output",
            grad_output=lambda kw: np.zeros((1, 3, *kw["grad_output"].shape[2:]), F32))
        add("grad_output-wrong-batch", ValueError, "grad_output",
            grad_output=lambda kw: np.zeros((2, *kw["grad_output"].shape[1:]), F32))
    if "output_mask" in p:
        add("output_mask-None", TypeError, "output_mask", output_mask=None)
        add("output_mask-str", TypeError, "output_mask", output_mask="abc")
        add("output_mask-int", TypeError, "output_mask", output_mask=1)
        add("output_mask-2", TypeError, "output_mask", output_mask=(2, 0, 0))
        add("output_mask-short", ValueError, "output_mask", output_mask=(True,))
        add("output_mask-long", ValueError, "output_mask", output_mask=(True,) * 4)
    if "out" in p:
        shape = api.out_shape
        assert shape is not None
        ro = z(*shape)
        ro.setflags(write=False)
        add("out-list", TypeError, "out", out=[0.0])
        add("out-wrong-shape", ValueError, "out", out=z(*shape[:-1], shape[-1] + 1))
        add("out-wrong-dtype", TypeError, "out", out=z(*shape, dtype=np.float64))
        add("out-int", TypeError, "out", out=z(*shape, dtype=np.int32))
        add("out-non-contiguous", ValueError, "out",
            out=lambda kw: z(*shape[:-1], 2 * shape[-1])[..., ::2])
        add("out-read-only", ValueError, "out", out=ro)
        add("out-unaligned", ValueError, "out", out=lambda kw: _unaligned(z(*shape)))
        cases.append(("out-aliases-input", lambda kw: _aliased_out(kw, shape), ValueError,
                      "out must not overlap"))
    if "output_size" in p:
        add("output_size-wrong-length", ValueError, "output_size", output_size=(7,) * (nd + 1))
        add("output_size-float", TypeError, "output_size", output_size=(7.5,) * nd)
        add("output_size-None-entry", TypeError, "output_size", output_size=(None,) * nd)
        add("output_size-int", TypeError, "output_size", output_size=7)
        add("output_size-str", TypeError, "output_size", output_size="77")
        add("output_size-0d-array", TypeError, "output_size", output_size=np.array(7))
        add("output_size-unreachable", ValueError, "output_size", stride=2, output_size=(100,) * nd)
        add("output_size-negative", ValueError, "output_size", output_size=(-7,) * nd)
    # int64 overflow: huge strides/padding/dilation and a huge (zero-stride) input
    if api.transposed:
        add("overflow-stride-2**60", ValueError, "too many elements", stride=2**60)
        add("overflow-stride-beyond-int64", ValueError, "too many elements", stride=2**70)
        add("overflow-dilation-2**62", ValueError, "too many elements", dilation=2**62)
        add("overflow-padding-beyond-int64", ValueError, "output size", padding=2**70)
        add("overflow-huge-virtual-input", ValueError, "too many elements",
            input=_huge_virtual_input(nd), stride=2**10)
    else:
        add("overflow-padding-2**62", ValueError, "too many elements", padding=2**62)
        add("overflow-stride-2**63", ValueError, "stride", stride=2**63)
        add("overflow-dilation-beyond-int64", ValueError, "output size", dilation=2**70)
        add("overflow-huge-virtual-input", ValueError, "too many elements",
            input=_huge_virtual_input(nd), padding=2**41)
    return cases


def _build_cases() -> list[Bad]:
    cases = []
    for api in APIS + REFERENCE_APIS:
        for label, patch, exc, fragment in _array_cases(api) + _param_cases(api):
            cases.append(Bad(f"{api.label}-{label}", api, patch, exc, fragment))
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    return cases


CASES = _build_cases()
BY_ID = {c.id: c for c in CASES}


def check(case: Bad) -> str | None:
    """None when ``case`` raises its exception with its fragment, else what happened."""
    try:
        case.run()
    except case.exc as exc:
        if case.fragment.lower() not in str(exc).lower():
            return f"{type(exc).__name__} without {case.fragment!r}: {exc}"
        return None
    except Exception as exc:  # noqa: BLE001 - any other exception is the finding
        return f"expected {case.exc.__name__}, got {type(exc).__name__}: {exc}"
    return f"expected {case.exc.__name__}, nothing raised"


# --------------------------------------------------------------------------------------------
# The subprocess harness.
# --------------------------------------------------------------------------------------------

def _crash_probe(kind: str) -> None:
    """Used only by the harness self-test: really crash the child."""
    if kind == "abort":
        os.abort()
    ctypes.string_at(0)  # SIGSEGV


def _child_main(ids: list[str]) -> None:
    for case_id in ids:
        print("BEGIN", case_id, flush=True)
        if case_id.startswith("probe-"):
            _crash_probe(case_id[len("probe-"):])
            status = "probe survived"
        else:
            status = check(BY_ID[case_id]) or "ok"
        print("END", case_id, status.replace("\n", " "), flush=True)


def _no_core_dumps() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


_CHILD = (
    "import sys; sys.path.insert(0, sys.argv[1]); import test_errors; "
    "test_errors._child_main(sys.stdin.read().split())"
)


def run_in_subprocess(ids: list[str], timeout: float = 300,
                      env: dict[str, str] | None = None) -> dict[str, str]:
    """Run the cases in a child interpreter; restart after a crash.

    Returns ``{id: "ok" | what went wrong}``; a case during which the child died is reported
    as ``crashed (exit code ...)`` with the tail of its stderr.
    """
    outcomes: dict[str, str] = {}
    pending = list(ids)
    here = os.path.dirname(os.path.abspath(__file__))
    while pending:
        proc = subprocess.run([sys.executable, "-c", _CHILD, here], input="\n".join(pending),
                              capture_output=True, text=True, timeout=timeout, check=False,
                              preexec_fn=_no_core_dumps, env=env)
        current = None
        for line in proc.stdout.splitlines():
            tag, _, rest = line.partition(" ")
            if tag == "BEGIN":
                current = rest
            elif tag == "END":
                case_id, _, status = rest.partition(" ")
                outcomes[case_id] = status
                current = None
        if proc.returncode == 0 and current is None:
            missing = [i for i in pending if i not in outcomes]
            for i in missing:
                outcomes[i] = "never ran"
            break
        tail = proc.stderr.strip().splitlines()[-3:]
        if current is None:  # died outside any case (import error, ...)
            for i in pending:
                outcomes.setdefault(i, f"child failed (exit code {proc.returncode}): {tail}")
            break
        outcomes[current] = f"crashed (exit code {proc.returncode}): {tail}"
        pending = pending[pending.index(current) + 1:]
    return outcomes


@pytest.fixture(scope="module")
def subprocess_outcomes() -> dict[str, str]:
    return run_in_subprocess([c.id for c in CASES])


# --------------------------------------------------------------------------------------------
# Tests.
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("api", APIS + REFERENCE_APIS, ids=lambda a: a.label)
def test_base_call_is_valid(api: Api) -> None:
    """Every bad case perturbs one argument of a call that is itself fine."""
    api.func(**api.base())


@pytest.mark.parametrize("api", APIS + REFERENCE_APIS, ids=lambda a: a.label)
def test_bad_inputs(api: Api, subprocess_outcomes: dict[str, str]) -> None:
    """Every bad case of one function: first its outcome in the child interpreter (a crash
    there fails the case, by name, without touching this process), then in-process."""
    cases = [c for c in CASES if c.api is api]
    assert cases
    problems = {}
    for case in cases:
        outcome = subprocess_outcomes.get(case.id, "missing")
        if outcome != "ok":
            problems[case.id] = f"in a subprocess: {outcome}"
            continue
        problem = check(case)
        if problem is not None:
            problems[case.id] = problem
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def test_subprocess_harness_catches_crashes() -> None:
    """The harness itself can fail: a real segfault and abort are caught and named, and the
    cases after them still run."""
    first, last = CASES[0].id, CASES[-1].id
    # under tools/sanitize.sh the deliberate SEGV is not a finding: keep ASan out of it
    env = dict(os.environ)
    if "ASAN_OPTIONS" in env:
        env["ASAN_OPTIONS"] += ":handle_segv=0:handle_abort=0:log_path=stderr"
    outcomes = run_in_subprocess([first, "probe-segfault", "probe-abort", last], env=env)
    assert outcomes[first] == "ok" and outcomes[last] == "ok", outcomes
    assert outcomes["probe-segfault"].startswith("crashed (exit code"), outcomes
    assert outcomes["probe-abort"].startswith("crashed (exit code"), outcomes


def test_core_rejects_inconsistent_arrays() -> None:
    """The binding double-checks what the Python layer promises (defence in depth)."""
    from tconv import _core

    x = z(1, 4, 5, 5)
    w = z(4, 2, 3, 3)
    y = z(1, 3, 7, 7)  # 3 output channels but weight says 2
    with pytest.raises(ValueError, match="weight shape"):
        _core.scatter(x, w, None, y, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(TypeError):  # no silent dtype conversion in the binding
        _core.scatter(x.astype(np.float64), w, None, y, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(TypeError):  # no silent copy of a non-contiguous array either
        _core.scatter(x, w, None, z(1, 2, 7, 14)[..., ::2], [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="stride"):
        _core.gather(z(1, 2, 7, 7), w, None, x, [0, 1], [0, 0], [1, 1], 1)
    with pytest.raises(ValueError, match="padding"):
        _core.weight_grad(x, z(1, 2, 7, 7), w.copy(), [1, 1], [-1, 0], [1, 1], 1)


# --------------------------------------------------------------------------------------------
# Unusual but valid inputs: must give exactly the plain-array result.
# --------------------------------------------------------------------------------------------

def _fortran(a: np.ndarray) -> np.ndarray:
    return np.asfortranarray(a)


def _reversed_storage(a: np.ndarray) -> np.ndarray:
    flipped = np.ascontiguousarray(a[::-1])[::-1]
    return flipped


def _read_only(a: np.ndarray) -> np.ndarray:
    b = a.copy()
    b.setflags(write=False)
    return b


def _big_endian(a: np.ndarray) -> np.ndarray:
    return a.astype(a.dtype.newbyteorder(">"))


def _strided(a: np.ndarray) -> np.ndarray:
    big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
    big[..., ::2] = a
    return big[..., ::2]


TRANSFORMS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "fortran": _fortran, "reversed-storage": _reversed_storage, "read-only": _read_only,
    "big-endian": _big_endian, "strided": _strided, "unaligned": _unaligned,
    "nested-list": lambda a: a.tolist(),
}


@pytest.mark.parametrize("transform", list(TRANSFORMS), ids=list(TRANSFORMS))
@pytest.mark.parametrize("api", [a for a in APIS if a.arrays and a.nd in (1, 3)] +
                         [a for a in APIS if a.arrays and a.label.startswith("conv_transpose[2d]")],
                         ids=lambda a: a.label)
def test_unusual_valid_arrays_give_identical_results(api: Api, transform: str) -> None:
    rng = np.random.default_rng(0)
    kw = {k: (rng.standard_normal(v.shape) if isinstance(v, np.ndarray) else v)
          for k, v in api.base().items()}  # float64, so that nested lists keep the dtype
    expected = api.func(**kw)
    for name in api.arrays:
        changed = dict(kw, **{name: TRANSFORMS[transform](kw[name])})
        got = api.func(**changed)
        for e, g in zip(expected if isinstance(expected, tuple) else (expected,),
                        got if isinstance(got, tuple) else (got,)):
            assert g.dtype == e.dtype and g.flags.c_contiguous
            np.testing.assert_array_equal(g, e, err_msg=f"{transform} {name}")


def test_case_count() -> None:
    """The matrix is as large as this docstring claims (kept in sync with the README)."""
    assert len(CASES) >= 1000, len(CASES)


# --------------------------------------------------------------------------------------------
# What is accepted: integers in any NumPy form, as for the plain Python int.
# --------------------------------------------------------------------------------------------

INT_FORMS: dict[str, Callable[[int], Any]] = {
    "numpy-scalar": np.int64, "numpy-int32": np.int32, "0d-array": np.array,
    "0d-uint8-array": lambda v: np.array(v, np.uint8),
}


@pytest.mark.parametrize("form", list(INT_FORMS), ids=list(INT_FORMS))
def test_numpy_integers_are_ints(form: str) -> None:
    as_form = INT_FORMS[form]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 4, 5, 6)).astype(F32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(F32)
    plain = {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2, "dilation": 2}
    expected = tconv.conv_transpose(x, w[:, :3], **plain)
    given = {k: as_form(v) for k, v in plain.items()}
    np.testing.assert_array_equal(tconv.conv_transpose(x, w[:, :3], **given), expected)
    # per dim, and padding as an array of (low, high) rows
    per_dim = {**given, "stride": np.array([2, 2]), "padding": np.array([[1, 1], [1, 1]])}
    np.testing.assert_array_equal(tconv.conv_transpose(x, w[:, :3], **per_dim), expected)
    wc = rng.standard_normal((6, 2, 3, 3)).astype(F32)
    conv_plain = {"stride": 2, "padding": 1, "dilation": 2, "groups": 2}
    np.testing.assert_array_equal(
        tconv.conv(x, wc, **{k: as_form(v) for k, v in conv_plain.items()}),
        tconv.conv(x, wc, **conv_plain))
    assert tconv.output_shape(x.shape, w[:, :3].shape, **given) == expected.shape


def test_issue_examples() -> None:
    """The two reports of issue 19: a 0-d stride array works like the int; a tensor that
    requires grad gets a TypeError pointing to tconv.torch, not torch's RuntimeError."""
    x, w = z(1, 2, 5), z(2, 3, 3)
    np.testing.assert_array_equal(tconv.conv_transpose(x, w, stride=np.array(2)),
                                  tconv.conv_transpose(x, w, stride=2))
    torch = pytest.importorskip("torch")
    t = torch.zeros(1, 2, 5, requires_grad=True)
    for call in (lambda: tconv.conv_transpose(t, w), lambda: tconv.conv(t, w.transpose(1, 0, 2)),
                 lambda: tconv.conv_transpose1d(x, torch.from_numpy(w).requires_grad_()),
                 lambda: tconv.conv_transpose_backward(z(1, 3, 7), t, w)):
        with pytest.raises(TypeError, match="tconv.torch"):
            call()
    # without requires_grad a CPU tensor is an array like any other
    np.testing.assert_array_equal(tconv.conv_transpose(t.detach(), w), tconv.conv_transpose(x, w))


def test_torch_api_takes_ints_only() -> None:
    """tconv.torch: a float in a tuple was truncated (stride=(1.5, 2) ran as (1, 2)); now every
    int argument is an int in some form, or a TypeError naming it."""
    torch = pytest.importorskip("torch")
    import tconv.torch as tt

    x, w = torch.ones(1, 2, 5, 5), torch.ones(2, 3, 3, 3)
    for kw, name in (({"stride": (1.5, 2)}, "stride"), ({"padding": (1, 0.5)}, "padding"),
                     ({"dilation": 2.0}, "dilation"), ({"groups": 1.7}, "groups"),
                     ({"output_padding": [None, 0]}, "output_padding")):
        with pytest.raises(TypeError, match=name):
            tt.conv_transpose2d(x, w, **kw)
    expected = tt.conv_transpose2d(x, w, stride=2, padding=1)
    for stride in (np.int64(2), np.array(2), torch.tensor(2), np.array([2, 2])):
        assert torch.equal(tt.conv_transpose2d(x, w, stride=stride, padding=np.array(1)),
                           expected)
    for args, name in (((2.0, 3, 3), "in_channels"), ((2, None, 3), "out_channels"),
                       ((2, 3, 3.0), "kernel_size"), ((2, 3, True), "kernel_size")):
        with pytest.raises(TypeError, match=name):
            tt.ConvTranspose2d(*args)
    with pytest.raises(ValueError, match="kernel_size"):
        tt.ConvTranspose2d(2, 3, 0)
    with pytest.raises(TypeError, match="groups"):
        tt.ConvTranspose2d(2, 4, 3, groups=2.0)
    layer = tt.ConvTranspose2d(np.int64(2), np.array(3), np.array(3), stride=np.array(2))
    assert layer.weight.shape == (2, 3, 3, 3) and layer.stride == (2, 2)


def test_geometry_memo_never_confuses_arguments_that_validate_differently():
    """The geometry functions remember recent argument combinations; a value equal to a
    remembered one but of another type (True == 1 == 1.0) must still be validated."""
    from tconv._args import transposed_geometry

    x = np.zeros((1, 2, 3), np.float32)
    w = np.zeros((2, 2, 3), np.float32)
    first = transposed_geometry(x.shape, w.shape, 1, 0, 0, 1, 1)
    assert transposed_geometry(x.shape, w.shape, 1, 0, 0, 1, 1) is first  # remembered
    assert transposed_geometry(x.shape, w.shape, [1], (0,), 0, 1, 1) == first
    for bad, error in ((True, TypeError), (1.0, TypeError), (0, ValueError)):
        for _ in range(2):  # a failure is not remembered either
            with pytest.raises(error):
                tconv.conv_transpose(x, w, stride=bad)
    with pytest.raises(TypeError):
        tconv.conv(np.zeros((1, 2, 5), np.float32), w, stride=True)
    assert tconv.conv_transpose(x, w, stride=np.int64(1)).shape == (1, 2, 5)


def test_geometry_memo_is_bounded():
    from tconv import _args

    x = np.zeros((1, 2, 3), np.float32)
    _args.transposed_geometry.cache_clear()
    geoms = [_args.transposed_geometry((n, 2, 3), (2, 2, 3), 1, 0, 0, 1, 1)
             for n in range(1, _args._MEMO_SIZE + 2)]
    # the memo filled up and was emptied: a fresh (equal, not identical) geometry comes back
    again = _args.transposed_geometry((1, 2, 3), (2, 2, 3), 1, 0, 0, 1, 1)
    assert again == geoms[0] and again is not geoms[0]
    assert _args.transposed_geometry(x.shape, (2, 2, 3), 1, 0, 0, 1, 1) is again
