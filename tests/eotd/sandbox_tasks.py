"""What the sandbox tests run in a worker: module-level functions, so that they pickle by
reference and the worker imports them from here."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import resource
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from eotd import sandbox

MARGIN = 3.0  # seconds of slack on a shared, busy 2-core machine

# Tasks: module-level so they pickle by reference and run in the worker. ----------------------


def echo(value: object) -> object:
    print("echo", value)
    return value


def worker_pid() -> int:
    return os.getpid()


def spin() -> None:
    while True:
        pass


def allocate(n_bytes: int) -> int:
    return len(bytearray(n_bytes))


def fail() -> None:
    raise ValueError("bad input 7")


def segfault() -> None:
    ctypes.string_at(0)


def fork_once() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    return pid


def run_true() -> int:
    return subprocess.run(["true"], check=False).returncode


def write_file(path: str) -> int:
    with open(path, "w") as handle:
        return handle.write("x" * 100)


def remove(path: str) -> None:
    os.unlink(path)


def open_socket() -> None:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def signal_parent() -> None:
    os.kill(os.getppid(), 0)


def limits() -> dict[str, tuple[int, int]]:
    names = ("RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE", "RLIMIT_CORE")
    return {name: resource.getrlimit(getattr(resource, name)) for name in names}


def environment() -> dict[str, str]:
    return dict(os.environ)


def loaded_modules() -> list[str]:
    return sorted(sys.modules)


def make_lambda() -> object:
    return lambda: 1


def shout() -> None:
    print("y" * 100_000)


def sleep_then(value: int, seconds: float) -> int:
    time.sleep(seconds)
    return value


@dataclass
class Point:
    x: float
    label: str | None


def typed() -> tuple[str, float | None, dict[str, float], list[Point]]:
    return "ok", 2, {"x": 1.5}, [Point(1, None)]


# Stand-ins for a program that escaped the static check: trusted code, run in a locked-down
# worker exactly as an escaped program would run there.


def identity() -> tuple[int, int, list[int]]:
    return os.getuid(), os.getgid(), os.getgroups()


def lazy_import(name: str) -> str:
    return importlib.import_module(name).__name__


def read(path: str) -> str:
    return Path(path).read_text()


def read_parent_environ() -> str:
    return read(f"/proc/{os.getppid()}/environ")


def list_fds(pid: int) -> list[str]:
    return os.listdir(f"/proc/{pid}/fd")


SYSCALLS = {  # from the kernel's unistd headers
    "x86_64": {"pidfd_open": 434, "pidfd_getfd": 438, "process_vm_readv": 310},
    "aarch64": {"pidfd_open": 434, "pidfd_getfd": 438, "process_vm_readv": 270},
}
SYSCALLS["x86_64"] |= {"process_vm_writev": 311, "kcmp": 312, "ptrace": 101, "prctl": 157}
SYSCALLS["aarch64"] |= {"process_vm_writev": 271, "kcmp": 272, "ptrace": 117, "prctl": 167}


def errno_of(name: str) -> int:
    """Make syscall ``name`` against the zygote (the worker's parent): its errno, 0 if it worked."""
    target = os.getppid()
    args = {
        "pidfd_open": (target, 0),
        "pidfd_getfd": (-1, 0, 0),  # no pidfd to give: EBADF, unless the call itself is denied
        "process_vm_readv": (target, 0, 0, 0, 0, 0),
        "process_vm_writev": (target, 0, 0, 0, 0, 0),
        "kcmp": (target, os.getpid(), 0, 0, 0),  # KCMP_FILE
        "ptrace": (16, target, 0, 0),  # PTRACE_ATTACH
        "prctl": (4, 1, 0, 0, 0),  # PR_SET_DUMPABLE back to 1
    }[name]
    libc = ctypes.CDLL(None, use_errno=True)
    number = SYSCALLS[os.uname().machine][name]
    result = libc.syscall(ctypes.c_long(number), *(ctypes.c_long(arg) for arg in args))
    return ctypes.get_errno() if result == -1 else 0


def send_raw(data: bytes) -> None:
    """Write ``data`` to the socket to the parent, ahead of the worker's own reply."""
    for fd in range(3, sandbox.OPEN_FILES):
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.write(fd, data)
                return
    raise AssertionError("no socket to the parent")


class Trap:
    """Unpickling this makes directory ``path``: code run by the receiver of a pickle."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.mkdir, (self.path,)
