"""Each framework's transposed convolution, written from its documentation or source for the
tests; independent of tconv._conventions (which these check).  All in float64 through the dense
reference, 1-D to 3-D, groups=1.

Sources transcribed (read via their public repositories / docs):
- TensorFlow: tf.nn.conv_transpose is the input gradient of a conv; the conv's SAME/VALID
  padding from tensorflow/core/framework/kernel_shape_util.cc GetWindowedOutputSizeVerbose.
- Keras: output length from keras utils conv_utils.deconv_output_length (Keras 2/tf.keras;
  Keras 3 keeps it in keras/src/utils/conv_utils.py), then TensorFlow's op with that shape.
- JAX: jax/_src/lax/convolution.py conv_transpose and _conv_transpose_padding (a stride-1
  correlation over the input dilated by the stride, kernel not flipped by default).
- ONNX: ConvTranspose in onnx/defs/nn/defs.cc (Operators.md): total_padding, SAME_UPPER /
  SAME_LOWER split, output_padding on the high side; where the spec and ONNX Runtime differ
  (negative totals, refused attribute sets) as ONNX Runtime 1.32 behaves (observed).
- MXNet: src/operator/nn/deconvolution-inl.h DeconvolutionParam::InferPad.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from tconv import reference


def kdil(k, d):
    return d * (k - 1) + 1


# --- TensorFlow / Keras ---------------------------------------------------------------------


def tf_conv_padding(n, k, s, d, mode):
    """(output size, (before, after)) of TF's conv with padding SAME/VALID on n elements."""
    kd = kdil(k, d)
    if mode == "VALID":
        return math.ceil((n - kd + 1) / s), (0, 0)
    out = math.ceil(n / s)
    total = max((out - 1) * s + kd - n, 0)
    return out, (total // 2, total - total // 2)


def tf_conv_transpose(x, w, s, d, output_shape, mode):
    """tf.nn.conv_transpose(x, w, output_shape, strides=s, padding=mode, dilations=d): the
    adjoint of the TF conv on an output_shape input.  Returns None where TF raises."""
    pads = []
    for a, o in enumerate(output_shape):
        out, pair = tf_conv_padding(o, w.shape[2 + a], s[a], d[a], mode)
        if out != x.shape[2 + a]:
            return None
        pads.append(pair)
    mat = reference.conv_matrix(w, (w.shape[1], *output_shape), s, pads, d)
    return (x.reshape(x.shape[0], -1) @ mat).reshape(x.shape[0], w.shape[1], *output_shape)


def keras_length(i, k, s, d, padding, output_padding):
    """keras conv_utils.deconv_output_length."""
    k = k + (k - 1) * (d - 1)
    if output_padding is None:
        if padding == "valid":
            return i * s + max(k - s, 0)
        return i * s  # "same"
    pad = k // 2 if padding == "same" else 0
    return (i - 1) * s + k - 2 * pad + output_padding


def keras_conv_transpose(x, w, s, d, padding, output_padding):
    shape = [keras_length(x.shape[2 + a], w.shape[2 + a], s[a], d[a], padding,
                          None if output_padding is None else output_padding[a])
             for a in range(x.ndim - 2)]
    return tf_conv_transpose(x, w, s, d, shape, padding.upper())


# --- JAX --------------------------------------------------------------------------------------


def jax_padding(k, s, d, padding):
    """jax _conv_transpose_padding on the dilated kernel size."""
    k = kdil(k, d)
    if padding == "SAME":
        pad_len = k + s - 2
        pad_a = k - 1 if s > k - 1 else int(np.ceil(pad_len / 2))
    else:  # VALID
        pad_len = k + s - 2 + max(k - s, 0)
        pad_a = k - 1
    return pad_a, pad_len - pad_a


def jax_conv_transpose(x, w, s, d, padding):
    """jax.lax.conv_transpose(x, w, strides=s, padding, rhs_dilation=d) with
    transpose_kernel=False, in NC* layout with w as (C_in, C_out, *k): a correlation of the
    stride-dilated, (a, b)-padded input with the (not flipped) kernel."""
    nd = x.ndim - 2
    pads = padding if not isinstance(padding, str) else [
        jax_padding(w.shape[2 + a], s[a], d[a], padding) for a in range(nd)]
    xd = x.astype(np.float64)
    for a in range(nd):  # lhs dilation
        n = xd.shape[2 + a]
        shape = list(xd.shape)
        shape[2 + a] = (n - 1) * s[a] + 1
        dil = np.zeros(shape)
        idx = [slice(None)] * xd.ndim
        idx[2 + a] = slice(None, None, s[a])
        dil[tuple(idx)] = xd
        lo, hi = pads[a]
        widths = [(0, 0)] * xd.ndim
        widths[2 + a] = (max(lo, 0), max(hi, 0))
        dil = np.pad(dil, widths)
        crop = [slice(None)] * xd.ndim
        crop[2 + a] = slice(max(-lo, 0), dil.shape[2 + a] - max(-hi, 0))
        xd = dil[tuple(crop)]
    out_sp = [xd.shape[2 + a] - kdil(w.shape[2 + a], d[a]) + 1 for a in range(nd)]
    y = np.zeros((x.shape[0], w.shape[1], *out_sp))
    for taps in itertools.product(*[range(kk) for kk in w.shape[2:]]):
        window = tuple(slice(t * d[a], t * d[a] + out_sp[a]) for a, t in enumerate(taps))
        patch = xd[(slice(None), slice(None), *window)]
        y += np.einsum("nc...,co->no...", patch, w[(slice(None), slice(None), *taps)])
    return y


# --- ONNX / MXNet: crops of the full transposed conv -------------------------------------------


def crop_full(x, w, s, d, starts, sizes):
    """The full (unpadded) transposed conv, zeros appended where the window runs past its end
    (output_padding / adj), then the window [start, start + size) per dim."""
    full = reference.conv_transpose(x, w, stride=s, dilation=d)
    extra = [max(st + sz - n, 0) for st, sz, n in zip(starts, sizes, full.shape[2:])]
    widths = [(0, 0), (0, 0)] + [(0, e) for e in extra]
    full = np.pad(full, widths)
    window = tuple(slice(st, st + sz) for st, sz in zip(starts, sizes))
    out = full[(slice(None), slice(None), *window)]
    assert out.shape[2:] == tuple(sizes)
    return out


def onnx_conv_transpose(x, w, s, d, auto_pad, output_shape=None, output_padding=None,
                        pads=None):
    """ConvTranspose as ONNX Runtime runs it (the spec's formulas; where the spec would give
    negative pads ORT clamps the total at 0 and keeps the output from the start; see
    ONNX Runtime 1.32's observed behaviour).  None where ORT refuses the attributes."""
    nd = x.ndim - 2
    output_padding = output_padding or [0] * nd
    pads = pads or [(0, 0)] * nd
    starts, sizes = [], []
    for a in range(nd):
        i, k, op = x.shape[2 + a], w.shape[2 + a], output_padding[a]
        kd = kdil(k, d[a])
        full = s[a] * (i - 1) + kd
        if not 0 <= op < max(s[a], d[a]):
            return None
        if output_shape is not None or auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            target = x.shape[2 + a] * s[a] if output_shape is None else output_shape[a]
            total = max(full + op - target, 0)
            begin = total // 2 if auto_pad == "SAME_UPPER" else total - total // 2
            end = total - begin
            size = target if output_shape is not None else full + op - total
        else:
            begin, end = pads[a] if auto_pad == "NOTSET" else (0, 0)
            if begin < 0 or end < 0:
                return None
            size = full + op - begin - end
        # ORT's consistency check: the matching conv must give back the input size
        if size < 1 or (size + begin + end - kd) // s[a] + 1 != i:
            return None
        starts.append(begin)
        sizes.append(size)
    return crop_full(x, w, s, d, starts, sizes)


def mxnet_conv_transpose(x, w, s, d, target_shape=None, pad=None, adj=None):
    nd = x.ndim - 2
    starts, sizes = [], []
    for a in range(nd):
        full = s[a] * (x.shape[2 + a] - 1) + kdil(w.shape[2 + a], d[a])
        if target_shape is not None:
            total = full - target_shape[a]
            p, j = (total + 1) // 2, total % 2
        else:
            p, j = pad[a], adj[a]
        starts.append(p)
        sizes.append(full - 2 * p + j)
    return crop_full(x, w, s, d, starts, sizes)


# --- the installed frameworks themselves (each returns None when the package is missing) -------


def jax_or_none():
    try:
        import jax
    except ImportError:
        return None
    jax.config.update("jax_enable_x64", True)
    return jax


def jax_has_consistent_padding():
    """lax.conv_transpose(use_consistent_padding=...) exists from jax 0.10 on."""
    import inspect

    from jax import lax
    return "use_consistent_padding" in inspect.signature(lax.conv_transpose).parameters


def jax_lax_conv_transpose(x, w_jax, s, d, padding, spec=None, transpose_kernel=False,
                           use_consistent_padding=False):
    """jax.lax.conv_transpose on tconv's NC* input; ``w_jax`` laid out by ``spec`` (default
    JAX's HWIO family).  The lhs/out spatial letters follow the spec's spatial order."""
    import jax.numpy as jnp
    from jax import lax

    nd = x.ndim - 2
    spec = spec or "HWD"[:nd] + "IO"
    spatial = "".join(c for c in spec if c not in "OI")
    lhs = "NC" + spatial
    pad = padding if isinstance(padding, str) else [tuple(int(v) for v in p) for p in padding]
    kwargs = {"use_consistent_padding": True} if use_consistent_padding else {}
    y = lax.conv_transpose(jnp.asarray(x), jnp.asarray(w_jax), tuple(s), pad,
                           rhs_dilation=tuple(d), dimension_numbers=(lhs, spec, lhs),
                           transpose_kernel=transpose_kernel,
                           precision=lax.Precision.HIGHEST, **kwargs)
    return np.asarray(y)


def ort_or_none():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime


def ort_conv_transpose(x, w, group=1, **attrs):
    """One ConvTranspose node run by ONNX Runtime (float32; ORT has no float64 kernel).
    Raises whatever ORT raises for attributes it refuses."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    node = helper.make_node("ConvTranspose", ["x", "w"], ["y"], group=group,
                            **{k: v for k, v in attrs.items() if v is not None})
    graph = helper.make_graph(
        [node], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape)),
         helper.make_tensor_value_info("w", TensorProto.FLOAT, list(w.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None] * x.ndim)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4  # refusals are expected; the test looks at the exception
    session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x.astype(np.float32), "w": w.astype(np.float32)})[0]
