"""The parent's side: the pool of workers, admission and replacement, ``run_in_sandbox``."""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import pickle
import signal
import threading
import time
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from eotd.sandbox import wire
from eotd.sandbox.workers import STARTUP_TIMEOUT, Worker, Zygote, parent_path
from eotd.settings import SANDBOX_WAIT, EngineSettings

logger = logging.getLogger("eotd.sandbox")

DEFAULT_WAIT = SANDBOX_WAIT
ALLOW_NO_SECCOMP = "EOTD_SANDBOX_ALLOW_NO_SECCOMP"


@dataclass
class SandboxOutcome:
    """What became of one sandboxed call.

    ``status`` is ``"ok"`` (``value`` holds the return value), ``"timeout"`` (wall or CPU limit),
    ``"memory_error"`` (the task hit its memory limit), ``"error"`` (the task raised; ``error``
    is ``"ExcType: message"`` and ``exc_type`` the class name), ``"crashed"`` (the worker died,
    e.g. a segfault, could not start, or sent a reply the parent refused), ``"busy"`` (no worker
    came free within the pool's wait: try again) or ``"refused"`` (the worker is not confined
    as required, so nothing ran). ``error`` is a sentence for every status but ``"ok"``.
    """

    status: str
    value: Any = None
    error: str | None = None
    exc_type: str | None = None
    stdout: str = ""
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Busy(Exception):
    """No worker came free within the pool's wait."""


def _return_type(fn: Callable[..., Any]) -> Any:
    """The type ``fn``'s value must come back as (``Any`` where it has no annotation)."""
    try:
        return typing.get_type_hints(fn).get("return", Any)
    except NameError as exc:
        raise TypeError(f"the return annotation of {fn.__qualname__} is unresolvable") from exc


def _outcome(status: str, error: str | None, started: float, **extra: Any) -> SandboxOutcome:
    return SandboxOutcome(status, error=error, elapsed=time.monotonic() - started, **extra)


