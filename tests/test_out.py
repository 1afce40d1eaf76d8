"""``out=`` on conv_transpose / conv_transpose{1,2,3}d / conv: the result is written into the
given array (bitwise equal to the fresh result, whatever ``out`` held before) and ``out`` is
validated: type, dtype, shape, C-contiguity, writeability, no overlap with any input."""

from __future__ import annotations

import numpy as np
import pytest
import tconv

PARAMS = dict(stride=(2, 1), padding=(1, 0), output_padding=(1, 0), groups=2, dilation=(1, 2))


def _problem(dtype=np.float32):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 5, 3)).astype(dtype)
    w = rng.standard_normal((4, 3, 3, 2)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    return x, w, b


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose_writes_into_out(dtype):
    x, w, b = _problem(dtype)
    fresh = tconv.conv_transpose(x, w, b, **PARAMS)
    out = np.full(fresh.shape, np.nan, dtype=dtype)
    result = tconv.conv_transpose(x, w, b, **PARAMS, out=out)
    assert result is out
    np.testing.assert_array_equal(out, fresh)
    out2 = np.full(fresh.shape, np.inf, dtype=dtype)
    assert tconv.conv_transpose2d(x, w, b, **PARAMS, out=out2) is out2
    np.testing.assert_array_equal(out2, fresh)


def test_conv_writes_into_out():
    x, w, b = _problem(np.float64)
    y = tconv.conv_transpose(x, w, b, **PARAMS)
    fresh = tconv.conv(y, w, None, PARAMS["stride"], PARAMS["padding"], PARAMS["dilation"], 2)
    out = np.full(fresh.shape, np.nan)
    assert tconv.conv(y, w, None, PARAMS["stride"], PARAMS["padding"], PARAMS["dilation"], 2,
                      out=out) is out
    np.testing.assert_array_equal(out, fresh)


def test_out_may_be_a_contiguous_view_of_a_larger_array():
    x, w, b = _problem()
    fresh = tconv.conv_transpose(x, w, b, **PARAMS)
    buffer = np.zeros((3, *fresh.shape[1:]), np.float32)
    view = buffer[1:3]  # C-contiguous, does not own its data
    tconv.conv_transpose(x, w, b, **PARAMS, out=view)
    np.testing.assert_array_equal(buffer[1:3], fresh)
    np.testing.assert_array_equal(buffer[0], 0)


def test_out_errors():
    x, w, b = _problem()
    shape = tconv.output_shape(x.shape, w.shape, **{k: v for k, v in PARAMS.items()})
    with pytest.raises(TypeError, match="out must be a numpy.ndarray, got list"):
        tconv.conv_transpose(x, w, b, **PARAMS, out=np.zeros(shape, np.float32).tolist())
    with pytest.raises(TypeError, match="out must have dtype float32, got float64"):
        tconv.conv_transpose(x, w, b, **PARAMS, out=np.zeros(shape))
    with pytest.raises(ValueError, match=r"out must have shape \(2, 6, 10, 5\)"):
        tconv.conv_transpose(x, w, b, **PARAMS, out=np.zeros((2, 6, 10, 6), np.float32))
    transposed = np.zeros(shape[::-1], np.float32).T
    with pytest.raises(ValueError, match="out must be C-contiguous"):
        tconv.conv_transpose(x, w, b, **PARAMS, out=transposed)
    frozen = np.zeros(shape, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out must be writeable"):
        tconv.conv_transpose(x, w, b, **PARAMS, out=frozen)


def test_out_must_not_overlap_inputs():
    # A 1x1 stride-1 problem whose output shape equals the input shape: out=input is rejected.
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 2, 4, 4))
    w = rng.standard_normal((2, 2, 1, 1))
    with pytest.raises(ValueError, match="out must not overlap any input array"):
        tconv.conv_transpose(x, w, out=x)
    with pytest.raises(ValueError, match="out must not overlap"):
        tconv.conv(x, w, out=x)
    # ... also when out is a view sharing memory with the weight or the bias.
    store = rng.standard_normal(2 * 2 + 32)
    w_view, out_view = store[:4].reshape(2, 2, 1, 1), store[2:34].reshape(1, 2, 4, 4)
    with pytest.raises(ValueError, match="out must not overlap"):
        tconv.conv_transpose(x, w_view, out=out_view)
    buf = np.zeros(34)
    with pytest.raises(ValueError, match="out must not overlap"):
        tconv.conv_transpose(x, w, buf[:2], out=buf[1:33].reshape(1, 2, 4, 4))
    # Disjoint views of one buffer are fine.
    fresh = tconv.conv_transpose(x, w)
    buffer = np.zeros(64)
    out = buffer[32:].reshape(1, 2, 4, 4)
    xin = buffer[:32].reshape(1, 2, 4, 4)
    xin[...] = x
    tconv.conv_transpose(xin, w, out=out)
    np.testing.assert_array_equal(out, fresh)
