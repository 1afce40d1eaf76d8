"""tconv.arithmetic against brute force, the actual kernels, PyTorch and Dumoulin & Visin's
relationships."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tconv
from tconv.arithmetic import (
    conv_output_size,
    conv_transpose_output_size,
    equivalent_conv,
    flip_kernel,
    output_padding_for,
)

from _cases import cases


def brute_conv_size(i, k, s, p, d):
    """Count the window positions m*s (m >= 0) whose dilated taps all lie in the padded input."""
    count = 0
    while count * s + d * (k - 1) <= i + 2 * p - 1:
        count += 1
    return count


def brute_transpose_size(i, k, s, p, d, a):
    """One past the largest written position, plus output_padding, minus the high padding."""
    largest = max(n * s + t * d for n in range(i) for t in range(k))
    return largest + 1 + a - 2 * p


params = st.tuples(st.integers(1, 12), st.integers(1, 5), st.integers(1, 4), st.integers(0, 4),
                   st.integers(1, 3))


@settings(max_examples=200, deadline=None)
@given(params)
def test_conv_output_size_brute_force(args):
    i, k, s, p, d = args
    if i + 2 * p < d * (k - 1) + 1:
        with pytest.raises(ValueError):
            conv_output_size(i, k, s, p, d)
        return
    assert conv_output_size(i, k, s, p, d) == (brute_conv_size(i, k, s, p, d),)


@settings(max_examples=200, deadline=None)
@given(params, st.integers(0, 3))
def test_transpose_output_size_brute_force_and_dv_relationship(args, a):
    i, k, s, p, d = args
    a = a % max(s, d)
    expected = brute_transpose_size(i, k, s, p, d, a)
    if expected < 1:
        with pytest.raises(ValueError):
            conv_transpose_output_size(i, k, s, p, a, d)
        return
    assert conv_transpose_output_size(i, k, s, p, a, d) == (expected,)
    # Dumoulin & Visin (relationship 14): undo a conv of size i with a = (i + 2p - d(k-1) - 1) mod s.
    if i + 2 * p >= d * (k - 1) + 1:
        o = conv_output_size(i, k, s, p, d)[0]
        a_dv = (i + 2 * p - d * (k - 1) - 1) % s
        assert conv_transpose_output_size(o, k, s, p, a_dv, d) == (i,)


@settings(max_examples=40, deadline=None)
@given(case=cases(max_size=6))
def test_sizes_match_kernels(case):
    x, w, b = case.arrays(np.float64)
    y = tconv.conv_transpose(x, w, b, **case.params())
    assert y.shape[2:] == conv_transpose_output_size(case.spatial, case.kernel, case.stride,
                                                     case.padding, case.output_padding,
                                                     case.dilation)
    assert tconv.output_shape(x.shape, w.shape, case.stride, case.padding, case.output_padding,
                              case.dilation, case.groups) == y.shape
    if case.batch:
        z = tconv.conv(y, w, None, case.stride, case.padding, case.dilation, case.groups)
        assert z.shape[2:] == conv_output_size(y.shape[2:], case.kernel, case.stride,
                                               case.padding, case.dilation)


def test_notes_example_sizes():
    assert conv_output_size((4, 4), 3) == (2, 2)            # the notes: 4x4 * 3x3 -> 2x2
    assert conv_transpose_output_size((2, 2), 3) == (4, 4)  # and back


@settings(max_examples=60, deadline=None)
@given(case=cases(max_size=6))
def test_output_padding_for_round_trip(case):
    """output_padding_for(size of a layer with output_padding a) == a, and conv_transpose's
    output_size= produces that size."""
    out = case.output_spatial()
    shape = (case.batch, case.c_in, *case.spatial)
    op = output_padding_for(out, shape, case.kernel, case.stride, case.padding, case.dilation)
    assert op == case.output_padding
    x, w, b = case.arrays(np.float64)
    y = tconv.conv_transpose(x, w, b, case.stride, case.padding, 0, case.groups, case.dilation,
                             output_size=out)
    np.testing.assert_array_equal(y, tconv.conv_transpose(x, w, b, **case.params()))


def test_output_padding_for_full_shape_and_errors():
    assert output_padding_for((1, 8, 6, 6), (1, 4, 3, 3), 3, 2, 1) == (1, 1)
    with pytest.raises(ValueError, match="output_size"):
        output_padding_for((7, 7), (1, 4, 3, 3), 3, 2, 1)          # range is [5, 6]
    with pytest.raises(ValueError, match="output_size"):
        output_padding_for((6,), (1, 4, 3, 3), 3, 2, 1)
    with pytest.raises(TypeError, match="output_size"):
        output_padding_for(6, (1, 4, 3, 3), 3, 2, 1)
    with pytest.raises(ValueError, match="input_shape"):
        output_padding_for((6, 6), (3, 3), 3, 2, 1)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_output_padding_for_vs_torch(nd):
    torch = pytest.importorskip("torch")
    layer_cls = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d,
                 3: torch.nn.ConvTranspose3d}[nd]
    rng = np.random.default_rng(nd)
    for _ in range(6):
        k, s, p = (int(v) for v in rng.integers(1, 4, 3))
        p = min(p, k - 1)
        i = int(rng.integers(2, 5))
        layer = layer_cls(2, 3, k, stride=s, padding=p).double()
        x = np.random.default_rng(0).standard_normal((1, 2, *(i,) * nd))
        smallest = (i - 1) * s - 2 * p + (k - 1) + 1
        if smallest < 1:
            continue
        for size in range(smallest, smallest + s):
            want = (size,) * nd
            yt = layer(torch.from_numpy(x), output_size=list(want)).detach().numpy()
            op = output_padding_for(want, x.shape, k, s, p)
            assert op == (size - smallest,) * nd
            y = tconv.conv_transpose(x, layer.weight.detach().numpy(), layer.bias.detach().numpy(),
                                     s, p, output_size=want)
            np.testing.assert_allclose(y, yt, rtol=1e-10, atol=1e-10)
        with pytest.raises(ValueError):
            layer(torch.from_numpy(x), output_size=[smallest + s] * nd)
        with pytest.raises(ValueError, match="not reachable"):
            output_padding_for((smallest + s,) * nd, x.shape, k, s, p)


@settings(max_examples=100, deadline=None)
@given(params, st.integers(0, 3))
def test_equivalent_conv_sizes(args, a):
    """stretched + padding - dilated kernel + 1 == transposed output size (the conv's size)."""
    i, k, s, p, d = args
    a = a % max(s, d)
    if brute_transpose_size(i, k, s, p, d, a) < 1:
        return
    e = equivalent_conv(i, k, s, p, a, d)
    assert e.inserted_zeros == (s - 1,)
    assert e.stretched_size == ((i - 1) * s + 1,)
    assert e.padding == ((d * (k - 1) - p, d * (k - 1) - p + a),)
    assert e.stride == (1,) and e.dilation == (d,) and e.flip_kernel
    lo, hi = e.padding[0]
    assert e.stretched_size[0] + lo + hi - d * (k - 1) == e.output_size[0]


def test_flip_kernel_definition(rng):
    g, cin_g, cout_g = 2, 3, 2
    w = rng.standard_normal((g * cin_g, cout_g, 3, 2))
    v = flip_kernel(w, g)
    assert v.shape == (g * cout_g, cin_g, 3, 2)
    for grp in range(g):
        for f in range(cout_g):
            for c in range(cin_g):
                for t0 in range(3):
                    for t1 in range(2):
                        assert v[grp * cout_g + f, c, t0, t1] == w[grp * cin_g + c, f, 2 - t0, 1 - t1]


def test_arithmetic_errors():
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        conv_output_size(2, 5)
    with pytest.raises(ValueError, match="output_padding"):
        conv_transpose_output_size(3, 3, 2, 0, 2)
    with pytest.raises(ValueError, match="spatial dims"):
        conv_output_size((3, 3), (3, 3, 3))
    with pytest.raises(ValueError, match="stride"):
        conv_transpose_output_size(3, 3, 0)
    with pytest.raises(ValueError, match="groups"):
        flip_kernel(np.zeros((3, 1, 2)), 2)


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.integers(1, 2),
       st.integers(-4, 3), st.integers(-4, 3), st.integers(0, 2))
