"""EoTD: the reasoning engine (equations, programs, answers, vote) and the student model."""

from eotd.answers import extract_answer, same_answer
from eotd.equations import EquationResult, solve_equations
from eotd.program import ProgramResult, run_program
from eotd.vote import Vote, vote

__all__ = [
    "EquationResult",
    "ProgramResult",
    "Vote",
    "extract_answer",
    "run_program",
    "same_answer",
    "solve_equations",
    "vote",
]
