"""Choosing the answer: signals for each candidate answer, and a small selector that weighs them.

Majority voting cannot pick the right answer out of scattered wrong ones. For every distinct
answer among a question's thoughts (and samples), :func:`candidates` measures what a careful
reader would look at (see :data:`SIGNALS`): how many thoughts and samples back it, whether they
finished, whether they use the numbers the question states, whether the answer has the kind a
word problem's answer has, how sure the model was of the text, and whether a program's
intermediate values agree with the other thoughts'. A :class:`Selector` (an additive logistic
model, one step function per signal, fitted by ``training.fit_selector`` on held-out problems only)
turns them into the probability that the answer is right; :func:`select` takes the likeliest and
says in words what decided. :func:`choose` is the one entry point for every strategy, votes
included.
"""

from __future__ import annotations

import json
import math
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from itertools import pairwise
from pathlib import Path
from typing import Protocol

from eotd.answers import same_answer
from eotd.calculations import calculations_check, redo
from eotd.prompts import THOUGHTS
from eotd.vote import DEFAULT_ORDER, Candidate, Vote, vote

DEFAULT_SELECTOR = Path(__file__).resolve().parents[1] / "models" / "selector.json"
"""The selector shipped beside the default adapter (``training.fit_selector`` writes it)."""

DEFAULT_STRATEGY = "verified"
"""How the student, the app and the evaluations choose an answer unless told otherwise (the
selector beats the majority vote clearly on GSM8K and held-out problems, within noise elsewhere:
models/README.md, "Choosing the answer")."""

SIGNALS: dict[str, str] = {
    "share": "share of all samples that give this answer",
    "thoughts": "share of the three thoughts (CoT, PoT, EoT) that give it",
    "cot": "share of the CoT samples that give it",
    "pot": "share of the PoT samples that give it",
    "eot": "share of the EoT samples that give it",
    "finished": "share of its samples that ended before the token limit",
    "numbers_used": "share of the question's numbers its samples use (mean)",
    "all_numbers": "share of its samples that use every number the question states",
    "integer": "1 when the answer is a whole number",
    "magnitude": "log10 of the answer's size against the question's largest number",
    "negative": "1 when the answer is below zero",
    "in_question": "1 when the answer is one of the question's own numbers",
    "agreement": "share of its intermediate results that another kind of thought also reached",
    "arithmetic": "share of its samples whose written calculations (a + b = c) all check out",
    "redone": "share of its samples that reach it only once their arithmetic is redone",
    "logprob": "the model's mean token log-probability over its samples",
}
"""Every signal :func:`candidates` computes, and what it measures."""

PHRASES: dict[str, tuple[str, str]] = {
    "share": ("more of the samples give it", "fewer of the samples give it"),
    "thoughts": ("more thoughts agree on it", "fewer thoughts agree on it"),
    "cot": ("the CoT backs it", "the CoT does not back it"),
    "pot": ("the program backs it", "the program does not back it"),
    "eot": ("the equations back it", "the equations do not back it"),
    "finished": ("its thoughts finished", "its thoughts ran out of tokens"),
    "numbers_used": ("it uses more of the question's numbers", "it skips numbers of the question"),
    "all_numbers": ("it uses every number given", "it leaves numbers of the question unused"),
    "integer": ("it is a whole number", "it is not a whole number"),
    "magnitude": ("it is large for the question's numbers", "its size fits the question's numbers"),
    "negative": ("it is negative", "it is not negative"),
    "in_question": ("it is a number the question states", "it is not just a number restated"),
    "agreement": ("its steps agree with another thought's", "its steps agree with no other"),
    "arithmetic": ("its calculations check out", "its calculations are wrong"),
    "redone": ("it is what the CoT's arithmetic, redone, gives", "it is the answer as stated"),
    "logprob": ("the model was surer of its text", "the model was less sure of its text"),
}
"""How :func:`select` says that the answer's value of a signal is the higher (first) or the lower
(second) of the two answers compared."""

_THOUGHT_NAMES = {"cot": "the CoT", "pot": "the program", "eot": "the equations"}
_WORD_NUMBERS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100, "thousand": 1000, "dozen": 12,
    "half": 0.5, "twice": 2, "double": 2, "triple": 3, "thrice": 3, "quarter": 0.25,
}  # fmt: skip
_NUMBER = re.compile(r"(?<![\w.])\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.])\d*\.?\d+(?![\w])")
_WORD = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b", re.IGNORECASE)
_STEP = re.compile(r"=\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)")  # a CoT's "... = 48" results


class Thought(Protocol):
    """What the verifier reads of a thought (``ThoughtResult`` and the app's view have it)."""

    thought: str
    text: str
    answer: float | None
    finished: bool
    values: dict[str, float]


@dataclass
class Evidence:
    """One distinct answer of a question's thoughts, with the signals measured for it."""

    answer: float
    thoughts: list[str]  # the thoughts that give it, in THOUGHTS order
    signals: dict[str, float]


