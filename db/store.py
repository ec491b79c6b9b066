"""The correction store: the one API the app and the retraining script use to keep human work.

Every method runs in its own short transaction and returns detached rows or plain dataclasses that
are safe to read from any thread. Write transactions that meet a locked SQLite database wait and
retry with backoff; a user only sees :class:`StoreBusy` if the database stays locked for minutes.

Review state machine (a correction's ``status`` always equals its latest review's decision):

=============  ================================  ===========================================
from           to                                rule
=============  ================================  ===========================================
pending        approved, rejected                a reviewer other than the annotator; only a
                                                 correction that solves can be approved
pending        withdrawn                         its annotator (``withdraw``): the app's delete
rejected       pending                           a reviewer re-opens it, with a note
rejected       withdrawn                         its annotator
approved       rejected                          a reviewer reverses it, with a note
withdrawn      (nothing)                         final: corrections are never deleted
=============  ================================  ===========================================

Everything else (approving twice, approving a rejected one without re-opening it, reviewing a
withdrawn one) raises :class:`ReviewError` saying why.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, contains_eager, sessionmaker

from db import audit
from db import export as export_io
from db.access import SYSTEM, Actor, as_actor
from db.connection import WRITE, default_url, make_engine, sqlite_path
from db.migrate import upgrade
from db.models import (
    APPROVED,
    PENDING,
    REJECTED,
    WITHDRAWN,
    AuditEntry,
    Correction,
    CorrectionUse,
    Export,
    Generation,
    ModelVersion,
    Problem,
    Review,
    utcnow,
)
from eotd.execution import ThoughtResult, execute
from eotd.prompts import THOUGHTS

T = TypeVar("T")

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED, WITHDRAWN}),
    REJECTED: frozenset({PENDING, WITHDRAWN}),
    APPROVED: frozenset({REJECTED}),
    WITHDRAWN: frozenset(),
}
"""Allowed status changes; see the module docstring."""

NOTE_REQUIRED = frozenset({(REJECTED, PENDING), (APPROVED, REJECTED)})
"""Changes that undo an earlier decision and so must say why."""

THOUGHT_LABELS = {"cot": "chain of thought", "pot": "program", "eot": "equation system"}


class StoreError(Exception):
    """Base class of the store's errors; the message is meant for the user."""


class InvalidInput(StoreError, ValueError):
    """Input the store refuses (an empty field, an unknown thought, a taken name)."""


class NotFound(StoreError, LookupError):
    """A problem, generation, correction or model version id that does not exist."""


class CorrectionRejected(StoreError, ValueError):
    """The engine could not solve a correction; nothing was stored."""

    def __init__(self, thought: str, verdict: ThoughtResult) -> None:
        self.thought = thought
        self.verdict = verdict
        where = f" (line {verdict.line})" if verdict.line else ""
        super().__init__(
            f"The corrected {THOUGHT_LABELS[thought]} does not solve: {verdict.status}{where}: "
            f"{verdict.error or 'no answer'}. Fix it, or keep it flagged as unsolved for review."
        )


class ReviewError(StoreError):
    """A review that the state machine does not allow."""


class StoreBusy(StoreError):
    """The database stayed locked longer than the store is willing to wait."""


def question_hash(question: str) -> str:
    """Hash of the question with whitespace normalised: the dedupe key for typed-in problems."""
    return hashlib.sha256(" ".join(question.split()).encode()).hexdigest()


@dataclass(frozen=True)
class Conflict:
    """Annotators whose corrections of one problem solve to different answers."""

    problem_id: int
    question: str
    gold_answer: float | None
    answers: list[float]
    corrections: list[Correction]

    @property
    def annotators(self) -> list[str]:
        return sorted({c.annotator for c in self.corrections})


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


@dataclass
class ImportReport:
    """What :meth:`Store.import_export` did."""

    path: str
    added: list[int] = field(default_factory=list)
    skipped: int = 0


_LOCKED = re.compile(r"database is locked|database table is locked|database is busy", re.I)

_LIVE = (Correction.status.in_((PENDING, APPROVED)), Correction.after_answer.is_not(None))
"""Corrections that take part in conflicts: not rejected or withdrawn, and solved."""


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


