"""What the engine did with each written thought, and how a solve is kept in the store."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field

from db import Store
from db.access import Actor
from eotd import same_answer
from eotd.execution import ANSWERED, ThoughtResult, execute
from eotd.prompts import THOUGHTS
from eotd.student import Progress
from eotd.verifier import DEFAULT_STRATEGY, choose

MAX_QUESTION_CHARS = 2000
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|"
    r"fifty|hundred|thousand|million|half|twice|double|triple|dozen|third|quarter)\b",
    re.IGNORECASE,
)
WRITING = "writing"  # a thought's status while the student is still writing it


class InputError(ValueError):
    """Bad input from a user; the message says what to do."""


def check_question(question: str | None) -> str:
    """The question, stripped, or :class:`InputError` when it is empty, too long or not math."""
    text = (question or "").strip()
    if not text:
        raise InputError("The question is empty: type a math word problem or pick an example.")
    if len(text) > MAX_QUESTION_CHARS:
        raise InputError(
            f"The question is {len(text):,} characters long; the limit is "
            f"{MAX_QUESTION_CHARS:,}. Shorten it to the problem itself."
        )
    if not _NUMBER.search(text):
        raise InputError(
            "That does not look like a math word problem: it has no numbers in it. "
            "Ask something like 'Tom has 3 apples and buys 5 more. How many does he have?'"
        )
    return text


@dataclass
class ThoughtView:
    """One thought as written and as the engine read it: for EoT the solved variables, for PoT
    the program's printed output."""

    thought: str
    text: str
    status: str
    answer: float | None
    error: str | None = None
    line: int | None = None
    values: dict[str, float] = field(default_factory=dict)
    stdout: str = ""
    finished: bool = True
    generation_id: int | None = None
    mean_logprob: float | None = None  # the model's, when the student wrote it

    @property
    def ok(self) -> bool:
        return self.status in ANSWERED and self.answer is not None

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def view_of(result: ThoughtResult) -> ThoughtView:
    """The view of a thought the engine has already executed (by the student or by `examine`)."""
    return ThoughtView(
        result.thought, result.text, result.status, result.answer, result.error, result.line,
        dict(result.values), result.stdout, result.finished, mean_logprob=result.mean_logprob,
    )  # fmt: skip


def examine(thought: str, text: str, timeout: float = 5.0) -> ThoughtView:
    """Run the engine on an edited thought's text and keep what is worth showing."""
    return view_of(execute(thought, text, timeout))


@dataclass
class Verdict:
    """The answer chosen from a solve's thoughts, and whether it matches a known gold answer."""

    answer: float | None
    supporters: list[str]
    strategy: str
    explanation: str
    correct: bool | None  # None when the gold answer is unknown
    confidence: float | None = None  # verified: the selector's probability that it is right


def decide(
    question: str,
    views: Sequence[ThoughtView],
    gold: float | None,
    strategy: str = DEFAULT_STRATEGY,
) -> Verdict:
    """Choose the answer of the thoughts (see ``eotd.verifier.choose``)."""
    v = choose(question, views, strategy)
    correct = None if gold is None else same_answer(v.answer, gold)
    return Verdict(v.answer, list(v.supporters), v.strategy, v.explanation, correct, v.confidence)


@dataclass
class ProblemRef:
    """A question with what is known about it: its gold answer and where it came from."""

    question: str
    gold: float | None = None
    source: str | None = None
    source_id: str | None = None


@dataclass
class SolveState:
    """A solve in progress or done: the stored problem, the thoughts so far and the vote."""

    problem_id: int
    problem: ProblemRef
    thoughts: dict[str, ThoughtView] = field(default_factory=dict)
    verdict: Verdict | None = None
    model_version_id: int | None = None
    model_name: str = ""

    @property
    def done(self) -> bool:
        return self.verdict is not None

    def to_dict(self) -> dict:
        return {
            "problem_id": self.problem_id,
            "question": self.problem.question,
            "gold": self.problem.gold,
            "source": self.problem.source,
            "source_id": self.problem.source_id,
            "thoughts": {name: view.to_dict() for name, view in self.thoughts.items()},
            "vote": None if self.verdict is None else asdict(self.verdict),
            "model_version_id": self.model_version_id,
            "model": self.model_name,
            "done": self.done,
        }


def store_problem(store: Store, problem: ProblemRef, actor: Actor | None = None) -> int:
    """The store's id of ``problem`` (created if new); ``actor``: who brought its gold answer,
    when a person did (an upload)."""
    row = store.add_problem(
        problem.question, problem.gold, problem.source, problem.source_id, actor=actor
    )
    return row.id


def record(store: Store, state: SolveState, view: ThoughtView) -> ThoughtView:
    """Keep one thought of ``state`` as a generation; returns the view with its generation id."""
    generation = store.record_generation(
        state.problem_id,
        state.model_version_id,
        view.thought,
        view.text,
        view.status,
        view.answer,
        view.error,
    )
    view.generation_id = generation.id
    state.thoughts[view.thought] = view
    return view


def stream_solve(events: Iterator, store: Store, state: SolveState) -> Iterator[SolveState]:
    """Turn the student's events into views, yielding ``state`` after each: a thought being
    written shows its text so far (status ``WRITING``, not stored); a finished one is recorded
    as a generation. Then once more with the vote."""
    for event in events:
        if event.sample:  # the app shows the first sample of each thought
            continue
        if isinstance(event, Progress):
            state.thoughts[event.thought] = ThoughtView(
                event.thought, event.text, WRITING, None, finished=False
            )
        else:
            record(store, state, view_of(event))
        yield state
    ordered = [state.thoughts[t] for t in THOUGHTS if t in state.thoughts]
    state.verdict = decide(state.problem.question, ordered, state.problem.gold)
    yield state
