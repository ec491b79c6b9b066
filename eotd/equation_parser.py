"""A whitelist parser for equation-of-thought systems (XoT format). Nothing here evaluates text.

A system is one equation ``lhs = rhs`` a line; ``%`` (or ``#``) lines are comments; blank lines are
skipped; the goal is the variable ``ans``, conventionally set by a final ``ans = name``.

Accepted inside expressions: numbers (``12``, ``1.5``, ``.5``, ``1,234``, ``15%``), ASCII names,
``+ - * / ** ^`` (``^`` means power), parentheses and the functions in `FUNCTIONS`.

Repairs, made only where the intent is unambiguous and each one reported:

- ``$`` signs are dropped; ``×``, ``÷`` and unicode minus signs become ``*``, ``/`` and ``-``;
- implicit multiplication: ``3x``, ``2(a + b)``, ``(a + b)(c + d)``;
- a unit word after a number (``5 dollars``) is dropped when it is not a variable of the system;
- a chained equation ``a = b = 5`` becomes two equations;
- a variable re-assigned imperatively (``total = total + 5`` after ``total = ...``) gets a new
  version.

The parse tree is made of plain tuples so that it can cross to the sandbox worker that solves it:
``("num", p, q)`` for the rational p/q, ``("var", name)``, ``("neg", x)``,
``(op, a, b)`` for op in ``+ - * / **``, and ``("call", function, (args...))``.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from dataclasses import dataclass, field
from fractions import Fraction

#: Functions allowed in equations, with their accepted numbers of arguments.
FUNCTIONS: dict[str, tuple[int, int]] = {
    "floor": (1, 1),
    "ceil": (1, 1),
    "round": (1, 2),
    "min": (1, 16),
    "max": (1, 16),
    "sqrt": (1, 1),
    "abs": (1, 1),
}
GOAL = "ans"
MAX_CHARS = 20_000
MAX_LINES = 300
MAX_DEPTH = 60
MAX_TOKENS_PER_LINE = 400

Tree = tuple


class EquationSyntaxError(ValueError):
    """A line that cannot be read as an equation; `line` is 1-based."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line = line


@dataclass
class Equation:
    """One parsed equation ``lhs = rhs`` from source line `line`."""

    lhs: Tree
    rhs: Tree
    line: int
    text: str


@dataclass
class ParsedSystem:
    """The parsed equations, the goal variable and the repairs made on the way."""

    equations: list[Equation]
    goal: str
    repairs: list[str] = field(default_factory=list)
    #: Renamed versions of re-assigned variables -> (original name, line of the re-assignment).
    versions: dict[str, tuple[str, int]] = field(default_factory=dict)


_UNICODE_OPERATORS = str.maketrans(
    {"×": "*", "·": "*", "⋅": "*", "÷": "/", "−": "-", "–": "-", "—": "-", "＝": "="}
)
_TOKEN_RE = re.compile(
    r"\s*(?:"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/^(),%$])"
    r")"
)
_SINGLE_LETTER_VARIABLES = set("abcdefghijklmnopqrstuvwxyz")


@dataclass
class _Token:
    kind: str  # num | name | op
    text: str
    after_number: bool = False  # directly follows a number with no operator between


def _tokenize(expr: str, line: int) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN_RE.match(expr, pos)
        if not m or m.end() == pos:
            bad = expr[pos:].lstrip()[:1]
            raise EquationSyntaxError(f"unexpected character {bad!r}", line)
        pos = m.end()
        kind = m.lastgroup or "op"
        tokens.append(_Token(kind, m.group(kind)))
        if len(tokens) > MAX_TOKENS_PER_LINE:
            raise EquationSyntaxError(f"too long (over {MAX_TOKENS_PER_LINE} tokens)", line)
    for prev, tok in itertools.pairwise(tokens):
        tok.after_number = prev.kind == "num" and tok.kind == "name"
    return tokens


