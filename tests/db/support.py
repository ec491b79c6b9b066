"""Constants and helpers shared by the store tests."""

from __future__ import annotations

import sqlite3
from pathlib import Path

BACKENDS = ("sqlite", "postgresql")
"""The store's backends; tests that take ``backend`` (or ``new_url``, ``db_url``, ``store``) run
on each."""
HEAD_TEMPLATE = "eotd_head"
"""A PostgreSQL database at the latest schema, copied for each test that does not test
migrations."""

EOT_18 = "% eggs left\nleft = 16 - 3 - 4\nmoney = left * 2\nans = money\n"
"""An equation system for GSM8K test 0 (answer 18)."""


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def integrity(path: Path) -> str:
    """``PRAGMA integrity_check`` of a SQLite file, opened with plain sqlite3."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()
