"""tconv.torch beyond eager: torch.compile (fullgraph, forward and backward), torch.export,
torch.jit.trace / script + save + load (loaded in a fresh process), and ONNX export run in
onnxruntime -- each compared with eager tconv and with torch's own layers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import tconv

torch = pytest.importorskip("torch")
tt = pytest.importorskip("tconv.torch")

nn = torch.nn
PYTHONPATH = str(Path(tconv.__file__).resolve().parent.parent)


def dcgan_generator(seed=0, conv=tt.ConvTranspose2d):
    """A small DCGAN generator (latent 16 -> 1x16x16)."""
    torch.manual_seed(seed)
    return nn.Sequential(
        conv(16, 12, 4, stride=1, padding=0, bias=False), nn.BatchNorm2d(12), nn.ReLU(),
        conv(12, 8, 4, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
        conv(8, 4, 3, stride=2, padding=1, output_padding=1, groups=2), nn.ReLU(),
        conv(4, 1, 3, stride=1, padding=1, dilation=1), nn.Tanh(),
    )


def _latent(batch=3, seed=1):
    return torch.randn(batch, 16, 1, 1, generator=torch.Generator().manual_seed(seed))


def _eager_reference(model, z):
    ref = tt.revert(model)  # the same parameters in torch's own layers
    return ref(z)


@pytest.mark.slow
def test_compile_fullgraph_forward_and_backward():
    model = dcgan_generator()
    z = _latent()
    eager_out = model(z)
    eager_grads = torch.autograd.grad(eager_out.square().sum(), list(model.parameters()))
    compiled = torch.compile(model, fullgraph=True)
    out = compiled(z)
    torch.testing.assert_close(out, eager_out)
    torch.testing.assert_close(out, _eager_reference(model, z))
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    for got, want in zip(grads, eager_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.slow
def test_compile_function_with_padding_mode():
    x = torch.randn(2, 4, 5, 6, requires_grad=True)
    w = torch.randn(4, 3, 3, 3, requires_grad=True)

    def f(x, w):
        return tt.conv_transpose2d(x, w, stride=2, padding=1, padding_mode="circular").sin()

    out = torch.compile(f, fullgraph=True)(x, w)
    torch.testing.assert_close(out, f(x, w))
    gx, gw = torch.autograd.grad(out.sum(), (x, w))
    ex, ew = torch.autograd.grad(f(x, w).sum(), (x, w))
    torch.testing.assert_close(gx, ex)
    torch.testing.assert_close(gw, ew)


@pytest.mark.slow
def test_export_with_dynamic_batch():
    model = dcgan_generator().eval()
    z = _latent()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (z,), dynamic_shapes=({0: batch},))
    targets = {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert "tconv.conv_transpose.default" in targets
    for b in (3, 5):
        zb = _latent(b, seed=b)
        torch.testing.assert_close(program.module()(zb), model(zb))


def _run_in_fresh_process(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300, env={"PYTHONPATH": PYTHONPATH, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


_LOAD_AND_COMPARE = """
import torch, tconv  # with torch loaded first, a plain import tconv registers the operators
model = torch.jit.load({path!r})
data = torch.load({data!r})
for z, want in data:
    torch.testing.assert_close(model(z), want)
z = data[0][0].clone().requires_grad_()
model(z).sum().backward()  # the loaded graph is differentiable through the operators
assert z.grad is not None and z.grad.abs().sum() > 0
print("ok")
"""


@pytest.mark.slow
@pytest.mark.parametrize("how", ["trace", "script"])
def test_torchscript_save_and_load_in_fresh_process(tmp_path, how):
    model = dcgan_generator().eval()
    module = torch.jit.trace(model, _latent()) if how == "trace" else torch.jit.script(model)
    path, data = str(tmp_path / "g.pt"), str(tmp_path / "data.pt")
    torch.jit.save(module, path)
    # Other batch sizes: the traced operator computes its output size from its input's.
    samples = [(_latent(b, seed=b), model(_latent(b, seed=b)).detach()) for b in (3, 1, 4)]
    torch.save(samples, data)
    assert _run_in_fresh_process(_LOAD_AND_COMPARE.format(path=path, data=data)).strip() == "ok"


def test_script_matches_eager():
    layer = tt.ConvTranspose2d(4, 3, 3, stride=2, padding=1)
    scripted = torch.jit.script(layer)
    x = torch.randn(2, 4, 5, 5)
    torch.testing.assert_close(scripted(x), layer(x))
    torch.testing.assert_close(scripted(x[0]), layer(x[0]))
    torch.testing.assert_close(scripted(x, output_size=[10, 10]), layer(x, output_size=[10, 10]))
    circular = torch.jit.script(tt.ConvTranspose2d(4, 3, 3, padding=1, padding_mode="circular"))
    with pytest.raises(Exception, match="padding_mode='zeros'"):
        circular(x)


def test_onnx_export_without_onnxscript_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # import onnxscript now fails
    with pytest.raises(ModuleNotFoundError, match=r"tconv\[onnx\]") as info:
        tt.export_onnx(tt.ConvTranspose2d(4, 3, 3), (torch.randn(1, 4, 5, 5),))
    assert info.value.name == "onnxscript"
    with pytest.raises(ModuleNotFoundError, match="needs onnxscript"):
        tt.onnx_translation_table()


@pytest.mark.slow
def test_onnx_export_runs_in_onnxruntime(tmp_path):
    pytest.importorskip("onnxscript")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    model = dcgan_generator().eval()
    path = tmp_path / "generator.onnx"
    tt.export_onnx(model, (_latent(),), dynamic_shapes=({0: torch.export.Dim("batch")},)
                   ).save(str(path))
    graph = onnx.load(str(path)).graph
    ops = [(n.domain, n.op_type) for n in graph.node]
    assert ops.count(("", "ConvTranspose")) == 4, ops
    assert all(domain in ("", "ai.onnx") for domain, _ in ops), ops
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for b in (3, 2):
        z = _latent(b, seed=b)
        (out,) = session.run(None, {session.get_inputs()[0].name: z.numpy()})
        torch.testing.assert_close(torch.from_numpy(out), model(z), rtol=1e-5, atol=1e-5)
