"""How to connect to the store's database safely from many threads and processes (where it
lives: ``db.settings``).

SQLite connections get WAL mode (readers never block the writer), a busy timeout, foreign keys and
``synchronous=FULL``: a committed correction survives even a power cut. ``NORMAL``
(``EOTD_SQLITE_SYNCHRONOUS``) trades that for speed (commits skip the fsync; still safe when the
app crashes or is killed, but a power cut may undo the last commits). The driver's own transaction
handling is switched off so that we emit ``BEGIN`` ourselves: write transactions use
``BEGIN IMMEDIATE``, which takes the write lock up front and waits for it under the busy timeout,
instead of failing with "database is locked" when a read transaction later tries to write.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

from db.settings import SYNCHRONOUS

WRITE = "eotd_write"
"""Execution option: this connection's transactions write (``BEGIN IMMEDIATE`` on SQLite)."""


def sqlite_path(url: str) -> Path | None:
    """The database file of a SQLite URL, or None for any other database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    if not parsed.database or parsed.database == ":memory:" or parsed.database.startswith("file:"):
        raise ValueError(
            f"{url!r}: the store needs a SQLite file shared by all threads, "
            "not an in-memory database; use sqlite:////path/to/eotd.sqlite3"
        )
    return Path(parsed.database)


def make_engine(url: str, busy_timeout_s: float = 30.0, synchronous: str = "FULL") -> Engine:
    """An engine for ``url``; for SQLite, with the pragmas and transaction control above."""
    path = sqlite_path(url)
    if path is None:
        return create_engine(url, pool_pre_ping=True)
    if synchronous not in SYNCHRONOUS:
        raise ValueError(f"synchronous={synchronous!r}: use FULL, NORMAL or EXTRA")
    path.parent.mkdir(parents=True, exist_ok=True)
    # Room for every Gradio worker thread to read at once; writers queue in the Store anyway.
    engine = create_engine(
        url, connect_args={"timeout": busy_timeout_s}, pool_size=8, max_overflow=56
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute(f"PRAGMA synchronous = {synchronous}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine
