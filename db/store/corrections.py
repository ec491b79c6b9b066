"""Corrections and their reviews: the review state machine, the queues, conflicts.

Review state machine (a correction's ``status`` always equals its latest review's decision):

=============  ================================  ===========================================
from           to                                rule
=============  ================================  ===========================================
pending        approved, rejected                a reviewer other than the annotator; only a
                                                 correction that solves can be approved
pending        withdrawn                         its annotator (``withdraw``, the app's Withdraw)
rejected       pending                           a reviewer re-opens it, with a note
rejected       withdrawn                         its annotator
approved       rejected                          a reviewer reverses it, with a note
withdrawn      (nothing)                         final: corrections are never deleted
=============  ================================  ===========================================

Everything else (approving twice, approving a rejected one without re-opening it, reviewing a
withdrawn one) raises :class:`ReviewError` saying why.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import audit
from db.access import Actor, as_actor
from db.models import (
    APPROVED,
    PENDING,
    REJECTED,
    WITHDRAWN,
    Correction,
    Generation,
    Problem,
    Review,
)
from db.store.base import StoreBase, check_thought, get_row, matches, same, with_problems
from db.store.errors import CorrectionRejected, InvalidInput, NotFound, ReviewError
from eotd.execution import ThoughtResult, execute

TRANSITIONS: dict[str, frozenset[str]] = {
    PENDING: frozenset({APPROVED, REJECTED, WITHDRAWN}),
    REJECTED: frozenset({PENDING, WITHDRAWN}),
    APPROVED: frozenset({REJECTED}),
    WITHDRAWN: frozenset(),
}
"""Allowed status changes; see the module docstring."""

NOTE_REQUIRED = frozenset({(REJECTED, PENDING), (APPROVED, REJECTED)})
"""Changes that undo an earlier decision and so must say why."""

ALL = "all"
"""A filter value that keeps every status, annotator or dataset."""
TYPED_IN = "typed in"
"""The dataset filter for problems typed into the app (no ``source``)."""

LIVE = (Correction.status.in_((PENDING, APPROVED)), Correction.after_answer.is_not(None))
"""Corrections that take part in conflicts: not rejected or withdrawn, and solved."""


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


class CorrectionStore(StoreBase):
    """Save corrections (re-solved first), review them, and read the queues."""

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
        check_thought(thought)
        if isinstance(annotator, str) and not annotator.strip():
            raise InvalidInput("say who made the correction (annotator is empty)")
        actor = as_actor(annotator)
        if not corrected_text.strip():
            raise InvalidInput("the corrected text is empty")
        if problem_id is None and generation_id is None:
            raise InvalidInput("a correction needs the problem or the generation it corrects")

        before: ThoughtResult | None = None
        if generation_id is not None:
            generation = self._run(lambda s: get_row(s, Generation, generation_id), write=False)
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
            problem = get_row(s, Problem, problem_id)
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
                matches_gold=matches(after.answer, problem.gold_answer),
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
        query = with_problems().where(Correction.id == correction_id)

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

    def corrections(
        self,
        status: str | None = PENDING,
        annotator: str | None = None,
        dataset: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> list[Correction]:
        """Corrections with their problems, oldest first: by default the review queue (pending).
        A filter that is None, empty or ``"all"`` keeps everything; ``dataset`` is the problem's
        ``source``, ``"typed in"`` for questions without one."""
        query = with_problems()
        if status and status != ALL:
            query = query.where(Correction.status == status)
        if annotator and annotator != ALL:
            query = query.where(Correction.annotator == annotator)
        if dataset and dataset != ALL:
            typed_in = dataset == TYPED_IN
            query = query.where(Problem.source.is_(None) if typed_in else Problem.source == dataset)
        query = query.order_by(Correction.created_at, Correction.id).limit(limit).offset(offset)
        return self._run(lambda s: list(s.scalars(query)), write=False)

    def conflicts(self) -> list[Conflict]:
        """Problems where corrections by different annotators (pending or approved) solve to
        different answers, oldest problem first."""

        def work(s: Session) -> list[Correction]:  # ids and rows from one read transaction
            query = (
                with_problems()
                .where(*LIVE, Correction.problem_id.in_(conflicting_problem_ids(s)))
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
                if c.after_answer is not None and not any(same(c.after_answer, a) for a in answers):
                    answers.append(c.after_answer)
            problem = corrections[0].problem
            conflicts.append(
                Conflict(problem_id, problem.question, problem.gold_answer, answers, corrections)
            )
        return conflicts


def conflicting_problem_ids(s: Session) -> list[int]:
    """Problems with two live corrections by different annotators that solve differently."""
    from eotd.answers import ABS_TOL

    # Two answers that differ also differ by more than ABS_TOL: a cheap SQL pre-filter.
    contested = (
        select(Correction.problem_id)
        .where(*LIVE)
        .group_by(Correction.problem_id)
        .having(
            func.count(func.distinct(Correction.annotator)) > 1,
            func.max(Correction.after_answer) - func.min(Correction.after_answer) > ABS_TOL,
        )
    )
    answers: dict[int, list[tuple[str, float]]] = defaultdict(list)
    rows = s.execute(
        select(Correction.problem_id, Correction.annotator, Correction.after_answer)
        .where(*LIVE, Correction.problem_id.in_(contested))
        .order_by(Correction.problem_id)
    )
    for problem_id, annotator, answer in rows:
        answers[problem_id].append((annotator, answer))
    return [
        problem_id
        for problem_id, given in answers.items()
        if any(
            who != other and not same(answer, theirs)
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
