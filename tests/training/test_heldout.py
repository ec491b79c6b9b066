"""The selector's fitting problems: the student's validation slice and its variants, and the
training problems it never saw; no test set."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from training import heldout
from training.build_data import rule_candidates
from training.datasets import normalize_question, train_validation
from training.fit_selector import origin
from training.heldout import HeldoutConfig, heldout_problems, main


def test_heldout_is_the_validation_slice_and_its_variants() -> None:
    problems, counts = heldout_problems(HeldoutConfig(variants=2))
    _, validation = train_validation("gsm8k")
    originals = [p for p in problems if "origin_id" in p and p["id"] == p["origin_id"]]
    variants = [p for p in problems if p["id"] != p["origin_id"]]
    assert [p["id"] for p in originals] == validation["id"]
    assert counts["kept"] == 200 and counts["variants"] == len(variants) > 200
    by_id = {p["id"]: p for p in originals}
    for v in variants:
        source = by_id[v["origin_id"]]
        assert origin(v["id"]) == source["id"]
        assert v["question"] != source["question"] and v["answer"] != source["answer"]


def test_evaluation_questions_never_reach_the_fitting_problems(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, validation = train_validation("gsm8k")
    leaked = validation[0]["question"]
    monkeypatch.setattr(heldout, "evaluation_questions", lambda: {normalize_question(leaked)})
    out = tmp_path / "heldout.jsonl"
    main(["--out", str(out), "--variants", "1"])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert all(r.get("origin_id") != validation[0]["id"] for r in rows)
    assert len({r["origin_id"] for r in rows}) == 199
    assert (tmp_path / "heldout_config.yaml").read_text().startswith("out: ")


def test_more_variant_seeds_add_only_new_variants_of_the_same_problems() -> None:
    first, _ = heldout_problems(HeldoutConfig(variants=1))
    both, _ = heldout_problems(HeldoutConfig(variants=1, variant_seeds=[0, 1]))
    originals = [[p["id"] for p in rows if p["id"] == p["origin_id"]] for rows in (first, both)]
    assert originals[0] == originals[1]  # the slice never moves: it is what the student skipped
    assert both[: len(first)] == first  # the first seed's variants come first, unchanged
    added = both[len(first) :]
    assert added and not {p["question"] for p in added} & {p["question"] for p in first}
    assert len({p["id"] for p in both}) == len(both)  # clashing ids were renumbered
    assert all(origin(p["id"]) == p["origin_id"] for p in added)


def test_unconverted_training_problems_join_the_pool_without_variants(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    lines = Path("data/gsm8k/train.jsonl").read_text(encoding="utf-8").splitlines()[:40]
    pool.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cfg = HeldoutConfig(train_data=str(pool), validation_size=5, variants=1, unconverted=True)
    problems, counts = heldout_problems(cfg)
    train, _ = train_validation(str(pool), 5)
    added = problems[len(problems) - counts["unconverted"] :]
    assert "gsm8k-train-29" in [p["id"] for p in added]  # its annotations never reach the gold
    assert all(p["id"] in train["id"] and p["origin_id"] == p["id"] for p in added)
    taught = {c.question for c in rule_candidates(list(train), ["cot", "pot", "eot"], Counter())}
    assert {p["question"] for p in added} == set(train["question"]) - taught  # never trained on
    added_ids = {p["id"] for p in added}
    variants = [p for p in problems if p["id"] != p["origin_id"]]
    assert variants and not [p for p in variants if p["origin_id"] in added_ids]
    without, _ = heldout_problems(
        HeldoutConfig(train_data=str(pool), validation_size=5, variants=1)
    )
    assert problems[: len(without)] == without
