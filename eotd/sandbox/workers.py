"""The parent's handles on the zygote (the preloaded process that forks workers) and on each
worker: spawning, readiness, exit codes, and why a worker died."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from eotd.sandbox import wire
from eotd.sandbox.policy import Confinement
from eotd.sandbox.wire import Channel

STARTUP_TIMEOUT = 60.0
"""Seconds the zygote may take to import its preloads, and a new worker to report ready."""

PROJECT_ROOT = str(Path(__file__).resolve().parents[2])
BOOT = "import sys; from eotd.sandbox import zygote; zygote.main(int(sys.argv[1]))"


def worker_env() -> dict[str, str]:
    """A minimal environment: the worker needs to find Python and our package, nothing secret."""
    env = {"PYTHONPATH": PROJECT_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
    for key in ("PATH", "SYSTEMROOT", "VIRTUAL_ENV"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def parent_path() -> list[str]:
    return [os.path.abspath(p) for p in sys.path]


class Zygote:
    """The parent's handle on the zygote, the preloaded process that forks workers."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        try:
            with theirs:
                self.proc = subprocess.Popen(
                    [sys.executable, "-B", "-c", BOOT, str(theirs.fileno())],
                    pass_fds=[theirs.fileno()],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=worker_env(),
                    cwd="/",
                    start_new_session=True,
                )
        except BaseException:
            ours.close()
            raise
        self.channel = Channel(ours)
        self.path = parent_path()
        self.channel.send(wire.encode({"path": self.path}))
        self._lock = threading.Lock()

    def spawn(self) -> tuple[int, Channel]:
        """Fork a worker: its pid and the parent's end of its socket."""
        with self._lock:
            self.channel.send(wire.encode({"op": "spawn"}))
            if not self.channel.poll(STARTUP_TIMEOUT):
                raise EOFError("the sandbox zygote did not answer")
            data, fd = self.channel.recv_with_fd(8)
        return int.from_bytes(data, "little"), Channel(socket.socket(fileno=fd))

    def exit_code(self, pid: int) -> int | None:
        """How worker ``pid`` ended (negative: killed by that signal), if the zygote knows."""
        with self._lock:
            try:
                self.channel.send(wire.encode({"op": "status", "pid": pid}))
                reply = self.channel.recv(64, deadline=time.monotonic() + 5.0)
                status = wire.decode(reply, int | None)
            except (EOFError, OSError, wire.MalformedMessage):
                return None
        return None if status is None else os.waitstatus_to_exitcode(status)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Hang up (the zygote exits when its socket closes); kill it if it lingers."""
        with self._lock:
            self.channel.close()
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Worker:
    """The parent's handle on one worker process (a child of the zygote)."""

    def __init__(self, zygote: Zygote) -> None:
        self.zygote = zygote
        self.pid, self.channel = zygote.spawn()
        try:  # a pidfd names this very process, immune to pid reuse
            self.pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.sent_path = zygote.path
        self.confinement: Confinement | None = None
        self.reported = False  # whether the pool has logged what its confinement lacks
        self.killed = False

    def check_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the worker's report on its lock-down; False if it is not
        (yet) there, or not a report."""
        if self.confinement is None:
            try:
                if self.channel.poll(timeout):
                    report = self.channel.recv(4096, deadline=time.monotonic() + 1.0)
                    self.confinement = wire.decode(report, Confinement)
            except (EOFError, OSError, wire.MalformedMessage):
                return False
        return self.confinement is not None

    def exited(self, wait: float = 0.0) -> bool:
        """Whether the process has ended, waiting up to ``wait`` seconds for it to."""
        if self.killed:
            return True
        if self.pidfd is None:
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return True
            return False
        return bool(select.select([self.pidfd], [], [], wait)[0])

    def alive(self) -> bool:
        """Whether the process runs and, once ready, has not hung up (idle workers never talk)."""
        if self.exited():
            return False
        try:
            return not (self.confinement is not None and self.channel.poll(0))
        except (OSError, ValueError):
            return False

    def kill(self) -> None:
        """SIGKILL the worker (without waiting: :meth:`bury` waits)."""
        if not self.killed:
            self.killed = True
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if self.pidfd is None:
                    os.kill(self.pid, signal.SIGKILL)
                else:
                    signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            self.channel.close()

    def bury(self) -> None:
        """Wait until the killed process is gone (a big one takes a while to die)."""
        if self.pidfd is not None:
            select.select([self.pidfd], [], [], 5.0)
            os.close(self.pidfd)
            self.pidfd = None

    def exit_code(self) -> int | None:
        self.exited(wait=2.0)
        return self.zygote.exit_code(self.pid)

    def death(self, code: int | None) -> str:
        """A sentence saying how the worker ended, from :meth:`exit_code`."""
        if code is None:
            return "the sandbox worker stopped answering"
        if code < 0:
            try:
                name = signal.Signals(-code).name
            except ValueError:
                name = f"signal {-code}"
            return f"the sandbox worker died ({name})"
        return f"the sandbox worker exited with status {code}"
