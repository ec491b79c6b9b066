"""Fixtures for the store tests: real SQLite files in pytest's tmp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from db.store import Store
from tests.db.support import sqlite_url


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(sqlite_url(tmp_path / "eotd.sqlite3"))
    yield s
    s.close()


@pytest.fixture
def problem_id(store: Store) -> int:
    """GSM8K test 0, gold answer 18."""
    question = "Janet's ducks lay 16 eggs per day. She eats three and bakes with four. She sells "
    question += "the rest for $2 each. How much does she make every day?"
    return store.add_problem(question, 18, "gsm8k", "gsm8k-test-0").id
