"""Backups to a local folder target: consistent snapshots while writing, restore, schedule."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from db_support import integrity, sqlite_url

from db.backup import (
    EXPORT,
    LATEST,
    SNAPSHOT,
    BackupScheduler,
    HfDatasetRepo,
    LocalFolder,
    backup,
    open_store_with_backups,
    restore_latest,
    target_from_env,
)
from db.export import read_export
from db.store import Store


def test_snapshot_while_writing_is_consistent_and_restores(
    store: Store, problem_id: int, tmp_path: Path
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
    assert integrity(folder / SNAPSHOT) == "ok"
    assert [r["correction_id"] for r in read_export(folder / EXPORT)] == [approved.id]
    assert result.corrections_exported == 1
    record = store.exports()[0]
    assert (record.created_by, record.path, record.correction_ids) == (
        "nightly",
        f"{folder}/{EXPORT}",
        [approved.id],
    )

    restored_file = tmp_path / "restored" / "eotd.sqlite3"
    assert restore_latest(target, restored_file)
    restored = Store(sqlite_url(restored_file))
    assert restored.get_correction(approved.id).status == "approved"
    snapshot_count = restored.stats().corrections
    assert 1 <= snapshot_count <= store.stats().corrections
    assert not restore_latest(target, restored_file)  # an existing database is never replaced


def test_restore_without_backups_does_nothing(tmp_path: Path):
    assert not restore_latest(LocalFolder(tmp_path / "none"), tmp_path / "db.sqlite3")
    assert not (tmp_path / "db.sqlite3").exists()


def test_scheduler_backs_up_repeatedly_and_on_stop(store: Store, tmp_path: Path):
    target = LocalFolder(tmp_path / "backups")
    scheduler = BackupScheduler(store, target, interval_s=0.2).start()
    deadline = time.monotonic() + 30
    while len(store.exports()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.stop()
    assert scheduler.last_error is None
    backups = [p for p in (target.root).iterdir() if p.is_dir() and not p.name.startswith(".")]
    assert len(backups) == len(store.exports()) >= 3  # two on schedule, one final
    with pytest.raises(ValueError, match="positive"):
        BackupScheduler(store, target, interval_s=0)


def test_a_failing_target_is_reported_not_raised(store: Store, tmp_path: Path):
    blocked = tmp_path / "file-not-folder"
    blocked.write_text("x")
    scheduler = BackupScheduler(store, LocalFolder(blocked), interval_s=60)
    assert scheduler.run_once() is None
    assert isinstance(scheduler.last_error, OSError)


def test_target_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.delenv("EOTD_BACKUP_REPO", raising=False)
    monkeypatch.delenv("EOTD_BACKUP_DIR", raising=False)
    assert target_from_env() is None
    monkeypatch.setenv("EOTD_BACKUP_DIR", str(tmp_path))
    assert target_from_env() == LocalFolder(tmp_path)
    monkeypatch.setenv("EOTD_BACKUP_REPO", "someone/eotd-backup")
    monkeypatch.setenv("HF_TOKEN", "hf_test")
    assert target_from_env() == HfDatasetRepo("someone/eotd-backup", token="hf_test")


def test_the_app_opening_restores_a_wiped_store_and_schedules_backups(
    store: Store, problem_id: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    backup(store, LocalFolder(tmp_path / "backups"))
    monkeypatch.setenv("EOTD_BACKUP_DIR", str(tmp_path / "backups"))
    monkeypatch.setenv("EOTD_BACKUP_INTERVAL", "3600")
    wiped = tmp_path / "fresh-disk" / "eotd.sqlite3"  # a restarted Space: no database file
    restored, scheduler = open_store_with_backups(sqlite_url(wiped))
    assert scheduler is not None
    try:
        assert restored.get_problem(problem_id).question == store.get_problem(problem_id).question
    finally:
        scheduler.stop(final_backup=False)
        restored.close()
    monkeypatch.delenv("EOTD_BACKUP_DIR")
    plain, none = open_store_with_backups(sqlite_url(tmp_path / "other.sqlite3"))
    assert none is None and plain.stats().problems == 0
    plain.close()
