"""tconv.torch's operator family under autograd of every order, against PyTorch (the peer
oracle) and against finite differences: gradcheck / gradgradcheck in float64 for input, weight,
bias and grad_output, third-order derivatives, a WGAN-GP-style gradient penalty, the
operators' registrations (torch.library.opcheck) and torch.func's vmap / grad / jacrev."""

from __future__ import annotations

import pytest

import tconv

torch = pytest.importorskip("torch")
tt = pytest.importorskip("tconv.torch")

F = torch.nn.functional
TORCH_FN = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TCONV_FN = {1: tt.conv_transpose1d, 2: tt.conv_transpose2d, 3: tt.conv_transpose3d}

# (nd, spatial, kernel, stride, padding, output_padding, dilation, groups)
CONFIGS = [
    (1, (4,), (3,), 2, 1, 1, 1, 1),
    (1, (3,), (2,), 3, 0, 2, 2, 2),
    (2, (3, 2), (3, 2), (2, 1), (1, 0), (1, 0), (1, 2), 1),
    (2, (2, 3), (2, 2), (1, 2), (0, 1), (0, 1), (2, 1), 2),
    (3, (2, 2, 2), (2, 1, 2), (2, 1, 2), (0, 0, 1), (1, 0, 0), (1, 1, 2), 2),
]
IDS = [f"{c[0]}d-{i}" for i, c in enumerate(CONFIGS)]


@pytest.fixture(autouse=True)
def one_thread():
    """Gradcheck runs hundreds of tiny kernels; waking an OpenMP team costs more than the work
    on a busy machine.  (Thread count never changes results.)"""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tconv.threads(1):
            yield
    finally:
        torch.set_num_threads(n)


def _setup(cfg, dtype=torch.float64, batch=1, cin=1, cout=1, seed=0):
    nd, spatial, kernel, stride, padding, output_padding, dilation, groups = cfg
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cin * groups, *spatial, generator=gen, dtype=dtype,
                    requires_grad=True)
    w = torch.randn(cin * groups, cout, *kernel, generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(cout * groups, generator=gen, dtype=dtype, requires_grad=True)
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
              dilation=dilation)
    return x, w, b, kw


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_gradcheck_and_gradgradcheck(cfg):
    """First and second derivatives for input, weight, bias and (gradgradcheck) grad_output."""
    x, w, b, kw = _setup(cfg)
    fn = TCONV_FN[cfg[0]]

    def f(x, w, b):
        return fn(x, w, b, **kw)

    assert torch.autograd.gradcheck(f, (x, w, b), eps=1e-6, atol=1e-8)
    assert torch.autograd.gradgradcheck(f, (x, w, b), eps=1e-6, atol=1e-8)


@pytest.mark.parametrize("cfg", CONFIGS, ids=IDS)
def test_higher_orders_match_torch(cfg):
    """Second and third derivatives of a nonlinear loss, against torch's convolution.  (torch
    2.13 cannot take the third derivative with output_padding != 0 -- "output_padding is not
    supported for non-transposed convolutions" -- so there only the first two orders are
    compared here; test_third_order_gradcheck checks such a case against finite differences.)"""
    x, w, b, kw = _setup(cfg, batch=2, cin=2, cout=2)
    third = not any(torch.nn.modules.utils._ntuple(cfg[0])(cfg[5]))

    def derivatives(fn):
        inputs = [t.detach().clone().requires_grad_() for t in (x, w, b)]
        y = fn(*inputs, **kw)
        g1 = torch.autograd.grad(y.pow(3).sum(), inputs, create_graph=True)
        h = sum((g * g).sum() for g in g1)
        g2 = torch.autograd.grad(h, inputs, create_graph=True)
        if not third:
            return [*g1, *g2]
        g3 = torch.autograd.grad(sum(g.sin().sum() for g in g2), inputs)
        return [*g1, *g2, *g3]

    for mine, ref in zip(derivatives(TCONV_FN[cfg[0]]), derivatives(TORCH_FN[cfg[0]])):
        torch.testing.assert_close(mine, ref, rtol=1e-10, atol=1e-10)


