"""The sandbox worker pool: real worker processes, real limits, real kills."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import importlib
import logging
import math
import os
import pickle
import resource
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import eotd.sandbox.pool as pool_module
import eotd.sandbox.workers as workers_module
from eotd import sandbox
from eotd.program import execute_program, run_program
from eotd.sandbox import SandboxPool, run_in_sandbox
from eotd.sandbox.wire import frame
from eotd.settings import EngineSettings

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


# Helpers. ------------------------------------------------------------------------------------


def descendants() -> list[int]:
    """Pids of this process's descendants (the zygote and its workers), zombies included."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [], [os.getpid()]
    while frontier:
        children = [pid for pid, parent in parents.items() if parent in frontier]
        found += children
        frontier = children
    return found


def settle(expected: int, seconds: float = 10.0) -> list[int]:
    """Wait until this process has ``expected`` descendants (replacements start asynchronously)."""
    deadline = time.monotonic() + seconds
    while len(descendants()) != expected and time.monotonic() < deadline:
        time.sleep(0.05)
    return descendants()


@pytest.fixture(scope="module", autouse=True)
def warm_pool():
    sandbox.warm_up()
    yield


# Statuses. -----------------------------------------------------------------------------------


def test_ok_returns_value_and_captured_stdout():
    outcome = run_in_sandbox(echo, {"a": [1, 2.5]})
    assert outcome.ok and outcome.status == "ok"
    assert outcome.value == {"a": [1, 2.5]}
    assert outcome.stdout == "echo {'a': [1, 2.5]}\n"
    assert outcome.error is None
    assert outcome.to_dict()["value"] == {"a": [1, 2.5]}


def test_values_come_back_as_json_data_of_the_annotated_types():
    assert run_in_sandbox(typed).value == ("ok", 2.0, {"x": 1.5}, [Point(1.0, None)])
    assert isinstance(run_in_sandbox(typed).value[1], float)
    assert run_in_sandbox(echo, (1, "a")).value == [1, "a"]  # unannotated: plain JSON data
    assert run_in_sandbox(echo, math.inf).value == math.inf
    assert run_in_sandbox(echo, -math.inf).value == -math.inf
    assert math.isnan(run_in_sandbox(echo, math.nan).value)


def test_runs_in_another_process():
    assert run_in_sandbox(worker_pid).value != os.getpid()


def test_exception_is_reported_as_error():
    outcome = run_in_sandbox(fail)
    assert outcome.status == "error"
    assert outcome.exc_type == "ValueError"
    assert outcome.error == "ValueError: bad input 7"


def test_timeout_kills_the_worker_and_a_fresh_one_takes_its_place():
    before = set(sandbox._POOL.pids())
    started = time.monotonic()
    outcome = run_in_sandbox(spin, timeout=0.3)
    assert outcome.status == "timeout"
    assert "0.3 s" in outcome.error
    assert time.monotonic() - started < 0.3 + MARGIN
    after = set(sandbox._POOL.pids())
    killed = before - after
    assert len(killed) == 1
    pid, zygote = killed.pop(), sandbox._POOL._zygote.proc.pid
    deadline = time.monotonic() + 10
    while _child_of(pid, zygote) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _child_of(pid, zygote)  # killed and reaped, no zombie
    assert run_in_sandbox(echo, 5, timeout=30).value == 5


