"""Equation of thought: parse a system safely, solve it in the sandbox, explain the outcome."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from eotd.equation_parser import EquationSyntaxError, parse_system
from eotd.equation_solver import solve_system
from eotd.sandbox import run_in_sandbox

STATUSES = (
    "solved",
    "parse_error",
    "underdetermined",
    "inconsistent",
    "no_goal",
    "non_numeric",
    "timeout",
    "unavailable",
)


@dataclass
class EquationResult:
    """The outcome of solving one equation system.

    `values` holds every variable with a real value (re-assigned variables appear as
    ``name_vLINE`` for their earlier versions); `error` is a sentence a person can act on and
    `line` the 1-based line it is about; `repairs` lists what was fixed before solving and
    `notes` any choice the solver made (e.g. among several solutions).
    """

    status: str
    answer: float | None = None
    values: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    line: int | None = None
    repairs: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exact: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "solved"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def solve_equations(text: str, timeout: float = 5.0) -> EquationResult:
    """Solve an equation-of-thought system (XoT format) for its goal ``ans``.

    Never raises on bad input: every failure is a status with a message.
    """
    if not isinstance(text, str) or not text.strip():
        return EquationResult("parse_error", error="the system is empty: write one equation a line")
    try:
        system = parse_system(text)
    except EquationSyntaxError as err:
        status = "no_goal" if str(err).startswith("no goal") else "parse_error"
        return EquationResult(status, error=str(err), line=err.line)
    except RecursionError:
        return EquationResult("parse_error", error="the expressions are nested too deeply")

    outcome = run_in_sandbox(solve_system, system.equations, system.goal, timeout=timeout)
    if outcome.status in ("busy", "refused"):  # the sandbox did not run the solver
        return EquationResult("unavailable", error=outcome.error, repairs=system.repairs)
    if outcome.status != "ok":
        if outcome.status == "timeout":
            message = f"solving took longer than {timeout:g} s; simplify the system"
        elif outcome.status == "memory_error":
            message = "solving needed too much memory; simplify the system"
        else:
            message = f"the solver failed: {outcome.error}"
        status = "timeout" if outcome.status in ("timeout", "memory_error") else "non_numeric"
        return EquationResult(status, error=message, repairs=system.repairs)
    solved = outcome.value
    error = solved.error
    if error and solved.line:
        error = f"line {solved.line}: {error}"
    return EquationResult(
        status=solved.status,
        answer=solved.answer,
        values=solved.values,
        error=error,
        line=solved.line,
        repairs=system.repairs,
        notes=solved.notes,
        exact=solved.exact,
    )