class Store:
    """The correction store at ``url`` (default ``EOTD_DB_URL`` or the SQLite file in the data dir).

    ``upgrade_schema`` brings the schema to the latest migration first (what the app does at
    start). ``allow_self_review`` lets an
    annotator review their own corrections (default from ``EOTD_ALLOW_SELF_REVIEW``).
    ``lock_wait_s`` is how long a write keeps retrying a locked database before giving up.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        upgrade_schema: bool = True,
        allow_self_review: bool | None = None,
        busy_timeout_s: float = 30.0,
        lock_wait_s: float = 300.0,
        solve_timeout_s: float = 5.0,
    ) -> None:
        self.url = url or default_url()
        self.engine = make_engine(self.url, busy_timeout_s=busy_timeout_s)
        if upgrade_schema:
            upgrade(self.engine)
        self.allow_self_review = (
            _env_flag("EOTD_ALLOW_SELF_REVIEW") if allow_self_review is None else allow_self_review
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

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def transaction(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run ``work(session)`` in one transaction (for the store's sibling modules: accounts)."""
        return self._run(work, write=write)

    def audit_log(self, limit: int = 200, action: str | None = None) -> list[AuditEntry]:
        """The newest audit rows first (see ``db.audit``)."""
        return self._run(lambda s: audit.recent(s, limit, action), write=False)

    def _run(self, work: Callable[[Session], T], *, write: bool = True) -> T:
        """Run ``work`` in one transaction, retrying it while the database is locked."""
        sessions = self._write if write else self._read
        gate = self._write_gate if write else nullcontext()
        deadline = time.monotonic() + self.lock_wait_s
        delay = 0.01
        while True:
            try:
                with gate, sessions() as session, session.begin():
                    return work(session)
            except OperationalError as exc:
                if not _LOCKED.search(str(exc.orig)):
                    raise
                if time.monotonic() > deadline:
                    raise StoreBusy(
                        f"the database stayed locked for {self.lock_wait_s:g} s; "
                        "nothing was saved, please try again"
                    ) from exc
                time.sleep(delay * random.uniform(0.5, 1.5))
                delay = min(delay * 2, 0.5)

    # ----------------------------------------------------------------- problems and models

    def add_problem(
        self,
        question: str,
        gold_answer: float | None = None,
        source: str | None = None,
        source_id: str | None = None,
        *,
        actor: Actor | None = None,
    ) -> Problem:
        """The problem with this ``source``+``source_id`` (or, without an id, this question text),
        created if new. A missing gold answer is filled in; a different one is an error. With an
        ``actor`` (a person's upload), writing a gold answer leaves an audit row.

        Dataset problems are unique by constraint everywhere; typed-in questions are deduplicated
        under SQLite's single writer (on PostgreSQL two simultaneous adds may both insert)."""
        question = question.strip()
        if not question:
            raise InvalidInput("the question is empty")
        key = question_hash(question)

        def work(s: Session) -> Problem:
            if source_id is not None:
                query = select(Problem).where(
                    Problem.source == source, Problem.source_id == source_id
                )
            else:
                query = select(Problem).where(Problem.question_hash == key).order_by(Problem.id)
            problem = s.scalars(query.limit(1)).first()
            if problem is None:
                problem = Problem(
                    question=question,
                    question_hash=key,
                    gold_answer=gold_answer,
                    source=source,
                    source_id=source_id,
                )
                s.add(problem)
                gold_written = gold_answer is not None
            elif gold_answer is not None:
                gold_written = problem.gold_answer is None
                if gold_written:
                    problem.gold_answer = gold_answer
                elif not _same(problem.gold_answer, gold_answer):
                    raise InvalidInput(
                        f"problem #{problem.id} already has gold answer {problem.gold_answer:g}, "
                        f"not {gold_answer:g}"
                    )
            else:
                gold_written = False
            s.flush()
            if actor is not None and gold_written:
                audit.record(s, actor, "problem.gold", f"problem#{problem.id}", None,
                             {"gold_answer": gold_answer})  # fmt: skip
            return problem

        try:
            return self._run(work)
        except IntegrityError:  # another process created the same (source, source_id) first
            return self._run(work)

    def get_problem(self, problem_id: int) -> Problem:
        return self._run(lambda s: _get(s, Problem, problem_id), write=False)

    def register_model_version(
        self,
        name: str,
        base_model: str,
        adapter_path: str | None = None,
        training_summary: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        *,
        actor: Actor = SYSTEM,
    ) -> ModelVersion:
        """Record a trained student (not promoted yet)."""

        def work(s: Session) -> ModelVersion:
            if s.scalar(select(ModelVersion.id).where(ModelVersion.name == name)) is not None:
                raise InvalidInput(f"a model version named {name!r} already exists")
            version = ModelVersion(
                name=name,
                base_model=base_model,
                adapter_path=adapter_path,
                training_summary=training_summary or {},
                metrics=metrics or {},
                promoted=False,
            )
            s.add(version)
            s.flush()
            audit.record(
                s,
                actor,
                "model.register",
                f"model_version#{version.id}",
                None,
                {"name": name, "base_model": base_model, "adapter_path": adapter_path},
            )
            return version

        return self._run(work)

    def promote(self, version_id: int, *, actor: Actor = SYSTEM) -> ModelVersion:
        """Make ``version_id`` the one model the app serves (the previous one is demoted)."""

        def work(s: Session) -> ModelVersion:
            version = _get(s, ModelVersion, version_id)
            before = None
            for other in s.scalars(select(ModelVersion).where(ModelVersion.promoted)):
                other.promoted = False
                before = {"promoted": other.name}
            version.promoted = True
            version.promoted_at = utcnow()
            s.flush()
            audit.record(s, actor, "model.promote", f"model_version#{version.id}", before,
                         {"promoted": version.name})  # fmt: skip
            return version

        return self._run(work)

    def promoted_model_version(self) -> ModelVersion | None:
        return self._run(
            lambda s: s.scalars(select(ModelVersion).where(ModelVersion.promoted)).first(),
            write=False,
        )

    def model_versions(self) -> list[ModelVersion]:
        """All model versions, newest first."""
        query = select(ModelVersion).order_by(ModelVersion.id.desc())
        return self._run(lambda s: list(s.scalars(query)), write=False)

    def record_generation(
        self,
        problem_id: int,
        model_version_id: int | None,
        thought: str,
        raw_text: str,
        status: str,
        answer: float | None,
        error: str | None = None,
    ) -> Generation:
        """Keep what a model wrote for a problem and the engine's verdict on it."""
        _check_thought(thought)

        def work(s: Session) -> Generation:
            _get(s, Problem, problem_id)
            if model_version_id is not None:
                _get(s, ModelVersion, model_version_id)
            generation = Generation(
                problem_id=problem_id,
                model_version_id=model_version_id,
                thought=thought,
                raw_text=raw_text,
                status=status,
                answer=answer,
                error=error,
            )
            s.add(generation)
            s.flush()
            return generation

        return self._run(work)

    # ------------------------------------------------------------------------ corrections

    def add_correction(
        self,
        thought: str,
        corrected_text: str,
        annotator: Actor | str,
        problem_id: int | None = None,
        generation_id: int | None = None,
        original_text: str | None = None,
        allow_unsolved: bool = False,
    ) -> Correction:
        """Re-solve ``corrected_text`` with the engine and store it as a pending correction.

        Give the generation being corrected (its text and verdict become the "before") or the
        problem. A correction that does not solve raises :class:`CorrectionRejected` with the
        engine's message, unless ``allow_unsolved``: then it is kept, flagged ``unsolved``.
        ``annotator``: the signed-in user, or a plain name for a local script.
        """
        _check_thought(thought)
        if isinstance(annotator, str) and not annotator.strip():
            raise InvalidInput("say who made the correction (annotator is empty)")
        actor = as_actor(annotator)
        if not corrected_text.strip():
            raise InvalidInput("the corrected text is empty")
        if problem_id is None and generation_id is None:
            raise InvalidInput("a correction needs the problem or the generation it corrects")

        before: ThoughtResult | None = None
        if generation_id is not None:
            generation = self._run(lambda s: _get(s, Generation, generation_id), write=False)
            if problem_id is not None and problem_id != generation.problem_id:
                raise InvalidInput(
                    f"generation #{generation_id} belongs to problem #{generation.problem_id}, "
                    f"not #{problem_id}"
                )
            if generation.thought != thought:
                raise InvalidInput(
                    f"generation #{generation_id} is a {generation.thought} thought, not {thought}"
                )
            problem_id = generation.problem_id
            original_text = generation.raw_text if original_text is None else original_text
            before = ThoughtResult(
                thought, original_text or "", generation.answer, generation.status,
                generation.error,
            )  # fmt: skip
        elif original_text is not None:
            before = execute(thought, original_text, self.solve_timeout_s)
        after = execute(thought, corrected_text, self.solve_timeout_s)
        if not after.ok and not allow_unsolved:
            raise CorrectionRejected(thought, after)
        assert problem_id is not None

        def work(s: Session) -> Correction:
            problem = _get(s, Problem, problem_id)
            correction = Correction(
                problem_id=problem_id,
                generation_id=generation_id,
                thought=thought,
                original_text=original_text,
                corrected_text=corrected_text,
                before_status=before.status if before else None,
                before_answer=before.answer if before else None,
                before_error=before.error if before else None,
                after_status=after.status,
                after_answer=after.answer,
                after_error=after.error,
                matches_gold=_matches(after.answer, problem.gold_answer),
                unsolved=not after.ok,
                annotator=actor.name,
                annotator_id=actor.user_id,
                status=PENDING,
            )
            correction.problem = problem
            s.add(correction)
            s.flush()
            audit.record(
                s,
                actor,
                "correction.save",
                f"correction#{correction.id}",
                None,
                {
                    "status": PENDING,
                    "thought": thought,
                    "answer": after.answer,
                    "unsolved": correction.unsolved,
                    "problem_id": problem_id,
                },
            )
            return correction

        return self._run(work)

    def get_correction(self, correction_id: int) -> Correction:
        """One correction, with its problem."""
        query = _corrections().where(Correction.id == correction_id)

        def work(s: Session) -> Correction:
            correction = s.scalars(query).first()
            if correction is None:
                raise NotFound(f"there is no correction #{correction_id}")
            return correction

        return self._run(work, write=False)

    def review(
        self, correction_id: int, reviewer: Actor | str, decision: str, note: str | None = None
    ) -> Review:
        """Approve, reject or re-open (``"pending"``) a correction; see the state machine above."""
        if decision not in (APPROVED, REJECTED, PENDING):
            raise ReviewError(
                f"unknown decision {decision!r}: use 'approved', 'rejected' or 'pending'"
            )
        return self._decide(correction_id, reviewer, decision, note)

    def withdraw(
        self, correction_id: int, annotator: Actor | str, note: str | None = None
    ) -> Review:
        """The annotator takes back a pending or rejected correction (it stays on record)."""
        return self._decide(correction_id, annotator, WITHDRAWN, note)

    def _decide(
        self, correction_id: int, who: Actor | str, decision: str, note: str | None
    ) -> Review:
        if isinstance(who, str) and not who.strip():
            raise ReviewError("say who is reviewing (reviewer is empty)")
        actor = as_actor(who)
        note = (note or "").strip() or None

        def work(s: Session) -> Review:
            correction = s.scalars(
                select(Correction).where(Correction.id == correction_id).with_for_update()
            ).first()
            if correction is None:
                raise ReviewError(f"there is no correction #{correction_id}")
            _check_transition(s, correction, actor, decision, note, self.allow_self_review)
            review = Review(
                correction_id=correction_id,
                reviewer=actor.name,
                reviewer_id=actor.user_id,
                decision=decision,
                note=note,
            )
            before = correction.status
            correction.status = decision
            s.add(review)
            s.flush()
            audit.record(s, actor, f"correction.{decision}", f"correction#{correction_id}",
                         {"status": before}, {"status": decision, "note": note})  # fmt: skip
            return review

        return self._run(work)

    def reviews(self, correction_id: int) -> list[Review]:
        """A correction's review history, oldest first."""
        query = select(Review).where(Review.correction_id == correction_id).order_by(Review.id)
        return self._run(lambda s: list(s.scalars(query)), write=False)

    # ----------------------------------------------------------------------------- queues

    def pending(
        self,
        limit: int = 50,
        offset: int = 0,
        annotator: str | None = None,
        dataset: str | None = None,
    ) -> list[Correction]:
        """The review queue: pending corrections, oldest first, optionally of one annotator or
        one dataset (the problem's ``source``)."""
        query = _corrections().where(Correction.status == PENDING)
        if annotator is not None:
            query = query.where(Correction.annotator == annotator)
        if dataset is not None:
            query = query.where(Problem.source == dataset)
        query = query.order_by(Correction.created_at, Correction.id).limit(limit).offset(offset)
        return self._run(lambda s: list(s.scalars(query)), write=False)

    def by_annotator(
        self, annotator: str, status: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Correction]:
        """One annotator's corrections, newest first, optionally in one status."""
        query = _corrections().where(Correction.annotator == annotator)
        if status is not None:
            query = query.where(Correction.status == status)
        query = query.order_by(Correction.id.desc()).limit(limit).offset(offset)
        return self._run(lambda s: list(s.scalars(query)), write=False)

    def conflicts(self) -> list[Conflict]:
        """Problems where corrections by different annotators (pending or approved) solve to
        different answers, oldest problem first."""

        def work(s: Session) -> list[Correction]:  # ids and rows from one read transaction
            query = (
                _corrections()
                .where(*_LIVE, Correction.problem_id.in_(_conflicting_problem_ids(s)))
                .order_by(Correction.problem_id, Correction.id)
            )
            return list(s.scalars(query))

        by_problem: dict[int, list[Correction]] = defaultdict(list)
        for correction in self._run(work, write=False):
            by_problem[correction.problem_id].append(correction)
        conflicts = []
        for problem_id, corrections in by_problem.items():
            answers: list[float] = []
            for c in corrections:
                if c.after_answer is not None and not any(
                    _same(c.after_answer, a) for a in answers
                ):
                    answers.append(c.after_answer)
            problem = corrections[0].problem
            conflicts.append(
                Conflict(problem_id, problem.question, problem.gold_answer, answers, corrections)
            )
        return conflicts

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
                conflicts=len(_conflicting_problem_ids(s)),
                approved_unused=count(_unused_approved_ids()),
                exports=count(select(Export.id)),
                model_versions=count(select(ModelVersion.id)),
                promoted=promoted,
            )

        return self._run(work, write=False)

    # ------------------------------------------------------------------- training and export

    def mark_used(
        self, correction_ids: Iterable[int], model_version_id: int, *, actor: Actor = SYSTEM
    ) -> int:
        """Record that these approved corrections trained ``model_version_id``; returns how many
        were newly recorded."""
        ids = sorted(set(correction_ids))

        def work(s: Session) -> int:
            _get(s, ModelVersion, model_version_id)
            statuses = dict(
                s.execute(
                    select(Correction.id, Correction.status).where(Correction.id.in_(ids))
                ).all()
            )
            for cid in ids:
                if cid not in statuses:
                    raise NotFound(f"there is no correction #{cid}")
                if statuses[cid] != APPROVED:
                    raise StoreError(
                        f"correction #{cid} is {statuses[cid]}; only approved corrections train"
                    )
            done = set(
                s.scalars(
                    select(CorrectionUse.correction_id).where(
                        CorrectionUse.model_version_id == model_version_id,
                        CorrectionUse.correction_id.in_(ids),
                    )
                )
            )
            new = [cid for cid in ids if cid not in done]
            s.add_all(
                CorrectionUse(correction_id=c, model_version_id=model_version_id) for c in new
            )
            if new:
                audit.record(s, actor, "correction.use", f"model_version#{model_version_id}",
                             None, {"correction_ids": new})  # fmt: skip
            return len(new)

        return self._run(work)

    def unused_approved(self) -> list[Correction]:
        """Approved corrections that no model version has been trained on yet, oldest first."""
        query = (
            _corrections().where(Correction.id.in_(_unused_approved_ids())).order_by(Correction.id)
        )
        return self._run(lambda s: list(s.scalars(query)), write=False)

    def approved(self, correction_ids: Sequence[int] | None = None) -> list[export_io.ExportRow]:
        """Approved corrections as training rows with provenance (all, or these ids); a
        correction identical to an earlier one (same problem, thought, text, annotator) is left
        out, as it would be the same training row."""

        def work(s: Session) -> list[export_io.ExportRow]:
            query = _corrections().where(Correction.status == APPROVED).order_by(Correction.id)
            if correction_ids is not None:
                query = query.where(Correction.id.in_(correction_ids))
            corrections = list(s.scalars(query))
            if correction_ids is not None:
                missing = sorted(set(correction_ids) - {c.id for c in corrections})
                if missing:
                    raise StoreError(f"not approved, or not there: corrections {missing}")
            latest = (
                select(func.max(Review.id))
                .where(Review.correction_id.in_([c.id for c in corrections]))
                .group_by(Review.correction_id)
            )
            approvals = {
                r.correction_id: r for r in s.scalars(select(Review).where(Review.id.in_(latest)))
            }
            rows: dict[str, export_io.ExportRow] = {}
            for c in corrections:
                row = export_io.to_row(c, approvals[c.id])
                rows.setdefault(row["id"], row)
            return list(rows.values())

        return self._run(work, write=False)

    def export(
        self, out_dir: str | Path, by: Actor | str, correction_ids: Sequence[int] | None = None
    ) -> Export:
        """Write approved corrections (all, or these ids) to ``out_dir`` as a ``datasets`` Dataset,
        JSONL and Parquet with a dataset card, and record the export. ``out_dir`` must not exist
        or be empty: an export never overwrites another."""
        if isinstance(by, str) and not by.strip():
            raise InvalidInput("say who is exporting (by is empty)")
        actor = as_actor(by)
        rows = self.approved(correction_ids)
        path = export_io.write_export(rows, Path(out_dir), by=actor.name)
        return self.record_export(actor, str(path), [row["correction_id"] for row in rows])

    def record_export(self, by: Actor | str, location: str, correction_ids: list[int]) -> Export:
        """Record that these corrections went out to ``location`` (a folder, a repo URL)."""
        actor = as_actor(by)

        def work(s: Session) -> Export:
            record = Export(
                created_by=actor.name,
                path=location,
                count=len(correction_ids),
                correction_ids=correction_ids,
            )
            s.add(record)
            s.flush()
            audit.record(s, actor, "export", f"export#{record.id}", None,
                         {"count": len(correction_ids), "path": location})  # fmt: skip
            return record

        return self._run(work)

    def exports(self) -> list[Export]:
        """All exports, newest first."""
        return self._run(
            lambda s: list(s.scalars(select(Export).order_by(Export.id.desc()))), write=False
        )

    def import_export(self, path: str | Path, *, actor: Actor = SYSTEM) -> ImportReport:
        """Add the approved corrections of an export (ours or another store's), keeping their
        annotator, reviewer and times. Each is re-solved first and must give the exported
        answer. Corrections already here (same problem, thought, text, annotator) are skipped."""
        report = ImportReport(path=str(path))
        for row in export_io.read_export(Path(path)):
            verdict = execute(row["thought"], row["target"], self.solve_timeout_s)
            if not verdict.ok:
                raise CorrectionRejected(row["thought"], verdict)
            if not _same(verdict.answer, row["answer"]):
                raise StoreError(
                    f"row {row['id']}: the engine now answers {verdict.answer:g}, "
                    f"the export says {row['answer']:g}; nothing after this row was imported"
                )
            problem = self.add_problem(
                row["question"],
                row["gold_answer"],
                source=row["dataset"],
                source_id=row["origin_id"] if row["dataset"] is not None else None,
            )
            added = self._run(lambda s, r=row, p=problem, v=verdict: _import_row(s, r, p, v, actor))
            if added is None:
                report.skipped += 1
            else:
                report.added.append(added)
        return report


