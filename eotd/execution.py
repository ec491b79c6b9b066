"""Run a written thought with the engine: read a CoT's answer, run a PoT, solve an EoT.

``execute`` is the one way every part of the project (the student, the store, the teachers'
checks, the app's live re-solve) turns a thought's text into a :class:`ThoughtResult`, whose
``status`` is one word of :class:`Status` for the same outcome everywhere.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum

from eotd.answers import extract_answer
from eotd.equations import solve_equations
from eotd.program import run_program
from eotd.prompts import THOUGHTS


class Status(StrEnum):
    """What the engine made of a thought (a ``str``, so it stores and serialises as itself)."""

    ANSWERED = "answered"  # CoT: a final answer was read
    OK = "ok"  # PoT: the program ran and set ``ans``
    SOLVED = "solved"  # EoT: the system was solved for ``ans``
    NO_ANSWER = "no_answer"  # CoT without a final answer, PoT without ``ans``
    SYNTAX_ERROR = "syntax_error"
    FORBIDDEN = "forbidden"
    RUNTIME_ERROR = "runtime_error"
    MEMORY_ERROR = "memory_error"
    PARSE_ERROR = "parse_error"
    UNDERDETERMINED = "underdetermined"
    INCONSISTENT = "inconsistent"
    NO_GOAL = "no_goal"
    NON_NUMERIC = "non_numeric"
    TIMEOUT = "timeout"
    UNAVAILABLE = "unavailable"  # the sandbox did not run it (busy, or not confined)


#: The statuses of a thought that gave an answer, one per kind of thought.
ANSWERED = frozenset({Status.ANSWERED, Status.OK, Status.SOLVED})


@dataclass
class ThoughtResult:
    """One written thought, executed: CoT read, PoT run, EoT solved."""

    thought: str
    text: str
    answer: float | None
    status: str  # a Status
    error: str | None = None
    line: int | None = None  # 1-based line the solver or the program complained about
    sample: int = 0
    new_tokens: int = 0
    finished: bool = True  # False when the thought ran into max_new_tokens
    values: dict[str, float] = field(default_factory=dict)  # EoT: solved; PoT: final variables
    stdout: str = ""  # PoT: what the program printed
    # The model's mean log-probability per written token (its end token included): how sure it
    # was of the text. None where unknown (a corrected text, or predictions saved before it).
    mean_logprob: float | None = None

    @property
    def ok(self) -> bool:
        """The thought gave an answer."""
        return self.status in ANSWERED and self.answer is not None

    def to_dict(self) -> dict:
        return asdict(self)


def execute(thought: str, text: str, timeout: float = 5.0) -> ThoughtResult:
    """Turn a written thought into an answer with the engine (``timeout``: seconds for a
    program or an equation system, in the sandbox)."""
    if thought == "cot":
        answer = extract_answer(text)
        if answer is None:
            return ThoughtResult(
                thought, text, None, Status.NO_ANSWER,
                'no final answer found; end with "The answer is N."',
            )  # fmt: skip
        return ThoughtResult(thought, text, answer, Status.ANSWERED)
    if thought == "pot":
        p = run_program(text, timeout=timeout)
        return ThoughtResult(
            thought, text, p.answer, Status(p.status), p.error, p.line, values=p.values,
            stdout=p.stdout,
        )  # fmt: skip
    if thought == "eot":
        r = solve_equations(text, timeout=timeout)
        return ThoughtResult(
            thought, text, r.answer, Status(r.status), r.error, r.line, values=dict(r.values)
        )
    raise ValueError(f"unknown thought {thought!r}; use one of {', '.join(THOUGHTS)}")
