"""Math word-problem sets: loading, the train/validation/evaluation splits and the leak check.

Every set is a `datasets.Dataset` with the uniform columns ``id, question, answer, source`` (and
``solution`` for GSM8K). By default the sets come from the vendored JSONL files under ``data/``
(offline, through the ``datasets`` JSON loader). A *spec* names what to load:

- a vendored set: ``gsm8k`` (split ``train`` or ``test``), ``svamp``, ``asdiv``, ``multiarith``;
- a JSONL file in the uniform schema: ``path/to/file.jsonl``;
- a hub dataset: ``hub:owner/name[:config]`` (for instance ``hub:openai/gsm8k:main``); its rows are
  mapped to the uniform schema (question from ``question``/``problem``/``input``/``Body`` +
  ``Question``; answer from a number or a GSM8K ``#### N`` answer text).

Splits: GSM8K train minus a fixed, seeded validation slice is the training pool; GSM8K test,
SVAMP, ASDiv and MultiArith are evaluation sets. `leak_check` proves no evaluation question (in
normalized form) reaches training data.
"""

from __future__ import annotations

import random
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets

from eotd.answers import parse_number

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
#: Vendored sets and their split files.
VENDORED: dict[str, dict[str, str]] = {
    "gsm8k": {"train": "gsm8k/train.jsonl", "test": "gsm8k/test.jsonl"},
    "svamp": {"test": "svamp/test.jsonl"},
    "asdiv": {"test": "asdiv/test.jsonl"},
    "multiarith": {"test": "multiarith/test.jsonl"},
}
#: The evaluation sets (all their problems are kept out of training data).
EVALUATION_SETS: tuple[str, ...] = ("gsm8k", "svamp", "asdiv", "multiarith")
VALIDATION_SIZE = 200
VALIDATION_SEED = 0
COLUMNS = ("id", "question", "answer", "source", "solution")


class DataError(ValueError):
    """A dataset that cannot be found or read into the uniform schema."""


def load_problems(spec: str = "gsm8k", split: str = "test") -> datasets.Dataset:
    """Load a set of problems in the uniform schema (see the module docstring for `spec`)."""
    if spec.startswith("hub:"):
        return _load_hub(spec.removeprefix("hub:"), split)
    if spec in VENDORED:
        files = VENDORED[spec]
        if split not in files:
            raise DataError(f"{spec} has no split {split!r}; it has {', '.join(files)}")
        return _load_jsonl(DATA_DIR / files[split])
    path = Path(spec)
    if path.suffix in (".jsonl", ".json") and path.is_file():
        return _load_jsonl(path)
    raise DataError(
        f"unknown dataset {spec!r}: give one of {', '.join(VENDORED)}, a .jsonl file in the "
        "uniform schema, or hub:owner/name[:config]"
    )


def _load_jsonl(path: Path) -> datasets.Dataset:
    if not path.is_file():
        raise DataError(f"no such file {path}")
    try:
        ds = datasets.load_dataset("json", data_files=str(path), split="train")
    except Exception as exc:  # the datasets library raises many kinds here
        raise DataError(f"{path} is not readable JSONL: {exc}") from exc
    missing = {"id", "question", "answer"} - set(ds.column_names)
    if missing:
        raise DataError(f"{path} lacks the column(s) {', '.join(sorted(missing))}")
    return ds


def _load_hub(name: str, split: str) -> datasets.Dataset:
    """A hub dataset mapped to the uniform schema (needs network access or the hub cache)."""
    repo, _, config = name.partition(":")
    ds = datasets.load_dataset(repo, config or None, split=split)
    source = repo.split("/")[-1].lower()
    rows = [to_uniform(row, source, f"{source}-{split}-{i}") for i, row in enumerate(ds)]
    return datasets.Dataset.from_list(rows)


