"""Backups for hosts whose disk does not survive a restart (Hugging Face Spaces), or elsewhere.

A backup is a folder with a consistent snapshot of the database, taken while the app keeps writing
(SQLite's online backup API, or ``pg_dump`` for PostgreSQL: ``db.snapshots``), and an export of
the approved corrections. A :class:`BackupTarget` keeps backups: :class:`LocalFolder` (tests, a
mounted volume) or :class:`HfDatasetRepo` (a private dataset repo, via ``huggingface_hub``).
:func:`restore_latest` puts the last snapshot back before the store opens, into a database with no
data yet; :class:`BackupScheduler` takes a backup after ``every_writes`` writes or ``interval_s``
seconds, whichever comes first, but only when the database changed since the last one, and a last
one when the process gets SIGTERM or exits.

Configured by the store's settings (``db.settings``; :func:`open_store_with_backups` does it all):
``EOTD_BACKUP_REPO`` (dataset repo id, token from ``HF_TOKEN``) or ``EOTD_BACKUP_DIR`` (a folder),
``EOTD_BACKUP_INTERVAL`` (seconds, default 60) and ``EOTD_BACKUP_EVERY_WRITES`` (default 20).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, event

from db.connection import WRITE
from db.export import write_export
from db.models import utcnow
from db.settings import EVERY_WRITES, INTERVAL_S, StoreSettings
from db.snapshots import Snapshots, has_data, open_snapshots, restore, snapshot_file
from db.store import Store

log = logging.getLogger(__name__)

EXPORT = "export"
LATEST = "latest"

_WROTE = "eotd_backup_wrote"  # connection info flag: a write transaction committed on it

T = TypeVar("T")


class BackupUnavailable(RuntimeError):
    """A configured backup target exists but could not be read, so the app must not start: an
    empty store in its place would hide (and its backups would bury) the data the target holds."""


class BackupTarget(Protocol):
    """Somewhere backups are kept."""

    def push(self, folder: Path, name: str) -> str:
        """Store ``folder`` as backup ``name`` (and as the latest); return where it went."""
        ...

    def fetch_latest(self, dest: Path) -> Path | None:
        """Copy the latest backup's folder into ``dest``; None if there is no backup yet (no
        ``latest``). Any other failure to read the target raises."""
        ...


def _backup_name(name: str) -> str:
    """``name`` read from a ``latest`` pointer, checked to be a backup's folder name."""
    if not name or name.startswith(".") or Path(name).name != name:
        raise ValueError(f"{LATEST} names {name!r}, not a backup folder")
    return name


@dataclass(frozen=True)
class LocalFolder:
    """Backups as sub-folders of ``root``; ``root/latest`` names the newest."""

    root: Path

    def __str__(self) -> str:
        return str(self.root)

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
        try:
            name = (self.root / LATEST).read_text(encoding="utf-8").strip()
        except FileNotFoundError:  # no folder or no pointer yet; a file as root raises ENOTDIR
            return None
        shutil.copytree(self.root / _backup_name(name), dest)
        return dest


@dataclass(frozen=True)
class HfDatasetRepo:
    """Backups in a private Hugging Face dataset repo, laid out like :class:`LocalFolder`:
    ``<name>/`` per backup and a ``latest`` file naming the newest, pushed in one commit."""

    repo_id: str
    token: str | None = field(default=None, repr=False)

    def __str__(self) -> str:
        return f"hf://datasets/{self.repo_id}"

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
        return f"{self}/{name}"

    def fetch_latest(self, dest: Path) -> Path | None:
        """The Hub answers "not found" both for a repo that does not exist and for a private one
        the token cannot see; creating the (private) repo tells them apart: it succeeds only in
        the first case and fails in the second. Downloads go to a fresh cache, so a network
        failure raises instead of returning a stale copy."""
        from huggingface_hub import HfApi, hf_hub_download, snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            RemoteEntryNotFoundError,
            RepositoryNotFoundError,
        )

        with tempfile.TemporaryDirectory(prefix="eotd-hf-") as cache:
            try:
                pointer = hf_hub_download(
                    self.repo_id, LATEST, repo_type="dataset", token=self.token, cache_dir=cache
                )
            except RemoteEntryNotFoundError:  # the repo exists, with no backup yet
                return None
            except RepositoryNotFoundError as exc:
                if isinstance(exc, GatedRepoError):
                    raise
                HfApi(token=self.token).create_repo(
                    self.repo_id, repo_type="dataset", private=True, exist_ok=True
                )
                return None
            name = _backup_name(Path(pointer).read_text(encoding="utf-8").strip())
            local = snapshot_download(
                self.repo_id,
                repo_type="dataset",
                allow_patterns=[f"{name}/**"],
                token=self.token,
                cache_dir=cache,
            )
            shutil.copytree(Path(local) / name, dest)
        return dest


