"""The student: writes CoT, PoT and EoT for a question, runs each one, and chooses the answer.

All thoughts of a batch of questions go through one batched call of the student's engine
(``eotd.generation.Engine``: PyTorch or CTranslate2), each row stopping at its own end token.
Greedy by default; with ``num_samples`` > 1 and sampling on, each thought is sampled k times and
the vote runs over every sample (self-consistency). ``Student.stream`` yields a thought's text as
it is written (``Progress``), then its executed ``ThoughtResult``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from eotd.engines import load, resolve
from eotd.execution import ThoughtResult, execute
from eotd.generation import Engine, GenerationSettings, RowEnds
from eotd.prompts import THOUGHTS, build_prompt
from eotd.verifier import DEFAULT_STRATEGY, choose
from eotd.vote import Vote

__all__ = [
    "GenerationSettings", "Progress", "Solution", "Student", "ThoughtResult", "combine", "execute",
]  # fmt: skip


@dataclass
class Solution:
    """The student's answer to one question: every thought (and sample) plus the vote."""

    question: str
    thoughts: list[ThoughtResult]
    vote: Vote
    seconds: float = 0.0
    votes: dict[str, Vote] = field(default_factory=dict)  # extra strategies, when asked for

    @property
    def answer(self) -> float | None:
        return self.vote.answer

    def thought(self, name: str) -> ThoughtResult:
        """The first (greedy) result of one thought."""
        for t in self.thoughts:
            if t.thought == name:
                return t
        raise KeyError(f"this solution has no {name!r} thought")

    def answers(self) -> dict[str, list[float | None]]:
        """Every sample's answer, by thought: what the vote counts."""
        return {name: [t.answer for t in self.thoughts if t.thought == name] for name in THOUGHTS}

    def to_dict(self) -> dict:
        return {
            "question": self.question,
            "answer": self.answer,
            "thoughts": [t.to_dict() for t in self.thoughts],
            "vote": self.vote.to_dict(),
            "votes": {name: v.to_dict() for name, v in self.votes.items()},
            "seconds": self.seconds,
        }


def combine(
    question: str, results: Sequence[ThoughtResult], strategy: str = DEFAULT_STRATEGY
) -> Solution:
    """Choose the answer of one question's thoughts (see ``eotd.verifier.choose``)."""
    ordered = sorted(results, key=lambda t: (THOUGHTS.index(t.thought), t.sample))
    return Solution(question, ordered, choose(question, ordered, strategy))


@dataclass
class _Row:
    """One generation row: a question's thought (and sample)."""

    question: int
    thought: str
    prompt: str
    sample: int = 0


@dataclass
class Progress:
    """A thought still being written: its text so far (streamed before its ``ThoughtResult``)."""

    thought: str
    text: str
    sample: int = 0
    new_tokens: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


Event = Progress | ThoughtResult
"""What a stream yields: a thought's text so far, or the thought written and executed."""


