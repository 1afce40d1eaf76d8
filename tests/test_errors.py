"""Bad input gets a clear exception naming the argument and value: never a crash or a
silently wrong answer."""

from __future__ import annotations

import numpy as np
import pytest

import tconv

X = np.zeros((1, 4, 5, 5), np.float32)
W = np.zeros((4, 2, 3, 3), np.float32)

CASES = [
    # (description, call, exception type, message fragment)
    ("wrong ndim", lambda: tconv.conv_transpose(np.zeros((4, 5), np.float32), W), ValueError, "input"),
    ("6-D input", lambda: tconv.conv_transpose(np.zeros((1,) * 6, np.float32), W), ValueError, "input"),
    ("2d op on 1-D data", lambda: tconv.conv_transpose2d(np.zeros((1, 4, 5), np.float32), W[..., 0]), ValueError, "input"),
    ("weight ndim", lambda: tconv.conv_transpose(X, W[..., 0]), ValueError, "weight"),
    ("channel mismatch", lambda: tconv.conv_transpose(X, np.zeros((3, 2, 3, 3), np.float32)), ValueError, "weight.shape[0]"),
    ("groups not dividing", lambda: tconv.conv_transpose(X, W, groups=3), ValueError, "groups"),
    ("groups zero", lambda: tconv.conv_transpose(X, W, groups=0), ValueError, "groups"),
    ("stride zero", lambda: tconv.conv_transpose(X, W, stride=0), ValueError, "stride"),
    ("stride tuple length", lambda: tconv.conv_transpose(X, W, stride=(1, 2, 3)), ValueError, "stride"),
    ("dilation zero", lambda: tconv.conv_transpose(X, W, dilation=0), ValueError, "dilation"),
    ("negative padding", lambda: tconv.conv_transpose(X, W, padding=-1), ValueError, "padding"),
    ("output_padding too large", lambda: tconv.conv_transpose(X, W, stride=2, output_padding=2), ValueError, "output_padding"),
    ("output_padding at stride 1", lambda: tconv.conv_transpose(X, W, output_padding=1), ValueError, "output_padding"),
    ("non-positive output", lambda: tconv.conv_transpose(X, W, padding=7), ValueError, "output size"),
    ("mixed dtypes", lambda: tconv.conv_transpose(X, W.astype(np.float64)), TypeError, "dtype"),
    ("bias dtype", lambda: tconv.conv_transpose(X, W, np.zeros(2)), TypeError, "bias"),
    ("bias shape", lambda: tconv.conv_transpose(X, W, np.zeros(3, np.float32)), ValueError, "bias"),
    ("int input", lambda: tconv.conv_transpose(X.astype(np.int32), W), TypeError, "input"),
    ("float16 input", lambda: tconv.conv_transpose(X.astype(np.float16), W), TypeError, "float16"),
    ("complex input", lambda: tconv.conv_transpose(X.astype(np.complex64), W), TypeError, "complex"),
    ("bool weight", lambda: tconv.conv_transpose(X, W.astype(bool)), TypeError, "weight"),
    ("None input", lambda: tconv.conv_transpose(None, W), TypeError, "input"),
    ("string input", lambda: tconv.conv_transpose("abc", W), TypeError, "input"),
    ("ragged list", lambda: tconv.conv_transpose([[1.0, 2.0], [3.0]], W), TypeError, "input"),
    ("float stride", lambda: tconv.conv_transpose(X, W, stride=1.5), TypeError, "stride"),
    ("bool stride", lambda: tconv.conv_transpose(X, W, stride=True), TypeError, "stride"),
    ("conv channel mismatch", lambda: tconv.conv(X, np.zeros((2, 3, 3, 3), np.float32)), ValueError, "weight.shape[1]"),
    ("conv kernel too big", lambda: tconv.conv(X, np.zeros((2, 4, 7, 7), np.float32)), ValueError, "output size"),
    ("conv stride zero", lambda: tconv.conv(X, np.zeros((2, 4, 3, 3), np.float32), stride=0), ValueError, "stride"),
    ("backward grad shape", lambda: tconv.conv_transpose_backward(np.zeros((1, 2, 6, 6), np.float32), X, W), ValueError, "grad_output"),
    ("backward grad dtype", lambda: tconv.conv_transpose_backward(np.zeros((1, 2, 7, 7)), X, W), TypeError, "grad_output"),
    ("backward mask length", lambda: tconv.conv_transpose_backward(np.zeros((1, 2, 7, 7), np.float32), X, W, output_mask=(True,)), ValueError, "output_mask"),
    ("output_shape bad stride", lambda: tconv.output_shape((1, 4, 5, 5), (4, 2, 3, 3), stride=0), ValueError, "stride"),
    ("out wrong shape", lambda: tconv.conv_transpose(X, W, out=np.zeros((1, 2, 6, 6), np.float32)), ValueError, "out"),
    ("out wrong dtype", lambda: tconv.conv_transpose(X, W, out=np.zeros((1, 2, 7, 7))), TypeError, "out"),
    ("out aliases input", lambda: _aliasing_out(), ValueError, "overlap"),
    ("unreachable output_size", lambda: tconv.conv_transpose(X, W, stride=2, output_size=(20, 20)), ValueError, "output_size"),
    ("huge output", lambda: tconv.output_shape((2**31, 2**20, 2**20, 2**20), (2**20, 2**20, 1, 1)), ValueError, "too many elements"),
]


def _aliasing_out():
    buf = np.zeros((1, 4, 7, 7), np.float32)
    return tconv.conv(buf, np.zeros((4, 4, 1, 1), np.float32), out=buf)


@pytest.mark.parametrize("call,exc,fragment", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises(call, exc, fragment):
    with pytest.raises(exc) as info:
        call()
    assert fragment in str(info.value), str(info.value)


def test_core_rejects_inconsistent_arrays():
    """The binding double-checks what the Python layer promises (defence in depth)."""
    from tconv import _core

    x = np.zeros((1, 4, 5, 5), np.float32)
    y = np.zeros((1, 3, 7, 7), np.float32)  # 3 output channels but weight says 2
    with pytest.raises(ValueError, match="weight shape"):
        _core.scatter(x, W, None, y, [1, 1], [0, 0], [1, 1], 1)
    with pytest.raises(TypeError):  # no silent dtype conversion in the binding
        _core.scatter(x.astype(np.float64), W, None, y, [1, 1], [0, 0], [1, 1], 1)
