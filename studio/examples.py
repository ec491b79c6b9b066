"""The evaluation sets as a source of example questions whose gold answers are known."""

from __future__ import annotations

import random
from collections.abc import Sequence

from studio.solving import InputError, ProblemRef
from training.datasets import EVALUATION_SETS, evaluation_sets, normalize_question


class EvalSets:
    """Every evaluation problem, looked up by question text (so a typed-in copy of an example
    still gets its gold answer)."""

    def __init__(self, names: Sequence[str] = EVALUATION_SETS) -> None:
        self.by_set: dict[str, list[ProblemRef]] = {
            name: [_ref(row) for row in rows] for name, rows in evaluation_sets(names).items()
        }
        self._index = {
            normalize_question(p.question): p for rows in self.by_set.values() for p in rows
        }

    @property
    def names(self) -> list[str]:
        return list(self.by_set)

    def lookup(self, question: str) -> ProblemRef:
        """The known problem with this text, or a new problem without gold."""
        found = self._index.get(normalize_question(question))
        return found if found is not None else ProblemRef(question.strip())

    def examples(self, per_set: int = 3) -> list[str]:
        """The first few questions of each set, for the example list."""
        return [p.question for rows in self.by_set.values() for p in rows[:per_set]]

    def sample(self, name: str, n: int, seed: int | None = None) -> list[ProblemRef]:
        """``n`` problems of one set, drawn at random (repeatably with a ``seed``)."""
        if name not in self.by_set:
            raise InputError(f"no evaluation set {name!r}; choose one of {', '.join(self.names)}")
        rows = self.by_set[name]
        return random.Random(seed).sample(rows, min(n, len(rows)))

    def random_question(self) -> str:
        """One question from any set."""
        return random.choice(self.by_set[random.choice(self.names)]).question


def _ref(row: dict) -> ProblemRef:
    return ProblemRef(row["question"], float(row["answer"]), row["source"], str(row["id"]))
