"""New problems from old ones: change the numbers of a question, re-solve, rewrite the rationale.

A rationale read into steps (`training.teachers.steps.read_steps`) says how every intermediate
result and the answer depend on the numbers of the question. A variant draws new values for the
question's numbers, recomputes every step exactly and writes a new question and a new GSM8K-style
rationale (with calculator annotations), from which the rule teacher then writes and verifies
CoT, PoT and EoT like for any problem. Variants stay plausible: integers stay integers (every
intermediate result too), non-negative results stay non-negative, round numbers stay round.

Only numbers that map unambiguously are changed: a number written once in the question, used in a
calculation, and not a likely constant (2, 12, 60, 100, years ...). Problems whose rationale uses
an equation or percentages, or has calculations the steps do not cover, are left alone.

Each problem draws its numbers from a generator seeded with the seed and its id, so its variants
are the same whichever problems come before it and however many processes make them.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from functools import partial
from typing import Any

from training.parallel import map_items
from training.teachers.exact import compute, format_number, number_text
from training.teachers.steps import ConversionError, Step, answer_steps, lex, read_steps

#: Values kept fixed even when the question writes them: they are often unit constants.
CONSTANTS = frozenset({1, 2, 3, 4, 7, 10, 12, 24, 30, 52, 60, 100, 365, 1000})
TRIES = 40
MAX_ANSWER = 10_000_000
_MENTION = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)(?![\w]|,\d)")


class AugmentError(ValueError):
    """A problem that cannot be varied; `reason` is a short key for the statistics."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass
class Plan:
    """What can be changed in one problem."""

    lines: list[str]
    steps: list[Step]
    mentions: dict[Fraction, tuple[int, int, str]]  # varied value -> (start, end, text) in question


def plan(question: str, solution: str, answer: float) -> Plan:
    """Read a problem and find the numbers a variant may change; AugmentError if none."""
    try:
        lines, steps = read_steps(solution, question)
        answer_steps(steps, answer)
    except ConversionError as err:
        raise AugmentError(err.reason) from err
    if any(s.rhs is not None or s.percent for s in steps):
        raise AugmentError("equation_or_percent")
    if any(p[0] == "const" for s in steps for p in s.parts):
        raise AugmentError("equation_or_percent")
    for line_no, line in enumerate(lines):
        spans = [(s.start, s.end) for s in steps if s.line == line_no]
        outside = "".join(c for i, c in enumerate(line) if not any(a <= i < b for a, b in spans))
        if "=" in outside:
            raise AugmentError("unread_calculation")
    found: dict[Fraction, list[re.Match[str]]] = {}
    for m in _MENTION.finditer(question):
        found.setdefault(Fraction(number_text(m.group())), []).append(m)
    used = {Fraction(str(t)) for s in steps for k, t in s.parts if k == "num"}
    mentions = {
        value: (ms[0].start(), ms[0].end(), ms[0].group())
        for value, ms in found.items()
        if len(ms) == 1
        and value in used
        and value not in CONSTANTS
        and not (value.denominator == 1 and 1900 <= value <= 2100)
    }
    if not mentions:
        raise AugmentError("no_changeable_number")
    return Plan(lines, steps, mentions)


