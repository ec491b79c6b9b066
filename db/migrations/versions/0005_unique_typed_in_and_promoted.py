"""Rules the database keeps itself, so that they hold on PostgreSQL too: one row per typed-in
question, and at most one promoted model version.

On SQLite the store's single writer kept both; on PostgreSQL two people typing the same new
question at the same instant could each insert it, and two promotions at once could leave two
models promoted. Partial unique indexes now refuse the second row (the store then reads the
first). Typed-in duplicates already stored are merged first: the oldest row keeps its id, and the
generations and corrections of the others move to it; nothing else is deleted.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TYPED_IN = sa.text("source_id IS NULL")
PROMOTED = sa.text("promoted")


def _merge_typed_in_duplicates() -> None:
    duplicates = (
        "SELECT p.id FROM problems p WHERE p.source_id IS NULL AND p.id > (SELECT MIN(k.id) "
        "FROM problems k WHERE k.source_id IS NULL AND k.question_hash = p.question_hash)"
    )
    for table in ("generations", "corrections"):
        oldest = (
            "SELECT MIN(k.id) FROM problems k JOIN problems d ON k.question_hash = "
            f"d.question_hash WHERE d.id = {table}.problem_id AND k.source_id IS NULL"
        )
        op.execute(f"UPDATE {table} SET problem_id = ({oldest}) WHERE problem_id IN ({duplicates})")
    op.execute(f"DELETE FROM problems WHERE id IN ({duplicates})")
    # A second promoted version (only possible on PostgreSQL): keep the latest promotion.
    op.execute(
        "UPDATE model_versions SET promoted = false WHERE promoted AND id <> (SELECT id FROM "
        "model_versions WHERE promoted ORDER BY promoted_at DESC, id DESC LIMIT 1)"
    )


def upgrade() -> None:
    _merge_typed_in_duplicates()
    op.create_index(
        "uq_problems_typed_in_question",
        "problems",
        ["question_hash"],
        unique=True,
        sqlite_where=TYPED_IN,
        postgresql_where=TYPED_IN,
    )
    op.create_index(
        "uq_model_versions_one_promoted",
        "model_versions",
        ["promoted"],
        unique=True,
        sqlite_where=PROMOTED,
        postgresql_where=PROMOTED,
    )


def downgrade() -> None:
    op.drop_index("uq_model_versions_one_promoted", "model_versions")
    op.drop_index("uq_problems_typed_in_question", "problems")
