"""Solves that arrive together share one batched ``generate``; a lone solve streams.

The thread of a waiting request that finds the model free leads: it takes every waiting request
for the same student (up to ``max_batch``) and runs them. A batch of one streams thought by
thought (``solve_iter``); a larger batch runs ``solve_batch`` and hands each request its thoughts
when the batch is done. Work runs in the requests' own threads, so a ZeroGPU Space sees each call
inside a request.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class _Request:
    student: Any
    question: str
    done: bool = False
    results: list = field(default_factory=list)
    error: BaseException | None = None


class Batcher:
    """Serializes the student's solves and batches the ones that wait together.

    ``stream(student, question)`` yields thought results as they finish; ``batch(student,
    questions)`` returns one solution (with ``.thoughts``) per question.
    """

    def __init__(
        self,
        stream: Callable[[Any, str], Iterator],
        batch: Callable[[Any, list[str]], list],
        max_batch: int = 16,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._stream, self._batch, self.max_batch = stream, batch, max_batch
        self._cond = threading.Condition()
        self._waiting: list[_Request] = []
        self._busy = False
        self.batch_sizes: list[int] = []  # how many questions each model run served

    def thoughts(self, student: Any, question: str) -> Iterator:
        """The student's thought results for ``question``, as soon as they are known."""
        request = _Request(student, question)
        with self._cond:
            self._waiting.append(request)
            while not request.done and (self._busy or request not in self._waiting):
                self._cond.wait()
            if request.done:
                batch = None
            else:
                self._busy = True
                others = [r for r in self._waiting if r.student is student and r is not request]
                batch = [request, *others[: self.max_batch - 1]]
                for r in batch:
                    self._waiting.remove(r)
                self.batch_sizes.append(len(batch))
        if batch is None:
            if request.error is not None:
                raise request.error
            yield from request.results
            return
        try:
            if len(batch) == 1:
                yield from self._stream(student, question)
                return
            self._run(student, batch)
        finally:  # a batch frees the model before its caller consumes (and stores) the results
            with self._cond:
                self._busy = False
                for r in batch:
                    r.done = True
                self._cond.notify_all()
        if request.error is not None:
            raise request.error
        yield from request.results

    def solutions(self, student: Any, questions: list[str]) -> list:
        """Solve many questions (a ranking) in batches of ``max_batch``, taking the model only
        when no solve is waiting for it, so visitors' solves go between the batches."""
        out: list = []
        for start in range(0, len(questions), self.max_batch):
            with self._cond:
                while self._busy or self._waiting:
                    self._cond.wait()
                self._busy = True
            try:
                out += self._batch(student, questions[start : start + self.max_batch])
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()
        return out

    def _run(self, student: Any, batch: list[_Request]) -> None:
        try:
            solutions = self._batch(student, [r.question for r in batch])
        except Exception as exc:  # every request of the batch gets the error
            for r in batch:
                r.error = exc
            return
        for r, solution in zip(batch, solutions, strict=True):
            r.results = [t for t in solution.thoughts if t.sample == 0]
