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

Nothing here evaluates text: expressions are read by a tokenizer and computed with `Fraction`
(SymPy rearranges the rare equation, built from the parsed parts). Verification against the gold
answer is done with the engine (`training.teachers.verify`).
"""

from __future__ import annotations

import builtins
import keyword
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from eotd.answers import same_answer

_ANNOTATION = re.compile(r"<<([^<>=]*)=([^<>]*)>>")
_NUMBER = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+"
_LEXER = re.compile(
    rf"(?P<num>(?:\$\s?)?(?:{_NUMBER})%?)|(?P<word>[A-Za-z][A-Za-z']*)|(?P<eq>=)"
    r"|(?P<op>//|[-+*/()×÷x–−^])|(?P<other>\S)"
)
_OPS = {"//": "/", "×": "*", "x": "*", "X": "*", "÷": "/", "–": "-", "−": "-", "^": "**"}
_STOP = frozenset(
    """
    a an the of in on at to for from by with his her their its
    my your our this that these those is are was were be been will would can
    could has have had does do did he she it they we you him them us
    me there so then which who all as into than more each every total also only
    just now if when after before while because but and or since first next finally thus
    therefore hence
    """.split()  # noqa: SIM905
)
_CLAUSE_END = {"and", "so", "because", "which", "if", "but", "when", "since", "then", "while"}
_RESERVED = (
    set(keyword.kwlist)
    | set(dir(builtins))
    | {"ans", "pi", "floor", "ceil", "sqrt", "oo", "nan", "inf", "math", "sympy"}
)
_MAX_NAME_WORDS = 3


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


# ---------------------------------------------------------------- numbers and exact arithmetic


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


def _evaluate(parts: list[tuple[str, str | int]], x: Fraction | None = None) -> Fraction | None:
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
            and tok.text.lower() not in _STOP
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
            value = _evaluate(parts) if parts else None
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
    value = _evaluate(parts) if parts else None
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
        left, right = _evaluate(lhs, x), _evaluate(rhs, x)
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
    return _ANNOTATION.sub("", raw)


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
        for m in _ANNOTATION.finditer(raw):
            at = m.start() - removed - offset  # position of the result in the clean line
            removed += m.end() - m.start()
            expr_tokens = [t for t in lex(m.group(1)) if t.kind != "other"]
            parts = _expression_parts(expr_tokens, percent_scale=True)
            value = _evaluate(parts) if parts else None
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


# ---------------------------------------------------------------- names


def _words(text: str) -> list[str]:
    return [
        w.lower().removesuffix("'s").strip("'") for w in re.findall(r"[A-Za-z][A-Za-z']*", text)
    ]


def _content(words: list[str]) -> list[str]:
    return [w for w in words if w not in _STOP and len(w) > 1 and w.isalpha()]


def _name_after(line: str, end: int) -> list[str]:
    """Content words right after a result: ``24 clips in May`` -> clips, may."""
    rest = re.split(r"[.,;:!?()=\d$]", line[end:], maxsplit=1)[0]
    words: list[str] = []
    for word in _words(rest):
        if word in _CLAUSE_END:
            break
        words.append(word)
    return _content(words)[:_MAX_NAME_WORDS]


def _name_before(line: str, start: int) -> list[str]:
    """Content words describing a calculation from the text before it."""
    before = line[:start]
    asked = re.search(r"how (?:many|much|long|far|old) ([A-Za-z' ]+)", before, re.I)
    if asked:
        return _content(_words(asked.group(1)))[:_MAX_NAME_WORDS]
    clause = re.split(r"[.;,:!?()=]", before.rstrip(" :=$"))[-1]
    return _content(_words(clause))[-_MAX_NAME_WORDS:]


def name_steps(lines: list[str], steps: list[Step], keep: list[int]) -> None:
    """Give each kept step a unique snake_case name taken from its sentence (the unknown: x).

    The words after the result come first (``24 clips in May``), then those before the
    calculation (``Betty's grandparents gave her``), then a numbered variant.
    """
    used: set[str] = {"x"}
    for n, i in enumerate(keep, start=1):
        step = steps[i]
        if step.rhs is not None:
            continue
        line = lines[step.line]
        candidates = [
            "_".join(words)
            for words in (_name_after(line, step.end), _name_before(line, step.start))
            if words
        ]
        candidates = [c + "_value" if c in _RESERVED else c for c in candidates] or [f"step{n}"]
        name = next((c for c in candidates if c not in used), None)
        k = 2
        while name is None:
            name = next((f"{c}_{k}" for c in candidates if f"{c}_{k}" not in used), None)
            k += 1
        used.add(name)
        step.name = name


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
    if not _ANNOTATION.search(solution) and "=" not in solution:
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