def _child_of(pid: int, parent: int) -> bool:
    """Whether ``pid`` is still a process (a zombie too) of ``parent``: a busy machine may give
    a reaped worker's pid to another process at once."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rpartition(")")[2].split()[1]) == parent  # the field after the state: ppid


def test_memory_limit_raises_memory_error_and_worker_survives():
    outcome = run_in_sandbox(allocate, 2 << 30, memory_mb=64)
    assert outcome.status == "memory_error"
    assert "64 MB" in outcome.error
    assert run_in_sandbox(allocate, 10 << 20, memory_mb=64).value == 10 << 20


def test_segfault_is_reported_as_crash_and_the_pool_recovers():
    outcome = run_in_sandbox(segfault)
    assert outcome.status == "crashed"
    assert "SIGSEGV" in outcome.error
    assert run_in_sandbox(echo, "again", timeout=30).value == "again"


def dead(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] in "ZX"
    except OSError:
        return True


def test_worker_killed_while_idle_is_replaced():
    pids = sandbox._POOL.pids()
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while not all(map(dead, pids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert run_in_sandbox(echo, 1, timeout=30).value == 1
    assert run_in_sandbox(echo, 2, timeout=30).value == 2


def test_unpicklable_function_is_refused_in_the_caller():
    with pytest.raises(TypeError, match="module-level function"):
        run_in_sandbox(lambda: 1)


def test_a_result_that_is_not_json_data_is_an_error_not_a_crash():
    outcome = run_in_sandbox(make_lambda)
    assert outcome.status == "error"
    assert "cannot be sent back" in outcome.error
    assert run_in_sandbox(echo, 3).value == 3


def test_a_result_over_the_reply_cap_is_an_error_not_a_crash():
    outcome = run_in_sandbox(echo, "z" * sandbox.MAX_REPLY_BYTES)
    assert outcome.status == "error"
    assert "cannot be sent back" in outcome.error
    assert run_in_sandbox(echo, 4).value == 4


def test_stdout_is_capped():
    outcome = run_in_sandbox(shout)
    assert outcome.ok
    assert len(outcome.stdout) < sandbox.STDOUT_CAP + 100
    assert outcome.stdout.endswith("[output truncated]")


def test_bad_limits_are_refused():
    with pytest.raises(ValueError):
        run_in_sandbox(echo, 1, timeout=0)


# Containment. --------------------------------------------------------------------------------


def test_worker_limits_are_in_place():
    found = run_in_sandbox(limits).value
    assert found["RLIMIT_NPROC"] == (0, 0)
    assert found["RLIMIT_FSIZE"] == (0, 0)
    assert found["RLIMIT_CORE"] == (0, 0)
    assert found["RLIMIT_NOFILE"] == (sandbox.OPEN_FILES, sandbox.OPEN_FILES)


def test_worker_cannot_fork_or_run_programs():
    fork = run_in_sandbox(fork_once)
    assert fork.status == "error"
    assert fork.exc_type in {"PermissionError", "BlockingIOError"}
    assert run_in_sandbox(run_true).status == "error"


def test_worker_cannot_change_the_file_system(tmp_path):
    os.chmod(tmp_path, 0o777)  # writable for the worker's user: only the sandbox can stop it
    target, kept = tmp_path / "out.txt", tmp_path / "kept.txt"
    kept.write_text("keep me")
    kept.chmod(0o666)
    assert run_in_sandbox(write_file, str(target)).exc_type == "PermissionError"
    assert not target.exists()
    assert run_in_sandbox(write_file, str(kept)).exc_type == "PermissionError"
    assert run_in_sandbox(remove, str(kept)).exc_type == "PermissionError"
    assert kept.read_text() == "keep me"


def test_worker_cannot_open_sockets_or_signal_other_processes():
    assert run_in_sandbox(open_socket).exc_type == "PermissionError"
    assert run_in_sandbox(signal_parent).exc_type == "PermissionError"


@pytest.mark.skipif(os.geteuid() != 0, reason="the app runs as root here")
def test_a_worker_of_a_root_app_runs_as_nobody():
    assert run_in_sandbox(identity).value == (sandbox.NOBODY_UID, sandbox.NOBODY_UID, [])


def test_a_worker_still_imports_lazily_after_its_lock_down():
    # here the interpreter lives under a 0700 /root: nobody reaches it only through the anchors
    for name in ("xml.dom.minidom", "csv"):  # a package not preloaded; one with a C extension
        assert run_in_sandbox(lazy_import, name).value == name


def test_worker_cannot_read_the_environment_or_descriptors_of_the_app_or_zygote():
    app = os.getpid()
    for task, args in ((read_parent_environ, ()), (read, (f"/proc/{app}/environ",))):
        outcome = run_in_sandbox(task, *args)
        assert outcome.exc_type == "PermissionError", outcome
    assert run_in_sandbox(list_fds, app).exc_type == "PermissionError"
    assert run_in_sandbox(read, f"/proc/{app}/mem").exc_type == "PermissionError"


def test_worker_cannot_read_a_0600_file_of_the_apps_user():
    folder = tempfile.mkdtemp(dir="/tmp")  # reachable by anyone: only the file's mode guards it
    try:
        os.chmod(folder, 0o755)
        secret = Path(folder, "eotd.sqlite3")
        secret.write_text("the store")
        secret.chmod(0o600)
        outcome = run_in_sandbox(read, str(secret))
        assert outcome.exc_type == "PermissionError"
        assert "the store" not in str(outcome)
    finally:
        shutil.rmtree(folder)


def landlock_abi() -> int:
    return ctypes.CDLL(None, use_errno=True).syscall(444, None, 0, 1)


@pytest.mark.skipif(landlock_abi() < 1, reason="the kernel has no Landlock")
def test_with_landlock_a_worker_reads_only_the_import_path():
    assert run_in_sandbox(read, f"/proc/{os.getpid()}/cmdline").exc_type == "PermissionError"
    assert run_in_sandbox(read, "/etc/passwd").exc_type == "PermissionError"
    readme = Path(workers_module.PROJECT_ROOT, "README.md")  # in the project, not a module
    assert run_in_sandbox(read, str(readme)).exc_type == "PermissionError"
    assert "def vote" in run_in_sandbox(read, sys.modules["eotd.vote"].__file__).value


@pytest.mark.parametrize("name", sorted(SYSCALLS["x86_64"]))
def test_worker_cannot_reach_into_other_processes(name):
    if os.uname().machine not in SYSCALLS:
        pytest.skip("no seccomp filter on this machine")
    assert run_in_sandbox(errno_of, name).value == errno.EPERM


def test_worker_environment_holds_no_secrets(monkeypatch):
    monkeypatch.setenv("EOTD_TEST_SECRET", "s3cret")
    sandbox.shutdown()  # fresh workers, started while the secret is set
    env = run_in_sandbox(environment, timeout=30).value
    assert "EOTD_TEST_SECRET" not in env
    assert set(env) <= {"PATH", "PYTHONPATH", "PYTHONDONTWRITEBYTECODE", "LC_ALL", "VIRTUAL_ENV"}


def test_workers_are_preloaded_and_do_not_carry_the_parents_modules():
    modules = run_in_sandbox(loaded_modules).value
    assert "sympy" in modules
    assert "eotd.program" in modules
    assert not any(name == "torch" or name.startswith("torch.") for name in modules)


# Replies: data only. --------------------------------------------------------------------------


def test_a_pickle_reply_is_refused_and_runs_nothing_in_the_parent(tmp_path):
    control, marker = tmp_path / "control", tmp_path / "marker"
    pickle.loads(pickle.dumps(Trap(str(control))))  # the payload is live: unpickled, it runs
    assert control.is_dir()
    outcome = run_in_sandbox(send_raw, frame(pickle.dumps(Trap(str(marker)))))
    assert outcome.status == "crashed"
    assert "malformed reply" in outcome.error
    assert not marker.exists()
    assert run_in_sandbox(echo, "after", timeout=30).value == "after"


@pytest.mark.parametrize(
    "reply",
    [
        b"\x80\x04not JSON at all",
        b'{"status": "ok", "value": null, "error": null, "exc_type": null}',  # no stdout
        b'{"status": "ok", "value": null, "error": null, "exc_type": null, "stdout": "", "x": 1}',
        b'{"status": "pwned", "value": null, "error": null, "exc_type": null, "stdout": ""}',
        b'{"status": "ok", "value": "not None", "error": null, "exc_type": null, "stdout": ""}',
        b'{"status": "ok", "value": 1e999, "error": null, "exc_type": null, "stdout": ""}',
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["binary", "missing-key", "extra-key", "status", "value-type", "out-of-range", "deep"],
)
def test_a_reply_that_is_not_the_expected_json_is_refused(reply, caplog):
    with caplog.at_level(logging.WARNING, logger="eotd.sandbox"):
        outcome = run_in_sandbox(send_raw, frame(reply))  # send_raw returns None
    assert outcome.status == "crashed"
    assert "malformed reply" in outcome.error
    assert "malformed reply" in caplog.text
    assert run_in_sandbox(echo, 5, timeout=30).value == 5


def test_an_oversized_reply_is_refused_before_it_is_read():
    started = time.monotonic()
    outcome = run_in_sandbox(send_raw, struct.pack("!Q", 1 << 40))
    assert outcome.status == "crashed"
    assert "limit" in outcome.error
    assert time.monotonic() - started < MARGIN


# Seccomp required. ---------------------------------------------------------------------------

NO_SECCOMP_BOOT = (  # a zygote whose workers cannot install their filter, as on a bare kernel
    "import sys\n"
    "from eotd.sandbox import policy, zygote\n"
    "def unavailable():\n"
    "    raise OSError(38, 'seccomp is not available (simulated)')\n"
    "policy._install_seccomp = unavailable\n"
    "zygote.main(int(sys.argv[1]))\n"
)


def test_without_seccomp_programs_are_refused_unless_allowed(monkeypatch, caplog):
    monkeypatch.setattr(workers_module, "BOOT", NO_SECCOMP_BOOT)
    pool = SandboxPool(1)
    monkeypatch.setattr(pool_module, "_POOL", pool)  # what run_program uses
    try:
        with caplog.at_level(logging.WARNING, logger="eotd.sandbox"):
            outcome = pool.run(execute_program, "ans = 1", timeout=30)
            result = run_program("ans = 1")
        assert outcome.status == "refused"
        assert "seccomp" in outcome.error and "EOTD_SANDBOX_ALLOW_NO_SECCOMP=1" in outcome.error
        assert (result.status, result.error) == ("unavailable", outcome.error)
        assert "seccomp is not available (simulated)" in caplog.text
        pool.allow_no_seccomp = True
        assert pool.run(execute_program, "ans = 1").value == ("ok", 1.0, None, None, {"ans": 1.0})
        assert pool.run(errno_of, "pidfd_open").value == 0  # the filter is really missing
    finally:
        pool.shutdown()


def test_pool_settings_come_from_the_environment():
    default = SandboxPool.from_settings(EngineSettings.from_env({}))
    assert (default.wait, default.allow_no_seccomp) == (pool_module.DEFAULT_WAIT, False)
    env = {"EOTD_SANDBOX_WORKERS": "3", "EOTD_SANDBOX_WAIT": "2.5"}
    pool = SandboxPool.from_settings(
        EngineSettings.from_env(env | {"EOTD_SANDBOX_ALLOW_NO_SECCOMP": "1"})
    )
    assert (pool.size, pool.wait, pool.allow_no_seccomp) == (3, 2.5, True)
    with pytest.raises(ValueError, match="EOTD_SANDBOX_WAIT='soon' is not a number"):
        EngineSettings.from_env({"EOTD_SANDBOX_WAIT": "soon"})


# The pool's limits. --------------------------------------------------------------------------


@pytest.mark.stress
def test_a_full_pool_answers_busy_and_frees_its_worker_at_the_timeout():
    pool = SandboxPool(1, wait=0.3)
    try:
        pool.warm_up()
        held: list[sandbox.SandboxOutcome] = []
        holder = threading.Thread(target=lambda: held.append(pool.run(spin, timeout=2.0)))
        holder.start()
        deadline = time.monotonic() + 10
        while pool._idle and time.monotonic() < deadline:  # until the endless program has it
            time.sleep(0.01)
        started = time.monotonic()
        busy = pool.run(echo, 1)
        assert busy.status == "busy"
        assert "try again" in busy.error
        assert time.monotonic() - started < 0.3 + MARGIN
        pool.wait = 10.0  # a caller willing to wait gets the replacement once the timeout hits
        assert pool.run(echo, 2).value == 2
        assert time.monotonic() - started < 2.0 + MARGIN
        holder.join()
        assert held[0].status == "timeout"
    finally:
        pool.shutdown()


# Concurrency and process hygiene. -----------------------------------------------------------


def test_eight_threads_at_once_all_get_their_own_answers():
    results: dict[int, object] = {}

    def call(i: int) -> None:
        results[i] = run_in_sandbox(sleep_then, i, 0.02, timeout=30).value

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {i: i for i in range(8)}


def test_timeouts_from_threads_while_others_succeed():
    results: dict[str, str] = {}

    def call(name: str, fn, *args) -> None:
        results[name] = run_in_sandbox(fn, *args, timeout=0.5).status

    threads = [threading.Thread(target=call, args=("spin", spin))]
    threads += [threading.Thread(target=call, args=(f"ok{i}", echo, i)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"spin": "timeout", **{f"ok{i}": "ok" for i in range(4)}}


def test_no_processes_leak_through_timeouts_crashes_and_shutdown():
    expected = sandbox._POOL.size + 1  # the workers and the zygote that forks them
    run_in_sandbox(echo, 0, timeout=30)
    assert len(settle(expected)) == expected
    for _ in range(4):
        assert run_in_sandbox(spin, timeout=0.2).status == "timeout"
    assert run_in_sandbox(segfault).status == "crashed"
    assert len(settle(expected)) == expected
    sandbox.shutdown()
    assert descendants() == []
    assert run_in_sandbox(echo, "back", timeout=30).value == "back"  # restarts lazily


def test_a_forked_child_gets_its_own_pool_and_leaves_the_parents_alone():
    parents = sandbox._POOL.pids()
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        outcome = run_in_sandbox(echo, "child", timeout=30)
        mine = sandbox._POOL.pids()
        sandbox.shutdown()
        os._exit(0 if outcome.value == "child" and not set(mine) & set(parents) else 1)
    assert os.waitpid(pid, 0)[1] == 0
    assert sandbox._POOL.pids() == parents
    assert run_in_sandbox(echo, "parent").value == "parent"


@pytest.mark.stress
def test_workers_exit_when_their_parent_is_killed():
    # one worker idle (exits when its socket closes), one busy in an endless loop (its CPU
    # limit, a little past the call's timeout, ends it: nobody is left to kill it)
    script = (
        "import os, signal, threading, time\n"
        "from eotd import sandbox\n"
        "from eotd.program import execute_program\n"
        "sandbox.warm_up()\n"
        "args = (execute_program, 'while True:\\n    pass\\n')\n"
        "call = lambda: sandbox.run_in_sandbox(*args, timeout=1.0)\n"
        "threading.Thread(target=call).start()\n"
        "time.sleep(0.3)\n"
        "print(*sandbox._POOL.pids(), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    root = workers_module.PROJECT_ROOT
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == -signal.SIGKILL
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == sandbox._POOL.size
    deadline = time.monotonic() + 30
    while not all(map(dead, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(dead, pids))
