"""Score saved predictions again, without a model: after a vote-rule change, or to merge runs.

    python -m training.rescore --predictions runs/eval [--output_dir runs/eval_rescored]

Reads every ``predictions_{set}.jsonl`` that ``training.evaluate`` wrote in the folder (each
line holds the gold answer and every thought's text, status and answer), votes again with the
current rules (the selector's too: programs saved without their variables run again, in the
sandbox), and writes ``metrics.json`` and ``results.md`` like an evaluation (throughput is
unknown there, so it is left out).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path

from eotd import run_program
from eotd.student import Solution, ThoughtResult, combine
from eotd.verifier import load_selector
from training.config import load_config, save_config
from training.evaluate import markdown, score


@dataclass
class RescoreConfig:
    """Score ``predictions_*.jsonl`` files again."""

    predictions: str = "runs/eval"  # folder with predictions_{set}.jsonl (training.evaluate's)
    output_dir: str = ""  # where to write metrics.json and results.md; default: predictions
    label: str = ""  # name of the model in the tables; default: the folder's name
    selector: str = ""  # the selector file for "verified"; "": models/selector.json


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
            solutions.append(combine(row["question"], thoughts))
    return problems, solutions


def rescore(cfg: RescoreConfig) -> dict[str, dict]:
    """Score every predictions file in ``cfg.predictions``; write and return the results."""
    folder = Path(cfg.predictions)
    files = sorted(folder.glob("predictions_*.jsonl"))
    if not files:
        raise FileNotFoundError(f"no predictions_*.jsonl in {folder}")
    selector = load_selector(cfg.selector or None)
    results = {}
    for path in files:
        problems, solutions = load_predictions(path, refresh=True)
        results[path.stem.removeprefix("predictions_")] = score(problems, solutions, 0.0, selector)
    out = Path(cfg.output_dir or folder)
    save_config(cfg, out, name="rescore_config.yaml")
    label = cfg.label or folder.name
    report = {"label": label, "predictions": str(folder), "datasets": results}
    (out / "metrics.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (out / "results.md").write_text(markdown(label, results), encoding="utf-8")
    return results


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(RescoreConfig, argv)
    print(markdown(cfg.label or Path(cfg.predictions).name, rescore(cfg)))


if __name__ == "__main__":
    main()
