"""Retrain the student on approved corrections: the human-in-the-loop round.

    python -m training.retrain [--config training/configs/retrain.yaml] [--key value ...]
    python -m training.retrain --db_url postgresql://... (on a GPU box that reaches the store)
    python -m training.retrain --from_export exports/2026-11-28 (from a Space's exported dataset)

One round: take the approved corrections no model version has used yet (or those of an export),
mix them into the base ETD training data, each repeated ``upweight`` times; evaluate the current
student on the held-out sets and on the corrected problems; continue training its adapter (or train
a new one); evaluate again; register the new model version in the store with its metrics and the
corrections it used; promote it only if held-out accuracy fell by no more than ``promote_margin``
points. Writes ``config.yaml``, ``report.json`` and ``report.md`` to ``output_dir``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from datasets import Dataset, DatasetDict, concatenate_datasets, load_from_disk

from db.export import read_export
from db.settings import StoreSettings
from db.store import Store
from eotd.engines import StudentChoice, load
from eotd.generation import Engine
from eotd.student import GenerationSettings, Student
from training.build_data import COLUMNS
from training.config import load_config, save_config
from training.evaluate import score, set_name, test_problems
from training.train import TrainConfig, train


@dataclass
class RetrainConfig:
    """One retraining round from approved corrections."""

    db_url: str = ""  # the store (SQLAlchemy URL); empty: EOTD_DB_URL or the default SQLite file
    from_export: str = ""  # read corrections from this export folder instead of the store
    base_data: str = "outputs/etd_rule"  # the ETD data the student learned from ("" for none)
    # the student to continue and evaluate; adapter: "promoted" (the store's), "default", a folder
    student: StudentChoice = field(default_factory=lambda: StudentChoice(adapter="promoted"))
    generation: GenerationSettings = field(default_factory=GenerationSettings)  # evaluations
    new_adapter: bool = False  # train a fresh adapter instead of continuing the current one
    upweight: int = 4  # each correction appears this many times in the mix
    train_config: str = "training/configs/etd_smollm2.yaml"  # settings for training.train
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float = 1e-4
    eval_sets: list[str] = field(default_factory=lambda: ["gsm8k"])  # held-out sets
    eval_limit: int = 200  # problems per held-out set (0 = all)
    promote_metric: str = "majority"  # the held-out accuracy that decides promotion
    promote_margin: float = 1.0  # points of held-out accuracy the new version may lose
    name: str = ""  # model version name; default retrain-YYYYmmdd-HHMMSS
    output_dir: str = "runs/retrain"


@dataclass
class Round:
    """What one retraining round did and measured."""

    version_id: int | None
    promoted: bool
    reason: str
    corrections: list[int]
    before: dict
    after: dict
    train_metrics: dict
    seconds: float


def load_for_eval(cfg: RetrainConfig, adapter: str | None) -> Engine:
    """The student to evaluate: the configured base with ``adapter``, on its engine."""
    return load(cfg.student.resolve(adapter=adapter or "none"))


def correction_rows(cfg: RetrainConfig, store: Store | None) -> list[dict]:
    """The approved corrections to learn from, as export rows with provenance."""
    if cfg.from_export:
        return read_export(Path(cfg.from_export))
    assert store is not None
    ids = [c.id for c in store.unused_approved()]
    return store.approved(ids) if ids else []


def training_mix(corrections: list[dict], base_data: str, upweight: int) -> DatasetDict:
    """The base ETD data plus the corrections, each repeated ``upweight`` times."""
    if upweight < 1:
        raise ValueError("upweight must be at least 1")
    rows = [{k: row[k] for k in COLUMNS} for row in corrections]
    extra = Dataset.from_list(rows * upweight)
    if not base_data:
        return DatasetDict(train=extra)
    base = load_from_disk(base_data)
    if not isinstance(base, DatasetDict):
        base = DatasetDict(train=base)
    columns = list(COLUMNS)
    mix = DatasetDict(train=concatenate_datasets([base["train"].select_columns(columns), extra]))
    if "validation" in base:
        mix["validation"] = base["validation"].select_columns(columns)
    return mix


def measure(student: Student, sets: dict[str, list[dict]]) -> dict[str, dict]:
    """Evaluation scores of ``student`` on each named list of problems."""
    results = {}
    for name, problems in sets.items():
        started = time.perf_counter()
        solutions = student.solve_batch([p["question"] for p in problems])
        results[name] = score(problems, solutions, time.perf_counter() - started)
    return results


def corrected_problems(corrections: list[dict]) -> list[dict]:
    """One problem per corrected question, with the gold answer (or the corrected answer)."""
    seen: dict[str, dict] = {}
    for row in corrections:
        gold = row.get("gold_answer")
        answer = gold if gold is not None else row["answer"]
        seen.setdefault(row["question"], {"id": row["id"], "question": row["question"],
                                          "answer": answer})  # fmt: skip
    return list(seen.values())


def adapter_to_continue(cfg: RetrainConfig, store: Store | None) -> str | None:
    adapter = cfg.student.adapter
    if cfg.new_adapter or adapter == "none":
        return None
    if adapter == "promoted":
        version = store.promoted_model_version() if store else None
        return version.adapter_path if version and version.adapter_path else "default"
    return adapter


def decide(before: dict, after: dict, cfg: RetrainConfig) -> tuple[bool, str]:
    """Promote only if no held-out set's accuracy fell by more than the margin."""
    drops = {
        name: before[name]["accuracy"][cfg.promote_metric] - r["accuracy"][cfg.promote_metric]
        for name, r in after.items()
    }
    worst = max(drops, key=drops.get) if drops else None
    if worst is not None and drops[worst] > cfg.promote_margin:
        return False, (
            f"not promoted: {cfg.promote_metric} accuracy on {worst} fell by "
            f"{drops[worst]:.1f} points (margin {cfg.promote_margin:g})"
        )
    change = ", ".join(f"{n} {-d:+.1f}" for n, d in drops.items())
    return True, f"promoted: held-out {cfg.promote_metric} accuracy change within margin ({change})"


