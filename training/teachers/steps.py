"""A GSM8K rationale read into steps: each calculation (its calculator annotation, or a plain
``16 - 4 = 12``) as an expression over the question's numbers and earlier steps, computed exactly
with `Fraction`; an equation that solves for an unknown (``Let x be ...``) rearranged. Nothing
here evaluates text: a tokenizer reads the expressions."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

from training.teachers.exact import close, evaluate, number_text

ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+"
_LEXER = re.compile(
    rf"(?P<num>(?:\$\s?)?(?:{_NUMBER})%?)|(?P<word>[A-Za-z][A-Za-z']*)|(?P<eq>=)"
    r"|(?P<op>//|[-+*/()×÷x–−^])|(?P<other>\S)"
)
_OPS = {"//": "/", "×": "*", "x": "*", "X": "*", "÷": "/", "–": "-", "−": "-", "^": "**"}
STOP_WORDS = frozenset(
    """
    a an the of in on at to for from by with his her their its
    my your our this that these those is are was were be been will would can
    could has have had does do did he she it they we you him them us
    me there so then which who all as into than more each every total also only
    just now if when after before while because but and or since first next finally thus
    therefore hence
    """.split()  # noqa: SIM905
)


class ConversionError(ValueError):
    """A rationale that cannot be turned into steps; `reason` is a short drop-reason key."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class Token:
    """A lexer token of a clean rationale line; `start`/`end` are character offsets."""

    kind: str  # num | word | eq | op | other
    text: str
    start: int
    end: int


@dataclass
class Step:
    """One calculation: an expression over literals and earlier steps, with its exact value.

    `parts` holds ``("num", text)``, ``("const", text)``, ``("op", text)``, ``("var", "x")`` and
    ``("ref", step index)`` items. An equation step (``3 * x + 3 = 18``) has `rhs` parts too; its
    value is the unknown's, its name is the unknown's and `intro` is the line that introduced it.
    """

    parts: list[tuple[str, str | int]]
    value: Fraction
    line: int
    start: int
    end: int
    percent: bool = False  # the result is written as a percentage and `value` is its fraction
    name: str = ""
    rhs: list[tuple[str, str | int]] | None = None
    intro: int | None = None
    letter: str = ""

    def refs(self) -> set[int]:
        """Indexes of the earlier steps this one uses."""
        return {int(ref) for kind, ref in [*self.parts, *(self.rhs or [])] if kind == "ref"}


# ---------------------------------------------------------------- reading steps


def lex(line: str) -> list[Token]:
    """Split a clean rationale line into number, word, '=', operator and other tokens.

    A '/' followed by a word is part of a unit (``flowers/unicorn``, ``$0.14/kw``), not a division.
    """
    tokens: list[Token] = []
    for m in _LEXER.finditer(line):
        tok = Token(m.lastgroup or "other", m.group(), m.start(), m.end())
        if tok.kind == "word" and tok.text not in ("x", "X") and tokens and tokens[-1].text == "/":
            tokens[-1] = Token("word", "/" + tok.text, tokens[-1].start, tok.end)
            continue
        tokens.append(tok)
    return tokens


def _expression_parts(tokens: list[Token], percent_scale: bool) -> list[tuple[str, str]] | None:
    """Expression parts from calculation tokens; unit words dropped, ``40(.1)`` made ``40*(.1)``."""
    parts: list[tuple[str, str]] = []
    for tok in tokens:
        if tok.kind == "word" and tok.text not in ("x", "X"):
            continue
        if tok.kind == "num":
            if parts and (parts[-1][0] in ("num", "const") or parts[-1][1] == ")"):
                parts.append(("op", "*"))
            parts.append(("num", number_text(tok.text)))
            if tok.text.endswith("%") and percent_scale:
                parts += [("op", "/"), ("const", "100")]
        else:
            op = _OPS.get(tok.text, tok.text)
            if op == "(" and parts and (parts[-1][0] == "num" or parts[-1][1] == ")"):
                parts.append(("op", "*"))
            parts.append(("op", op))
    has_operator = any(kind == "op" and text not in "()" for kind, text in parts)
    return parts if has_operator else None


def _calculation_start(tokens: list[Token], eq_index: int) -> int:
    """Index of the first token of the calculation written left of the '=' at `eq_index`.

    Unit words are allowed between a number and an operator: ``16 tbs - 4 tbs =``.
    """
    i = eq_index
    words = 0  # consecutive unit words so far
    while i > 0:
        tok, right = tokens[i - 1], tokens[i]
        is_times = tok.kind == "word" and tok.text in ("x", "X")
        is_unit = (
            tok.kind == "word"
            and not is_times
            and tok.text.lower() not in STOP_WORDS
            and words < 3
            and right.kind in ("op", "eq", "word")
            and i >= 2
            and tokens[i - 2].kind in ("num", "word")
        )
        if not (tok.kind in ("num", "op") or is_times or is_unit):
            break
        words = words + 1 if is_unit else 0
        i -= 1
    while i < eq_index and (tokens[i].kind == "word" or tokens[i].text in ("*", "/", "+", ")")):
        i += 1  # a calculation starts with a number, '(' or '-'
    return i


