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

_OPERAND = r"\$?\d[\d,]*(?:\.\d+)?%?"
_OPERATOR = r"[-+*/x\u00d7\u00f7]"
# "16 x 3 = 48", "$2 * 192 = $384", "20% x 50 = 10"
_CALCULATION = re.compile(rf"({_OPERAND}(?:\s*{_OPERATOR}\s*{_OPERAND})+)\s*=\s*({_OPERAND})")
_TOKEN = re.compile(rf"{_OPERAND}|{_OPERATOR}")


@dataclass(frozen=True)
class Calculation:
    """One written calculation: its operands and operators, and the result written for it."""

    operands: tuple[float, ...]
    operators: tuple[str, ...]
    written: float
    decimals: int  # of the written result: "3.33" is right for 10 / 3


def _number(text: str) -> float:
    value = float(text.replace("$", "").replace(",", "").rstrip("%"))
    return value / 100 if text.endswith("%") else value


def calculations(text: str) -> list[Calculation]:
    """Every calculation written in ``text``, in order."""
    found = []
    for expression, result in _CALCULATION.findall(text):
        tokens = _TOKEN.findall(expression)
        found.append(
            Calculation(
                tuple(_number(t) for t in tokens[::2]),
                tuple(tokens[1::2]),
                _number(result),
                len(result.rstrip("%").partition(".")[2]),
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
    return same_answer(round(value, c.decimals), c.written)


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
    replaced by the right one, in the calculations that follow too; ``answer`` (the stated one)
    follows the result it repeats. Unchanged when the text's arithmetic holds."""
    if answer is None:
        return None
    fixed: list[tuple[float, float]] = []  # (written wrong result, right result)

    def corrected(x: float) -> float:
        return next((right for wrong, right in fixed if same_answer(x, wrong)), x)

    for c in calculations(text):
        value = evaluate([corrected(x) for x in c.operands], c.operators)
        if value is not None and not _right(c, value):
            fixed.append((c.written, value))
    return corrected(answer)
