"""Approved corrections on disk: a ``datasets`` Dataset, JSONL and Parquet, with a dataset card.

An export folder holds::

    README.md               dataset card (what, when, who, columns)
    corrections.jsonl       one training row per line
    corrections.parquet     the same rows
    dataset/                the same rows, ``Dataset.save_to_disk`` (``load_from_disk`` reads it)

Rows carry the training columns (``id, question, thought, target, answer, source, origin_id``,
``source`` always ``"human"``) and provenance: the problem's dataset and gold answer, the original
text, annotator, reviewer and times, and the store's correction id. ``id`` is derived from the
content, so the same correction has the same id in every store it is imported into.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import Counter
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from db.models import utcnow

if TYPE_CHECKING:
    import datasets

    from db.models import Correction, Review

JSONL, PARQUET, DATASET_DIR, CARD = (
    "corrections.jsonl",
    "corrections.parquet",
    "dataset",
    "README.md",
)


class ExportRow(TypedDict):
    id: str
    question: str
    thought: str
    target: str
    answer: float
    source: str
    origin_id: str
    dataset: str | None
    gold_answer: float | None
    original_text: str | None
    annotator: str
    reviewer: str
    created_at: str
    reviewed_at: str
    correction_id: int


@cache
def features() -> datasets.Features:
    """The export's column types (``datasets`` is imported only when an export is written)."""
    import datasets

    floats, ints = {"answer", "gold_answer"}, {"correction_id"}
    return datasets.Features(
        {
            name: datasets.Value(
                "float64" if name in floats else "int64" if name in ints else "string"
            )
            for name in ExportRow.__annotations__
        }
    )


def to_row(correction: Correction, approval: Review) -> ExportRow:
    """The training row of an approved correction (loaded with its problem) and its approval."""
    problem = correction.problem
    assert correction.after_answer is not None, "approved corrections always solve"
    origin_id = problem.source_id or f"problem-{problem.question_hash[:12]}"
    digest = hashlib.sha256(
        "\0".join(
            [origin_id, correction.thought, correction.corrected_text, correction.annotator]
        ).encode()
    ).hexdigest()
    return ExportRow(
        id=f"human-{correction.thought}-{digest[:16]}",
        question=problem.question,
        thought=correction.thought,
        target=correction.corrected_text,
        answer=correction.after_answer,
        source="human",
        origin_id=origin_id,
        dataset=problem.source,
        gold_answer=problem.gold_answer,
        original_text=correction.original_text,
        annotator=correction.annotator,
        reviewer=approval.reviewer,
        created_at=correction.created_at.isoformat(),
        reviewed_at=approval.created_at.isoformat(),
        correction_id=correction.id,
    )


def write_export(rows: list[ExportRow], out_dir: Path, by: str) -> Path:
    """Write ``rows`` to ``out_dir`` (which must not exist, or be empty) all at once: the files
    are built in a temporary folder beside it and moved into place together."""
    import datasets

    out_dir = out_dir.resolve()
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} already exists and is not empty; choose a new folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        columns = {name: [row[name] for row in rows] for name in features()}  # type: ignore[literal-required]
        dataset = datasets.Dataset.from_dict(columns, features=features())
        with (staging / JSONL).open("w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        bars = not datasets.utils.are_progress_bars_disabled()
        datasets.utils.disable_progress_bars()
        try:
            dataset.to_parquet(str(staging / PARQUET))
            dataset.save_to_disk(str(staging / DATASET_DIR), num_shards=1)  # 1 even when empty
        finally:
            if bars:
                datasets.utils.enable_progress_bars()
        (staging / CARD).write_text(dataset_card(rows, by), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()
        staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def read_export(path: Path) -> list[ExportRow]:
    """The rows of an export folder (its ``dataset/``, else Parquet, else JSONL) or of a
    ``.jsonl`` / ``.parquet`` file."""
    import datasets

    if path.is_dir():
        if (path / DATASET_DIR).is_dir():
            rows = datasets.load_from_disk(str(path / DATASET_DIR))
            return [ExportRow(**row) for row in rows]  # type: ignore[typeddict-item]
        path = next((path / name for name in (PARQUET, JSONL) if (path / name).exists()), path)
    if path.suffix == ".parquet":
        rows = datasets.Dataset.from_parquet(str(path))
        return [ExportRow(**row) for row in rows]  # type: ignore[typeddict-item]
    if path.suffix == ".jsonl":
        with path.open(encoding="utf-8") as f:
            return [ExportRow(**json.loads(line)) for line in f if line.strip()]
    raise FileNotFoundError(f"{path}: not an export folder, .jsonl or .parquet file")


def dataset_card(rows: list[ExportRow], by: str) -> str:
    """A README.md dataset card for an export."""
    thoughts = Counter(row["thought"] for row in rows)
    sources = Counter(row["dataset"] or "(typed in)" for row in rows)
    people = sorted({row["annotator"] for row in rows})
    reviewers = sorted({row["reviewer"] for row in rows})
    lines = [
        "---",
        "pretty_name: EoTD Studio human corrections",
        "tags: [math, equation-of-thought, program-of-thought, chain-of-thought, human-feedback]",
        "task_categories: [text-generation]",
        "configs:",
        "  - config_name: default",
        f"    data_files: {PARQUET}",
        "---",
        "",
        "# EoTD Studio human corrections",
        "",
        f"Exported {utcnow():%Y-%m-%d %H:%M} UTC by {by}: {len(rows)} approved "
        f"correction{'' if len(rows) == 1 else 's'} of student thoughts, each re-solved by "
        "the EoTD engine before it was stored and approved by a reviewer other than its author.",
        "",
        "| thought | rows |",
        "|---|---|",
        *(f"| {t} | {n} |" for t, n in sorted(thoughts.items())),
        "",
        "| problem dataset | rows |",
        "|---|---|",
        *(f"| {d} | {n} |" for d, n in sorted(sources.items())),
        "",
        f"Annotators: {', '.join(people) or 'none'}. Reviewers: {', '.join(reviewers) or 'none'}.",
        "",
        "## Columns",
        "",
        "Training columns: `id` (stable, from the content), `question`, `thought` (`cot`, `pot`, "
        "`eot`), `target` (the corrected text the student learns), `answer` (the engine's answer "
        "on `target`), `source` (`human`), `origin_id` (the problem's dataset id).",
        "",
        "Provenance: `dataset` and `gold_answer` of the problem, `original_text` (the model's "
        "text before correction), `annotator`, `reviewer`, `created_at`, `reviewed_at` (ISO 8601, "
        "UTC), `correction_id` (row id in the store that exported it).",
        "",
        f"Files: `{JSONL}`, `{PARQUET}`, and `{DATASET_DIR}/` (`datasets.load_from_disk`).",
        "",
    ]
    return "\n".join(lines)