# ------------------------------------------------------------------------------- helpers


def _same(a: float | None, b: float | None) -> bool:
    import eotd

    return eotd.same_answer(a, b)


def _matches(answer: float | None, gold: float | None) -> bool | None:
    if answer is None or gold is None:
        return None
    return _same(answer, gold)


def _check_thought(thought: str) -> None:
    if thought not in THOUGHTS:
        raise InvalidInput(f"unknown thought {thought!r}: use one of {', '.join(THOUGHTS)}")


def _get(s: Session, model: type[T], key: int) -> T:
    row = s.get(model, key)
    if row is None:
        name = re.sub(r"(?<!^)([A-Z])", r" \1", model.__name__).lower()
        raise NotFound(f"there is no {name} #{key}")
    return row


def _corrections() -> Select[tuple[Correction]]:
    """Corrections joined to (and loaded with) their problems."""
    return select(Correction).join(Correction.problem).options(contains_eager(Correction.problem))


def _unused_approved_ids() -> Select[tuple[int]]:
    used = select(CorrectionUse.correction_id)
    return select(Correction.id).where(Correction.status == APPROVED, Correction.id.not_in(used))


def _conflicting_problem_ids(s: Session) -> list[int]:
    """Problems with two live corrections by different annotators that solve differently."""
    from eotd.answers import ABS_TOL

    # Two answers that differ also differ by more than ABS_TOL: a cheap SQL pre-filter.
    contested = (
        select(Correction.problem_id)
        .where(*_LIVE)
        .group_by(Correction.problem_id)
        .having(
            func.count(func.distinct(Correction.annotator)) > 1,
            func.max(Correction.after_answer) - func.min(Correction.after_answer) > ABS_TOL,
        )
    )
    answers: dict[int, list[tuple[str, float]]] = defaultdict(list)
    rows = s.execute(
        select(Correction.problem_id, Correction.annotator, Correction.after_answer)
        .where(*_LIVE, Correction.problem_id.in_(contested))
        .order_by(Correction.problem_id)
    )
    for problem_id, annotator, answer in rows:
        answers[problem_id].append((annotator, answer))
    return [
        problem_id
        for problem_id, given in answers.items()
        if any(
            who != other and not _same(answer, theirs)
            for i, (who, answer) in enumerate(given)
            for other, theirs in given[i + 1 :]
        )
    ]


