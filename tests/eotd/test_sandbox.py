"""The sandbox worker pool: real worker processes, real limits, real kills."""

from __future__ import annotations

import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import eotd.sandbox.pool as pool_module
import eotd.sandbox.workers as workers_module
from eotd import sandbox
from eotd.program import execute_program, run_program
from eotd.sandbox import SandboxPool, run_in_sandbox
from eotd.settings import EngineSettings
from tests.eotd.sandbox_tasks import (
    MARGIN,
    Point,
    allocate,
    echo,
    errno_of,
    fail,
    make_lambda,
    segfault,
    shout,
    sleep_then,
    spin,
    typed,
    worker_pid,
)

pytestmark = pytest.mark.usefixtures("warm_sandbox")


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
