"""The retraining round end to end on CPU: a real SQLite store, a tiny model, two rounds."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from db.migrate import upgrade
from db.store import Store
from eotd.prompts import build_prompt
from training.retrain import RetrainConfig, decide, main, training_mix
from training.tiny_model import make_tiny_model

PROBLEMS = [
    ("Tom has 3 apples and buys 4 more. How many?", 7, "x = 3 + 4\nans = x"),
    ("A box holds 6 eggs. How many in 5 boxes?", 30, "e = 6 * 5\nans = e"),
    ("Ann reads 10 pages a day. How many in 3 days?", 30, "p = 10 * 3\nans = p"),
]
CONFIG = str(Path(__file__).resolve().parents[2] / "training/configs/retrain_tiny_cpu.yaml")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Store, Path, Path]:
    texts = [build_prompt(q, t) + eot for q, _, eot in PROBLEMS for t in ("cot", "pot", "eot")]
    base = make_tiny_model(tmp_path / "base", texts * 5)
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    upgrade(url)
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text(
        json.dumps({"id": "h-0", "question": "Sam has 2 cats and 2 dogs. Pets?", "answer": 4})
        + "\n"
    )
    return Store(url), base, held_out


def _approve(store: Store, question: str, gold: float, eot: str) -> int:
    problem = store.add_problem(question, gold_answer=gold, source="gsm8k", source_id=question)
    correction = store.add_correction("eot", eot, annotator="ann", problem_id=problem.id)
    store.review(correction.id, reviewer="rev", decision="approved")
    return correction.id


def _args(store: Store, base: Path, held_out: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--db_url", store.url, "--model", str(base), "--base_data", "",
        "--train_config", CONFIG, "--eval_sets", str(held_out), "--eval_limit", "0",
        "--max_new_tokens", "16", "--output_dir", str(out), "--device", "cpu",
        "--promote_margin", "100", *extra,
    ]  # fmt: skip


def test_two_rounds_register_promote_and_use_each_correction_once(setup, tmp_path):
    store, base, held_out = setup
    first = [_approve(store, q, a, eot) for q, a, eot in PROBLEMS[:2]]
    main(_args(store, base, held_out, tmp_path / "r1", "--adapter", "none", "--name", "r1"))

    report = json.loads((tmp_path / "r1" / "report.json").read_text())
    assert report["corrections"] == first and report["promoted"] is True
    assert set(report["after"]) == {"held_out", "corrected"}
    assert report["after"]["corrected"]["problems"] == 2
    version = store.promoted_model_version()
    assert version is not None and version.name == "r1"
    assert Path(version.adapter_path, "adapter_config.json").is_file()
    assert version.training_summary["corrections"] == first
    assert "before" in version.metrics and "after" in version.metrics
    assert store.unused_approved() == []
    assert (tmp_path / "r1" / "config.yaml").is_file() and (tmp_path / "r1" / "report.md").is_file()

    # Nothing new approved: a second round refuses to run.
    with pytest.raises(SystemExit, match="nothing to retrain"):
        main(_args(store, base, held_out, tmp_path / "r1b"))

    # A new correction: round 2 continues the promoted adapter and uses only the new one.
    q, a, eot = PROBLEMS[2]
    new = _approve(store, q, a, eot)
    main(_args(store, base, held_out, tmp_path / "r2", "--name", "r2"))
    report2 = json.loads((tmp_path / "r2" / "report.json").read_text())
    assert report2["corrections"] == [new]
    assert report2["train_metrics"]["init_adapter"] == version.adapter_path
    versions = {v.name: v for v in store.model_versions()}
    assert versions["r2"].promoted and not versions["r1"].promoted


def test_a_version_that_loses_held_out_accuracy_is_kept_but_not_promoted():
    cfg = RetrainConfig(promote_margin=1.0)
    before = {"gsm8k": {"accuracy": {"majority": 20.0}}}
    promote, reason = decide(before, {"gsm8k": {"accuracy": {"majority": 18.5}}}, cfg)
    assert not promote and "fell by 1.5 points" in reason
    promote, reason = decide(before, {"gsm8k": {"accuracy": {"majority": 19.5}}}, cfg)
    assert promote and "gsm8k -0.5" in reason


@pytest.mark.stress
def test_retrain_from_an_export_evaluating_on_ct2(setup, tmp_path, monkeypatch):
    monkeypatch.setenv("EOTD_CACHE_DIR", str(tmp_path / "cache"))
    store, base, held_out = setup
    ids = [_approve(store, q, a, eot) for q, a, eot in PROBLEMS[:2]]
    store.export(tmp_path / "export", by="rev")
    main(_args(store, base, held_out, tmp_path / "r", "--from_export", str(tmp_path / "export"),
               "--adapter", "none", "--engine", "ct2"))  # fmt: skip
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["corrections"] == ids
    assert (
        report["before"]["corrected"]["problems"] == report["after"]["corrected"]["problems"] == 2
    )
    # before (the base) and after (base + the new adapter) were each converted for CTranslate2
    assert len(list((tmp_path / "cache" / "ct2").glob("*/model.bin"))) == 2
    assert report["version_id"] is None and report["promoted"] is False
    assert "from an export" in report["reason"]


def test_mix_upweights_corrections_and_keeps_the_base_data(tmp_path):
    from datasets import Dataset, DatasetDict

    row = {"id": "a", "question": "q", "thought": "eot", "target": "ans = 1", "answer": 1.0,
           "source": "rule", "origin_id": "a"}  # fmt: skip
    DatasetDict(
        train=Dataset.from_list([row] * 3), validation=Dataset.from_list([row])
    ).save_to_disk(str(tmp_path / "base"))
    correction = {**row, "id": "c", "source": "human", "annotator": "ann", "correction_id": 1}
    mix = training_mix([correction], str(tmp_path / "base"), upweight=4)
    assert mix["train"]["source"].count("human") == 4 and len(mix["train"]) == 7
    assert len(mix["validation"]) == 1
    with pytest.raises(ValueError, match="upweight"):
        training_mix([correction], "", upweight=0)


def test_correction_round_corrects_wrong_eots_from_gold_and_retrains(setup, tmp_path):
    from training.correction_round import ANNOTATOR
    from training.correction_round import main as round_main

    store, base, held_out = setup
    round_main(_args(store, base, held_out, tmp_path / "round", "--adapter", "none",
                     "--n", "2", "--candidates", "3", "--name", "gold"))  # fmt: skip
    report = json.loads((tmp_path / "round" / "report.json").read_text())
    # A random tiny model gets every EoT wrong: the first convertible problems are corrected.
    assert len(report["corrections"]) == 2
    assert report["before"]["corrected"]["problems"] == 2
    assert report["before"]["corrected"]["accuracy"]["eot"] == 0.0  # they were wrong
    assert "eot" in report["after"]["corrected"]["accuracy"]
    corrections = [store.get_correction(i) for i in report["corrections"]]
    assert {c.annotator for c in corrections} == {ANNOTATOR}
    assert all(c.status == "approved" and c.generation_id for c in corrections)
    assert all(c.matches_gold for c in corrections)  # each correction solves to the gold answer
    assert store.promoted_model_version().name == "gold"
