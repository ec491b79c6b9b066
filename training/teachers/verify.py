"""Check teacher targets with the reasoning engine: a target is kept only if it reaches the gold.

CoT answers are read with `extract_answer`, PoT programs run with `run_program` (sandboxed) and
EoT systems are solved with `solve_equations`. Many targets are checked at once from a thread
pool; the engine's sandbox pool does the work, so threads only wait.
"""

from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from eotd import same_answer
from eotd.execution import execute


@dataclass
class Check:
    """The outcome of checking one target: `reason` is None when it reaches the gold answer."""

    answer: float | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.reason is None


def check(thought: str, target: str, gold: float, timeout: float = 5.0) -> Check:
    """Run, solve or read one target (``eotd.execute``) and compare its answer with `gold`.

    Drop reasons are ``"<thought>:<engine status>"`` (``eot:parse_error``, ``pot:runtime_error``,
    ``cot:no_answer``) or ``"<thought>:wrong_answer"``.
    """
    result = execute(thought, target, timeout)
    if not result.ok:
        return Check(result.answer, f"{thought}:{result.status}")
    if not same_answer(result.answer, float(gold)):
        return Check(result.answer, f"{thought}:wrong_answer")
    return Check(result.answer, None)


def check_many(
    items: Iterable[tuple[str, str, float]], workers: int = 4, timeout: float = 5.0
) -> list[Check]:
    """`check` each ``(thought, target, gold)``, in order, `workers` at a time.

    Targets that time out are checked once more, alone and with three times the time: on a busy
    machine a time-out says more about the machine than about the target.
    """
    items = list(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(lambda item: check(*item, timeout=timeout), items))
    for i, result in enumerate(results):
        if result.reason is not None and result.reason.endswith(":timeout"):
            results[i] = check(*items[i], timeout=3 * timeout)
    return results
