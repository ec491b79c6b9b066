"""Shared test setup: keep every test's files and caches inside pytest's tmp dirs, and a
PostgreSQL server for the tests that run on both of the store's backends."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from db.local_postgres import LocalPostgres, PostgresUnavailable
from db.migrate import upgrade
from tests.db.support import HEAD_TEMPLATE


@pytest.fixture(autouse=True)
def _isolated_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Point the store's default data dir at a temp folder so no test touches ./var."""
    monkeypatch.setenv("EOTD_DATA_DIR", str(tmp_path_factory.mktemp("eotd-data")))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark the tests that use the PostgreSQL server (``postgresql``; the quick loop leaves them
    out, CI runs them)."""
    for item in items:
        params = getattr(item, "callspec", None)
        on_postgres = params is not None and "postgresql" in params.id.split("-")
        if on_postgres or "postgres" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.postgresql)


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """The test session's PostgreSQL server (a throwaway cluster; one per xdist worker). Where it
    cannot start, the tests that need it are skipped here with the reason, and fail in CI, which
    must have it (``.ci/run`` installs it)."""
    try:
        server = LocalPostgres(durable=False).start()
    except PostgresUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must test PostgreSQL, but its server did not start: {exc}")
        pytest.skip(f"PostgreSQL did not start here: {exc}")
    upgrade(server.create_database(HEAD_TEMPLATE))
    yield server
    server.stop()
