"""Backups for hosts whose disk does not survive a restart (Hugging Face Spaces).

A backup is a folder with a consistent snapshot of the SQLite database, taken with SQLite's online
backup API while the app keeps writing, and an export of the approved corrections. A
:class:`BackupTarget` keeps backups: :class:`LocalFolder` (tests, a mounted volume) or
:class:`HfDatasetRepo` (a private dataset repo, via ``huggingface_hub``). :class:`BackupScheduler`
takes one every ``interval_s`` seconds in a background thread; :func:`restore_latest` puts the last
snapshot back before the store opens.

Configure from the environment with :func:`scheduler_from_env`: ``EOTD_BACKUP_REPO`` (dataset repo
id, token from ``HF_TOKEN``) or ``EOTD_BACKUP_DIR`` (a folder), and ``EOTD_BACKUP_INTERVAL``
(seconds, default 3600).
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import tempfile
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from db.connection import default_url, sqlite_path
from db.export import write_export
from db.models import utcnow
from db.store import Store

log = logging.getLogger(__name__)

SNAPSHOT = "eotd.sqlite3"
EXPORT = "export"
LATEST = "latest"


class BackupTarget(Protocol):
    """Somewhere backups are kept."""

    def push(self, folder: Path, name: str) -> str:
        """Store ``folder`` as backup ``name`` (and as the latest); return where it went."""
        ...

    def fetch_latest(self, dest: Path) -> Path | None:
        """Copy the latest backup's folder into ``dest``; None if there is none."""
        ...


@dataclass(frozen=True)
class LocalFolder:
    """Backups as sub-folders of ``root``; ``root/latest`` names the newest."""

    root: Path

    def push(self, folder: Path, name: str) -> str:
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=self.root))
        shutil.copytree(folder, staging, dirs_exist_ok=True)
        target = self.root / name
        staging.rename(target)
        pointer = self.root / f".{LATEST}.tmp"
        pointer.write_text(name + "\n", encoding="utf-8")
        pointer.replace(self.root / LATEST)
        return str(target)

    def fetch_latest(self, dest: Path) -> Path | None:
        pointer = self.root / LATEST
        if not pointer.exists():
            return None
        shutil.copytree(self.root / pointer.read_text(encoding="utf-8").strip(), dest)
        return dest


@dataclass(frozen=True)
class HfDatasetRepo:
    """Backups in a private Hugging Face dataset repo, laid out like :class:`LocalFolder`:
    ``<name>/`` per backup and a ``latest`` file naming the newest, pushed in one commit."""

    repo_id: str
    token: str | None = None

    def push(self, folder: Path, name: str) -> str:
        from huggingface_hub import HfApi

        api = HfApi(token=self.token)
        api.create_repo(self.repo_id, repo_type="dataset", private=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="eotd-push-") as tmp:
            shutil.copytree(folder, Path(tmp) / name)
            (Path(tmp) / LATEST).write_text(name + "\n", encoding="utf-8")
            api.upload_folder(
                repo_id=self.repo_id,
                repo_type="dataset",
                folder_path=tmp,
                commit_message=f"EoTD Studio backup {name}",
            )
        return f"hf://datasets/{self.repo_id}/{name}"

    def fetch_latest(self, dest: Path) -> Path | None:
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

        try:
            pointer = hf_hub_download(self.repo_id, LATEST, repo_type="dataset", token=self.token)
            name = Path(pointer).read_text(encoding="utf-8").strip()
            local = snapshot_download(
                self.repo_id, repo_type="dataset", allow_patterns=[f"{name}/**"], token=self.token
            )
        except (RepositoryNotFoundError, EntryNotFoundError):
            return None
        shutil.copytree(Path(local) / name, dest)
        return dest


@dataclass(frozen=True)
class BackupResult:
    name: str
    location: str
    corrections_exported: int
    taken_at: datetime


def snapshot(db_file: Path, dest: Path) -> Path:
    """A consistent copy of a live SQLite database, via the online backup API."""
    source = sqlite3.connect(db_file, timeout=30)
    target = sqlite3.connect(dest)
    try:
        with target:
            source.backup(target)
    finally:
        target.close()
        source.close()
    return dest


