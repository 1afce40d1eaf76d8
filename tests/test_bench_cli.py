"""``python -m tconv bench`` through the CLI's ``main()``: the table, JSON and PNG appear.

A smoke test of the benchmark command on one tiny case (``--quick``); the numbers themselves
are not checked (they depend on the machine), only that each row was measured, checked
against torch when torch is importable, and recorded.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import sys

import numpy as np
import pytest
import tconv
from tconv import bench
from tconv._peers import PEERS
from tconv.bench import IDLE_SECONDS
from tconv.bench_cases import CASES, GEMM_CASES, select_cases
from tconv.cli import main
from tconv.plan import plan

HAS_TORCH = importlib.util.find_spec("torch") is not None
INSTALLED = {name: peer.available() for name, peer in PEERS.items()}
HAS_MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


def test_bench_quick_writes_table_json_png(tmp_path, capsys):
    argv = ["bench", "--quick", "--cases", "dcgan-64-3", "--dtype", "both", "--repeat", "2",
            "--min-time", "0", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tconv GF/s" in out and "dcgan-64-3" in out
    for pass_ in ("fwd", "grad_input", "grad_weight"):
        assert pass_ in out
    assert "% peak relative to:" in out

    record = json.loads((tmp_path / "bench.json").read_text())
    assert record["machine"]["threads"] >= 1 and record["machine"]["tconv"]
    assert record["options"]["quick"] is True and record["options"]["idle"] == 0
    rows = record["results"]
    assert {(r["pass"], r["dtype"]) for r in rows} == {
        (p, d) for p in ("fwd", "grad_input", "grad_weight") for d in ("float32", "float64")}
    quick = CASES[[c.name for c in CASES].index("dcgan-64-3")].quick()
    for r in rows:
        assert r["case"] == "dcgan-64-3" and r["flops"] == quick.flops
        assert r["tconv_gflops"] > 0 and len(r["tconv_samples"]) == 2
        if HAS_TORCH:
            torch_row = r["peers"]["torch"]
            assert torch_row["gflops"] > 0 and torch_row["ratio"] > 0
            assert len(torch_row["samples"]) == 2
            assert r["check"] == "ok", r
        for name in ("onnxruntime", "openvino"):  # inference engines: forward rows only
            if r["pass"] != "fwd" or not INSTALLED[name]:
                assert name not in r["peers"], (name, r)
            elif r["dtype"] == "float32":
                assert r["peers"][name]["check"] == "ok", (name, r)
        if not r["peers"]:
            assert r["check"] == "unchecked"
    if HAS_TORCH:
        assert "geomean tconv/torch     fwd float32" in out
        assert set(record["summary"]["ratio"]["torch"]) >= {"fwd float32", "grad_weight float64"}
    assert record["options"]["peers"] == [n for n in PEERS if INSTALLED[n]]

    png = tmp_path / "bench.png"
    if HAS_MATPLOTLIB:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    else:
        assert not png.exists() and "pip install '.[plot]'" in out


def test_bench_without_torch_columns(tmp_path, capsys):
    argv = ["bench", "--quick", "--cases", "hifigan-k4s2", "--passes", "fwd", "--repeat", "1",
            "--min-time", "0", "--no-torch", "--peak-gflops", "100"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "torch GF/s" not in out
    assert "--peak-gflops 100" in out


def test_bench_peers_none_is_tconv_only(capsys):
    argv = ["bench", "--quick", "--cases", "unet-k2s2", "--passes", "fwd", "--repeat", "1",
            "--min-time", "0", "--peers", "none"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "GF/s" in out and "tconv-only" in out and "tconv/" not in out


@pytest.mark.skipif(not (INSTALLED["onnxruntime"] and INSTALLED["openvino"]),
                    reason="needs onnxruntime and openvino")
def test_bench_inference_peers_agree_with_tconv(capsys):
    # each peer's forward is compared with tconv's in the run: a wrong model export fails it
    argv = ["bench", "--quick", "--cases", "k3s2p1op1,depthwise", "--passes", "fwd",
            "--repeat", "1", "--min-time", "0", "--peers", "onnxruntime,openvino"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tconv/ort" in out and "tconv/ov" in out and "tconv/best" in out
    assert "FAIL" not in out


@pytest.mark.skipif(not (INSTALLED["openvino"] and sys.platform.startswith("linux")),
                    reason="needs openvino, on Linux")
def test_openvino_models_leave_the_signal_stack_as_it_was():
    # OpenVINO's CPU plugin installs its own alternate signal stack when it compiles a model
    # and re-installs the one it found when the model dies: with two models alive at once,
    # the first destroyed first, the second re-installed the first's freed stack, where
    # Python's signal handlers then ran (a later SIGALRM segfaulted the test suite).
    from tconv._peers import _signal_stack

    def state():
        stack = _signal_stack()
        return (stack.ss_sp, stack.ss_flags, stack.ss_size)

    before = state()
    work = bench.Workload(select_cases("dcgan-64-3", CASES)[0].quick(),
                          np.dtype(np.float32))
    first = PEERS["openvino"].thunk(work, "fwd", 1)
    second = PEERS["openvino"].thunk(work, "fwd", 1)
    first(), second()
    assert state() == before
    del first
    gc.collect()
    assert state() == before
    del second
    gc.collect()
    assert state() == before


def test_bench_gemm_suite_against_blas(capsys, tmp_path):
    argv = ["bench", "--suite", "gemm", "--cases", "gemm-64x64", "--passes", "fwd",
            "--repeat", "1", "--min-time", "0", "--peers", "numpy", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "tconv/blas" in out and "gemm-64x64x32768" in out
    record = json.loads((tmp_path / "bench.json").read_text())
    (row,) = record["results"]
    assert row["pass"] == "fwd" and row["check"] == "ok" and "numpy" in row["peers"]
    assert record["options"]["idle"] == IDLE_SECONDS  # the default outside --quick


@pytest.mark.parametrize("idle", [0.0, 0.01, IDLE_SECONDS])
def test_time_interleaved_sleeps_idle_before_every_sample_untimed(idle, monkeypatch):
    slept: list[float] = []
    clock = [0.0]

    def fake_sleep(seconds: float) -> None:  # advances the clock the samples are timed with
        slept.append(seconds)
        clock[0] += seconds

    def call() -> int:
        clock[0] += 1e-3
        return 1

    monkeypatch.setattr(bench.time, "sleep", fake_sleep)
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])
    samples, _ = bench.time_interleaved({"a": call, "b": call}, 3, 0.0, idle)
    assert slept == ([idle] * 6 if idle > 0 else [])
    for name in ("a", "b"):  # the sleep is not in any sample: each is one call's 1 ms
        assert samples[name] == pytest.approx([1e-3] * 3)


def test_gemm_cases_are_plain_products():
    for c in GEMM_CASES:
        m, k, n = (int(v) for v in c.name.split("-")[1].split("x"))
        assert (c.c_out, c.c_in, c.batch * c.spatial[0]) == (m, k, n)
        assert c.flops == 2 * m * k * n


def test_bad_peer_name_is_an_error(capsys):
    assert main(["bench", "--quick", "--peers", "torch,tensorflow"]) == 2
    assert "unknown peer" in capsys.readouterr().err


@pytest.mark.parametrize("bad", [["--cases", "no-such-layer"], ["--passes", "fwd,sideways"],
                                 ["--repeat", "0"], ["--algorithms", "direct,fastest"],
                                 ["--algorithms", ","], ["--idle", "-0.1"]])
def test_bench_rejects_bad_options(bad, capsys):
    assert main(["bench", "--quick", *bad]) == 2
    assert "error:" in capsys.readouterr().err


def test_case_list_matches_issue():
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)) == 13
    by_name = {c.name: c for c in CASES}
    dcgan = by_name["dcgan-256-128"]
    assert (dcgan.batch, dcgan.c_in, dcgan.c_out, dcgan.spatial) == (64, 256, 128, (8, 8))
    assert (dcgan.kernel, dcgan.stride, dcgan.padding) == ((4, 4), (2, 2), (1, 1))
    assert dcgan.output_shape == (64, 128, 16, 16)
    # FLOPs = 2 N C_in (C_out/g) prod(in) prod(k), counted independently here
    assert dcgan.flops == 2 * 64 * 256 * 128 * 8 * 8 * 4 * 4
    assert by_name["k3s2p1op1"].output_shape == (8, 64, 128, 128)
    assert by_name["unet3d-k3s2op1"].output_shape == (2, 32, 32, 32, 32)
    assert by_name["hifigan-k16s8"].output_shape == (8, 256, 2048)
    assert by_name["fcn8s-k16s8"].output_shape == (4, 21, 512, 512)
    depthwise = by_name["depthwise-k4s2"]
    assert (depthwise.groups, depthwise.c_in, depthwise.c_out) == (64, 64, 64)
    assert depthwise.weight_shape == (64, 1, 4, 4)
    assert depthwise.output_shape == (8, 64, 256, 256)
    assert [c.name for c in select_cases("dcgan")] == names[:4]
    for c in CASES:
        q = c.quick()
        assert (q.kernel, q.stride, q.padding, q.output_padding) == (
            c.kernel, c.stride, c.padding, c.output_padding)
        assert q.dense_entries <= 2**21


@pytest.mark.parametrize("argv", [["--help"], ["bench", "--help"]])
def test_help_renders(argv, capsys):
    # argparse %-formats help texts: a stray "%" in the bench help once crashed --help
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 0
    assert "bench" in capsys.readouterr().out


def test_bench_nan_row_reports_nan_over_finite_time(capsys):
    argv = ["bench", "--quick", "--cases", "nan-input", "--repeat", "1", "--min-time", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "one NaN in x: nan-input-k4s2 fwd float32 takes" in out
    assert "nan-input-k4s2 grad_weight" in out and "nan-input-k4s2 grad_input" not in out
    if HAS_TORCH:
        assert "geomean tconv/torch" not in out  # the NaN row is no layer of the suite


def test_relative_error_needs_the_same_nan_and_inf():
    import numpy as np
    from tconv.bench import relative_error

    e = np.array([1.0, np.nan, np.inf, 2.0])
    assert relative_error(e + 1e-9, e) < 1e-8
    assert relative_error(np.array([1.0, 0.0, np.inf, 2.0]), e) == float("inf")
    assert relative_error(np.array([1.0, np.nan, -np.inf, 2.0]), e) == float("inf")


def test_bench_depthwise_row_reports_the_memory_roofline(capsys):
    """The depthwise case gets a roofline line per pass; its byte count is that of the arrays
    the layer reads and writes (built here by the functional API, not from the case's
    formulas)."""
    import numpy as np
    import tconv
    from tconv.bench import is_depthwise, moved_bytes

    argv = ["bench", "--quick", "--cases", "depthwise", "--repeat", "1", "--min-time", "0",
            "--peers", "none", "--dtype", "float64"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for pass_ in ("fwd", "grad_input", "grad_weight"):
        assert f"memory roofline: depthwise-k4s2 {pass_} float64 moves" in out
    assert "memory roofline: " not in out.replace("memory roofline: depthwise", "")
    (case,) = select_cases("depthwise-k4s2", CASES)
    assert is_depthwise(case) and not is_depthwise(CASES[0])
    small = case.quick()
    x = np.zeros(small.input_shape)
    w = np.zeros(small.weight_shape)
    y = tconv.conv_transpose(x, w, stride=small.stride, padding=small.padding,
                             output_padding=small.output_padding, dilation=small.dilation,
                             groups=small.groups)
    assert moved_bytes(small, np.dtype(np.float64)) == x.nbytes + w.nbytes + y.nbytes


@pytest.mark.parametrize("case", CASES + GEMM_CASES, ids=lambda c: c.name)
def test_inside_share_counts_the_terms_that_land_in_the_output(case):
    """Oracle: the forward of all-ones x and w (one channel, float64) sums, at each output,
    one 1 per term that lands there, so the output's total over prod(in) prod(k) is the
    share of the counted terms that padding does not crop off."""
    import numpy as np
    import tconv

    x = np.ones((1, 1, *case.spatial))
    w = np.ones((1, 1, *case.kernel))
    y = tconv.conv_transpose(x, w, **case.params())
    total = float(y.sum()) / (np.prod(case.spatial) * np.prod(case.kernel))
    assert case.inside_share == pytest.approx(total, rel=1e-12)


def test_bench_footer_names_the_cases_with_cropped_terms(capsys):
    """A case whose padding crops more than 1 % of its counted terms gets one footer line (not
    one per pass); a case without padding none."""
    argv = ["bench", "--quick", "--cases", "dcgan-512,unet-k2s2", "--repeat", "1",
            "--min-time", "0", "--peers", "none"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    (dcgan,) = select_cases("dcgan-512-256", [c.quick() for c in CASES])
    lines = [line for line in out.splitlines() if line.startswith("padding: ")]
    assert lines == [f"padding: dcgan-512-256 counts {100 * (1 - dcgan.inside_share):.1f} % of "
                     f"its terms on taps that padding crops off; a peer that skips them can "
                     f"reach {1 / dcgan.inside_share:.2f}x the peak in these GF/s"]
    assert dcgan.inside_share < bench.PADDING_NOTE_BELOW


def test_bench_algorithm_columns_time_and_check_each_algorithm(tmp_path, capsys):
    # dcgan-256-128 (k4 s2: Winograd F(2x2 2x2)) and k3s2p1op1 (1-tap phases: plans direct)
    argv = ["bench", "--quick", "--cases", "dcgan-256-128,k3s2p1op1", "--passes",
            "fwd,grad_input", "--repeat", "1", "--min-time", "0", "--peers", "none",
            "--algorithms", "direct,winograd,winograd4", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for col in ("direct err", "winograd GF/s", "winograd err", "winograd4 GF/s"):
        assert col in out
    for pass_ in ("fwd", "grad_input"):
        assert f"geomean tconv[winograd]/direct {pass_} float32" in out
    assert out.count("ran winograd on 1 of 2 cases") == 2
    rows = json.loads((tmp_path / "bench.json").read_text())["results"]
    for pass_, op in (("fwd", "conv_transpose"), ("grad_input", "grad_input")):
        by_case = {r["case"]: r for r in rows if r["pass"] == pass_}
        wino = by_case["dcgan-256-128"]["algorithms"]
        assert wino["winograd"]["plan"] == "winograd"
        assert wino["winograd4"]["plan"] == "winograd4"
        assert by_case["k3s2p1op1"]["algorithms"]["winograd"]["plan"] != "winograd"
        case = select_cases("dcgan-256-128")[0]
        assert plan(op, case.input_shape, case.weight_shape, case.stride, case.padding,
                    algorithm="winograd").algorithm == "winograd"
        for r in by_case.values():
            # errors against the float64 result: small but (Winograd) not the direct's bits
            assert 0 <= r["direct_max_error"] < 1e-5
            for a in ("winograd", "winograd4"):
                assert 0 <= r["algorithms"][a]["max_error"] < 1e-4
                assert r["algorithms"][a]["speedup"] > 0
        assert wino["winograd"]["max_error"] > 0


def test_bench_grad_weight_runs_direct_only():
    import numpy as np
    from tconv.bench import Workload

    work = Workload(select_cases("dcgan-256-128")[0].quick(), np.dtype(np.float32))
    with pytest.raises(ValueError, match="grad_weight runs direct only"):
        work.tconv("grad_weight", "winograd")
    # grad_input by the Winograd gather: the same numbers as conv_transpose_backward's
    got = work.tconv("grad_input", "winograd")()
    want = tconv.conv_transpose_backward(work.g, work.x, work.w, work.case.stride,
                                         work.case.padding, output_mask=(True, False, False),
                                         algorithm="winograd")[0]
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, work.tconv("grad_input")())  # not the direct's bits


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="onnx not installed")
def test_onnx_model_is_built_once_per_workload(monkeypatch):
    """ONNX Runtime and OpenVINO run the same one-node model: serialized once per workload."""
    import numpy as np
    from tconv import _peers
    from tconv.bench import Workload

    built = []
    real = _peers._build_onnx_model
    monkeypatch.setattr(_peers, "_build_onnx_model", lambda w: built.append(w) or real(w))
    work = Workload(select_cases("dcgan-64-3")[0].quick(), np.dtype(np.float32))
    first = _peers.onnx_model_bytes(work)
    assert _peers.onnx_model_bytes(work) is first and len(built) == 1
    other = work.converted(np.dtype(np.float64))  # other dtype: its own model
    assert _peers.onnx_model_bytes(other) != first and len(built) == 2


def _nonfinite_workload(dtype: str = "float64") -> bench.Workload:
    """The quick NaN-input case (x's NaN lands on a corner pixel, whose taps padding crops)
    with an Inf added in w and a NaN in grad_output, so each pass reads a non-finite operand."""
    from tconv.bench_cases import NONFINITE_CASES

    work = bench.Workload(NONFINITE_CASES[0].quick(), np.dtype(dtype))
    work.w.flat[3] = np.inf
    work.g.flat[work.g.size // 3] = np.nan
    return work


@pytest.mark.parametrize("pass_", ["fwd", "grad_input", "grad_weight"])
def test_definition_nonfinite_is_the_structural_oracles(pass_):
    from _structural import grad_weight

    from tconv import reference

    work = _nonfinite_workload()
    c = work.case
    p = c.params()
    if pass_ == "fwd":
        want = reference.conv_transpose_structural(work.x, work.w, None, p["stride"], p["padding"],
                                                   p["output_padding"], c.groups, p["dilation"])
    elif pass_ == "grad_input":
        want = reference.conv_structural(work.g, work.w, None, p["stride"], p["padding"],
                                         p["dilation"], c.groups)
    else:
        want = grad_weight(work.g, work.x, work.w.shape, p["stride"], p["padding"], p["dilation"],
                           c.groups)
    got = bench.definition_nonfinite(work, pass_)
    assert got is not None and got.shape == want.shape
    assert np.array_equal(got, ~np.isfinite(want))
    assert 0 < got.sum() < got.size  # the check can tell places apart


def test_definition_nonfinite_is_none_for_finite_operands():
    work = bench.Workload(CASES[0].quick(), np.dtype(np.float32))
    assert bench.definition_nonfinite(work, "grad_weight") is None


def test_peer_check_tells_a_peer_off_the_definition_from_a_failure():
    work = _nonfinite_workload()
    ours = work.tconv("grad_weight")()
    want = bench.definition_nonfinite(work, "grad_weight")
    assert want is not None and np.array_equal(~np.isfinite(ours), want)
    finite_spot = tuple(np.argwhere(~want)[0])

    def check(a, b):
        return bench._peer_check(work, "grad_weight", a, b)[0]

    assert check(ours, ours.copy()) == "ok"
    spread = ours.copy()
    spread[finite_spot] = np.nan  # NaN where no term has a non-finite factor
    assert check(ours, spread) == bench.OFF_DEFINITION
    assert bench._peer_check(work, "grad_weight", ours, spread)[1] == 0.0  # finite entries
    assert check(spread, ours) == "FAIL"  # tconv's own NaN off the definition
    spread.flat[np.flatnonzero(np.isfinite(spread))[0]] += 1.0  # and a wrong finite value
    assert check(ours, spread) == "FAIL"


@pytest.mark.skipif(not HAS_TORCH, reason="needs torch")
def test_bench_torch_nan_through_padding_is_no_failure(capsys):
    # torch's float64 grad_weight multiplies x's NaN by the zeros of the padding its taps crop
    argv = ["bench", "--quick", "--cases", "nan-input", "--dtype", "float64", "--passes",
            "grad_weight", "--peers", "torch", "--repeat", "1", "--min-time", "0"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "FAIL" not in out
    if "ok*" in out:
        assert "ok*: torch nan-input-k4s2 grad_weight float64 puts NaN/Inf" in out
