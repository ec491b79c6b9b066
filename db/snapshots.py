"""Consistent copies of a live database, and putting one back: what a backup holds.

SQLite is copied with its online backup API into ``eotd.sqlite3``; PostgreSQL with ``pg_dump``
(custom format, one consistent snapshot while the app writes) into ``eotd.pgdump``, restored with
``pg_restore`` into an empty database. Each kind also tells whether anything committed since a
copy (:meth:`Snapshots.version`), so that a scheduler backs up only what changed.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Protocol

import psycopg
from sqlalchemy import URL, make_url

from db.connection import sqlite_path
from db.local_postgres import postgres_program


class Snapshots(Protocol):
    """Copies of one database."""

    file: str
    """The copy's file name inside a backup folder."""

    def version(self) -> object:
        """A value that moves whenever anything commits (it may also move without new data)."""
        ...

    def take(self, folder: Path) -> object:
        """Write a consistent copy to ``folder / file``; return the :meth:`version` it holds at
        least (a later version means the copy may lack something)."""
        ...

    def close(self) -> None: ...


class SqliteSnapshots:
    """Copies of a SQLite file through one read-only connection, usable from any thread."""

    file = "eotd.sqlite3"

    def __init__(self, db_file: Path) -> None:
        self._source = sqlite3.connect(
            db_file, timeout=30, isolation_level=None, check_same_thread=False
        )

    def version(self) -> int:
        """``PRAGMA data_version``: moves when any other connection, in any process, commits."""
        return self._source.execute("PRAGMA data_version").fetchone()[0]

    def take(self, folder: Path) -> int:
        """The online backup API, in one read transaction; the data version is read in the same
        transaction, so it names exactly the state copied."""
        target = sqlite3.connect(folder / self.file)
        try:
            self._source.execute("BEGIN")
            try:
                version = self.version()  # starts the read transaction the backup then uses
                self._source.backup(target)
            finally:
                self._source.execute("COMMIT")
        finally:
            target.close()
        return version

    def close(self) -> None:
        self._source.close()


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A SQLAlchemy PostgreSQL URL as a libpq connection URI for ``pg_dump``/``pg_restore``, and
    the environment that carries its password (never on a command line)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    uri = URL.create(
        "postgresql", parsed.username, None, parsed.host, parsed.port, parsed.database,
        parsed.query,
    )  # fmt: skip
    return uri.render_as_string(hide_password=False), env


def _run(program: str, args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(postgres_program(program)), *args], capture_output=True, text=True, env=env,
        timeout=3600, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")


class PostgresSnapshots:
    """Copies of a PostgreSQL database with ``pg_dump``."""

    file = "eotd.pgdump"

    def __init__(self, url: str) -> None:
        self.uri, self._env = libpq(url)
        self._connection = psycopg.connect(self.uri, password=self._env.get("PGPASSWORD"))
        self._connection.autocommit = True

    def version(self) -> str:
        """The server's current snapshot (``pg_current_snapshot``: the next transaction id and
        the writing transactions still in progress): it moves when a transaction that writes
        starts or ends, never on reads, and is read before ``pg_dump`` copies, so a transaction
        that commits later moves it again. It is the whole server's: another database's writes
        move it too, and then a backup too many is taken, never one too few."""
        return self._connection.execute("SELECT pg_current_snapshot()::text").fetchone()[0]

    def take(self, folder: Path) -> str:
        """``pg_dump`` in its own consistent snapshot, taken after the version is read: the copy
        holds everything committed before that version."""
        version = self.version()
        args = ["--format=custom", "--no-owner", "--no-acl", f"--file={folder / self.file}"]
        _run("pg_dump", [*args, self.uri], self._env)
        return version

    def close(self) -> None:
        self._connection.close()


def open_snapshots(url: str) -> Snapshots:
    """Snapshots of the database at ``url`` (SQLite or PostgreSQL)."""
    db_file = sqlite_path(url)
    if db_file is not None:
        return SqliteSnapshots(db_file)
    backend = make_url(url).get_backend_name()
    if backend != "postgresql":
        raise ValueError(f"backups snapshot SQLite or PostgreSQL databases, not {backend}")
    return PostgresSnapshots(url)


def snapshot_file(url: str) -> str:
    """The file name a backup of ``url``'s kind of database holds."""
    return SqliteSnapshots.file if sqlite_path(url) else PostgresSnapshots.file


def has_data(url: str) -> bool:
    """Whether the database at ``url`` exists with any table: it is never restored over."""
    db_file = sqlite_path(url)
    if db_file is not None:
        return db_file.exists()
    uri, env = libpq(url)
    with psycopg.connect(uri, password=env.get("PGPASSWORD")) as connection:
        query = "SELECT EXISTS (SELECT 1 FROM pg_tables WHERE schemaname = current_schema())"
        return bool(connection.execute(query).fetchone()[0])


def restore(url: str, copy: Path) -> None:
    """Put the copy ``copy`` (a backup's file) into the database at ``url``, which must hold no
    data yet (:func:`has_data`): a SQLite file is moved into place whole; PostgreSQL's is loaded
    in one transaction, so a failure leaves the database empty."""
    db_file = sqlite_path(url)
    if db_file is not None:
        db_file.parent.mkdir(parents=True, exist_ok=True)
        partial = db_file.with_suffix(".restoring")
        shutil.copyfile(copy, partial)
        partial.replace(db_file)
        return
    uri, env = libpq(url)
    args = ["--no-owner", "--no-acl", "--single-transaction", "--exit-on-error"]
    _run("pg_restore", [*args, f"--dbname={uri}", str(copy)], env)
