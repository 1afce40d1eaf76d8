"""tconv.dask against the in-memory tconv.conv_transpose: equal BIT FOR BIT
(``assert_array_equal``) for small, uneven chunks, 1-D/2-D/3-D and every parameter; only the
input chunks an output block needs are read; and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tconv
from _cases import COLUMNS, FIXED, Case, cases
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

da = pytest.importorskip("dask.array")
td = pytest.importorskip("tconv.dask")

SYNC = dict(scheduler="sync")


@pytest.fixture(autouse=True)
def _one_thread():
    """Blocks here are tiny; on a busy machine waking an OpenMP team costs more than the work.
    (Thread count never changes results; test_threaded_scheduler_and_numpy_input uses 2.)"""
    with tconv.threads(1):
        yield


def _split(size: int, pieces: list[int]) -> tuple[int, ...]:
    """Uneven chunks of ``size`` from a list of preferred chunk lengths (>= 1)."""
    out, left = [], size
    for p in pieces:
        if left <= 0:
            break
        out.append(min(p, left))
        left -= out[-1]
    if left > 0:
        out.append(left)
    return tuple(out) if out else (0,)


def _check(case: Case, dtype, in_chunks, out_chunks=None, seed=0):
    x, w, b = case.arrays(dtype, seed)
    ref = tconv.conv_transpose(x, w, b, **case.params())
    lazy = td.conv_transpose(da.from_array(x, chunks=in_chunks), w, b, chunks=out_chunks,
                             **case.params())
    assert lazy.shape == ref.shape and lazy.dtype == ref.dtype
    assert lazy.chunks[0] == da.from_array(x, chunks=in_chunks).chunks[0]
    assert lazy.chunks[1] == (ref.shape[1],)
    got = lazy.compute(**SYNC)
    np.testing.assert_array_equal(got, ref)
    return lazy


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", FIXED, ids=[f"fixed{i}" for i in range(len(FIXED))])
def test_fixed_cases_unit_and_uneven_chunks(case, dtype):
    x_shape = (case.batch, case.c_in, *case.spatial)
    uneven = tuple(_split(n, [2, 1, 3]) for n in case.spatial)
    _check(case, dtype, (1, 1, *uneven))                       # default output chunks
    if np.prod(case.spatial) <= 20:  # unit input chunks
        _check(case, dtype, (2, -1, *([1] * len(case.spatial))))
    fine = case.output_spatial()
    if case.batch * np.prod(fine) <= 300:  # 1-element output blocks (task count = outputs)
        _check(case, dtype, (2, -1, *uneven), out_chunks=tuple(1 for _ in fine))
    _check(case, dtype, x_shape, out_chunks=tuple(_split(n, [3, 1, 4, 2]) for n in fine))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", COLUMNS, ids=[f"columns{i}" for i in range(len(COLUMNS))])
def test_columns_path_blocks(case, dtype):
    """Few output channels per group (the forward's GEMM + col2im path): blocks of 2-3 images
    and a few outputs are the same bits as the whole batch at once."""
    uneven = tuple(_split(n, [2, 1, 3]) for n in case.spatial)
    _check(case, dtype, (3, 1, *uneven))
    fine = case.output_spatial()
    _check(case, dtype, (case.batch, case.c_in, *case.spatial),
           out_chunks=tuple(_split(n, [3, 1, 4, 2]) for n in fine))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(max_size=7), data=st.data())
def test_random_cases_random_chunks(case, data):
    lengths = st.lists(st.integers(1, 4), min_size=1, max_size=6)
    in_chunks = (
        data.draw(st.integers(1, 3)),
        data.draw(st.integers(1, 3)),
        *(_split(n, data.draw(lengths)) for n in case.spatial),
    )
    out_chunks = None
    if data.draw(st.booleans()):
        out_chunks = tuple(_split(n, data.draw(lengths)) for n in case.output_spatial())
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    _check(case, dtype, in_chunks, out_chunks, seed=data.draw(st.integers(0, 100)))


def test_large_padding_blocks_with_no_input():
    """Blocks that no input reaches (big padding/output_padding) hold exactly the bias."""
    case = Case(1, 1, 2, 2, (3,), (2,), (1,), (0,), (2,), (3,), True)  # d=3 > s=1, op=2
    _check(case, np.float64, (1, 1, 1), out_chunks=(1,))
    case = Case(1, 1, 1, 2, (6, 5), (5, 3), (2, 3), (4, 2), (1, 2), (1, 1), True)
    _check(case, np.float32, (1, 1, 2, 2), out_chunks=(1, 2))


def test_output_size_and_asymmetric_padding():
    case = FIXED[1]
    x, w, b = case.arrays(np.float32)
    ref = tconv.conv_transpose(x, w, b, stride=2, padding=((0, 2), (1, 0)), output_size=(12, 15))
    lazy = td.conv_transpose(da.from_array(x, chunks=(1, 2, 2, 3)), w, b, stride=2,
                             padding=((0, 2), (1, 0)), output_size=(12, 15))
    np.testing.assert_array_equal(lazy.compute(**SYNC), ref)


@pytest.mark.parametrize("padding,extra", [("same", -1), ("valid", 1)])
def test_string_padding_with_and_without_output_size(padding, extra):
    """Oracle: the in-memory conv_transpose, which picks sizes for "same"/"valid" as TF does."""
    case = FIXED[1]
    x, w, b = case.arrays(np.float64)
    lazy_x = da.from_array(x, chunks=(1, 2, 3, 4))
    for size in (None, tconv.conv_transpose(x, w, b, stride=2, padding=padding).shape[2:]):
        # another size that padding's rule reaches (TF: ceil((o - k_dil + 1)/s) or ceil(o/s) == i)
        sizes = {} if size is None else {"output_size": tuple(n + extra for n in size)}
        ref = tconv.conv_transpose(x, w, b, stride=2, padding=padding, **sizes)
        lazy = td.conv_transpose(lazy_x, w, b, stride=2, padding=padding, **sizes)
        np.testing.assert_array_equal(lazy.compute(**SYNC), ref)


def test_threaded_scheduler_and_numpy_input():
    tconv.set_num_threads(2)  # OpenMP teams inside dask's worker threads
    case = FIXED[5]
    x, w, b = case.arrays(np.float32)
    ref = tconv.conv_transpose(x, w, b, **case.params())
    lazy = td.conv_transpose(x, w, b, **case.params())  # plain ndarray: one chunk
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), ref)
    lazy = td.conv_transpose(da.from_array(x, chunks=(1, 1, 2, 1, 2)), w, b, **case.params())
    np.testing.assert_array_equal(lazy.compute(scheduler="threads"), ref)


def test_blocks_read_only_the_input_they_need():
    """Output block j of a k=3, s=2 upsampling reads input chunks j-1 and j only."""
    n_chunks, chunk = 6, 4
    x = np.arange(n_chunks * chunk, dtype=np.float64).reshape(1, 1, -1)
    touched: list[int] = []

    def record(block, block_info=None):
        touched.append(block_info[0]["chunk-location"][2])
        return block

    lazy_x = da.from_array(x, chunks=(1, 1, chunk)).map_blocks(record, dtype=x.dtype)
    w = np.ones((1, 1, 3))
    y = td.conv_transpose(lazy_x, w, stride=2)
    assert len(y.chunks[2]) == n_chunks
    ref = tconv.conv_transpose(x, w, stride=2)
    for j in range(n_chunks):
        touched.clear()
        block = y.blocks[0, 0, j].compute(**SYNC)
        assert sorted(set(touched)) == sorted({max(j - 1, 0), j}), (j, touched)
        lo = sum(y.chunks[2][:j])
        np.testing.assert_array_equal(block, ref[..., lo:lo + y.chunks[2][j]])


def test_channels_are_rechunked_into_one_chunk():
    case = FIXED[6]  # groups=2
    x, w, b = case.arrays(np.float64)
    lazy = td.conv_transpose(da.from_array(x, chunks=(1, 1, 2, 3)), w, b, **case.params())
    assert len(lazy.chunks[1]) == 1
    np.testing.assert_array_equal(lazy.compute(**SYNC), tconv.conv_transpose(x, w, b, **case.params()))


def test_errors():
    x = da.zeros((1, 2, 5), chunks=2, dtype=np.float32)
    w = np.zeros((2, 3, 3), np.float32)
    with pytest.raises(TypeError, match="weight has dtype float64 but input has dtype float32"):
        td.conv_transpose(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="input must have dtype float32 or float64"):
        td.conv_transpose(x.astype(np.float16), w)
    with pytest.raises(ValueError, match="weight.shape\\[0\\]"):
        td.conv_transpose(x, np.zeros((3, 3, 3), np.float32))
    with pytest.raises(ValueError, match="stride must be >= 1"):
        td.conv_transpose(x, w, stride=0)
    with pytest.raises(ValueError, match="bias must be 1-D"):
        td.conv_transpose(x, w, np.zeros(2, np.float32))
    unknown = da.zeros((1, 2, 5), chunks=2)[:, :, da.arange(5) > 1]  # nan chunk sizes
    with pytest.raises(ValueError, match="known chunk sizes"):
        td.conv_transpose(unknown.astype(np.float32), w)
