"""The processes behind the pool: the zygote, which forks workers, and the workers' task loop.

The zygote is a fresh interpreter started by the parent with a minimal environment; it imports
:data:`PRELOAD` once, runs :func:`policy.prepare <eotd.sandbox.policy.prepare>`, then forks a
worker per request (single-threaded, so the fork is safe), handing the parent the worker's pid
and its end of a socket pair. The parent speaks JSON to the zygote and the zygote answers in
JSON. A worker locks itself down, reports its :class:`~eotd.sandbox.policy.Confinement`, then
runs tasks until the parent hangs up: a task (from the trusted parent) is a pickle of the
function, by reference, and its arguments; the reply is a JSON :class:`~eotd.sandbox.wire.Reply`.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import pickle
import signal
import socket
import sys
import time
from typing import Any

from eotd.sandbox import policy, wire
from eotd.sandbox.wire import Channel, Reply

PRELOAD = ("math", "fractions", "decimal", "statistics", "datetime", "sympy", "eotd")
"""Modules the zygote imports once, so that every worker starts with them (trusted code)."""
MAX_REQUEST_BYTES = 64 << 20
"""The largest message the zygote or a worker accepts from the (trusted) parent."""


class _CappedWriter(io.TextIOBase):
    """A text sink for ``sys.stdout`` that keeps the first ``cap`` characters."""

    def __init__(self, cap: int) -> None:
        self._parts: list[str] = []
        self._left = cap
        self._truncated = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if len(text) > self._left:
            self._truncated = True
        if self._left > 0:
            self._parts.append(text[: self._left])
            self._left -= len(self._parts[-1])
        return len(text)

    def getvalue(self) -> str:
        text = "".join(self._parts)
        return text + wire.TRUNCATED if self._truncated else text


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not take the worker down
        message = "<unprintable>"
    return f"{type(exc).__name__}: {message[:2000]}" if message else type(exc).__name__


def _run_task(raw: bytes) -> bytes:
    """Run one task message and return the JSON reply."""
    sys_path, payload, timeout, memory_mb = pickle.loads(raw)
    if sys_path is not None:
        sys.path.extend(p for p in sys_path if p not in sys.path)
    out = _CappedWriter(wire.STDOUT_CAP)
    policy.set_task_limits(timeout, memory_mb)
    try:
        with contextlib.redirect_stdout(out):
            try:
                fn, args = pickle.loads(payload)
                reply = Reply("ok", fn(*args))
            except MemoryError as exc:
                reply = Reply("memory_error", None, _describe(exc), "MemoryError")
            except BaseException as exc:
                reply = Reply("error", None, _describe(exc), type(exc).__name__)
        reply.stdout = out.getvalue()
        try:
            data = wire.encode(reply)
            if len(data) <= wire.MAX_REPLY_BYTES:
                return data
            problem = f"it is {len(data)} bytes as JSON (the limit is {wire.MAX_REPLY_BYTES})"
            reply = Reply("error", None, f"the result cannot be sent back: {problem}", "")
        except MemoryError:
            reply = Reply(
                "memory_error", None, "MemoryError: the result is too large", "MemoryError"
            )
        except Exception as exc:
            reply = Reply("error", None, f"the result cannot be sent back: {_describe(exc)}", "")
        reply.stdout = out.getvalue()
        return wire.encode(reply)
    finally:
        policy.clear_task_limits()


def _serve(channel: Channel, plan: policy.Plan) -> None:
    """A worker's life: lock down, report how, run tasks until the parent hangs up."""
    channel.send(wire.encode(policy.lock_down(plan)))
    while True:
        try:
            raw = channel.recv(MAX_REQUEST_BYTES)
        except (EOFError, OSError):
            return
        channel.send(_run_task(raw))


def _fork_worker(control: Channel, plan: policy.Plan) -> None:
    """Fork a worker; send the parent its pid and its end of a fresh socket pair."""
    ours, theirs = socket.socketpair()
    pid = os.fork()
    if pid == 0:  # the worker: never return into the zygote's loop
        code = 1
        try:
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            control.close()
            ours.close()
            os.setsid()
            _serve(Channel(theirs), plan)
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    with ours:
        control.send_with_fd(pid.to_bytes(8, "little"), ours.fileno())


def _reap(statuses: dict[int, int], pid: int = -1, wait: float = 0.0) -> None:
    """Collect the wait statuses of dead workers (all, or ``pid`` within ``wait`` seconds)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            found, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return
        if found:
            statuses[found] = status
            if pid == -1:
                continue
            return
        if time.monotonic() >= deadline:
            return
        time.sleep(0.01)


def main(fd: int) -> None:
    """Entry point of the zygote: preload once, then answer the parent's requests.

    The parent first sends ``{"path": [...]}`` (its ``sys.path``), then ``{"op": "spawn"}``
    (answered with a new worker's pid and socket) or ``{"op": "status", "pid": N}`` (answered
    with the dead worker's wait status, or null). Dead workers are reaped on SIGCHLD.
    """
    control = Channel(socket.socket(fileno=fd))
    config = json.loads(control.recv(MAX_REQUEST_BYTES))
    sys.path.extend(p for p in config["path"] if p not in sys.path)
    for name in PRELOAD:
        importlib.import_module(name)
    plan = policy.prepare()
    statuses: dict[int, int] = {}
    signal.signal(signal.SIGCHLD, lambda *_: _reap(statuses))  # no zombies, even when idle
    while True:
        try:
            request: dict[str, Any] = json.loads(control.recv(MAX_REQUEST_BYTES))
        except (EOFError, OSError):
            return
        if request["op"] == "spawn":
            _fork_worker(control, plan)
        else:
            _reap(statuses, request["pid"], wait=0.2)  # the parent saw it die first
            control.send(wire.encode(statuses.pop(request["pid"], None)))
        while len(statuses) > 256:  # statuses nobody asked for
            statuses.pop(next(iter(statuses)))
