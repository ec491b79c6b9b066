"""The offline teacher: GSM8K's own rationales turned into CoT, PoT and EoT targets.

GSM8K train rationales mark each calculation with a calculator annotation,
``Natalia sold 48/2 = <<48/2=24>>24 clips in May.`` This module reads those annotations (and
plain ``16 - 4 = 12`` calculations that lack one) as steps, names each step after its sentence,
replaces intermediate numbers typed again in later steps by the name of the step that made them,
keeps only the steps the answer depends on and writes:

- EoT (XoT format): the sentence as a ``%`` comment, then ``name = expression``; ``ans = name``;
  a rationale that solves for an unknown (``Let x be ...``, ``3x + 3 = 18``) keeps its equation;
- PoT: the same steps as a Python program ending ``ans = name`` (an equation rearranged for x);
- CoT: the rationale without annotations, ending "The answer is N.".

Reading the rationale is `training.teachers.steps` (exact arithmetic in `.exact`, step names in
`.naming`); this module writes the targets. Nothing here evaluates text: expressions are read by
a tokenizer and computed with `Fraction` (SymPy rearranges the rare equation, built from the
parsed parts). Verification against the gold answer is done with the engine
(`training.teachers.verify`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from training.teachers.exact import compute, format_number
from training.teachers.naming import name_steps
from training.teachers.steps import ANNOTATION, ConversionError, Step, answer_steps, read_steps


@dataclass
class Conversion:
    """The three targets written from one rationale, and the steps behind them."""

    cot: str
    pot: str | None  # None when an equation of the rationale cannot be rearranged into a program
    eot: str
    steps: list[Step] = field(default_factory=list)

    def targets(self) -> dict[str, str]:
        """The targets by thought name (PoT left out when there is none)."""
        out = {"cot": self.cot, "pot": self.pot, "eot": self.eot}
        return {k: v for k, v in out.items() if v is not None}


# ---------------------------------------------------------------- writing targets


def render(parts: list[tuple[str, str | int]], steps: list[Step]) -> str:
    """An expression with references written as step names: ``160 * miles_per_pound``."""
    out: list[str] = []
    for kind, text in parts:
        item = steps[int(text)].name if kind == "ref" else str(text)
        glue = out and (out[-1] == "(" or (out[-1] == "-" and _unary(out)))
        if item == ")" or glue:
            out[-1] += item
        else:
            out.append(item)
    return " ".join(out)


def _unary(out: list[str]) -> bool:
    """Whether the '-' ending `out` is a unary minus."""
    return len(out) == 1 or out[-2] in ("(", "+", "-", "*", "/", "**") or out[-2].endswith("(")


def cot_text(lines: list[str], answer: float | int) -> str:
    """The rationale ending "The answer is N."."""
    return "\n".join([*lines, f"The answer is {format_number(Fraction(answer))}."])


def _as_x(line: str, letter: str) -> str:
    """A sentence about the unknown `letter` with the unknown written x (``3N`` -> ``3x``)."""
    return re.sub(rf"(?<![A-Za-z']){letter}(?![A-Za-z'])", "x", line) if letter != "x" else line


#: How EoT comments are written: the whole sentence, or only its words (no calculation).
COMMENT_STYLES = ("sentence", "short")
_TRAILING = re.compile(
    r"(?:[\s:=,;$(]|\b(?:because|so|since|which|that|is|are|was|were|equals|equal|to|of|by|for"
    r"|and|then|thus|therefore|or|as|a|an|the|be|will|would|gives|makes|means|there|they|it|he"
    r"|she|we|you|has|have|had|in|on|at|with|from|total|each|get|gets|got)\b)+$",
    re.I,
)
_LEADING = re.compile(r"^(?:[\s:=,;$)%.]|\b(?:and|so|or)\b)+", re.I)


def short_comment(line: str, start: int, end: int) -> str | None:
    """The words of a sentence around its calculation ``[start, end)``, without the arithmetic.

    ``Natalia sold 48/2 = 24 clips in May.`` -> ``Natalia sold clips in May``; None when fewer
    than two words are left.
    """
    head = _TRAILING.sub("", line[:start])
    tail = re.split(r"[.;!?=]|\d", _LEADING.sub("", line[end:]), maxsplit=1)[0].strip(" ,:")
    text = " ".join(part for part in (head, tail) if part)
    return text if _words_in(text) >= 2 else None


def _words_in(text: str) -> int:
    return len(re.findall(r"[A-Za-z]{2,}", text))


def _eot(lines: list[str], steps: list[Step], keep: list[int], comments: str) -> str:
    """The EoT system: % comments from the sentences, then their equations; ``ans = name``."""
    out: list[str] = []
    written: set[int] = set()
    for i in keep:
        step = steps[i]
        for line in [step.line] if step.intro is None else [step.intro, step.line]:
            if line in written:
                continue
            written.add(line)
            text: str | None = lines[line]
            if step.intro is not None:
                text = _as_x(lines[line], step.letter)
            elif comments == "short":
                text = short_comment(lines[line], step.start, step.end)
            if text:
                out.append(f"% {text}")
        if step.rhs is not None:
            out.append(f"{render(step.parts, steps)} = {render(step.rhs, steps)}")
        else:
            out.append(f"{step.name} = {render(step.parts, steps)}")
    return "\n".join([*out, f"ans = {steps[keep[-1]].name}"])


def isolate(step: Step, steps: list[Step]) -> str | None:
    """The unknown of a linear equation step as an expression of its numbers and earlier steps.

    ``x + 0.5 * x + 2 * x = 1050`` gives ``1050/(0.5 + 2 + 1)``. SymPy rearranges an expression
    built here from parsed parts (never from text); each literal and reference is a symbol, so
    the result is written with the numbers as the rationale wrote them.
    """
    import sympy  # only needed for the few rationales with an equation

    unknown = sympy.Symbol("x")
    names: dict[str, str] = {}

    def leaf(kind: str, text: str | int) -> Any:
        if kind == "var":
            return unknown
        if kind == "const":
            return sympy.Integer(int(text))
        symbol = f"v{len(names)}"
        names[symbol] = steps[int(text)].name if kind == "ref" else str(text)
        return sympy.Symbol(symbol, positive=True)

    lhs, rhs = compute(step.parts, leaf), compute(step.rhs or [], leaf)
    if lhs is None or rhs is None:
        return None
    solutions = sympy.solve(sympy.Eq(lhs, rhs), unknown)
    if len(solutions) != 1:
        return None
    text = str(solutions[0])
    return re.sub(r"\bv\d+\b", lambda m: names[m.group()], text)


def _pot(steps: list[Step], keep: list[int]) -> str | None:
    """The PoT program: one assignment a step, ending ``ans = name``; None if one cannot be had."""
    body = []
    for i in keep:
        step = steps[i]
        expression = isolate(step, steps) if step.rhs is not None else render(step.parts, steps)
        if expression is None:
            return None
        body.append(f"{step.name} = {expression}")
    return "\n".join([*body, f"ans = {steps[keep[-1]].name}"])


def convert(question: str, solution: str, answer: float, comments: str = "sentence") -> Conversion:
    """CoT, PoT and EoT targets from one GSM8K rationale; raises ConversionError if impossible.

    EoT keeps the rationale's own equation when it has one (``3 * x + 3 = 18``); PoT then
    computes the unknown from the equation rearranged (``x = (18 - 3)/3``). `comments` is one of
    `COMMENT_STYLES`: EoT comments as whole sentences or as their words without the arithmetic.
    """
    if not ANNOTATION.search(solution) and "=" not in solution:
        raise ConversionError("no_calculation", "the rationale has no calculation")
    lines, steps = read_steps(solution, question)
    if not steps:
        raise ConversionError("no_calculation", "no calculation could be read")
    keep = answer_steps(steps, answer)
    name_steps(lines, steps, keep)
    return Conversion(
        cot=cot_text(lines, answer),
        pot=_pot(steps, keep),
        eot=_eot(lines, steps, keep, comments),
        steps=[steps[i] for i in keep],
    )