class Student:
    """A student model on an engine (``eotd.generation.Engine``) that answers math word
    problems three ways."""

    def __init__(self, engine: Engine, settings: GenerationSettings | None = None) -> None:
        self.engine = engine
        self.tokenizer = engine.tokenizer
        self.settings = settings or GenerationSettings()
        self._lock = threading.Lock()  # one generate at a time (e.g. concurrent app requests)

    @classmethod
    def from_pretrained(
        cls,
        base: str | None = None,
        adapter: str | Path | None = "default",
        *,
        engine: str = "auto",
        precision: str = "auto",
        device: str = "auto",
        threads: int = 0,
        **settings,
    ) -> Student:
        """Load a base (+ adapter) on an engine (see ``eotd.engines.resolve``) with generation
        settings."""
        spec = resolve(engine, precision, device, base, adapter, threads)
        return cls(load(spec), GenerationSettings(**settings))

    # -- generation ---------------------------------------------------------------------------

    def _decode(self, tokens: Sequence[int]) -> str:
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        for stop in self.settings.stop_strings:
            if stop in text:
                text = text[: text.index(stop)]
        return text.strip()

    def _generate(self, prompts: Sequence[str], rows: RowEnds) -> None:
        with self._lock:
            self.engine.generate_rows(prompts, self.settings, rows)

    def generate(self, prompts: Sequence[str]) -> list[tuple[str, int, bool]]:
        """Write a continuation for each prompt: (text, new tokens, ended by an end token)."""
        out: dict[int, tuple[str, int, bool]] = {}

        def keep(row: int, tokens: list[int], ended: bool, _: float | None) -> None:
            out[row] = (self._decode(tokens), len(tokens), ended)

        self._generate(prompts, RowEnds(len(prompts) * self.settings.num_samples, keep))
        return [out[i] for i in range(len(out))]

    # -- answering ----------------------------------------------------------------------------

    def _rows(self, questions: Sequence[str], thoughts: Sequence[str]) -> list[_Row]:
        for question in questions:
            if not isinstance(question, str) or not question.strip():
                raise ValueError("every question must be a non-empty string")
        return [
            _Row(q, t, build_prompt(question, t))
            for q, question in enumerate(questions)
            for t in thoughts
        ]

    def _run_batch(
        self, rows: Sequence[_Row], every: float | None = None
    ) -> Iterator[tuple[_Row, Event]]:
        """Generate ``rows`` in one batch, yielding each executed thought as soon as it ends.
        With ``every`` (seconds), also the text of every thought that grew since the last
        ``Progress``, at most that often (0: after every token)."""
        k = self.settings.num_samples
        events: queue.Queue = queue.Queue()  # ("step", row) and ("end", row, tokens, ...) items
        failure: list[BaseException] = []
        collector = RowEnds(
            len(rows) * k,
            lambda index, *ended: events.put(("end", index, *ended)),
            None if every is None else lambda index: events.put(("step", index)),
        )

        def work() -> None:
            try:
                self._generate([r.prompt for r in rows], collector)
            except BaseException as exc:  # re-raised in the caller's thread
                failure.append(exc)
            finally:
                events.put(None)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        grown: set[int] = set()  # rows with text not yet streamed
        sent = [0] * len(collector)  # tokens of each row already streamed
        shown = -float("inf")  # when Progress was last yielded
        while True:
            wait = None if not grown else max(0.0, shown + (every or 0.0) - time.monotonic())
            try:
                item = events.get(timeout=wait)
            except queue.Empty:
                item = ("flush",)
            if item is None:
                break
            if item[0] == "step":
                grown.add(item[1])
            elif item[0] == "end":
                _, index, tokens, ended, logprob = item
                grown.discard(index)
                row = rows[index // k]
                result = execute(row.thought, self._decode(tokens), self.settings.execution_timeout)
                result.sample, result.new_tokens, result.finished = index % k, len(tokens), ended
                result.mean_logprob = logprob
                yield row, result
            if grown and time.monotonic() >= shown + (every or 0.0):
                for index in sorted(grown):
                    tokens = collector.tokens[index][:]  # the engine's thread appends to it
                    if len(tokens) == sent[index]:  # already streamed by an earlier step
                        continue
                    sent[index] = len(tokens)
                    text = self._decode(tokens).rstrip("\ufffd")  # a character cut in half
                    yield rows[index // k], Progress(rows[index // k].thought, text, index % k,
                                                     len(tokens))  # fmt: skip
                grown.clear()
                shown = time.monotonic()
        thread.join()
        if failure:
            raise failure[0]

    def stream(
        self, question: str, thoughts: Sequence[str] = THOUGHTS, every: float = 0.1
    ) -> Iterator[Event]:
        """Yield each thought's text as it is written (a ``Progress`` at most every ``every``
        seconds per batch) and its executed ``ThoughtResult`` as soon as it ends. All thoughts
        share one batched generate; ``combine`` the results for the vote."""
        for _, event in self._run_batch(self._rows([question], thoughts), every):
            yield event

    def stream_batch(
        self, questions: Sequence[str], every: float = 0.1
    ) -> Iterator[tuple[int, Event]]:
        """``stream`` for several questions in one batched generate: (question index, event)."""
        for row, event in self._run_batch(self._rows(questions, THOUGHTS), every):
            yield row.question, event

    def solve_iter(
        self, question: str, thoughts: Sequence[str] = THOUGHTS
    ) -> Iterator[ThoughtResult]:
        """Yield each thought's executed result as soon as that thought finishes writing."""
        for _, result in self._run_batch(self._rows([question], thoughts)):
            yield result

    def solve(self, question: str) -> Solution:
        """Answer one question: three thoughts in one batch, each executed, then the vote."""
        return self.solve_batch([question])[0]

    def solve_batch(
        self,
        questions: Sequence[str],
        batch_size: int | None = None,
        strategies: Sequence[str] = (),
        progress: Callable[[int], None] | None = None,
    ) -> list[Solution]:
        """Answer many questions. ``batch_size`` caps the rows (question x thought) per
        ``generate``; None puts everything in one. Rows are grouped by thought and prompt length
        so that a batch's rows end at similar lengths. ``strategies`` adds extra votes to each
        solution; ``progress(n)`` is called with the number of rows just finished."""
        started = time.perf_counter()
        rows = self._rows(questions, THOUGHTS)
        rows.sort(key=lambda r: (THOUGHTS.index(r.thought), len(r.prompt)))
        size = batch_size or len(rows) or 1
        results: list[list[ThoughtResult]] = [[] for _ in questions]
        for start in range(0, len(rows), size):
            for row, result in self._run_batch(rows[start : start + size]):
                results[row.question].append(result)
                if progress is not None:
                    progress(1)
        seconds = (time.perf_counter() - started) / max(len(questions), 1)
        solutions = []
        for question, found in zip(questions, results, strict=True):
            solution = combine(question, found, self.settings.strategy)
            solution.seconds = seconds
            solution.votes = {s: choose(question, solution.thoughts, s) for s in strategies}
            solutions.append(solution)
        return solutions