def to_uniform(row: dict[str, Any], source: str, default_id: str) -> dict[str, Any]:
    """One foreign row in the uniform schema; raises DataError naming what is missing."""
    question = next((row[k] for k in ("question", "problem", "input") if row.get(k)), None)
    if question is None and row.get("Body") is not None:
        question = f"{str(row['Body']).strip()} {str(row.get('Question', '')).strip()}"
    raw = next((row[k] for k in ("answer", "target", "Answer", "numeric_answer") if k in row), None)
    solution = None
    if isinstance(raw, str) and "####" in raw:
        solution, raw = raw, raw.split("####")[-1]
    answer = raw if isinstance(raw, int | float) else parse_number(str(raw or ""))
    if not question or answer is None:
        raise DataError(f"row {default_id}: needs a question and a numeric answer, got {row!r}")
    if float(answer).is_integer():
        answer = int(answer)
    return {
        "id": str(row.get("id", default_id)),
        "question": str(question).strip(),
        "answer": answer,
        "source": source,
        "solution": solution,
    }


def train_validation(
    spec: str = "gsm8k", size: int = VALIDATION_SIZE, seed: int = VALIDATION_SEED
) -> tuple[datasets.Dataset, datasets.Dataset]:
    """The training pool and a fixed validation slice of `size` problems chosen with `seed`."""
    pool = load_problems(spec, "train")
    if not 0 <= size < len(pool):
        raise DataError(f"validation size {size} must be between 0 and {len(pool) - 1}")
    held = set(random.Random(seed).sample(range(len(pool)), size))
    train = pool.select([i for i in range(len(pool)) if i not in held])
    validation = pool.select(sorted(held))
    return train, validation


def evaluation_sets(names: Iterable[str] = EVALUATION_SETS) -> dict[str, datasets.Dataset]:
    """The evaluation sets by name (GSM8K's test split, the others' only split)."""
    return {name: load_problems(name, "test") for name in names}


def normalize_question(text: str) -> str:
    """Question text for comparison: NFKC, lower case, words and numbers only, single spaces."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)
    return " ".join(re.findall(r"[a-z0-9]+(?:\.[0-9]+)?", text))


@dataclass
class LeakReport:
    """How many evaluation questions also occur (normalized) among the training questions."""

    train_questions: int
    sizes: dict[str, int] = field(default_factory=dict)
    overlaps: dict[str, list[str]] = field(default_factory=dict)  # set -> ids of leaked questions

    @property
    def clean(self) -> bool:
        return not any(self.overlaps.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "train_questions": self.train_questions,
            "clean": self.clean,
            "sets": {
                name: {"questions": size, "overlap": len(self.overlaps.get(name, []))}
                for name, size in self.sizes.items()
            },
            "overlap_ids": {k: v for k, v in self.overlaps.items() if v},
        }

    def summary(self) -> str:
        parts = [
            f"{name}: {len(self.overlaps.get(name, []))}/{size}"
            for name, size in self.sizes.items()
        ]
        verdict = "clean" if self.clean else "LEAK"
        return f"leak check ({self.train_questions} train questions) {verdict}: " + ", ".join(parts)


def leak_check(
    train_questions: Iterable[str], eval_sets: dict[str, datasets.Dataset] | None = None
) -> LeakReport:
    """Compare normalized training questions with every evaluation question."""
    seen = {normalize_question(q) for q in train_questions}
    eval_sets = evaluation_sets() if eval_sets is None else eval_sets
    report = LeakReport(train_questions=len(seen))
    for name, ds in eval_sets.items():
        report.sizes[name] = len(ds)
        report.overlaps[name] = [
            row_id
            for row_id, q in zip(ds["id"], ds["question"], strict=True)
            if normalize_question(q) in seen
        ]
    return report


def evaluation_questions(eval_sets: dict[str, datasets.Dataset] | None = None) -> set[str]:
    """Every evaluation question, normalized (to keep them out of training data)."""
    eval_sets = evaluation_sets() if eval_sets is None else eval_sets
    return {normalize_question(q) for ds in eval_sets.values() for q in ds["question"]}