def test_sizes_with_negative_padding(i, k, s, d, lo, hi, a):
    """A negative side crops the conv's input / extends the transposed conv's output: sizes by
    counting (window positions over the cropped/padded input; the kept window's length)."""
    a = a % max(s, d)
    full = (i - 1) * s + d * (k - 1) + 1
    size = full - lo - hi + a
    if size < 1:
        with pytest.raises(ValueError):
            conv_transpose_output_size(i, k, s, ((lo, hi),), a, d)
    else:
        assert conv_transpose_output_size(i, k, s, ((lo, hi),), a, d) == (size,)
        x = np.ones((1, 1, i))
        assert tconv.conv_transpose(x, np.ones((1, 1, k)), None, s, ((lo, hi),), a, 1,
                                    d).shape[2:] == (size,)
        assert output_padding_for((size,), (1, 1, i), k, s, ((lo, hi),), d) == (a,)
    padded = i + lo + hi  # input length after cropping/padding
    count = sum(1 for m in range(padded) if m * s + d * (k - 1) < padded)
    if count == 0:
        with pytest.raises(ValueError):
            conv_output_size(i, k, s, ((lo, hi),), d)
    else:
        assert conv_output_size(i, k, s, ((lo, hi),), d) == (count,)
        assert tconv.conv(np.ones((1, 1, i)), np.ones((1, 1, k)), None, s, ((lo, hi),),
                          d).shape[2:] == (count,)
