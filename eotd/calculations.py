"""The calculations a thought writes in prose ("48 / 2 = 24"): found, checked and redone.

A chain of thought states its arithmetic; a 135M student often slips ("384 x 2 = 668") and then
carries the wrong result on to its answer. GSM8K's own solutions were written with a calculator
for this reason. :func:`redo` is that calculator, applied after the fact: it recomputes every
calculation in order, carries each corrected result into the later ones that used the wrong
value, and returns the answer the text would have reached. Expressions are parsed by hand (numbers
and + - * x / only, the usual precedence); model text is never evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from eotd.answers import same_answer

# A number as prose writes it: "$1,200.50", "20%", "48"; thousands commas only in groups of three.
_NUMBER = r"\$?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?"
_OPERAND = rf"-?{_NUMBER}"  # a leading minus belongs to the number
_OPERATOR = r"[-+*/x\u00d7\u00f7]"
# "16 x 3 = 48", "$2 * 192 = $384", "20% x 50 = 10", "3 - 5 = -2", of at most MAX_TERMS terms
# (a longer chain is not checked; the cap also keeps matching linear in the text's length).
MAX_TERMS = 12
_CALCULATION = re.compile(
    # not inside a word, a time, a number or a longer chain ("90 hours x 1/3": not "1/3")
    rf"(?<![\w.:,$-])(?<![-+*/\u00d7\u00f7]\s)(?<![\s(]x\s)(?<![\s(]X\s)"
    rf"({_OPERAND}(?:\s*{_OPERATOR}\s*{_NUMBER}){{1,{MAX_TERMS - 1}}})\s*=\s*({_OPERAND})"
    rf"(?!\d)(?![\w.,:]\d)"  # the whole result: not "12" of "12,5" or "12:30"
)
_STEP = re.compile(rf"\s*({_OPERATOR})\s*({_NUMBER})")  # an operator and the number after it
_ALONE = re.compile(rf"-?{_NUMBER}")


@dataclass(frozen=True)
class Calculation:
    """One written calculation: its operands and operators, and the result written for it."""

    operands: tuple[float, ...]
    operators: tuple[str, ...]
    written: float  # the result as a number: "80%" is 0.8
    decimals: int  # of the written result: "3.33" is right for 10 / 3
    percent: bool = False  # the result is written in percent
    bare_percent: bool = False  # ... and the operands are not: "100 - 20 = 80%"


def _number(text: str) -> float:
    value = float(text.replace("$", "").replace(",", "").rstrip("%"))
    return value / 100 if text.endswith("%") else value


def calculations(text: str) -> list[Calculation]:
    """Every calculation written in ``text``, in order."""
    found = []
    for expression, result in _CALCULATION.findall(text):
        first = _ALONE.match(expression)
        assert first is not None  # the pattern starts with an operand
        operands, operators = [_number(first.group())], []
        for op, operand in _STEP.findall(expression, first.end()):
            operators.append(op)
            operands.append(_number(operand))
        found.append(
            Calculation(
                tuple(operands),
                tuple(operators),
                _number(result),
                len(result.rstrip("%").partition(".")[2]),
                result.endswith("%"),
                result.endswith("%") and "%" not in expression,
            )
        )
    return found


def evaluate(operands: Sequence[float], operators: Sequence[str]) -> float | None:
    """``a op b op c ...`` with products and quotients first; None on a division by zero."""
    terms, signs = [operands[0]], []
    for op, value in zip(operators, operands[1:], strict=True):
        if op in "*x\u00d7":
            terms[-1] *= value
        elif op in "/\u00f7":
            if value == 0:
                return None
            terms[-1] /= value
        else:
            signs.append(op)
            terms.append(value)
    return terms[0] + sum(v if op == "+" else -v for op, v in zip(signs, terms[1:], strict=True))


def _right(c: Calculation, value: float) -> bool:
    """Whether ``value`` is what ``c`` wrote, to the nearest unit of the last decimal written
    ("3.33" for 10 / 3). A result in percent is compared in percent; a bare one ("100 - 20 =
    80%") may be the value itself or the value as a percentage ("0.2 x 100 = 20%")."""
    tolerance = 0.5 * 10.0**-c.decimals + 1e-9
    shown = c.written * 100 if c.percent else c.written  # the number as written: 80 for "80%"
    if not c.percent:
        options = [value]
    elif c.bare_percent:
        options = [value, value * 100]
    else:
        options = [value * 100]
    return any(abs(v - shown) <= tolerance or same_answer(v, shown) for v in options)


def calculations_check(text: str) -> bool:
    """True when every calculation written in ``text`` is right to the decimals its result is
    written with (a text with none passes)."""
    return all(
        value is None or _right(c, value)
        for c in calculations(text)
        for value in [evaluate(c.operands, c.operators)]
    )


def redo(text: str, answer: float | None) -> float | None:
    """The answer ``text`` reaches when its calculations are redone: each wrong result is
    replaced by the right one in the calculations that follow, and ``answer`` (the stated one)
    follows the result it repeats; a result computed right again stops being replaced.
    Unchanged when the text's arithmetic holds. A number of the question is replaced too when a
    slip wrote it as a result ("20 + 300 = 300"): on held-out problems that is the commoner case
    (sparing the question's numbers lost 0.7 points of the selector's accuracy)."""
    if answer is None:
        return None
    fixed: dict[float, float] = {}  # a written wrong result -> its right value

    def corrected(x: float) -> float:
        return next((right for wrong, right in fixed.items() if same_answer(x, wrong)), x)

    for c in calculations(text):
        value = evaluate([corrected(x) for x in c.operands], c.operators)
        if value is None:
            continue
        for wrong in [w for w in fixed if same_answer(w, c.written)]:
            del fixed[wrong]  # the latest calculation that wrote this number decides
        if not _right(c, value) and not c.percent:  # a percentage's unit is ambiguous
            fixed[c.written] = value
    return corrected(answer)
