"""The sandbox worker pool: real worker processes, real limits, real kills."""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from eotd import sandbox
from eotd.sandbox import run_in_sandbox

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
    gone = Path(f"/proc/{killed.pop()}")
    deadline = time.monotonic() + 10
    while gone.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not gone.exists()  # killed and reaped, no zombie
    assert run_in_sandbox(echo, 5, timeout=30).value == 5


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


def test_unpicklable_result_is_an_error_not_a_crash():
    outcome = run_in_sandbox(make_lambda)
    assert outcome.status == "error"
    assert "cannot be sent back" in outcome.error
    assert run_in_sandbox(echo, 3).value == 3


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
    root = str(Path(sandbox.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert done.returncode == -signal.SIGKILL
    pids = [int(pid) for pid in done.stdout.split()]
    assert len(pids) == sandbox._POOL.size
    deadline = time.monotonic() + 30
    while not all(map(dead, pids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(map(dead, pids))
