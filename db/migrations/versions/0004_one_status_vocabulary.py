"""One word for each outcome of a thought: a chain of thought that answered is "answered".

The store used to judge corrections with its own copy of the engine call, which called an
answered chain of thought "ok" where the student called it "answered"; both now come from
``eotd.execute`` (``eotd.execution.Status``). This rewrites the old word in corrections (before
and after) and generations of chain-of-thought rows; nothing else changes, and no row is lost.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REWRITES = (
    ("corrections", "before_status"),
    ("corrections", "after_status"),
    ("generations", "status"),
)


def _rename(old: str, new: str, tables: Sequence[tuple[str, str]]) -> None:
    for table, column in tables:
        op.execute(
            f"UPDATE {table} SET {column} = '{new}' WHERE thought = 'cot' AND {column} = '{old}'"
        )


def upgrade() -> None:
    _rename("ok", "answered", REWRITES)


def downgrade() -> None:
    # The student always wrote "answered" for generations; only corrections used "ok".
    _rename("answered", "ok", REWRITES[:2])
