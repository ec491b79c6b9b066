"""Numbers as rationales write them, and exact arithmetic over parsed expressions (`Fraction`)."""

from __future__ import annotations

from collections.abc import Callable
from fractions import Fraction
from typing import Any

from eotd.answers import same_answer


def number_text(text: str) -> str:
    """A number as written (``$1,200``, ``.5``, ``05``) in canonical literal form (``1200``)."""
    text = text.replace("$", "").replace(",", "").replace("%", "").strip()
    sign = "-" if text.startswith("-") else ""
    whole, dot, frac = text.lstrip("-").partition(".")
    whole = str(int(whole)) if whole else "0"
    frac = frac.rstrip("0") if dot else ""
    return sign + (f"{whole}.{frac}" if frac else whole)


def format_number(value: Fraction | float | int) -> str:
    """A value as a short decimal literal: ``24``, ``0.2``, ``1.3333333333``."""
    value = Fraction(value) if not isinstance(value, Fraction) else value
    if value.denominator == 1:
        return str(value.numerator)
    text = f"{float(value):.10f}".rstrip("0").rstrip(".")
    return text if text not in ("-0", "") else "0"


def evaluate(parts: list[tuple[str, str | int]], x: Fraction | None = None) -> Fraction | None:
    """Exact value of an expression (precedence climbing) with the unknown set to `x`.

    None if the expression is invalid or divides by zero.
    """

    def leaf(kind: str, text: str | int) -> Fraction | None:
        if kind == "var":
            return x
        return Fraction(str(text)) if kind in ("num", "const") else None

    return compute(parts, leaf)


def compute(parts: list[tuple[str, str | int]], leaf: Callable[[str, str | int], Any]) -> Any:
    """Compute an expression over any number-like values; `leaf` gives the value of an operand.

    Returns None if the expression is invalid, divides by zero or raises to a huge power.
    """
    pos = 0

    def peek() -> tuple[str, str | int] | None:
        return parts[pos] if pos < len(parts) else None

    def atom() -> Any:
        nonlocal pos
        item = peek()
        if item is None:
            return None
        pos += 1
        kind, text = item
        if kind != "op":
            return leaf(kind, text)
        if text == "-":
            inner = atom()
            return None if inner is None else -inner
        if text == "(":
            inner = expr()
            if peek() != ("op", ")"):
                return None
            pos += 1
            return inner
        return None

    def power() -> Any:
        nonlocal pos
        base = atom()
        if base is not None and peek() == ("op", "**"):
            pos += 1
            exp = power()
            if not isinstance(exp, Fraction) or exp.denominator != 1 or abs(exp) > 64:
                return None
            if base == 0 and exp < 0:
                return None
            return base**exp
        return base

    def term() -> Any:
        nonlocal pos
        left = power()
        while left is not None and peek() in (("op", "*"), ("op", "/")):
            op = parts[pos][1]
            pos += 1
            right = power()
            if right is None or (op == "/" and right == 0):
                return None
            left = left * right if op == "*" else left / right
        return left

    def expr() -> Any:
        nonlocal pos
        left = term()
        while left is not None and peek() in (("op", "+"), ("op", "-")):
            op = parts[pos][1]
            pos += 1
            right = term()
            if right is None:
                return None
            left = left + right if op == "+" else left - right
        return left

    value = expr()
    return value if pos == len(parts) else None


def close(a: Fraction | float, b: Fraction | float) -> bool:
    """Equal within the engine's answer tolerance (``eotd.answers.same_answer``)."""
    return same_answer(float(a), float(b))