def wrote(actor: Actor, correction: Correction) -> bool:
    """Whether ``actor`` wrote ``correction``: the same account, or (for rows or callers without
    an account) the same name, ignoring case."""
    if actor.user_id is not None and correction.annotator_id is not None:
        return actor.user_id == correction.annotator_id
    return actor.name.casefold() == correction.annotator.casefold()


def _check_transition(
    s: Session, correction: Correction, who: Actor, decision: str, note: str | None, self_ok: bool
) -> None:
    """Raise :class:`ReviewError` unless ``who`` may move ``correction`` to ``decision``."""
    cid, current = correction.id, correction.status
    if decision == WITHDRAWN and not wrote(who, correction):
        raise ReviewError(
            f"only {correction.annotator}, who wrote correction #{cid}, can withdraw it"
        )
    if decision != WITHDRAWN and wrote(who, correction) and not self_ok:
        raise ReviewError(
            f"{who.name} wrote correction #{cid} and cannot review it; ask another reviewer "
            "(or set EOTD_ALLOW_SELF_REVIEW=1)"
        )
    if decision not in TRANSITIONS[current]:
        last = s.scalars(
            select(Review).where(Review.correction_id == cid).order_by(Review.id.desc()).limit(1)
        ).first()
        since = f" by {last.reviewer} on {last.created_at:%Y-%m-%d %H:%M} UTC" if last else ""
        if current == WITHDRAWN:
            raise ReviewError(f"correction #{cid} was withdrawn{since}; it can no longer change")
        if current == decision:
            raise ReviewError(f"correction #{cid} is already {current}{since}")
        if current == REJECTED and decision == APPROVED:
            raise ReviewError(
                f"correction #{cid} was rejected{since}; re-open it (decision 'pending', with a "
                "note) before approving it"
            )
        raise ReviewError(f"correction #{cid} is {current}{since}; it cannot become {decision}")
    if decision == APPROVED and correction.unsolved:
        raise ReviewError(
            f"correction #{cid} does not solve ({correction.after_status}: "
            f"{correction.after_error}); it cannot be approved"
        )
    if (current, decision) in NOTE_REQUIRED and note is None:
        raise ReviewError(
            f"changing correction #{cid} from {current} to {decision} undoes a decision; "
            "add a note saying why"
        )


