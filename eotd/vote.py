"""Ensemble vote over the answers of the three thoughts (CoT, PoT, EoT).

A thought may give one answer or several (k samples, for self-consistency). Failed thoughts
(answer None) never vote. Strategies:

- ``majority``: the answer with the most votes; ties go to the answer backed by the thought that
  comes first in ``order`` (default PoT > EoT > CoT: the shipped student's most accurate thought
  first; on 195 held-out GSM8K train problems this tie-break gave 12.3% against 10.3% for EoT
  first, see models/README.md).
- ``weighted``: like majority, but each vote counts its thought's weight (e.g. validation accuracy).
- ``fallback``: the first thought in ``order`` that has an answer (its most common one).
- ``cot`` / ``pot`` / ``eot``: that thought alone.

``verified`` (a selector over signals of each answer) reads the thoughts themselves, not just
their answers: :func:`eotd.verifier.choose` runs it and every strategy here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from eotd.answers import same_answer
from eotd.prompts import THOUGHTS

DEFAULT_ORDER: tuple[str, ...] = ("pot", "eot", "cot")
STRATEGIES: tuple[str, ...] = ("majority", "weighted", "fallback", *THOUGHTS)

AnswerInput = float | None | Sequence[float | None]


@dataclass
class Candidate:
    """One distinct answer and the votes for it."""

    answer: float
    score: float
    thoughts: list[str]


@dataclass
class Vote:
    """The ensemble's decision and everything needed to explain it."""

    answer: float | None
    supporters: list[str]
    strategy: str
    explanation: str
    candidates: list[Candidate] = field(default_factory=list)
    confidence: float | None = None  # verified: the selector's probability that it is right

    def to_dict(self) -> dict:
        return asdict(self)


def _as_list(value: AnswerInput) -> list[float | None]:
    if value is None or isinstance(value, int | float):
        return [value]
    return list(value)


def _fmt(x: float) -> str:
    return f"{x:g}"


def _tally(
    answers: Mapping[str, AnswerInput], weights: Mapping[str, float], order: Sequence[str]
) -> list[Candidate]:
    """Group equal answers; candidates sorted best first (score, then tie-break order)."""
    candidates: list[Candidate] = []
    for thought, values in answers.items():
        for value in _as_list(values):
            if value is None:
                continue
            match = next((c for c in candidates if same_answer(c.answer, value)), None)
            if match is None:
                match = Candidate(answer=float(value), score=0.0, thoughts=[])
                candidates.append(match)
            match.score += weights.get(thought, 1.0)
            if thought not in match.thoughts:
                match.thoughts.append(thought)

    def rank(c: Candidate) -> tuple[float, int]:
        best = min((order.index(t) for t in c.thoughts if t in order), default=len(order))
        return (-c.score, best)

    return sorted(candidates, key=rank)


def vote(
    answers: Mapping[str, AnswerInput],
    strategy: str = "majority",
    order: Sequence[str] = DEFAULT_ORDER,
    weights: Mapping[str, float] | None = None,
) -> Vote:
    """Pick one answer from the thoughts' answers (see the module docstring for strategies)."""
    if strategy == "verified":
        raise ValueError(
            "the verified strategy reads the thoughts, not just their answers: use "
            "eotd.verifier.choose(question, thoughts, 'verified')"
        )
    if strategy not in STRATEGIES:
        raise ValueError(
            f"unknown vote strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}"
        )
    unknown = set(answers) - set(THOUGHTS)
    if unknown:
        raise ValueError(f"unknown thought names {sorted(unknown)}; use {', '.join(THOUGHTS)}")
    order = tuple(order)

    if strategy in THOUGHTS or strategy == "fallback":
        chain = (strategy,) if strategy in THOUGHTS else order
        for thought in chain:
            candidates = _tally({thought: answers.get(thought)}, {}, order)
            if candidates:
                top = candidates[0]
                skipped = chain[: chain.index(thought)]
                why = f"{thought.upper()} answered {_fmt(top.answer)}"
                if skipped:
                    why += f" ({', '.join(t.upper() for t in skipped)} gave no answer)"
                return Vote(top.answer, [thought], strategy, why + ".", candidates)
        names = " or ".join(t.upper() for t in chain)
        return Vote(None, [], strategy, f"No answer: {names} produced none.")

    if strategy == "weighted" and not weights:
        raise ValueError("the weighted strategy needs weights, e.g. {'eot': 0.3, 'pot': 0.4}")
    candidates = _tally(answers, weights if strategy == "weighted" and weights else {}, order)
    if not candidates:
        return Vote(None, [], strategy, "No thought produced an answer.")
    top = candidates[0]
    names = ", ".join(t.upper() for t in top.thoughts)
    if len(candidates) == 1:
        why = f"{names} agree on {_fmt(top.answer)}."
    elif top.score > candidates[1].score:
        why = f"{_fmt(top.answer)} has the most votes ({top.score:g}, from {names})."
    else:
        why = (
            f"Tie at {top.score:g} votes; {_fmt(top.answer)} wins the tie-break "
            f"({' > '.join(t.upper() for t in order)})."
        )
    return Vote(top.answer, list(top.thoughts), strategy, why, candidates)
