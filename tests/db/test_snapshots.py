"""What a backup copies: the PostgreSQL tools get the database's address, never its password."""

from __future__ import annotations

from db.snapshots import libpq, snapshot_file


def test_pg_tools_get_the_password_in_their_environment_not_their_arguments():
    uri, env = libpq("postgresql+psycopg://team:s3cret@db.internal:5433/eotd?sslmode=require")
    assert uri == "postgresql://team@db.internal:5433/eotd?sslmode=require"
    assert "s3cret" not in uri and env["PGPASSWORD"] == "s3cret"


def test_each_kind_of_database_has_its_own_snapshot_file():
    assert snapshot_file("sqlite:////data/eotd.sqlite3") == "eotd.sqlite3"
    assert snapshot_file("postgresql+psycopg://team@db/eotd") == "eotd.pgdump"
