"""The throwaway PostgreSQL server the tests and benchmarks use."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from db.local_postgres import LocalPostgres, PostgresUnavailable


@pytest.mark.stress
def test_a_server_is_served_on_its_own_socket_and_gone_after_use(postgres: LocalPostgres):
    """(``postgres``: this needs the server installed, like every PostgreSQL test.)"""
    with LocalPostgres(durable=False) as server:
        root = server.root
        url = server.create_database("notes")
        assert url.startswith("postgresql+psycopg://postgres@/notes?host=")
        with server.connect("notes") as connection:
            assert connection.execute("SHOW listen_addresses").fetchone() == ("",)  # no TCP
            assert connection.execute("SHOW fsync").fetchone() == ("off",)
    assert root is not None and not root.exists()


def test_a_server_that_cannot_start_says_why_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    made: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def mkdtemp(prefix: str) -> str:
        made.append(Path(real_mkdtemp(prefix=prefix, dir=tmp_path)))
        return str(made[-1])

    monkeypatch.setattr(tempfile, "mkdtemp", mkdtemp)
    with pytest.raises(PostgresUnavailable, match="initdb"):
        LocalPostgres(bindir=tmp_path / "no-such-bin").start()
    assert len(made) == 1 and not made[0].exists()