class SandboxPool:
    """A fixed-size set of warm workers shared by all threads.

    A call waits up to ``wait`` seconds for a free worker, else it is answered ``"busy"``. A
    worker whose seccomp filter could not be installed runs no code (``"refused"``, logged)
    unless ``allow_no_seccomp``.
    """

    def __init__(
        self, size: int, wait: float = DEFAULT_WAIT, allow_no_seccomp: bool = False
    ) -> None:
        if size < 1 or not wait >= 0:
            raise ValueError("a pool needs at least one worker and a wait of 0 s or more")
        self.size = size
        self.wait = wait
        self.allow_no_seccomp = allow_no_seccomp
        self._cond = threading.Condition()
        self._idle: list[Worker] = []
        self._members: set[Worker] = set()
        self._starting = 0
        self._zygote: Zygote | None = None
        self._zygote_lock = threading.Lock()  # guards the zygote, membership and generation
        self._generation = 0

    @classmethod
    def from_settings(cls, settings: EngineSettings) -> SandboxPool:
        """The pool the settings ask for (``EOTD_SANDBOX_*``: ``eotd.settings``); by default
        min(2, CPUs) workers."""
        size = settings.sandbox_workers or min(2, os.cpu_count() or 1)
        return cls(size, settings.sandbox_wait, settings.sandbox_allow_no_seccomp)

    def run(
        self, fn: Callable[..., Any], *args: Any, timeout: float = 5.0, memory_mb: int = 512
    ) -> SandboxOutcome:
        """Call ``fn(*args)`` in a free worker: see :func:`run_in_sandbox`."""
        if not (timeout > 0 and memory_mb > 0):  # NaN is refused too
            raise ValueError("timeout and memory_mb must be positive")
        if getattr(fn, "__module__", None) == "__main__":
            raise TypeError(
                f"{fn.__qualname__} lives in __main__; workers can only import it from a module"
            )
        expected = _return_type(fn)
        try:
            payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise TypeError(
                f"run_in_sandbox needs a module-level function and picklable arguments: {exc}"
            ) from exc
        path = parent_path()
        started = time.monotonic()
        try:
            worker = self.acquire()
        except _Busy:
            error = f"the sandbox is busy (all {self.size} workers in use for {self.wait:g} s)"
            return _outcome("busy", f"{error}; try again", started)
        except (OSError, EOFError) as exc:
            return _outcome("crashed", f"the sandbox could not start a worker: {exc}", started)
        healthy = False
        try:
            if not worker.check_ready(STARTUP_TIMEOUT):
                return _outcome(
                    "crashed", f"could not start: {worker.death(worker.exit_code())}", started
                )
            if not self._admit(worker):
                healthy = True  # nothing ran in it
                return _outcome("refused", self._refusal(worker), started)
            started = time.monotonic()
            message = (None if path == worker.sent_path else path, payload, timeout, memory_mb)
            try:
                worker.channel.send(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
                worker.sent_path = path
                if not worker.channel.poll(timeout):
                    raise TimeoutError
                data = worker.channel.recv(wire.MAX_REPLY_BYTES, deadline=started + timeout)
                reply = wire.decode_reply(data, expected)
            except TimeoutError:
                return _outcome("timeout", f"the call did not finish within {timeout:g} s", started)
            except wire.MalformedMessage as exc:
                logger.warning("sandbox worker %d sent a malformed reply: %s", worker.pid, exc)
                error = f"the sandbox worker sent a malformed reply ({exc}); it was killed"
                return _outcome("crashed", error, started)
            except (EOFError, OSError):
                code = worker.exit_code()
                if code == -signal.SIGXCPU:
                    return _outcome("timeout", "the call used up its CPU time limit", started)
                return _outcome("crashed", worker.death(code), started)
            healthy = True
            error = reply.error
            if reply.status == "memory_error":
                error = f"the call ran out of memory (limit {memory_mb} MB): {error}"
            extra = {"value": reply.value, "exc_type": reply.exc_type, "stdout": reply.stdout}
            return _outcome(reply.status, error, started, **extra)
        finally:
            self.release(worker, healthy)

    def _refusal(self, worker: Worker) -> str:
        assert worker.confinement is not None
        return (
            "the sandbox refuses to run code: its seccomp filter could not be installed "
            f"({worker.confinement.seccomp_error}); set {ALLOW_NO_SECCOMP}=1 to run without it"
        )

    def _admit(self, worker: Worker) -> bool:
        """Whether a ready worker may run code; what it lacks is logged once per worker."""
        confinement = worker.confinement
        assert confinement is not None
        admitted = confinement.seccomp_error is None or self.allow_no_seccomp
        if not worker.reported:
            worker.reported = True
            if not admitted:
                logger.error("sandbox worker %d: %s", worker.pid, self._refusal(worker))
            elif confinement.seccomp_error is not None:
                logger.warning(
                    "sandbox worker %d runs code without its seccomp filter (%s), as %s allows",
                    *(worker.pid, confinement.seccomp_error, ALLOW_NO_SECCOMP),
                )
            if confinement.uid == os.getuid() and not confinement.landlock:
                logger.warning(
                    "sandbox worker %d runs as the app's user without Landlock: it can read "
                    "that user's files (run the app as root to have workers drop to nobody)",
                    worker.pid,
                )
        return admitted

    def _spawn(self, generation: int | None) -> Worker | None:
        """A new member from the zygote (started or restarted if need be); None if the pool was
        shut down since ``generation`` (so a late replacement cannot revive it)."""
        with self._zygote_lock:
            if generation is not None and generation != self._generation:
                return None
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = Zygote()
            worker = Worker(self._zygote)
            with self._cond:
                self._members.add(worker)
        return worker

    def acquire(self) -> Worker:
        """Take a free worker (a ready one first), starting one if the pool is short; else wait
        for one up to the pool's wait, then raise :class:`_Busy`."""
        deadline = time.monotonic() + self.wait
        with self._cond:
            while True:
                for worker in list(self._idle):
                    if not worker.alive():  # died while idle: replace it
                        self._idle.remove(worker)
                        self._members.discard(worker)
                        self._starting += 1
                        self._discard(worker, replace=True, generation=self._generation)
                for worker in self._idle:
                    if worker.check_ready(0):
                        self._idle.remove(worker)
                        return worker
                if self._idle:
                    return self._idle.pop(0)
                if len(self._members) + self._starting < self.size:
                    self._starting += 1
                    break
                left = deadline - time.monotonic()
                if left <= 0:
                    raise _Busy
                self._cond.wait(left)
        worker = self._start(idle=False)
        assert worker is not None  # no generation given, so never refused
        return worker

    def _start(self, idle: bool, generation: int | None = None) -> Worker | None:
        try:
            worker = self._spawn(generation)
        finally:
            with self._cond:
                self._starting -= 1
        if worker is not None and idle:
            with self._cond:
                self._idle.append(worker)
                self._cond.notify()
        return worker

    def release(self, worker: Worker, healthy: bool) -> None:
        """Return a worker after a call; an unhealthy one is killed and replaced at once (the
        waiting for it to die and the replacing happen in the background, not in the caller)."""
        with self._cond:
            member = worker in self._members
            if healthy and member:
                self._idle.append(worker)
                self._cond.notify()
                return
            self._members.discard(worker)
            replace = member and len(self._members) + self._starting < self.size
            if replace:
                self._starting += 1
            generation = self._generation
        self._discard(worker, replace, generation)

    def _discard(self, worker: Worker, replace: bool, generation: int) -> None:
        """Kill ``worker`` now; bury it, and start its replacement, in the background."""
        worker.kill()
        threading.Thread(target=self._bury, args=(worker, replace, generation), daemon=True).start()

    def _bury(self, worker: Worker, replace: bool, generation: int) -> None:
        if replace:
            with contextlib.suppress(OSError, EOFError):  # else the next acquire tries again
                self._start(idle=True, generation=generation)
        worker.bury()

    def warm_up(self) -> None:
        """Start every worker now and wait until all are ready."""
        with self._cond:
            missing = self.size - len(self._members) - self._starting
            self._starting += max(missing, 0)
        for _ in range(max(missing, 0)):
            self._start(idle=True)
        with self._cond:
            workers = list(self._idle)
        for worker in workers:
            worker.check_ready(STARTUP_TIMEOUT)

    def shutdown(self) -> None:
        """Kill every worker, busy or idle, and the zygote; the pool restarts if used again."""
        with self._zygote_lock:
            self._generation += 1
            with self._cond:
                workers = list(self._members)
                self._members.clear()
                self._idle.clear()
                self._cond.notify_all()
            for worker in workers:  # signal them all, then wait: they die in parallel
                worker.kill()
            for worker in workers:
                worker.bury()
            if self._zygote is not None:
                self._zygote.close()
                self._zygote = None

    def forget(self) -> None:
        """In a forked child: drop the parent's workers and zygote (still the parent's)."""
        for worker in self._members:
            worker.channel.close()
        if self._zygote is not None:
            self._zygote.channel.close()
        self.__init__(self.size, self.wait, self.allow_no_seccomp)

    def pids(self) -> list[int]:
        with self._cond:
            return sorted(worker.pid for worker in self._members)


_POOL = SandboxPool.from_settings(EngineSettings.from_env())  # no process starts before a call
os.register_at_fork(after_in_child=_POOL.forget)


def run_in_sandbox(
    fn: Callable[..., Any], *args: Any, timeout: float = 5.0, memory_mb: int = 512
) -> SandboxOutcome:
    """Call ``fn(*args)`` in a warm sandboxed worker and report what happened.

    ``fn`` must be a module-level function and ``args`` picklable; its value comes back as JSON
    data checked against ``fn``'s return annotation (see :func:`eotd.sandbox.wire.convert`), so
    it must be made of None, bools, numbers, strings, lists, tuples, str-keyed dicts and
    dataclasses. ``timeout`` is wall-clock seconds for the call itself (waiting for a free
    worker, at most the pool's wait, does not count); ``memory_mb`` is how much address space
    the call may add to the warm worker. Thread-safe. Raises only for bad arguments.
    """
    return _POOL.run(fn, *args, timeout=timeout, memory_mb=memory_mb)


def warm_up() -> None:
    """Start all workers now (optional: the pool otherwise starts on first use)."""
    _POOL.warm_up()


def shutdown() -> None:
    """Stop all workers. Called at exit; a later call to :func:`run_in_sandbox` restarts them."""
    _POOL.shutdown()


atexit.register(shutdown)
