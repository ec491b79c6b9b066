"""Problems and what a model wrote for them (generations)."""

from __future__ import annotations

import hashlib

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import audit
from db.access import Actor
from db.models import Generation, ModelVersion, Problem
from db.store.base import StoreBase, check_thought, get_row, same
from db.store.errors import InvalidInput


def question_hash(question: str) -> str:
    """Hash of the question with whitespace normalised: the dedupe key for typed-in problems."""
    return hashlib.sha256(" ".join(question.split()).encode()).hexdigest()


class ProblemStore(StoreBase):
    """Problems (typed in, from a dataset, uploaded) and the generations written for them."""

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

        Both are unique by constraint (typed-in questions by their normalised text), so two
        people adding the same problem at the same instant get the same row on every backend."""
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
                elif not same(problem.gold_answer, gold_answer):
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
        except IntegrityError:  # another transaction created the same problem first: read it
            return self._run(work)

    def get_problem(self, problem_id: int) -> Problem:
        return self._run(lambda s: get_row(s, Problem, problem_id), write=False)

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
        check_thought(thought)

        def work(s: Session) -> Generation:
            get_row(s, Problem, problem_id)
            if model_version_id is not None:
                get_row(s, ModelVersion, model_version_id)
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
