"""Index for the review queue; which corrections trained which model version.

The pending queue filters on status and pages in creation order: ``ix_corrections_queue`` serves it
without a sort. ``correction_uses`` lets the retraining script find approved corrections that no
model has been trained on yet.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from db.models import UTCDateTime

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_corrections_queue", "corrections", ["status", "created_at", "id"])
    op.create_table(
        "correction_uses",
        sa.Column("correction_id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["correction_id"],
            ["corrections.id"],
            name="fk_correction_uses_correction_id_corrections",
        ),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_correction_uses_model_version_id_model_versions",
        ),
        sa.PrimaryKeyConstraint("correction_id", "model_version_id", name="pk_correction_uses"),
    )
    op.create_index("ix_correction_uses_model_version_id", "correction_uses", ["model_version_id"])


def downgrade() -> None:
    op.drop_table("correction_uses")
    op.drop_index("ix_corrections_queue", table_name="corrections")
