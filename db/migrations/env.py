"""Alembic environment: uses the connection handed over by ``db.migrate`` or, from the CLI,
``EOTD_DB_URL`` / the default SQLite file."""

from alembic import context

from db.connection import default_url, make_engine
from db.models import Base

connection = context.config.attributes.get("connection")


def _run(conn: object) -> None:
    context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    engine = make_engine(default_url())
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()