class _Parser:
    """Recursive descent over one side of one equation."""

    def __init__(self, tokens: list[_Token], line: int, repairs: list[str]):
        self.tokens, self.line, self.repairs = tokens, line, repairs
        self.pos = 0
        self.depth = 0

    def error(self, message: str) -> EquationSyntaxError:
        return EquationSyntaxError(message, self.line)

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self, text: str | None = None) -> _Token | None:
        tok = self.peek()
        if tok is not None and (text is None or (tok.kind == "op" and tok.text == text)):
            self.pos += 1
            return tok
        return None

    def parse(self) -> Tree:
        if not self.tokens:
            raise self.error("one side of the equation is empty")
        tree = self.expr()
        tok = self.peek()
        if tok is not None:
            raise self.error(f"unexpected {tok.text!r}")
        return tree

    def nest(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"expression nested too deeply (over {MAX_DEPTH} levels)")

    def expr(self) -> Tree:
        self.nest()
        tree = self.term()
        while (op := self.take("+") or self.take("-")) is not None:
            tree = (op.text, tree, self.term())
        self.depth -= 1
        return tree

    def term(self) -> Tree:
        tree = self.unary()
        while True:
            op = self.take("*") or self.take("/")
            if op is not None:
                tree = (op.text, tree, self.unary())
            elif self._implicit_multiplication():
                tree = ("*", tree, self.unary())
            else:
                return tree

    def _implicit_multiplication(self) -> bool:
        """A number or closing parenthesis directly followed by a name, number or '('."""
        tok = self.peek()
        if tok is None or self.pos == 0:
            return False
        prev = self.tokens[self.pos - 1]
        ends_operand = prev.kind in ("num", "name") or prev.text in (")", "%")
        starts_operand = tok.kind in ("num", "name") or tok.text == "("
        if not (ends_operand and starts_operand):
            return False
        if prev.kind == "name" and tok.kind in ("name", "num"):
            raise self.error(f"missing operator between {prev.text!r} and {tok.text!r}")
        if prev.kind == "name" and prev.text not in FUNCTIONS:
            self.repairs.append(f"line {self.line}: read '{prev.text}(' as '{prev.text} * ('")
        else:
            self.repairs.append(
                f"line {self.line}: read '{prev.text}{tok.text}' as '{prev.text} * {tok.text}'"
            )
        return True

    def unary(self) -> Tree:
        self.nest()
        if self.take("-") is not None:
            tree: Tree = ("neg", self.unary())
        elif self.take("+") is not None:
            tree = self.unary()
        else:
            tree = self.power()
        self.depth -= 1
        return tree

    def power(self) -> Tree:
        base = self.postfix()
        op = self.take("**") or self.take("^")
        if op is not None:
            return ("**", base, self.unary())
        return base

    def postfix(self) -> Tree:
        tree = self.atom()
        while self.take("%") is not None:
            tree = ("/", tree, ("num", 100, 1))
        return tree

    def atom(self) -> Tree:
        tok = self.peek()
        if tok is None:
            raise self.error("the expression ends too early")
        if tok.kind == "num":
            self.pos += 1
            value = Fraction(tok.text.replace(",", ""))
            return ("num", value.numerator, value.denominator)
        if tok.kind == "name":
            self.pos += 1
            nxt = self.peek()
            if tok.text in FUNCTIONS and nxt is not None and nxt.text == "(":
                return self.call(tok.text)
            if tok.text in FUNCTIONS:
                raise self.error(f"function {tok.text!r} needs parentheses")
            return ("var", tok.text)
        if self.take("(") is not None:
            tree = self.expr()
            if self.take(")") is None:
                raise self.error("missing ')'")
            return tree
        raise self.error(f"unexpected {tok.text!r}")

    def call(self, name: str) -> Tree:
        self.take("(")
        args = [self.expr()]
        while self.take(",") is not None:
            args.append(self.expr())
        if self.take(")") is None:
            raise self.error(f"missing ')' after the arguments of {name}()")
        low, high = FUNCTIONS[name]
        if not low <= len(args) <= high:
            raise self.error(f"{name}() takes {low}-{high} arguments, got {len(args)}")
        return ("call", name, tuple(args))


def _names(tree: Tree) -> set[str]:
    """Every variable name in a tree."""
    if tree[0] == "var":
        return {tree[1]}
    if tree[0] == "num":
        return set()
    if tree[0] == "call":
        return set().union(*(_names(a) for a in tree[2]))
    return set().union(*(_names(child) for child in tree[1:]))


def _rename(tree: Tree, mapping: dict[str, str]) -> Tree:
    if tree[0] == "var":
        return ("var", mapping.get(tree[1], tree[1]))
    if tree[0] == "num":
        return tree
    if tree[0] == "call":
        return ("call", tree[1], tuple(_rename(a, mapping) for a in tree[2]))
    return (tree[0], *(_rename(child, mapping) for child in tree[1:]))


