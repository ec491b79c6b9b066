"""Write the problems an answer selector may be fitted on: never trained on, never a test set.

    python -m training.heldout --variants 2 --variant_seeds 0,1 --out runs/heldout.jsonl

The data builder keeps a validation slice of GSM8K train out of the student's training
(``training.datasets.train_validation``); those problems, less any that also occur in an
evaluation set, are the held-out pool; ``--unconverted true`` adds the training problems the rule
teacher cannot convert (``training.build_data`` drops them, so a student trained on the rule
teacher's data without augmentation, as the shipped one, never saw them; no variants of these, as
their annotations do not reach the gold answer). ``--variants N``
adds up to N number-changed variants of each
(``training.augment``): new problems with their own gold answers, on which the student's thoughts
scatter differently, so the selector sees several times as many candidates; ``--variant_seeds
0,1`` draws more, keeping only new questions. A variant's id is its original's with ``-augN``
added, which keeps the two in one cross-validation fold
(``training.fit_selector.origin``). Writes uniform JSONL for ``training.evaluate`` and the config
beside it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from training.augment import augment_problems
from training.build_data import rule_targets
from training.config import load_config, save_config
from training.datasets import (
    VALIDATION_SEED,
    VALIDATION_SIZE,
    evaluation_questions,
    normalize_question,
    train_validation,
)


@dataclass
class HeldoutConfig:
    """Held-out problems for fitting the selector."""

    out: str = "runs/heldout.jsonl"
    train_data: str = "gsm8k"  # the data builder's training pool (vendored name or JSONL path)
    validation_size: int = VALIDATION_SIZE  # as the student's data was built
    seed: int = VALIDATION_SEED  # the data builder's: another seed slices out trained problems
    variants: int = 0  # number-changed variants per problem and seed (training.augment)
    # seeds drawing the variants' numbers; a later seed adds only variants not made before
    variant_seeds: list[int] = field(default_factory=lambda: [0])
    # also the training problems the rule teacher cannot convert (the student never saw them)
    unconverted: bool = False


def heldout_problems(cfg: HeldoutConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The validation slice without evaluation questions, then its variants (none equal to an
    evaluation, a training or an earlier question), then the unconverted training problems if
    asked; and counts."""
    train, validation = train_validation(cfg.train_data, cfg.validation_size, cfg.seed)
    tests = evaluation_questions()
    kept = [dict(p) for p in validation if normalize_question(p["question"]) not in tests]
    for p in kept:
        p["origin_id"] = p["id"]
    made: list[dict[str, Any]] = []
    stats: dict[str, Any] = {}
    trained = {normalize_question(q) for q in train["question"]}
    seen = tests | trained | {normalize_question(p["question"]) for p in kept}
    ids = {p["id"] for p in kept}
    for index, seed in enumerate(cfg.variant_seeds if cfg.variants else []):
        drawn, stats[f"seed {seed}"] = augment_problems(kept, cfg.variants, seed)
        for p in drawn:
            if normalize_question(p["question"]) in seen:
                continue
            if p["id"] in ids:  # ID-augN again: ID-aug{index}N, still a variant of ID
                p["id"] = re.sub(r"-aug(\d+)$", rf"-aug{index}\1", p["id"])
            if p["id"] in ids:
                raise ValueError(f"variant id {p['id']} is taken; ask for fewer variants")
            seen.add(normalize_question(p["question"]))
            ids.add(p["id"])
            made.append(p)
    taught: set[str] = set()  # questions of which some copy was converted, so trained on
    untaught: dict[str, dict[str, Any]] = {}
    taken = tests | {normalize_question(p["question"]) for p in kept + made}
    for p in train if cfg.unconverted else []:
        question = normalize_question(p["question"])
        if not isinstance(rule_targets(p), str):
            taught.add(question)
        elif question not in taken:
            untaught.setdefault(question, {**p, "origin_id": p["id"]})  # once each
    dropped = [p for q, p in untaught.items() if q not in taught]
    counts = {
        "validation": len(validation),
        "in_evaluation_sets": len(validation) - len(kept),
        "kept": len(kept),
        "variants": len(made),
        "augment": stats,
        "unconverted": len(dropped),
    }
    return kept + made + dropped, counts


def main(argv: list[str] | None = None) -> None:
    cfg = load_config(HeldoutConfig, argv)
    problems, counts = heldout_problems(cfg)
    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as f:
        for p in problems:
            f.write(json.dumps(p, ensure_ascii=False) + "\n")
    save_config(cfg, out.parent, out.stem + "_config.yaml")
    print(json.dumps(counts, indent=2))
    print(f"wrote {len(problems)} problems to {out}")


if __name__ == "__main__":
    main()
