"""tconv.torch against PyTorch 2.13 (the peer oracle): functions, autograd (gradcheck in
float64), the ConvTranspose*d layers (init, state_dict, outputs, gradients, output_size),
unbatched input, zero-copy hand-off and the errors for unsupported cases."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cases import cases
from hypothesis import given, settings
import tconv

torch = pytest.importorskip("torch")
tt = pytest.importorskip("tconv.torch")
from test_torch_autograd import one_thread  # noqa: E402, F401  (autouse: one thread)

ROOT = Path(__file__).resolve().parent.parent
TORCH_FN = {1: torch.nn.functional.conv_transpose1d, 2: torch.nn.functional.conv_transpose2d,
            3: torch.nn.functional.conv_transpose3d}
TCONV_FN = {1: tt.conv_transpose1d, 2: tt.conv_transpose2d, 3: tt.conv_transpose3d}
TORCH_MOD = {1: torch.nn.ConvTranspose1d, 2: torch.nn.ConvTranspose2d,
             3: torch.nn.ConvTranspose3d}
TCONV_MOD = {1: tt.ConvTranspose1d, 2: tt.ConvTranspose2d, 3: tt.ConvTranspose3d}

# (nd, spatial, kernel, stride, padding, output_padding, dilation, groups, bias)
CONFIGS = [
    (1, (5,), (3,), (2,), (1,), (1,), (1,), 1, True),
    (1, (4,), (2,), (3,), (0,), (2,), (2,), 2, False),
    (2, (3, 4), (3, 2), (2, 1), (1, 0), (1, 0), (1, 2), 1, True),
    (2, (3, 3), (2, 3), (1, 2), (0, 1), (0, 1), (2, 1), 2, True),
    (3, (2, 3, 2), (2, 2, 3), (2, 1, 2), (0, 1, 1), (1, 0, 0), (1, 1, 2), 2, True),
    (3, (2, 2, 2), (1, 2, 2), (1, 2, 1), (0, 0, 1), (0, 1, 0), (1, 1, 1), 1, False),
]
IDS = [f"{c[0]}d-{i}" for i, c in enumerate(CONFIGS)]


def _tensors(cfg, dtype, batch=2, c_in_per_group=2, c_out_per_group=2, seed=0):
    nd, spatial, kernel, _, _, _, _, groups, bias = cfg
    gen = torch.Generator().manual_seed(seed)
    c_in, c_out = c_in_per_group * groups, c_out_per_group * groups
    x = torch.randn((batch, c_in, *spatial), generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn((c_in, c_out_per_group, *kernel), generator=gen, dtype=dtype,
                    requires_grad=True)
    b = torch.randn(c_out, generator=gen, dtype=dtype, requires_grad=True) if bias else None
    return x, w, b


def _kwargs(cfg):
    _, _, _, stride, padding, output_padding, dilation, groups, _ = cfg
    return dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                dilation=dilation)


def test_import_tconv_does_not_import_torch():
    code = "import sys, tconv; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={"PYTHONPATH": str(Path(tconv.__file__).parent.parent),
                        "PATH": "/usr/bin:/bin"})


def test_module_name_does_not_shadow_torch():
    assert tt.torch is torch


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_function_matches_torch_forward_and_backward(cfg, dtype):
    nd = cfg[0]
    x, w, b = _tensors(cfg, dtype)
    y = TCONV_FN[nd](x, w, b, **_kwargs(cfg))
    ref_inputs = [t.detach().clone().requires_grad_() for t in (x, w) + ((b,) if b is not None else ())]
    rx, rw = ref_inputs[0], ref_inputs[1]
    rb = ref_inputs[2] if b is not None else None
    ref = TORCH_FN[nd](rx, rw, rb, **_kwargs(cfg))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    assert y.dtype == dtype and y.shape == ref.shape
    torch.testing.assert_close(y, ref, **tol)
    grad = torch.randn_like(ref)
    y.backward(grad)
    ref.backward(grad)
    torch.testing.assert_close(x.grad, rx.grad, **tol)
    torch.testing.assert_close(w.grad, rw.grad, **tol)
    if b is not None:
        torch.testing.assert_close(b.grad, rb.grad, **tol)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_gradcheck_float64(cfg, one_thread):  # noqa: F811 (the imported fixture)
    x, w, b = _tensors(cfg, torch.float64, batch=1, c_in_per_group=1, c_out_per_group=1)
    fn = TCONV_FN[cfg[0]]
    kwargs = _kwargs(cfg)
    inputs = (x, w) if b is None else (x, w, b)
    assert torch.autograd.gradcheck(lambda *t: fn(*t, **kwargs), inputs, eps=1e-6, atol=1e-8)


@settings(max_examples=40, deadline=None)
@given(case=cases(max_size=5))
def test_random_cases_match_torch(case):
    """Forward and all three gradients against torch.nn.functional on random float64 configs."""
    x, w, b = (None if a is None else torch.from_numpy(a).requires_grad_()
               for a in case.arrays(np.float64))
    params = case.params()
    nd = len(case.spatial)
    with tconv.threads(1):
        y = TCONV_FN[nd](x, w, b, **params)
    ref_in = [None if a is None else a.detach().clone().requires_grad_() for a in (x, w, b)]
    ref = TORCH_FN[nd](*ref_in, **params)
    torch.testing.assert_close(y, ref, rtol=1e-10, atol=1e-10)
    if y.numel() == 0:
        return
    grad = torch.randn_like(ref)
    with tconv.threads(1):
        y.backward(grad)
    ref.backward(grad)
    for mine, theirs in zip((x, w, b), ref_in):
        if mine is not None:
            torch.testing.assert_close(mine.grad, theirs.grad, rtol=1e-10, atol=1e-10)


def test_only_requested_gradients_are_computed():
    cfg = CONFIGS[2]
    x, w, b = _tensors(cfg, torch.float64)
    w.requires_grad_(False)
    b.requires_grad_(False)
    tt.conv_transpose2d(x, w, b, **_kwargs(cfg)).sum().backward()
    assert x.grad is not None and w.grad is None and b.grad is None


def test_hand_off_is_zero_copy():
    t = torch.randn(2, 3, 4)
    view = tt._to_numpy(t)
    assert view.ctypes.data == t.data_ptr()
    t.add_(1.0)
    np.testing.assert_array_equal(view, t.numpy())


def test_non_contiguous_and_expanded_inputs():
    x = torch.randn(2, 5, 3, dtype=torch.float64).transpose(1, 2)  # (2, 3, 5), strided
    w = torch.randn(3, 2, 3, dtype=torch.float64)
    torch.testing.assert_close(tt.conv_transpose1d(x, w, stride=2),
                               torch.nn.functional.conv_transpose1d(x, w, stride=2))
    x = x.clone().requires_grad_()
    tt.conv_transpose1d(x, w, stride=2).sum().backward()  # grad_output is an expanded view
    ref = x.detach().clone().requires_grad_()
    torch.nn.functional.conv_transpose1d(ref, w, stride=2).sum().backward()
    torch.testing.assert_close(x.grad, ref.grad)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_unbatched_input(nd):
    x = torch.randn(2, *([4] * nd), dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 3, *([3] * nd), dtype=torch.float64)
    y = TCONV_FN[nd](x, w, stride=2)
    ref = TORCH_FN[nd](x, w, stride=2)
    torch.testing.assert_close(y, ref)
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_ref,) = torch.autograd.grad(ref.sum(), x)
    torch.testing.assert_close(g, g_ref)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_layer_matches_torch_layer(cfg):
    nd, spatial, kernel, stride, padding, output_padding, dilation, groups, bias = cfg
    args = (2 * groups, 3 * groups, kernel)
    kwargs = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
                  bias=bias, dilation=dilation, dtype=torch.float64)
    torch.manual_seed(7)
    ref = TORCH_MOD[nd](*args, **kwargs)
    torch.manual_seed(7)
    mine = TCONV_MOD[nd](*args, **kwargs)
    # Same initialisation from the same seed, same parameter names and shapes.
    assert list(mine.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[key], value, rtol=0, atol=0)
    assert repr(mine) == repr(ref)
    # Loading the torch layer's state dict (after perturbing it) gives the same outputs/grads.
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(torch.randn_like(p))
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(2, 2 * groups, *spatial, dtype=torch.float64)
    y, y_ref = mine(x), ref(x)
    torch.testing.assert_close(y, y_ref)
    grad = torch.randn_like(y_ref)
    y.backward(grad)
    y_ref.backward(grad)
    for (name, p), (_, q) in zip(mine.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=name)


@pytest.mark.parametrize("extra", [0, 1])
@pytest.mark.parametrize("full", [False, True])
def test_layer_output_size(extra, full):
    torch.manual_seed(0)
    ref = torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    mine = tt.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(1, 2, 4, 5)
    size = [7 + extra, 9 + extra]
    if full:
        size = [1, 3, *size]
    torch.testing.assert_close(mine(x, output_size=size), ref(x, output_size=size))
    assert mine(x, output_size=size).shape[-2:] == (7 + extra, 9 + extra)


def test_layer_output_size_out_of_range():
    layer = tt.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match="valid sizes range from"):
        layer(torch.randn(1, 2, 4, 5), output_size=[9, 9])
    with pytest.raises(ValueError, match="output_size must have 2 or 4 elements"):
        layer(torch.randn(1, 2, 4, 5), output_size=[9])


def test_layer_in_optimizer_step_tracks_torch(one_thread):  # noqa: F811 (the imported fixture)
    torch.manual_seed(3)
    ref = torch.nn.ConvTranspose3d(2, 2, 2, stride=2, dtype=torch.float64)
    mine = tt.ConvTranspose3d(2, 2, 2, stride=2, dtype=torch.float64)
    mine.load_state_dict(ref.state_dict())
    x = torch.randn(1, 2, 3, 3, 3, dtype=torch.float64)
    for layer in (ref, mine):
        opt = torch.optim.SGD(layer.parameters(), lr=0.1)
        for _ in range(3):
            opt.zero_grad()
            layer(x).square().mean().backward()
            opt.step()
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[key], value)


def test_errors():
    x = torch.randn(1, 2, 5)
    w = torch.randn(2, 3, 3)
    with pytest.raises(TypeError, match="input must have dtype torch.float32, float64"):
        tt.conv_transpose1d(x.int(), w)
    with pytest.raises(TypeError, match="weight must have dtype"):
        tt.conv_transpose1d(x, w.int())
    with pytest.raises(TypeError, match="weight has dtype torch.float64 but input"):
        tt.conv_transpose1d(x, w.double())
    with pytest.raises(TypeError, match="input must be a torch.Tensor"):
        tt.conv_transpose1d(x.numpy(), w)
    with pytest.raises(TypeError, match="dense"):
        tt.conv_transpose1d(x.to_sparse(), w)
    with pytest.raises(TypeError, match="CPU tensors only"):
        tt.conv_transpose1d(x.to("meta"), w)
    with pytest.raises(ValueError, match="must be 3-D"):
        tt.conv_transpose1d(x[0, 0], w)
    with pytest.raises(ValueError, match="weight.shape\\[0\\]"):
        tt.conv_transpose1d(torch.randn(1, 4, 5), w)
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        tt.ConvTranspose2d(2, 2, 3, padding_mode="wrap")
    with pytest.raises(ValueError, match="divisible by groups"):
        tt.ConvTranspose2d(3, 2, 3, groups=2)
    with pytest.raises(ValueError, match="groups must be a positive"):
        tt.ConvTranspose1d(2, 2, 3, groups=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_tensor_rejected():
    x = torch.randn(1, 2, 5, device="cuda")
    with pytest.raises(TypeError, match="CPU tensors only"):
        tt.conv_transpose1d(x, torch.randn(2, 3, 3, device="cuda"))


def test_example_trains(one_thread):  # noqa: F811 (the imported fixture)
    path = ROOT / "examples" / "train_upsampler.py"
    spec = importlib.util.spec_from_file_location("train_upsampler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    losses = module.train(steps=40, seed=0, verbose=False)
    assert len(losses) == 40
    assert losses[-1] < 0.5 * losses[0], losses


def test_readme_torch_example_runs():
    text = (ROOT / "README.md").read_text()
    code = text.split("<!-- torch-example -->", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    exec(compile(code, "README torch example", "exec"), {})
