"""Score saved predictions again, without generating: after a vote-rule change, or to merge runs.

    python -m training.rescore --predictions runs/eval [--output_dir runs/eval_rescored] \
        [--logprobs true [--engine ct2] [--model default] [--adapter default]]

Reads every ``predictions_{set}.jsonl`` that ``training.evaluate`` wrote in the folder (each
line holds the gold answer and every thought's text, status and answer), votes again with the
current rules (the selector's too: programs saved without their variables run again, in the
sandbox), and writes ``metrics.json`` and ``results.md`` like an evaluation (throughput is
unknown there, so it is left out; the evaluation's own ``metrics.json`` is kept as
``run_metrics.json``). With ``--logprobs true`` the student (``model`` +
``adapter`` on ``engine``) first reads every saved thought that has no mean log-probability
(runs older than that field) in one teacher-forced pass, far cheaper than writing it again, and
the predictions are written to ``output_dir`` with it (over the originals when that is the
predictions folder itself: only the new field is added).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from tqdm import tqdm

from eotd import run_program
from eotd.engines import StudentChoice, load
from eotd.generation import Engine
from eotd.prompts import build_prompt
from eotd.student import Solution, ThoughtResult, combine
from eotd.verifier import load_selector
from training.config import load_config, save_config
from training.evaluate import markdown, score

LOGPROB_MISSING = (
    "thoughts have no log-probability (a run older than the field): the selector reads its "
    "`logprob` signal as missing on them; `--logprobs true` scores them"
)


@dataclass
class RescoreConfig:
    """Score ``predictions_*.jsonl`` files again."""

    predictions: str = "runs/eval"  # folder with predictions_{set}.jsonl (training.evaluate's)
    output_dir: str = ""  # where to write metrics.json and results.md; default: predictions
    label: str = ""  # name of the model in the tables; default: the folder's name
    selector: str = ""  # the selector file for "verified"; "": models/selector.json
    logprobs: bool = False  # score thoughts saved without mean_logprob (needs the model)
    # the student that wrote the predictions (as for training.evaluate), which scores them
    student: StudentChoice = field(default_factory=StudentChoice)


def fill_logprobs(rows: Sequence[dict], engine: Engine, chunk: int = 256) -> int:
    """Give each saved thought of ``rows`` (prediction rows) that lacks one its mean
    log-probability, scored by ``engine``; return how many were scored."""
    todo = [(row["question"], t) for row in rows for t in row["thoughts"]
            if t.get("mean_logprob") is None]  # fmt: skip
    with tqdm(total=len(todo), desc="log-probabilities", unit="thought") as bar:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            scores = engine.score(
                [build_prompt(q, t["thought"]) for q, t in part],
                [t["text"] for _, t in part],
                [bool(t.get("finished", True)) for _, t in part],
            )
            for (_, t), value in zip(part, scores, strict=True):
                t["mean_logprob"] = value
            bar.update(len(part))
    return len(todo)


def add_logprobs(cfg: RescoreConfig, files: Sequence[Path], out: Path) -> list[Path]:
    """Write each predictions file to ``out`` with every thought's mean log-probability."""
    engine = load(cfg.student.resolve())
    written = []
    for path in files:
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        fill_logprobs(rows, engine)
        target = out / path.name
        tmp = target.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        tmp.replace(target)
        written.append(target)
    return written


def refresh_values(thought: ThoughtResult) -> ThoughtResult:
    """Run a saved program again when its final variables were not saved (predictions written
    before programs reported them); the saved answer and status stay as they were."""
    if thought.thought == "pot" and not thought.values and thought.answer is not None:
        thought.values = run_program(thought.text).values
    return thought


def load_predictions(path: Path, refresh: bool = False) -> tuple[list[dict], list[Solution]]:
    """The problems (id, question, answer) and solutions of one predictions file; ``refresh``:
    re-run programs whose variables were not saved (see :func:`refresh_values`)."""
    names = {f.name for f in fields(ThoughtResult)}
    problems, solutions = [], []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            try:
                row = json.loads(line)
                thoughts = [
                    ThoughtResult(**{k: v for k, v in t.items() if k in names})
                    for t in row["thoughts"]
                ]
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number} is not a prediction row: {exc}") from exc
            if refresh:
                thoughts = [refresh_values(t) for t in thoughts]
            problems.append({"id": row["id"], "question": row["question"], "answer": row["gold"]})
            # Scores choose every way themselves: reading needs no selector.
            solutions.append(combine(row["question"], thoughts, "majority"))
    return problems, solutions


def keep_run_report(out: Path) -> None:
    """Keep the evaluation's own ``metrics.json`` (engine, timings: what a rescore cannot know)
    as ``run_metrics.json`` before a rescore's report takes its place; a rescore's is replaced."""
    metrics, kept = out / "metrics.json", out / "run_metrics.json"
    if not metrics.is_file() or kept.exists():
        return
    try:
        rescored = "predictions" in json.loads(metrics.read_text(encoding="utf-8"))
    except ValueError:
        rescored = False  # unreadable: keep it rather than lose it
    if not rescored:
        metrics.rename(kept)


def rescore(cfg: RescoreConfig) -> dict[str, dict]:
    """Score every predictions file in ``cfg.predictions``; write and return the results."""
    folder = Path(cfg.predictions)
    files = sorted(folder.glob("predictions_*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no predictions_*.jsonl in {folder}")
    selector = load_selector(cfg.selector or None)
    out = Path(cfg.output_dir or folder)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.logprobs:
        files = add_logprobs(cfg, files, out)
    results = {}
    for path in files:
        problems, solutions = load_predictions(path, refresh=True)
        name = path.stem.removeprefix("predictions_")
        results[name] = score(problems, solutions, 0.0, selector)
        missing = sum(t.mean_logprob is None for s in solutions for t in s.thoughts)
        if missing and "logprob" in selector.signals:
            results[name]["thoughts_without_logprob"] = missing
            warnings.warn(f"{path.name}: {missing} {LOGPROB_MISSING}", stacklevel=2)
    save_config(cfg, out, name="rescore_config.yaml")
    keep_run_report(out)
    label = cfg.label or folder.name
    report = {"label": label, "predictions": str(folder), "datasets": results}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    notes = "".join(f"\n{name}: {n} {LOGPROB_MISSING}\n" for name, r in results.items()
                    if (n := r.get("thoughts_without_logprob")))  # fmt: skip
    (out / "results.md").write_text(markdown(label, results) + notes, encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(RescoreConfig, argv)
    print(markdown(cfg.label or Path(cfg.predictions).name, rescore(cfg)))


if __name__ == "__main__":
    main()