def _clean_line(raw: str) -> str | None:
    """The equation text of a line, or None for blank and comment lines."""
    text = unicodedata.normalize("NFKC", raw).translate(_UNICODE_OPERATORS).strip()
    if not text or text.startswith(("%", "#")):
        return None
    return text


def _drop_units(tokens: list[_Token], variables: set[str], line: int, repairs: list[str]) -> None:
    """Remove unit words right after numbers (``5 dollars``) that are not variables."""
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        is_unit = (
            tok.after_number
            and tok.text not in variables
            and tok.text not in FUNCTIONS
            and tok.text.lower() not in _SINGLE_LETTER_VARIABLES
        )
        if is_unit:
            repairs.append(f"line {line}: dropped the unit {tok.text!r} after {tokens[i - 1].text}")
            del tokens[i]
            if i < len(tokens):
                tokens[i].after_number = tokens[i].kind == "name"
            continue
        i += 1


def _split_sides(text: str, line: int, repairs: list[str]) -> list[str]:
    if "==" in text:
        text = text.replace("==", "=")
        repairs.append(f"line {line}: read '==' as '='")
    sides = text.split("=")
    if len(sides) < 2:
        raise EquationSyntaxError(
            "no '=': each line must be an equation 'left = right' (or a '%' comment)", line
        )
    if len(sides) > 2:
        repairs.append(f"line {line}: split the chained equation into {len(sides) - 1} equations")
    return sides


def parse_system(text: str) -> ParsedSystem:
    """Parse an equation system; raises EquationSyntaxError naming the offending line."""
    if len(text) > MAX_CHARS:
        raise EquationSyntaxError(f"the system is too long ({len(text):,} > {MAX_CHARS:,} chars)")
    raw_lines = text.splitlines()
    if len(raw_lines) > MAX_LINES:
        raise EquationSyntaxError(f"the system is too long ({len(raw_lines)} > {MAX_LINES} lines)")

    repairs: list[str] = []
    tokenized: list[tuple[int, str, list[list[_Token]]]] = []
    for number, raw in enumerate(raw_lines, start=1):
        clean = _clean_line(raw)
        if clean is None:
            continue
        if "$" in clean:
            clean = clean.replace("$", "")
            repairs.append(f"line {number}: dropped '$'")
        sides = _split_sides(clean, number, repairs)
        tokenized.append((number, clean, [_tokenize(side, number) for side in sides]))
    if not tokenized:
        raise EquationSyntaxError("there are no equations, only blank or comment lines")

    # Names used other than right after a number are the system's variables.
    variables = {
        tok.text
        for _, _, sides in tokenized
        for tokens in sides
        for tok in tokens
        if tok.kind == "name" and not tok.after_number
    }
    equations: list[Equation] = []
    for number, clean, sides in tokenized:
        trees = []
        for tokens in sides:
            _drop_units(tokens, variables, number, repairs)
            trees.append(_Parser(tokens, number, repairs).parse())
        equations.extend(
            Equation(lhs, rhs, number, clean) for lhs, rhs in itertools.pairwise(trees)
        )

    system = ParsedSystem(equations=equations, goal=GOAL, repairs=repairs)
    _version_reassignments(system)
    if not any(GOAL in _names(eq.lhs) | _names(eq.rhs) for eq in system.equations):
        raise EquationSyntaxError(
            "no goal: end the system with a line 'ans = name' naming the variable asked for"
        )
    return system


def _version_reassignments(system: ParsedSystem) -> None:
    """Give ``x = x + 5`` after an earlier ``x = ...`` a new version of x (imperative style)."""
    current: dict[str, str] = {}
    assigned: set[str] = set()
    for eq in system.equations:
        eq.rhs = _rename(eq.rhs, current)
        if eq.lhs[0] != "var":
            eq.lhs = _rename(eq.lhs, current)
            continue
        name = eq.lhs[1]
        latest = current.get(name, name)
        if latest in assigned and latest in _names(eq.rhs):
            version = f"{name}_v{eq.line}"
            current[name] = version
            system.versions[version] = (name, eq.line)
            system.repairs.append(
                f"line {eq.line}: '{name}' is re-assigned; read it as a new value of {name}"
            )
            eq.lhs = ("var", version)
        else:
            eq.lhs = ("var", latest)
        assigned.add(eq.lhs[1])
    if GOAL in current:
        # The goal is the last version of ans.
        system.goal = current[GOAL]
