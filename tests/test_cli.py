"""``python -m tconv``: --help lists every registered command with its help text, each
command's own --help works, and the demo runs and passes its checks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import tconv
from tconv import cli

ENV_PATH = str(Path(tconv.__file__).resolve().parent.parent)


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    import os

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (ENV_PATH, env.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, "-m", "tconv", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_help_lists_every_command():
    result = _run("--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m tconv")
    assert "demo" in cli._COMMANDS
    for name, (help_text, _, _) in cli._COMMANDS.items():
        line = next((ln for ln in result.stdout.splitlines() if ln.strip().startswith(name)), "")
        assert line, f"command {name!r} missing from --help:\n{result.stdout}"
        assert help_text.split()[0] in result.stdout


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(cli._COMMANDS))
def test_command_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main([name, "--help"])
    assert exc.value.code == 0
    assert f"python -m tconv {name}" in capsys.readouterr().out


def test_unknown_command_fails_clearly(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_demo_runs(capsys):
    assert cli.main(["demo"]) == 0
    assert "all checks passed" in capsys.readouterr().out