def retrain(cfg: RetrainConfig) -> Round:
    """Run one retraining round (see the module docstring)."""
    started = time.perf_counter()
    out = Path(cfg.output_dir)
    save_config(cfg, out)
    settings = StoreSettings.from_env()
    store = None if cfg.from_export else Store(cfg.db_url or None, settings=settings)
    corrections = correction_rows(cfg, store)
    if not corrections:
        raise SystemExit("no approved corrections that have not been used yet: nothing to retrain")
    ids = [int(row["correction_id"]) for row in corrections]
    mix_dir = out / "mix"
    training_mix(corrections, cfg.base_data, cfg.upweight).save_to_disk(str(mix_dir))

    sets = {set_name(spec): test_problems(spec, cfg.eval_limit) for spec in cfg.eval_sets}
    sets["corrected"] = corrected_problems(corrections)
    adapter = adapter_to_continue(cfg, store)
    before = measure(Student(load_for_eval(cfg, adapter), cfg.generation), sets)

    train_cfg = load_config(TrainConfig, ["--config", cfg.train_config] if cfg.train_config else [])
    train_cfg.data, train_cfg.output_dir = str(mix_dir), str(out / "train")
    train_cfg.base, train_cfg.init_adapter = cfg.student.model, adapter
    train_cfg.epochs, train_cfg.max_steps = cfg.epochs, cfg.max_steps
    train_cfg.learning_rate, train_cfg.device = cfg.learning_rate, cfg.student.device
    train_metrics = train(train_cfg)
    new_adapter = train_metrics["final"]
    after = measure(Student(load_for_eval(cfg, new_adapter), cfg.generation), sets)

    held_before = {k: v for k, v in before.items() if k != "corrected"}
    held_after = {k: v for k, v in after.items() if k != "corrected"}
    promote, reason = decide(held_before, held_after, cfg)
    version_id = None
    if store is not None:
        name = cfg.name or datetime.now(UTC).strftime("retrain-%Y%m%d-%H%M%S")
        version = store.register_model_version(
            name=name,
            base_model=cfg.student.model,
            adapter_path=new_adapter,
            training_summary={
                "corrections": ids,
                "upweight": cfg.upweight,
                "base_data": cfg.base_data,
                "continued_from": adapter,
                "train": train_metrics,
                "decision": reason,
            },
            metrics={"before": before, "after": after},
        )
        version_id = version.id
        store.mark_used(ids, version.id)
        if promote:
            store.promote(version.id)
    else:
        promote = False
        reason += " (from an export: register and promote it in the store that serves the app)"

    result = Round(
        version_id, promote, reason, ids, before, after, train_metrics,
        round(time.perf_counter() - started, 1),
    )  # fmt: skip
    (out / "report.json").write_text(json.dumps(result.__dict__, indent=2) + "\n", "utf-8")
    (out / "report.md").write_text(report_markdown(result, cfg), encoding="utf-8")
    return result


def report_markdown(result: Round, cfg: RetrainConfig) -> str:
    """Before/after accuracy per set (EoT, PoT, CoT, vote) and the decision."""
    cols = ["eot", "pot", "cot", cfg.promote_metric]
    lines = [
        f"# Retraining round: {len(result.corrections)} corrections, x{cfg.upweight}",
        "",
        f"{result.reason}. Wall time {result.seconds:.0f} s.",
        "",
        "| set | n | " + " | ".join(f"{c} before → after" for c in cols) + " |",
        "|---|---:|" + "---|" * len(cols),
    ]
    for name, after in result.after.items():
        before = result.before[name]
        cells = [f"{before['accuracy'][c]:.1f} → {after['accuracy'][c]:.1f}" for c in cols]
        lines.append(f"| {name} | {after['problems']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(RetrainConfig, argv)
    result = retrain(cfg)
    print(report_markdown(result, cfg))


if __name__ == "__main__":
    main()
