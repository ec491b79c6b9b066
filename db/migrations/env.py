"""Alembic environment: uses the connection handed over by ``db.migrate`` or, from the CLI, the
environment's store (``EOTD_DB_URL`` / the default SQLite file: ``db.settings``)."""

from alembic import context

from db.connection import make_engine
from db.models import Base
from db.settings import StoreSettings

connection = context.config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    settings = StoreSettings.from_env()
    engine = make_engine(settings.url, synchronous=settings.sqlite_synchronous)
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