@dataclass(frozen=True)
class BackupResult:
    name: str
    location: str
    correction_ids: tuple[int, ...]
    taken_at: datetime

    @property
    def corrections_exported(self) -> int:
        return len(self.correction_ids)


def _take(
    store: Store, target: BackupTarget, snapshots: Snapshots, by: str
) -> tuple[BackupResult, object]:
    """Snapshot and export to ``target``; the result and the version the snapshot holds. Writes
    nothing to the store."""
    taken_at = utcnow()
    name = taken_at.strftime("%Y%m%dT%H%M%S%fZ")
    with tempfile.TemporaryDirectory(prefix="eotd-backup-") as tmp:
        folder = Path(tmp) / name
        rows = store.approved()
        write_export(rows, folder / EXPORT, by=by)
        version = snapshots.take(folder)
        location = target.push(folder, name)
    ids = tuple(row["correction_id"] for row in rows)
    log.info("backup %s: %d corrections, database snapshot -> %s", name, len(ids), location)
    return BackupResult(name, location, ids, taken_at), version


def backup(store: Store, target: BackupTarget, by: str = "backup") -> BackupResult:
    """Snapshot the store's database and export its approved corrections to ``target`` now; the
    export is recorded with the backup's location. (:class:`BackupScheduler` does not record its
    backups: see there.)"""
    snapshots = open_snapshots(store.url)
    try:
        result, _ = _take(store, target, snapshots, by)
    finally:
        snapshots.close()
    store.record_export(by, f"{result.location}/{EXPORT}", list(result.correction_ids))
    return result


def restore_latest(target: BackupTarget, url: str) -> bool:
    """Put the latest backup's database into the database at ``url`` if it holds no data yet.

    Call before opening the store. Returns whether a snapshot was restored: False when the
    database has data (a SQLite file exists, a PostgreSQL database has tables: it is never
    overwritten) or the target holds no backup yet (a first start). Raises
    :class:`BackupUnavailable` when the target cannot be read: a file where its folder should
    be, permissions, a ``latest`` that is unreadable or names a missing or incomplete backup
    (one without this kind of database's snapshot), a Hub repo that is private to another
    account, a network failure."""
    if has_data(url):
        return False
    file = snapshot_file(url)
    with tempfile.TemporaryDirectory(prefix="eotd-restore-") as tmp:
        try:
            folder = target.fetch_latest(Path(tmp) / LATEST)
        except Exception as exc:
            raise BackupUnavailable(f"cannot read the latest backup in {target}: {exc}") from exc
        if folder is None:
            return False
        if not (folder / file).is_file():
            raise BackupUnavailable(f"the latest backup in {target} has no {file}")
        restore(url, folder / file)
    return True