def backup(store: Store, target: BackupTarget, by: str = "backup") -> BackupResult:
    """Snapshot the store's database and export its approved corrections to ``target``; the
    export is recorded with the backup's location."""
    db_file = sqlite_path(store.url)
    if db_file is None:
        raise ValueError(f"{store.engine.url.render_as_string()}: only SQLite stores are snapshot")
    taken_at = utcnow()
    name = taken_at.strftime("%Y%m%dT%H%M%S%fZ")
    with tempfile.TemporaryDirectory(prefix="eotd-backup-") as tmp:
        folder = Path(tmp) / name
        rows = store.approved()
        write_export(rows, folder / EXPORT, by=by)
        snapshot(db_file, folder / SNAPSHOT)
        location = target.push(folder, name)
    ids = [row["correction_id"] for row in rows]
    store.record_export(by, f"{location}/{EXPORT}", ids)
    log.info("backup %s: %d corrections, database snapshot -> %s", name, len(ids), location)
    return BackupResult(name, location, len(ids), taken_at)


def restore_latest(target: BackupTarget, db_file: Path) -> bool:
    """Put the latest backup's database at ``db_file`` if there is none there yet.

    Call before opening the store. Returns whether a snapshot was restored. An existing database
    is never overwritten."""
    if db_file.exists():
        return False
    with tempfile.TemporaryDirectory(prefix="eotd-restore-") as tmp:
        folder = target.fetch_latest(Path(tmp) / LATEST)
        if folder is None:
            return False
        db_file.parent.mkdir(parents=True, exist_ok=True)
        partial = db_file.with_suffix(".restoring")
        shutil.copyfile(folder / SNAPSHOT, partial)
        partial.replace(db_file)
    return True


class BackupScheduler:
    """Takes a backup every ``interval_s`` seconds in a daemon thread until :meth:`stop`.

    A failed backup is logged and kept in ``last_error``; the next one is tried on schedule."""

    def __init__(self, store: Store, target: BackupTarget, interval_s: float) -> None:
        if interval_s <= 0:
            raise ValueError(f"backup interval must be positive, not {interval_s}")
        self.store, self.target, self.interval_s = store, target, interval_s
        self.last_result: BackupResult | None = None
        self.last_error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="eotd-backup", daemon=True)

    def start(self) -> BackupScheduler:
        self._thread.start()
        return self

    def run_once(self) -> BackupResult | None:
        try:
            self.last_result = backup(self.store, self.target)
            self.last_error = None
        except Exception as exc:
            log.exception("backup failed")
            self.last_error = exc
        return self.last_result

    def stop(self, final_backup: bool = True) -> None:
        """Stop the thread, taking one last backup first by default."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        if final_backup:
            self.run_once()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.run_once()


def target_from_env() -> BackupTarget | None:
    """The backup target configured in the environment, if any."""
    if repo := os.environ.get("EOTD_BACKUP_REPO"):
        return HfDatasetRepo(repo, token=os.environ.get("HF_TOKEN"))
    if folder := os.environ.get("EOTD_BACKUP_DIR"):
        return LocalFolder(Path(folder))
    return None


def scheduler_from_env(store: Store) -> BackupScheduler | None:
    """A started scheduler if a backup target is configured, else None."""
    target = target_from_env()
    if target is None:
        return None
    interval = float(os.environ.get("EOTD_BACKUP_INTERVAL", "3600"))
    return BackupScheduler(store, target, interval).start()


def open_store_with_backups(url: str | None = None) -> tuple[Store, BackupScheduler | None]:
    """Open the store the way the app does on a host with a wiped disk: when a backup target is
    configured and the SQLite file is missing, restore the latest backup first; then start the
    scheduled backups. Without a target this is just ``Store(url)``."""
    url = url or default_url()
    db_file = sqlite_path(url)
    target = target_from_env()
    if target is not None and db_file is not None and restore_latest(target, db_file):
        log.info("restored the store from the latest backup into %s", db_file)
    store = Store(url)
    return store, scheduler_from_env(store)