def _import_row(
    s: Session, row: export_io.ExportRow, problem: Problem, verdict: ThoughtResult, actor: Actor
) -> int | None:
    """Insert one exported row as an approved correction; None if it is already here."""
    duplicate = s.scalar(
        select(Correction.id).where(
            Correction.problem_id == problem.id,
            Correction.thought == row["thought"],
            Correction.corrected_text == row["target"],
            Correction.annotator == row["annotator"],
        )
    )
    if duplicate is not None:
        return None
    correction = Correction(
        problem_id=problem.id,
        thought=row["thought"],
        original_text=row["original_text"],
        corrected_text=row["target"],
        after_status=verdict.status,
        after_answer=verdict.answer,
        after_error=verdict.error,
        matches_gold=_matches(verdict.answer, problem.gold_answer),
        unsolved=False,
        annotator=row["annotator"],
        status=APPROVED,
        created_at=datetime.fromisoformat(row["created_at"]),
    )
    s.add(correction)
    s.flush()
    s.add(
        Review(
            correction_id=correction.id,
            reviewer=row["reviewer"],
            decision=APPROVED,
            note=f"imported from export row {row['id']}",
            created_at=datetime.fromisoformat(row["reviewed_at"]),
        )
    )
    audit.record(s, actor, "correction.import", f"correction#{correction.id}", None,
                 {"status": APPROVED, "row": row["id"]})  # fmt: skip
    return correction.id