def _draw(value: Fraction, text: str, percent: bool, rng: random.Random) -> Fraction:
    """A plausible new value near `value`, written with the same number of decimals."""
    if value.denominator == 1:
        v = int(value)
        grain = next((g for g in (1000, 100, 10, 5) if v % g == 0 and v >= 2 * g), 1)
        lo, hi = max(1, v // (2 * grain)), max(v * 3 // (2 * grain), v // grain + 3)
        if percent:
            hi = min(hi, 99 // grain)
        choices = [k * grain for k in range(lo, hi + 1) if k * grain != v]
        return Fraction(rng.choice(choices)) if choices else value
    decimals = len(text.partition(".")[2])
    new = round(float(value) * rng.uniform(0.5, 1.5), decimals)
    return Fraction(str(new)) if new > 0 else value


def _values(steps: list[Step], mapping: dict[Fraction, Fraction]) -> list[Fraction] | None:
    """Every step's value with question numbers replaced by `mapping`; None if one fails."""
    values: list[Fraction] = []
    for step in steps:

        def leaf(kind: str, text: str | int) -> Fraction | None:
            if kind == "ref":
                return values[int(text)]
            value = Fraction(str(text))
            return mapping.get(value, value)

        value = compute(step.parts, leaf)
        if value is None:
            return None
        values.append(value)
    return values


def _plausible(steps: list[Step], new: list[Fraction], goal: int) -> bool:
    for step, value in zip(steps, new, strict=True):
        if step.value.denominator == 1 and value.denominator != 1:
            return False
        if step.value >= 0 > value:
            return False
    return new[goal] != steps[goal].value and abs(new[goal]) <= MAX_ANSWER


def _calculation(step: Step, steps: list[Step], mapping: dict, new: list[Fraction]) -> str:
    """``a * b = <<a*b=c>>c`` with the new numbers."""
    out = []
    for kind, text in step.parts:
        if kind == "ref":
            out.append(format_number(new[int(text)]))
        elif kind == "num":
            value = Fraction(str(text))
            out.append(format_number(mapping.get(value, value)))
        else:
            out.append(str(text))
    expression = " ".join(out).replace("( ", "(").replace(" )", ")")
    result = format_number(new[steps.index(step)])
    return f"{expression} = <<{expression.replace(' ', '')}={result}>>{result}"


def _rewrite_line(
    line: str, line_no: int, p: Plan, mapping: dict, new: list[Fraction]
) -> str | None:
    """One rationale line with new numbers; None if a number could mean two different things."""
    olds: dict[Fraction, set[Fraction]] = {}
    for step, value in zip(p.steps, new, strict=True):
        olds.setdefault(step.value, set()).add(value)
    pieces, pos = [], 0
    spans = sorted((s.start, s.end, s) for s in p.steps if s.line == line_no)
    for start, end, step in [*spans, (len(line), len(line), None)]:
        base = pos
        for tok in lex(line[base:start]):
            if tok.kind != "num":
                continue
            value = Fraction(number_text(tok.text))
            if value in mapping:
                replacement = mapping[value]
            elif value in olds:
                if len(olds[value]) > 1:
                    return None
                replacement = next(iter(olds[value]))
            else:
                continue
            text = format_number(replacement)
            text = ("$" if tok.text.startswith("$") else "") + text
            text += "%" if tok.text.endswith("%") else ""
            pieces.append(line[pos : base + tok.start] + text)
            pos = base + tok.end
        pieces.append(line[pos:start])
        if step is not None:
            dollar = "$" if "$" in line[start:end].split("=")[-1] else ""
            calc = _calculation(step, p.steps, mapping, new)
            pieces.append(calc.replace(">>", ">>" + dollar, 1))
        pos = max(start, end)
    return "".join(pieces)


def variants(problem: dict[str, Any], n: int, rng: random.Random) -> list[dict[str, Any]]:
    """Up to `n` new problems (uniform schema plus ``origin_id``) made from `problem`."""
    p = plan(problem["question"], problem["solution"], problem["answer"])
    goal = answer_steps(p.steps, problem["answer"])[-1]
    out: list[dict[str, Any]] = []
    seen: set[Fraction] = {p.steps[goal].value}
    for _ in range(TRIES):
        if len(out) == n:
            break
        mapping = {
            value: _draw(value, text, text.endswith("%"), rng)
            for value, (_, _, text) in p.mentions.items()
        }
        if len(set(mapping.values())) < len(mapping) or any(
            new in p.mentions and new != old for old, new in mapping.items()
        ):
            continue
        new = _values(p.steps, mapping)
        if new is None or not _plausible(p.steps, new, goal) or new[goal] in seen:
            continue
        lines = [_rewrite_line(line, i, p, mapping, new) for i, line in enumerate(p.lines)]
        if any(line is None for line in lines):
            continue
        seen.add(new[goal])
        question = problem["question"]
        for value, (start, end, text) in sorted(p.mentions.items(), key=lambda m: -m[1][0]):
            question = question[:start] + _number_like(mapping[value], text) + question[end:]
        answer = int(new[goal]) if new[goal].denominator == 1 else float(new[goal])
        out.append(
            {
                "id": f"{problem['id']}-aug{len(out) + 1}",
                "question": question,
                "answer": answer,
                "source": problem.get("source", ""),
                "solution": "\n".join([*lines, f"#### {format_number(new[goal])}"]),  # type: ignore[list-item]
                "origin_id": problem["id"],
            }
        )
    return out


def _number_like(value: Fraction, original: str) -> str:
    """`value` written like `original` (thousands separators, decimals)."""
    text = format_number(value)
    if "," in original and value.denominator == 1:
        text = f"{int(value):,}"
    decimals = len(original.partition(".")[2])
    if decimals and value.denominator != 1:
        text = f"{float(value):.{decimals}f}"
    return text


def vary(problem: dict[str, Any], n: int, seed: int = 0) -> list[dict[str, Any]] | str:
    """Up to `n` variants of `problem` (numbers drawn as seeded by `seed` and its id), or why it
    was left alone."""
    if not problem.get("solution"):
        return "no_solution"
    try:
        new = variants(problem, n, random.Random(f"{seed}:{problem['id']}"))
    except AugmentError as err:
        return err.reason
    return new or "no_plausible_variant"


def augment_problems(
    problems: list[dict[str, Any]], n: int, seed: int = 0, num_proc: int = 1
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """`n` variants per problem where possible, made in `num_proc` processes, and counts of why
    the others were left alone."""
    made: list[dict[str, Any]] = []
    skipped: Counter = Counter()
    for result in map_items(partial(vary, n=n, seed=seed), problems, num_proc, "augment"):
        if isinstance(result, str):
            skipped[result] += 1
        else:
            made += result
    varied = len({v["origin_id"] for v in made})
    stats = {
        "problems": len(problems),
        "varied_problems": varied,
        "variants": len(made),
        "skipped": dict(sorted(skipped.items())),
    }
    return made, stats
