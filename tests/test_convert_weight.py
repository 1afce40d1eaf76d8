"""tconv.arithmetic.convert_weight: each framework's kernel layout, checked by running the
framework where it is installed (JAX, torch) and otherwise against its documented semantics
(TF/Keras: the input gradient of tf.nn.conv with the same HWIO filter, computed with torch's
autograd on the filter converted the standard TF->torch way, (H, W, I, O) -> (O, I, H, W))."""

from __future__ import annotations

import _frameworks as fw
import numpy as np
import pytest
import tconv
from tconv import reference
from tconv.arithmetic import WEIGHT_LAYOUTS, convert_weight


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def test_identity_layouts_and_roundtrips():
    w = rand(4, 3, 2, 5)
    for layout in ("torch", "onnx", "mxnet", "tconv"):
        np.testing.assert_array_equal(convert_weight(w, from_=layout, to="tconv"), w)
    for layout in WEIGHT_LAYOUTS:
        for tk in (False, True):
            for groups in (1, 2):
                if layout == "jax" and tk and groups > 1:
                    continue
                there = convert_weight(w, from_="tconv", to=layout, groups=groups,
                                       transpose_kernel=tk)
                back = convert_weight(there, from_=layout, to="tconv", groups=groups,
                                      transpose_kernel=tk)
                np.testing.assert_array_equal(back, w)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("groups", [1, 2])
def test_tf_keras_layout_is_the_conv_input_gradient(nd, groups):
    torch = pytest.importorskip("torch")
    k = (3, 2, 2)[:nd]
    c_in, c_out = 4, 6  # of the transposed conv
    filt = rand(*k, c_out // groups, c_in, seed=1)  # tf.nn.conv_transpose filters (*k, out, in)
    n_out = (7, 6, 5)[:nd]
    z = torch.zeros((1, c_out, *n_out), dtype=torch.float64, requires_grad=True)
    conv = getattr(torch.nn.functional, f"conv{nd}d")
    # TF conv filter (*k, I, O) = (*k, c_out/g, c_in) -> torch conv weight (O, I, *k)
    torch_w = torch.tensor(np.transpose(filt, (nd + 1, nd, *range(nd))).copy())
    fwd = conv(z, torch_w, stride=2, groups=groups)
    x = rand(*fwd.shape, seed=2)
    fwd.backward(torch.tensor(x))
    for layout in ("tf", "keras"):
        w = convert_weight(filt, from_=layout, to="tconv", groups=groups)
        y = tconv.conv_transpose(x, w, stride=2, groups=groups, output_size=n_out)
        np.testing.assert_allclose(y, z.grad.numpy(), rtol=1e-10, atol=1e-12)


SPECS = {1: ["HIO", "OIH", "IOH"], 2: ["HWIO", "OIHW", "IHWO", "WHOI"], 3: ["HWDIO", "OIHWD"]}


@pytest.mark.slow  # one XLA compilation per spec
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("transpose_kernel", [False, True])
def test_jax_layouts_against_jax(nd, transpose_kernel):
    if fw.jax_or_none() is None:
        pytest.skip("jax not installed")
    k = (3, 2, 2)[:nd]
    s, d = (2, 3, 1)[:nd], (1, 2, 1)[:nd]
    x = rand(2, 3, *(4, 3, 2)[:nd], seed=3)
    c_out = 5
    for spec in SPECS[nd]:
        spatial = [c for c in spec if c not in "OI"]
        # the kernel as the spec lays it out: O/I sizes per JAX's reading of transpose_kernel
        o_size, i_size = (3, c_out) if transpose_kernel else (c_out, 3)
        sizes = {"O": o_size, "I": i_size, **dict(zip(spatial, k))}
        w_jax = rand(*(sizes[c] for c in spec), seed=4)
        want = fw.jax_lax_conv_transpose(x, w_jax, s, d, "VALID", spec, transpose_kernel)
        w = convert_weight(w_jax, from_="jax", to="tconv", spec=spec,
                           transpose_kernel=transpose_kernel)
        assert w.shape == (3, c_out, *k)
        y = tconv.conv_transpose(x, w, stride=s, dilation=d, padding="valid")
        np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10, err_msg=spec)
        back = convert_weight(w, from_="tconv", to="jax", spec=spec,
                              transpose_kernel=transpose_kernel)
        np.testing.assert_array_equal(back, w_jax)


