"""The calls of issue 19 that crashed (SIGSEGV), each run in a child process on every ISA and
checked against the oracle (tconv.reference, or PyTorch for the autograd module).

Root cause: the direct path's source band (csrc/subconv/band.cpp, fill_band) computed the first
valid point of a band row without clamping it to the band's width.  Rows longer than one row
chunk (kMaxRowChunk grid points) are cut into chunks, and a chunk lying wholly in a low
padding longer than the chunk has its first valid point past the band's end: the zero fill
before it wrote past the band buffer.  Only the low side can do this (a high padding gives an
empty range), hence ``((400, 0),)`` crashed and ``((0, 400),)`` did not.
"""

from __future__ import annotations

import numpy as np
import pytest
import tconv
from _isolate import Worker
from conftest import assert_matches_oracle
from tconv import reference

ISAS = tconv.supported_isas()


@pytest.fixture(scope="module")
def workers():
    pool: dict[str, Worker] = {}
    yield lambda isa: pool.setdefault(isa, Worker(env={"TCONV_ISA": isa}))
    for w in pool.values():
        w.close()


def _data(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _check_conv(actual, x, w, terms, **kw):
    expected = reference.conv_structural(x, w, **kw)
    scale = reference.conv_structural(np.abs(x), np.abs(w), **kw)
    assert_matches_oracle(actual, expected, scale, terms)


# (label, input shape, weight shape, conv keyword arguments)
CONV_CALLS = [
    ("p191", (1, 1, 1), (1, 1, 1), {"padding": 191}),
    ("p192", (1, 1, 1), (1, 1, 1), {"padding": 192}),
    ("p193", (1, 1, 1), (1, 1, 1), {"padding": 193}),
    ("2d-300x300-p200", (1, 1, 300, 300), (1, 1, 3, 3), {"padding": 200}),
    ("stride2-p400", (1, 2, 50), (3, 2, 3), {"stride": 2, "padding": 400}),
    ("low-400", (1, 1, 50), (1, 1, 3), {"padding": ((400, 0),)}),
    ("high-400", (1, 1, 50), (1, 1, 3), {"padding": ((0, 400),)}),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("label,xs,ws,kw", CONV_CALLS, ids=[c[0] for c in CONV_CALLS])
def test_conv_large_padding(workers, isa, label, xs, ws, kw):
    x, w = _data(xs, 1), _data(ws, 2)
    if label.startswith("p19"):  # the exact call: all ones
        x, w = np.ones(xs, np.float32), np.ones(ws, np.float32)
    y = workers(isa).call("tconv:conv", x, w, **kw)
    _check_conv(y, x, w, int(np.prod(ws[1:])), **kw)


@pytest.mark.parametrize("isa", ISAS)
def test_conv_transpose_backward_crop(workers, isa):
    # length 1000, padding 250: the output is cropped to 502 points
    x, w = _data((1, 2, 1000), 3), _data((2, 3, 3), 4)
    g = _data((1, 3, 502), 5)
    gi, gw, gb = workers(isa).call("tconv:conv_transpose_backward", g, x, w, padding=250)
    ri, rw, rb = reference.conv_transpose_backward(g, x, w, padding=250)
    ai, aw, ab = reference.conv_transpose_backward(np.abs(g), np.abs(x), np.abs(w), padding=250)
    assert_matches_oracle(gi, ri, ai, 9, "grad_input")
    assert_matches_oracle(gw, rw, aw, 1000, "grad_weight")
    assert_matches_oracle(gb, rb, ab, 502, "grad_bias")


@pytest.mark.parametrize("isa", ISAS)
def test_resize_conv_padding_200(workers, isa):
    x, w = _data((1, 2, 20), 6), _data((3, 2, 3), 7)
    y = workers(isa).call("tconv:resize_conv", x, w, 2, padding=200)
    up = np.repeat(x, 2, axis=2)  # nearest upsampling, written out independently
    _check_conv(y, up, w, 6, padding=200)


def torch_module_backward(x, weight, bias, grad):
    """tconv.torch.ConvTranspose1d(2, 3, 3, padding=250): output and input/weight/bias grads."""
    import tconv.torch as tt
    import torch

    m = tt.ConvTranspose1d(2, 3, 3, padding=250)
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(weight))
        m.bias.copy_(torch.from_numpy(bias))
    xt = torch.from_numpy(x).requires_grad_(True)
    y = m(xt)
    y.backward(torch.from_numpy(grad))
    return (y.detach().numpy(), xt.grad.numpy(), m.weight.grad.numpy(), m.bias.grad.numpy())


@pytest.mark.parametrize("isa", ISAS)
def test_torch_conv_transpose1d_backward(workers, isa):
    torch = pytest.importorskip("torch")
    x, w, b = _data((1, 2, 1000), 8), _data((2, 3, 3), 9), _data((3,), 10)
    g = _data((1, 3, 502), 11)
    got = workers(isa).call("test_crash_regressions:torch_module_backward", x, w, b, g)
    xt = torch.from_numpy(x.astype(np.float64)).requires_grad_(True)
    wt = torch.from_numpy(w.astype(np.float64)).requires_grad_(True)
    bt = torch.from_numpy(b.astype(np.float64)).requires_grad_(True)
    y = torch.nn.functional.conv_transpose1d(xt, wt, bt, padding=250)
    y.backward(torch.from_numpy(g.astype(np.float64)))
    want = (y.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy())
    for name, a, e in zip(("output", "grad_input", "grad_weight", "grad_bias"), got, want):
        assert a.shape == e.shape, name
        np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(e).max()),
                                   err_msg=name)
