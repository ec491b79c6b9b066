"""The store's settings: every ``EOTD_*`` variable the store and its backups read, in one place.

Entry points (the app, the CLIs, retraining) call :meth:`StoreSettings.from_env` once and pass the
result down; nothing else in ``db/`` reads the environment. ``Store()`` without a URL or settings
is the one shortcut, for scripts: it reads them here too.

| variable | field | default |
|---|---|---|
| ``EOTD_DATA_DIR`` | ``data_dir`` | ``var`` |
| ``EOTD_DB_URL`` | ``db_url`` (SQLAlchemy URL) | the SQLite file ``eotd.sqlite3`` in the data dir |
| ``EOTD_SQLITE_SYNCHRONOUS`` | ``sqlite_synchronous``: FULL, NORMAL or EXTRA | FULL |
| ``EOTD_ALLOW_SELF_REVIEW`` | ``allow_self_review`` | off |
| ``EOTD_BACKUP_REPO``, ``HF_TOKEN`` | ``backup_repo``, ``hf_token`` | none |
| ``EOTD_BACKUP_DIR`` | ``backup_dir`` | none |
| ``EOTD_BACKUP_INTERVAL`` | ``backup_interval_s`` | 60 |
| ``EOTD_BACKUP_EVERY_WRITES`` | ``backup_every_writes`` | 20 |
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

DB_FILE = "eotd.sqlite3"
SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")
TRUE = ("1", "true", "yes", "on")
INTERVAL_S = 60.0
"""Default ``EOTD_BACKUP_INTERVAL``: at most a minute of work is lost when a Space's disk goes."""
EVERY_WRITES = 20
"""Default ``EOTD_BACKUP_EVERY_WRITES``: a busy session is backed up sooner than the interval."""

T = TypeVar("T")


@dataclass(frozen=True)
class StoreSettings:
    """Where the store lives, how SQLite commits, who may review, and where backups go."""

    data_dir: Path = Path("var")
    db_url: str = ""  # "" = the SQLite file in data_dir
    sqlite_synchronous: str = "FULL"  # FULL: a commit survives a power cut; NORMAL: faster
    allow_self_review: bool = False  # annotators may review their own corrections
    backup_repo: str = ""  # a private Hugging Face dataset repo for backups
    backup_dir: str = ""  # or a folder
    hf_token: str | None = field(default=None, repr=False)
    backup_interval_s: float = INTERVAL_S  # at most this long after a change
    backup_every_writes: int = EVERY_WRITES  # or sooner, after this many writes

    def __post_init__(self) -> None:
        if self.sqlite_synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(
                f"EOTD_SQLITE_SYNCHRONOUS={self.sqlite_synchronous!r}: use FULL, NORMAL or EXTRA"
            )
        object.__setattr__(self, "sqlite_synchronous", self.sqlite_synchronous.upper())

    @property
    def url(self) -> str:
        """``db_url``, else the SQLite file in the data directory."""
        return self.db_url or f"sqlite:///{(self.data_dir / DB_FILE).resolve()}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        """The settings the environment gives; a malformed value is an error naming it."""
        env = os.environ if env is None else env  # read now: `datasets` can replace os.environ

        def number(name: str, default: T, convert: Callable[[str], T]) -> T:
            raw = env.get(name)
            if raw is None:
                return default
            try:
                return convert(raw)
            except ValueError:
                raise ValueError(f"{name}={raw!r} is not a number") from None

        return cls(
            data_dir=Path(env.get("EOTD_DATA_DIR", "var")),
            db_url=env.get("EOTD_DB_URL", ""),
            sqlite_synchronous=env.get("EOTD_SQLITE_SYNCHRONOUS", "FULL"),
            allow_self_review=env.get("EOTD_ALLOW_SELF_REVIEW", "").strip().lower() in TRUE,
            backup_repo=env.get("EOTD_BACKUP_REPO", ""),
            backup_dir=env.get("EOTD_BACKUP_DIR", ""),
            hf_token=env.get("HF_TOKEN"),
            backup_interval_s=number("EOTD_BACKUP_INTERVAL", INTERVAL_S, float),
            backup_every_writes=number("EOTD_BACKUP_EVERY_WRITES", EVERY_WRITES, int),
        )
