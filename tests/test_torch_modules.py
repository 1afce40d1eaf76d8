"""tconv.torch's layers as real ``torch.nn.ConvTranspose*d`` subclasses: parametrizations,
weight/spectral norm, fusion helpers, deepcopy, checkpoints, padding modes, convert/revert,
strict argument validation, half-precision dtypes, autocast and channels-last."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest

import tconv

torch = pytest.importorskip("torch")
tt = pytest.importorskip("tconv.torch")
from test_torch_autograd import one_thread  # noqa: E402, F401  (autouse: one thread)

nn = torch.nn
F = torch.nn.functional
TORCH_MOD = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}
TCONV_MOD = {1: tt.ConvTranspose1d, 2: tt.ConvTranspose2d, 3: tt.ConvTranspose3d}


def _pair(nd, seed=0, **kwargs):
    """The same layer from torch and from tconv, with equal parameters."""
    kwargs = {"stride": 2, "padding": 1, **kwargs}
    torch.manual_seed(seed)
    ref = TORCH_MOD[nd](4, 6, 3, **kwargs)
    torch.manual_seed(seed)
    mine = TCONV_MOD[nd](4, 6, 3, **kwargs)
    return ref, mine


def _input(nd, dtype=torch.float32, seed=1):
    return torch.randn(2, 4, *([5, 4, 3][:nd]), generator=torch.Generator().manual_seed(seed),
                       dtype=dtype)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_is_a_torch_layer(nd):
    ref, mine = _pair(nd, output_padding=1, groups=2, dilation=2, bias=False)
    assert isinstance(mine, TORCH_MOD[nd])
    assert repr(mine) == repr(ref)
    assert list(mine.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        assert torch.equal(mine.state_dict()[key], value)
    x = _input(nd)
    torch.testing.assert_close(mine(x), ref(x))
    torch.manual_seed(3)
    ref.reset_parameters()
    torch.manual_seed(3)
    mine.reset_parameters()
    assert torch.equal(mine.weight, ref.weight)


def _grads(layer, x):
    layer.zero_grad()
    y = layer(x)
    y.square().sum().backward()
    return y, {n: p.grad.clone() for n, p in layer.named_parameters()}


@pytest.mark.parametrize(
    "wrap",
    [
        lambda m: nn.utils.spectral_norm(m),
        lambda m: nn.utils.parametrizations.spectral_norm(m),
        lambda m: nn.utils.weight_norm(m),
        lambda m: nn.utils.parametrizations.weight_norm(m),
        lambda m: nn.utils.parametrizations.orthogonal(m),
    ],
    ids=["spectral_norm", "p.spectral_norm", "weight_norm", "p.weight_norm", "p.orthogonal"],
)
def test_parametrizations_and_norms_behave_as_on_torch(wrap):
    ref, mine = _pair(2)
    torch.manual_seed(9)  # spectral norm draws its power-iteration vectors
    ref = wrap(ref)
    torch.manual_seed(9)
    mine = wrap(mine)
    x = _input(2)
    for _ in range(2):  # spectral norm's power iteration advances on each training forward
        y_ref, g_ref = _grads(ref, x)
        y, g = _grads(mine, x)
        torch.testing.assert_close(y, y_ref)
        for name in g_ref:
            scale = g_ref[name].abs().max().item()  # float32 sums in another order
            torch.testing.assert_close(g[name], g_ref[name], rtol=1e-5, atol=2e-6 * scale,
                                       msg=name)
    assert list(mine.state_dict()) == list(ref.state_dict())
    for key, value in ref.state_dict().items():
        torch.testing.assert_close(mine.state_dict()[key], value, msg=key)


def test_torch_checkpoint_loads_with_spectral_norm():
    ref = nn.utils.parametrizations.spectral_norm(nn.ConvTranspose2d(4, 6, 3, stride=2))
    ref(_input(2))
    assert ref.parametrizations.weight[0]._u.shape == (6,)  # dim 1 for transposed convs
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    buf.seek(0)
    mine = nn.utils.parametrizations.spectral_norm(tt.ConvTranspose2d(4, 6, 3, stride=2))
    mine.load_state_dict(torch.load(buf))
    ref.eval(), mine.eval()
    torch.testing.assert_close(mine(_input(2)), ref(_input(2)))


def test_fusion_helpers():
    ref, mine = _pair(2)
    bn = nn.BatchNorm2d(6).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    ref.eval(), mine.eval()
    fused_ref = nn.utils.fusion.fuse_conv_bn_eval(ref, bn, transpose=True)
    fused = nn.utils.fusion.fuse_conv_bn_eval(mine, bn, transpose=True)
    assert type(fused) is tt.ConvTranspose2d
    x = _input(2)
    torch.testing.assert_close(fused(x), fused_ref(x))
    torch.testing.assert_close(fused(x), bn(mine(x)), rtol=1e-5, atol=1e-5)


def test_deepcopy_and_pickle():
    mine = tt.ConvTranspose3d(4, 6, 3, stride=2, padding=1, padding_mode="circular")
    clone = copy.deepcopy(mine)
    assert type(clone) is tt.ConvTranspose3d and clone.padding_mode == "circular"
    assert clone.weight is not mine.weight and torch.equal(clone.weight, mine.weight)
    buf = io.BytesIO()
    torch.save(mine, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    x = _input(3)
    torch.testing.assert_close(loaded(x), mine(x))


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_padding_modes_match_numpy_api(nd, mode):
    """The layers' padding modes against tconv's NumPy API (itself checked against the
    dense-matrix oracle in test_padding.py), forward and gradients against finite differences."""
    kwargs = dict(stride=2, padding=(1, 2, 1)[:nd], output_padding=1, dilation=1, groups=2)
    layer = TCONV_MOD[nd](4, 6, 3, padding_mode=mode, dtype=torch.float64, **kwargs)
    assert f"padding_mode={mode}" in repr(layer)
    x = _input(nd, torch.float64).requires_grad_()
    y = layer(x)
    ref = tconv.conv_transpose(x.detach().numpy(), layer.weight.detach().numpy(),
                               layer.bias.detach().numpy(), padding_mode=mode, **kwargs)
    np.testing.assert_allclose(y.detach().numpy(), ref, rtol=1e-12, atol=1e-12)
    small = TCONV_MOD[nd](2, 2, 3, padding_mode=mode, dtype=torch.float64, **kwargs)
    xs = torch.randn(1, 2, *([3, 3, 2][:nd]), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(small, (xs,), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(small, (xs,), eps=1e-6, atol=1e-8)


def test_padding_mode_errors():
    layer = tt.ConvTranspose1d(1, 1, 9, padding=4, padding_mode="reflect")
    with pytest.raises(ValueError, match="reflect"):
        layer(torch.randn(1, 1, 2))
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        tt.conv_transpose1d(torch.randn(1, 1, 2), torch.randn(1, 1, 3), padding_mode="wrap")


def _model(conv_cls):
    torch.manual_seed(0)
    return nn.Sequential(
        conv_cls(4, 3, 4, stride=2, padding=1), nn.ReLU(),
        nn.Sequential(nn.ConvTranspose1d(3, 2, 3)), conv_cls(3, 2, 3, padding=1),
    )


def test_convert_and_revert():
    model = _model(nn.ConvTranspose2d)
    calls = []
    model[0].register_forward_hook(lambda m, i, o: calls.append(o.shape))
    model[3] = nn.utils.parametrizations.weight_norm(model[3])
    model[0].register_buffer("extra", torch.ones(2))
    x = torch.randn(1, 4, 5, 5)
    y_ref = model[3](model[1](model[0](x)))
    converted = tt.convert(model)
    assert type(model[0]) is nn.ConvTranspose2d  # not in place by default
    assert type(converted[0]) is tt.ConvTranspose2d
    assert type(converted[2][0]) is tt.ConvTranspose1d
    assert isinstance(converted[3], tt.ConvTranspose2d)
    assert nn.utils.parametrize.is_parametrized(converted[3], "weight")
    assert torch.equal(converted[0].extra, torch.ones(2))
    calls.clear()
    y = converted[3](converted[1](converted[0](x)))
    torch.testing.assert_close(y, y_ref)
    assert calls == [y_ref.shape[:1] + (3, 10, 10)]
    assert [n for n, _ in converted.named_parameters()] == [n for n, _ in model.named_parameters()]
    back = tt.revert(converted, inplace=True)
    assert back is converted
    assert type(back[0]) is nn.ConvTranspose2d and type(back[2][0]) is nn.ConvTranspose1d
    assert isinstance(back[3], nn.ConvTranspose2d) and not isinstance(back[3], tt._TconvLayer)
    torch.testing.assert_close(back[3](back[1](back[0](x))), y_ref)
    # A single layer converts too, and a torch subclass is left alone.
    single = tt.convert(nn.ConvTranspose3d(2, 2, 2), inplace=True)
    assert type(single) is tt.ConvTranspose3d
    with pytest.raises(ValueError, match="padding_mode"):
        tt.revert(tt.ConvTranspose2d(2, 2, 3, padding_mode="reflect"))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        tt.convert(object())


BAD_ARGS = [
    dict(stride=(2.7, 2)), dict(dilation=(1.5, 1)), dict(groups=1.9), dict(padding=(True, 1)),
    dict(groups="2"), dict(stride=2.0), dict(output_padding=(0, 0.5)), dict(padding="1"),
    dict(groups=True),
]


@pytest.mark.parametrize("kwargs", BAD_ARGS, ids=[str(k) for k in BAD_ARGS])
def test_truncating_arguments_raise_type_error(kwargs):
    x, w = torch.randn(1, 2, 4, 4), torch.randn(2, 2, 3, 3)
    with pytest.raises(TypeError):
        tt.conv_transpose2d(x, w, **kwargs)
    with pytest.raises(TypeError):  # torch agrees
        F.conv_transpose2d(x, w, **kwargs)
    with pytest.raises((TypeError, ValueError)):
        tt.ConvTranspose2d(2, 2, 3, **kwargs)


def test_layer_argument_errors_match_torch_kinds():
    with pytest.raises(TypeError):
        tt.ConvTranspose2d(2.0, 2, 3)
    with pytest.raises(TypeError):
        tt.ConvTranspose2d(2, 2, (3, 1.5))
    with pytest.raises(ValueError, match="padding must be an int"):
        tt.ConvTranspose2d(2, 2, 3, padding="same")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_half_dtypes_round_the_float32_result_once(nd, dtype):
    ref, mine = _pair(nd, groups=2, output_padding=1)
    x = _input(nd).to(dtype).requires_grad_()
    mine = mine.to(dtype)
    y = mine(x)
    assert y.dtype == dtype
    # The float32 computation from the same (rounded) operands, rounded once.
    x32 = x.detach().float().requires_grad_()
    ref = ref.to(dtype).float()
    y32 = ref(x32)
    # one rounding (half an ulp, <= eps relative) from the float32 result, whose own summation
    # order may differ from torch's by float32 rounding (atol)
    torch.testing.assert_close(y.float(), y32, rtol=torch.finfo(dtype).eps, atol=1e-5)
    grad = torch.randn_like(y32).to(dtype)
    y.backward(grad)
    y32.backward(grad.float())
    for got, want in ((x.grad, x32.grad), (mine.weight.grad, ref.weight.grad),
                      (mine.bias.grad, ref.bias.grad)):
        assert got.dtype == dtype
        # one rounding of the float32 result (bias: torch's own half-precision sum)
        torch.testing.assert_close(got.float(), want, rtol=torch.finfo(dtype).eps,
                                   atol=torch.finfo(dtype).eps * want.abs().max().item())


@pytest.mark.parametrize("mode", ["zeros", "circular", "reflect", "replicate"])
def test_half_is_exactly_one_rounding(mode):
    x = torch.randn(2, 4, 6, 5).bfloat16()
    w = torch.randn(4, 3, 3, 3).bfloat16()
    b = torch.randn(3).bfloat16()
    kw = dict(stride=2, padding=1, padding_mode=mode)
    y = tt.conv_transpose2d(x, w, b, **kw)
    assert y.dtype == torch.bfloat16
    assert torch.equal(y, tt.conv_transpose2d(x.float(), w.float(), b.float(), **kw).bfloat16())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_cpu_autocast(dtype):
    ref, mine = _pair(2)
    x = _input(2).requires_grad_()
    with torch.autocast("cpu", dtype=dtype):
        y = mine(x)
        y_ref = ref(x)
    assert y.dtype == y_ref.dtype == dtype
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)
    y.float().sum().backward()
    assert mine.weight.grad.dtype == torch.float32 and x.grad.dtype == torch.float32
    with torch.autocast("cpu", dtype=dtype):  # float64 is not autocast, as in torch
        y64 = mine.double()(x.double())
    assert y64.dtype == torch.float64


@pytest.mark.parametrize("which", ["input", "weight", "both"])
@pytest.mark.parametrize("nd", [2, 3])
def test_channels_last_as_torch(nd, which):
    fmt = torch.channels_last if nd == 2 else torch.channels_last_3d
    ref, mine = _pair(nd)
    x = _input(nd)
    if which in ("input", "both"):
        x = x.contiguous(memory_format=fmt)
    if which in ("weight", "both"):
        ref.to(memory_format=fmt), mine.to(memory_format=fmt)
    xr, xm = x.clone().requires_grad_(), x.clone().requires_grad_()
    y_ref, y = ref(xr), mine(xm)
    torch.testing.assert_close(y, y_ref)
    assert y.is_contiguous(memory_format=fmt) == y_ref.is_contiguous(memory_format=fmt)
    assert y.is_contiguous(memory_format=fmt)
    grad = torch.randn_like(y_ref)
    gx_ref, gw_ref = torch.autograd.grad(y_ref, (xr, ref.weight), grad)
    gx, gw = torch.autograd.grad(y, (xm, mine.weight), grad)
    torch.testing.assert_close(gx, gx_ref)
    torch.testing.assert_close(gw, gw_ref)
    for got, want in ((gx, gx_ref), (gw, gw_ref)):
        assert got.is_contiguous(memory_format=fmt) == want.is_contiguous(memory_format=fmt)
