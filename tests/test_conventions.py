"""tconv.arithmetic.solve / convert against each framework's own definition.

Oracles: tests/_frameworks.py (each framework's transposed conv written from its source or
docs, see that file's docstring for the files transcribed) and, for "torch", torch itself when
installed (otherwise torch's documented output-size formula through the dense reference).  JAX,
TensorFlow/Keras, ONNX and MXNet are not installed here: their documented formulas are the oracle.
"""

from __future__ import annotations

import _frameworks as fw
import numpy as np
import pytest
import tconv
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from tconv import reference
from tconv.arithmetic import CONVENTIONS, convert, solve

FRAMEWORKS = [c for c in CONVENTIONS if c != "tconv"]


@st.composite
def geometry(draw, max_nd=2):
    nd = draw(st.integers(1, max_nd))
    i = tuple(draw(st.integers(1, 6 if nd == 1 else 4)) for _ in range(nd))
    k = tuple(draw(st.integers(1, 5)) for _ in range(nd))
    s = tuple(draw(st.integers(1, 4)) for _ in range(nd))
    d = tuple(draw(st.integers(1, 2)) for _ in range(nd))
    return i, k, s, d


def arrays(i, k, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((2, 2, *i)), rng.standard_normal((2, 3, *k))


def per_dim(value, nd):
    return list(value) if isinstance(value, (list, tuple)) else [value] * nd


def run_framework(conv, x, w, s, d, p):
    """The framework's output for its parameters ``p`` (None where it would refuse), expressed
    for tconv's weight ``w`` (JAX's default transpose_kernel=False correlates with the kernel
    as given, so it receives ``w`` flipped in every spatial dim)."""
    nd = x.ndim - 2
    if conv == "torch":
        pad, op = per_dim(p["padding"], nd), per_dim(p["output_padding"], nd)
        # torch.nn.ConvTranspose*d: out = (i-1)s - 2p + d(k-1) + op + 1, 0 <= op < max(s, d)
        if any(not 0 <= o < max(ss, dd) for o, ss, dd in zip(op, s, d)) or min(pad) < 0:
            return None
        return reference.conv_transpose(x, w, stride=s, padding=pad, output_padding=op,
                                        dilation=d)
    if conv == "tf":
        return fw.tf_conv_transpose(x, w, s, d, per_dim(p["output_shape"], nd),
                                    p["padding"].upper())
    if conv == "keras":
        op = p["output_padding"]
        op = None if op is None else per_dim(op, nd)
        if op is not None and any(not 0 <= o < ss for o, ss in zip(op, s)):
            return None
        return fw.keras_conv_transpose(x, w, s, d, p["padding"].lower(), op)
    if conv in ("jax", "jax-consistent"):
        pad = p["padding"]
        pad = pad.upper() if isinstance(pad, str) else [tuple(v) for v in pad]
        if conv == "jax-consistent" and not isinstance(pad, str):
            # use_consistent_padding=True: the forward conv's padding, JAX pads the dilated
            # input by k_dil - 1 - p on each side (_conv_transpose_padding)
            pad = [(fw.kdil(w.shape[2 + a], d[a]) - 1 - lo, fw.kdil(w.shape[2 + a], d[a]) - 1 - hi)
                   for a, (lo, hi) in enumerate(pad)]
        return fw.jax_conv_transpose(x, np.flip(w, axis=tuple(range(2, w.ndim))), s, d, pad)
    if conv.startswith("onnx"):
        auto_pad = {"onnx": "NOTSET", "onnx-valid": "VALID", "onnx-same-upper": "SAME_UPPER",
                    "onnx-same-lower": "SAME_LOWER"}[conv]
        shape = p.get("output_shape")
        pads = p.get("pads")
        if pads is not None:
            pads = [tuple(v) for v in pads] if isinstance(pads[0], (list, tuple)) else [pads] * nd
        return fw.onnx_conv_transpose(x, w, s, d, auto_pad,
                                      None if shape is None else per_dim(shape, nd),
                                      per_dim(p.get("output_padding", 0), nd), pads)
    if conv == "mxnet":
        if "target_shape" in p:
            return fw.mxnet_conv_transpose(x, w, s, d, target_shape=per_dim(p["target_shape"], nd))
        return fw.mxnet_conv_transpose(x, w, s, d, pad=per_dim(p["pad"], nd),
                                       adj=per_dim(p["adj"], nd))
    assert conv == "tconv"
    return tconv.conv_transpose(x, w, stride=s, dilation=d, padding=p["padding"],
                                output_padding=p["output_padding"])


def expected_default_size(conv, mode, i, k, s, d):
    """Each framework's documented default output size for the mode."""
    kd = fw.kdil(k, d)
    if mode == "same" and conv.startswith("onnx-same"):
        # ONNX Runtime without output_shape: total = max(full - i*s, 0) is cropped, so i*s
        # only when k_dil >= s (the spec says i*s always; see docs/conventions.md)
        return min(i * s, (i - 1) * s + kd)
    if mode == "same":
        return i * s
    if conv in ("torch", "mxnet", "onnx", "onnx-valid"):
        return (i - 1) * s + kd  # no padding (ONNX VALID: no output extension, unlike TF's)
    return fw.keras_length(i, k, s, d, "valid", None)  # TF/Keras/JAX valid


def torch_can_reach(i, k, s, d, size):
    full = (i - 1) * s + fw.kdil(k, d)
    return any(full - 2 * p + op == size for p in range(full) for op in range(max(s, d)))


@pytest.mark.parametrize("conv", FRAMEWORKS + ["tconv"])
@settings(max_examples=20, deadline=None)
@given(geom=geometry(), mode=st.sampled_from(["same", "valid"]))
def test_solve_default_size_matches_framework(conv, geom, mode):
    i, k, s, d = geom
    try:
        sol = solve(i, k, s, d, padding=mode, convention=conv)
    except ValueError:
        # only where the framework itself cannot do it
        for a in range(len(i)):
            want = expected_default_size(conv, mode, i[a], k[a], s[a], d[a])
            full = (i[a] - 1) * s[a] + fw.kdil(k[a], d[a])
            if conv == "torch" and not torch_can_reach(i[a], k[a], s[a], d[a], want):
                return
            if conv.startswith("onnx-same") and mode == "valid":
                return
            if conv == "onnx-valid" and mode == "same":
                return
            if conv == "mxnet" and full < want:
                return
        raise
    sizes = tuple(expected_default_size(conv, mode, *g) for g in zip(i, k, s, d))
    assert sol.output_size == sizes
    x, w = arrays(i, k)
    y = tconv.conv_transpose(x, w, stride=s, dilation=d, **sol.kwargs())
    assert y.shape[2:] == sizes
    want = run_framework(conv, x, w, s, d, dict(sol.params))
    assert want is not None, f"{conv} refuses the parameters solve returned: {sol.params}"
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("conv", ["torch", "tf", "keras", "onnx", "onnx-valid", "onnx-same-upper",
                                  "onnx-same-lower", "mxnet", "tconv"])
@settings(max_examples=20, deadline=None,
          # parameter sets a convention cannot express are discarded (most draws, for some)
          suppress_health_check=[HealthCheck.filter_too_much])
@given(geom=geometry(max_nd=1), mode=st.sampled_from(["same", "valid"]), data=st.data())
def test_solve_output_size_matches_framework(conv, geom, mode, data):
    i, k, s, d = geom
    full = (i[0] - 1) * s[0] + fw.kdil(k[0], d[0])
    size = data.draw(st.integers(max(1, full - 6), full + s[0]))
    try:
        sol = solve(i, k, s, d, output_size=size, padding=mode, convention=conv)
    except ValueError:
        assume(False)
        return
    x, w = arrays(i, k, seed=1)
    y = tconv.conv_transpose(x, w, stride=s, dilation=d, **sol.kwargs())
    assert y.shape[2:] == (size,)
    want = run_framework(conv, x, w, s, d, dict(sol.params))
    assert want is not None, f"{conv} refuses the parameters solve returned: {sol.params}"
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=80, deadline=None,
          # parameter sets a convention cannot express are discarded (most draws, for some)
          suppress_health_check=[HealthCheck.filter_too_much])
