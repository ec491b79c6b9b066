"""A warm pool of sandboxed worker processes that run one function call each, with limits.

``run_in_sandbox(fn, *args, timeout=..., memory_mb=...)`` sends a module-level function (pickled
by reference) and its arguments to a worker process and returns a :class:`SandboxOutcome`; it
never raises for anything the task does. Workers are started ahead and preloaded (``math``,
``sympy``, the ``eotd`` engine), so a call costs a pipe round trip, not a process start.

How the workers are started: a *zygote*, a fresh interpreter launched with :mod:`subprocess`,
imports the preloads once and then forks each worker on request (single-threaded, so the fork is
safe), handing the parent the worker's end of a socket pair (messages framed by
:class:`multiprocessing.connection.Connection`). This is multiprocessing's "forkserver" without
its drawback for us: ``spawn`` and ``forkserver`` both re-run the parent's ``__main__`` in every
child (measured with a ``__main__`` that imports torch, as ``app.py`` does: 2-5 s per worker,
torch in every child); ``fork`` from the threaded, model-holding parent is unsafe. The zygote
inherits nothing but a minimal environment (no secrets); starting it costs about a second, a
worker about 10 ms, so a killed worker is replaced at once and the caller does not wait.

The pool holds ``EOTD_SANDBOX_WORKERS`` workers (default: min(2, CPUs)), started on first use or by
:func:`warm_up`. A forked child of the parent starts its own pool rather than share the parent's.
Workers outlive no parent: an idle one exits when its socket closes, a busy one at its CPU limit.

Limits, three walls deep (the callers add a static check as the first):
- wall clock, enforced by the parent from whatever thread calls (no SIGALRM): past the deadline
  the worker gets SIGKILL (through a pidfd, immune to pid reuse) and a fresh one takes its place;
- in the worker: ``RLIMIT_AS`` (its warm size plus ``memory_mb``; allocation beyond it raises
  ``MemoryError``), ``RLIMIT_CPU`` (a backstop a little past the timeout), ``RLIMIT_NPROC=0``,
  ``RLIMIT_FSIZE=0`` (no file writes), a small ``RLIMIT_NOFILE``, no core dumps;
- a seccomp filter (Linux x86_64/aarch64): fork, clone, exec, opening files for writing,
  deleting, renaming or chmod-ing them, sockets, signals to other processes and the
  administrative syscalls all fail with EPERM. This is what binds a worker that stays root (the
  kernel ignores ``RLIMIT_NPROC`` and file permissions for root); a worker started as root drops
  to ``nobody`` where the interpreter's files are readable by ``nobody`` (not so under /root).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import io
import os
import pickle
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

STDOUT_CAP = 10_000
"""Characters of the task's printed output kept; the rest is replaced by a marker."""
STARTUP_TIMEOUT = 60.0
"""Seconds the zygote may take to import its preloads, and a new worker to report ready."""
PRELOAD = ("math", "fractions", "decimal", "statistics", "datetime", "sympy", "eotd")
"""Modules the zygote imports once, so that every worker starts with them (trusted code)."""
OPEN_FILES = 32
"""RLIMIT_NOFILE in the worker: enough for lazy imports, too few to hoard descriptors."""
NOBODY_UID = 65534

_PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)
_BOOT = "import sys; from eotd.sandbox import _zygote_main; _zygote_main(int(sys.argv[1]))"
_MIB = 1 << 20


@dataclass
class SandboxOutcome:
    """What became of one sandboxed call.

    ``status`` is ``"ok"`` (``value`` holds the return value), ``"timeout"`` (wall or CPU limit),
    ``"memory_error"`` (the task hit its memory limit), ``"error"`` (the task raised; ``error``
    is ``"ExcType: message"`` and ``exc_type`` the class name) or ``"crashed"`` (the worker died,
    e.g. a segfault, or could not start). ``error`` is a sentence for every status but ``"ok"``.
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


# ----------------------------------------------------------------------------------------------
# Worker side (runs in the child process).


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
        return text + "\n[output truncated]" if self._truncated else text


def _address_space() -> int:
    """This process's current virtual size in bytes (0 where /proc is unavailable)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            return int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


