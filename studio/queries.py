"""Read-only views of the store that the review screen needs beyond :class:`db.Store`'s API:
the filter choices and corrections per day."""

from __future__ import annotations

from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import Correction, Problem, Store
from db.store.corrections import TYPED_IN


def filter_choices(store: Store) -> tuple[list[str], list[str]]:
    """The annotators and datasets that have corrections."""
    with Session(store.engine) as session:
        annotators = sorted(session.scalars(select(Correction.annotator).distinct()))
        sources = session.scalars(
            select(Problem.source).join(Correction, Correction.problem_id == Problem.id).distinct()
        )
        datasets = sorted({s or TYPED_IN for s in sources})
    return annotators, datasets


def corrections_per_day(store: Store) -> list[tuple[date, str, int]]:
    """(day, status, count) of corrections, by the day they were made."""
    day = func.date(Correction.created_at)
    query = (
        select(day, Correction.status, func.count()).group_by(day, Correction.status).order_by(day)
    )
    with Session(store.engine) as session:
        return [(date.fromisoformat(str(d)), s, n) for d, s, n in session.execute(query)]
