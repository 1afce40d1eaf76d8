"""tconv.checkerboard against definitions: overlap by counting, phase sums by the steady-state
response of the real kernel, project by an independent least-squares solve, ICNR and score by
their stated properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tconv
from tconv.checkerboard import icnr, is_artifact_free, overlap, phase_sums, project, score


def test_overlap_notes_examples():
    assert overlap(3, 2).tolist() == [2, 1]
    assert overlap(4, 2).tolist() == [2, 2]
    assert overlap((3, 3), 2).tolist() == [[4, 2], [2, 1]]
    assert overlap(1, 2).tolist() == [1, 0]  # a hole: phase 1 is never written


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 3)),
                min_size=1, max_size=3))
def test_overlap_counts_taps(dims):
    k, s, d = (tuple(v) for v in zip(*dims))
    counts = overlap(k, s, d)
    assert counts.shape == s
    for phase in itertools.product(*(range(v) for v in s)):
        brute = sum(all((t[i] * d[i]) % s[i] == phase[i] for i in range(len(k)))
                    for t in itertools.product(*(range(v) for v in k)))
        assert counts[phase] == brute


@pytest.mark.parametrize("kernel,stride,dilation", [((3,), (2,), (1,)), ((4, 3), (2, 3), (1, 2)),
                                                    ((3, 2, 3), (2, 1, 3), (1, 1, 1))])
def test_phase_sums_are_steady_state_response(rng, kernel, stride, dilation):
    """Input channel c = 1 (constant), others 0: interior outputs of phase r equal the sum."""
    c_in, c_out = 2, 3
    w = rng.standard_normal((c_in, c_out, *kernel))
    sums = phase_sums(w, stride, dilation)
    assert sums.shape == (c_in, c_out, *stride)
    span = [d * (k - 1) for k, d in zip(kernel, dilation)]
    size = [sp // s + 4 for sp, s in zip(span, stride)]
    for c in range(c_in):
        x = np.zeros((1, c_in, *size))
        x[0, c] = 1.0
        y = tconv.conv_transpose(x, w, stride=stride, dilation=dilation)[0]
        # interior: positions o with span <= o <= (size-1)*s, every tap has a source there
        for phase in itertools.product(*(range(s) for s in stride)):
            index = tuple(slice(sp + (p - sp) % s, (n - 1) * s + 1, s)
                          for sp, p, s, n in zip(span, phase, stride, size))
            block = y[(slice(None), *index)]
            assert block.size > 0
            expected = sums[(c, slice(None), *phase)]
            np.testing.assert_allclose(block, np.broadcast_to(
                expected.reshape(-1, *[1] * len(kernel)), block.shape), atol=1e-12)


def test_is_artifact_free_notes_condition():
    assert is_artifact_free(np.array([[[1.0, 3.0, 2.0]]]), 2)        # w2 = w1 + w3
    assert not is_artifact_free(np.array([[[1.0, 3.1, 2.0]]]), 2)
    assert is_artifact_free(np.ones((2, 3, 4, 4)), 2)                   # k = 4: counts equal
    assert not is_artifact_free(np.ones((2, 3, 3, 3)), 2)               # k = 3: 4/2/2/1
    assert not is_artifact_free(np.ones((1, 1, 1)), 2)                  # hole in phase 1
    assert is_artifact_free(np.zeros((1, 1, 1)), 2)


def _lstsq_projection(w, stride, dilation):
    """Independent oracle: project each (c, f) kernel with the explicit constraint matrix
    A v = 0, A rows = (phase-r indicator - phase-0 indicator), P = I - A^+ A."""
    k = w.shape[2:]
    taps = list(itertools.product(*(range(v) for v in k)))
    phases = list(itertools.product(*(range(s) for s in stride)))
    ind = np.array([[float(all((t[i] * dilation[i]) % stride[i] == ph[i] for i in range(len(k))))
                     for t in taps] for ph in phases])
    a = ind[1:] - ind[0]
    proj = np.eye(len(taps)) - np.linalg.pinv(a) @ a
    flat = w.reshape(w.shape[0], w.shape[1], -1)
    return (flat @ proj.T).reshape(w.shape)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 3),
       st.lists(st.tuples(st.integers(1, 5), st.integers(1, 3), st.integers(1, 2)),
                min_size=1, max_size=3))
def test_project_is_the_least_squares_projection(seed, c, dims):
    k, s, d = (tuple(v) for v in zip(*dims))
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((c, 2, *k))
    p = project(w, s, d)
    assert is_artifact_free(p, s, rtol=1e-9, dilation=d)
    np.testing.assert_allclose(project(p, s, d), p, atol=1e-12)          # idempotent
    np.testing.assert_allclose(p, _lstsq_projection(w, s, d), atol=1e-10)
    # closer than any other artifact-free kernel we can construct
    best = np.linalg.norm(w - p)
    for trial in range(5):
        other = project(rng.standard_normal(w.shape), s, d)               # random feasible
        assert best <= np.linalg.norm(w - other) + 1e-12
        direction = project(rng.standard_normal(w.shape), s, d)            # stay feasible
        nearby = p + 1e-3 * (trial + 1) * direction
        assert is_artifact_free(nearby, s, rtol=1e-9, dilation=d)
        assert best <= np.linalg.norm(w - nearby) + 1e-12


def test_project_closer_than_hand_made_feasible_kernels(rng):
    """Feasible kernels built without project(): fix the middle tap to w1 + w3 (the notes)."""
    w = rng.standard_normal((3, 4, 3))
    p = project(w, 2)
    for _ in range(20):
        v = rng.standard_normal(w.shape)
        v[..., 1] = v[..., 0] + v[..., 2]
        assert is_artifact_free(v, 2)
        assert np.linalg.norm(w - p) <= np.linalg.norm(w - v)
    notes = w.copy()
    notes[..., 1] = notes[..., 0] + notes[..., 2]       # the "obvious" fix is feasible but farther
    assert np.linalg.norm(w - p) <= np.linalg.norm(w - notes)


def test_project_keeps_dtype_and_hole_case():
    w = np.ones((1, 1, 1), np.float32)
    p = project(w, 2)
    assert p.dtype == np.float32 and np.all(p == 0)   # k < s: only the zero kernel qualifies


@pytest.mark.parametrize("shape,stride", [((2, 3, 3), 2), ((2, 3, 4, 4), 2), ((1, 2, 5, 3), (3, 2)),
                                          ((2, 2, 3, 3, 3), 2), ((3, 1, 6), 3)])
def test_icnr_artifact_free_and_is_nearest_plus_conv(rng, shape, stride):
    w = icnr(shape, stride, rng=7)
    assert w.shape == shape
    assert is_artifact_free(w, stride, rtol=1e-12)
    np.testing.assert_array_equal(w, icnr(shape, stride, rng=7))       # seeded
    # A constant input comes out constant in the interior.
    nd = len(shape) - 2
    s = (stride,) * nd if isinstance(stride, int) else stride
    x = np.ones((1, shape[0], *[4] * nd))
    y = tconv.conv_transpose(x, w, stride=s)
    interior = y[(slice(None), slice(None), *(slice(k - 1, 3 * st + 1) for k, st in zip(shape[2:], s)))]
    assert np.ptp(interior, axis=tuple(range(2, 2 + nd))).max() < 1e-12


def test_icnr_errors():
    with pytest.raises(ValueError, match="kernel_size >= stride"):
        icnr((1, 1, 2), 3)
    with pytest.raises(TypeError, match="dtype"):
        icnr((1, 1, 3), 2, dtype=np.int32)
    assert icnr((1, 1, 3), 2, dtype=np.float32).dtype == np.float32


def _smooth(shape, rng):
    grids = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    phase = rng.uniform(0, 2 * np.pi, size=len(shape))
    return 1.0 + 0.5 * np.prod([np.sin(2 * g + p) for g, p in zip(grids, phase)], axis=0)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
def test_score_zero_on_resize_conv_of_constant(rng, nd, mode):
    x = np.full((2, 3, *[5] * nd), 2.5)
    w = rng.standard_normal((4, 3, *[3] * nd))
    y = tconv.resize_conv(x, w, 2, mode=mode)
    assert score(y, 2, margin=3) < 1e-12
    assert score(y, 2) > 1e-3        # the zero-padded borders are not smooth: margin matters


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_score_grows_with_planted_checkerboard(rng, nd):
    size = {1: 64, 2: 24, 3: 10}[nd]
    base = _smooth((size,) * nd, rng)[None, None]
    pattern = np.indices((size,) * nd).sum(axis=0) % 2 * 2.0 - 1.0   # +-1 checkerboard
    amplitudes = [0.0, 1e-3, 1e-2, 0.05, 0.1, 0.3, 1.0, 3.0]
    scores = [score(base + a * pattern, 2) for a in amplitudes]
    assert scores[0] < 1e-2
    assert all(b > a for a, b in zip(scores, scores[1:])), scores
    # scale-invariant, and batch-aware
    assert score(7.0 * (base + 0.1 * pattern), 2) == pytest.approx(scores[4], rel=1e-12)
    batch = np.concatenate([base, base + 0.3 * pattern])
    per = score(batch, 2, per_sample=True)
    assert per.shape == (2,) and per[0] == pytest.approx(scores[0]) and per[1] == pytest.approx(scores[5])


def test_score_definition_values():
    pure = (np.arange(40) % 2 * 2.0 - 1.0)[None, None]
    assert score(pure, 2) == pytest.approx(1.0)               # a pure checkerboard scores 1
    ramp = np.linspace(-3, 5, 40)[None, None]
    assert score(ramp, 2) < 1e-12 and score(ramp**2, 3) < 1e-12   # linear / quadratic: 0
    assert score(np.zeros((1, 1, 10)), 2) == 0.0
    period3 = (np.arange(30) % 3 == 0)[None, None] * 1.0
    assert score(period3, 3) > 0.5 and score(period3, 2) < score(period3, 3)


def test_score_separates_artifact_from_fixes(rng):
    img = _smooth((16, 16), rng)[None, None]
    w = rng.uniform(0.2, 1.0, (1, 1, 3, 3))
    raw = tconv.conv_transpose(img, w, stride=2, padding=1, output_padding=1)
    fixed = tconv.conv_transpose(img, project(w, 2), stride=2, padding=1, output_padding=1)
    assert score(raw, 2, margin=3) > 10 * score(fixed, 2, margin=3)


def test_score_errors():
    with pytest.raises(ValueError, match="margin"):
        score(np.zeros((1, 1, 6)), 2, margin=2)
    with pytest.raises(ValueError, match="signal"):
        score(np.zeros((6,)), 2)


@pytest.mark.parametrize("call,exc,fragment", [
    (lambda: phase_sums(np.zeros((2, 3)), 2), ValueError, "weight"),
    (lambda: phase_sums(np.zeros((1, 1, 3), np.int32), 2), TypeError, "weight"),
    (lambda: overlap(3, 0), ValueError, "stride"),
    (lambda: overlap((3, 3), (2, 2, 2)), ValueError, "spatial dims"),
    (lambda: project(np.zeros((1, 1, 3, 3)), (2, 2, 2)), ValueError, "stride"),
    (lambda: is_artifact_free(np.zeros((1, 1, 3)), 2, rtol=-1.0), ValueError, "rtol"),
    (lambda: icnr((1, 1, 3), 2, rng="seed"), TypeError, "rng"),
    (lambda: score(np.zeros((1, 1, 8)), 0), ValueError, "stride"),
])
def test_checkerboard_errors(call, exc, fragment):
    with pytest.raises(exc, match=fragment):
        call()
