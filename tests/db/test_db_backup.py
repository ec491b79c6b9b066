"""Backups to a local folder target: consistent snapshots while writing, restore (and refusing to
start over a target it cannot read), the write/interval schedule, on SQLite and PostgreSQL; and
last backups on SIGTERM and at exit in real subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import huggingface_hub
import pytest
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
)
from sqlalchemy import text

from db.backup import (
    EXPORT,
    LATEST,
    BackupScheduler,
    BackupUnavailable,
    HfDatasetRepo,
    LocalFolder,
    backup,
    open_store_with_backups,
    restore_latest,
    target_of,
)
from db.connection import make_engine, sqlite_path
from db.export import read_export
from db.settings import StoreSettings
from db.snapshots import has_data, restore, snapshot_file
from db.store import Store
from tests.db.support import integrity, sqlite_url

ROOT = Path(__file__).resolve().parents[2]


def backups(target: LocalFolder) -> list[Path]:
    """The target's backup folders, oldest first."""
    if not target.root.exists():
        return []
    return sorted(p for p in target.root.iterdir() if p.is_dir() and not p.name.startswith("."))


def latest(target: LocalFolder) -> Path:
    return target.root / (target.root / LATEST).read_text().strip()


def problems_in(backup_dir: Path, scratch_url: str) -> list[str]:
    """The questions in a backup's snapshot, restored into the empty database ``scratch_url``."""
    restore(scratch_url, backup_dir / snapshot_file(scratch_url))
    engine = make_engine(scratch_url)
    try:
        with engine.connect() as connection:
            query = text("SELECT question FROM problems ORDER BY id")
            return list(connection.scalars(query))
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], bool], timeout_s: float = 20) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def wait_for_backups(target: LocalFolder, count: int, timeout_s: float = 20) -> None:
    """Wait until ``target`` holds ``count`` backups and ``latest`` names the newest."""

    def done() -> bool:
        pointer = target.root / LATEST
        found = backups(target)
        return len(found) == count and pointer.exists() and latest(target) == found[-1]

    wait_until(done, timeout_s)


def add_problems(store: Store, count: int, start: int = 0) -> None:
    for i in range(start, start + count):
        store.add_problem(f"question {i}", i, "test", f"test-{i}")


def test_snapshot_while_writing_is_consistent_and_restores(
    store: Store, problem_id: int, tmp_path: Path, new_url: Callable[..., str]
):
    approved = store.add_correction("cot", "The answer is 18.", "alice", problem_id)
    store.review(approved.id, "bob", "approved")
    target = LocalFolder(tmp_path / "backups")
    stop = threading.Event()

    def keep_writing() -> None:
        while not stop.is_set():
            store.add_correction("cot", "The answer is 18.", "carol", problem_id)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        result = backup(store, target, by="nightly")
    finally:
        stop.set()
        writer.join()

    folder = Path(result.location)
    assert (target.root / LATEST).read_text().strip() == result.name == folder.name
    assert (folder / snapshot_file(store.url)).is_file()
    if sqlite_path(store.url):
        assert integrity(folder / snapshot_file(store.url)) == "ok"
    assert [r["correction_id"] for r in read_export(folder / EXPORT)] == [approved.id]
    assert result.corrections_exported == 1
    record = store.exports()[0]
    assert (record.created_by, record.path, record.correction_ids) == (
        "nightly",
        f"{folder}/{EXPORT}",
        [approved.id],
    )

    restored_url = new_url()  # a wiped disk, or a new empty PostgreSQL database
    assert restore_latest(target, restored_url)
    restored = Store(restored_url)
    assert restored.get_correction(approved.id).status == "approved"
    snapshot_count = restored.stats().corrections
    assert 1 <= snapshot_count <= store.stats().corrections
    restored.close()
    assert not restore_latest(target, restored_url)  # an existing database is never replaced