def test_jax_grouped_kernel_against_conv_general_dilated():
    jax = fw.jax_or_none()
    if jax is None:
        pytest.skip("jax not installed")
    from jax import lax
    groups, s = 2, (2, 3)
    x = rand(1, 4, 3, 4, seed=5)
    w_jax = rand(6, 2, 3, 2, seed=6)  # OIHW: (C_out, C_in/groups, *k)
    kd = (3, 2)
    want = np.asarray(lax.conv_general_dilated(
        x, w_jax, (1, 1), [(k - 1, k - 1) for k in kd], lhs_dilation=s,
        dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=groups,
        precision=lax.Precision.HIGHEST))
    w = convert_weight(w_jax, from_="jax", to="tconv", spec="OIHW", groups=groups)
    y = tconv.conv_transpose(x, w, stride=s, groups=groups)
    np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)


def test_jax_transpose_kernel_matches_keras_kernel():
    """JAX documents transpose_kernel=True with its default HWIO spec as Keras' layout."""
    w = rand(3, 2, 5, 4, seed=7)
    np.testing.assert_array_equal(
        convert_weight(w, from_="jax", to="tconv", transpose_kernel=True),
        convert_weight(w, from_="keras", to="tconv"))


def test_square_kernel_ambiguity_is_caught_by_hints():
    keras = rand(4, 4, 4, 4, seed=8)
    # the shape fits every layout, so without a hint only the caller knows
    assert convert_weight(keras, from_="torch", to="tconv").shape == (4, 4, 4, 4)
    ok = convert_weight(keras, from_="keras", to="tconv", in_channels=4, out_channels=4,
                        kernel_size=4)
    np.testing.assert_array_equal(ok, np.transpose(keras, (3, 2, 0, 1)))
    # a (3, 3, 16, 8) Keras kernel passed as torch: the hints expose it and name the layout
    keras = rand(3, 3, 16, 8, seed=9)
    with pytest.raises(ValueError, match="keras"):
        convert_weight(keras, from_="torch", to="tconv", in_channels=8, kernel_size=3)
    assert convert_weight(keras, from_="keras", to="torch", in_channels=8,
                          out_channels=16, kernel_size=(3, 3)).shape == (8, 16, 3, 3)


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="caffe", to="tconv"), ValueError, "from_"),
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="torch", to="x"), ValueError, "to must"),
    (lambda: convert_weight(np.zeros((2, 3)), from_="torch", to="tf"), ValueError, "3-D"),
    (lambda: convert_weight(np.zeros((3, 2, 3)), from_="torch", to="tf", groups=2), ValueError,
     "divide"),
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="torch", to="tf", groups=True), TypeError,
     "groups"),
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="jax", to="tconv", spec="HWIO"),
     ValueError, "spec"),
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="jax", to="tconv", spec="HOO"),
     ValueError, "spec"),
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="jax", to="jax"), ValueError, "both"),
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="jax", to="tconv", groups=2,
                            transpose_kernel=True), ValueError, "groups"),
    (lambda: convert_weight(np.zeros((2, 2, 3)), from_="torch", to="tconv", out_channels=3,
                            groups=2), ValueError, "out_channels"),
])
def test_convert_weight_errors(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()


def test_float32_kept_and_reference_agrees():
    w = rand(2, 3, 3, seed=10).astype(np.float32)
    assert convert_weight(w, from_="torch", to="keras").dtype == np.float32
    x = rand(1, 2, 4, seed=11)
    w64 = w.astype(np.float64)
    back = convert_weight(convert_weight(w64, from_="tconv", to="jax"), from_="jax", to="torch")
    np.testing.assert_array_equal(back, w64)
    np.testing.assert_allclose(tconv.conv_transpose(x, back, stride=2),
                               reference.conv_transpose(x, w64, stride=2), rtol=1e-12)


def test_conv_transpose_names_a_keras_kernel():
    x = np.zeros((1, 8, 4, 4))
    with pytest.raises(ValueError, match="convert_weight"):
        tconv.conv_transpose(x, np.zeros((3, 3, 16, 8)), stride=2)
