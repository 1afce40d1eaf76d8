"""Run tconv calls in a child process, so that a crash is a test failure, not a dead pytest.

``Worker`` keeps one spawned child that serves calls one after another (importing tconv once,
not once per call).  When the child dies (a signal such as SIGSEGV, an abort, an exit) or does
not answer within the timeout, the call raises ``ChildCrashed`` (an ``AssertionError``) that
names the signal and the call, and the next call starts a fresh child.  Exceptions raised by
the call itself come back and are re-raised in the parent unchanged.

A target is ``"module:function"``; the child imports the module by name, so it must be on the
parent's ``sys.path`` (spawn copies it): ``tconv...`` or a module of tests/.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import signal
from typing import Any


class ChildCrashed(AssertionError):
    pass


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    obj: Any = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _serve(conn: Any) -> None:
    while True:
        try:
            request = conn.recv()
        except EOFError:
            return
        target, args, kwargs = request
        try:
            result = ("ok", _resolve(target)(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - sent back to the parent as it is
            result = ("error", exc)
        conn.send(result)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "did not answer in time (killed it)"
    if code < 0:
        try:
            return f"died from signal {signal.Signals(-code).name}"
        except ValueError:
            return f"died from signal {-code}"
    return f"exited with status {code}"


class Worker:
    def __init__(self, timeout: float = 120.0, env: dict[str, str] | None = None) -> None:
        self.timeout = timeout
        self.env = env or {}
        self._proc: Any = None
        self._conn: Any = None

    def _start(self) -> None:
        import os

        ctx = mp.get_context("spawn")
        parent, child = ctx.Pipe()
        saved = {k: os.environ.get(k) for k in self.env}
        os.environ.update(self.env)  # the spawned interpreter inherits the environment
        try:
            self._proc = ctx.Process(target=_serve, args=(child,), daemon=True)
            self._proc.start()
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        child.close()
        self._conn = parent

    def call(self, target: str, *args: Any, **kwargs: Any) -> Any:
        if self._proc is None or not self._proc.is_alive():
            self._start()
        timed_out = False
        try:
            self._conn.send((target, args, kwargs))
            if not self._conn.poll(self.timeout):
                timed_out = True
                self._proc.kill()
                raise EOFError
            status, value = self._conn.recv()
        except (EOFError, BrokenPipeError, ConnectionResetError):
            self._proc.join(5)
            code = None if timed_out else self._proc.exitcode
            self._proc = None
            raise ChildCrashed(f"the child running {target} {_describe_exit(code)}") from None
        if status == "error":
            raise value
        return value

    def close(self) -> None:
        if self._proc is not None and self._proc.is_alive():
            self._conn.close()
            self._proc.join(5)
            if self._proc.is_alive():
                self._proc.kill()
                self._proc.join()
        self._proc = None
