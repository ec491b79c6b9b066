"""Solves that arrive together share one batched ``generate``, and every one of them streams.

The first waiting request takes the model when it is free, together with every other waiting
request for the same student (up to ``max_batch``), and starts one stream for them in a thread of
its own, which hands each request its events (text as it is written, then each thought written
and run) as they come. Every request, the first included, reads its own queue: a slow or departed
client holds no one back, and the batch always runs to its end. (On a ZeroGPU Space,
``spaces.GPU`` wraps the stream; that it works from this thread is not tested here.)
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

_END = object()  # a follower's stream is over


@dataclass
class _Failure:
    error: BaseException


@dataclass(eq=False)
class _Request:
    student: Any
    question: str
    taken: bool = False  # a leader runs it
    events: queue.Queue = field(default_factory=queue.Queue)


class Batcher:
    """Serializes the student's solves and batches the ones that wait together.

    ``stream(student, questions)`` yields ``(question index, event)`` for one batched run;
    ``batch(student, questions)`` returns one solution per question (for rankings).
    """

    def __init__(
        self,
        stream: Callable[[Any, list[str]], Iterator[tuple[int, Any]]],
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

    @property
    def waiting(self) -> int:
        """Requests waiting for the model."""
        with self._cond:
            return len(self._waiting)

    def events(self, student: Any, question: str) -> Iterator:
        """The student's events for ``question`` (see ``eotd.student.Student.stream``), as soon
        as they are known."""
        request = _Request(student, question)
        with self._cond:
            self._waiting.append(request)
            while not request.taken and (self._busy or self._waiting[0] is not request):
                self._cond.wait()
            if not request.taken:
                self._busy = True
                others = [r for r in self._waiting if r.student is student and r is not request]
                batch = [request, *others[: self.max_batch - 1]]
                for r in batch:
                    self._waiting.remove(r)
                    r.taken = True
                self.batch_sizes.append(len(batch))
                self._cond.notify_all()
                threading.Thread(target=self._feed, args=(student, batch), daemon=True).start()
        while (event := request.events.get()) is not _END:
            if isinstance(event, _Failure):
                raise event.error
            yield event

    def _feed(self, student: Any, batch: list[_Request]) -> None:
        """Run ``batch`` as one stream, handing each request its events; then free the model."""
        try:
            for index, event in self._stream(student, [r.question for r in batch]):
                batch[index].events.put(event)
        except BaseException as exc:  # every request of the batch gets the error
            for r in batch:
                r.events.put(_Failure(exc))
        finally:
            for r in batch:
                r.events.put(_END)
            with self._cond:
                self._busy = False
                self._cond.notify_all()

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