_DENIED_SYSCALLS = {
    # name: (x86_64 number, aarch64 number or None), from the kernel's unistd headers
    # new processes and programs
    "clone": (56, 220), "clone3": (435, 435), "fork": (57, None), "vfork": (58, None),
    "execve": (59, 221), "execveat": (322, 281),
    # changes to the file system (open/openat for writing are refused by their flags)
    "creat": (85, None), "unlink": (87, None), "unlinkat": (263, 35), "rename": (82, None),
    "renameat": (264, 38), "renameat2": (316, 276), "mkdir": (83, None), "mkdirat": (258, 34),
    "rmdir": (84, None), "mknod": (133, None), "mknodat": (259, 33), "link": (86, None),
    "linkat": (265, 37), "symlink": (88, None), "symlinkat": (266, 36), "chmod": (90, None),
    "fchmod": (91, 52), "fchmodat": (268, 53), "chown": (92, None), "fchown": (93, 55),
    "lchown": (94, None), "fchownat": (260, 54), "truncate": (76, 45), "ftruncate": (77, 46),
    "openat2": (437, 437), "open_by_handle_at": (304, 265), "io_uring_setup": (425, 425),
    # the network, other processes, the machine
    "socket": (41, 198), "kill": (62, 129), "tkill": (200, 130), "tgkill": (234, 131),
    "rt_sigqueueinfo": (129, 138), "rt_tgsigqueueinfo": (297, 240),
    "pidfd_send_signal": (424, 424), "ptrace": (101, 117), "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "unshare": (272, 97), "setns": (308, 268),
    "reboot": (169, 142), "swapon": (167, 224), "swapoff": (168, 225),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106),
    "kexec_load": (246, 104), "kexec_file_load": (320, 294), "bpf": (321, 280),
    "perf_event_open": (298, 241), "userfaultfd": (323, 282), "add_key": (248, 217),
    "request_key": (249, 218), "keyctl": (250, 219), "acct": (163, 89), "quotactl": (179, 60),
    "sethostname": (170, 161), "setdomainname": (171, 162), "settimeofday": (164, 170),
    "clock_settime": (227, 112), "adjtimex": (159, 171), "iopl": (172, None),
    "ioperm": (173, None),
}  # fmt: skip
"""Syscalls a worker may not make (they fail with EPERM)."""
_OPEN_CALLS = {"x86_64": ((2, 1), (257, 2)), "aarch64": ((56, 2),)}  # (open(at), flags arg)
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}


def _seccomp_program(machine: str) -> list[tuple[int, int, int, int]]:
    """A classic-BPF seccomp filter: (code, jump if true, jump if false, constant) rows.

    Layout: check the ABI, load the syscall number, compare with each open call (to its flag
    check) and each denied syscall (to EPERM), else allow. Jumps only go forward.
    """
    load, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, deny = 0x7FFF0000, 0x00050000 | errno.EPERM  # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    kill = 0x80000000  # SECCOMP_RET_KILL_PROCESS, for a foreign ABI (i386, x32)
    index = 0 if machine == "x86_64" else 1
    denied = [numbers[index] for numbers in _DENIED_SYSCALLS.values() if numbers[index]]
    opens = _OPEN_CALLS[machine]
    first_check = 5 + len(opens) + len(denied) + 1
    deny_at = first_check + 4 * len(opens)
    program = [(load, 0, 0, 4), (jeq, 1, 0, _AUDIT_ARCH[machine]), (ret, 0, 0, kill)]
    program += [(load, 0, 0, 0), (jge, deny_at + 1 - 5, 0, 0x40000000)]  # x32 numbers: kill
    for i, (number, _) in enumerate(opens):
        program.append((jeq, first_check + 4 * i - len(program) - 1, 0, number))
    for number in denied:
        program.append((jeq, deny_at - len(program) - 1, 0, number))
    program.append((ret, 0, 0, allow))
    for _, flags_arg in opens:  # seccomp_data.args[i] starts at byte 16 + 8 i (low half first)
        program += [(load, 0, 0, 16 + 8 * flags_arg), (jset, 0, 1, _WRITE_FLAGS)]
        program += [(ret, 0, 0, deny), (ret, 0, 0, allow)]
    program += [(ret, 0, 0, deny), (ret, 0, 0, kill)]
    assert all(0 <= jt < 256 for _, jt, _, _ in program)
    return program