@given(geom=geometry(), src=st.sampled_from(FRAMEWORKS + ["tconv"]),
       dst=st.sampled_from(FRAMEWORKS + ["tconv"]), mode=st.sampled_from(["same", "valid"]))
def test_convert_preserves_values(geom, src, dst, mode):
    i, k, s, d = geom
    try:
        params = dict(solve(i, k, s, d, padding=mode, convention=src).params)
    except ValueError:
        assume(False)
        return
    params.update(input_size=i, kernel_size=k, stride=s, dilation=d)
    x, w = arrays(i, k, seed=2)
    before = run_framework(src, x, w, s, d, params)
    try:
        out = convert(params, from_=src, to=dst)
    except ValueError as exc:
        # tconv itself expresses every placement with lo >= 0
        assert dst != "tconv", exc
        return
    after = run_framework(dst, x, w, s, d, out)
    assert after is not None, (src, dst, params, out)
    np.testing.assert_allclose(after, before, rtol=1e-10, atol=1e-10)


def test_odd_split_per_convention():
    """k=4, s=1, i=5: 'same' output 5 crops 3 of the 8 full elements.  TF/Keras/JAX/ONNX
    SAME_UPPER crop 1 at the start (odd one at the end); ONNX SAME_LOWER and MXNet crop 2 at the
    start; torch cannot (symmetric padding needs output_padding 1 >= max(stride, dilation))."""
    starts = {"tf": 1, "keras": 1, "jax": 1, "onnx-same-upper": 1, "tconv": 1,
              "onnx-same-lower": 2, "mxnet": 2}
    for conv, lo in starts.items():
        sol = solve(5, 4, 1, convention=conv)
        assert sol.padding == ((lo, 3 - lo),), conv
        assert sol.output_padding == (0,)
    with pytest.raises(ValueError, match="torch cannot produce"):
        solve(5, 4, 1, convention="torch")
    # stride 2, k=3: full 11, same 10 -> TF crops the 1 at the END; torch's solution crops at the
    # start (padding=1, output_padding=1): same size, values shifted by one
    assert solve(5, 3, 2, convention="tf").padding == ((0, 1),)
    torch_sol = solve(5, 3, 2, convention="torch")
    assert torch_sol.params == {"padding": (1,), "output_padding": (1,)}
    assert torch_sol.padding == ((1, 0),)
    with pytest.raises(ValueError, match="torch cannot express"):
        convert({"input_size": 5, "kernel_size": 3, "stride": 2, "padding": "same",
                 "output_padding": None}, from_="keras", to="torch")