def numbers_in(text: str, words: bool = False) -> list[float]:
    """The numbers written in ``text`` (digits, with thousands commas; with ``words`` also
    "three", "dozen", "half"...), in order."""
    found = [float(m.replace(",", "")) for m in _NUMBER.findall(text)]
    if words:
        found += [float(_WORD_NUMBERS[w.lower()]) for w in _WORD.findall(text)]
    return found


def _contains(pool: Sequence[float], x: float) -> bool:
    return any(same_answer(x, y) for y in pool)


def _literals(t: Thought) -> list[float]:
    """The numbers a thought writes itself: an EoT's equations without its % comments."""
    if t.thought == "eot":
        lines = t.text.splitlines()
        return numbers_in("\n".join(ln for ln in lines if not ln.lstrip().startswith("%")))
    return numbers_in(t.text)


def _steps(t: Thought) -> list[float]:
    """The intermediate results of a thought: solved or final variables, or a CoT's "= N"."""
    if t.thought == "cot":
        return [float(m.replace(",", "")) for m in _STEP.findall(t.text)]
    return list(t.values.values())


def answer_of(t: Thought) -> float | None:
    """The answer a thought gives the selector: a CoT's with its arithmetic redone
    (``eotd.calculations.redo``), a program's or equations' as they ran."""
    return redo(t.text, t.answer) if t.thought == "cot" else t.answer


def candidates(question: str, thoughts: Sequence[Thought]) -> list[Evidence]:
    """Every distinct answer of ``thoughts`` (all samples of all three, CoTs' arithmetic
    redone) with its signals."""
    given = numbers_in(question, words=True)
    total = max(len(thoughts), 1)
    per_thought = {name: sum(t.thought == name for t in thoughts) for name in THOUGHTS}
    steps = [
        [s for s in _steps(t) if not _contains(given, s)] for t in thoughts
    ]  # what each thought worked out (restated givens are no evidence)
    answers = [answer_of(t) for t in thoughts]
    groups: list[tuple[float, list[int]]] = []
    for i, answer in enumerate(answers):
        if answer is None or not math.isfinite(answer):
            continue
        group = next((g for g in groups if same_answer(g[0], answer)), None)
        if group is None:
            groups.append((float(answer), [i]))
        else:
            group[1].append(i)
    out = []
    for answer, members in groups:
        backing = [thoughts[i] for i in members]
        names = [n for n in THOUGHTS if any(t.thought == n for t in backing)]
        used = []
        for t in backing:
            written = _literals(t)
            used.append(sum(_contains(written, g) for g in given) / len(given) if given else 1.0)
        agree = []
        for i in members:
            others = [s for j, t in enumerate(thoughts) if t.thought != thoughts[i].thought
                      for s in steps[j]]  # fmt: skip
            if steps[i]:
                agree.append(sum(_contains(others, s) for s in steps[i]) / len(steps[i]))
        logprobs = [lp for t in backing if (lp := getattr(t, "mean_logprob", None)) is not None]
        signals = {
            "share": len(members) / total,
            "thoughts": len(names) / len(THOUGHTS),
            **{
                n: sum(t.thought == n for t in backing) / per_thought[n] if per_thought[n] else 0.0
                for n in THOUGHTS
            },
            "finished": sum(t.finished for t in backing) / len(backing),
            "numbers_used": sum(used) / len(used),
            "all_numbers": sum(u >= 1.0 for u in used) / len(used),
            "integer": float(abs(answer - round(answer)) < 1e-9),
            "magnitude": math.log10((abs(answer) + 1) / (max(map(abs, given), default=0) + 1)),
            "negative": float(answer < 0),
            "in_question": float(_contains(given, answer)),
            "agreement": sum(agree) / len(agree) if agree else 0.0,
            "arithmetic": sum(calculations_check(t.text) for t in backing) / len(backing),
            "redone": sum(answers[i] != thoughts[i].answer for i in members) / len(members),
        }
        if logprobs:
            signals["logprob"] = sum(logprobs) / len(logprobs)
        out.append(Evidence(answer, names, signals))
    return out


@dataclass
class Selector:
    """An additive model over the signals: P(answer right) = sigmoid(bias + sum of f(signal)),
    each f a step function: ``values[k][i]`` where ``i`` is how many of ``thresholds[k]``
    (ascending) lie below signal ``k``'s value. The values average zero over the fitting
    candidates, so a contribution is how far a signal lifts or lowers an answer against the
    average candidate; a signal a candidate lacks (no log-probabilities saved) contributes
    nothing."""

    signals: list[str]
    thresholds: list[list[float]]
    values: list[list[float]]
    bias: float
    fitted_on: dict = field(default_factory=dict)  # what training.fit_selector recorded

    def __post_init__(self) -> None:
        unknown = set(self.signals) - set(SIGNALS)
        if unknown:
            raise ValueError(f"unknown signals {sorted(unknown)}; known: {', '.join(SIGNALS)}")
        if not len(self.thresholds) == len(self.values) == len(self.signals):
            raise ValueError("a selector needs thresholds and values for each signal")
        for name, cuts, steps in zip(self.signals, self.thresholds, self.values, strict=True):
            if len(steps) != len(cuts) + 1:
                raise ValueError(f"{name}: one value more than thresholds is needed")
            if any(b <= a for a, b in pairwise(cuts)):
                raise ValueError(f"{name}: thresholds must ascend")
            if not all(math.isfinite(v) for v in [*cuts, *steps]):
                raise ValueError(f"{name}: thresholds and values must be finite numbers")
        if not math.isfinite(self.bias):
            raise ValueError("the bias must be a finite number")

    def contributions(self, evidence: Evidence) -> dict[str, float]:
        """Each signal's share of the logit (0 for a signal the candidate lacks)."""
        return {
            name: steps[bisect_left(cuts, x)] if (x := evidence.signals.get(name)) is not None
            else 0.0
            for name, cuts, steps in zip(self.signals, self.thresholds, self.values, strict=True)
        }  # fmt: skip

    def probability(self, evidence: Evidence) -> float:
        logit = self.bias + sum(self.contributions(evidence).values())
        return 1.0 / (1.0 + math.exp(-max(min(logit, 50.0), -50.0)))

    def to_dict(self) -> dict:
        return asdict(self)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Selector:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            return cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(f"{path} is not a selector file: {exc}") from exc


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> Selector:
    return Selector.load(path)


