"""A measured human-in-the-loop round, with GSM8K's gold annotations standing in for annotators.

    python -m training.correction_round [--config training/configs/retrain.yaml] [--n 50] [...]

Finds ``n`` GSM8K train problems on which the current student's EoT is wrong (searching a seeded
shuffle of ``candidates`` problems), records the student's EoT as a generation, corrects it in
the store with the rule teacher's EoT from the gold rationale (annotator ``gold-annotations``),
approves it (reviewer ``gold-review``), then runs one :mod:`training.retrain` round. The round's
report (``report.md``) gives EoT accuracy on the corrected problems and held-out accuracy, before
and after, and the wall time. Takes every setting of :class:`training.retrain.RetrainConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from db.migrate import upgrade
from db.store import Store
from eotd import same_answer
from eotd.student import Student, ThoughtResult
from training.config import load_config
from training.datasets import load_problems
from training.retrain import (
    RetrainConfig,
    Round,
    adapter_to_continue,
    load_for_eval,
    report_markdown,
    retrain,
)
from training.teachers.rule import ConversionError, convert
from training.teachers.verify import check

ANNOTATOR = "gold-annotations"
REVIEWER = "gold-review"


@dataclass
class CorrectionRoundConfig(RetrainConfig):
    """Correct ``n`` wrong EoTs from gold annotations, then retrain (all RetrainConfig settings)."""

    n: int = 50  # problems to correct
    candidates: int = 400  # GSM8K train problems searched for wrong EoTs
    seed: int = 0


def wrong_eot_problems(
    cfg: CorrectionRoundConfig, student: Student
) -> list[tuple[dict, ThoughtResult, str]]:
    """Up to ``n`` (problem, student's EoT, gold EoT) triples: the student's EoT misses the gold
    answer and the gold rationale converts to an EoT."""
    pool = load_problems("gsm8k", "train").shuffle(seed=cfg.seed)
    pool = list(pool.select(range(min(cfg.candidates, len(pool)))))
    solutions = student.solve_batch([p["question"] for p in pool])
    found = []
    for problem, solution in zip(pool, solutions, strict=True):
        eot = solution.thought("eot")
        if same_answer(eot.answer, float(problem["answer"])):
            continue
        try:
            target = convert(problem["question"], problem["solution"], problem["answer"]).eot
        except ConversionError:
            continue
        if not check("eot", target, float(problem["answer"])).ok:  # a correction must be right
            continue
        found.append((problem, eot, target))
        if len(found) == cfg.n:
            break
    return found


def correct_in_store(store: Store, wrong: list[tuple[dict, ThoughtResult, str]]) -> list[int]:
    """Record each wrong EoT, correct it with the gold EoT and approve it; the correction ids."""
    ids = []
    for problem, eot, target in wrong:
        row = store.add_problem(
            problem["question"], float(problem["answer"]), source="gsm8k", source_id=problem["id"]
        )
        generation = store.record_generation(
            row.id, None, "eot", eot.text, eot.status, eot.answer, eot.error
        )
        correction = store.add_correction(
            "eot", target, annotator=ANNOTATOR, generation_id=generation.id
        )
        store.review(correction.id, reviewer=REVIEWER, decision="approved")
        ids.append(correction.id)
    return ids


def run(cfg: CorrectionRoundConfig) -> Round:
    """Correct, then retrain; returns the retraining round."""
    if not cfg.db_url:
        cfg.db_url = f"sqlite:///{Path(cfg.output_dir).resolve() / 'round.sqlite3'}"
        Path(cfg.output_dir).mkdir(parents=True, exist_ok=True)
    upgrade(cfg.db_url)
    store = Store(cfg.db_url)
    adapter = adapter_to_continue(cfg, store)
    student = Student(load_for_eval(cfg, adapter), cfg.generation)
    wrong = wrong_eot_problems(cfg, student)
    del student
    print(f"{len(wrong)} GSM8K train problems with a wrong EoT (searched {cfg.candidates} at most)")
    correct_in_store(store, wrong)
    return retrain(cfg)


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(CorrectionRoundConfig, argv)
    print(report_markdown(run(cfg), cfg))


if __name__ == "__main__":
    main()
