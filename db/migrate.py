"""Schema migrations with Alembic, configured in code (``db/alembic.ini`` is only for the CLI).

The app and the store call :func:`upgrade` at start. The whole upgrade runs in one transaction
(DDL is transactional on SQLite and PostgreSQL), taken with ``BEGIN IMMEDIATE`` on SQLite and
under an advisory lock on PostgreSQL, so processes starting together upgrade once, one after the
other, and a failed upgrade leaves the old schema untouched.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine

from db.connection import WRITE, make_engine
from db.settings import StoreSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
UPGRADE_LOCK = 0x454F5444  # "EOTD": the PostgreSQL advisory lock that serialises upgrades


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for our migrations, bound to ``connection`` when given."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def upgrade(url: str | Engine | None = None, revision: str = "head") -> None:
    """Bring the database at ``url`` (default: the environment's, ``db.settings``) to
    ``revision``."""
    engine = url if isinstance(url, Engine) else make_engine(url or StoreSettings.from_env().url)
    try:
        writer = engine.execution_options(**{WRITE: True})
        with writer.connect() as connection, connection.begin():
            if connection.dialect.name == "postgresql":  # one upgrade at a time, held to commit
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({UPGRADE_LOCK})")
            command.upgrade(alembic_config(connection), revision)
    finally:
        if engine is not url:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
