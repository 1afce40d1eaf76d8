"""Every Python block in the README and in docs/*.md runs, so no snippet rots.

The rule for documentation authors (also in CONTRIBUTING.md):

- Each ```` ```python ```` block is **self-contained**: it runs on its own, in a fresh
  namespace, exactly as a reader would paste it (its own imports, its own inputs). Blocks of one
  file do not share variables.
- Check claims with ``assert`` rather than only in comments, so the test can fail on them.
- A block that needs an optional package (torch, dask, matplotlib, ...) imports it; the test
  skips the block when that package is not installed.
- A block that must not run (pseudo-code, an excerpt) is fenced ```` ```python no-run ````.
  It must still compile. Keep these rare.

New files under docs/ are picked up automatically.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted(
    p for p in [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *(ROOT / "docs").glob("*.md")]
    if p.exists()
)

# tconv modules that need an optional package on import.
_OPTIONAL_SUBMODULES = {"tconv.torch": "torch", "tconv.dask": "dask"}

_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[^\n`]*)$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str  # the fence's info string, e.g. "python" or "python no-run"
    code: str

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, in order."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").split("\n")
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        start, info = i, m.group("info").strip()
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise AssertionError(f"{path}:{start + 1}: code block never closed")
        found.append(Block(path, start + 1, info, "\n".join(body) + "\n"))
        i += 1
    return found


def python_blocks() -> list[Block]:
    return [b for p in DOC_FILES for b in blocks(p) if b.info.split()[:1] == ["python"]]


def _imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _missing_packages(tree: ast.AST) -> list[str]:
    missing = set()
    for name in _imported_modules(tree):
        package = _OPTIONAL_SUBMODULES.get(name, name.split(".")[0])
        if package != "tconv" and importlib.util.find_spec(package) is None:
            missing.add(package)
    return sorted(missing)


_PY_BLOCKS = python_blocks()


def test_docs_have_python_blocks() -> None:
    # guards the extraction itself: a broken parser would otherwise pass by running nothing
    assert len(_PY_BLOCKS) >= 10
    assert any(b.path.name == "README.md" for b in _PY_BLOCKS)


@pytest.mark.parametrize("block", _PY_BLOCKS, ids=[b.id for b in _PY_BLOCKS])
def test_python_block_runs(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    flags = block.info.split()[1:]
    unknown = set(flags) - {"no-run"}
    assert not unknown, f"{block.id}: unknown fence flags {sorted(unknown)}"
    tree = compile(block.code, block.id, "exec", ast.PyCF_ONLY_AST)
    code = compile(tree, block.id, "exec")
    if "no-run" in flags:
        return  # compiled above: a no-run block may not be broken Python
    missing = _missing_packages(tree)
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    monkeypatch.chdir(tmp_path)  # a block that writes files writes them here
    monkeypatch.setenv("MPLBACKEND", "Agg")
    exec(code, {"__name__": "__docs__"})


def test_no_run_blocks_are_rare() -> None:
    no_run = [b.id for b in _PY_BLOCKS if "no-run" in b.info.split()]
    assert len(no_run) <= max(2, len(_PY_BLOCKS) // 10), no_run


_LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("path", DOC_FILES, ids=[str(p.relative_to(ROOT)) for p in DOC_FILES])
def test_relative_links_resolve(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    broken = [
        m.group("target")
        for m in _LINK.finditer(text)
        if "://" not in m.group("target")
        and not (path.parent / m.group("target")).exists()
    ]
    assert not broken, f"{path.relative_to(ROOT)}: broken links {broken}"


def test_readme_is_a_front_door() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"README.md has {lines} lines; move detail into docs/"


def test_readme_setup_commands_are_the_ci_commands() -> None:
    # .ci/run runs the README's two set-up commands literally
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    for command in ('pip install . && python -m tconv demo',
                    'pip install ".[test]" && python -m pytest'):
        assert f"```bash\n{command}\n```" in readme
        assert f"\n{command}\n" in ci


def test_blocks_parser_on_a_sample(tmp_path: Path) -> None:
    sample = tmp_path / "s.md"
    sample.write_text("text\n```python\nx = 1\n```\n```bash\nls\n```\n```python no-run\n...\n```\n")
    found = blocks(sample)
    assert [(b.line, b.info, b.code) for b in found] == [
        (2, "python", "x = 1\n"), (5, "bash", "ls\n"), (8, "python no-run", "...\n")]
