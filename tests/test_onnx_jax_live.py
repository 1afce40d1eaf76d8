"""ONNX Runtime and jax.lax.conv_transpose themselves (optional test dependencies: each test
skips cleanly without its package) against tconv.arithmetic.convert + tconv.conv_transpose.

ONNX: random one-node ConvTranspose models over every attribute (auto_pad NOTSET / VALID /
SAME_UPPER / SAME_LOWER, pads, output_padding, output_shape, strides, dilations, group, 1-D to
3-D).  Where ORT runs the model, ``convert(from_="onnx...", to="tconv")`` must give one tconv call
with ORT's values; where ORT refuses, convert must refuse too.

JAX: every padding form of lax.conv_transpose ("SAME", "VALID", explicit pairs including
negative ones and pairs beyond the full output, use_consistent_padding True and False) with
transpose_kernel True and False, the kernel brought over by convert_weight.
"""

from __future__ import annotations

import random

import _frameworks as fw
import numpy as np
import pytest
import tconv
from tconv.arithmetic import convert, convert_weight

AUTO_PAD = {"NOTSET": "onnx", "VALID": "onnx-valid", "SAME_UPPER": "onnx-same-upper",
            "SAME_LOWER": "onnx-same-lower"}


def random_onnx_case(rnd: random.Random):
    nd = rnd.choice([1, 1, 2, 2, 3])
    small = nd == 3
    i = [rnd.randint(1, 3 if small else 5) for _ in range(nd)]
    k = [rnd.randint(1, 2 if small else 4) for _ in range(nd)]
    s = [rnd.randint(1, 4) for _ in range(nd)]
    d = [rnd.randint(1, 3) for _ in range(nd)]
    group = rnd.choice([1, 1, 2])
    auto_pad = rnd.choice(list(AUTO_PAD))
    attrs = {"strides": s, "dilations": d, "auto_pad": auto_pad, "group": group}
    if rnd.random() < 0.6:
        attrs["output_padding"] = [rnd.randint(0, 3) for _ in range(nd)]
    if rnd.random() < 0.4:
        full = [(ii - 1) * ss + dd * (kk - 1) + 1 for ii, kk, ss, dd in zip(i, k, s, d)]
        attrs["output_shape"] = [max(1, f + rnd.randint(-4, 4)) for f in full]
    if auto_pad == "NOTSET" and rnd.random() < 0.8:
        attrs["pads"] = [rnd.randint(0, 3) for _ in range(2 * nd)]
    if rnd.random() < 0.3:
        attrs["kernel_shape"] = k
    return i, k, group, attrs


def onnx_params(i, k, attrs):
    """convert()'s parameters for one ONNX node's attributes."""
    conv = AUTO_PAD[attrs["auto_pad"]]
    params = {"input_size": tuple(i), "kernel_size": tuple(k), "stride": tuple(attrs["strides"]),
              "dilation": tuple(attrs["dilations"])}
    if "output_padding" in attrs:
        params["output_padding"] = tuple(attrs["output_padding"])
    if "output_shape" in attrs:
        params["output_shape"] = tuple(attrs["output_shape"])
    if "pads" in attrs:
        params["pads"] = tuple(attrs["pads"])  # ONNX's flat order
    return conv, params


def check_onnx_cases(n, seed):
    if fw.ort_or_none() is None:
        pytest.skip("onnx / onnxruntime not installed")
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    ran = refused = 0
    for _ in range(n):
        i, k, group, attrs = random_onnx_case(rnd)
        x = rng.standard_normal((2, 2 * group, *i)).astype(np.float32)
        w = rng.standard_normal((2 * group, 3, *k)).astype(np.float32)
        conv, params = onnx_params(i, k, attrs)
        try:
            want = fw.ort_conv_transpose(x, w, **attrs)
        except Exception:  # noqa: BLE001 -- ORT refuses this attribute set (its own types)
            refused += 1
            with pytest.raises(ValueError):
                convert(params, from_=conv, to="tconv")
            continue
        ran += 1
        out = convert(params, from_=conv, to="tconv")
        weight = convert_weight(w, from_="onnx", to="tconv", groups=group)
        got = tconv.conv_transpose(x, weight, stride=out["stride"], dilation=out["dilation"],
                                   padding=out["padding"], output_padding=out["output_padding"],
                                   groups=group)
        assert got.shape == want.shape, (attrs, out)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=str((attrs, out)))
    return ran, refused


def test_onnx_runtime_random_models():
    ran, refused = check_onnx_cases(30, seed=0)
    assert ran >= 8 and refused >= 3, (ran, refused)


@pytest.mark.slow
def test_onnx_runtime_many_random_models():
    ran, refused = check_onnx_cases(1500, seed=1)
    assert ran >= 500, (ran, refused)


