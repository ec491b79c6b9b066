"""Many writers at once and writers killed mid-transaction, on real SQLite files and a real
PostgreSQL server.

The writers add ``cot`` corrections: their engine check is ``extract_answer`` in-process, so the
tests exercise the store, not the equation sandbox. The many-writers test runs SQLite with
``synchronous=NORMAL``: it is about locking, and one fsync per commit (the default, FULL) would
make it take minutes on a busy disk. The crash tests run with the default.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.connection import sqlite_path
from db.models import Correction, Problem
from db.settings import StoreSettings
from db.store import Store, StoreBusy
from tests.db.db_writer import write_corrections
from tests.db.support import integrity, sqlite_url

WRITER = Path(__file__).with_name("db_writer.py")
THREADS, PROCESSES, EACH = 8, 2, 500


def start_writer(url: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(WRITER), url, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def count(store: Store, model: type) -> int:
    with store.engine.connect() as connection:
        return connection.scalar(select(func.count()).select_from(model))


@pytest.mark.stress
def test_threads_and_processes_writing_at_once_lose_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("EOTD_SQLITE_SYNCHRONOUS", "NORMAL")  # inherited by the writer processes
    url = db_url
    store = Store(url, settings=StoreSettings(sqlite_synchronous="NORMAL"))
    processes = [start_writer(url, "stress", f"proc{i}", str(EACH)) for i in range(PROCESSES)]
    for process in processes:
        assert process.stdout.readline().strip() == "ready", process.stderr.read()

    errors: list[BaseException] = []
    start = threading.Barrier(THREADS + 1)

    def run(name: str) -> None:
        start.wait()
        try:
            write_corrections(store, name, EACH)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(f"thread{i}",)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for process in processes:
        process.stdin.write("go\n")
        process.stdin.flush()
    start.wait()
    for thread in threads:
        thread.join()
    results = [process.communicate(timeout=120) for process in processes]

    assert errors == []
    for process, (out, err) in zip(processes, results, strict=True):
        assert (process.returncode, out.split()[-1]) == (0, "done"), err
        assert "locked" not in err
    names = [f"thread{i}" for i in range(THREADS)] + [f"proc{i}" for i in range(PROCESSES)]
    with store.engine.connect() as connection:
        written = set(connection.execute(select(Correction.annotator, Correction.corrected_text)))
    expected = {(n, f"{n} step {i}. The answer is {i}.") for n in names for i in range(EACH)}
    assert written == expected
    assert count(store, Correction) == (THREADS + PROCESSES) * EACH
    assert count(store, Problem) == 50  # shared questions deduplicated across all writers
    assert_sound(url)


def assert_sound(url: str) -> None:
    """SQLite's own integrity check passes (PostgreSQL's server keeps its files sound itself)."""
    if db_file := sqlite_path(url):
        assert integrity(db_file) == "ok"


def test_the_same_new_question_typed_at_once_is_one_problem(store: Store):
    start = threading.Barrier(8)
    ids: list[int] = []

    def add() -> None:
        start.wait()
        ids.append(store.add_problem("Typed by eight people at once?").id)

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1
    assert store.stats().problems == 1


def test_promotions_at_once_leave_one_model_promoted(store: Store):
    versions = [store.register_model_version(f"v{i}", "base").id for i in range(6)]
    start = threading.Barrier(len(versions))
    errors: list[BaseException] = []

    def promote(version_id: int) -> None:
        start.wait()
        try:
            store.promote(version_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=promote, args=(v,)) for v in versions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len([v for v in store.model_versions() if v.promoted]) == 1
    promotions = store.audit_log(action="model.promote")
    assert len(promotions) == len(versions)  # each one demoted the one before it
    assert sum(entry.before is None for entry in promotions) == 1


@pytest.mark.stress
def test_writer_killed_mid_transaction_leaves_a_sound_database(db_url: str):
    url = db_url
    writer = start_writer(url, "hold", "alice")
    line = writer.stdout.readline().split()
    assert line[:1] == ["mid"], writer.stderr.read()
    if db_file := sqlite_path(url):
        wal_at_kill = Path(f"{db_file}-wal").stat().st_size
        assert wal_at_kill > int(line[1]) + 1_000_000  # uncommitted pages had reached the WAL
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    assert_sound(url)
    store = Store(url)
    assert count(store, Correction) == 50  # everything committed is there
    assert count(store, Problem) == 1  # nothing of the open transaction is
    problem = store.add_problem("What is 2 + 2?")
    store.add_correction("cot", "The answer is 4.", "bob", problem.id)  # the lock is free
    assert count(store, Correction) == 51


@pytest.mark.stress
def test_writer_killed_while_committing_keeps_every_acknowledged_correction(db_url: str):
    url = db_url
    writer = start_writer(url, "stream", "alice")
    acknowledged = [int(writer.stdout.readline()) for _ in range(200)]
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    acknowledged += [int(line) for line in writer.stdout.read().split()]

    assert_sound(url)
    store = Store(url)
    with store.engine.connect() as connection:
        stored = set(connection.scalars(select(Correction.id)))
    assert set(acknowledged) <= stored
    assert len(stored) <= len(acknowledged) + 1  # at most the one being committed at the kill


def hold_write_lock(db_file: Path, seconds: float) -> threading.Thread:
    """Another connection takes the write lock and keeps it for ``seconds``."""
    locked = threading.Event()

    def hold() -> None:
        connection = sqlite3.connect(db_file, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        locked.set()
        time.sleep(seconds)
        connection.execute("COMMIT")
        connection.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait()
    return thread


def test_a_locked_database_is_retried_past_the_busy_timeout(tmp_path: Path):
    db_file = tmp_path / "eotd.sqlite3"
    store = Store(sqlite_url(db_file), busy_timeout_s=0.01)
    holder = hold_write_lock(db_file, 0.5)
    start = time.monotonic()
    problem = store.add_problem("Written once the lock is free?")
    assert time.monotonic() - start >= 0.4
    holder.join()
    assert store.get_problem(problem.id).question == "Written once the lock is free?"


def test_a_database_locked_for_too_long_is_a_clear_error(tmp_path: Path):
    db_file = tmp_path / "eotd.sqlite3"
    store = Store(sqlite_url(db_file), busy_timeout_s=0.01, lock_wait_s=0.2)
    holder = hold_write_lock(db_file, 1.0)
    with pytest.raises(StoreBusy, match=r"stayed locked .* nothing was saved"):
        store.add_problem("Never written?")
    holder.join()
    assert store.stats().problems == 0