def _plain_calculations(tokens: list[Token], hidden: set[int], line_no: int) -> list[Step]:
    """Calculations written without annotation, ``16 - 4 = 12``, as (unlinked) steps.

    A calculation is kept only when its expression computes the number written after '='
    (reading ``%`` either as a unit or as /100, whichever makes it true). A calculation assigned
    to a name, ``t=300/3``, is kept as it stands.
    """
    found = []
    for i, tok in enumerate(tokens):
        if tok.kind != "eq" or tok.start in hidden or i + 1 >= len(tokens):
            continue
        result = tokens[i + 1]
        after = tokens[i + 2] if i + 2 < len(tokens) else None
        if result.kind != "num":
            continue
        if after is not None and after.kind == "op" and after.text != ")":
            found += _assignment(tokens, i, line_no)
            continue
        start = _calculation_start(tokens, i)
        expr_tokens = tokens[start:i]
        if not expr_tokens or expr_tokens[-1].kind not in ("num", "word", "op"):
            continue
        stated = Fraction(number_text(result.text))
        for scale in (False, True):
            parts = _expression_parts(expr_tokens, percent_scale=scale)
            value = evaluate(parts) if parts else None
            if value is None:
                continue
            percent = scale and result.text.endswith("%")
            if close(value, stated / 100 if percent else stated):
                start = expr_tokens[0].start
                found.append(Step(list(parts), value, line_no, start, result.end, percent))
                break
    return found


def _assignment(tokens: list[Token], eq_index: int, line_no: int) -> list[Step]:
    """``name = expression`` with nothing after the expression (``t=300/3 trucks``), as a step."""
    name_before = eq_index == 1 or (eq_index >= 2 and tokens[eq_index - 2].kind != "num")
    if eq_index == 0 or tokens[eq_index - 1].kind != "word" or not name_before:
        return []
    k = eq_index + 1
    while k < len(tokens) and tokens[k].kind in ("num", "op"):
        k += 1
    if k < len(tokens) and tokens[k].kind == "eq":
        return []
    parts = _expression_parts(tokens[eq_index + 1 : k], percent_scale=True)
    value = evaluate(parts) if parts else None
    if value is None:
        return []
    return [Step(list(parts), value, line_no, tokens[eq_index + 1].start, tokens[k - 1].end)]


_LET = (
    re.compile(r"\blet\s+([A-Za-z])\s*(?:be\b|represent|stand|denote|equal|=)", re.I),
    re.compile(
        r"\blet\s+the\s[^.=]{0,100}?\s+be\s+(?:represented\s+by\s+|called\s+)?([A-Za-z])\b",
        re.I,
    ),
)


def unknown_letter(line: str) -> str | None:
    """The letter of an unknown a sentence introduces (``Let x be the number of ...``), if any."""
    for pattern in _LET:
        m = pattern.search(line)
        if m:
            return m.group(1)
    return None


def _side(tokens: list[Token], letter: str) -> list[tuple[str, str | int]] | None:
    """One side of an equation in the unknown `letter` (written ``x`` in the parts)."""
    parts: list[tuple[str, str | int]] = []
    for tok in tokens:
        if tok.kind == "num":
            item: tuple[str, str | int] = ("num", number_text(tok.text))
        elif tok.kind == "word" and tok.text == letter:
            item = ("var", "x")
        elif tok.kind == "op":
            item = ("op", _OPS.get(tok.text, tok.text))
        else:
            return None
        ends = parts and (parts[-1][0] in ("num", "var") or parts[-1][1] == ")")
        if ends and (item[0] in ("num", "var") or item[1] == "("):
            parts.append(("op", "*"))  # 3x, 2(x + 1)
        parts.append(item)
    return parts or None


def _solve_linear(
    lhs: list[tuple[str, str | int]], rhs: list[tuple[str, str | int]]
) -> Fraction | None:
    """The unknown of a linear equation lhs = rhs; None when it is not linear in one unknown."""
    h = []
    for x in (Fraction(1), Fraction(2), Fraction(3)):
        left, right = evaluate(lhs, x), evaluate(rhs, x)
        if left is None or right is None:
            return None
        h.append(left - right)
    slope = h[1] - h[0]
    if slope == 0 or h[2] - h[1] != slope:
        return None
    return 1 - h[0] / slope


def _equation(tokens: list[Token], letter: str, line_no: int) -> Step | None:
    """The first equation on a line that is linear in the unknown `letter` (``3N + 3 = 18``)."""

    def usable(tok: Token) -> bool:
        return tok.kind in ("num", "op") or (tok.kind == "word" and tok.text == letter)

    for i, tok in enumerate(tokens):
        if tok.kind != "eq":
            continue
        j, k = i, i + 1
        while j > 0 and usable(tokens[j - 1]):
            j -= 1
        while k < len(tokens) and usable(tokens[k]):
            k += 1
        lhs, rhs = _side(tokens[j:i], letter), _side(tokens[i + 1 : k], letter)
        if lhs is None or rhs is None or ("var", "x") not in lhs + rhs:
            continue
        value = _solve_linear(lhs, rhs)
        if value is not None:
            start, end = tokens[j].start, tokens[k - 1].end
            return Step(lhs, value, line_no, start, end, name="x", rhs=rhs, letter=letter)
    return None


