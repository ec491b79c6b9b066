"""SQLAlchemy 2.0 typed ORM models of the correction store.

The schema at head; the migrations in ``db/migrations/versions`` build it step by step and a test
checks that the two agree. Corrections are append-only: their text and engine results are written
once; only ``status`` changes, and it always mirrors the latest row in ``reviews``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

"""The thought names: chain of thought, program of thought, equation of thought."""

PENDING, APPROVED, REJECTED, WITHDRAWN = "pending", "approved", "rejected", "withdrawn"
STATUSES = (PENDING, APPROVED, REJECTED, WITHDRAWN)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always read back as aware UTC (SQLite keeps no zone)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware time")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Problem(Base):
    """A math word problem, from a dataset (``source`` + ``source_id``) or typed in the app."""

    __tablename__ = "problems"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_problems_source_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    question: Mapped[str] = mapped_column(Text)
    question_hash: Mapped[str] = mapped_column(String(64), index=True)
    gold_answer: Mapped[float | None] = mapped_column(Float)
    source: Mapped[str | None] = mapped_column(String(64), index=True)
    source_id: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ModelVersion(Base):
    """A trained student: base model, adapter, what it was trained on and how it scored."""

    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    base_model: Mapped[str] = mapped_column(String(255))
    adapter_path: Mapped[str | None] = mapped_column(String(1024))
    training_summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    promoted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Generation(Base):
    """One thought a model wrote for a problem, with the engine's verdict on it."""

    __tablename__ = "generations"

    id: Mapped[int] = mapped_column(primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"))
    thought: Mapped[str] = mapped_column(String(8))
    raw_text: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(32))
    answer: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Correction(Base):
    """A person's corrected thought, re-solved by the engine before it was stored (append-only).

    ``before_*`` is the engine's result on the original text (or the generation's recorded one),
    ``after_*`` the result on the corrected text. ``unsolved`` marks a correction kept although
    the engine could not solve it; such a correction can never be approved.
    """

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(primary_key=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    generation_id: Mapped[int | None] = mapped_column(ForeignKey("generations.id"))
    thought: Mapped[str] = mapped_column(String(8))
    original_text: Mapped[str | None] = mapped_column(Text)
    corrected_text: Mapped[str] = mapped_column(Text)
    before_status: Mapped[str | None] = mapped_column(String(32))
    before_answer: Mapped[float | None] = mapped_column(Float)
    before_error: Mapped[str | None] = mapped_column(Text)
    after_status: Mapped[str] = mapped_column(String(32))
    after_answer: Mapped[float | None] = mapped_column(Float)
    after_error: Mapped[str | None] = mapped_column(Text)
    matches_gold: Mapped[bool | None] = mapped_column(Boolean)
    unsolved: Mapped[bool] = mapped_column(Boolean, default=False)
    annotator: Mapped[str] = mapped_column(String(128), index=True)
    annotator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # added by 0003
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    problem: Mapped[Problem] = relationship(lazy="raise")

    @property
    def question(self) -> str:
        """The problem's question (the store loads the problem with every correction it returns)."""
        return self.problem.question


Index("ix_corrections_queue", Correction.status, Correction.created_at, Correction.id)
Index(
    "uq_problems_typed_in_question",
    Problem.question_hash,
    unique=True,
    sqlite_where=Problem.source_id.is_(None),
    postgresql_where=Problem.source_id.is_(None),
)
Index(
    "uq_model_versions_one_promoted",
    ModelVersion.promoted,
    unique=True,
    sqlite_where=ModelVersion.promoted,
    postgresql_where=ModelVersion.promoted,
)


class Review(Base):
    """A reviewer's decision on a correction; the latest one sets the correction's status."""

    __tablename__ = "reviews"

    id: Mapped[int] = mapped_column(primary_key=True)
    correction_id: Mapped[int] = mapped_column(ForeignKey("corrections.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(128))
    reviewer_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))  # added by 0003
    decision: Mapped[str] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Export(Base):
    """One export of approved corrections: when, by whom, where, and exactly which ones."""

    __tablename__ = "exports"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_by: Mapped[str] = mapped_column(String(128))
    path: Mapped[str] = mapped_column(String(1024))
    count: Mapped[int] = mapped_column(Integer)
    correction_ids: Mapped[list[int]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class CorrectionUse(Base):
    """Which approved corrections went into training which model version (added by revision 2)."""

    __tablename__ = "correction_uses"

    correction_id: Mapped[int] = mapped_column(ForeignKey("corrections.id"), primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id"), primary_key=True, index=True
    )
    used_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class User(Base):
    """An account of a self-hosted studio (or a Hugging Face user given a role); added by 0003.

    ``name_key`` is the name case-folded: two accounts cannot differ only in case."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    name_key: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    provider: Mapped[str] = mapped_column(String(16), default="local")  # "local" or "hf"
    password_hash: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One state change: who (and with which role, from where) did what to which row; written in
    the same transaction as the change. Append-only (added by 0003)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    user_name: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str] = mapped_column(String(128))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    client: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