def _install_seccomp() -> bool:
    """Install :func:`_seccomp_program` for this process; False where unsupported.

    This is what keeps a worker that stays root (see :func:`_nobody_can_import`) from touching
    the machine: ``RLIMIT_NPROC`` and file permissions do not bind root, seccomp does.
    """
    import ctypes

    machine = os.uname().machine
    if machine not in _AUDIT_ARCH or not sys.platform.startswith("linux"):
        return False
    program = _seccomp_program(machine)
    rows = (ctypes.c_uint64 * len(program))()
    for i, (code, jt, jf, k) in enumerate(program):
        rows[i] = code | jt << 16 | jf << 24 | k << 32  # struct sock_filter, little-endian
    fprog = (ctypes.c_uint64 * 2)(len(program), ctypes.addressof(rows))  # struct sock_fprog
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        return False
    return libc.prctl(22, 2, ctypes.addressof(fprog), 0, 0) == 0  # PR_SET_SECCOMP, FILTER


def _nobody_can_import() -> bool:
    """Whether every directory on ``sys.path`` is readable by other users (so lazy imports
    keep working after dropping to ``nobody``); not so for e.g. an interpreter under /root."""
    import stat

    for entry in filter(os.path.isdir, sys.path):
        path = Path(entry).resolve()
        for directory in (path, *path.parents):
            mode = directory.stat().st_mode
            needed = stat.S_IXOTH | (stat.S_IROTH if directory == path else 0)
            if mode & needed != needed:
                return False
    return True


def _lock_down() -> None:
    """Apply the limits that hold for the worker's whole life; drop root to ``nobody``."""
    import resource

    sys.dont_write_bytecode = True
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG
    _install_seccomp()
    if os.geteuid() == 0 and _nobody_can_import():
        os.setgroups([])
        os.setgid(NOBODY_UID)
        os.setuid(NOBODY_UID)
    for limit, value in (
        (resource.RLIMIT_NPROC, 0),
        (resource.RLIMIT_FSIZE, 0),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, OPEN_FILES),
    ):
        resource.setrlimit(limit, (value, value))


def _set_task_limits(timeout: float, memory_mb: int) -> None:
    import resource

    base = _address_space()
    if base:
        soft = base + memory_mb * _MIB
        soft = soft if soft < 1 << 62 else resource.RLIM_INFINITY  # (which is -1)
        resource.setrlimit(resource.RLIMIT_AS, (soft, resource.RLIM_INFINITY))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = int(usage.ru_utime + usage.ru_stime + timeout) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, resource.RLIM_INFINITY))


def _clear_task_limits() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


def _describe(exc: BaseException) -> str:
    try:
        message = str(exc)
    except Exception:  # a broken __str__ must not take the worker down
        message = "<unprintable>"
    return f"{type(exc).__name__}: {message[:2000]}" if message else type(exc).__name__


def _run_task(raw: bytes) -> bytes:
    """Run one task message and return the pickled reply."""
    sys_path, payload, timeout, memory_mb = pickle.loads(raw)
    if sys_path is not None:
        sys.path.extend(p for p in sys_path if p not in sys.path)
    out = _CappedWriter(STDOUT_CAP)
    _set_task_limits(timeout, memory_mb)
    try:
        with contextlib.redirect_stdout(out):
            try:
                fn, args = pickle.loads(payload)
                value = fn(*args)
                reply: tuple[Any, ...] = ("ok", value, None, None)
            except MemoryError as exc:
                reply = ("memory_error", None, _describe(exc), "MemoryError")
            except BaseException as exc:
                reply = ("error", None, _describe(exc), type(exc).__name__)
        try:
            return pickle.dumps((*reply, out.getvalue()), protocol=pickle.HIGHEST_PROTOCOL)
        except MemoryError:
            reply = ("memory_error", None, "MemoryError: the result is too large", "MemoryError")
        except Exception as exc:
            reply = ("error", None, f"the result cannot be sent back: {_describe(exc)}", "")
        return pickle.dumps((*reply, out.getvalue()))
    finally:
        _clear_task_limits()


def _serve(conn: Connection) -> None:
    """A worker's life: lock down, say ready, run tasks until the parent hangs up."""
    _lock_down()
    conn.send_bytes(b"ready")
    while True:
        try:
            raw = conn.recv_bytes()
        except (EOFError, OSError):
            return
        conn.send_bytes(_run_task(raw))


def _fork_worker(control: Connection) -> None:
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
            _serve(Connection(theirs.detach()))
            code = 0
        finally:
            os._exit(code)
    theirs.close()
    with ours:
        _send_with_fd(control, pid.to_bytes(8, "little"), ours.fileno())


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


