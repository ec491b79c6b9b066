"""EoTD: the reasoning engine (equations, programs, answers, vote) and the student model."""

from eotd.answers import extract_answer, same_answer
from eotd.equations import EquationResult, solve_equations
from eotd.execution import Status, ThoughtResult, execute
from eotd.program import ProgramResult, run_program
from eotd.vote import Vote, vote

__all__ = [
    "EquationResult",
    "ProgramResult",
    "Status",
    "ThoughtResult",
    "Vote",
    "execute",
    "extract_answer",
    "run_program",
    "same_answer",
    "solve_equations",
    "vote",
]