def load_selector(path: str | Path | None = None) -> Selector:
    """The selector in ``path`` (default: the shipped ``models/selector.json``), cached."""
    path = Path(path or DEFAULT_SELECTOR)
    if not path.is_file():
        raise FileNotFoundError(
            f"no selector at {path}; fit one with `python -m training.fit_selector`"
        )
    return _load_cached(str(path), path.stat().st_mtime_ns)


def _rank_key(evidence: Evidence, order: Sequence[str]) -> int:
    return min((order.index(t) for t in evidence.thoughts if t in order), default=len(order))


def _fmt(x: float) -> str:
    return f"{x:g}"


def _reasons(selector: Selector, best: Evidence, other: Evidence) -> tuple[list, list]:
    """In words: the signals that most favoured ``best`` over ``other``, and most held it back."""
    mine, theirs = selector.contributions(best), selector.contributions(other)

    def say(name: str, favours: bool) -> str:
        # PHRASES[n][0] says the answer's value is the higher one, PHRASES[n][1] the lower.
        higher = best.signals[name] > other.signals[name]
        phrase = PHRASES[name][0 if higher else 1]
        if name in THOUGHTS and higher != favours:  # a thought the selector trusts less
            phrase += f" (the selector trusts {_THOUGHT_NAMES[name]} less)"
        return phrase

    both = [n for n in mine if n in best.signals and n in other.signals]
    diff = sorted(((mine[n] - theirs[n], n) for n in both), reverse=True)
    pro = [say(n, True) for d, n in diff[:3] if d > 0.05]
    con = [say(n, False) for d, n in diff[::-1][:2] if d < -0.05]
    return pro, con


def rank(
    found: Sequence[Evidence], selector: Selector, order: Sequence[str] = DEFAULT_ORDER
) -> list[tuple[float, Evidence]]:
    """The candidates with their probability of being right, likeliest first (ties: ``order``,
    as the vote breaks them)."""
    scored = [(selector.probability(e), e) for e in found]
    return sorted(scored, key=lambda pe: (-pe[0], _rank_key(pe[1], order)))


def select(
    question: str,
    thoughts: Sequence[Thought],
    selector: Selector | None = None,
    order: Sequence[str] = DEFAULT_ORDER,
) -> Vote:
    """The answer the selector finds likeliest right, with its confidence and, in words, the
    signals that decided."""
    selector = selector or load_selector()
    scored = rank(candidates(question, thoughts), selector, order)
    if not scored:
        return Vote(None, [], "verified", "No thought produced an answer.", confidence=0.0)
    p, best = scored[0]
    runner = scored[1] if len(scored) > 1 else None
    names = ", ".join(t.upper() for t in best.thoughts)
    why = f"{_fmt(best.answer)} is likeliest right ({p:.0%}, from {names})"
    if best.signals.get("redone"):
        why += ", the CoT's arithmetic redone"
    if runner is None:
        why += ": the only answer given."
    else:
        pro, con = _reasons(selector, best, runner[1])
        why += f" over {_fmt(runner[1].answer)} ({runner[0]:.0%})"
        why += (": " + "; ".join(pro) if pro else "") + "."
        if con:
            why += " Against it: " + "; ".join(con) + "."
    cands = [Candidate(e.answer, round(pe, 4), list(e.thoughts)) for pe, e in scored]
    return Vote(best.answer, list(best.thoughts), "verified", why, cands, confidence=p)


def choose(
    question: str,
    thoughts: Sequence[Thought],
    strategy: str = "majority",
    order: Sequence[str] = DEFAULT_ORDER,
    weights: Mapping[str, float] | None = None,
    selector: Selector | None = None,
) -> Vote:
    """Pick one answer from a question's thoughts: "verified" through the selector, any other
    strategy through :func:`eotd.vote.vote` over the thoughts' answers."""
    if strategy == "verified":
        return select(question, thoughts, selector, order)
    answers = {n: [t.answer for t in thoughts if t.thought == n] for n in THOUGHTS}
    return vote(answers, strategy, order, weights)
