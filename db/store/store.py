"""The correction store: the one API the app and the retraining script use to keep human work.

Every method runs in its own short transaction and returns detached rows or plain dataclasses that
are safe to read from any thread. Write transactions that meet a locked SQLite database wait and
retry with backoff; a user only sees :class:`StoreBusy` if the database stays locked for minutes.
One :class:`Store` holds the parts, one module per aggregate: problems and generations
(``problems``), model versions (``model_versions``), corrections and reviews (``corrections``,
with the review state machine), and what approved corrections went to (``exports``).
"""

from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, sessionmaker

from db.connection import WRITE, make_engine, sqlite_path
from db.migrate import upgrade
from db.models import Correction, Export, Generation, ModelVersion, Problem
from db.settings import StoreSettings
from db.store.corrections import TRANSITIONS, CorrectionStore, conflicting_problem_ids
from db.store.exports import ExportStore, unused_approved_ids
from db.store.model_versions import ModelVersionStore
from eotd.prompts import THOUGHTS


@dataclass(frozen=True)
class Stats:
    """Counts for the dashboard."""

    problems: int
    generations: int
    corrections: int
    by_status: dict[str, int]
    by_thought: dict[str, int]
    unsolved: int
    matches_gold: int
    annotators: int
    conflicts: int
    approved_unused: int
    exports: int
    model_versions: int
    promoted: str | None


class Store(ExportStore, CorrectionStore, ModelVersionStore):
    """The correction store at ``url``, else at ``settings.url``.

    ``settings`` (``db.settings``): how SQLite commits and whether annotators may review their
    own corrections; an entry point reads them from the environment once and passes them. With
    neither ``url`` nor ``settings`` (a script), they are read from the environment here; with a
    ``url`` alone, the defaults apply. ``allow_self_review`` overrides the setting.
    ``upgrade_schema`` brings the schema to the latest migration first (what the app does at
    start). ``lock_wait_s`` is how long a write keeps retrying a locked database before giving up.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: StoreSettings | None = None,
        upgrade_schema: bool = True,
        allow_self_review: bool | None = None,
        busy_timeout_s: float = 30.0,
        lock_wait_s: float = 300.0,
        solve_timeout_s: float = 5.0,
    ) -> None:
        if settings is None:
            settings = StoreSettings() if url else StoreSettings.from_env()
        self.url = url or settings.url
        self.engine = make_engine(self.url, busy_timeout_s, settings.sqlite_synchronous)
        if upgrade_schema:
            upgrade(self.engine)
        self.allow_self_review = (
            settings.allow_self_review if allow_self_review is None else allow_self_review
        )
        self.lock_wait_s = lock_wait_s
        self.solve_timeout_s = solve_timeout_s
        # SQLite has one writer at a time: this process's threads queue here, in order, rather
        # than polling the file lock under the busy timeout.
        self._write_gate = threading.Lock() if sqlite_path(self.url) else nullcontext()
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(**{WRITE: True}), expire_on_commit=False
        )

    def stats(self) -> Stats:
        """Counts of everything, for the dashboard."""

        def work(s: Session) -> Stats:
            def count(query: Select[Any]) -> int:
                return s.scalar(select(func.count()).select_from(query.subquery())) or 0

            by_status = dict(
                s.execute(select(Correction.status, func.count()).group_by(Correction.status)).all()
            )
            by_thought = dict(
                s.execute(
                    select(Correction.thought, func.count()).group_by(Correction.thought)
                ).all()
            )
            promoted = s.scalar(select(ModelVersion.name).where(ModelVersion.promoted))
            return Stats(
                problems=count(select(Problem.id)),
                generations=count(select(Generation.id)),
                corrections=sum(by_status.values()),
                by_status={status: by_status.get(status, 0) for status in TRANSITIONS},
                by_thought={thought: by_thought.get(thought, 0) for thought in THOUGHTS},
                unsolved=count(select(Correction.id).where(Correction.unsolved)),
                matches_gold=count(select(Correction.id).where(Correction.matches_gold)),
                annotators=count(select(Correction.annotator).distinct()),
                conflicts=len(conflicting_problem_ids(s)),
                approved_unused=count(unused_approved_ids()),
                exports=count(select(Export.id)),
                model_versions=count(select(ModelVersion.id)),
                promoted=promoted,
            )

        return self._run(work, write=False)
