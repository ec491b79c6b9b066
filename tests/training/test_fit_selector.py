"""Fitting the answer selector on held-out predictions, and its report against majority."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from eotd.student import combine, execute
from eotd.verifier import load_selector
from training.boosting import BoostSettings
from training.datasets import load_problems
from training.evaluate import prediction_row
from training.fit_selector import (
    FitSelectorConfig,
    Problem,
    cross_validate,
    fit,
    fold_numbers,
    picks,
    read,
    run,
)


def _problem(i: int, trap: bool) -> tuple[dict, object]:
    """A made-up problem: PoT is right and uses both numbers; CoT and EoT use one. On ``trap``
    problems CoT and EoT agree on the same wrong answer, so the majority vote is wrong."""
    a, b = 10 + i, 3 + i % 5
    question = f"Tom has {a} red marbles and {b} blue marbles. How many marbles does he have?"
    wrong_cot = 2 * a if trap else a
    thoughts = [
        execute("cot", f"He has {a} and {a}. The answer is {wrong_cot}."),
        execute("pot", f"red = {a}\nblue = {b}\nans = red + blue"),
        execute("eot", f"x = {a} * 2\nans = x"),
    ]
    return {"id": f"made-{i}", "question": question, "answer": a + b}, combine(
        question, thoughts, "majority"
    )


def _write(path: Path, rows: list[tuple[dict, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for problem, solution in rows:
            f.write(json.dumps(prediction_row(problem, solution)) + "\n")
    return path


SMALL = BoostSettings(rounds=40, learning_rate=0.3, min_leaf=5)  # a few dozen candidates: quick


@pytest.fixture
def held_out(tmp_path: Path) -> Path:
    return _write(
        tmp_path / "val" / "predictions_val.jsonl", [_problem(i, i % 2 == 0) for i in range(40)]
    )


def test_the_fit_learns_which_signal_marks_the_right_answer(held_out: Path) -> None:
    problems = read(held_out)
    majority = sum(p.majority == p.gold for p in problems) / len(problems)
    assert majority == 0.5  # wrong on every trap
    selector = fit(problems, ["share", "numbers_used"], SMALL)
    steps = dict(zip(selector.signals, selector.values, strict=True))
    assert steps["numbers_used"][-1] > steps["numbers_used"][0]  # using the numbers marks it
    assert all(a == p.gold for a, p in zip(picks(problems, selector), problems, strict=True))
    cv = cross_validate(problems, ["share", "numbers_used"], SMALL, folds=5, seed=0)
    assert (cv.majority, cv.verified) == (50.0, 100.0)
    assert (cv.only_majority, cv.only_verified) == (0, 20) and cv.p_value < 1e-5
    with pytest.raises(ValueError, match="lack logprob"):  # no log-probabilities saved
        fit(problems, ["share", "logprob"], SMALL)


def test_variants_and_samples_of_a_problem_share_its_fold() -> None:
    ids = [f"gsm8k-train-{i}" for i in range(30)]
    ids += [f"{i}-aug{k}" for i in ids[:10] for k in (1, 2)] + ids[:5]  # variants, resamples
    folds = fold_numbers([Problem(i, "", 1.0, [], None) for i in ids], folds=5, seed=0)
    fold = dict(zip(ids, folds, strict=False))  # an original's first fold
    assert all(f == fold[i.split("-aug")[0]] for i, f in zip(ids, folds, strict=True))
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]


def test_run_writes_the_selector_and_a_paired_report_with_ablations(
    held_out: Path, tmp_path: Path
) -> None:
    test_file = _write(tmp_path / "test" / "predictions_made.jsonl",
                       [_problem(i, True) for i in range(100, 110)])  # fmt: skip
    cfg = FitSelectorConfig(
        predictions=[str(held_out)], report_on=[str(test_file)],
        output=str(tmp_path / "selector.json"), report_dir=str(tmp_path / "report"), boosting=SMALL,
    )  # fmt: skip
    report = run(cfg)
    selector = load_selector(tmp_path / "selector.json")
    assert "logprob" not in selector.signals  # no saved log-probabilities to fit on
    assert selector.fitted_on["skipped_signals"] == ["logprob"]
    assert selector.fitted_on["problems"] == 40
    table = report["tables"]["test/made"]
    assert table["all signals"]["majority"] == 0.0 and table["all signals"]["verified"] == 100.0
    assert {f"without {s}" for s in selector.signals} <= set(table)
    md = (tmp_path / "report" / "report.md").read_text()
    assert "| all signals | 10 | 0.00 | 100.00 |" in md
    assert (tmp_path / "report" / "fit_selector_config.yaml").is_file()


def test_fitting_on_a_test_set_is_refused(tmp_path: Path) -> None:
    gsm8k = load_problems("gsm8k", "test")[0]
    problem, solution = _problem(0, True)
    leaked = {**problem, "question": gsm8k["question"]}
    path = _write(tmp_path / "predictions_leak.jsonl", [(leaked, solution)])
    with pytest.raises(ValueError, match="evaluation questions"):
        run(FitSelectorConfig(predictions=[str(path)], output=str(tmp_path / "s.json"),
                              report_dir=str(tmp_path / "r")))  # fmt: skip
    assert not (tmp_path / "s.json").exists()


def test_cross_validation_is_reported_per_fitting_file_too(held_out: Path, tmp_path: Path) -> None:
    sampled = _write(tmp_path / "sampled" / "predictions_val.jsonl",
                     [_problem(i, False) for i in range(100, 120)])  # fmt: skip
    report = run(FitSelectorConfig(
        predictions=[str(held_out), str(sampled)], signals=["share", "numbers_used"],
        output=str(tmp_path / "s.json"), report_dir=str(tmp_path / "r"), boosting=SMALL,
    ))  # fmt: skip
    tables = report["tables"]
    assert tables["cross-validated (fitting problems)"]["all signals"]["problems"] == 60
    greedy, other = tables["cross-validated (val/val)"], tables["cross-validated (sampled/val)"]
    assert (greedy["all signals"]["problems"], other["all signals"]["problems"]) == (40, 20)
    assert greedy["all signals"]["majority"] == 50.0 and other["all signals"]["majority"] == 100.0
    assert set(greedy) == {"all signals", "without share", "without numbers_used"}

    scored_only = run(FitSelectorConfig(
        predictions=[str(sampled)], cross_validate_also=[str(held_out)],
        signals=["share", "numbers_used"], output=str(tmp_path / "s2.json"),
        report_dir=str(tmp_path / "r2"), boosting=SMALL,
    ))  # fmt: skip
    alone = fit(read(sampled), ["share", "numbers_used"], SMALL)
    both = fit(read(sampled) + read(held_out), ["share", "numbers_used"], SMALL)
    assert alone.values != both.values  # so the check below can tell the two apart
    # the scored file is not fitted on
    assert (scored_only["selector"]["thresholds"], scored_only["selector"]["values"]) == (
        alone.thresholds, alone.values)  # fmt: skip
    assert scored_only["selector"]["fitted_on"]["problems"] == 20
    assert scored_only["tables"]["cross-validated (val/val)"]["all signals"]["problems"] == 40
    with pytest.raises(ValueError, match="once"):
        run(
            FitSelectorConfig(
                predictions=[str(sampled)],
                cross_validate_also=[str(sampled)],
                output=str(tmp_path / "s3.json"),
                report_dir=str(tmp_path / "r3"),
            )
        )


def test_every_shipped_fitting_and_reported_thought_has_a_log_probability() -> None:
    """The shipped selector reads ``logprob``; a file without it would be scored with the signal
    missing (``training.rescore --logprobs true`` gives it)."""
    root = Path(__file__).resolve().parents[2]
    cfg = yaml.safe_load((root / "training/configs/selector.yaml").read_text())
    assert "logprob" in load_selector().signals
    for name in cfg["predictions"] + cfg["report_on"]:
        with (root / name).open(encoding="utf-8") as f:
            lacking = sum(t.get("mean_logprob") is None for line in f
                          for t in json.loads(line)["thoughts"])  # fmt: skip
        assert lacking == 0, f"{name}: {lacking} thoughts without mean_logprob"
