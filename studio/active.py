"""Active learning: rank problems by how unsure the student is, so people correct those first.

A problem scores higher when its thoughts fail to give an answer, disagree with one another, the
answer selector doubts its choice, or (when the gold answer is known) the chosen answer is wrong.
The student answers the whole pool in one batched call; every thought is recorded as a generation
so corrections link back to it.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from db import Store
from db.access import Actor
from eotd import same_answer
from eotd.prompts import THOUGHTS
from studio.solving import (
    InputError,
    ProblemRef,
    SolveState,
    check_question,
    decide,
    record,
    store_problem,
    view_of,
)

MAX_POOL = 1000  # rows read from an upload
MAX_POOL_BYTES = 1_000_000  # an upload's size (the app's max_file_size too)


@dataclass
class Ranked:
    """A solved problem with its uncertainty score and the reasons for it."""

    state: SolveState
    score: float
    reasons: list[str]

    def row(self, rank: int) -> list:
        verdict = self.state.verdict
        answers = {t: v.answer for t, v in self.state.thoughts.items()}
        return [
            rank,
            self.state.problem_id,
            round(self.score, 2),
            "; ".join(self.reasons) or "sure",
            self.state.problem.question[:160],
            *(answers.get(t) for t in THOUGHTS),
            verdict.answer if verdict else None,
            self.state.problem.gold,
        ]


COLUMNS = ["rank", "problem", "score", "why", "question", "cot", "pot", "eot", "vote", "gold"]


def uncertainty(state: SolveState) -> tuple[float, list[str]]:
    """How unsure the student is about a solved problem: failed thoughts count 1 each, every
    extra distinct answer 1.5, the selector's doubt (1 - its confidence) up to 3, a chosen answer
    that misses the gold answer 3."""
    answers = [v.answer for v in state.thoughts.values()]
    failed = [t for t, v in state.thoughts.items() if v.answer is None]
    distinct: list[float] = []
    for a in answers:
        if a is not None and not any(same_answer(a, d) for d in distinct):
            distinct.append(a)
    score, reasons = 0.0, []
    if failed:
        score += len(failed)
        reasons.append("no answer from " + ", ".join(failed))
    if len(distinct) > 1:
        score += 1.5 * (len(distinct) - 1)
        reasons.append(f"{len(distinct)} different answers")
    confidence = state.verdict.confidence if state.verdict is not None else None
    if confidence is not None:
        score += 3.0 * (1.0 - confidence)
        reasons.append(f"selector {confidence:.0%} sure")
    if state.verdict is not None and state.verdict.correct is False:
        score += 3.0
        reasons.append("chosen answer differs from gold")
    return score, reasons


def rank(
    solve_batch: Callable[[list[str]], list],
    store: Store,
    problems: Sequence[ProblemRef],
    model_version_id: int | None = None,
    actor: Actor | None = None,
) -> list[Ranked]:
    """Answer ``problems`` in one batch, record every thought, and sort most-unsure first.
    Gold answers that ``actor`` brings (an upload) are audited as theirs."""
    if not problems:
        raise InputError("The pool is empty: choose an evaluation set or upload problems.")
    solutions = solve_batch([p.question for p in problems])
    ranked = []
    for problem, solution in zip(problems, solutions, strict=True):
        state = SolveState(
            store_problem(store, problem, actor), problem, model_version_id=model_version_id
        )
        for result in solution.thoughts:
            if result.sample == 0:
                record(store, state, view_of(result))
        views = [state.thoughts[t] for t in THOUGHTS]
        state.verdict = decide(problem.question, views, problem.gold)
        ranked.append(Ranked(state, *uncertainty(state)))
    ranked.sort(key=lambda r: -r.score)
    return ranked


def read_pool(path: str | Path, source: str = "upload", limit: int = MAX_POOL) -> list[ProblemRef]:
    """The first ``limit`` problems of an uploaded JSONL or CSV file: a ``question`` and
    optionally an ``answer`` (gold) per row. Rows are checked as they are read (a file over
    ``MAX_POOL_BYTES`` is refused unread); raises :class:`InputError` naming the first bad row.
    Uploaded problems are stored by their text (the same question uploaded twice is one)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl", ".json"):
        raise InputError(f"{path.name}: upload a .jsonl or .csv file")
    if path.stat().st_size > MAX_POOL_BYTES:
        raise InputError(f"{path.name} is over {MAX_POOL_BYTES // 1000:,} kB; upload fewer rows")
    problems: list[ProblemRef] = []
    try:
        with path.open(encoding="utf-8", newline="") as f:
            for number, row in _rows(f, suffix, path.name):
                problems.append(_pool_problem(row, number, path.name, source))
                if len(problems) >= min(limit, MAX_POOL):
                    break
    except UnicodeDecodeError:
        raise InputError(f"{path.name} is not UTF-8 text; upload a JSONL or CSV file") from None
    return problems


def _rows(f: TextIO, suffix: str, name: str) -> Iterator[tuple[int, object]]:
    """(line number, row) of a CSV or JSONL file, read lazily."""
    if suffix == ".csv":
        reader = csv.DictReader(f)
        if reader.fieldnames is not None and "question" not in reader.fieldnames:
            raise InputError(f"{name}: the CSV needs a 'question' column")
        for number, row in enumerate(reader, start=2):
            yield number, row
        return
    for number, line in enumerate(f, start=1):
        if line.strip():
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{name} line {number}: not JSON ({exc.msg})") from None


def _pool_problem(row: object, number: int, name: str, source: str) -> ProblemRef:
    if not isinstance(row, dict) or not isinstance(row.get("question"), str):
        raise InputError(f"{name} line {number}: each row needs a 'question' text")
    try:
        question = check_question(row["question"])
    except InputError as exc:
        raise InputError(f"{name} line {number}: {exc}") from None
    gold = row.get("answer")
    if gold in (None, ""):
        gold = None
    else:
        try:
            gold = float(str(gold).replace(",", ""))
        except ValueError:
            raise InputError(f"{name} line {number}: answer {gold!r} is not a number") from None
    return ProblemRef(question, gold, source)