def _zygote_main(fd: int) -> None:
    """Entry point of the zygote: preload once, then fork a worker per request.

    Requests: ``"spawn"`` (answered with a new worker's pid and socket) and ``("status", pid)``
    (answered with the dead worker's wait status, or None). Dead workers are reaped on SIGCHLD.
    """
    import importlib

    conn = Connection(fd)
    sys.path.extend(p for p in conn.recv() if p not in sys.path)
    for name in PRELOAD:
        importlib.import_module(name)
    statuses: dict[int, int] = {}
    signal.signal(signal.SIGCHLD, lambda *_: _reap(statuses))  # no zombies, even when idle
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return
        if request == "spawn":
            _fork_worker(conn)
        else:
            _reap(statuses, request[1], wait=0.2)  # the parent saw it die first
            conn.send(statuses.pop(request[1], None))
        while len(statuses) > 256:  # statuses nobody asked for
            statuses.pop(next(iter(statuses)))


def _send_with_fd(conn: Connection, data: bytes, fd: int) -> None:
    sock = socket.socket(fileno=conn.fileno())
    try:
        socket.send_fds(sock, [data], [fd])
    finally:
        sock.detach()


def _recv_with_fd(conn: Connection, size: int) -> tuple[bytes, int]:
    sock = socket.socket(fileno=conn.fileno())
    try:
        data, fds, _, _ = socket.recv_fds(sock, size, 1)
    finally:
        sock.detach()
    if len(data) != size or len(fds) != 1:
        raise EOFError("the sandbox zygote hung up")
    return data, fds[0]


# ----------------------------------------------------------------------------------------------
# Parent side.


def _worker_env() -> dict[str, str]:
    """A minimal environment: the worker needs to find Python and our package, nothing secret."""
    env = {"PYTHONPATH": _PROJECT_ROOT, "PYTHONDONTWRITEBYTECODE": "1", "LC_ALL": "C.UTF-8"}
    for key in ("PATH", "SYSTEMROOT", "VIRTUAL_ENV"):
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _parent_path() -> list[str]:
    return [os.path.abspath(p) for p in sys.path]