def test_third_order_gradcheck():
    """gradgradcheck of the gradient: exercises the derivatives of gather and weight_grad."""
    x, w, b, kw = _setup(CONFIGS[2])

    def grad_x(x, w, b):
        y = tt.conv_transpose2d(x, w, b, **kw)
        (gx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        return gx

    assert torch.autograd.gradgradcheck(grad_x, (x, w, b), eps=1e-6, atol=1e-8)


def test_double_backward_issue_numbers():
    """The gradient penalty that used to lose its second-order term (issue 20)."""
    x, w, b, kw = _setup(CONFIGS[2], dtype=torch.float32, batch=2, cin=2, cout=2)

    def penalty(fn):
        xi, wi = x.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
        y = fn(xi, wi, b.detach(), **kw)
        (g,) = torch.autograd.grad(y.sum(), xi, create_graph=True)
        ((g**2).sum() + (wi**2).sum()).backward()
        return wi.grad

    torch.testing.assert_close(penalty(tt.conv_transpose2d), penalty(F.conv_transpose2d))


def _gan(conv, seed):
    """A small DCGAN-like generator and a discriminator whose convolutions are transposed convs
    (stride 1) followed by average pooling, both built from the layer class ``conv``."""
    torch.manual_seed(seed)
    gen = torch.nn.Sequential(
        conv(8, 6, 4, stride=1, padding=0), torch.nn.BatchNorm2d(6), torch.nn.ReLU(),
        conv(6, 4, 4, stride=2, padding=1), torch.nn.ReLU(),
        conv(4, 1, 4, stride=2, padding=1), torch.nn.Tanh(),
    )
    disc = torch.nn.Sequential(
        conv(1, 4, 3, padding=1), torch.nn.LeakyReLU(0.2), torch.nn.AvgPool2d(2),
        conv(4, 4, 3, padding=1, groups=2), torch.nn.Softplus(), torch.nn.AvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(64, 1),
    )
    return gen, disc


def test_wgan_gp_penalty_matches_torch():
    grads = []
    for conv in (torch.nn.ConvTranspose2d, tt.ConvTranspose2d):
        gen, disc = _gan(conv, seed=5)
        z = torch.randn(3, 8, 1, 1, generator=torch.Generator().manual_seed(1))
        fake = gen(z)  # (3, 1, 16, 16), depends on the generator's parameters
        real = torch.randn(fake.shape, generator=torch.Generator().manual_seed(2))
        alpha = torch.rand(3, 1, 1, 1, generator=torch.Generator().manual_seed(3))
        x = alpha * real + (1 - alpha) * fake
        y = disc(x)
        (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
        w = disc[0].weight
        loss = ((g**2).sum() + (w**2).sum()) + ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
        loss.backward()
        grads.append({n: p.grad for m in (gen, disc) for n, p in m.named_parameters()})
    ref, mine = grads
    assert ref.keys() == mine.keys()
    for name in ref:
        if name == "7.bias":  # the last layer's bias drops out of the input gradient
            assert ref[name] is None and mine[name] is None
            continue
        assert mine[name] is not None, name
        torch.testing.assert_close(mine[name], ref[name], rtol=2e-4, atol=1e-5, msg=name)


def test_allow_unused_is_not_none():
    x, w, b, kw = _setup(CONFIGS[0])
    y = tt.conv_transpose1d(x, w, b, **kw)
    (g,) = torch.autograd.grad(y.sum(), x, create_graph=True)
    (gw,) = torch.autograd.grad(g.square().sum(), w, allow_unused=True)
    assert gw is not None and gw.abs().sum() > 0


def _op_args(dtype=torch.float64):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 3, 2, generator=gen, dtype=dtype, requires_grad=True)
    w = torch.randn(4, 3, 2, 3, generator=gen, dtype=dtype, requires_grad=True)
    b = torch.randn(6, generator=gen, dtype=dtype, requires_grad=True)
    geometry = ([2, 1], [1, 0], [1, 2], 2)
    size = [5, 6]  # (3-1)*2 - 1 + 1 + 1 + 1 = 5 (+1 past the minimum), (2-1)*1 - 0 + 4 + 1
    y = torch.randn(2, 6, *size, generator=gen, dtype=dtype, requires_grad=True)
    return x, w, b, y, size, geometry


def test_opcheck_registrations():
    """Schema, fake (meta) implementation, autograd registration and dispatch of each operator."""
    x, w, b, y, size, geometry = _op_args()
    stride, pad, dilation, groups = geometry
    calls = [
        (torch.ops.tconv.scatter.default, (x, w, b, size, *geometry)),
        (torch.ops.tconv.gather.default, (y, w, [3, 2], *geometry)),
        (torch.ops.tconv.weight_grad.default, (x, y, [2, 3], *geometry)),
        (torch.ops.tconv.conv_transpose.default, (x, w, b, stride, pad, [1, 0], dilation, groups)),
    ]
    for op, args in calls:
        torch.library.opcheck(op, args)


def test_family_is_closed_under_differentiation():
    """gradcheck and gradgradcheck of each operator called directly."""
    x, w, b, y, size, geometry = _op_args()
    ops = torch.ops.tconv
    for f, args in (
        (lambda x, w, b: ops.scatter(x, w, b, size, *geometry), (x, w, b)),
        (lambda y, w: ops.gather(y, w, [3, 2], *geometry), (y, w)),
        (lambda x, y: ops.weight_grad(x, y, [2, 3], *geometry), (x, y)),
    ):
        assert torch.autograd.gradcheck(f, args, eps=1e-6, atol=1e-8)
        assert torch.autograd.gradgradcheck(f, args, eps=1e-6, atol=1e-8)


def test_ops_are_adjoint():
    """<C^T x, y> = <x, C y> and <weight_grad(x, y), v> = <C(v)^T x, y>."""
    x, w, _, y, size, geometry = _op_args()
    ops = torch.ops.tconv
    with torch.no_grad():
        lhs = (ops.scatter(x, w, None, size, *geometry) * y).sum()
        rhs = (x * ops.gather(y, w, [3, 2], *geometry)).sum()
        torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)
        v = torch.randn_like(w)
        lhs = (ops.weight_grad(x, y, [2, 3], *geometry) * v).sum()
        rhs = (ops.scatter(x, v, None, size, *geometry) * y).sum()
        torch.testing.assert_close(lhs, rhs, rtol=1e-12, atol=1e-12)