def test_jax_explicit_pairs_roundtrip():
    params = {"input_size": (4, 5), "kernel_size": (3, 2), "stride": (2, 3),
              "padding": ((2, 1), (1, 3))}
    out = convert(params, from_="jax", to="tconv")
    x, w = arrays((4, 5), (3, 2), seed=3)
    np.testing.assert_allclose(run_framework("tconv", x, w, (2, 3), (1, 1), out),
                               run_framework("jax", x, w, (2, 3), (1, 1), params), rtol=1e-10)
    back = convert(out, from_="tconv", to="jax")
    assert back["padding"] == "SAME" or tuple(map(tuple, back["padding"])) == ((2, 1), (1, 3)) \
        or run_framework("jax", x, w, (2, 3), (1, 1), back) is not None


# --- torch itself -------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(geom=geometry(max_nd=3), mode=st.sampled_from(["same", "valid"]))
def test_torch_solution_runs_in_torch(geom, mode):
    torch = pytest.importorskip("torch")
    i, k, s, d = geom
    try:
        sol = solve(i, k, s, d, padding=mode, convention="torch")
    except ValueError:
        assert not all(torch_can_reach(*g, expected_default_size("torch", mode, *g))
                       for g in zip(i, k, s, d))
        return
    x, w = arrays(i, k, seed=4)
    fn = getattr(torch.nn.functional, f"conv_transpose{len(i)}d")
    want = fn(torch.tensor(x), torch.tensor(w), None, s, sol.params["padding"],
              sol.params["output_padding"], 1, d).numpy()
    y = tconv.conv_transpose(x, w, stride=s, dilation=d, **sol.kwargs())
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


@settings(max_examples=40, deadline=None,
          # parameter sets a convention cannot express are discarded (most draws, for some)
          suppress_health_check=[HealthCheck.filter_too_much])