class _Zygote:
    """The parent's handle on the zygote, the preloaded process that forks workers."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        with ours, theirs:
            self.proc = subprocess.Popen(
                [sys.executable, "-B", "-c", _BOOT, str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=_worker_env(),
                cwd="/",
                start_new_session=True,
            )
            self.conn = Connection(ours.detach())
        self.path = _parent_path()
        self.conn.send(self.path)
        self._lock = threading.Lock()

    def spawn(self) -> tuple[int, Connection]:
        """Fork a worker: its pid and the parent's end of its socket."""
        with self._lock:
            self.conn.send("spawn")
            if not self.conn.poll(STARTUP_TIMEOUT):
                raise EOFError("the sandbox zygote did not answer")
            data, fd = _recv_with_fd(self.conn, 8)
        return int.from_bytes(data, "little"), Connection(fd)

    def exit_code(self, pid: int) -> int | None:
        """How worker ``pid`` ended (negative: killed by that signal), if the zygote knows."""
        with self._lock:
            try:
                self.conn.send(("status", pid))
                status = self.conn.recv()
            except (EOFError, OSError):
                return None
        return None if status is None else os.waitstatus_to_exitcode(status)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        """Hang up (the zygote exits when its socket closes); kill it if it lingers."""
        with self._lock:
            self.conn.close()
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class _Worker:
    """The parent's handle on one worker process (a child of the zygote)."""

    def __init__(self, zygote: _Zygote) -> None:
        self.zygote = zygote
        self.pid, self.conn = zygote.spawn()
        try:  # a pidfd names this very process, immune to pid reuse
            self.pidfd: int | None = os.pidfd_open(self.pid)
        except (AttributeError, OSError):
            self.pidfd = None
        self.sent_path = zygote.path
        self.ready = False
        self.killed = False

    def check_ready(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for the worker's ready message; False if it is not (yet) up."""
        if not self.ready:
            try:
                self.ready = self.conn.poll(timeout) and self.conn.recv_bytes() == b"ready"
            except (EOFError, OSError):
                return False
        return self.ready

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
            return not (self.ready and self.conn.poll(0))
        except OSError:
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
            self.conn.close()

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


class _Pool:
    """A fixed-size set of warm workers shared by all threads."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._cond = threading.Condition()
        self._idle: list[_Worker] = []
        self._members: set[_Worker] = set()
        self._starting = 0
        self._zygote: _Zygote | None = None
        self._zygote_lock = threading.Lock()  # guards the zygote, membership and generation
        self._generation = 0

    def _spawn(self, generation: int | None) -> _Worker | None:
        """A new member from the zygote (started or restarted if need be); None if the pool was
        shut down since ``generation`` (so a late replacement cannot revive it)."""
        with self._zygote_lock:
            if generation is not None and generation != self._generation:
                return None
            if self._zygote is None or not self._zygote.alive():
                if self._zygote is not None:
                    self._zygote.close()
                self._zygote = _Zygote()
            worker = _Worker(self._zygote)
            with self._cond:
                self._members.add(worker)
        return worker

    def acquire(self) -> _Worker:
        """Take a free worker (a ready one first), starting one if the pool is short; else wait."""
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
                self._cond.wait()
        worker = self._start(idle=False)
        assert worker is not None  # no generation given, so never refused
        return worker

    def _start(self, idle: bool, generation: int | None = None) -> _Worker | None:
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

    def release(self, worker: _Worker, healthy: bool) -> None:
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

    def _discard(self, worker: _Worker, replace: bool, generation: int) -> None:
        """Kill ``worker`` now; bury it, and start its replacement, in the background."""
        worker.kill()
        threading.Thread(target=self._bury, args=(worker, replace, generation), daemon=True).start()

    def _bury(self, worker: _Worker, replace: bool, generation: int) -> None:
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
            worker.conn.close()
        if self._zygote is not None:
            self._zygote.conn.close()
        self.__init__(self.size)

    def pids(self) -> list[int]:
        with self._cond:
            return sorted(worker.pid for worker in self._members)


_POOL = _Pool(int(os.environ.get("EOTD_SANDBOX_WORKERS", 0)) or min(2, os.cpu_count() or 1))
os.register_at_fork(after_in_child=_POOL.forget)


def _outcome(status: str, error: str | None, started: float, **extra: Any) -> SandboxOutcome:
    return SandboxOutcome(status, error=error, elapsed=time.monotonic() - started, **extra)


def run_in_sandbox(
    fn: Callable[..., Any], *args: Any, timeout: float = 5.0, memory_mb: int = 512
) -> SandboxOutcome:
    """Call ``fn(*args)`` in a warm sandboxed worker and report what happened.

    ``fn`` must be a module-level function and ``args`` and its return value picklable.
    ``timeout`` is wall-clock seconds for the call itself (waiting for a free worker does not
    count); ``memory_mb`` is how much address space the call may add to the warm worker.
    Thread-safe: each call takes a free worker or waits for one.
    """
    if not (timeout > 0 and memory_mb > 0):  # NaN is refused too
        raise ValueError("timeout and memory_mb must be positive")
    if getattr(fn, "__module__", None) == "__main__":
        raise TypeError(
            f"{fn.__qualname__} lives in __main__; workers can only import it from a module"
        )
    try:
        payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise TypeError(
            f"run_in_sandbox needs a module-level function and picklable arguments: {exc}"
        ) from exc
    path = _parent_path()
    started = time.monotonic()
    try:
        worker = _POOL.acquire()
    except (OSError, EOFError) as exc:
        return _outcome("crashed", f"the sandbox could not start a worker: {exc}", started)
    healthy = False
    try:
        if not worker.check_ready(STARTUP_TIMEOUT):
            return _outcome(
                "crashed", f"could not start: {worker.death(worker.exit_code())}", started
            )
        started = time.monotonic()
        message = (None if path == worker.sent_path else path, payload, timeout, memory_mb)
        try:
            worker.conn.send_bytes(pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL))
            worker.sent_path = path
            if not worker.conn.poll(timeout):
                return _outcome("timeout", f"the call did not finish within {timeout:g} s", started)
            status, value, error, exc_type, stdout = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):
            code = worker.exit_code()
            if code == -signal.SIGXCPU:
                return _outcome("timeout", "the call used up its CPU time limit", started)
            return _outcome("crashed", worker.death(code), started)
        healthy = True
        if status == "memory_error":
            error = f"the call ran out of memory (limit {memory_mb} MB): {error}"
        return _outcome(status, error, started, value=value, exc_type=exc_type, stdout=stdout)
    finally:
        _POOL.release(worker, healthy)


def warm_up() -> None:
    """Start all workers now (optional: the pool otherwise starts on first use)."""
    _POOL.warm_up()


def shutdown() -> None:
    """Stop all workers. Called at exit; a later call to :func:`run_in_sandbox` restarts them."""
    _POOL.shutdown()


atexit.register(shutdown)