class BackupScheduler:
    """Backs up a store in a daemon thread: after ``every_writes`` write transactions or
    ``interval_s`` seconds since the last try, whichever comes first, and only if the database
    changed since the last backup. A failed backup is logged and kept in ``last_error``; the next
    one is tried on schedule.

    "Changed" is the snapshots' version (``db.snapshots``) on the scheduler's own connection:
    SQLite's ``PRAGMA data_version``, which moves when any other connection, in any process,
    commits, read in the same transaction the snapshot is copied in; PostgreSQL's current
    transaction snapshot, read just before ``pg_dump`` starts. Either can move without new data
    (a WAL checkpoint; a rolled-back write, another database on the server): then one backup too
    many is taken, never one too few; so is the first, as what the target holds is not known at
    start.
    Writes are counted with engine events on ``store.engine`` (this process only; other
    processes' writes are backed up on the interval). The scheduler writes nothing to the store:
    recording each backup as an export would itself be a change, and would make every backup
    look necessary.
    """

    def __init__(
        self,
        store: Store,
        target: BackupTarget,
        interval_s: float = INTERVAL_S,
        every_writes: int = EVERY_WRITES,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"backup interval must be positive, not {interval_s}")
        if every_writes < 1:
            raise ValueError(f"backups every N writes needs N >= 1, not {every_writes}")
        self.store, self.target = store, target
        self.interval_s, self.every_writes = interval_s, every_writes
        self.last_result: BackupResult | None = None
        self.last_error: Exception | None = None
        self._snapshots = open_snapshots(store.url)
        self._backed_up: object = None  # the version the last snapshot holds; None: unknown
        self._writes = 0  # write transactions committed in this process since the last try
        self._lock = threading.RLock()  # re-entrant: a SIGTERM handler may interrupt a backup
        self._running = False  # a backup is being taken (by the thread holding the lock)
        self._closed = False
        self._pending_signal: tuple[int, FrameType | None] | None = None
        self._previous_sigterm: Any = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="eotd-backup", daemon=True)

    def start(self) -> BackupScheduler:
        event.listen(self.store.engine, "commit", _mark_write)
        event.listen(self.store.engine, "checkin", self._count_write)
        self._thread.start()
        return self

    def backup_on_exit(self) -> BackupScheduler:
        """Take a last backup, if anything changed, when the interpreter exits normally and (when
        called from the main thread) on SIGTERM. The SIGTERM handler then hands over to the one
        it replaced, or, if that was the default, ends the process by SIGTERM as before."""
        # Not atexit: its hooks run after concurrent.futures stops taking work, and exports and
        # huggingface_hub uploads use thread pools. threading's exit hooks run before that, last
        # registered first: so register after concurrent.futures has registered its own.
        import concurrent.futures.thread  # noqa: F401

        threading._register_atexit(self.stop)
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, self._on_sigterm)
        return self

    def run_once(self) -> BackupResult | None:
        """Back up now if the database changed since the last backup; the backup taken, else
        None (nothing changed, the scheduler is stopped, or it failed: see ``last_error``)."""
        with self._lock:
            if self._running or self._closed:
                return None
            self._running = True
            try:
                result = self._backup_if_changed()
            finally:
                self._running = False
                pending, self._pending_signal = self._pending_signal, None
        if pending is not None:
            self._hand_over_sigterm(*pending)
        return result

    def stop(self, final_backup: bool = True) -> None:
        """Stop the thread, taking a last backup first (by default) if anything changed. Undoes
        :meth:`backup_on_exit`; calling it again does nothing."""
        with self._lock:
            if self._stop.is_set():
                return
            self._stop.set()
        self._wake.set()
        if self._thread.ident is not None:
            event.remove(self.store.engine, "commit", _mark_write)
            event.remove(self.store.engine, "checkin", self._count_write)
            self._thread.join()
        if final_backup:
            self.run_once()
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == self._on_sigterm
        ):
            signal.signal(signal.SIGTERM, self._previous_sigterm)
        with self._lock:
            self._closed = True
            self._snapshots.close()

    def _backup_if_changed(self) -> BackupResult | None:
        self._writes = 0
        try:
            if self._backed_up is not None and self._snapshots.version() == self._backed_up:
                return None
            self.last_result, self._backed_up = _take(
                self.store, self.target, self._snapshots, "backup"
            )
        except Exception as exc:
            log.exception("backup failed")
            self.last_error = exc
            return None
        self.last_error = None
        return self.last_result

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if not self._stop.is_set():
                self.run_once()

    def _count_write(self, _dbapi_connection: Any, record: Any) -> None:
        """Pool check-in, after the transaction has committed: count it if it wrote."""
        if record is not None and record.info.pop(_WROTE, False):
            self._writes += 1
            if self._writes >= self.every_writes:
                self._wake.set()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        with self._lock:  # waits for a backup in another thread; re-enters one in this thread
            if self._running:  # the signal interrupted a backup here: end after it
                self._pending_signal = (signum, frame)
                return
        self.run_once()
        self._hand_over_sigterm(signum, frame)

    def _hand_over_sigterm(self, signum: int, frame: FrameType | None) -> None:
        """Do what SIGTERM did before :meth:`backup_on_exit`."""
        previous = self._previous_sigterm
        if callable(previous):
            previous(signum, frame)
        elif previous != signal.SIG_IGN:  # SIG_DFL, or a handler not set from Python
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)


def _mark_write(connection: Connection) -> None:
    """Engine commit (before it happens): flag connections whose transaction wrote."""
    if connection.get_execution_options().get(WRITE):
        connection.info[_WROTE] = True


def target_of(settings: StoreSettings) -> BackupTarget | None:
    """The backup target the settings name, if any (a Hub repo before a folder)."""
    if settings.backup_repo:
        return HfDatasetRepo(settings.backup_repo, token=settings.hf_token)
    if settings.backup_dir:
        return LocalFolder(Path(settings.backup_dir))
    return None


def open_store_with_backups(settings: StoreSettings) -> tuple[Store, BackupScheduler | None]:
    """Open the store the way the app does on a host with a wiped disk. Without a backup target
    configured this is just ``Store(settings=settings)``. With one, when the database holds no
    data (a missing SQLite file, a PostgreSQL database without tables) the latest backup is
    restored first (none yet: start empty, logged), and a target that cannot be read raises
    :class:`BackupUnavailable` before any store is opened. Then backups run on schedule, on
    SIGTERM and at exit."""
    target = target_of(settings)
    if target is None:
        return Store(settings=settings), None
    if has_data(settings.url):
        log.info("keeping the existing database; backups go to %s", target)
    elif restore_latest(target, settings.url):
        log.info("restored the database from the latest backup in %s", target)
    else:
        log.info("no backup in %s yet: starting with an empty store", target)
    store = Store(settings=settings)
    scheduler = BackupScheduler(
        store, target, settings.backup_interval_s, settings.backup_every_writes
    )
    return store, scheduler.start().backup_on_exit()
