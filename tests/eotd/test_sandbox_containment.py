"""What a sandbox worker cannot do (the file system, processes, sockets, secrets) and what its
replies may hold: data only."""

from __future__ import annotations

import ctypes
import errno
import logging
import os
import pickle
import shutil
import struct
import sys
import tempfile
import time
from pathlib import Path

import pytest

import eotd.sandbox.workers as workers_module
from eotd import sandbox
from eotd.sandbox import run_in_sandbox
from eotd.sandbox.wire import frame
from tests.eotd.sandbox_tasks import (
    MARGIN,
    SYSCALLS,
    Trap,
    echo,
    environment,
    errno_of,
    fork_once,
    identity,
    lazy_import,
    limits,
    list_fds,
    loaded_modules,
    open_socket,
    read,
    read_parent_environ,
    remove,
    run_true,
    send_raw,
    signal_parent,
    write_file,
)

pytestmark = pytest.mark.usefixtures("warm_sandbox")


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