@pytest.mark.parametrize("root", ["missing", "empty"])
def test_restore_without_backups_yet_does_nothing(tmp_path: Path, root: str):
    if root == "empty":
        (tmp_path / "backups").mkdir()
    url = sqlite_url(tmp_path / "db.sqlite3")
    assert not restore_latest(LocalFolder(tmp_path / "backups"), url)
    assert not (tmp_path / "db.sqlite3").exists()


def _latest_names_a_missing_backup(root: Path) -> None:
    (root / LATEST).write_text("20240101T000000000000Z\n")


def _latest_is_a_folder(root: Path) -> None:
    (root / LATEST).unlink()
    (root / LATEST).mkdir()


def _latest_points_outside(root: Path) -> None:
    (root / LATEST).write_text("../elsewhere\n")


def _backup_without_its_database(root: Path) -> None:
    for snapshot in latest(LocalFolder(root)).glob("eotd.*"):
        snapshot.unlink()


def _a_file_where_the_folder_should_be(root: Path) -> None:
    for path in sorted(root.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    root.rmdir()
    root.write_text("not a folder")


@pytest.mark.parametrize(
    "damage",
    [
        _latest_names_a_missing_backup,
        _latest_is_a_folder,
        _latest_points_outside,
        _backup_without_its_database,
        _a_file_where_the_folder_should_be,
    ],
)
def test_an_unreadable_target_stops_the_start(
    store: Store,
    tmp_path: Path,
    damage: Callable[[Path], None],
    new_url: Callable[..., str],
):
    target = LocalFolder(tmp_path / "backups")
    backup(store, target)
    damage(target.root)
    wiped = new_url()
    with pytest.raises(BackupUnavailable, match=str(target.root)):
        restore_latest(target, wiped)
    with pytest.raises(BackupUnavailable):
        open_store_with_backups(StoreSettings(db_url=wiped, backup_dir=str(target.root)))
    assert not has_data(wiped)  # no empty store was started in its place


def _http_error(kind: type[HfHubHTTPError], status: int) -> HfHubHTTPError:
    request = httpx.Request("GET", "https://huggingface.co/datasets/someone/eotd-backup")
    return kind(f"{status} error", response=httpx.Response(status, request=request))


class _FakeApi:
    created: list[str]
    refuse: bool

    def __init__(self, token: str | None = None) -> None:
        pass

    def create_repo(self, repo_id: str, **kwargs: object) -> None:
        if self.refuse:
            raise _http_error(HfHubHTTPError, 403)
        assert kwargs["private"] is True
        self.created.append(repo_id)


@pytest.mark.parametrize(
    ("error", "refuse_create", "outcome"),
    [
        (RemoteEntryNotFoundError, False, "no backup yet"),  # the repo has no `latest`
        (RepositoryNotFoundError, False, "repo created"),  # no repo yet: created, private, empty
        (RepositoryNotFoundError, True, "unreadable"),  # private to someone else, or a bad token
        (LocalEntryNotFoundError, False, "unreadable"),  # the Hub could not be reached
    ],
)
def test_a_hub_repo_restores_nothing_only_when_it_has_no_backup(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    error: type[Exception],
    refuse_create: bool,
    outcome: str,
):
    def download(*args: object, **kwargs: object) -> str:
        if error is LocalEntryNotFoundError:
            raise LocalEntryNotFoundError("connection error and nothing in the cache")
        raise _http_error(error, 404)

    api = type("Api", (_FakeApi,), {"created": [], "refuse": refuse_create})
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    monkeypatch.setattr(huggingface_hub, "HfApi", api)
    target = HfDatasetRepo("someone/eotd-backup", token="hf_secret")
    db_file = tmp_path / "eotd.sqlite3"
    if outcome == "unreadable":
        with pytest.raises(BackupUnavailable, match="hf://datasets/someone/eotd-backup") as info:
            restore_latest(target, sqlite_url(db_file))
        assert "hf_secret" not in str(info.value)
    else:
        assert not restore_latest(target, sqlite_url(db_file))
    assert api.created == (["someone/eotd-backup"] if outcome == "repo created" else [])
    assert not db_file.exists()


@pytest.mark.stress
def test_the_scheduler_backs_up_only_what_changed(
    store: Store, problem_id: int, tmp_path: Path, new_url: Callable[..., str]
):
    target = LocalFolder(tmp_path / "backups")
    scheduler = BackupScheduler(store, target, interval_s=0.1, every_writes=1000).start()
    try:
        wait_for_backups(target, 1)  # the first: nothing is known yet
        store.stats()
        store.corrections()
        time.sleep(0.6)  # six intervals of reads only
        assert len(backups(target)) == 1

        # another process changes the database: noticed although this process never wrote
        update = f"UPDATE problems SET question = 'changed elsewhere' WHERE id = {problem_id}"
        code = "import sys, sqlalchemy as sa\nwith sa.create_engine(sys.argv[1]).begin() as c:\n"
        code += "    c.execute(sa.text(sys.argv[2]))"
        subprocess.run([sys.executable, "-c", code, store.url, update], check=True)
        wait_for_backups(target, 2)
        time.sleep(0.3)
        assert len(backups(target)) == 2
    finally:
        scheduler.stop()
    assert scheduler.last_error is None
    assert len(backups(target)) == 2  # stop(): nothing changed, no last backup
    assert store.exports() == []  # the scheduler writes nothing to the store
    # (read only now: on PostgreSQL, restoring it into a scratch database moves the version)
    assert problems_in(latest(target), new_url()) == ["changed elsewhere"]


def test_n_writes_trigger_a_backup_before_the_interval(
    store: Store, tmp_path: Path, new_url: Callable[..., str]
):
    target = LocalFolder(tmp_path / "backups")
    scheduler = BackupScheduler(store, target, interval_s=3600, every_writes=5).start()
    try:
        add_problems(store, 4)
        store.stats()  # reads do not count
        time.sleep(0.3)
        assert backups(target) == []
        add_problems(store, 1, start=4)
        wait_for_backups(target, 1, timeout_s=10)
        assert len(problems_in(latest(target), new_url())) == 5
        add_problems(store, 1, start=5)
    finally:
        scheduler.stop()
    assert len(backups(target)) == 2  # stop(): the sixth write was not backed up yet
    assert len(problems_in(latest(target), new_url())) == 6
    assert scheduler.last_error is None
    with pytest.raises(ValueError, match="positive"):
        BackupScheduler(store, target, interval_s=0)
    with pytest.raises(ValueError, match="N >= 1"):
        BackupScheduler(store, target, every_writes=0)


def test_a_failing_target_is_reported_not_raised(store: Store, tmp_path: Path):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    scheduler = BackupScheduler(store, LocalFolder(blocked), interval_s=60)
    assert scheduler.run_once() is None
    assert isinstance(scheduler.last_error, OSError)
    scheduler.stop(final_backup=False)
    assert scheduler.run_once() is None  # stopped


def test_the_backup_target_comes_from_the_environment(tmp_path: Path):
    assert target_of(StoreSettings.from_env({})) is None
    env = {"EOTD_BACKUP_DIR": str(tmp_path)}
    assert target_of(StoreSettings.from_env(env)) == LocalFolder(tmp_path)
    env |= {"EOTD_BACKUP_REPO": "someone/eotd-backup", "HF_TOKEN": "hf_test"}
    settings = StoreSettings.from_env(env)
    repo = target_of(settings)
    assert repo == HfDatasetRepo("someone/eotd-backup", token="hf_test")
    assert "hf_test" not in repr(repo) and "hf_test" not in repr(settings)
    env |= {"EOTD_BACKUP_INTERVAL": "5", "EOTD_BACKUP_EVERY_WRITES": "3"}
    settings = StoreSettings.from_env(env)
    assert (settings.backup_interval_s, settings.backup_every_writes) == (5.0, 3)
    with pytest.raises(ValueError, match="EOTD_BACKUP_EVERY_WRITES='lots' is not a number"):
        StoreSettings.from_env(env | {"EOTD_BACKUP_EVERY_WRITES": "lots"})


def test_the_app_opening_restores_a_wiped_store_and_schedules_backups(
    store: Store,
    problem_id: int,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    new_url: Callable[..., str],
):
    backup(store, LocalFolder(tmp_path / "backups"))
    sigterm_before = signal.getsignal(signal.SIGTERM)
    wiped = new_url()  # a restarted Space: no database file (or an empty PostgreSQL database)
    settings = StoreSettings(db_url=wiped, backup_dir=str(tmp_path / "backups"))
    restored, scheduler = open_store_with_backups(settings)
    assert scheduler is not None
    try:
        assert restored.get_problem(problem_id).question == store.get_problem(problem_id).question
        assert (scheduler.interval_s, scheduler.every_writes) == (60, 20)
        assert signal.getsignal(signal.SIGTERM) != sigterm_before
    finally:
        scheduler.stop(final_backup=False)
        restored.close()
    assert signal.getsignal(signal.SIGTERM) == sigterm_before

    first = StoreSettings(db_url=new_url(), backup_dir=str(tmp_path / "first-start"))
    with caplog.at_level("INFO", logger="db.backup"):
        empty, scheduler = open_store_with_backups(first)
    assert scheduler is not None
    scheduler.stop(final_backup=False)
    assert empty.stats().problems == 0
    assert "no backup in" in caplog.text
    empty.close()

    plain, none = open_store_with_backups(StoreSettings(db_url=new_url()))  # no target
    assert none is None and plain.stats().problems == 0
    plain.close()


CHILD = """
import signal, sys, time
from dataclasses import replace
from db.backup import open_store_with_backups
from db.settings import StoreSettings

how, url, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
if how == "chained":
    def previous(signum, frame):
        print("previous handler", flush=True)
        sys.exit(3)
    signal.signal(signal.SIGTERM, previous)
store, scheduler = open_store_with_backups(replace(StoreSettings.from_env(), db_url=url))
for i in range(rows):
    store.add_problem(f"question {i}", i, "test", f"test-{i}")
print("ready", flush=True)
if how != "exit":
    while True:
        time.sleep(0.1)  # as in Gradio's launch(): the main thread waits in a sleep loop
"""


@pytest.mark.stress
@pytest.mark.parametrize(
    ("how", "returncode"),
    [
        ("sigterm", -signal.SIGTERM),  # default action afterwards: killed by SIGTERM as before
        ("twice", -signal.SIGTERM),  # a second SIGTERM during the last backup waits for it
        ("chained", 3),  # a handler installed before runs afterwards
        ("exit", 0),  # a normal exit
    ],
)
def test_a_last_backup_on_sigterm_and_at_exit_holds_every_row(
    tmp_path: Path, how: str, returncode: int
):
    target = LocalFolder(tmp_path / "backups")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EOTD_", "HF_"))}
    env |= {
        "PYTHONPATH": str(ROOT),
        "EOTD_BACKUP_DIR": str(target.root),
        "EOTD_BACKUP_INTERVAL": "3600",
        "EOTD_BACKUP_EVERY_WRITES": "1000",
    }
    url = sqlite_url(tmp_path / "eotd.sqlite3")
    rows = 25
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, "sigterm" if how == "twice" else how, url, str(rows)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline() == "ready\n"
        assert backups(target) == []  # neither 1000 writes nor 3600 s yet
        if how != "exit":
            child.send_signal(signal.SIGTERM)
        if how == "twice":
            time.sleep(0.2)
            child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=60)
    finally:
        child.kill()
    assert child.returncode == returncode, err
    assert ("previous handler" in out) == (how == "chained")
    assert len(backups(target)) == 1
    scratch = sqlite_url(tmp_path / "scratch.sqlite3")
    assert problems_in(latest(target), scratch) == [f"question {i}" for i in range(rows)]