def test_onnx_valid_differs_from_tconv_valid():
    """k=1, s=2, i=3: ONNX VALID keeps the full output (5), tconv's "valid" (TF/Keras/JAX) pads
    it to i*s = 6; convert(from_="onnx-valid") gives ONNX's."""
    x = np.arange(1.0, 4.0).reshape(1, 1, 3)
    w = np.full((1, 1, 1), 2.0)
    assert tconv.conv_transpose(x, w, stride=2, padding="valid").shape[-1] == 6
    out = convert({"input_size": 3, "kernel_size": 1, "stride": 2}, from_="onnx-valid",
                  to="tconv")
    y = tconv.conv_transpose(x, w, stride=2, padding=out["padding"],
                             output_padding=out["output_padding"])
    np.testing.assert_array_equal(y.ravel(), [2, 0, 4, 0, 6])
    if fw.ort_or_none() is not None:
        want = fw.ort_conv_transpose(x, w, strides=[2], auto_pad="VALID")
        np.testing.assert_allclose(y, want)


def test_onnx_notset_output_shape_and_negative_total():
    """NOTSET + output_shape splits like SAME_LOWER (odd element at the start); a negative
    total (output_shape beyond full + output_padding) appends zeros at the end."""
    x = np.arange(1.0, 4.0).reshape(1, 1, 3)
    w = np.array([1.0, 10.0, 100.0]).reshape(1, 1, 3)
    full = tconv.conv_transpose(x, w, stride=2).ravel()  # 7 elements
    for shape, window in [(6, full[1:7]), (5, full[1:6]), (4, full[2:6])]:
        out = convert({"input_size": 3, "kernel_size": 3, "stride": 2, "output_shape": shape},
                      from_="onnx", to="tconv")
        y = tconv.conv_transpose(x, w, stride=2, padding=out["padding"],
                                 output_padding=out["output_padding"]).ravel()
        np.testing.assert_array_equal(y, window)
    w1 = np.full((1, 1, 1), 7.0)
    out = convert({"input_size": 3, "kernel_size": 1, "stride": 2, "output_shape": 6},
                  from_="onnx", to="tconv")
    y = tconv.conv_transpose(x, w1, stride=2, padding=out["padding"],
                             output_padding=out["output_padding"])
    np.testing.assert_array_equal(y.ravel(), [7, 0, 14, 0, 21, 0])
    sol = tconv.arithmetic.solve(3, 3, 2, convention="onnx", output_size=5, output_padding=1)
    assert sol.params == {"output_shape": (5,), "output_padding": (1,), "pads": ((0, 0),)}
    assert sol.padding == ((2, 0),) and sol.output_padding == (0,)


# --- JAX -------------------------------------------------------------------------------------


def jax_cases(rnd: random.Random, n: int):
    for _ in range(n):
        nd = rnd.choice([1, 2, 2, 3])
        small = nd == 3
        i = [rnd.randint(1, 3 if small else 5) for _ in range(nd)]
        k = [rnd.randint(1, 2 if small else 4) for _ in range(nd)]
        s = [rnd.randint(1, 3) for _ in range(nd)]
        d = [rnd.randint(1, 2) for _ in range(nd)]
        form = rnd.choice(["SAME", "VALID", "pairs", "pairs"])
        consistent = rnd.random() < 0.5
        if form == "pairs":
            padding = [(rnd.randint(-3, 6), rnd.randint(-3, 6)) for _ in range(nd)]
        else:
            padding = form
        yield i, k, s, d, padding, consistent, rnd.random() < 0.5


def check_jax_cases(n, seed, cases=None):
    if fw.jax_or_none() is None:
        pytest.skip("jax not installed")
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    ran = 0
    for i, k, s, d, padding, consistent, transpose_kernel in cases or jax_cases(rnd, n):
        nd = len(i)
        if consistent and not fw.jax_has_consistent_padding():
            continue  # an older jax: its explicit pairs always mean the dilated input's padding
        conv = "jax-consistent" if consistent else "jax"
        params = {"input_size": tuple(i), "kernel_size": tuple(k), "stride": tuple(s),
                  "dilation": tuple(d), "padding": padding}
        spec = "HWD"[:nd] + "IO"
        sizes = {"O": 3 if transpose_kernel else 4, "I": 4 if transpose_kernel else 3}
        sizes.update(zip("HWD", k))
        w_jax = rng.standard_normal([sizes[c] for c in spec])
        x = rng.standard_normal((2, 3, *i))
        try:
            want = fw.jax_lax_conv_transpose(x, w_jax, s, d, padding, spec, transpose_kernel,
                                             use_consistent_padding=consistent)
        except Exception:  # noqa: BLE001 -- JAX refuses (e.g. no output left)
            with pytest.raises(ValueError):
                convert(params, from_=conv, to="tconv")
            continue
        if min(want.shape) == 0:
            with pytest.raises(ValueError):
                convert(params, from_=conv, to="tconv")
            continue
        ran += 1
        out = convert(params, from_=conv, to="tconv")
        w = convert_weight(w_jax, from_="jax", to="tconv", spec=spec,
                           transpose_kernel=transpose_kernel)
        got = tconv.conv_transpose(x, w, stride=s, dilation=d, padding=out["padding"],
                                   output_padding=out["output_padding"])
        assert got.shape == want.shape, (params, conv, out)
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10,
                                   err_msg=str((params, conv, out)))
    return ran


