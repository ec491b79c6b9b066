"""Read-only views of the store that the review screen needs beyond :class:`db.Store`'s API:
corrections in any status with filters, the filter choices, and corrections per day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session, contains_eager

from db import Correction, Problem, Store

ALL = "all"


def corrections(
    store: Store,
    status: str = "pending",
    annotator: str | None = None,
    dataset: str | None = None,
    limit: int = 200,
) -> list[Correction]:
    """Corrections (with their problems), oldest first, filtered by status (or ``"all"``),
    annotator and dataset (the problem's source; ``"typed in"`` for questions without one)."""
    query = select(Correction).join(Correction.problem).options(contains_eager(Correction.problem))
    if status and status != ALL:
        query = query.where(Correction.status == status)
    if annotator and annotator != ALL:
        query = query.where(Correction.annotator == annotator)
    if dataset and dataset != ALL:
        query = query.where(
            Problem.source.is_(None) if dataset == "typed in" else Problem.source == dataset
        )
    query = query.order_by(Correction.created_at, Correction.id).limit(limit)
    with Session(store.engine, expire_on_commit=False) as session:
        return list(session.scalars(query))


def filter_choices(store: Store) -> tuple[list[str], list[str]]:
    """The annotators and datasets that have corrections."""
    with Session(store.engine) as session:
        annotators = sorted(session.scalars(select(Correction.annotator).distinct()))
        sources = session.scalars(
            select(Problem.source).join(Correction, Correction.problem_id == Problem.id).distinct()
        )
        datasets = sorted({s or "typed in" for s in sources})
    return annotators, datasets


def corrections_per_day(store: Store) -> list[tuple[date, str, int]]:
    """(day, status, count) of corrections, by the day they were made."""
    day = func.date(Correction.created_at)
    query = (
        select(day, Correction.status, func.count()).group_by(day, Correction.status).order_by(day)
    )
    with Session(store.engine) as session:
        return [(date.fromisoformat(str(d)), s, n) for d, s, n in session.execute(query)]
