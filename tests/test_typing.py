"""Typing: the installed package ships py.typed and the _core stub; the stub declares exactly
the extension's functions with the binding's parameter names; every public function is fully
annotated.  (``mypy --strict python/tconv`` itself runs in .ci/run: a cold run takes longer
than a unit test should.)"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

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
