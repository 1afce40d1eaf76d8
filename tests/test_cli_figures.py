"""The command line: `python -m tconv checkerboard` and `demo` write real, non-empty PNGs
(matplotlib installed), and say how to get figures when matplotlib is missing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tconv import cli

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _pngs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.png"))}


def _assert_png(data: bytes) -> None:
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000  # a real picture, not a stub


def test_checkerboard_writes_three_pngs(tmp_path, capsys):
    """k=2 < s=3 on purpose (holes, ICNR impossible, projection = zero kernel): the hardest
    case still gives three pictures.  The default k3s2 set is drawn by the demo test below."""
    pytest.importorskip("matplotlib")
    assert cli.main(["checkerboard", "--kernel", "2", "--stride", "3", "--out", str(tmp_path)]) == 0
    files = _pngs(tmp_path)
    assert set(files) == {"checkerboard_1d.png", "overlap_k2_s3.png", "artifacts_k2_s3.png"}
    for data in files.values():
        _assert_png(data)
    printed = capsys.readouterr().out
    assert "1   1   0" in printed and "score of random kernel" in printed
    assert "score of ICNR" not in printed


def test_checkerboard_rejects_bad_sizes(tmp_path, capsys):
    assert cli.main(["checkerboard", "--kernel", "0", "--out", str(tmp_path)]) == 2
    assert "--kernel" in capsys.readouterr().out


def test_demo_prints_and_writes_figures(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "w11  w12  w13" in out and "all checks passed" in out
    assert "score of random kernel" in out
    assert "zero_insert([1, 2, 3], stride=2) = [1.0, 0.0, 2.0, 0.0, 3.0]" in out
    files = _pngs(tmp_path)
    assert {"matrix_C.png", "emulation.png", "checkerboard_1d.png", "overlap_k3_s2.png",
            "artifacts_k3_s2.png"} == set(files)
    for data in files.values():
        _assert_png(data)


def test_without_matplotlib_says_how_to_get_figures(tmp_path):
    """A fresh interpreter where importing matplotlib fails: demo still succeeds, and both
    commands print the pip command; nothing is written."""
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from tconv import cli\n"
        f"a = cli.main(['demo', '--out', {str(tmp_path)!r}])\n"
        f"b = cli.main(['checkerboard', '--out', {str(tmp_path)!r}])\n"
        "print('codes', a, b)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert "codes 0 1" in proc.stdout
    assert proc.stdout.count("pip install .[plot]") == 2
    assert "all checks passed" in proc.stdout
    assert not list(tmp_path.glob("*.png"))