def test_func_vmap_grad_jacrev():
    from torch.func import grad, jacrev, vmap

    x, w, b, kw = _setup(CONFIGS[3], batch=2, cin=2, cout=2)
    xs = torch.randn(3, *x.shape, dtype=x.dtype)
    ws = torch.randn(3, *w.shape, dtype=w.dtype)
    for mine, ref in (
        (vmap(lambda t: tt.conv_transpose2d(t, w, b, **kw))(xs),
         torch.stack([F.conv_transpose2d(t, w, b, **kw) for t in xs])),
        (vmap(lambda t, u: tt.conv_transpose2d(t, u, b, **kw))(xs, ws),
         torch.stack([F.conv_transpose2d(t, u, b, **kw) for t, u in zip(xs, ws)])),
        (vmap(lambda t: tt.conv_transpose2d(t, w, b, **kw), in_dims=1)(xs.transpose(0, 1)),
         torch.stack([F.conv_transpose2d(t, w, b, **kw) for t in xs])),
    ):
        torch.testing.assert_close(mine, ref)
    for argnum in (0, 1, 2):
        def loss(fn, *a):
            return fn(*a, **kw).sin().sum()

        g = grad(lambda *a: loss(tt.conv_transpose2d, *a), argnums=argnum)(x, w, b)
        g_ref = grad(lambda *a: loss(F.conv_transpose2d, *a), argnums=argnum)(x, w, b)
        torch.testing.assert_close(g, g_ref)
        j = jacrev(lambda *a: tt.conv_transpose2d(*a, **kw), argnums=argnum)(x, w, b)
        j_ref = jacrev(lambda *a: F.conv_transpose2d(*a, **kw), argnums=argnum)(x, w, b)
        torch.testing.assert_close(j, j_ref)
    # Per-sample gradients: vmap over grad.
    per_sample = vmap(grad(lambda u, t: tt.conv_transpose2d(t[None], u, b, **kw).sin().sum()),
                      in_dims=(None, 0))(w, x)
    ref = torch.stack([grad(lambda u, t=t: F.conv_transpose2d(t[None], u, b, **kw).sin().sum())(w)
                       for t in x])
    torch.testing.assert_close(per_sample, ref)
    # Hessian-vector products: forward-over-reverse is not needed; reverse-over-reverse is.
    hess = jacrev(jacrev(lambda u: tt.conv_transpose2d(x, u, b, **kw).pow(3).sum()))(w)
    hess_ref = jacrev(jacrev(lambda u: F.conv_transpose2d(x, u, b, **kw).pow(3).sum()))(w)
    torch.testing.assert_close(hess, hess_ref)


def test_direct_operator_calls_check_dtypes():
    """The operators can be called past the functions' checks: mixed or integer dtypes raise
    instead of being converted (an integer result would be silently truncated)."""
    x, w, b, y, size, geometry = _op_args()
    with pytest.raises(TypeError, match="one dtype"):
        torch.ops.tconv.scatter(x.detach().int(), w.detach().int(), None, size, *geometry)
    with pytest.raises(TypeError, match="one dtype"):
        torch.ops.tconv.gather(y.detach().float(), w.detach(), [3, 2], *geometry)
    with pytest.raises(TypeError, match="one dtype"):
        torch.ops.tconv.weight_grad(x.detach(), y.detach().float(), [2, 3], *geometry)