def clean_line(raw: str) -> str:
    """A rationale line without its calculator annotations."""
    return ANNOTATION.sub("", raw)


def read_steps(solution: str, question: str) -> tuple[list[str], list[Step]]:
    """The clean rationale lines (without ``####``) and every calculation in them, in order.

    Literal numbers equal to an earlier step's value become references to that step, except a
    number that is also written in the question (then only the step just before is referenced).
    """
    question_numbers = {Fraction(number_text(m.group())) for m in re.finditer(_NUMBER, question)}
    lines: list[str] = []
    steps: list[Step] = []
    unknown: str | None = None  # the letter of an unknown the rationale introduces ("Let x be")
    intro = 0
    for raw in solution.splitlines():
        if raw.strip().startswith("####"):
            break
        line_no = len(lines)
        clean = clean_line(raw).strip()
        if not clean:
            continue
        offset = len(raw) - len(raw.lstrip())
        lines.append(clean)
        tokens = lex(clean)
        found: list[Step] = []
        hidden: set[int] = set()
        removed = 0
        for m in ANNOTATION.finditer(raw):
            at = m.start() - removed - offset  # position of the result in the clean line
            removed += m.end() - m.start()
            expr_tokens = [t for t in lex(m.group(1)) if t.kind != "other"]
            parts = _expression_parts(expr_tokens, percent_scale=True)
            value = evaluate(parts) if parts else None
            stated = re.fullmatch(rf"\s*-?(?:{_NUMBER})\s*", m.group(2))
            if value is None or not stated or not close(value, Fraction(number_text(m.group(2)))):
                continue
            result = re.match(rf"\s*\$?\s?(?:{_NUMBER})%?", clean[at:])
            end = at + (result.end() if result else 0)
            eq_index = next(
                (i for i in range(len(tokens) - 1, -1, -1) if tokens[i].end <= at), None
            )
            start = at
            while eq_index is not None and tokens[eq_index].kind != "eq" and eq_index > 0:
                if tokens[eq_index].text == "$":
                    eq_index -= 1
                    continue
                break
            if eq_index is not None and tokens[eq_index].kind == "eq":
                hidden.add(tokens[eq_index].start)
                first = _calculation_start(tokens, eq_index)
                start = tokens[first].start if first < eq_index else tokens[eq_index].start
            found.append(Step(list(parts), value, line_no, start, end))
        found += _plain_calculations(tokens, hidden, line_no)
        if unknown is None and (letter := unknown_letter(clean)) is not None:
            unknown, intro = letter, line_no
        if unknown is not None and not any(step.rhs for step in steps):
            equation = _equation(tokens, unknown, line_no)
            if equation is not None:
                equation.intro = intro
                found.append(equation)
        for step in sorted(found, key=lambda f: f.end):
            step.parts = _link(step.parts, steps, question_numbers)
            if step.rhs is not None:
                step.rhs = _link(step.rhs, steps, question_numbers)
            steps.append(step)
    return lines, steps


def _link(
    parts: list[tuple[str, str | int]], steps: list[Step], question_numbers: set[Fraction]
) -> list[tuple[str, str | int]]:
    """Replace literals equal to an earlier step's value by a reference to that step."""
    linked: list[tuple[str, str | int]] = []
    for kind, text in parts:
        if kind == "num" and steps:
            value = Fraction(text)
            match = next(
                (i for i in range(len(steps) - 1, -1, -1) if steps[i].value == value), None
            )
            in_question = value in question_numbers
            if match is not None and (not in_question or match == len(steps) - 1):
                linked.append(("ref", match))
                continue
        linked.append((kind, text))
    return linked


def _closure(steps: list[Step], goal: int) -> list[int]:
    """Indexes of the steps `goal` depends on, itself included, in order."""
    needed = {goal}
    for i in range(goal, -1, -1):
        if i in needed:
            needed.update(steps[i].refs())
    return sorted(needed)


def answer_steps(steps: list[Step], gold: float) -> list[int]:
    """Indexes of the steps the answer depends on, in order; the last one computes the answer.

    A gold answer that is a percentage computed as a fraction (``75% * 80% = 60%``, gold 60)
    gets one more step, ``fraction * 100``.
    """
    for scaled in (False, True):
        for goal in range(len(steps) - 1, -1, -1):
            step = steps[goal]
            value = step.value * 100 if scaled else step.value
            if not close(value, gold) or (scaled and not step.percent):
                continue
            needed = _closure(steps, goal)
            if scaled:
                parts: list[tuple[str, str | int]] = [("ref", goal), ("op", "*"), ("const", "100")]
                steps.append(Step(parts, step.value * 100, step.line, step.start, step.end))
                needed.append(len(steps) - 1)
            return needed
    raise ConversionError("no_step_reaches_gold", "no calculation gives the gold answer")
