"""Typing: the installed package ships py.typed and the _core stub; the stub declares exactly
the extension's functions with the binding's parameter names; every public function is fully
annotated; and ``mypy --strict`` accepts every call that runs: tests/typing_snippets/ call each
public function with every parameter by keyword, those calls run here, and the slow test
type-checks them.  (``mypy --strict python/tconv`` itself runs in .ci/run: a cold run takes
longer than a unit test should.)"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import tconv
from tconv import _core

PACKAGE = Path(tconv.__file__).resolve().parent


def _stub() -> dict[str, list[list[str]]]:
    """Stub function name -> parameter-name lists, one per overload."""
    tree = ast.parse((PACKAGE / "_core.pyi").read_text())
    found: dict[str, list[list[str]]] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            found.setdefault(node.name, []).append([a.arg for a in node.args.args])
    return found


def _extension() -> dict[str, list[list[str]]]:
    """Extension function name -> parameter-name lists, parsed from pybind11's signatures."""
    found: dict[str, list[list[str]]] = {}
    for name in dir(_core):
        obj = getattr(_core, name)
        if name.startswith("_") or not callable(obj):
            continue
        sigs = re.findall(rf"^(?:\d+\. )?{name}\((.*)\) ->", obj.__doc__ or "", re.MULTILINE)
        sigs = [s for s in sigs if s != "*args, **kwargs"]
        found[name] = [re.findall(r"(\w+):", s) for s in sigs]
    return found


def test_marker_and_stub_are_installed():
    assert (PACKAGE / "py.typed").is_file()
    assert (PACKAGE / "_core.pyi").is_file()


def test_stub_matches_extension():
    stub, ext = _stub(), _extension()
    assert sorted(stub) == sorted(ext), "stub and extension declare different functions"
    for name in ext:
        for params in ext[name]:
            assert params in stub[name], (name, params, stub[name])


def _public_functions():
    modules = [tconv, tconv.functional, tconv.reference]
    for module in modules:
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if inspect.isfunction(obj) or callable(obj) and not inspect.ismodule(obj):
                if not inspect.isclass(obj):
                    yield f"{module.__name__}.{name}", obj


@pytest.mark.parametrize("qualname,func", list(_public_functions()),
                         ids=[q for q, _ in _public_functions()])
def test_public_functions_fully_annotated(qualname, func):
    sig = inspect.signature(func)
    missing = [p for p, v in sig.parameters.items() if v.annotation is inspect.Parameter.empty]
    assert not missing, f"{qualname}: parameters without annotations: {missing}"
    assert sig.return_annotation is not inspect.Signature.empty, f"{qualname}: no return type"
    assert func.__doc__, f"{qualname}: no docstring"


def test_import_tconv_imports_neither_torch_nor_dask():
    """The bridges are optional: ``import tconv`` must not pull in PyTorch or Dask."""
    import subprocess
    import sys

    code = ("import sys, tconv; bad = {'torch', 'dask'} & set(sys.modules); "
            "assert not bad, bad; print(tconv.__all__[0])")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120,
                   env={"PYTHONPATH": str(PACKAGE.parent), "PATH": "/usr/bin:/bin"})


# --------------------------------------------------------------------------------------------
# mypy accepts every call that runs
# --------------------------------------------------------------------------------------------

SNIPPETS = Path(__file__).resolve().parent / "typing_snippets"
#: snippet file -> (modules whose public callables it must cover, import it needs)
SNIPPET_MODULES = {
    "numpy_api.py": (("tconv", "tconv.emulate", "tconv.subpixel", "tconv.arithmetic",
                      "tconv.resize", "tconv.checkerboard", "tconv.reference"), None),
    "torch_api.py": (("tconv.torch",), "torch"),
    "dask_api.py": (("tconv.dask",), "dask"),
}
#: public callables a snippet cannot call cheaply: ONNX export needs onnxscript and minutes
NOT_IN_SNIPPETS = {"tconv.torch.export_onnx", "tconv.torch.onnx_translation_table"}


def _public_callables(module_name: str) -> dict[str, Any]:
    module = importlib.import_module(module_name)
    found = {}
    for name in module.__all__:
        obj = getattr(module, name)
        qualname = f"{module_name}.{name}"
        if inspect.ismodule(obj) or not callable(obj) or qualname in NOT_IN_SNIPPETS:
            continue
        if inspect.isclass(obj) and not hasattr(obj, "forward"):  # result types, not APIs
            continue
        found[qualname] = obj
    return found




@pytest.mark.parametrize("snippet", sorted(SNIPPET_MODULES))
def test_snippets_run_and_pass_every_keyword(snippet: str) -> None:
    """Each snippet runs, and calls every public function of its modules with each of its
    parameters by keyword at least once, so the type check below covers every keyword."""
    modules, needs = SNIPPET_MODULES[snippet]
    if needs is not None:
        pytest.importorskip(needs)
    path = SNIPPETS / snippet
    source = path.read_text()
    namespace: dict[str, Any] = {"__name__": "snippet"}
    exec(compile(source, str(path), "exec"), namespace)  # the calls work
    passed: dict[int, set[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            try:
                callee = eval(compile(ast.Expression(node.func), str(path), "eval"), namespace)
            except Exception:  # noqa: BLE001 -- a local (e.g. a loop's layer), not an API
                continue
            passed.setdefault(id(callee), set()).update(k.arg for k in node.keywords if k.arg)
    public = {}
    for module in modules:
        public.update(_public_callables(module))
    missing = {}
    for qualname, obj in public.items():
        params = set(inspect.signature(obj).parameters) - {"self", "args", "kwargs"}
        lacking = params - passed.get(id(obj), set())
        if lacking:
            missing[qualname] = sorted(lacking)
    assert not missing, f"{snippet}: calls lack these keywords: {missing}"


@pytest.mark.slow
def test_mypy_strict_accepts_every_call_that_runs(tmp_path: Path) -> None:
    """``mypy --strict`` on the snippets: a wrapper whose annotations drift from what it
    accepts at run time (e.g. a 2-D wrapper without ``padding_mode``) fails here.  Slow: mypy
    follows ``tconv.torch`` into PyTorch's stubs."""
    api = pytest.importorskip("mypy.api")
    files = [str(SNIPPETS / name) for name, (_, needs) in sorted(SNIPPET_MODULES.items())
             if needs is None or importlib.util.find_spec(needs) is not None]
    env = os.environ.get("MYPYPATH")
    # A source checkout (PYTHONPATH=python) needs its package dir on MYPYPATH; an installed
    # tconv is found through --python-executable, and mypy refuses site-packages there.
    if PACKAGE.parent.name != "site-packages":
        os.environ["MYPYPATH"] = str(PACKAGE.parent)
    try:
        cache = SNIPPETS.parent.parent / ".mypy_cache"  # shared with `mypy --strict python/tconv`
        stdout, stderr, status = api.run(["--strict", "--cache-dir", str(cache),
                                          "--python-executable", sys.executable, *files])
    finally:
        if env is None:
            os.environ.pop("MYPYPATH", None)
        else:
            os.environ["MYPYPATH"] = env
    assert status == 0, stdout + stderr
