"""Keeps the compatibility table of docs/pytorch.md true: every row names a check here, every
check has a row, and each check runs the row's claim against PyTorch's own layers."""

from __future__ import annotations

import copy
import io
import re
from pathlib import Path

import pytest

import tconv

torch = pytest.importorskip("torch")
tt = pytest.importorskip("tconv.torch")

nn = torch.nn
F = torch.nn.functional
DOC = Path(__file__).resolve().parent.parent / "docs" / "pytorch.md"
SLOW = {"compile", "onnx"}


def table_rows():
    text = DOC.read_text()
    table = text.split("<!-- compat-table -->", 1)[1].split("<!-- /compat-table -->", 1)[0]
    rows = {}
    for line in table.strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(\w+)`", cells[-1])
        assert match, f"row without a check name: {line}"
        rows[match.group(1)] = cells
    return rows


ROWS = table_rows()


def _layers(seed=0, dtype=torch.float64, **kwargs):
    kwargs = {"stride": 2, "padding": 1, "output_padding": 1, "groups": 2, "dilation": 1,
              **kwargs}
    torch.manual_seed(seed)
    ref = nn.ConvTranspose2d(4, 6, 3, dtype=dtype, **kwargs)
    mine = tt.convert(ref)
    return ref, mine


def _x(dtype=torch.float64, shape=(2, 4, 5, 4)):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(1), dtype=dtype)


def check_eager():
    for nd, fn, ref_fn in ((1, tt.conv_transpose1d, F.conv_transpose1d),
                           (2, tt.conv_transpose2d, F.conv_transpose2d),
                           (3, tt.conv_transpose3d, F.conv_transpose3d)):
        x = torch.randn(2, 4, *([4] * nd), dtype=torch.float64, requires_grad=True)
        w = torch.randn(4, 3, *([3] * nd), dtype=torch.float64, requires_grad=True)
        b = torch.randn(6, dtype=torch.float64, requires_grad=True)
        kw = dict(stride=2, padding=1, output_padding=1, groups=2, dilation=2)
        for inputs in ((x, w, b), (x[0], w, b)):
            y, r = fn(*inputs, **kw), ref_fn(*inputs, **kw)
            torch.testing.assert_close(y, r, rtol=1e-10, atol=1e-10)
            g = torch.randn_like(r)
            for a, c in zip(torch.autograd.grad(y, inputs, g), torch.autograd.grad(r, inputs, g)):
                torch.testing.assert_close(a, c, rtol=1e-10, atol=1e-10)
    ref, mine = _layers()
    torch.testing.assert_close(mine(_x(), output_size=[10, 8]), ref(_x(), output_size=[10, 8]))


def check_subclass():
    ref, mine = _layers()
    assert isinstance(mine, nn.ConvTranspose2d) and type(mine) is tt.ConvTranspose2d
    fresh = tt.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2,
                               dtype=torch.float64)
    assert repr(fresh) == repr(ref)
    buf = io.BytesIO()
    torch.save(ref.state_dict(), buf)
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf))
    torch.testing.assert_close(fresh(_x()), ref(_x()))


def check_autograd2():
    ref, mine = _layers()
    x = _x().requires_grad_()
    out = []
    for layer in (ref, mine):
        layer.zero_grad()
        (g,) = torch.autograd.grad(layer(x).sum(), x, create_graph=True)
        ((g**2).sum() + (layer.weight**2).sum()).backward()
        out.append(layer.weight.grad)
    torch.testing.assert_close(out[1], out[0])
    small = tt.ConvTranspose2d(2, 2, 2, stride=2, groups=2, dtype=torch.float64)
    assert torch.autograd.gradgradcheck(small, (_x(shape=(1, 2, 2, 2)).requires_grad_(),))


def check_autograd3():
    w = torch.randn(2, 2, 3, 3, dtype=torch.float64, requires_grad=True)
    x = _x(shape=(1, 2, 3, 3)).requires_grad_()

    def third(fn):
        y = fn(x, w, stride=2, padding=1)
        (g,) = torch.autograd.grad(y.pow(3).sum(), x, create_graph=True)
        (h,) = torch.autograd.grad(g.pow(2).sum(), w, create_graph=True)
        return torch.autograd.grad(h.sin().sum(), (x, w))

    for a, b in zip(third(tt.conv_transpose2d), third(F.conv_transpose2d)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)


def check_func():
    from torch.func import grad, jacrev, vmap

    ref, mine = _layers()
    xs = _x(shape=(3, 2, 4, 5, 4))
    torch.testing.assert_close(vmap(mine)(xs), torch.stack([ref(x) for x in xs]))
    w, b = mine.weight.detach(), mine.bias.detach()
    kw = dict(stride=2, padding=1, groups=2)

    def loss(fn, w, x):
        return fn(x, w, b, **kw).sin().sum()

    per_sample = vmap(grad(lambda w, x: loss(tt.conv_transpose2d, w, x[None])),
                      in_dims=(None, 0))(w, xs[0])
    per_ref = torch.stack([grad(lambda w, x=x: loss(F.conv_transpose2d, w, x[None]))(w)
                           for x in xs[0]])
    torch.testing.assert_close(per_sample, per_ref)
    torch.testing.assert_close(jacrev(jacrev(lambda w: loss(tt.conv_transpose2d, w, xs[0])))(w),
                               jacrev(jacrev(lambda w: loss(F.conv_transpose2d, w, xs[0])))(w))


def check_jvp():
    import torch.autograd.forward_ad as fwad
    from torch.func import hessian, jacfwd, jvp

    ref, mine = _layers()
    x = _x()
    t = torch.randn_like(x)
    _, j = jvp(mine, (x,), (t,))
    _, j_ref = jvp(ref, (x,), (t,))
    torch.testing.assert_close(j, j_ref)
    w = mine.weight.detach()
    kw = dict(stride=2, padding=1, groups=2)
    torch.testing.assert_close(jacfwd(lambda w: tt.conv_transpose2d(x[:1], w, **kw))(w),
                               jacfwd(lambda w: F.conv_transpose2d(x[:1], w, **kw))(w))
    torch.testing.assert_close(
        hessian(lambda w: tt.conv_transpose2d(x[:1], w, **kw).pow(3).sum())(w),
        hessian(lambda w: F.conv_transpose2d(x[:1], w, **kw).pow(3).sum())(w))
    with fwad.dual_level():
        y = tt.conv_transpose2d(fwad.make_dual(x, t), w, **kw)
        torch.testing.assert_close(fwad.unpack_dual(y).tangent,
                                   F.conv_transpose2d(t, w, **kw))


def _generator(conv):
    torch.manual_seed(0)
    return nn.Sequential(conv(8, 6, 4, stride=1, padding=0), nn.BatchNorm2d(6), nn.ReLU(),
                         conv(6, 3, 4, stride=2, padding=1), nn.Tanh())


def check_compile():
    model = _generator(tt.ConvTranspose2d)
    z = torch.randn(2, 8, 1, 1)
    ref_model = tt.revert(model)
    out = torch.compile(model, fullgraph=True)(z)
    ref = ref_model(z)
    torch.testing.assert_close(out, ref)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    ref_grads = torch.autograd.grad(ref.square().sum(), list(ref_model.parameters()))
    for a, b in zip(grads, ref_grads):
        torch.testing.assert_close(a, b)


def check_export():
    model = _generator(tt.ConvTranspose2d).eval()
    z = torch.randn(2, 8, 1, 1)
    program = torch.export.export(model, (z,),
                                  dynamic_shapes=({0: torch.export.Dim("batch", max=64)},))
    assert any(str(n.target) == "tconv.conv_transpose.default" for n in program.graph.nodes)
    z5 = torch.randn(5, 8, 1, 1)
    torch.testing.assert_close(program.module()(z5), tt.revert(model)(z5))


def _save_load(module):
    buf = io.BytesIO()
    torch.jit.save(module, buf)
    buf.seek(0)
    return torch.jit.load(buf)


def check_trace():
    model = _generator(tt.ConvTranspose2d).eval()
    loaded = _save_load(torch.jit.trace(model, torch.randn(2, 8, 1, 1)))
    z = torch.randn(3, 8, 1, 1)
    torch.testing.assert_close(loaded(z), tt.revert(model)(z))


def check_script():
    model = _generator(tt.ConvTranspose2d).eval()
    loaded = _save_load(torch.jit.script(model))
    z = torch.randn(3, 8, 1, 1)
    torch.testing.assert_close(loaded(z), tt.revert(model)(z))
    circular = torch.jit.script(tt.ConvTranspose2d(2, 2, 3, padding=1, padding_mode="circular"))
    with pytest.raises(Exception, match="padding_mode='zeros'"):
        circular(torch.randn(1, 2, 4, 4))


def check_onnx(tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = _generator(tt.ConvTranspose2d).eval()
    z = torch.randn(2, 8, 1, 1)
    path = str(tmp_path / "g.onnx")
    tt.export_onnx(model, (z,)).save(path)
    assert "ConvTranspose" in [n.op_type for n in onnx.load(path).graph.node]
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    (out,) = session.run(None, {session.get_inputs()[0].name: z.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), model(z), rtol=1e-5, atol=1e-5)


def check_dtype_exact():
    for dtype, tol in ((torch.float32, 1e-5), (torch.float64, 1e-12)):
        ref, mine = _layers(dtype=dtype)
        y = mine(_x(dtype))
        assert y.dtype == dtype
        torch.testing.assert_close(y, ref(_x(dtype)), rtol=tol, atol=tol)


def check_dtype_half():
    for dtype in (torch.float16, torch.bfloat16):
        ref, mine = _layers(dtype=torch.float32)
        mine = mine.to(dtype)
        x = _x(dtype)
        y = mine(x)
        assert y.dtype == dtype
        exact = ref.to(dtype).float()(x.float())
        torch.testing.assert_close(y.float(), exact, rtol=torch.finfo(dtype).eps, atol=1e-5)
        with torch.autocast("cpu", dtype=dtype):
            y = tt.convert(ref)(_x(torch.float32))
        assert y.dtype == dtype


def check_channels_last():
    ref, mine = _layers(dtype=torch.float32)
    x = _x(torch.float32).contiguous(memory_format=torch.channels_last).requires_grad_()
    y, r = mine(x), ref(x)
    torch.testing.assert_close(y, r)
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert r.is_contiguous(memory_format=torch.channels_last)
    (g,) = torch.autograd.grad(y.sum(), x)
    (g_ref,) = torch.autograd.grad(r.sum(), x)
    assert g.is_contiguous(memory_format=torch.channels_last)
    assert g_ref.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(g, g_ref)


def check_parametrizations():
    for wrap in (nn.utils.parametrizations.spectral_norm, nn.utils.parametrizations.weight_norm):
        ref, mine = _layers()
        torch.manual_seed(4)
        ref = wrap(ref)
        torch.manual_seed(4)
        mine = wrap(mine)
        for _ in range(2):
            torch.testing.assert_close(mine(_x()), ref(_x()))
        assert mine.state_dict().keys() == ref.state_dict().keys()
        for key in ref.state_dict():
            torch.testing.assert_close(mine.state_dict()[key], ref.state_dict()[key])


def check_fusion():
    ref, mine = _layers(groups=1)  # torch's fuse_conv_bn_weights mis-shapes grouped weights
    bn = nn.BatchNorm2d(6, dtype=torch.float64).eval()
    with torch.no_grad():
        bn.running_var.uniform_(0.5, 2)
    fused = nn.utils.fusion.fuse_conv_bn_eval(mine.eval(), bn, transpose=True)
    assert type(fused) is tt.ConvTranspose2d
    torch.testing.assert_close(fused(_x()), bn(ref(_x())))
    clone = copy.deepcopy(mine)
    torch.testing.assert_close(clone(_x()), ref(_x()))


def check_padding_mode():
    layer = tt.ConvTranspose2d(4, 6, 3, stride=2, padding=1, padding_mode="circular",
                               dtype=torch.float64)
    x = _x()
    want = tconv.conv_transpose(x.numpy(), layer.weight.detach().numpy(),
                                layer.bias.detach().numpy(), stride=2, padding=1,
                                padding_mode="circular")
    torch.testing.assert_close(layer(x), torch.from_numpy(want))


def check_arguments():
    x, w = torch.randn(1, 2, 4, 4), torch.randn(2, 2, 3, 3)
    for kwargs in (dict(stride=(2.7, 2)), dict(dilation=(1.5, 1)), dict(groups=1.9),
                   dict(padding=(True, 1)), dict(groups="2")):
        for fn in (tt.conv_transpose2d, F.conv_transpose2d):
            with pytest.raises(TypeError):
                fn(x, w, **kwargs)


def check_unsupported():
    x, w = torch.randn(1, 2, 4), torch.randn(2, 2, 3)
    for bad in (x.to("meta"), x.to_sparse(), x.int(), x.to(torch.complex64)):
        with pytest.raises(TypeError):
            tt.conv_transpose1d(bad, w)


CHECKS = {name[len("check_"):]: fn for name, fn in dict(globals()).items()
          if name.startswith("check_")}


def test_table_and_checks_agree():
    assert set(ROWS) == set(CHECKS)
    for cells in ROWS.values():
        assert cells[1].split(":")[0].split(" ")[0] in ("yes", "no", "`TypeError`,"), cells


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in ROWS])
def test_row(name, request):
    fn = CHECKS[name]
    torch.manual_seed(0)
    if "tmp_path" in fn.__code__.co_varnames[:fn.__code__.co_argcount]:
        fn(request.getfixturevalue("tmp_path"))
    else:
        fn()
