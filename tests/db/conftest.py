"""Fixtures for the store tests: every store test runs on a real SQLite file and on a real
PostgreSQL server (``postgres``, the test session's; a new database for each test)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from db.store import Store
from tests.db.support import BACKENDS, HEAD_TEMPLATE, sqlite_url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def new_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., str]]:
    """Makes databases of this test's backend: ``new_url()`` an empty one, ``new_url(head=True)``
    one already at the latest schema. They are dropped after the test."""
    made: list[str] = []
    server = request.getfixturevalue("postgres") if backend == "postgresql" else None

    def make(head: bool = False) -> str:
        name = f"t{uuid.uuid4().hex[:16]}"
        if server is None:
            return sqlite_url(tmp_path / f"{name}.sqlite3")
        made.append(name)
        with server.connect() as connection:
            template = f' TEMPLATE "{HEAD_TEMPLATE}"' if head else ""
            connection.execute(f'CREATE DATABASE "{name}"{template}')
        return server.url(name)

    yield make
    if server is not None:
        with server.connect() as connection:
            for name in made:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def db_url(new_url: Callable[..., str]) -> str:
    """A database at the latest schema, on this test's backend."""
    return new_url(head=True)


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    s = Store(db_url)
    yield s
    s.close()


@pytest.fixture
def problem_id(store: Store) -> int:
    """GSM8K test 0, gold answer 18."""
    question = "Janet's ducks lay 16 eggs per day. She eats three and bakes with four. She sells "
    question += "the rest for $2 each. How much does she make every day?"
    return store.add_problem(question, 18, "gsm8k", "gsm8k-test-0").id