@given(geom=geometry(), src=st.sampled_from(FRAMEWORKS), mode=st.sampled_from(["same", "valid"]))
def test_convert_to_torch_runs_in_torch(geom, src, mode):
    torch = pytest.importorskip("torch")
    i, k, s, d = geom
    try:
        params = dict(solve(i, k, s, d, padding=mode, convention=src).params)
    except ValueError:
        assume(False)
        return
    params.update(input_size=i, kernel_size=k, stride=s, dilation=d)
    try:
        out = convert(params, from_=src, to="torch")
    except ValueError:
        return
    x, w = arrays(i, k, seed=5)
    fn = getattr(torch.nn.functional, f"conv_transpose{len(i)}d")
    got = fn(torch.tensor(x), torch.tensor(w), None, s, out["padding"], out["output_padding"], 1,
             d).numpy()
    np.testing.assert_allclose(got, run_framework(src, x, w, s, d, params), rtol=1e-10,
                               atol=1e-10)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("call,fragment", [
    (lambda: solve(5, 3, 2, convention="caffe"), "convention"),
    (lambda: solve(5, 3, 2, padding="full", convention="tf"), "padding"),
    (lambda: solve(5, 3, 2, padding="valid", convention="onnx-same-upper"), "same"),
    (lambda: solve(5, 3, 2, output_size=20, convention="tf"), "padding='same'"),
    (lambda: solve(5, 3, 2, output_padding=1, convention="torch"), "output_padding"),
    (lambda: solve(5, 3, 2, padding="same", convention="onnx-valid"), "valid"),
    (lambda: solve(5, 3, 2, output_padding=2, convention="onnx"), "output_padding"),
    (lambda: convert({"input_size": 5, "kernel_size": 3, "stride": 2, "padding": "full"},
                     from_="tconv", to="torch"), "same"),
    (lambda: solve(5, 3, 2, output_size=11, convention="jax"), "jax"),
    (lambda: solve((5, 5), 3, 2, output_size=(10,), convention="tf"), "output_size"),
    (lambda: solve(5, 0, 2), "kernel_size"),
    (lambda: convert({"input_size": 5, "kernel_size": 3, "stride": 2}, from_="x", to="torch"),
     "from_"),
    (lambda: convert({"input_size": 5, "kernel_size": 3, "stride": 2}, from_="torch", to="y"),
     "to"),
    (lambda: convert({"kernel_size": 3, "stride": 2}, from_="torch", to="tf"), "input_size"),
    (lambda: convert({"input_size": 5, "kernel_size": 3, "stride": 2}, from_="tf", to="torch"),
     "padding"),
    (lambda: convert({"input_size": 5, "kernel_size": 3, "stride": 2, "padding": "SAME",
                      "output_shape": 3}, from_="tf", to="torch"), "padding='same'"),
])
def test_arithmetic_errors(call, fragment):
    with pytest.raises(ValueError) as info:
        call()
    assert fragment in str(info.value), str(info.value)


# --- a table per framework, worked out by hand from the documented formulas --------------------
# (input i, kernel k, stride s, dilation d), the framework's parameters, and tconv's
# ((lo, hi), output_padding); full = (i-1)s + d(k-1) + 1 is noted for each.
TABLE = [
    # torch: size = full - 2p + op; full 11, p 1, op 1 -> 10 from 1: hi = 11 - 1 - 10 = 0
    ("torch", (5, 3, 2, 1), {"padding": 1, "output_padding": 1}, ((1, 0), 0)),
    # tf SAME, output_shape 10: lo = (11 - 10) // 2 = 0, the odd one cropped at the end
    ("tf", (5, 3, 2, 1), {"padding": "SAME", "output_shape": 10}, ((0, 1), 0)),
    # tf VALID, output_shape 12 (ceil((12-3+1)/2) = 5): nothing cropped, one zero appended
    ("tf", (5, 3, 2, 1), {"padding": "VALID", "output_shape": 12}, ((0, 0), 1)),
    # keras same: size i*s = 8 of full 10, lo = 2 // 2 = 1
    ("keras", (4, 4, 2, 1), {"padding": "same", "output_padding": None}, ((1, 1), 0)),
    # keras valid, k_dil < s: size i*s = 6 of full 5
    ("keras", (3, 1, 2, 1), {"padding": "valid", "output_padding": None}, ((0, 0), 1)),
    # jax SAME, k_dil 1 < s 3: size 9 of full 7, nothing cropped
    ("jax", (3, 1, 3, 1), {"padding": "SAME"}, ((0, 0), 2)),
    # jax pairs (5, -1), k_dil 2: lo = 1 - 5 = -4, size 5 + 5 - 1 - 2 + 1 = 8, full 6: hi = 2
    ("jax", (3, 2, 2, 1), {"padding": ((5, -1),)}, ((-4, 2), 0)),
    # jax-consistent (1, -2): lo 1, size full 7 - 1 + 2 = 8: two zeros appended (>= max(s, d))
    ("jax-consistent", (3, 3, 2, 1), {"padding": ((1, -2),)}, ((1, -2), 0)),
    # onnx NOTSET pads (1, 2), op 1: size 7 + 1 - 3 = 5 from 1, hi = 7 - 1 - 5 = 1
    ("onnx", (3, 3, 2, 1), {"pads": (1, 2), "output_padding": 1}, ((1, 1), 0)),
    # onnx output_shape 6 beyond full 5 (k 1, s 2): total clamped to 0, a zero appended
    ("onnx", (3, 1, 2, 1), {"output_shape": 6}, ((0, 0), 1)),
    # onnx output_shape 4, full 7: total 3, start 3 - 3 // 2 = 2 (SAME_LOWER's split)
    ("onnx", (3, 3, 2, 1), {"output_shape": 4}, ((2, 1), 0)),
    # onnx VALID, k 1 < s 2: the full output, 5 (tconv's "valid" would give 6)
    ("onnx-valid", (3, 1, 2, 1), {}, ((0, 0), 0)),
    # SAME_UPPER / SAME_LOWER, total 7 - 6 = 1: the odd one at the end / at the start
    ("onnx-same-upper", (3, 3, 2, 1), {}, ((0, 1), 0)),
    ("onnx-same-lower", (3, 3, 2, 1), {}, ((1, 0), 0)),
    # SAME_UPPER, k_dil 1 < s 3, no output_shape: total max(7 - 9, 0) = 0, output full 7
    ("onnx-same-upper", (3, 1, 3, 1), {}, ((0, 0), 0)),
    # mxnet target_shape 10 of full 11: pad ceil(1/2) = 1 at the start
    ("mxnet", (5, 3, 2, 1), {"target_shape": 10}, ((1, 0), 0)),
    ("mxnet", (5, 4, 2, 1), {"pad": 1, "adj": 1}, ((1, 0), 0)),
]


