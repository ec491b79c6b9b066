"""The store's errors: each message is meant for the user."""

from __future__ import annotations

from eotd.execution import ThoughtResult

THOUGHT_LABELS = {"cot": "chain of thought", "pot": "program", "eot": "equation system"}


class StoreError(Exception):
    """Base class of the store's errors; the message is meant for the user."""


class InvalidInput(StoreError, ValueError):
    """Input the store refuses (an empty field, an unknown thought, a taken name)."""


class NotFound(StoreError, LookupError):
    """A problem, generation, correction or model version id that does not exist."""


class CorrectionRejected(StoreError, ValueError):
    """The engine could not solve a correction; nothing was stored."""

    def __init__(self, thought: str, verdict: ThoughtResult) -> None:
        self.thought = thought
        self.verdict = verdict
        where = f" (line {verdict.line})" if verdict.line else ""
        super().__init__(
            f"The corrected {THOUGHT_LABELS[thought]} does not solve: {verdict.status}{where}: "
            f"{verdict.error or 'no answer'}. Fix it, or keep it flagged as unsolved for review."
        )


class ReviewError(StoreError):
    """A review that the state machine does not allow."""


class StoreBusy(StoreError):
    """The database stayed locked longer than the store is willing to wait."""