def test_jax_padding_forms_quick():
    g = ([4], [3], [2], [1])
    cases = [(*g, "SAME", False, False), (*g, "VALID", True, True),
             (*g, [(-2, 5)], False, True), (*g, [(1, 2)], True, False)]
    assert check_jax_cases(0, seed=0, cases=cases) >= 3


@pytest.mark.slow
def test_jax_every_padding_form():
    # each case compiles one XLA computation (~0.5 s on this machine)
    assert check_jax_cases(250, seed=1) >= 150


def test_jax_use_consistent_padding_means_torch_padding():
    """use_consistent_padding=True with (p, p) is PyTorch's padding=p (JAX's docstring)."""
    out = convert({"input_size": (4, 5), "kernel_size": 3, "stride": 2, "padding": ((1, 1),
                   (2, 0))}, from_="jax-consistent", to="tconv")
    assert out["padding"] == ((1, 1), (2, 0)) and out["output_padding"] == (0, 0)
    torch_out = convert({"input_size": 4, "kernel_size": 3, "stride": 2, "padding": 1,
                         "output_padding": 1}, from_="torch", to="jax-consistent")
    assert torch_out["padding"] in ("SAME", ((1, 0),))


@pytest.mark.slow
def test_jax_vjp_and_negative_conv_padding():
    """conv_transpose_backward against jax.vjp of lax.conv_transpose (explicit pairs, some
    negative), and conv's cropping against lax.conv_general_dilated's negative padding."""
    jax = fw.jax_or_none()
    if jax is None:
        pytest.skip("jax not installed")
    import jax.numpy as jnp
    from jax import lax

    rng = np.random.default_rng(9)
    hi = lax.Precision.HIGHEST
    cases = [((5,), (3,), (2,), (1,), [(4, -1)]), ((4, 3), (2, 3), (3, 1), (1, 2), [(-1, 2), (5, 0)]),
             ((3, 4), (3, 2), (2, 2), (2, 1), [(0, 6), (-2, -1)])]
    for i, k, s, d, pads in cases:
        nd = len(i)
        spec = "OI" + "HWD"[:nd]
        lhs = "NC" + "HWD"[:nd]
        x = rng.standard_normal((2, 3, *i))
        w_jax = rng.standard_normal((4, 3, *k))  # transpose_kernel=False: (C_out, C_in, *k)

        def f(xx, ww, s=s, pads=pads, d=d, dn=(lhs, spec, lhs)):
            return lax.conv_transpose(xx, ww, s, pads, rhs_dilation=d, dimension_numbers=dn,
                                      precision=hi)

        y, pullback = jax.vjp(f, jnp.asarray(x), jnp.asarray(w_jax))
        g = rng.standard_normal(y.shape)
        gx, gw_jax = pullback(jnp.asarray(g))
        out = convert({"input_size": i, "kernel_size": k, "stride": s, "dilation": d,
                       "padding": pads}, from_="jax", to="tconv")
        w = convert_weight(w_jax, from_="jax", to="tconv", spec=spec)
        kw = {"stride": s, "padding": out["padding"], "output_padding": out["output_padding"],
              "dilation": d}
        np.testing.assert_allclose(tconv.conv_transpose(x, w, **kw), np.asarray(y), rtol=1e-10,
                                   atol=1e-10)
        t_gx, t_gw, _ = tconv.conv_transpose_backward(g, x, w, **kw)
        np.testing.assert_allclose(t_gx, np.asarray(gx), rtol=1e-10, atol=1e-10)
        # the weight map is linear, so the gradient converts like the weight
        np.testing.assert_allclose(convert_weight(t_gw, from_="tconv", to="jax", spec=spec),
                                   np.asarray(gw_jax), rtol=1e-10, atol=1e-10)
        # conv: XLA's negative padding crops the input, as tconv.conv's does
        yin = rng.standard_normal((2, 3, *(n * 2 + 3 for n in i)))
        wc = rng.standard_normal((4, 3, *k))
        cpads = [(-1, 2), (1, -2), (-2, -1)][:nd]
        want = lax.conv_general_dilated(jnp.asarray(yin), jnp.asarray(wc), s, cpads,
                                        rhs_dilation=d, dimension_numbers=(lhs, spec, lhs),
                                        precision=hi)
        np.testing.assert_allclose(tconv.conv(yin, wc, None, s, cpads, d), np.asarray(want),
                                   rtol=1e-10, atol=1e-10)