@pytest.mark.parametrize("conv,geom,params,want", TABLE,
                         ids=[f"{row[0]}-{n}" for n, row in enumerate(TABLE)])
def test_table_of_documented_cases(conv, geom, params, want):
    i, k, s, d = geom
    full = dict(params, input_size=i, kernel_size=k, stride=s, dilation=d)
    out = convert(full, from_=conv, to="tconv")
    assert (out["padding"][0], out["output_padding"][0]) == want
    x, w = arrays((i,), (k,), seed=7)
    p = dict(params)
    for key, value in p.items():  # run_framework takes per-dim values
        if key in ("pads", "padding") and isinstance(value, tuple) and value and not isinstance(
                value[0], tuple):
            p[key] = (value,)
    p.setdefault("output_padding", 0 if conv.startswith("onnx") else None)
    expected = run_framework(conv, x, w, (s,), (d,), p)
    got = tconv.conv_transpose(x, w, stride=s, dilation=d, padding=out["padding"],
                               output_padding=out["output_padding"])
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("conv,geom,params", [
    ("onnx", (3, 3, 2, 3), {"output_padding": 2}),        # ORT: output_padding >= stride
    ("onnx", (3, 1, 2, 1), {"output_shape": 7}),          # ORT: conv would give 4 inputs
    ("onnx", (3, 3, 2, 1), {"pads": (-1, 0)}),            # ONNX pads are >= 0
    ("onnx-same-lower", (3, 3, 2, 1), {"output_padding": 2}),
    ("jax", (3, 3, 2, 1), {"padding": ((-5, -5),)}),      # nothing left
    ("tconv", (3, 3, 2, 1), {"padding": ((9, 0),)}),       # nothing left
])
def test_table_of_refused_cases(conv, geom, params):
    i, k, s, d = geom
    with pytest.raises(ValueError):
        convert(dict(params, input_size=i, kernel_size=k, stride=s, dilation=d), from_=conv,
                to="tconv")


def test_solve_takes_the_frameworks_output_padding():
    # keras: (i-1)s + k_dil - 2*(k_dil // 2) + op = 8 + 3 - 2 + 1 = 10 for "same", op 1
    sol = solve(5, 3, 2, convention="keras", output_padding=1)
    assert sol.output_size == (10,) and sol.params["output_padding"] == (1,)
    # onnx-same-upper, op 1: total = 11 + 1 - 10 = 2 -> one cropped on each side, size 10
    sol = solve(5, 3, 2, convention="onnx-same-upper", output_padding=1)
    assert sol.output_size == (10,) and sol.padding == ((1, 0),) and sol.output_padding == (0,)
    x, w = arrays((5,), (3,), seed=8)
    np.testing.assert_allclose(
        tconv.conv_transpose(x, w, stride=2, **sol.kwargs()),
        fw.onnx_conv_transpose(x, w, (2,), (1,), "SAME_UPPER", None, [1]), rtol=1e-12)
