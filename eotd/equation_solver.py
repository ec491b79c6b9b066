"""Solve a parsed equation system exactly with SymPy. Runs inside a sandbox worker.

Strategy: propagate values first (each equation with a single unknown is solved for it, linearly
when it can be: the fast path for the step-by-step systems students write), then hand what is left
to SymPy's linear solver, or its general solver for nonlinear systems, and propagate again.
When an equation has several solutions the choice is deterministic: real before complex, positive
before the rest, then the smallest; the result says so.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sympy
from sympy.solvers.solveset import NonlinearError

from eotd.equation_parser import Equation, Tree

#: Powers with a larger exponent (and a base other than 0, 1 and -1) are refused, not computed.
MAX_EXPONENT = 1000

_FUNCTIONS = {
    "floor": sympy.floor,
    "ceil": sympy.ceiling,
    "sqrt": sympy.sqrt,
    "abs": sympy.Abs,
    "min": sympy.Min,
    "max": sympy.Max,
}


Pending = list[tuple[Equation, sympy.Expr]]
Known = dict[sympy.Symbol, sympy.Expr]


class _Unsolvable(Exception):
    def __init__(self, status: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.line = status, message, line


@dataclass
class SolveOutcome:
    """What the worker sends back; plain data only."""

    status: str
    answer: float | None = None
    exact: str | None = None
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    line: int | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _round(x: sympy.Expr, digits: sympy.Expr | int = 0) -> sympy.Expr:
    """Round half away from zero to `digits` decimals (Python's round() rounds half to even)."""
    scale = sympy.Integer(10) ** digits
    return sympy.sign(x) * sympy.floor(sympy.Abs(x) * scale + sympy.Rational(1, 2)) / scale


def _build(tree: Tree, line: int, symbols: dict[str, sympy.Symbol]) -> sympy.Expr:
    kind = tree[0]
    if kind == "num":
        return sympy.Rational(tree[1], tree[2])
    if kind == "var":
        if tree[1] not in symbols:
            symbols[tree[1]] = sympy.Symbol(tree[1])
        return symbols[tree[1]]
    if kind == "neg":
        return -_build(tree[1], line, symbols)
    if kind == "call":
        args = [_build(a, line, symbols) for a in tree[2]]
        return _round(*args) if tree[1] == "round" else _FUNCTIONS[tree[1]](*args)
    a, b = _build(tree[1], line, symbols), _build(tree[2], line, symbols)
    if kind == "+":
        return a + b
    if kind == "-":
        return a - b
    if kind == "*":
        return a * b
    if kind == "/":
        if b == 0:
            raise _Unsolvable("non_numeric", "division by zero", line)
        return a / b
    if b.is_number and abs(b) > MAX_EXPONENT and not (a.is_number and abs(a) in (0, 1)):
        raise _Unsolvable("non_numeric", "a power with an exponent over 1000 is too large", line)
    return a**b


def _show(value: sympy.Expr) -> str:
    """A short human form of a number: 3, 0.25, 2*I."""
    number = complex(sympy.N(value))
    return f"{number.real:g}" if number.imag == 0 else str(sympy.N(value, 4))


def _positive(value: sympy.Expr) -> bool:
    number = complex(sympy.N(value))
    return number.imag == 0 and number.real > 0


def _pick(solutions: list[sympy.Expr], name: str, notes: list[str]) -> sympy.Expr:
    """Choose one of several solutions deterministically, and note the choice."""
    unique = list(dict.fromkeys(sympy.nsimplify(s) if s.is_Float else s for s in solutions))
    if len(unique) == 1:
        return unique[0]
    real = [s for s in unique if s.is_real]
    pool = real or unique

    chosen = min(pool, key=lambda s: (not _positive(s), abs(complex(sympy.N(s)))))
    listed = ", ".join(_show(s) for s in unique)
    notes.append(f"{name} has {len(unique)} solutions ({listed}); chose {_show(chosen)}")
    return chosen


def _solve_one(expr: sympy.Expr, symbol: sympy.Symbol, line: int, notes: list[str]) -> sympy.Expr:
    """Solve expr = 0 for one symbol: linear fast path, else SymPy's solver."""
    slope = sympy.diff(expr, symbol)
    if slope.is_number and not slope.has(sympy.Subs, sympy.Derivative):
        if slope == 0:
            raise _Unsolvable("inconsistent", "this equation contradicts the others", line)
        return sympy.simplify(-expr.subs(symbol, 0) / slope)
    try:
        solutions = sympy.solve(expr, symbol)
    except NotImplementedError:
        raise _Unsolvable(
            "non_numeric", f"SymPy cannot solve this equation for {symbol}", line
        ) from None
    if not solutions:
        raise _Unsolvable("inconsistent", f"no value of {symbol} satisfies this equation", line)
    return _pick(solutions, str(symbol), notes)


def _check(expr: sympy.Expr, eq: Equation) -> None:
    """An equation with no unknown left must hold."""
    value = sympy.N(expr, 30)
    if not value.is_number:
        raise _Unsolvable("non_numeric", "this equation does not evaluate to a number", eq.line)
    if abs(complex(value)) > 1e-9:
        raise _Unsolvable("inconsistent", f"'{eq.text}' contradicts the lines before it", eq.line)


def _propagate(
    pending: list[tuple[Equation, sympy.Expr]],
    known: dict[sympy.Symbol, sympy.Expr],
    notes: list[str],
) -> list[tuple[Equation, sympy.Expr]]:
    """Solve every equation that has one unknown, repeatedly; return the rest."""
    progress = True
    while progress:
        progress = False
        rest = []
        for eq, expr in pending:
            expr = expr.xreplace(known)
            unknowns = expr.free_symbols
            if not unknowns:
                _check(expr, eq)
                progress = True
            elif len(unknowns) == 1:
                (symbol,) = unknowns
                known[symbol] = _solve_one(expr, symbol, eq.line, notes)
                progress = True
            else:
                rest.append((eq, expr))
        pending = rest
    return pending


def _solve_jointly(
    pending: list[tuple[Equation, sympy.Expr]],
    known: dict[sympy.Symbol, sympy.Expr],
    notes: list[str],
) -> bool:
    """Solve the remaining coupled equations together; True if anything new became known."""
    exprs = [expr.xreplace(known) for _, expr in pending]
    symbols = sorted(set().union(*(e.free_symbols for e in exprs)), key=str)
    lines = ", ".join(str(eq.line) for eq, _ in pending)
    try:
        sympy.linear_eq_to_matrix(exprs, symbols)
        linear = True
    except (NonlinearError, ValueError):
        linear = False
    if linear:
        solution_set = sympy.linsolve(exprs, symbols)
        if solution_set == sympy.EmptySet:
            raise _Unsolvable(
                "inconsistent", f"the equations on lines {lines} contradict each other"
            )
        (solution,) = tuple(solution_set)
        found = dict(zip(symbols, solution, strict=True))
    else:
        try:
            solutions = sympy.solve(exprs, symbols, dict=True)
        except NotImplementedError:
            raise _Unsolvable("non_numeric", f"SymPy cannot solve lines {lines} together") from None
        if not solutions:
            raise _Unsolvable("inconsistent", f"the equations on lines {lines} have no solution")
        if len(solutions) > 1:
            notes.append(
                f"the equations on lines {lines} have {len(solutions)} solutions; "
                "chose the one with the most positive values"
            )
            solutions.sort(key=lambda sol: sum(not _positive(v) for v in sol.values()))
        found = solutions[0]
    new = {s: v for s, v in found.items() if not v.free_symbols}
    known.update(new)
    return bool(new)


def solve_system(equations: list[Equation], goal: str) -> SolveOutcome:
    """Solve `equations` for `goal`; every failure becomes a status with a message and line."""
    notes: list[str] = []
    known: dict[sympy.Symbol, sympy.Expr] = {}
    symbols: dict[str, sympy.Symbol] = {}
    try:
        pending = [
            (eq, _build(eq.lhs, eq.line, symbols) - _build(eq.rhs, eq.line, symbols))
            for eq in equations
        ]
        pending = _propagate(pending, known, notes)
        while pending and _solve_jointly(pending, known, notes):
            pending = _propagate(pending, known, notes)
    except _Unsolvable as failure:
        return SolveOutcome(failure.status, error=failure.message, line=failure.line, notes=notes)

    values = {}
    for symbol, value in known.items():
        number = complex(sympy.N(value, 30))
        if number.imag == 0:
            values[str(symbol)] = number.real
    goal_symbol = symbols.get(goal)
    if goal_symbol not in known:
        missing = sorted(str(s) for s in symbols.values() if s not in known and str(s) != goal)
        line = pending[0][0].line if pending else None
        return SolveOutcome(
            "underdetermined",
            values=values,
            error=(
                f"the equations do not determine {goal}: "
                f"{', '.join(missing) or goal} {'has' if len(missing) < 2 else 'have'} no value; "
                "add an equation that fixes it"
            ),
            line=line,
            notes=notes,
        )
    exact = known[goal_symbol]
    if goal not in values:
        return SolveOutcome(
            "non_numeric",
            values=values,
            error=f"{goal} is not a real number ({_show(exact)})",
            notes=notes,
        )
    return SolveOutcome("solved", answer=values[goal], exact=str(exact), values=values, notes=notes)
